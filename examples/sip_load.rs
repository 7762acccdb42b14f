//! SIP load test: SIPp uac → engine (a `forward` number) → SIPp uas, on loopback.
//!
//! Steps the call rate up, sending at least `--calls` calls (default 15,000) at each
//! step, until a step has failed calls; then prints the highest rate with zero
//! failures and what happened at twice that rate (calls completed, calls refused
//! with 503, failures). Bounded: every SIPp run has a hard timeout and the whole run
//! stops by itself.
//!
//! ```text
//! cargo run --release --example sip_load -- [--calls 15000] [--start 250] [--step 250] [--max 4000]
//! ```

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dispatchline::config::Config;
use dispatchline::server::Engine;

struct Args {
    calls: u32,
    start: u32,
    step: u32,
    max: u32,
}

fn args() -> Result<Args> {
    let mut a = Args {
        calls: 15_000,
        start: 250,
        step: 250,
        max: 4000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value: u32 = it.next().context("flag needs a value")?.parse()?;
        match flag.as_str() {
            "--calls" => a.calls = value,
            "--start" => a.start = value,
            "--step" => a.step = value,
            "--max" => a.max = value,
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

#[derive(Debug, Default)]
struct StepResult {
    rate: u32,
    successful: u64,
    failed: u64,
    refused_503: u64,
    seconds: f64,
}

/// Reads "Successful call" / "Failed call" totals from SIPp's final screen, and the
/// number of 503s from its response counters.
fn parse_screen(screen: &str, result: &mut StepResult) {
    for line in screen.lines() {
        let total = || {
            line.split('|')
                .map(str::trim)
                .rfind(|s| !s.is_empty())
                .and_then(|v| v.parse::<u64>().ok())
        };
        if line.trim_start().starts_with("Successful call") {
            result.successful = total().unwrap_or(0);
        } else if line.trim_start().starts_with("Failed call") {
            result.failed = total().unwrap_or(0);
        }
    }
}

async fn step(
    engine: &Engine,
    callee_port: u16,
    rate: u32,
    calls: u32,
    dir: &Path,
) -> Result<StepResult> {
    let started = Instant::now();
    let budget = Duration::from_secs(u64::from(calls / rate.max(1)) * 3 + 60);
    let mut uac = tokio::process::Command::new("sipp")
        .args([
            "-sn",
            "uac",
            &engine.sip_addr.to_string(),
            "-s",
            "100",
            "-i",
            "127.0.0.1",
        ])
        .args([
            "-p",
            &free_port()?.to_string(),
            "-r",
            &rate.to_string(),
            "-m",
            &calls.to_string(),
        ])
        .args([
            "-l",
            &(rate * 4).to_string(),
            "-d",
            "0",
            "-nostdin",
            "-timeout",
            &format!("{}s", budget.as_secs()),
        ])
        .args(["-recv_timeout", "10000", "-max_socket", "60000"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("sipp (package sip-tester) must be installed")?;
    let stdout = uac.stdout.take();
    let read = tokio::spawn(async move {
        let mut s = String::new();
        if let Some(mut out) = stdout {
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut out, &mut s).await;
        }
        s
    });
    let _ = tokio::time::timeout(budget + Duration::from_secs(30), uac.wait()).await;
    let screen = read.await.unwrap_or_default();
    let mut result = StepResult {
        rate,
        seconds: started.elapsed().as_secs_f64(),
        ..Default::default()
    };
    parse_screen(&screen, &mut result);
    let _ = callee_port;
    Ok(result)
}

/// New calls the engine refused with 503 + Retry-After so far: at the edge (core
/// behind) and at admission (limits).
fn engine_shed(engine: &Engine) -> u64 {
    use std::sync::atomic::Ordering;
    engine.sip.shed.load(Ordering::Relaxed) + engine.calls.refused_overload.load(Ordering::Relaxed)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = args()?;
    let dir = std::env::temp_dir().join(format!("dispatchline-sip-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let callee_port = free_port()?;
    let config = Config::parse(
        &format!(
            "[sip]\nlisten = \"127.0.0.1:0\"\nmax_call_rate = 100000\n[http]\nlisten = \"127.0.0.1:0\"\n[database]\nurl = \"sqlite://{dir}/load.db\"\ndata_dir = \"{dir}\"\n[media]\nrecord_calls = false\n[[trunk]]\nname = \"sipp\"\nproxy = \"127.0.0.1:5999\"\noptions_interval_s = 0\n\
             [[number]]\nnumber = \"100\"\nkind = \"forward\"\ntarget = \"sip:127.0.0.1:{callee_port}\"\n",
            dir = dir.display()
        ),
        Path::new("sip_load.toml"),
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
            "-nostdin",
            "-timeout",
            "3600s",
        ])
        .args(["-max_socket", "60000"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("sipp must be installed")?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    println!(
        "SIP load: SIPp uac -> dispatchline (forward number) -> SIPp uas, loopback, {} calls per step",
        args.calls
    );
    println!(
        "{:>8} {:>10} {:>8} {:>10}",
        "rate/s", "completed", "failed", "seconds"
    );
    let mut best = None;
    let mut rate = args.start;
    while rate <= args.max {
        let r = step(&engine, callee_port, rate, args.calls, &dir).await?;
        println!(
            "{:>8} {:>10} {:>8} {:>10.1}",
            r.rate, r.successful, r.failed, r.seconds
        );
        if r.failed > 0 || r.successful < u64::from(args.calls) {
            break;
        }
        best = Some(rate);
        rate += args.step;
        // Let transactions from the last step (Timer J/K) drain.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    match best {
        Some(best) => {
            println!("\nhighest rate with zero failed calls: {best} calls/s");
            tokio::time::sleep(Duration::from_secs(5)).await;
            let double = best * 2;
            let shed_before = engine_shed(&engine);
            let mut r = step(&engine, callee_port, double, args.calls, &dir).await?;
            r.refused_503 = engine_shed(&engine) - shed_before;
            println!(
                "at twice that rate ({double} calls/s): {} completed, {} failed, {} refused by the engine with 503 + Retry-After",
                r.successful, r.failed, r.refused_503
            );
        }
        None => println!("\nthe first step already had failures"),
    }
    let _ = uas.kill().await;
    Ok(())
}
