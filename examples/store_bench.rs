//! Ticket store benchmark: ticket registration (with executor assignment) per second,
//! and the screen-pop caller lookup latency over a store of a million contacts and a
//! hundred thousand tickets: alone, while tickets are being registered, and over HTTP
//! (`GET /api/v1/caller`, which also writes the access log). Also: what
//! `synchronous = FULL` costs registrations on SQLite, and how long the call journal
//! waits while a large contacts import runs. The caller lookup's goal is a p99 under
//! 2 ms on SQLite; the run says whether it is met.
//!
//! ```text
//! cargo run --release --example store_bench -- --database sqlite:///tmp/bench.db
//! cargo run --release --example store_bench -- --database postgres://postgres@127.0.0.1/bench
//! ```
//!
//! Options: `--contacts N` (1000000), `--tickets N` (100000), `--houses N` (20000),
//! `--lookups N` (20000), `--creates N` (2000), `--import N` (rows of the contacts
//! import, 1000000; 0 skips it). The database should be empty; it is
//! migrated and bulk-loaded with multi-row inserts in large transactions. See
//! `scripts/bench-store`, which runs both dialects on throwaway databases.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use dispatchline::phone::PhoneNumber;
use dispatchline::store::address::address_key;
use dispatchline::store::assignment::Shift;
use dispatchline::store::directory::{NewEmployee, NewReason, Responsibility};
use dispatchline::store::tickets::{Channel, NewTicket};
use dispatchline::store::{Category, HouseId, ReasonId, Store};

struct Options {
    database: String,
    contacts: u64,
    tickets: u64,
    houses: u64,
    lookups: u64,
    creates: u64,
    import: u64,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        database: String::new(),
        contacts: 1_000_000,
        tickets: 100_000,
        houses: 20_000,
        lookups: 20_000,
        creates: 2_000,
        import: 1_000_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .with_context(|| format!("{flag} {value}"))
        };
        match flag.as_str() {
            "--database" => o.database = value.clone(),
            "--contacts" => o.contacts = number()?,
            "--tickets" => o.tickets = number()?,
            "--houses" => o.houses = number()?.max(20),
            "--lookups" => o.lookups = number()?,
            "--creates" => o.creates = number()?,
            "--import" => o.import = number()?,
            other => bail!("unknown option {other}"),
        }
    }
    if o.database.is_empty() {
        bail!("--database URL is required");
    }
    Ok(o)
}

/// A small deterministic generator, so every run loads the same data.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Contact `i`'s phone: unique for every `i` below ten million.
fn contact_phone(i: u64) -> String {
    format!("+7912{:07}", i)
}

/// A timestamp literal as the store writes it (RFC 3339, UTC).
fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// Bulk-loads the engine's data with multi-row inserts of generated (quote-free)
/// values, in one transaction per table.
struct Loader {
    url: String,
}

impl Loader {
    async fn run(&self, statements: Vec<String>) -> anyhow::Result<()> {
        if self.url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&self.url).await?;
            let mut tx = pool.begin().await?;
            for sql in statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            pool.close().await;
        } else {
            let pool = sqlx::PgPool::connect(&self.url).await?;
            let mut tx = pool.begin().await?;
            for sql in statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            sqlx::raw_sql("ANALYZE").execute(&pool).await?;
            pool.close().await;
        }
        Ok(())
    }

    /// `INSERT INTO table (columns) VALUES ...` in statements of `per` rows.
    async fn insert(
        &self,
        table: &str,
        columns: &str,
        rows: u64,
        per: u64,
        mut row: impl FnMut(u64) -> String,
    ) -> anyhow::Result<()> {
        let mut statements = Vec::new();
        let mut start = 0;
        while start < rows {
            let end = (start + per).min(rows);
            let values: Vec<String> = (start..end).map(&mut row).collect();
            statements.push(format!(
                "INSERT INTO {table} ({columns}) VALUES {}",
                values.join(",")
            ));
            start = end;
            if statements.len() >= 50 {
                self.run(std::mem::take(&mut statements)).await?;
            }
        }
        self.run(statements).await
    }
}

struct World {
    houses: Vec<HouseId>,
    reasons: Vec<ReasonId>,
}

async fn load(store: &Store, o: &Options, now: DateTime<Utc>) -> anyhow::Result<World> {
    let loader = Loader {
        url: o.database.clone(),
    };
    store
        .create_city("ekb", "Екатеринбург", "Asia/Yekaterinburg")
        .await?;
    store.create_tenant("etalon", "УК «Эталон»", "ekb").await?;
    store.create_tenant("uyut", "УК «Уют»", "ekb").await?;
    let work_types = ["plumbing", "heating", "electrical", "lift"];
    for wt in work_types {
        store.create_work_type(wt, wt).await?;
    }
    let mut reasons = Vec::new();
    for (i, wt) in work_types.iter().enumerate() {
        for (j, category) in [Category::Emergency, Category::Planned, Category::Paid]
            .into_iter()
            .enumerate()
        {
            reasons.push(
                store
                    .create_reason(&NewReason {
                        tenant: None,
                        code: format!("{wt}-{j}"),
                        category,
                        title: format!("Причина {i}-{j}"),
                        work_type: (*wt).to_owned(),
                        deadline_minutes: 60 * (j as i64 + 1),
                        operator_text: "Бригада выезжает".to_owned(),
                        keywords: String::new(),
                    })
                    .await?,
            );
        }
    }
    let groups = 10;
    for tenant in ["etalon", "uyut"] {
        let mut people = Vec::new();
        for (k, (hours_from, hours_to)) in [
            ("08:00", "20:00"),
            ("20:00", "08:00"),
            ("08:00", "17:00"),
            ("00:00", "00:00"),
        ]
        .into_iter()
        .enumerate()
        {
            people.push(
                store
                    .create_employee(&NewEmployee {
                        tenant: Some(tenant.to_owned()),
                        supplier: None,
                        name: format!("Сотрудник {tenant} {k}"),
                        position: String::new(),
                        phones: vec![PhoneNumber::parse(&format!(
                            "+7913{}{k:06}",
                            if tenant == "etalon" { 1 } else { 2 }
                        ))?],
                        work_types: work_types.iter().map(|w| (*w).to_owned()).collect(),
                        shifts: Shift::every_day(hours_from, hours_to)?,
                        absences: vec![],
                    })
                    .await?,
            );
        }
        for g in 0..groups {
            store
                .create_house_group(tenant, &format!("g{g}"), &format!("Участок {g}"))
                .await?;
            for wt in work_types {
                store
                    .set_responsibility(&Responsibility {
                        tenant: tenant.to_owned(),
                        house_group: format!("g{g}"),
                        work_type: wt.to_owned(),
                        levels: [
                            people.get(..2).map(<[_]>::to_vec).unwrap_or_default(),
                            people.get(2..3).map(<[_]>::to_vec).unwrap_or_default(),
                            people.get(3..4).map(<[_]>::to_vec).unwrap_or_default(),
                        ],
                        responsible: people.get(2).copied(),
                        manager: people.get(3).copied(),
                        head: people.get(3).copied(),
                    })
                    .await?;
            }
        }
    }

    let etalon = store.tenant("etalon").await?.context("tenant etalon")?;
    let uyut = store.tenant("uyut").await?.context("tenant uyut")?;
    if (etalon.id.0, uyut.id.0) != (1, 2) {
        bail!("the benchmark needs an empty database");
    }
    let started = Instant::now();
    // Houses: the first half etalon's (tenant 1), the rest uyut's (tenant 2); the
    // tenants and groups were created first, so their ids are known: tenant 1 has
    // groups 1..=10 and tenant 2 has 11..=20.
    loader
        .insert(
            "houses",
            "id, tenant_id, city_id, house_group_id, address, address_key, floors, lifts",
            o.houses,
            1000,
            |i| {
                let tenant = if i < o.houses / 2 { 1 } else { 2 };
                let group = (tenant - 1) * groups + i % groups + 1;
                let address = format!("ул. Бенчмарковая, д. {}", i + 1);
                format!(
                    "({}, {tenant}, 1, {group}, '{address}', '{}', 9, 1)",
                    i + 1,
                    address_key(&address)
                )
            },
        )
        .await?;
    let tenant_of = |house: u64| if house <= o.houses / 2 { 1 } else { 2 };
    let mut rng = Lcg(42);
    let seen = ts(now - chrono::Duration::days(1));
    loader
        .insert(
            "contacts",
            "phone, tenant_id, house_id, apartment, source, created_at, last_seen_at",
            o.contacts,
            1000,
            |i| {
                let house = rng.below(o.houses) + 1;
                let apartment = rng.below(200) + 1;
                format!(
                    "('{}', {}, {house}, '{apartment}', 'imported', '{seen}', '{seen}')",
                    contact_phone(i),
                    tenant_of(house)
                )
            },
        )
        .await?;
    let mut rng = Lcg(7);
    let reason_count = reasons.len() as u64;
    loader
        .insert(
            "tickets",
            "tenant_id, number, house_id, apartment, reason_id, category, status, description, \
             deadline_at, source, labels, version, created_at, updated_at",
            o.tickets,
            1000,
            |i| {
                let house = rng.below(o.houses) + 1;
                let tenant = tenant_of(house);
                let reason = rng.below(reason_count);
                let category = ["emergency", "planned", "paid"][(reason % 3) as usize];
                let status = match rng.below(20) {
                    0 => "registered",
                    1 => "in_progress",
                    _ => "closed",
                };
                let created = now - chrono::Duration::minutes(rng.below(365 * 24 * 60) as i64);
                format!(
                    "({tenant}, 'b{i}', {house}, '{}', {}, '{category}', '{status}', '', '{}', 'phone', '[]', 1, '{}', '{}')",
                    rng.below(200) + 1,
                    reasons.get(reason as usize).map_or(1, |r| r.0),
                    ts(created + chrono::Duration::hours(4)),
                    ts(created),
                    ts(created),
                )
            },
        )
        .await?;
    let mut rng = Lcg(99);
    let until = (now + chrono::Duration::days(90))
        .format("%Y-%m-%d")
        .to_string();
    let from = (now - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    loader
        .insert(
            "debtors",
            "tenant_id, house_id, apartment, amount_kopecks, valid_from, valid_until, imported_at",
            20_000.min(o.houses * 200),
            1000,
            |i| {
                let house = i % o.houses + 1;
                let apartment = i / o.houses + 1 + rng.below(2) * 1000;
                format!(
                    "({}, {house}, '{apartment}', {}, '{from}', '{until}', '{seen}')",
                    tenant_of(house),
                    rng.below(10_000_000) + 100
                )
            },
        )
        .await?;
    loader
        .insert(
            "outages",
            "id, tenant_id, kind, text, starts_at, ends_at, created_at",
            200,
            200,
            |i| {
                format!(
                    "({}, {}, 'hot_water', 'Нет горячей воды', '{}', '{}', '{seen}')",
                    i + 1,
                    1 + i % 2,
                    ts(now - chrono::Duration::hours(1)),
                    ts(now + chrono::Duration::days(3))
                )
            },
        )
        .await?;
    loader
        .insert("outage_houses", "outage_id, house_id", 200 * 5, 1000, |i| {
            format!("({}, {})", i / 5 + 1, (i * 17) % o.houses + 1)
        })
        .await?;
    // Registration numbers continue after the loaded ones.
    loader
        .run(vec![
            "INSERT INTO ticket_counters (tenant_id, last_number) VALUES (1, 1000), (2, 1000)"
                .to_owned(),
        ])
        .await?;
    if o.database.starts_with("postgres") {
        // Ids were given explicitly; move the identity sequences past them.
        loader
            .run(vec![
                "SELECT setval(pg_get_serial_sequence('houses', 'id'), (SELECT MAX(id) FROM houses))".to_owned(),
                "SELECT setval(pg_get_serial_sequence('outages', 'id'), (SELECT MAX(id) FROM outages))".to_owned(),
            ])
            .await?;
    }
    println!(
        "  loaded {} houses, {} contacts, {} tickets, 20000 debtors, 200 outages in {:.1} s",
        o.houses,
        o.contacts,
        o.tickets,
        started.elapsed().as_secs_f64()
    );
    Ok(World {
        houses: (1..=o.houses as i64).map(HouseId).collect(),
        reasons,
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// p50, p99 and max of `latencies` (sorted here), as text.
fn summary(latencies: &mut [Duration]) -> String {
    latencies.sort_unstable();
    format!(
        "p50 {}, p99 {}, max {}",
        micros(percentile(latencies, 0.50)),
        micros(percentile(latencies, 0.99)),
        micros(latencies.last().copied().unwrap_or_default())
    )
}

/// The screen-pop's goal: p99 under 2 ms.
const GOAL_P99: Duration = Duration::from_millis(2);

/// The phones the lookups ask for: mostly known residents, every 20th unknown, every
/// 50th a staff member's (whose lookup also finds the employee).
fn lookup_phones(o: &Options) -> anyhow::Result<Vec<PhoneNumber>> {
    let mut rng = Lcg(2026);
    let mut phones = Vec::with_capacity(o.lookups as usize);
    for i in 0..o.lookups {
        let raw = if i % 20 == 0 {
            format!("+7999{:07}", rng.below(10_000_000))
        } else if i % 50 == 1 {
            format!("+7913{}{:06}", 1 + rng.below(2), rng.below(4))
        } else {
            contact_phone(rng.below(o.contacts.max(1)))
        };
        phones.push(PhoneNumber::parse(&raw)?);
    }
    Ok(phones)
}

fn new_ticket(o: &Options, world: &World, i: u64) -> NewTicket {
    NewTicket {
        tenant: if i % 2 == 0 { "etalon" } else { "uyut" }.to_owned(),
        house_id: world
            .houses
            .get(((i * 7919) % (o.houses / 2) + if i % 2 == 0 { 0 } else { o.houses / 2 }) as usize)
            .copied()
            .unwrap_or(HouseId(1)),
        apartment: Some(format!("{}", i % 200 + 1)),
        reason_id: world
            .reasons
            .get((i % world.reasons.len() as u64) as usize)
            .copied()
            .unwrap_or(ReasonId(1)),
        description: "бенчмарк".to_owned(),
        source: Channel::Phone,
        labels: vec![],
        caller_phone: None,
        call_id: None,
        actor: "bench".to_owned(),
    }
}

/// Registrations per second: `creates` by one writer, then by eight at once.
async fn registrations(
    store: &Store,
    o: &Options,
    world: &World,
    offset: u64,
    now: DateTime<Utc>,
) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    for i in 0..o.creates {
        let registered = store
            .create_ticket(&new_ticket(o, world, offset + i), now)
            .await?;
        if registered.chain.executors.is_empty() {
            bail!("ticket {} got no executor", registered.ticket.number);
        }
    }
    let sequential = o.creates as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..8u64 {
        let store = store.clone();
        let tickets: Vec<NewTicket> = (0..o.creates / 8)
            .map(|i| new_ticket(o, world, offset + o.creates + i * 8 + worker))
            .collect();
        tasks.push(tokio::spawn(async move {
            for t in tickets {
                store.create_ticket(&t, now).await?;
            }
            Ok::<_, dispatchline::store::StoreError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let concurrent = (o.creates / 8 * 8) as f64 / started.elapsed().as_secs_f64();
    Ok((sequential, concurrent))
}

const API_CONFIG: &str = r#"
[[operator]]
extension = "1001"
password = "bench-password"
"#;

/// `GET /api/v1/caller` over loopback HTTP: the screen-pop as the console gets it,
/// with its access-log write.
async fn caller_over_http(store: &Store, phones: &[PhoneNumber]) -> anyhow::Result<Vec<Duration>> {
    use dispatchline::console::api::{ApiState, router};
    let config =
        dispatchline::config::Config::parse(API_CONFIG, std::path::Path::new("bench.toml"))
            .map_err(|e| anyhow::anyhow!("bench config: {e}"))?;
    store
        .seed_users(&config.seed_users(), &config.sip.realm)
        .await?;
    let state = ApiState::new(
        store.clone(),
        dispatchline::events::EventBus::default(),
        std::sync::Arc::new(config),
    );
    let app = axum::Router::new().nest("/api/v1", router(state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/api/v1", listener.local_addr()?);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let client = reqwest::Client::new();
    let login: serde_json::Value = client
        .post(format!("{base}/auth/token"))
        .json(&serde_json::json!({"extension": "1001", "password": "bench-password"}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["token"].as_str().context("no token")?.to_owned();
    let mut latencies = Vec::with_capacity(phones.len());
    for (i, phone) in phones.iter().enumerate() {
        let url = format!(
            "{base}/caller?phone=%2B{}&city=ekb",
            phone.as_str().trim_start_matches('+')
        );
        let t = Instant::now();
        let response = client.get(&url).bearer_auth(&token).send().await?;
        let status = response.status();
        let _ = response.bytes().await?;
        if i >= 200 {
            latencies.push(t.elapsed());
        }
        if !status.is_success() {
            bail!("GET /caller answered {status}");
        }
    }
    server.abort();
    Ok(latencies)
}

/// Imports a contacts file of `rows` new residents while the call journal writes a
/// row every 2 ms; returns (import time, journal writes, longest journal wait).
async fn import_under_journal(
    store: &Store,
    rows: u64,
    houses: u64,
    now: DateTime<Utc>,
) -> anyhow::Result<(Duration, usize, Duration)> {
    let mut file = String::with_capacity(rows as usize * 48);
    for i in 0..rows {
        let house = i % (houses / 2) + 1;
        file.push_str(&format!(
            "+7914{i:07};ул. Бенчмарковая, д. {house};{}\n",
            i % 200 + 1
        ));
    }
    let importer = {
        let store = store.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let report = store
                .import_contacts("etalon", file.as_bytes(), false, now)
                .await?;
            Ok::<_, dispatchline::store::StoreError>((report, started.elapsed()))
        })
    };
    let mut waits = Vec::new();
    let mut n = 0u64;
    while !importer.is_finished() {
        let record = dispatchline::store::CallRecord::offered(
            format!("bench-journal-{n}"),
            dispatchline::store::CallDirection::Inbound,
            "+79120000001",
            "+73432000001",
            now,
        );
        let t = Instant::now();
        store.upsert_call(&record).await?;
        waits.push(t.elapsed());
        n += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (report, took) = importer.await??;
    if report.imported as u64 != rows {
        bail!("imported {} of {rows} rows", report.imported);
    }
    Ok((
        took,
        waits.len(),
        waits.iter().max().copied().unwrap_or_default(),
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = options()?;
    let store = Store::connect(&o.database).await?;
    store.migrate().await?;
    println!("store benchmark on {} ({})", store.dialect(), o.database);
    let now = Utc
        .with_ymd_and_hms(2026, 11, 17, 7, 0, 0)
        .single()
        .context("time")?;
    let world = load(&store, &o, now).await?;

    // Caller lookup: known phones (most), staff and unknown ones, in random order.
    let phones = lookup_phones(&o)?;
    for phone in phones.iter().take(1000) {
        store
            .caller_lookup_at(phone, None, Some("ekb"), now)
            .await?;
    }
    let mut latencies = Vec::with_capacity(phones.len());
    let (mut found, mut with_tickets, mut staff) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    for phone in &phones {
        let t = Instant::now();
        let info = store
            .caller_lookup_at(phone, None, Some("ekb"), now)
            .await?;
        latencies.push(t.elapsed());
        found += u64::from(info.address.is_some());
        with_tickets += u64::from(!info.open_tickets.is_empty());
        staff += u64::from(info.staff.is_some());
    }
    let total = started.elapsed();
    let line = summary(&mut latencies);
    let p99 = percentile(&latencies, 0.99);
    println!(
        "  caller lookup: {} lookups ({found} known, {with_tickets} with open tickets, {staff} staff): {line}, {:.0}/s",
        phones.len(),
        phones.len() as f64 / total.as_secs_f64()
    );
    println!(
        "  caller lookup p99 goal (< 2 ms{}): {}",
        if store.dialect() == "sqlite" {
            ""
        } else {
            ", set for SQLite"
        },
        if p99 < GOAL_P99 { "met" } else { "NOT met" }
    );

    // The same lookups while two writers register tickets all the time.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..2u64 {
        let (store, stop) = (store.clone(), stop.clone());
        let tickets: Vec<NewTicket> = (0..o.creates)
            .map(|i| new_ticket(&o, &world, 1_000_000 + i * 2 + w))
            .collect();
        writers.push(tokio::spawn(async move {
            let mut made = 0u64;
            for t in tickets.iter().cycle() {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                store.create_ticket(t, now).await?;
                made += 1;
            }
            Ok::<_, dispatchline::store::StoreError>(made)
        }));
    }
    let mut latencies = Vec::with_capacity(phones.len());
    let started = Instant::now();
    for phone in &phones {
        let t = Instant::now();
        store
            .caller_lookup_at(phone, None, Some("ekb"), now)
            .await?;
        latencies.push(t.elapsed());
    }
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut made = 0;
    for w in writers {
        made += w.await??;
    }
    let line = summary(&mut latencies);
    println!(
        "  caller lookup while 2 writers register tickets ({:.0} tickets/s meanwhile): {line}{}",
        made as f64 / took.as_secs_f64(),
        if percentile(&latencies, 0.99) < GOAL_P99 {
            " (goal met)"
        } else {
            " (goal NOT met)"
        }
    );

    let http_phones: Vec<PhoneNumber> = phones.iter().take(5000).cloned().collect();
    let mut latencies = caller_over_http(&store, &http_phones).await?;
    println!(
        "  GET /api/v1/caller over loopback HTTP, access log included ({} requests): {}",
        latencies.len(),
        summary(&mut latencies)
    );

    // Ticket registration with assignment, one writer, then eight at once.
    let (sequential, concurrent) = registrations(&store, &o, &world, 0, now).await?;
    println!(
        "  ticket registration with assignment: {sequential:.0}/s (1 writer), {concurrent:.0}/s (8 concurrent)"
    );
    if store.dialect() == "sqlite" {
        let sep = if o.database.contains('?') { '&' } else { '?' };
        let normal = Store::connect(&format!("{}{sep}synchronous=normal", o.database)).await?;
        let (n_seq, n_conc) = registrations(&normal, &o, &world, 10_000_000, now).await?;
        normal.close().await;
        println!(
            "  ... with synchronous=NORMAL instead of FULL: {n_seq:.0}/s (1 writer), {n_conc:.0}/s (8 concurrent): FULL's cost {:+.0} % (1 writer), {:+.0} % (8 concurrent)",
            (1.0 - sequential / n_seq) * 100.0,
            (1.0 - concurrent / n_conc) * 100.0
        );
    }

    if o.import > 0 {
        let (took, writes, longest) = import_under_journal(&store, o.import, o.houses, now).await?;
        println!(
            "  contacts import of {} rows: {:.1} s; meanwhile {writes} journal writes, the longest waited {} ms (busy timeout 10 s)",
            o.import,
            took.as_secs_f64(),
            longest.as_millis()
        );
    }
    store.close().await;
    Ok(())
}
