//! SIP load test: SIPp uac → engine (a `forward` number) → SIPp uas, on loopback.
//!
//! Steps the call rate up, sending at least `--calls` calls (default 15,000) at each
//! step, until a step has failed calls; then prints the highest rate with zero
//! failures and what happened at twice that rate (calls completed, calls refused
//! with 503, failures). Bounded: every SIPp run has a hard timeout and the whole run
//! stops by itself. Both SIPps get 4 MB socket buffers (`-buff_size`): with SIPp's
//! 64 KiB default the kernel drops bursts at SIPp's own socket, which measures SIPp.
//! `SIP_LOAD_KEEP_LOGS=1` keeps SIPp's error logs in the temporary directory.
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
use dispatchline::store::{CallFilter, Disposition, TenantScope};

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
    why: String,
}

/// The most common reasons in SIPp's error logs (then removes them).
fn failure_reasons(dir: &Path) -> String {
    let mut counts: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if !entry.file_name().to_string_lossy().ends_with("_errors.log") {
            continue;
        }
        for line in std::fs::read_to_string(entry.path())
            .unwrap_or_default()
            .lines()
        {
            let reason = if let Some(i) = line.find("received 'SIP/2.0 ") {
                line[i + 10..]
                    .chars()
                    .take_while(|c| *c != '\n' && *c != ':')
                    .take(40)
                    .collect::<String>()
            } else if let Some(i) = line.find("Aborting call on ") {
                line[i + 17..]
                    .split(" for ")
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            } else {
                continue;
            };
            *counts.entry(reason).or_default() += 1;
        }
        if std::env::var_os("SIP_LOAD_KEEP_LOGS").is_none() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let mut top: Vec<(String, u64)> = counts.into_iter().collect();
    top.sort_by_key(|b| std::cmp::Reverse(b.1));
    top.iter()
        .take(3)
        .map(|(r, n)| format!("{n} × {r}"))
        .collect::<Vec<_>>()
        .join("; ")
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
        .args([
            "-recv_timeout",
            "10000",
            "-max_socket",
            "60000",
            "-trace_err",
            "-buff_size",
            "4194304",
        ])
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
    if result.failed > 0 {
        result.why = failure_reasons(dir);
    }
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
        .args([
            "-max_socket",
            "60000",
            "-trace_err",
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
            "{:>8} {:>10} {:>8} {:>10.1}  {}",
            r.rate, r.successful, r.failed, r.seconds, r.why
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
            if !r.why.is_empty() {
                println!("  failures: {}", r.why);
            }
        }
        None => println!("\nthe first step already had failures"),
    }
    // Nothing lost: after a graceful stop every accepted call has its journal row.
    let store = engine.store.clone();
    engine.shutdown(Duration::from_secs(10)).await;
    let _ = uas.kill().await;
    let journal = |disposition| {
        let store = &store;
        async move {
            let filter = CallFilter {
                disposition,
                limit: Some(1),
                ..CallFilter::default()
            };
            store
                .calls(&TenantScope::All, &filter)
                .await
                .map_or(-1, |page| page.total)
        }
    };
    println!(
        "journal: {} calls written, {} answered",
        journal(None).await,
        journal(Some(Disposition::Answered)).await
    );
    Ok(())
}
