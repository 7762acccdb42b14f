//! Hand-off chain benchmark.
//!
//! `--mode virtual` (default): 10,000 chains active at once on the real store, in
//! virtual time. Tickets are registered, their chains started a few milliseconds
//! of virtual time apart (all running within the first 10 virtual minutes), and the
//! call layer is simulated: every call rings out after 20 s except the manager's,
//! who accepts. The clock jumps from deadline to deadline; what is measured is the
//! real work: how late, in real time, each chain step's call is ordered after the
//! moment it became due (the batch it was due in is written to the store first),
//! the store statements per step, and the CPU the process used.
//!
//! `--mode real`: 500 chains through a real engine on loopback, placing real SIP
//! calls to SIPp playing the chain's people (tests/sipp/chain_people.xml), in
//! real time: tickets registered at `--rate` per second, each chain running its
//! levels at second-scale timers until the manager presses 1. Lateness is the
//! engine's own (ordered after due, on the real clock).
//!
//! ```text
//! cargo run --release --example chain_bench -- --database sqlite:///tmp/chains.db
//! cargo run --release --example chain_bench -- --mode real --chains 500
//! ```
//!
//! Options: `--chains N` (10000 virtual, 500 real), `--minutes N` (virtual minutes
//! simulated, 25), `--rate N` (real: tickets per second, 25). See
//! `scripts/bench-chains`, which runs both on throwaway databases.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use dispatchline::config::{ChainSettings, Config};
use dispatchline::dialer::order::{ChainEvent, ChainReport, ToCalls};
use dispatchline::dialer::runner::{ChainRunner, RunnerSettings};
use dispatchline::events::EventBus;
use dispatchline::phone::PhoneNumber;
use dispatchline::store::assignment::Shift;
use dispatchline::store::directory::{NewEmployee, NewReason, Responsibility};
use dispatchline::store::tickets::{Channel, NewTicket};
use dispatchline::store::{
    AttemptOutcome, Category, EmployeeId, HouseId, ReasonId, Store, TicketId,
};
use tokio::sync::mpsc;

struct Options {
    mode: String,
    database: String,
    chains: u64,
    minutes: u64,
    rate: u64,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        mode: "virtual".into(),
        database: String::new(),
        chains: 0,
        minutes: 25,
        rate: 25,
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
            "--mode" => o.mode = value.clone(),
            "--database" => o.database = value.clone(),
            "--chains" => o.chains = number()?,
            "--minutes" => o.minutes = number()?.max(1),
            "--rate" => o.rate = number()?.max(1),
            other => bail!("unknown option {other}"),
        }
    }
    if o.chains == 0 {
        o.chains = if o.mode == "real" { 500 } else { 10_000 };
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

struct World {
    house: HouseId,
    reason: ReasonId,
    manager: EmployeeId,
}

/// One company with round-the-clock people on every level: the numbers are those
/// of tests/sipp/chain_people.xml.
async fn seed(store: &Store) -> anyhow::Result<World> {
    store
        .create_city("ekb", "Екатеринбург", "Asia/Yekaterinburg")
        .await?;
    store.create_work_type("plumbing", "Сантехника").await?;
    store.create_tenant("etalon", "УК «Эталон»", "ekb").await?;
    store
        .create_house_group("etalon", "center", "Центр")
        .await?;
    let house = store
        .create_house("etalon", Some("center"), "ул. Ленина, д. 5", 9, 1)
        .await?;
    let reason = store
        .create_reason(&NewReason {
            tenant: None,
            code: "flooding".into(),
            category: Category::Emergency,
            title: "Затопление сверху".into(),
            work_type: "plumbing".into(),
            // Long enough that no deadline alarm fires during the run.
            deadline_minutes: 24 * 60,
            operator_text: "Бригада выезжает".into(),
            keywords: String::new(),
        })
        .await?;
    let mut ids = Vec::new();
    for (name, number) in [
        ("Первый", "+79130000011"),
        ("Второй", "+79130000002"),
        ("Третий", "+79130000003"),
        ("Ответственный", "+79130000004"),
        ("Руководитель", "+79130000005"),
        ("Директор", "+79130000006"),
    ] {
        ids.push(
            store
                .create_employee(&NewEmployee {
                    tenant: Some("etalon".into()),
                    supplier: None,
                    name: name.into(),
                    position: String::new(),
                    phones: vec![phone(number)?],
                    work_types: vec!["plumbing".into()],
                    shifts: Shift::every_day("00:00", "00:00")?,
                    absences: vec![],
                })
                .await?,
        );
    }
    let id = |i: usize| ids.get(i).copied().context("seeded people");
    store
        .set_responsibility(&Responsibility {
            tenant: "etalon".into(),
            house_group: "center".into(),
            work_type: "plumbing".into(),
            levels: [vec![id(0)?], vec![id(1)?], vec![id(2)?]],
            responsible: Some(id(3)?),
            manager: Some(id(4)?),
            head: Some(id(5)?),
        })
        .await?;
    Ok(World {
        house,
        reason,
        manager: id(4)?,
    })
}

async fn register(store: &Store, w: &World, n: u64) -> anyhow::Result<Vec<TicketId>> {
    let mut tickets = Vec::with_capacity(n as usize);
    let started = Instant::now();
    for i in 0..n {
        let t = store
            .create_ticket(
                &NewTicket {
                    tenant: "etalon".into(),
                    house_id: w.house,
                    apartment: Some(((i % 200) + 1).to_string()),
                    reason_id: w.reason,
                    description: String::new(),
                    source: Channel::Phone,
                    labels: vec![],
                    caller_phone: None,
                    call_id: None,
                    actor: "bench".into(),
                },
                Utc::now(),
            )
            .await?;
        tickets.push(t.ticket.id);
        if (i + 1) % 1000 == 0 {
            let done = i + 1;
            let per = started.elapsed().as_secs_f64() / done as f64;
            eprintln!(
                "  registered {done}/{n} tickets, about {:.0} s left",
                per * (n - done) as f64
            );
        }
    }
    Ok(tickets)
}

fn policy_text() -> &'static str {
    "[[number]]\nnumber = \"100\"\nkind = \"forward\"\ntarget = \"sip:127.0.0.1:5080\"\n[chains]\nlevel_modes = [\"informer\"]\nescalation_mode = \"informer\"\n"
}

async fn virtual_run(o: &Options) -> anyhow::Result<()> {
    if o.database.is_empty() {
        bail!("--database URL is required");
    }
    let store = Store::connect(&o.database).await?;
    store.migrate().await?;
    println!(
        "== {} chains in virtual time on {} ({} virtual minutes)",
        o.chains,
        store.dialect(),
        o.minutes
    );
    let w = seed(&store).await?;
    let tickets = register(&store, &w, o.chains).await?;
    let config = Config::parse(policy_text(), std::path::Path::new("bench.toml"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let chains: ChainSettings = config.chains;
    let (tx, mut rx) = mpsc::unbounded_channel::<ToCalls>();
    let t0 = Instant::now();
    let mut runner = ChainRunner::new(
        store.clone(),
        EventBus::default(),
        RunnerSettings {
            node: "bench".into(),
            chains: Arc::new(chains),
            language: "ru".into(),
            lease: Duration::from_secs(3600),
            catch_up: Duration::from_secs(3600),
        },
        Arc::new(|_: &str| true),
        tx,
        t0,
        Utc::now(),
    );
    // Start times: all chains running within the first ten virtual minutes.
    let spread = Duration::from_secs(600).as_nanos() as u64 / o.chains.max(1);
    let mut starts: Vec<(Instant, TicketId)> = tickets
        .iter()
        .enumerate()
        .map(|(i, t)| (t0 + Duration::from_nanos(spread * i as u64), *t))
        .collect();
    starts.reverse();
    // Reports due from the simulated calls.
    let mut due: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut reports: HashMap<u64, ChainReport> = HashMap::new();
    let mut next_id = 0u64;
    let end = t0 + Duration::from_secs(o.minutes * 60);
    let cpu0 = cpu_seconds();
    let wall0 = Instant::now();
    let mut now = t0;
    let mut last_progress = Instant::now();
    let mut peak = 0usize;
    let mut schedule = |at: Instant,
                        report: ChainReport,
                        due: &mut BinaryHeap<Reverse<(Instant, u64)>>,
                        reports: &mut HashMap<u64, ChainReport>| {
        next_id += 1;
        reports.insert(next_id, report);
        due.push(Reverse((at, next_id)));
    };
    loop {
        // What the runner ordered: calls that ring out in 20 s, or the manager
        // answering in 5 s and pressing 1.
        while let Ok(m) = rx.try_recv() {
            match m {
                ToCalls::Place(order) => {
                    let a = order.attempt;
                    schedule(
                        now,
                        ChainReport {
                            attempt: a,
                            event: ChainEvent::Started {
                                call: format!("c{}-{}", a.chain, a.seq),
                                reach: order.reach,
                                operator: None,
                            },
                        },
                        &mut due,
                        &mut reports,
                    );
                    if order.person == w.manager
                        && order.stage == dispatchline::dialer::chain::Stage::Manager
                    {
                        schedule(
                            now + Duration::from_secs(5),
                            ChainReport {
                                attempt: a,
                                event: ChainEvent::AcceptPressed,
                            },
                            &mut due,
                            &mut reports,
                        );
                    } else {
                        schedule(
                            now + Duration::from_secs(20),
                            ChainReport {
                                attempt: a,
                                event: ChainEvent::Ended {
                                    outcome: AttemptOutcome::NoAnswer,
                                    sip_status: 487,
                                },
                            },
                            &mut due,
                            &mut reports,
                        );
                    }
                }
                ToCalls::Stop { attempt, .. } | ToCalls::Decided { attempt, .. } => {
                    schedule(
                        now,
                        ChainReport {
                            attempt,
                            event: ChainEvent::Ended {
                                outcome: AttemptOutcome::Answered,
                                sip_status: 200,
                            },
                        },
                        &mut due,
                        &mut reports,
                    );
                }
            }
        }
        let next_start = starts.last().map(|(at, _)| *at);
        let next_report = due.peek().map(|Reverse((at, _))| *at);
        let next = [runner.poll_timeout(), next_start, next_report]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else { break };
        if next > end {
            break;
        }
        now = next.max(now);
        if next_start.is_some_and(|at| at <= now) {
            if let Some((_, ticket)) = starts.pop() {
                runner.start(ticket, false, now).await?;
            }
        } else if next_report.is_some_and(|at| at <= now) {
            if let Some(Reverse((_, id))) = due.pop() {
                if let Some(report) = reports.remove(&id) {
                    runner.handle_report(report, now).await;
                }
            }
        } else {
            runner.handle_timeout(now).await;
        }
        peak = peak.max(runner.running());
        if last_progress.elapsed() > Duration::from_secs(5) {
            last_progress = Instant::now();
            let done = now.duration_since(t0).as_secs_f64();
            let total = end.duration_since(t0).as_secs_f64();
            let rate = done / wall0.elapsed().as_secs_f64();
            eprintln!(
                "  virtual {:.0}/{:.0} s, {} chains running, {} steps placed, about {:.0} s left",
                done,
                total,
                runner.running(),
                runner
                    .stats()
                    .placed
                    .load(std::sync::atomic::Ordering::Relaxed),
                (total - done) / rate.max(0.001)
            );
        }
    }
    let wall = wall0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let stats = runner.stats();
    let placed = stats.placed.load(std::sync::atomic::Ordering::Relaxed);
    let queries = stats.queries.load(std::sync::atomic::Ordering::Relaxed);
    let ms = |q: f64| {
        stats
            .lateness(q)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    println!("chains started:                 {}", o.chains);
    println!("chain steps placed:             {placed}");
    println!("chains running at once (peak):  {peak}");
    println!(
        "scheduler lateness of steps:    p50 {:.2} ms, p99 {:.2} ms  (goal: p99 < 100 ms)",
        ms(0.5),
        ms(0.99)
    );
    println!(
        "store statements per step:      {:.2}",
        queries as f64 / placed.max(1) as f64
    );
    println!(
        "real time {wall:.1} s for {} virtual minutes; CPU {:.0}% of one core",
        o.minutes,
        cpu / wall * 100.0
    );
    Ok(())
}

async fn real_run(o: &Options) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("dl-chain-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        root.join("tests/data/sipp/dtmf_2833_1.pcap"),
        dir.join("dtmf_2833_1.pcap"),
    )?;
    let free = || -> anyhow::Result<u16> {
        Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    };
    let sipp_port = free()?;
    let mut sipp = std::process::Command::new("sipp")
        .args([
            "-sf",
            &root
                .join("tests/sipp/chain_people.xml")
                .display()
                .to_string(),
            "-i",
            "127.0.0.1",
            "-p",
            &sipp_port.to_string(),
            "-mp",
            &free()?.to_string(),
            "-d",
            "1500",
            "-nostdin",
            "-max_socket",
            "4000",
            "-trace_err",
        ])
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("sipp (package sip-tester) must be installed")?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let database = if o.database.is_empty() {
        format!("sqlite://{}/bench.db?synchronous=normal", dir.display())
    } else {
        o.database.clone()
    };
    let text = format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n[database]\nurl = \"{database}\"\ndata_dir = \"{}\"\n[media]\nrecord_calls = false\nprompts_dir = \"{}\"\n\
         [dialer]\nattempts = 3\nattempt_interval_s = 2\nring_timeout_s = 2\nlevel_timeout_s = 30\nbroadcast_window_s = 20\n\
         [chains]\nlevel_modes = [\"informer\"]\nescalation_mode = \"informer\"\nescalation_step_s = 6\ninformer_repeats = 1\n\
         [[trunk]]\nname = \"provider\"\nproxy = \"127.0.0.1:{sipp_port}\"\noptions_interval_s = 0\n\
         [[number]]\nnumber = \"+73432000001\"\nkind = \"tenant\"\ntenant = \"etalon\"\ncity = \"ekb\"\ntrunk = \"provider\"\n",
        dir.display(),
        root.join("ivr-prompts").display()
    );
    let config = Config::parse(&text, std::path::Path::new("bench.toml"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let seeding = Store::connect(&database).await?;
    seeding.migrate().await?;
    let w = seed(&seeding).await?;
    seeding.close().await;
    let engine = dispatchline::server::Engine::start(config).await?;
    println!(
        "== {} chains through the engine to SIPp on {}, {} tickets a second",
        o.chains,
        engine.store.dialect(),
        o.rate
    );
    let cpu0 = cpu_seconds();
    let wall0 = Instant::now();
    let mut tickets = Vec::new();
    for i in 0..o.chains {
        let t = engine
            .store
            .create_ticket(
                &NewTicket {
                    tenant: "etalon".into(),
                    house_id: w.house,
                    apartment: Some(((i % 200) + 1).to_string()),
                    reason_id: w.reason,
                    description: String::new(),
                    source: Channel::Phone,
                    labels: vec![],
                    caller_phone: None,
                    call_id: None,
                    actor: "bench".into(),
                },
                Utc::now(),
            )
            .await?;
        tickets.push(t.ticket.id);
        tokio::time::sleep(Duration::from_secs_f64(1.0 / o.rate as f64)).await;
    }
    let stats = engine.chain_stats.clone();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let accepted = stats.accepted.load(std::sync::atomic::Ordering::Relaxed);
        let exhausted = stats.exhausted.load(std::sync::atomic::Ordering::Relaxed);
        if accepted + exhausted >= o.chains || Instant::now() > deadline {
            break;
        }
        eprintln!(
            "  {accepted} accepted, {exhausted} exhausted, {} running",
            stats.running.load(std::sync::atomic::Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let wall = wall0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let ms = |q: f64| {
        stats
            .lateness(q)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    let placed = stats.placed.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "chains accepted:                {} of {}",
        stats.accepted.load(std::sync::atomic::Ordering::Relaxed),
        o.chains
    );
    println!("chain calls placed:             {placed}");
    println!(
        "scheduler lateness of steps:    p50 {:.2} ms, p99 {:.2} ms",
        ms(0.5),
        ms(0.99)
    );
    println!(
        "store statements per step:      {:.2}",
        stats.queries.load(std::sync::atomic::Ordering::Relaxed) as f64 / placed.max(1) as f64
    );
    println!(
        "engine CPU:                     {:.0}% of one core over {wall:.0} s",
        cpu / wall * 100.0
    );
    engine.shutdown(Duration::from_secs(5)).await;
    let _ = sipp.kill();
    let _ = sipp.wait();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = options()?;
    match o.mode.as_str() {
        "virtual" => virtual_run(&o).await,
        "real" => real_run(&o).await,
        other => bail!("--mode is virtual or real, not {other}"),
    }
}
