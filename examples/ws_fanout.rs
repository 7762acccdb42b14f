//! Websocket fan-out benchmark: N clients on a real engine's `/ws`, events published
//! on the engine's bus at a steady rate, emit → receive latency per client and the
//! engine's memory per connected client.
//!
//! The engine and the publisher run in this process; the clients run in a child
//! process (this same program with `--clients-only`), so the engine's resident
//! memory is measured without the clients' own buffers. Latency is wall-clock time
//! (both processes read the same system clock) from just before `publish` to the
//! moment a client has the frame's text in hand.
//!
//! ```text
//! cargo run --release --example ws_fanout -- [--clients 200] [--rate 100] [--seconds 30]
//! ```
//! or `scripts/bench-ws`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

struct Args {
    clients: usize,
    rate: u64,
    seconds: u64,
    /// Set in the child: the websocket URL to connect the clients to.
    url: Option<String>,
    /// Set in the child: how many events each client should get.
    expect: u64,
}

fn args() -> Args {
    let mut a = Args {
        clients: 200,
        rate: 100,
        seconds: 30,
        url: None,
        expect: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().expect("a value after the flag");
        match arg.as_str() {
            "--clients" => a.clients = value().parse().expect("--clients N"),
            "--rate" => a.rate = value().parse().expect("--rate N"),
            "--seconds" => a.seconds = value().parse().expect("--seconds N"),
            "--clients-only" => a.url = Some(value()),
            "--expect" => a.expect = value().parse().expect("--expect N"),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The number after `"sent_ns":` in an event's JSON.
fn sent_ns(text: &str) -> Option<u64> {
    let at = text.find("\"sent_ns\":")? + "\"sent_ns\":".len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    match a.url.clone() {
        Some(url) => clients(&url, a.clients, a.expect).await,
        None => engine_side(a).await,
    }
}

/// The child: connects the clients, reports "ready", collects latencies until the
/// final event, prints the figures.
async fn clients(url: &str, n: usize, expect: u64) {
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("client connects");
        sockets.push(ws);
    }
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(expect as usize);
                let mut last_seq = 0u64;
                let mut out_of_order = 0u64;
                while let Some(Ok(message)) = ws.next().await {
                    let Message::Text(text) = message else {
                        continue;
                    };
                    let received = now_ns();
                    if text.contains("\"bench.done\"") {
                        break;
                    }
                    if let Some(sent) = sent_ns(&text) {
                        latencies.push(received.saturating_sub(sent));
                        let seq = text
                            .strip_prefix("{\"seq\":")
                            .and_then(|r| r.split(',').next())
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0);
                        if seq <= last_seq {
                            out_of_order += 1;
                        }
                        last_seq = seq;
                    }
                }
                (latencies, out_of_order)
            })
        })
        .collect();
    println!("ready");
    let mut all = Vec::new();
    let mut short = 0usize;
    let mut disorder = 0u64;
    for task in tasks {
        let (latencies, out_of_order) = task.await.unwrap();
        if (latencies.len() as u64) < expect {
            short += 1;
        }
        disorder += out_of_order;
        all.extend(latencies);
    }
    all.sort_unstable();
    let pct = |p: f64| {
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len().max(1)) - 1;
        all.get(i).copied().unwrap_or(0) as f64 / 1e6
    };
    println!(
        "received {} events ({} clients x {expect} expected); clients short: {short}; out of order: {disorder}",
        all.len(),
        n
    );
    println!(
        "latency emit->receive: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        pct(1.0)
    );
}

async fn engine_side(a: Args) {
    let dir = std::env::temp_dir().join(format!("dispatchline-ws-fanout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text = format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n\
         [database]\nurl = \"sqlite://{0}/bench.db\"\ndata_dir = \"{0}\"\n\n\
         [media]\nrecord_calls = false\n\n\
         [[operator]]\nextension = \"9000\"\npassword = \"bench-9000\"\nrole = \"supervisor\"\n",
        dir.display()
    );
    let config = dispatchline::config::Config::parse(&text, Path::new("bench.toml")).unwrap();
    let engine = dispatchline::server::Engine::start(config).await.unwrap();
    let login: serde_json::Value = reqwest::Client::new()
        .post(format!("http://{}/api/v1/auth/token", engine.http_addr))
        .json(&json!({"extension": "9000", "password": "bench-9000"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap();
    let url = format!("ws://{}/ws?token={token}", engine.http_addr);
    let total = a.rate * a.seconds;
    // A warm-up publish so the bus and the allocator are in their steady state.
    engine.events.publish("bench.warmup", None, json!({}));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib();

    let exe = std::env::current_exe().unwrap();
    let mut child = tokio::process::Command::new(exe)
        .args([
            "--clients-only",
            &url,
            "--clients",
            &a.clients.to_string(),
            "--expect",
            &total.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.next_line().await.unwrap();
    assert_eq!(ready.as_deref(), Some("ready"), "the clients connected");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let connected = rss_kib();
    println!(
        "{} clients connected; engine RSS {} KiB -> {} KiB: {:.1} KiB per client",
        a.clients,
        before,
        connected,
        connected.saturating_sub(before) as f64 / a.clients as f64
    );

    println!(
        "publishing {} events/s for {} s ({} events)...",
        a.rate, a.seconds, total
    );
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / a.rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut slowest_publish = Duration::ZERO;
    let mut peak = connected;
    for n in 0..total {
        tick.tick().await;
        let started = std::time::Instant::now();
        engine.events.publish(
            "call.offered",
            Some("etalon"),
            json!({
                "call": format!("bench-{n}"),
                "from": "+79120000001",
                "to": "+73432000001",
                "number_kind": "tenant",
                "sent_ns": now_ns(),
            }),
        );
        slowest_publish = slowest_publish.max(started.elapsed());
        if n % 1000 == 0 {
            peak = peak.max(rss_kib());
        }
    }
    engine.events.publish("bench.done", None, json!({}));
    let mut report = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        report.push(line);
    }
    let _ = child.wait().await;
    for line in report {
        println!("{line}");
    }
    println!(
        "engine RSS peak during the run {} KiB ({:.1} KiB per client over the idle engine); slowest publish {:?}",
        peak,
        peak.saturating_sub(before) as f64 / a.clients as f64,
        slowest_publish
    );
    engine.shutdown(Duration::from_secs(1)).await;
    let _ = std::fs::remove_dir_all(&dir);
}
