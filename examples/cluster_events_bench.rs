//! The cluster's event stream on one PostgreSQL: how long an event published on
//! node A takes to reach a live subscriber on node B (and on A itself: a node's own
//! events also go through the log), and how many events per second two nodes
//! publishing at once get through the log to both.
//!
//! ```text
//! cargo run --release --example cluster_events_bench -- --database postgres://postgres@127.0.0.1/bench
//! ```
//!
//! Options: `--rate N` events/s for the latency run (200), `--seconds N` (10),
//! `--events N` for the throughput run (200000), `--bytes N` payload padding (200).
//! The two "nodes" are two buses in this process, each with its own connection
//! pool and `LISTEN` connection, as two engines would have. The database should be
//! empty; see `scripts/bench-cluster-events`, which makes a throwaway one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use dispatchline::events::EventBus;
use dispatchline::events::cluster::{self, ClusterSettings};
use dispatchline::store::Store;
use serde_json::json;

struct Options {
    database: String,
    rate: u64,
    seconds: u64,
    events: u64,
    bytes: usize,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        database: String::new(),
        rate: 200,
        seconds: 10,
        events: 200_000,
        bytes: 200,
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
            "--rate" => o.rate = number()?.max(1),
            "--seconds" => o.seconds = number()?.max(1),
            "--events" => o.events = number()?.max(2),
            "--bytes" => o.bytes = usize::try_from(number()?)?,
            other => bail!("unknown option {other}"),
        }
    }
    if !o.database.starts_with("postgres") {
        bail!("--database postgres://... is required");
    }
    Ok(o)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{what}: {} events, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

/// Collects, for every event with an `at` (µs since `base`), how long after
/// that it arrived, until `count` have.
fn latencies(
    bus: &EventBus,
    base: Instant,
    count: usize,
) -> anyhow::Result<tokio::task::JoinHandle<Vec<Duration>>> {
    let mut live = bus.subscribe(None)?.live;
    Ok(tokio::spawn(async move {
        let mut samples = Vec::with_capacity(count);
        while samples.len() < count {
            match live.recv().await {
                Ok(event) => {
                    if let Some(at) = event.payload.get("at").and_then(|v| v.as_u64()) {
                        let sent = base + Duration::from_micros(at);
                        samples.push(Instant::now().saturating_duration_since(sent));
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    eprintln!("a subscriber lagged by {n} events");
                }
                Err(_) => break,
            }
        }
        samples
    }))
}

/// Publishes without overrunning the writer's queue (a real engine publishes far
/// less than this; the queue would drop the excess).
async fn publish_paced(bus: &EventBus, n: u64, node: &str, padding: &str) {
    for i in 0..n {
        while let Some(stats) = bus.cluster_stats() {
            if stats.queued - stats.written < 16_384 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        bus.publish(
            "call.offered",
            Some("etalon"),
            json!({ "call": format!("{node}-{i}"), "queue": "etalon", "pad": padding }),
        );
        if i % 256 == 0 {
            tokio::task::yield_now().await;
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let o = options()?;
    let store_a = Store::connect(&o.database).await?;
    store_a.migrate().await?;
    let store_b = Store::connect(&o.database).await?;
    let a = cluster::start(&store_a, ClusterSettings::new("bench-a")).await?;
    let b = cluster::start(&store_b, ClusterSettings::new("bench-b")).await?;
    let padding = "x".repeat(o.bytes);
    println!(
        "two nodes on one PostgreSQL, epoch {}, payload ~{} bytes",
        a.epoch(),
        o.bytes + 60
    );

    // Latency: A publishes at a steady rate; B and A itself receive live.
    let base = Instant::now();
    let count = (o.rate * o.seconds) as usize;
    let on_b = latencies(&b, base, count)?;
    let on_a = latencies(&a, base, count)?;
    let period = Duration::from_secs_f64(1.0 / o.rate as f64);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for i in 0..count {
        tick.tick().await;
        let at = u64::try_from(base.elapsed().as_micros()).unwrap_or(u64::MAX);
        a.publish(
            "call.offered",
            Some("etalon"),
            json!({ "call": format!("lat-{i}"), "at": at, "pad": padding }),
        );
    }
    let (on_b, on_a) = (on_b.await?, on_a.await?);
    println!(
        "latency run: {} events/s for {} s, published on A",
        o.rate, o.seconds
    );
    report("  publish on A -> live on B", on_b);
    report("  publish on A -> live on A", on_a);

    // Throughput: both nodes publish as fast as the writers take it.
    let start_seq = a.last_seq();
    let half = o.events / 2;
    let target = start_seq + 2 * half;
    let started = Instant::now();
    let padding = Arc::new(padding);
    let (pa, pb) = (a.clone(), b.clone());
    let (pad_a, pad_b) = (padding.clone(), padding.clone());
    let from_a = tokio::spawn(async move { publish_paced(&pa, half, "a", &pad_a).await });
    let from_b = tokio::spawn(async move { publish_paced(&pb, half, "b", &pad_b).await });
    from_a.await?;
    from_b.await?;
    let published = started.elapsed();
    for bus in [&a, &b] {
        bus.reach(target, Duration::from_secs(600)).await;
    }
    let elapsed = started.elapsed();
    let (sa, sb) = (a.cluster_stats(), b.cluster_stats());
    println!(
        "throughput run: {} events from two nodes at once, published in {:.2} s, on both nodes after {:.2} s: {:.0} events/s through the log",
        2 * half,
        published.as_secs_f64(),
        elapsed.as_secs_f64(),
        (2 * half) as f64 / elapsed.as_secs_f64()
    );
    println!("  node A {sa:?}\n  node B {sb:?}");
    if a.last_seq() < target || b.last_seq() < target {
        bail!(
            "not everything arrived: A at {}, B at {}, expected {target}",
            a.last_seq(),
            b.last_seq()
        );
    }
    let same =
        a.replay(start_seq).ok().map(|e| e.len()) == b.replay(start_seq).ok().map(|e| e.len());
    println!("  both nodes hold the same {} events: {same}", 2 * half);
    a.close();
    b.close();
    Ok(())
}
