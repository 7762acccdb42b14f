//! Cluster benchmark: engine nodes behind Kamailio (the shipped
//! `cluster/kamailio.cfg`) on one PostgreSQL, on this machine's loopback.
//!
//! 1. **One node** behind the proxy: SIPp uac (`tests/sipp/uac_through_proxy.xml`)
//!    → Kamailio → node A (a `forward`
//!    number) → SIPp uas. The call rate steps up (×`--factor`, `--seconds` of calls
//!    per step) until a step has a failed call, then one step halfway between;
//!    prints the highest rate with zero failed calls.
//! 2. **Two nodes** behind the same proxy configuration (a fresh Kamailio whose
//!    dispatcher list names A and B), the same steps.
//! 3. **A node dies**: the pair carries `--failover-rate` calls/s; node A is
//!    SIGKILLed five seconds in. From SIPp's per-call setup times (`-trace_rtt`):
//!    when the first call that had been sent to the dead node completed on the
//!    survivor (Kamailio passes an INVITE unanswered for 2 s to the next node),
//!    from when on every new call went straight to the survivor (the proxy's probe
//!    took A out), the longest setup of a call placed after the kill, and failed
//!    calls.
//!
//! Bounded: every SIPp run has a hard timeout, the ramp stops at `--max` or after
//! `--phase-budget` seconds, and the whole run stops by itself (a few minutes).
//! Every step prints as it finishes.
//!
//! ```text
//! scripts/bench-cluster [--seconds 6] [--start 100] [--factor 1.5] [--max 4000]
//!                       [--failover-rate 50] [--phase-budget 120]
//! ```
//!
//! Needs `kamailio`, `sipp`, a PostgreSQL where the user may CREATE DATABASE
//! (`DISPATCHLINE_TEST_PG`, default `postgres://postgres@127.0.0.1:5432/postgres`;
//! a scratch database is created and dropped) and the release binary
//! (`DISPATCHLINE_BIN`, default `target/release/dispatchline`).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

struct Args {
    seconds: u32,
    start: u32,
    factor: f64,
    max: u32,
    failover_rate: u32,
    phase_budget: Duration,
}

fn args() -> Result<Args> {
    let mut a = Args {
        seconds: 6,
        start: 100,
        factor: 1.5,
        max: 4000,
        failover_rate: 50,
        phase_budget: Duration::from_secs(120),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().context("flag needs a value")?;
        match flag.as_str() {
            "--seconds" => a.seconds = value.parse::<u32>()?.clamp(1, 60),
            "--start" => a.start = value.parse::<u32>()?.max(1),
            "--factor" => a.factor = value.parse::<f64>()?.clamp(1.05, 4.0),
            "--max" => a.max = value.parse()?,
            "--failover-rate" => a.failover_rate = value.parse::<u32>()?.clamp(1, 2000),
            "--phase-budget" => {
                a.phase_budget = Duration::from_secs(value.parse::<u64>()?.clamp(10, 1800))
            }
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

fn free_port() -> Result<u16> {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
}

/// A child process SIGKILLed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Kamailio and the workers it forks, stopped together (process group) when dropped.
struct Edge {
    port: u16,
    child: Child,
}

impl Drop for Edge {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, killpg};
        use nix::unistd::Pid;
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

struct Node {
    sip: u16,
    process: Killed,
}

fn start_node(bin: &Path, dir: &Path, name: &str, database: &str, callee: u16) -> Result<Node> {
    let (sip, http) = (free_port()?, free_port()?);
    let data = dir.join(name);
    std::fs::create_dir_all(&data)?;
    let config = data.join("dispatchline.toml");
    std::fs::write(
        &config,
        format!(
            "[sip]\nlisten = \"127.0.0.1:{sip}\"\nmax_call_rate = 100000\n\n\
             [http]\nlisten = \"127.0.0.1:{http}\"\n\n\
             [database]\nurl = \"{database}\"\ndata_dir = \"{data}\"\n\n\
             [media]\nrecord_calls = false\nprompts_dir = \"{prompts}\"\n\n\
             [[trunk]]\nname = \"edge\"\nproxy = \"127.0.0.1:5999\"\ninbound_from = [\"127.0.0.1\"]\noptions_interval_s = 0\n\n\
             [[number]]\nnumber = \"100\"\nkind = \"forward\"\ntarget = \"sip:127.0.0.1:{callee}\"\n",
            data = data.display(),
            prompts = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("ivr-prompts")
                .display(),
        ),
    )?;
    let log = std::fs::File::create(data.join("engine.log"))?;
    let child = Command::new(bin)
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--node-id", name])
        .env("DISPATCHLINE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let process = Killed(child);
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", http)).is_ok() {
            return Ok(Node { sip, process });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "node {name} did not start (see {}/engine.log)",
        data.display()
    )
}

fn start_edge(dir: &Path, label: &str, nodes: &[&Node]) -> Result<Edge> {
    let port = free_port()?;
    let list = dir.join(format!("dispatcher-{label}.list"));
    let lines: String = nodes
        .iter()
        .map(|n| format!("1 sip:127.0.0.1:{} 0 0\n", n.sip))
        .collect();
    std::fs::write(&list, lines)?;
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster/kamailio.cfg");
    let child = Command::new("kamailio")
        .args(["-DD", "-E", "-f"])
        .arg(&cfg)
        .args(["-A", &format!("LISTEN=udp:127.0.0.1:{port}")])
        .args(["-A", &format!("DISPATCHER_LIST=\"{}\"", list.display())])
        // UDP receive buffers up to 4 MB (the default stops probing at 256 KiB and
        // the kernel drops bursts at the proxy's socket, which measures the proxy).
        .args(["-b", "4194304"])
        .current_dir(dir)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("kamailio (Debian package kamailio) must be installed")?;
    let edge = Edge { port, child };
    // The nodes answer the proxy's first probes.
    std::thread::sleep(Duration::from_secs(3));
    Ok(edge)
}

/// One SIPp uac run through the proxy.
#[derive(Debug, Default)]
struct Run {
    successful: u64,
    failed: u64,
    /// (completed at, setup time) of each call, in ms from SIPp's start.
    setups: Vec<(f64, f64)>,
}

fn sipp_uac(dir: &Path, edge: u16, rate: u32, calls: u32, rtt: bool) -> Result<(Child, Instant)> {
    let budget = u64::from(calls / rate.max(1)) * 3 + 30;
    let mut cmd = Command::new("sipp");
    // SIPp's built-in uac, except that a 180 reordered behind the 200 by the
    // proxy's workers is discarded rather than counted as a failed call.
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/uac_through_proxy.xml");
    cmd.arg("-sf")
        .arg(&scenario)
        .args([&format!("127.0.0.1:{edge}"), "-s", "100"])
        .args(["-i", "127.0.0.1", "-p", &free_port()?.to_string()])
        .args(["-r", &rate.to_string(), "-m", &calls.to_string()])
        .args(["-l", &(rate * 4).to_string(), "-d", "0", "-nostdin"])
        .args(["-timeout", &format!("{budget}s"), "-recv_timeout", "10000"])
        .args([
            "-max_socket",
            "60000",
            "-buff_size",
            "4194304",
            "-trace_err",
        ]);
    if rtt {
        cmd.args(["-trace_rtt", "-rtt_freq", "1"]);
    }
    let child = cmd
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("sipp (package sip-tester) must be installed")?;
    Ok((child, Instant::now()))
}

fn finish(child: Child, dir: &Path) -> Result<Run> {
    let output = child.wait_with_output()?;
    let screen = String::from_utf8_lossy(&output.stdout);
    let mut run = Run::default();
    for line in screen.lines() {
        let total = || {
            line.split('|')
                .map(str::trim)
                .rfind(|s| !s.is_empty())
                .and_then(|v| v.parse::<u64>().ok())
        };
        if line.trim_start().starts_with("Successful call") {
            run.successful = total().unwrap_or(0);
        } else if line.trim_start().starts_with("Failed call") {
            run.failed = total().unwrap_or(0);
        }
    }
    for entry in std::fs::read_dir(dir)?.flatten() {
        if !entry.file_name().to_string_lossy().ends_with("_rtt.csv") {
            continue;
        }
        for line in std::fs::read_to_string(entry.path())?.lines().skip(1) {
            let mut fields = line.split(';');
            let (Some(at), Some(setup)) = (fields.next(), fields.next()) else {
                continue;
            };
            if let (Ok(at), Ok(setup)) = (at.parse::<f64>(), setup.parse::<f64>()) {
                run.setups.push((at, setup));
            }
        }
    }
    Ok(run)
}

/// Steps the rate up through `edge` until a step fails; the highest clean rate.
fn ramp(args: &Args, dir: &Path, label: &str, edge: &Edge) -> Result<Option<u32>> {
    println!(
        "\n{label}: {:>8} {:>10} {:>8} {:>8}",
        "rate/s", "completed", "failed", "seconds"
    );
    let began = Instant::now();
    let mut best: Option<u32> = None;
    let mut failing: Option<u32> = None;
    let mut rate = args.start;
    let mut refined = false;
    loop {
        if rate > args.max || began.elapsed() > args.phase_budget {
            break;
        }
        let calls = rate * args.seconds;
        let step_dir = dir.join(format!("{label}-{rate}"));
        std::fs::create_dir_all(&step_dir)?;
        let t = Instant::now();
        let (child, _) = sipp_uac(&step_dir, edge.port, rate, calls, false)?;
        let run = finish(child, &step_dir)?;
        let clean = run.failed == 0 && run.successful >= u64::from(calls);
        println!(
            "{label}: {:>8} {:>10} {:>8} {:>8.1}{}",
            rate,
            run.successful,
            run.failed,
            t.elapsed().as_secs_f64(),
            if clean { "" } else { "  <- failures" }
        );
        if clean {
            best = Some(best.map_or(rate, |b| b.max(rate)));
        } else {
            failing = Some(failing.map_or(rate, |f| f.min(rate)));
        }
        // Let the last step's transactions drain.
        std::thread::sleep(Duration::from_secs(2));
        rate = match (best, failing) {
            (Some(b), Some(f)) if !refined && f > b + b / 10 => {
                refined = true;
                (b + f) / 2
            }
            (_, Some(_)) => break,
            (_, None) => ((f64::from(rate) * args.factor).ceil() as u32).max(rate + 1),
        };
    }
    Ok(best)
}

/// The pair carries calls; node A is SIGKILLed; what the callers saw.
fn failover(args: &Args, dir: &Path, edge: &Edge, victim: Node) -> Result<()> {
    let rate = args.failover_rate;
    let calls = rate * 20;
    let run_dir = dir.join("failover");
    std::fs::create_dir_all(&run_dir)?;
    println!("\nnode failure: {rate} calls/s through the pair, node A SIGKILLed 5 s in");
    let (child, started) = sipp_uac(&run_dir, edge.port, rate, calls, true)?;
    std::thread::sleep(Duration::from_secs(5));
    let killed = started.elapsed().as_secs_f64() * 1000.0;
    drop(victim.process);
    println!(
        "node A killed at {:.1} s; waiting for the run to end",
        killed / 1000.0
    );
    let run = finish(child, &run_dir)?;
    // Calls placed after the kill (completed at - setup time >= kill).
    let after: Vec<(f64, f64)> = run
        .setups
        .iter()
        .copied()
        .filter(|(at, setup)| at - setup >= killed)
        .collect();
    let slow: Vec<&(f64, f64)> = after.iter().filter(|(_, setup)| *setup >= 1000.0).collect();
    let first_rerouted = slow
        .iter()
        .map(|(at, _)| at - killed)
        .fold(f64::INFINITY, f64::min);
    let straight_from = slow
        .iter()
        .map(|(at, setup)| at - setup - killed)
        .fold(0.0, f64::max);
    let resumed = slow.iter().map(|(at, _)| at - killed).fold(0.0, f64::max);
    let longest = after.iter().map(|(_, s)| *s).fold(0.0, f64::max);
    println!(
        "calls: {} completed, {} failed; {} placed after the kill, {} of them sent to the dead node first",
        run.successful,
        run.failed,
        after.len(),
        slow.len()
    );
    if slow.is_empty() {
        println!("no call placed after the kill went to the dead node first");
    } else {
        println!(
            "first call sent to the dead node completed on the survivor {:.2} s after the kill",
            first_rerouted / 1000.0
        );
        println!(
            "every call placed {:.2} s or more after the kill went straight to the survivor; \
             the last re-routed call completed {:.2} s after the kill",
            straight_from / 1000.0,
            resumed / 1000.0
        );
    }
    println!(
        "longest setup of a call placed after the kill: {:.2} s",
        longest / 1000.0
    );
    Ok(())
}

fn main() -> Result<()> {
    let args = args()?;
    let bin = PathBuf::from(std::env::var("DISPATCHLINE_BIN").unwrap_or_else(|_| {
        format!(
            "{}/release/dispatchline",
            std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into())
        )
    }));
    let admin = std::env::var("DISPATCHLINE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let dir =
        std::env::temp_dir().join(format!("dispatchline-cluster-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let name = format!("dl_cluster_bench_{}", std::process::id());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let database = runtime.block_on(create_database(&admin, &name))?;
    let outcome = bench(&args, &bin, &dir, &database);
    runtime.block_on(drop_database(&admin, &name));
    outcome
}

fn bench(args: &Args, bin: &Path, dir: &Path, database: &str) -> Result<()> {
    let callee = free_port()?;
    let _uas = Killed(
        Command::new("sipp")
            .args(["-sn", "uas", "-i", "127.0.0.1", "-p", &callee.to_string()])
            .args(["-nostdin", "-timeout", "1800s", "-max_socket", "60000"])
            .args(["-buff_size", "4194304"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("sipp (package sip-tester) must be installed")?,
    );
    let a = start_node(bin, dir, "node-a", database, callee)?;
    let b = start_node(bin, dir, "node-b", database, callee)?;
    println!(
        "cluster bench: SIPp uac -> Kamailio (cluster/kamailio.cfg) -> dispatchline (forward number) -> SIPp uas, \
         loopback, one PostgreSQL, {} s of calls per step",
        args.seconds
    );
    let single = {
        let edge = start_edge(dir, "one", &[&a])?;
        ramp(args, dir, "one node ", &edge)?
    };
    let (pair, edge) = {
        let edge = start_edge(dir, "two", &[&a, &b])?;
        (ramp(args, dir, "two nodes", &edge)?, edge)
    };
    let show = |r: Option<u32>| {
        r.map_or("none (the first step failed)".to_owned(), |r| {
            format!("{r} calls/s")
        })
    };
    println!(
        "\nhighest rate with zero failed calls: one node {}, two nodes {}",
        show(single),
        show(pair)
    );
    std::thread::sleep(Duration::from_secs(3));
    failover(args, dir, &edge, a)?;
    drop(edge);
    drop(b);
    Ok(())
}

async fn create_database(admin: &str, name: &str) -> Result<String> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(5))
        .connect(admin)
        .await
        .with_context(|| format!("PostgreSQL at {admin} (set DISPATCHLINE_TEST_PG)"))?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await?;
    pool.close().await;
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    let url = format!("{base}/{name}");
    let store = dispatchline::store::Store::connect(&url).await?;
    store.migrate().await?;
    store.close().await;
    Ok(url)
}

async fn drop_database(admin: &str, name: &str) {
    if let Ok(pool) = sqlx::PgPool::connect(admin).await {
        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
        pool.close().await;
    }
}
