//! Inbound call latency under load: the time from sending an INVITE to
//! (a) the `call.offered` event at a websocket client and (b) the first RTP packet of
//! the greeting, at a steady rate of new calls with a full queue.
//!
//! Every caller is a known resident (their phone is learnt into the contacts first,
//! so every screen-pop lookup finds an address and the house's open tickets). No
//! operator is on duty, so calls wait in the queue; each caller hangs up `--hold`
//! seconds after the answer. The greeting takes 5.6 s, so the default 9.6 s keeps
//! each caller 4 s in the queue: at 50 calls/s, about 200 calls queued. The queue
//! depth is sampled while calls are placed and printed, so the figure is measured,
//! not assumed. Bounded: it places `--rate` × `--seconds` calls and stops.
//!
//! ```text
//! cargo run --release --example inbound_load -- [--rate 50] [--seconds 30] [--hold 9.6]
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dispatchline::config::Config;
use dispatchline::phone::PhoneNumber;
use dispatchline::server::Engine;
use futures_util::StreamExt;
use tokio::net::UdpSocket;

struct Args {
    rate: u32,
    seconds: u32,
    hold: f64,
}

fn args() -> Result<Args> {
    let mut a = Args {
        rate: 50,
        seconds: 30,
        hold: 9.6,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value: f64 = it.next().context("flag needs a value")?.parse()?;
        match flag.as_str() {
            "--rate" => a.rate = value as u32,
            "--seconds" => a.seconds = value as u32,
            "--hold" => a.hold = value,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Per call: when its INVITE left, when `call.offered` reached the websocket, when
/// the first RTP packet arrived.
#[derive(Default, Clone, Copy)]
struct Times {
    invite: Option<Instant>,
    offered: Option<Instant>,
    rtp: Option<Instant>,
}

type Book = Arc<Mutex<HashMap<String, Times>>>;

fn phone_of(i: u32) -> String {
    format!("+7912{:07}", 1_000_000 + i)
}

/// One resident: INVITE with an SDP offer, ACK the 200, wait for the first RTP,
/// hold, BYE.
async fn resident(engine: SocketAddr, phone: String, hold: Duration, book: Book) -> Result<()> {
    let sip = UdpSocket::bind("127.0.0.1:0").await?;
    let rtp = UdpSocket::bind("127.0.0.1:0").await?;
    let local = sip.local_addr()?;
    let rtp_port = rtp.local_addr()?.port();
    let call_id = format!("load-{phone}");
    let sdp = format!(
        "v=0\r\no=load 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    );
    let invite = format!(
        "INVITE sip:+73432000001@{engine} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id};rport\r\nFrom: <sip:{phone}@{local}>;tag=r\r\nTo: <sip:+73432000001@{engine}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:{phone}@{local}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    let sent = Instant::now();
    book.lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .entry(phone.clone())
        .or_default()
        .invite = Some(sent);
    sip.send_to(invite.as_bytes(), engine).await?;
    let mut buf = vec![0u8; 4096];
    let to_tag = loop {
        let (n, _) =
            tokio::time::timeout(Duration::from_secs(10), sip.recv_from(&mut buf)).await??;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with("SIP/2.0 200") {
            let to = text
                .lines()
                .find(|l| l.starts_with("To:"))
                .unwrap_or_default()
                .to_owned();
            break to
                .split(";tag=")
                .nth(1)
                .unwrap_or_default()
                .trim()
                .to_owned();
        }
        if text.starts_with("SIP/2.0 4") || text.starts_with("SIP/2.0 5") {
            bail!("refused: {}", text.lines().next().unwrap_or_default());
        }
    };
    let ack = format!(
        "ACK sip:{engine} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id}a;rport\r\nFrom: <sip:{phone}@{local}>;tag=r\r\nTo: <sip:+73432000001@{engine}>;tag={to_tag}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sip.send_to(ack.as_bytes(), engine).await?;
    if tokio::time::timeout(Duration::from_secs(5), rtp.recv_from(&mut buf))
        .await
        .is_ok()
    {
        if let Ok(mut b) = book.lock() {
            b.entry(phone.clone()).or_default().rtp = Some(Instant::now());
        }
    }
    tokio::time::sleep(hold).await;
    let bye = format!(
        "BYE sip:{engine} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id}b;rport\r\nFrom: <sip:{phone}@{local}>;tag=r\r\nTo: <sip:+73432000001@{engine}>;tag={to_tag}\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sip.send_to(bye.as_bytes(), engine).await?;
    let _ = tokio::time::timeout(Duration::from_secs(2), sip.recv_from(&mut buf)).await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = args()?;
    let total = args.rate * args.seconds;
    let dir =
        std::env::temp_dir().join(format!("dispatchline-inbound-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = Config::parse(
        &format!(
            r#"
[sip]
listen = "127.0.0.1:0"
max_call_rate = 100000
[http]
listen = "127.0.0.1:0"
[database]
url = "sqlite://{dir}/load.db"
data_dir = "{dir}"
[media]
record_calls = true
rtp_port_min = 30000
rtp_port_max = 39999
[queue]
callback_after_s = 3600
abandon_threshold_s = 3600
[[trunk]]
name = "load"
proxy = "127.0.0.1:5999"
options_interval_s = 0
[[number]]
number = "+73432000001"
kind = "tenant"
tenant = "etalon"
city = "ekb"
greeting = "ru/greeting-etalon.wav"
[[operator]]
extension = "1001"
password = "loadpass"
"#,
            dir = dir.display()
        ),
        Path::new("inbound_load.toml"),
    )?;
    let engine = Engine::start(config).await?;
    dispatchline::store::demo::seed(&engine.store).await?;
    let houses = engine
        .store
        .houses(&dispatchline::store::TenantScope::All, &Default::default())
        .await?;
    let house = houses.items.first().context("demo houses")?.id;
    for i in 0..total {
        let phone = PhoneNumber::parse(&phone_of(i))?;
        engine
            .store
            .learn_contact(
                &phone,
                "etalon",
                house,
                Some(&format!("{}", i % 200 + 1)),
                chrono::Utc::now(),
            )
            .await?;
    }

    // A websocket client, as the console is.
    let http = format!("http://{}", engine.http_addr);
    let token: serde_json::Value = reqwest::Client::new()
        .post(format!("{http}/api/v1/auth/token"))
        .json(&serde_json::json!({ "extension": "1001", "password": "loadpass" }))
        .send()
        .await?
        .json()
        .await?;
    let token = token["token"].as_str().context("token")?.to_owned();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws?token={token}", engine.http_addr))
            .await?;
    let book: Book = Arc::new(Mutex::new(HashMap::new()));
    let ws_book = book.clone();
    tokio::spawn(async move {
        while let Some(Ok(message)) = ws.next().await {
            let at = Instant::now();
            let Ok(text) = message.into_text() else {
                continue;
            };
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if event["type"] == "call.offered" {
                if let (Some(from), Ok(mut b)) = (event["payload"]["from"].as_str(), ws_book.lock())
                {
                    b.entry(from.to_owned()).or_default().offered = Some(at);
                }
            }
        }
    });

    println!(
        "inbound load: {} calls/s for {} s, each caller hangs up {} s after the answer",
        args.rate, args.seconds, args.hold,
    );
    // The queue depth, sampled every 100 ms while calls are being placed.
    let depth: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let (depth, stats) = (depth.clone(), engine.calls.clone());
        let window = Duration::from_secs(u64::from(args.seconds));
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            while start.elapsed() < window {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let waiting = stats.waiting.load(std::sync::atomic::Ordering::Relaxed);
                if let Ok(mut d) = depth.lock() {
                    d.push(waiting);
                }
            }
        })
    };
    let cpu_start = cpu_seconds();
    let started = Instant::now();
    let mut tasks = Vec::new();
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    for i in 0..total {
        let due = started + interval * i;
        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        let (book, addr) = (book.clone(), engine.sip_addr);
        let hold = Duration::from_secs_f64(args.hold);
        tasks.push(tokio::spawn(async move {
            resident(addr, phone_of(i), hold, book).await
        }));
    }
    let _ = sampler.await;
    let mut failed = 0;
    for t in tasks {
        if !matches!(t.await, Ok(Ok(()))) {
            failed += 1;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let times: Vec<Times> = book
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .values()
        .copied()
        .collect();
    let ms = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64() * 1000.0;
    let mut offered: Vec<f64> = times
        .iter()
        .filter_map(|t| Some(ms(t.invite?, t.offered?)))
        .collect();
    let mut rtp: Vec<f64> = times
        .iter()
        .filter_map(|t| Some(ms(t.invite?, t.rtp?)))
        .collect();
    offered.sort_by(f64::total_cmp);
    rtp.sort_by(f64::total_cmp);
    println!(
        "calls: {total} placed, {failed} failed, {} offered events, {} with RTP",
        offered.len(),
        rtp.len()
    );
    let depth = depth
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    // Steady state: once the first callers have had time to give up.
    let steady: Vec<u64> = depth
        .iter()
        .skip((args.hold * 10.0) as usize)
        .copied()
        .collect();
    let steady = if steady.is_empty() { depth } else { steady };
    let mean = steady.iter().sum::<u64>() as f64 / steady.len().max(1) as f64;
    println!(
        "calls in the queue while measuring (steady state): mean {mean:.0}, min {}, max {}",
        steady.iter().min().copied().unwrap_or(0),
        steady.iter().max().copied().unwrap_or(0)
    );
    println!(
        "INVITE -> call.offered at a websocket client: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&offered, 0.5),
        percentile(&offered, 0.99),
        offered.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "INVITE -> first RTP packet of the greeting:   p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&rtp, 0.5),
        percentile(&rtp, 0.99),
        rtp.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "process CPU: {:.0}% of one core over {:.1} s (engine and this load client together)",
        cpu / wall * 100.0,
        wall
    );
    engine.shutdown(Duration::from_secs(5)).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
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
