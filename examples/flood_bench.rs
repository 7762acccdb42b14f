//! Calls under attack: the highest legitimate call rate that completes with zero
//! failures while a flood of five times that rate hits the engine.
//!
//! The legitimate calls are SIPp's (uac from the trunk's address → a `forward`
//! number → SIPp uas). The flood comes from this program, from `--sources`
//! addresses in 127.0.0.0/8 (fresh ones each step) that are neither the trunk nor a registered softphone:
//! a third INVITEs, a third REGISTERs guessing passwords (a wrong digest each
//! time), a third OPTIONS sweeps; every answer it gets is counted by status. The
//! rate steps up from `--start` by `--step` until a step has a failed call (or
//! `--max`); each step sends `--calls` calls. Prints each step's flood answer mix
//! and the process's memory (RSS: the engine runs in this process). Then a soak:
//! `--soak` more steps at `--soak-rate`, each printing the RSS beside what the
//! event history holds (bounded: `[http] event_history_mib`, set to
//! `--history-mib`, 16 by default, so that the soak fills it): once it is full,
//! memory that still grows step after step is a leak. Bounded: every SIPp run has a
//! hard timeout and the run stops by itself.
//!
//! ```text
//! cargo run --release --example flood_bench -- [--calls 1000] [--start 50] [--step 50] [--max 800] [--sources 20] [--soak 10] [--soak-rate 200] [--history-mib 16]
//! ```

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dispatchline::config::Config;
use dispatchline::server::Engine;
use tokio::net::UdpSocket;
use tokio::sync::watch;

struct Args {
    calls: u32,
    start: u32,
    step: u32,
    max: u32,
    sources: u8,
    /// Steps at one rate after the ramp, to see whether memory stays flat.
    soak: u32,
    soak_rate: u32,
    /// The event history's memory bound: small, so that the soak fills it.
    history_mib: u32,
}

fn args() -> Result<Args> {
    let mut a = Args {
        calls: 1000,
        start: 50,
        step: 50,
        max: 800,
        sources: 20,
        soak: 10,
        soak_rate: 200,
        history_mib: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value: u32 = it.next().context("flag needs a value")?.parse()?;
        match flag.as_str() {
            "--calls" => a.calls = value.max(1),
            "--start" => a.start = value.max(1),
            "--step" => a.step = value.max(1),
            "--max" => a.max = value,
            "--sources" => a.sources = u8::try_from(value.clamp(1, 200))?,
            "--soak" => a.soak = value.min(100),
            "--soak-rate" => a.soak_rate = value.max(1),
            "--history-mib" => a.history_mib = value.clamp(8, 16384),
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

/// This process's resident memory in MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// What the flood sent and what came back, by kind of request and answer.
#[derive(Debug, Default)]
struct Mix {
    sent: BTreeMap<&'static str, u64>,
    answers: BTreeMap<String, u64>,
}

fn request(kind: &str, n: u64, from: SocketAddr, to: SocketAddr) -> String {
    let (line, extra) = match kind {
        "INVITE" => (format!("INVITE sip:100@{to} SIP/2.0"), String::new()),
        "REGISTER" => (
            format!("REGISTER sip:{to} SIP/2.0"),
            format!(
                "Authorization: Digest username=\"{}\", realm=\"dispatchline\", nonce=\"guess{n}\", uri=\"sip:{to}\", response=\"{:032x}\", qop=auth, nc=00000001, cnonce=\"c{n}\", algorithm=MD5\r\n",
                1000 + n % 50,
                n
            ),
        ),
        _ => (
            format!("OPTIONS sip:{}@{to} SIP/2.0", 100 + n % 900),
            String::new(),
        ),
    };
    let cseq_method = kind;
    format!(
        "{line}\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKflood{n}\r\nMax-Forwards: 70\r\n\
         From: <sip:{user}@{from}>;tag=f{n}\r\nTo: <sip:{user}@{to}>\r\nCall-ID: flood-{n}@{from}\r\n\
         CSeq: 1 {cseq_method}\r\nContact: <sip:{user}@{from}>\r\n{extra}Content-Length: 0\r\n\r\n",
        user = 1000 + n % 50
    )
}

/// Floods `target` at `rate` requests a second in all from `sources` addresses
/// (127.0.`net`.10 and up: each step's botnet is a fresh one, not yet banned)
/// until `stop`, counting what is sent and answered into `mix`.
async fn flood(
    target: SocketAddr,
    rate: u32,
    net: u8,
    sources: u8,
    mix: Arc<Mutex<Mix>>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let mut sockets = Vec::new();
    for i in 0..sources {
        let ip = Ipv4Addr::new(127, net, 0, 10 + i);
        let socket = Arc::new(UdpSocket::bind((ip, 0)).await?);
        let rx = socket.clone();
        let mix = mix.clone();
        let mut stop_rx = stop.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                tokio::select! {
                    r = rx.recv_from(&mut buf) => {
                        let Ok((n, _)) = r else { break };
                        let text = String::from_utf8_lossy(&buf[..n]);
                        let status = text
                            .strip_prefix("SIP/2.0 ")
                            .and_then(|s| s.get(..3))
                            .unwrap_or("request")
                            .to_owned();
                        let method = text
                            .lines()
                            .find_map(|l| l.strip_prefix("CSeq: "))
                            .and_then(|c| c.split_whitespace().nth(1))
                            .unwrap_or("?")
                            .to_owned();
                        if let Ok(mut m) = mix.lock() {
                            *m.answers.entry(format!("{method} {status}")).or_default() += 1;
                        }
                    }
                    _ = stop_rx.wait_for(|s| *s) => break,
                }
            }
        });
        sockets.push(socket);
    }
    const KINDS: [&str; 3] = ["INVITE", "REGISTER", "OPTIONS"];
    let tick = Duration::from_millis(10);
    let per_tick = f64::from(rate) / 100.0;
    let mut owed = 0.0;
    let mut n: u64 = 0;
    let mut interval = tokio::time::interval(tick);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
        owed += per_tick;
        while owed >= 1.0 {
            owed -= 1.0;
            n += 1;
            let socket = &sockets[(n % u64::from(sources)) as usize];
            let kind = KINDS[(n % 3) as usize];
            let from = socket.local_addr()?;
            let _ = socket
                .send_to(request(kind, n, from, target).as_bytes(), target)
                .await;
            if let Ok(mut m) = mix.lock() {
                *m.sent.entry(kind).or_default() += 1;
            }
        }
    }
}

/// Reads "Successful call" / "Failed call" totals from SIPp's final screen.
fn parse_screen(screen: &str) -> (u64, u64) {
    let mut out = (0, 0);
    for line in screen.lines() {
        let total = || {
            line.split('|')
                .map(str::trim)
                .rfind(|s| !s.is_empty())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        if line.trim_start().starts_with("Successful call") {
            out.0 = total();
        } else if line.trim_start().starts_with("Failed call") {
            out.1 = total();
        }
    }
    out
}

/// One step: `calls` legitimate calls at `rate` under a flood of five times that.
async fn step(
    engine: &Engine,
    rate: u32,
    net: u8,
    args: &Args,
    dir: &Path,
) -> Result<(u64, u64, Mix)> {
    let mix = Arc::new(Mutex::new(Mix::default()));
    let (stop_tx, stop) = watch::channel(false);
    let flooder = tokio::spawn(flood(
        engine.sip_addr,
        rate * 5,
        net,
        args.sources,
        mix.clone(),
        stop,
    ));
    let budget = Duration::from_secs(u64::from(args.calls / rate.max(1)) * 3 + 30);
    let out = tokio::process::Command::new("sipp")
        .args([
            "-sn",
            "uac",
            &engine.sip_addr.to_string(),
            "-s",
            "100",
            "-i",
            "127.0.0.1",
        ])
        .args(["-p", &free_port()?.to_string(), "-r", &rate.to_string()])
        .args([
            "-m",
            &args.calls.to_string(),
            "-l",
            &(rate * 4).to_string(),
            "-d",
            "0",
        ])
        .args([
            "-nostdin",
            "-timeout",
            &format!("{}s", budget.as_secs()),
            "-timeout_error",
        ])
        .args([
            "-recv_timeout",
            "10000",
            "-max_socket",
            "60000",
            "-buff_size",
            "4194304",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(budget + Duration::from_secs(30), out)
        .await
        .context("sipp did not stop")?
        .context("sipp (package sip-tester) must be installed")?;
    let _ = stop_tx.send(true);
    flooder.await??;
    // Late answers to the last requests.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, failed) = parse_screen(&String::from_utf8_lossy(&out.stdout));
    let mix = std::mem::take(&mut *mix.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    Ok((ok, failed, mix))
}

fn show(mix: &Mix) -> String {
    let sent: u64 = mix.sent.values().sum();
    let answered: u64 = mix.answers.values().sum();
    let answers: Vec<String> = mix
        .answers
        .iter()
        .map(|(k, v)| format!("{v} × {k}"))
        .collect();
    format!(
        "flood sent {sent} ({}), answered {answered}: {}; unanswered {}",
        mix.sent
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        if answers.is_empty() {
            "none".to_owned()
        } else {
            answers.join(", ")
        },
        sent.saturating_sub(answered)
    )
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = args()?;
    let dir = std::env::temp_dir().join(format!("dispatchline-flood-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let callee_port = free_port()?;
    let config = Config::parse(
        &format!(
            "[sip]\nlisten = \"127.0.0.1:0\"\nmax_call_rate = 100000\n[http]\nlisten = \"127.0.0.1:0\"\n\
             event_history_mib = {history}\n[database]\nurl = \"sqlite://{dir}/flood.db\"\ndata_dir = \"{dir}\"\n[media]\nrecord_calls = false\n[[trunk]]\nname = \"sipp\"\nproxy = \"127.0.0.1:5999\"\noptions_interval_s = 0\n\
             [[number]]\nnumber = \"100\"\nkind = \"forward\"\ntarget = \"sip:127.0.0.1:{callee_port}\"\n",
            dir = dir.display(),
            history = args.history_mib,
        ),
        Path::new("flood_bench.toml"),
    )?;
    let engine = Engine::start(config).await?;
    let mut uas = tokio::process::Command::new("sipp")
        .args([
            "-sn",
            "uas",
            "-i",
            "127.0.0.1",
            "-p",
            &callee_port.to_string(),
        ])
        .args([
            "-nostdin",
            "-timeout",
            "3600s",
            "-max_socket",
            "60000",
            "-buff_size",
            "4194304",
        ])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("sipp must be installed")?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let rss_start = rss_mib();
    println!(
        "Flood bench: SIPp uac -> dispatchline (forward number) -> SIPp uas on loopback, {} calls a step, \
         while {} other addresses send 5x that rate of INVITE / REGISTER guesses / OPTIONS",
        args.calls, args.sources
    );
    println!("RSS at start: {rss_start:.1} MiB");
    let mut best = None;
    let mut rate = args.start;
    let mut net: u8 = 1;
    while rate <= args.max && net < 255 {
        let (ok, failed, mix) = step(&engine, rate, net, &args, &dir).await?;
        net += 1;
        println!(
            "{rate:>5} calls/s + {:>5} flood/s: {ok} completed, {failed} failed; {}; RSS {:.1} MiB",
            rate * 5,
            show(&mix),
            rss_mib()
        );
        if failed > 0 || ok < u64::from(args.calls) {
            break;
        }
        best = Some(rate);
        rate += args.step;
        // Let the last step's transactions (Timer J/K) and bans drain.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    match best {
        Some(best) => println!(
            "\nhighest legitimate rate with zero failed calls under a 5x flood: {best} calls/s"
        ),
        None => println!("\nthe first step already had failed calls"),
    }
    // The soak: the same step again and again. Memory that grows here beyond
    // what the event history (bounded by its retention) holds is a leak.
    let mut soaked = Vec::new();
    for i in 0..args.soak {
        if net == 255 {
            break;
        }
        let (ok, failed, mix) = step(&engine, args.soak_rate, net, &args, &dir).await?;
        net += 1;
        let (events, bytes) = engine.events.held();
        let (rss, history) = (rss_mib(), bytes as f64 / 1_048_576.0);
        println!(
            "soak {:>2}: {} calls/s + {} flood/s: {ok} completed, {failed} failed; {}; RSS {rss:.1} MiB, \
             event history {history:.1} MiB ({events} events), the rest {:.1} MiB",
            i + 1,
            args.soak_rate,
            args.soak_rate * 5,
            show(&mix),
            rss - history
        );
        soaked.push(rss - history);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    if let (Some(first), Some(last)) = (soaked.get(1), soaked.last()) {
        // From the second soak step (the first still warms caches and pools).
        println!(
            "memory beside the event history over the soak: {first:.1} -> {last:.1} MiB ({:+.1} MiB over {} steps)",
            last - first,
            soaked.len() - 1
        );
    }
    println!(
        "RSS at start {rss_start:.1} MiB, at end {:.1} MiB; {:.0} s in all",
        rss_mib(),
        started.elapsed().as_secs_f64()
    );
    engine.shutdown(Duration::from_secs(5)).await;
    let _ = uas.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
