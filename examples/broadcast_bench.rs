//! Outage broadcast benchmark: a real engine on loopback tells 2,000 residents of
//! 20 houses about an outage by phone, through its trunk to SIPp playing the
//! residents (each listens two seconds and hangs up), while a second SIPp calls a
//! company's number at 20 calls a second as residents do. Prints the broadcast's
//! calls placed per second against the configured `[dialer] broadcast_rate`
//! (overall and the busiest second), the inbound calls SIPp completed and failed
//! during the broadcast, and the engine's CPU.
//!
//! ```text
//! cargo run --release --example broadcast_bench -- --contacts 2000 --rate 20 --inbound 20
//! ```
//!
//! See `scripts/bench-broadcast`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use dispatchline::config::Config;
use dispatchline::phone::PhoneNumber;
use dispatchline::store::notices::NewOutage;
use dispatchline::store::{HouseId, Store};

struct Options {
    contacts: u64,
    rate: f64,
    inbound: u64,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        contacts: 2000,
        rate: 20.0,
        inbound: 20,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--contacts" => o.contacts = value.parse().context("--contacts")?,
            "--rate" => o.rate = value.parse().context("--rate")?,
            "--inbound" => o.inbound = value.parse().context("--inbound")?,
            other => bail!("unknown option {other}"),
        }
    }
    if o.contacts == 0 || !(0.1..=200.0).contains(&o.rate) {
        bail!("--contacts must be positive and --rate between 0.1 and 200");
    }
    Ok(o)
}

/// User + system CPU time of this process, from /proc (Linux).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn phone(text: &str) -> anyhow::Result<PhoneNumber> {
    PhoneNumber::parse(text).map_err(|e| anyhow::anyhow!("{text}: {e}"))
}

fn free_port() -> anyhow::Result<u16> {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
}

/// A city, a company, 20 houses and `contacts` residents spread over them.
async fn seed(store: &Store, contacts: u64) -> anyhow::Result<Vec<HouseId>> {
    store
        .create_city("ekb", "Екатеринбург", "Asia/Yekaterinburg")
        .await?;
    store.create_tenant("etalon", "УК «Эталон»", "ekb").await?;
    let mut houses = Vec::new();
    for h in 0..20 {
        houses.push(
            store
                .create_house("etalon", None, &format!("ул. Ленина, д. {}", h + 1), 9, 4)
                .await?,
        );
    }
    let now = Utc::now();
    let started = Instant::now();
    for i in 0..contacts {
        let house = houses[(i % 20) as usize];
        store
            .learn_contact(
                &phone(&format!("+7915{i:07}"))?,
                "etalon",
                house,
                Some(&(i / 20 + 1).to_string()),
                now,
            )
            .await?;
        if (i + 1) % 500 == 0 {
            let rate = (i + 1) as f64 / started.elapsed().as_secs_f64();
            eprintln!(
                "  seeding contacts: {} of {contacts}, about {:.0} s left",
                i + 1,
                (contacts - i - 1) as f64 / rate
            );
        }
    }
    Ok(houses)
}

fn sipp(dir: &Path, args: &[String]) -> anyhow::Result<std::process::Child> {
    std::process::Command::new("sipp")
        .args(args)
        .args(["-nostdin", "-max_socket", "4000", "-trace_err"])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("sipp (package sip-tester) must be installed")
}

/// SIPp's last successful and failed call counts from its statistics file.
fn sipp_counts(file: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(file).ok()?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.split(';').collect();
    let last: Vec<&str> = lines.rfind(|l| !l.trim().is_empty())?.split(';').collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .and_then(|i| last.get(i))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some((column("SuccessfulCall(C)")?, column("FailedCall(C)")?))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = options()?;
    let dir = std::env::temp_dir().join(format!("dl-broadcast-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        root.join("tests/data/sipp/g711a.pcap"),
        dir.join("g711a.pcap"),
    )?;
    for digit in ["2", "4", "5"] {
        let name = format!("dtmf_2833_{digit}.pcap");
        std::fs::copy(root.join("tests/data/sipp").join(&name), dir.join(&name))?;
    }
    let residents_port = free_port()?;
    let residents = sipp(
        &dir,
        &[
            "-sf".into(),
            root.join("tests/sipp/follow_up_people.xml")
                .display()
                .to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            residents_port.to_string(),
            "-mp".into(),
            free_port()?.to_string(),
            "-d".into(),
            "2000".into(),
        ],
    )?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let database = format!("sqlite://{}/bench.db?synchronous=normal", dir.display());
    let text = format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
         [database]\nurl = \"{database}\"\ndata_dir = \"{dir}\"\n\
         [media]\nrecord_calls = false\nprompts_dir = \"{prompts}\"\n\
         [dialer]\nring_timeout_s = 10\nbroadcast_rate = {rate}\ninbound_reserve = 40\n\
         [follow_ups]\nbroadcast_attempts = 1\n\
         [[trunk]]\nname = \"provider\"\nproxy = \"127.0.0.1:{residents_port}\"\noptions_interval_s = 0\nchannels = 400\n\
         [[number]]\nnumber = \"+73432000001\"\nkind = \"tenant\"\ntenant = \"etalon\"\ncity = \"ekb\"\ntrunk = \"provider\"\n\
         greeting = \"ru/greeting-etalon.wav\"\n",
        dir = dir.display(),
        prompts = root.join("ivr-prompts").display(),
        rate = o.rate,
    );
    let config =
        Config::parse(&text, Path::new("bench.toml")).map_err(|e| anyhow::anyhow!("{e}"))?;
    let seeding = Store::connect(&database).await?;
    seeding.migrate().await?;
    let houses = seed(&seeding, o.contacts).await?;
    let now = Utc::now();
    let outage = seeding
        .create_outage(
            &NewOutage {
                tenant: "etalon".into(),
                kind: "hot_water".into(),
                text: "Нет горячей воды".into(),
                starts_at: now,
                ends_at: now + chrono::Duration::hours(6),
                house_ids: houses,
            },
            now,
        )
        .await?;
    seeding.close().await;
    let engine = dispatchline::server::Engine::start(config.clone()).await?;
    println!(
        "== outage broadcast to {} contacts at broadcast_rate = {}/s, residents calling in at {}/s",
        o.contacts, o.rate, o.inbound
    );

    let expected = Duration::from_secs_f64(o.contacts as f64 / o.rate);
    let inbound_calls = ((expected.as_secs_f64() + 5.0) * o.inbound as f64) as u64;
    let inbound = sipp(
        &dir,
        &[
            "-sf".into(),
            root.join("tests/sipp/resident_calls.xml")
                .display()
                .to_string(),
            engine.sip_addr.to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            free_port()?.to_string(),
            "-mp".into(),
            free_port()?.to_string(),
            "-s".into(),
            "+73432000001".into(),
            "-key".into(),
            "caller".into(),
            "+79120000001".into(),
            "-d".into(),
            "3000".into(),
            "-r".into(),
            o.inbound.to_string(),
            "-m".into(),
            inbound_calls.to_string(),
            "-trace_stat".into(),
            "-stf".into(),
            "inbound.csv".into(),
            "-fd".into(),
            "1".into(),
        ],
    )?;

    let cpu0 = cpu_seconds();
    let wall0 = Instant::now();
    dispatchline::dialer::broadcast::start(
        &engine.store,
        &engine.events,
        &config.follow_ups,
        outage.id,
        true,
        Utc::now(),
    )
    .await?;
    let deadline = Instant::now() + expected * 3 + Duration::from_secs(60);
    let mut last_report = Instant::now();
    loop {
        let progress = engine.store.broadcast_progress(outage.id).await?;
        if progress.waiting == 0 || Instant::now() > deadline {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            last_report = Instant::now();
            let rate = progress.called as f64 / wall0.elapsed().as_secs_f64();
            eprintln!(
                "  {} of {} called, {} answered; about {:.0} s left",
                progress.called,
                progress.total,
                progress.answered,
                (progress.total - progress.called) as f64 / rate.max(0.1)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let wall = wall0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let mut inbound = inbound;
    let _ = tokio::task::spawn_blocking(move || inbound.wait()).await;

    let progress = engine.store.broadcast_progress(outage.id).await?;
    let mut placed: Vec<DateTime<Utc>> = engine
        .events
        .replay(0)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?
        .into_iter()
        .filter(|e| e.kind == "dial.attempt" && e.payload["purpose"] == "broadcast")
        .map(|e| e.ts)
        .collect();
    placed.sort();
    let span = match (placed.first(), placed.last()) {
        (Some(a), Some(b)) => (*b - *a).num_milliseconds() as f64 / 1000.0,
        _ => 0.0,
    };
    let busiest = (0..placed.len())
        .map(|i| {
            placed[i..]
                .iter()
                .take_while(|t| **t < placed[i] + chrono::Duration::seconds(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    println!(
        "broadcast:        {} of {} numbers called, {} answered, {} busy, {} failed",
        progress.called, progress.total, progress.answered, progress.busy, progress.failed
    );
    println!(
        "calls placed:     {:.2}/s over {span:.1} s (configured {}/s); busiest second {busiest}",
        (placed.len().saturating_sub(1)) as f64 / span.max(0.001),
        o.rate
    );
    match sipp_counts(&dir.join("inbound.csv")) {
        Some((ok, failed)) => println!(
            "inbound at {}/s:   {ok} calls completed, {failed} failed",
            o.inbound
        ),
        None => println!("inbound:          SIPp's statistics file could not be read"),
    }
    println!(
        "engine CPU:       {:.0}% of one core over {wall:.0} s",
        cpu / wall * 100.0
    );
    engine.shutdown(Duration::from_secs(5)).await;
    let mut residents = residents;
    let _ = residents.kill();
    let _ = residents.wait();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
