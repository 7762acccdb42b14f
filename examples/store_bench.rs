//! Ticket store benchmark: ticket registration (with executor assignment) per second,
//! and the screen-pop caller lookup latency over a store of a million contacts and a
//! hundred thousand tickets.
//!
//! ```text
//! cargo run --release --example store_bench -- --database sqlite:///tmp/bench.db
//! cargo run --release --example store_bench -- --database postgres://postgres@127.0.0.1/bench
//! ```
//!
//! Options: `--contacts N` (1000000), `--tickets N` (100000), `--houses N` (20000),
//! `--lookups N` (20000), `--creates N` (2000). The database should be empty; it is
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
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        database: String::new(),
        contacts: 1_000_000,
        tickets: 100_000,
        houses: 20_000,
        lookups: 20_000,
        creates: 2_000,
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
    let mut rng = Lcg(2026);
    let mut phones = Vec::with_capacity(o.lookups as usize);
    for i in 0..o.lookups {
        let raw = match i % 20 {
            0 => format!("+7999{:07}", rng.below(10_000_000)),
            _ => contact_phone(rng.below(o.contacts.max(1))),
        };
        phones.push(PhoneNumber::parse(&raw)?);
    }
    for phone in phones.iter().take(1000) {
        store
            .caller_lookup_at(phone, None, Some("ekb"), now)
            .await?;
    }
    let mut latencies = Vec::with_capacity(phones.len());
    let mut found = 0u64;
    let mut with_tickets = 0u64;
    let started = Instant::now();
    for phone in &phones {
        let t = Instant::now();
        let info = store
            .caller_lookup_at(phone, None, Some("ekb"), now)
            .await?;
        latencies.push(t.elapsed());
        found += u64::from(info.address.is_some());
        with_tickets += u64::from(!info.open_tickets.is_empty());
    }
    let total = started.elapsed();
    latencies.sort_unstable();
    println!(
        "  caller lookup: {} lookups ({found} known, {with_tickets} with open tickets): p50 {}, p99 {}, max {}, {:.0}/s",
        phones.len(),
        micros(percentile(&latencies, 0.50)),
        micros(percentile(&latencies, 0.99)),
        micros(latencies.last().copied().unwrap_or_default()),
        phones.len() as f64 / total.as_secs_f64()
    );

    // Ticket registration with assignment, one writer, then eight at once.
    let new_ticket = |i: u64| NewTicket {
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
    };
    let started = Instant::now();
    for i in 0..o.creates {
        let registered = store.create_ticket(&new_ticket(i), now).await?;
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
            .map(|i| new_ticket(i * 8 + worker))
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
    println!(
        "  ticket registration with assignment: {sequential:.0}/s (1 writer), {concurrent:.0}/s (8 concurrent)"
    );
    store.close().await;
    Ok(())
}
