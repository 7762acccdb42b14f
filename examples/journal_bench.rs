//! The company's journal at scale: p99 of the monitor query, of a month's analytics
//! for one tenant and for all, and the time and peak memory of exporting a month of
//! 50,000 tickets to PDF, over a store of a year of tickets and calls.
//!
//! ```text
//! cargo run --release --example journal_bench -- --database sqlite:///tmp/j.db
//! cargo run --release --example journal_bench -- --database postgres://postgres@127.0.0.1/j
//! ```
//!
//! Options: `--tickets N` (1000000), `--calls N` (5000000), `--tenants N` (200),
//! `--runs N` (30 runs of each query), `--export N` (50000 tickets in the exported
//! window), `--measure-only 1` (skip loading: the database was loaded by an
//! earlier run). The database should be empty; it is migrated and bulk-loaded with
//! multi-row inserts (progress and an estimate of the time left are printed). Goals:
//! analytics p99 under 500 ms; the export under 30 s in under 200 MiB. See
//! `scripts/bench-journal`, which runs both dialects on throwaway databases.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use dispatchline::console::report::TicketReport;
use dispatchline::store::analytics::{AnalyticsQuery, Bucket};
use dispatchline::store::export::ExportQuery;
use dispatchline::store::monitor::MonitorFilter;
use dispatchline::store::{Store, TenantScope};

struct Options {
    database: String,
    tickets: u64,
    calls: u64,
    tenants: u64,
    runs: u64,
    export: u64,
    measure_only: bool,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        database: String::new(),
        tickets: 1_000_000,
        calls: 5_000_000,
        tenants: 200,
        runs: 30,
        export: 50_000,
        measure_only: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        let n = || {
            value
                .parse::<u64>()
                .with_context(|| format!("{flag} {value}"))
        };
        match flag.as_str() {
            "--database" => o.database = value.clone(),
            "--tickets" => o.tickets = n()?,
            "--calls" => o.calls = n()?,
            "--tenants" => o.tenants = n()?.max(1),
            "--runs" => o.runs = n()?.max(1),
            "--export" => o.export = n()?,
            "--measure-only" => o.measure_only = n()? != 0,
            _ => anyhow::bail!("unknown option {flag}"),
        }
    }
    anyhow::ensure!(!o.database.is_empty(), "--database URL is required");
    Ok(o)
}

/// A well-mixed hash of `i` and `salt` (deterministic data without a generator).
fn mix(i: u64, salt: u64) -> u64 {
    let mut z = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn ts(t: DateTime<Utc>) -> String {
    format!("'{}'", t.to_rfc3339_opts(SecondsFormat::Secs, false))
}

/// Multi-row inserts in large transactions, with progress.
struct Loader {
    url: String,
}

impl Loader {
    async fn run(&self, statements: Vec<String>) -> anyhow::Result<()> {
        macro_rules! exec {
            ($pool:expr) => {{
                let pool = $pool;
                let mut tx = pool.begin().await?;
                for sql in statements {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                pool.close().await;
            }};
        }
        if self.url.starts_with("sqlite:") {
            exec!(sqlx::SqlitePool::connect(&self.url).await?);
        } else {
            exec!(sqlx::PgPool::connect(&self.url).await?);
        }
        Ok(())
    }

    async fn insert(
        &self,
        table: &str,
        columns: &str,
        rows: u64,
        mut row: impl FnMut(u64) -> Vec<String>,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut statements = Vec::new();
        let mut values: Vec<String> = Vec::new();
        let mut done = 0;
        for i in 0..rows {
            values.extend(row(i));
            if values.len() >= 1000 || i + 1 == rows {
                statements.push(format!(
                    "INSERT INTO {table} ({columns}) VALUES {}",
                    values.join(",")
                ));
                values.clear();
            }
            if statements.len() >= 50 || (i + 1 == rows && !statements.is_empty()) {
                self.run(std::mem::take(&mut statements)).await?;
                done = i + 1;
                let spent = started.elapsed().as_secs_f64();
                let eta = spent / done as f64 * (rows - done) as f64;
                eprint!(
                    "\r  {table}: {done}/{rows} ({:.0} %), {spent:.0} s, about {eta:.0} s left   ",
                    100.0 * done as f64 / rows as f64
                );
            }
        }
        if done > 0 {
            eprintln!();
        }
        Ok(())
    }
}

const HOUSES_PER_TENANT: u64 = 50;
const EMPLOYEES_PER_TENANT: u64 = 10;
const ZONES: [&str; 4] = [
    "Europe/Moscow",
    "Asia/Yekaterinburg",
    "Asia/Novosibirsk",
    "Europe/Samara",
];
/// Reasons: (category, work type, deadline minutes).
const REASONS: [(&str, &str, i64); 3] = [
    ("emergency", "plumbing", 60),
    ("planned", "intercom", 4320),
    ("paid", "roof", 1440),
];

async fn seed(o: &Options, now: DateTime<Utc>) -> anyhow::Result<()> {
    let l = Loader {
        url: o.database.clone(),
    };
    let year = 365 * 86_400;
    let at = |i: u64, salt: u64| now - chrono::Duration::seconds((mix(i, salt) % year) as i64 + 60);
    l.insert(
        "cities",
        "id, code, name, time_zone",
        ZONES.len() as u64,
        |i| {
            vec![format!(
                "({}, 'c{i}', 'Город {i}', '{}')",
                i + 1,
                ZONES[i as usize]
            )]
        },
    )
    .await?;
    l.insert("work_types", "code, name", 3, |i| {
        vec![format!(
            "('{}', '{}')",
            REASONS[i as usize].1, REASONS[i as usize].1
        )]
    })
    .await?;
    l.insert(
        "reasons",
        "id, code, category, title, work_type, deadline_minutes, operator_text, search_key",
        3,
        |i| {
            let (c, w, m) = REASONS[i as usize];
            vec![format!(
                "({}, 'r{i}', '{c}', 'Причина {i}', '{w}', {m}, '', 'r{i}')",
                i + 1
            )]
        },
    )
    .await?;
    let t = o.tenants;
    l.insert("tenants", "id, code, name, city_id", t, |i| {
        vec![format!(
            "({}, 't{i}', 'УК «Компания {i}»', {})",
            i + 1,
            i % ZONES.len() as u64 + 1
        )]
    })
    .await?;
    l.insert(
        "houses",
        "id, tenant_id, city_id, address, address_key, floors, lifts",
        t * HOUSES_PER_TENANT,
        |i| {
            let tenant = i / HOUSES_PER_TENANT;
            vec![format!(
                "({}, {}, {}, 'ул. Ленина, д. {i}', 'ленина {i}', 9, 1)",
                i + 1,
                tenant + 1,
                tenant % ZONES.len() as u64 + 1
            )]
        },
    )
    .await?;
    l.insert(
        "employees",
        "id, tenant_id, name",
        t * EMPLOYEES_PER_TENANT,
        |i| {
            vec![format!(
                "({}, {}, 'Исполнитель {i}')",
                i + 1,
                i / EMPLOYEES_PER_TENANT + 1
            )]
        },
    )
    .await?;
    l.insert(
        "tickets",
        "id, tenant_id, number, house_id, apartment, reason_id, category, status, executor_id, deadline_at, source, version, created_at, updated_at, closed_at",
        o.tickets,
        |i| {
            let tenant = mix(i, 1) % t;
            let reason = (mix(i, 2) % 3) as usize;
            let created = at(i, 3);
            let deadline = created + chrono::Duration::minutes(REASONS[reason].2);
            let r = mix(i, 4) % 100;
            let open = created > now - chrono::Duration::days(3) || r < 2;
            let status = if open { ["registered", "accepted", "in_progress"][(r % 3) as usize] } else if r < 60 { "closed" } else { "done" };
            let executor = if r % 17 == 0 { "NULL".to_owned() } else { (tenant * EMPLOYEES_PER_TENANT + mix(i, 5) % EMPLOYEES_PER_TENANT + 1).to_string() };
            let closed = if status == "closed" { ts(created + chrono::Duration::hours(5)) } else { "NULL".to_owned() };
            vec![format!(
                "({}, {}, '{}', {}, '', {}, '{}', '{status}', {executor}, {}, 'phone', 2, {}, {}, {closed})",
                i + 1, tenant + 1, i + 1001, tenant * HOUSES_PER_TENANT + mix(i, 6) % HOUSES_PER_TENANT + 1,
                reason + 1, REASONS[reason].0, ts(deadline), ts(created), ts(created),
            )]
        },
    )
    .await?;
    l.insert(
        "ticket_history",
        "ticket_id, at, from_status, to_status, actor",
        o.tickets,
        |i| {
            let created = at(i, 3);
            let accept = created + chrono::Duration::seconds((mix(i, 7) % 3600) as i64);
            let done = accept + chrono::Duration::seconds((mix(i, 8) % 14_400) as i64);
            let r = mix(i, 4) % 100;
            let open = created > now - chrono::Duration::days(3) || r < 2;
            let mut rows = vec![format!(
                "({}, {}, NULL, 'registered', 'bench')",
                i + 1,
                ts(created)
            )];
            if !open {
                rows.push(format!(
                    "({}, {}, 'registered', 'accepted', 'bench')",
                    i + 1,
                    ts(accept)
                ));
                rows.push(format!(
                    "({}, {}, 'accepted', 'done', 'bench')",
                    i + 1,
                    ts(done)
                ));
            }
            rows
        },
    )
    .await?;
    l.insert(
        "survey_answers",
        "ticket_id, metric, score, answered_at, executor_id",
        o.tickets / 3,
        |k| {
            let i = k * 3;
            let tenant = mix(i, 1) % t;
            vec![format!(
                "({}, 'csi', {}, {}, {})",
                i + 1,
                mix(i, 9) % 5 + 1,
                ts(at(i, 3) + chrono::Duration::hours(6)),
                tenant * EMPLOYEES_PER_TENANT + mix(i, 5) % EMPLOYEES_PER_TENANT + 1
            )]
        },
    )
    .await?;
    l.insert(
        "calls",
        "id, direction, from_number, to_number, tenant_id, offered_at, answered_at, ended_at, wait_seconds, talk_seconds, disposition, updated_at",
        o.calls,
        |i| {
            let offered = at(i, 10);
            let wait = (mix(i, 11) % 400) as i64;
            let answered = mix(i, 12) % 10 != 0;
            let answered_at = if answered { ts(offered + chrono::Duration::seconds(wait)) } else { "NULL".to_owned() };
            vec![format!(
                "('call-{i}', 'inbound', '+7912{:07}', '+73432000001', {}, {}, {answered_at}, {}, {wait}, 60, '{}', {})",
                i % 10_000_000, mix(i, 13) % t + 1, ts(offered), ts(offered + chrono::Duration::seconds(wait + 60)),
                if answered { "answered" } else { "abandoned" }, ts(offered),
            )]
        },
    )
    .await?;
    if !o.database.starts_with("sqlite:") {
        let pool = sqlx::PgPool::connect(&o.database).await?;
        sqlx::raw_sql("ANALYZE").execute(&pool).await?;
        pool.close().await;
    } else {
        let pool = sqlx::SqlitePool::connect(&o.database).await?;
        sqlx::raw_sql("ANALYZE").execute(&pool).await?;
        pool.close().await;
    }
    Ok(())
}

/// When the newest loaded ticket was registered.
async fn newest(url: &str) -> anyhow::Result<DateTime<Utc>> {
    let sql = "SELECT MAX(created_at) FROM tickets";
    Ok(if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await?;
        let t: Option<DateTime<Utc>> = sqlx::query_scalar(sql).fetch_one(&pool).await?;
        t.context("no tickets loaded")?
    } else {
        let pool = sqlx::PgPool::connect(url).await?;
        let t: Option<DateTime<Utc>> = sqlx::query_scalar(sql).fetch_one(&pool).await?;
        t.context("no tickets loaded")?
    })
}

fn p99(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    (at(0.5), at(0.99))
}

/// The process's peak resident memory since the last reset, in KiB.
fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = options()?;
    let store = Store::connect(&o.database).await?;
    store.migrate().await?;
    let now = if o.measure_only {
        // The loaded year ends at the newest ticket (loaded a minute before "now").
        newest(&o.database).await? + chrono::Duration::seconds(60)
    } else {
        let now = Utc::now();
        let started = Instant::now();
        eprintln!(
            "seeding {} tickets, {} calls, {} tenants",
            o.tickets, o.calls, o.tenants
        );
        seed(&o, now).await?;
        println!("seeded in {:.0} s", started.elapsed().as_secs_f64());
        now
    };
    // Everything loaded is dirty: the first refresh builds the whole roll-up.
    let t = Instant::now();
    let days = store.refresh_journal_rollup().await?;
    println!(
        "roll-up of {days} (company, day) pairs built in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let dialect = if o.database.starts_with("sqlite:") {
        "SQLite"
    } else {
        "PostgreSQL"
    };

    let mut samples = Vec::new();
    for _ in 0..o.runs {
        let t = Instant::now();
        let m = store
            .monitor(&TenantScope::All, &MonitorFilter::default(), now)
            .await?;
        samples.push(t.elapsed());
        std::hint::black_box(m);
    }
    let (p50, p99v) = p99(samples);
    println!("{dialect}: monitor, every tenant: p50 {p50:?}, p99 {p99v:?}");
    let one = TenantScope::Only(vec!["t7".into()]);
    let mut samples = Vec::new();
    for _ in 0..o.runs {
        let t = Instant::now();
        std::hint::black_box(store.monitor(&one, &MonitorFilter::default(), now).await?);
        samples.push(t.elapsed());
    }
    let (p50, p99v) = p99(samples);
    println!("{dialect}: monitor, one tenant: p50 {p50:?}, p99 {p99v:?}");

    let month = AnalyticsQuery {
        from: now - chrono::Duration::days(30),
        to: now,
        bucket: Some(Bucket::Day),
        tenant: None,
        city: None,
    };
    for (what, scope) in [
        ("one tenant", one.clone()),
        ("all tenants", TenantScope::All),
    ] {
        let mut samples = Vec::new();
        for _ in 0..o.runs {
            let t = Instant::now();
            std::hint::black_box(store.analytics(&scope, &month).await?);
            samples.push(t.elapsed());
        }
        let (p50, p99v) = p99(samples);
        let verdict = if p99v < Duration::from_millis(500) {
            "meets"
        } else {
            "misses"
        };
        println!(
            "{dialect}: a month's analytics, {what}: p50 {p50:?}, p99 {p99v:?} ({verdict} the 500 ms goal)"
        );
    }

    // A window holding about `--export` tickets of every tenant.
    let span = chrono::Duration::seconds(
        (365 * 86_400) as i64 * o.export as i64 / o.tickets.max(1) as i64,
    );
    let q = ExportQuery {
        from: now - span,
        to: now,
        tenant: None,
    };
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = peak_kib();
    let t = Instant::now();
    let mut report = TicketReport::new("Все УК", q.from, q.to, chrono_tz::Europe::Moscow)?;
    let mut after = None;
    let mut sent = 0usize;
    loop {
        let batch = store
            .journal_tickets(&TenantScope::All, &q, after, 2000)
            .await?;
        let Some(last) = batch.last() else { break };
        after = Some((last.ticket.created_at, last.ticket.id.0));
        for row in &batch {
            report.add(row);
        }
        // What the HTTP handler sends on after each batch.
        sent += std::hint::black_box(report.take_output()).len();
        if batch.len() < 2000 {
            break;
        }
    }
    let rows = report.rows();
    sent += report.finish(&format!("Всего заявок: {rows}")).len();
    let spent = t.elapsed();
    let peak = peak_kib();
    println!(
        "{dialect}: PDF export of {rows} tickets, streamed: {:.1} s, {:.1} MiB file, peak memory {:.0} MiB (before {:.0} MiB) (goal < 30 s, < 200 MiB)",
        spent.as_secs_f64(),
        sent as f64 / 1_048_576.0,
        peak as f64 / 1024.0,
        before as f64 / 1024.0,
    );
    Ok(())
}
