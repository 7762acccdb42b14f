//! Media load benchmark: N concurrent calls, each playing a prompt to a caller and
//! recording both sides. Two modes.
//!
//! # `sipp`: SIPp callers through the whole engine (what issue 4 asks)
//!
//! `media_load sipp CALLS SECONDS [RATE]` starts a real engine (SIP, call core, store,
//! media) on loopback with one tenant number, recording on, and runs SIPp 3.6
//! (`-sf`, generated into a scratch folder) as CALLS callers: each INVITEs with PCMA,
//! streams A-law speech-like audio with `rtp_stream` (looped) for the whole call and
//! hears the greeting, then the queue announcement and hold music (no operator is on
//! duty), while the engine records both sides. When every call is up it waits 3 s
//! and measures for SECONDS:
//!
//! - the engine's send-time jitter from its own send timestamps
//!   ([`MediaEngine::send_timing`]): for every paced packet, the time from its 20 ms
//!   grid instant to the return of `send_to` (lateness: wake-up delay plus the leg's
//!   place in its shard's burst), and for consecutive packets of a leg how much that
//!   changed (the deviation of the send interval from 20 ms); p50/p99/p99.9, in
//!   50 µs buckets;
//! - CPU per thread group of this process from `/proc/self/task/*/stat` (media
//!   shards, recording writer and sync, the tokio workers running SIP and the call
//!   core) and SIPp's own from `/proc/PID/stat`; RSS growth over all calls / CALLS;
//! - packets lost by the engine: send errors, playback frames skipped, shard ticks
//!   missed, cross-shard relays dropped, and datagrams the kernel dropped on the
//!   engine's sockets for want of room (the `drops` column of `/proc/net/udp` for the
//!   RTP range and the SIP port, over the window);
//! - then SIPp hangs up and every recording must come back ready.
//!
//! # In-process (`media_load LEGS SECONDS [SHARDS]`)
//!
//! The media engine alone, with callers played by two threads of this process, all
//! on loopback:
//!
//! - the engine: its shard threads (`media-shard-*`, event loops that own the legs'
//!   sockets and pacing) and its recording writer and sync threads;
//! - `load-send`: one thread playing N callers, each sending 20 ms PCMA packets to its
//!   leg on an absolute grid, callers spread over the 20 ms as independent phones
//!   would be (what the caller says: the recording's LEFT channel);
//! - `load-recv`: one thread with a single-threaded tokio runtime receiving the
//!   engine's RTP on the N caller sockets; each arrival carries the kernel's receive
//!   timestamp (`SO_TIMESTAMPNS`), so this thread's scheduling is not measured.
//!
//! It prints, for the measurement window: CPU use (from `/proc/self/task/*/stat`, per
//! thread group, so the engine's share is separated from the load generator's), memory
//! per call (RSS growth over the whole setup / N), the send-time jitter of the engine's
//! RTP as measured at the receiver (deviation of each packet's arrival from that leg's
//! 20 ms grid, after removing the leg's constant offset; p50/p99/max), inter-arrival
//! deviation, packets lost (sequence gaps seen by the callers) and the engine's own
//! counters (send errors, skipped frames, missed ticks). It asserts nothing.
//!
//! Usage: `cargo run --release --example media_load -- [LEGS] [SECONDS] [SHARDS]`
//! (defaults 100, 20, one per core), or `-- sipp CALLS SECONDS [RATE]`.
//! `scripts/bench-media` runs 100, 500 and 1000 in either mode.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dispatchline::config::Config;
use dispatchline::media::sdp::{self, SdpPreferences, SessionDescription};
use dispatchline::media::{EngineOptions, MediaEngine, MediaEvent, Playlist, PromptLibrary};

const WARM_UP: Duration = Duration::from_secs(3);
const PROMPT: &str = "ru/hold-music.wav";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("sipp") {
        let calls: usize = args
            .get(1)
            .map_or(Ok(100), |a| a.parse())
            .context("CALLS")?;
        let seconds: u64 = args
            .get(2)
            .map_or(Ok(20), |a| a.parse())
            .context("SECONDS")?;
        let rate: u32 = args.get(3).map_or(Ok(50), |a| a.parse()).context("RATE")?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        return runtime.block_on(sipp::run(calls, Duration::from_secs(seconds), rate));
    }
    let legs: usize = args
        .first()
        .map_or(Ok(100), |a| a.parse())
        .context("LEGS")?;
    let seconds: u64 = args
        .get(1)
        .map_or(Ok(20), |a| a.parse())
        .context("SECONDS")?;
    let mut options = EngineOptions::default();
    if let Some(s) = args.get(2) {
        options.shards = s.parse().context("SHARDS")?;
    }
    // The engine needs no runtime; this one only waits and collects events.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(legs, Duration::from_secs(seconds), options))
}

async fn run(n: usize, window: Duration, options: EngineOptions) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let prompts = Arc::new(PromptLibrary::load(&root.join("ivr-prompts"))?);
    let out_dir = std::env::temp_dir().join(format!("dl-media-load-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir)?;
    let mut settings = Config::empty().media;
    settings.rtp_timeout = Duration::from_secs(60);
    let shards = options.shards;
    let rss_before = rss_kib()?;

    let (engine, mut events) =
        MediaEngine::start_with(&settings, prompts, "127.0.0.1".parse()?, options)?;
    let mut callers = Vec::with_capacity(n);
    let mut recordings = Vec::with_capacity(n);
    let mut legs = Vec::with_capacity(n);
    for i in 0..n {
        let (leg, local) = engine.open_leg()?;
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        let peer = sock.local_addr()?;
        let offer = format!(
            "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n",
            peer.port()
        );
        let offer = SessionDescription::parse(&offer)?;
        let (_, negotiated) = sdp::answer(&offer, local, &SdpPreferences::default())?;
        engine.set_remote(leg, negotiated)?;
        recordings.push(engine.start_recording(leg, out_dir.join(format!("call-{i}.wav")))?);
        engine.play(leg, &Playlist::one(PROMPT).looping())?;
        callers.push((sock, local));
        legs.push(leg);
    }

    // The callers talk back (the recording's left channel).
    let stop = Arc::new(AtomicBool::new(false));
    let send_socks: Vec<(UdpSocket, SocketAddr)> = callers
        .iter()
        .map(|(s, to)| Ok((s.try_clone()?, *to)))
        .collect::<Result<_>>()?;
    let sender = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("load-send".into())
            .spawn(move || caller_voices(send_socks, stop))?
    };
    // The callers listen, stamping arrivals on their own thread.
    let recv_socks: Vec<UdpSocket> = callers
        .iter()
        .map(|(s, _)| Ok(s.try_clone()?))
        .collect::<Result<_>>()?;
    let measure_from = Instant::now() + WARM_UP;
    let measure_to = measure_from + window;
    let receiver = std::thread::Builder::new()
        .name("load-recv".into())
        .spawn(move || listen(recv_socks, measure_from, measure_to))?;

    println!(
        "legs={n} shards={shards} window={}s: warming up {}s...",
        window.as_secs(),
        WARM_UP.as_secs()
    );
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu0 = cpu_by_group()?;
    let stats0 = engine.stats();
    tokio::time::sleep_until(measure_to.into()).await;
    let cpu1 = cpu_by_group()?;
    let stats1 = engine.stats();
    let rss_during = rss_kib()?;
    stop.store(true, Ordering::Relaxed);
    let arrivals = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    let _ = sender.join();

    // Hang up: recordings are finished and must all come back.
    let stop_at = Instant::now();
    for leg in &legs {
        engine.close_leg(*leg)?;
    }
    let mut ready = 0usize;
    let mut bytes = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while ready < n {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(MediaEvent::RecordingReady { bytes: b, .. })) => {
                ready += 1;
                bytes += b;
            }
            Ok(Some(MediaEvent::RecordingFailed { error, .. })) => {
                bail!("recording failed: {error}")
            }
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    let finalise = stop_at.elapsed();

    // --- Report ------------------------------------------------------------------
    let secs = window.as_secs_f64();
    let ticks = clock_ticks_per_sec();
    let share = |group: &str| -> f64 {
        let a = cpu0.get(group).copied().unwrap_or(0);
        let b = cpu1.get(group).copied().unwrap_or(0);
        (b.saturating_sub(a)) as f64 / ticks / secs * 100.0
    };
    let writer_cpu = share("media-recorder") + share("media-sync");
    let engine_cpu = share("media-shard") + writer_cpu;
    let load_cpu = share("load-send") + share("load-recv");
    let j = jitter(&arrivals, 20.0);
    println!("--- media_load: {n} legs playing + recording both sides, {secs:.0} s window");
    println!(
        "cpu: engine {engine_cpu:.1}% of one core (shards {:.1}%, recording writer+sync {:.1}%); load generator {load_cpu:.1}%; machine has 2 cores",
        share("media-shard"),
        writer_cpu
    );
    println!(
        "memory: RSS {} MiB -> {} MiB, {:.1} KiB per call",
        rss_before / 1024,
        rss_during / 1024,
        (rss_during.saturating_sub(rss_before)) as f64 / n as f64
    );
    println!(
        "jitter (arrival vs the leg's 20 ms grid): p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms over {} packets",
        j.grid_p50, j.grid_p99, j.grid_p999, j.grid_max, j.packets
    );
    println!(
        "inter-arrival deviation from 20 ms: p50 {:.3} ms, p99 {:.3} ms",
        j.ia_p50, j.ia_p99
    );
    println!(
        "packets: received {} of {} expected in the window; lost by the engine: {} (sequence gaps {}, send errors {}, skipped frames {}, missed ticks {})",
        j.packets,
        j.expected,
        j.gaps as u64 + (stats1.send_errors - stats0.send_errors),
        j.gaps,
        stats1.send_errors - stats0.send_errors,
        stats1.frames_skipped - stats0.frames_skipped,
        stats1.ticks_missed - stats0.ticks_missed
    );
    let hist: Vec<String> = dispatchline::media::engine::LATENESS_BUCKETS_MS
        .iter()
        .map(|b| format!("<={b}"))
        .chain([">20".to_string()])
        .zip(stats1.tick_lateness.iter().zip(stats0.tick_lateness.iter()))
        .map(|(label, (b, a))| format!("{label}ms:{}", b - a))
        .collect();
    println!(
        "engine tick lateness (grid instant to end of tick): {}",
        hist.join(" ")
    );
    println!(
        "engine: in {} pkt/s, out {} pkt/s; network loss seen on receive {}",
        (stats1.packets_in - stats0.packets_in) as f64 as u64 / window.as_secs().max(1),
        (stats1.packets_out - stats0.packets_out) / window.as_secs().max(1),
        stats1.lost - stats0.lost
    );
    println!(
        "recordings: {ready}/{n} ready {:.1} s after hang-up, {} MiB written",
        finalise.as_secs_f64(),
        bytes / (1024 * 1024)
    );
    println!(
        "RESULT legs={n} engine_cpu_pct={engine_cpu:.1} rss_kib_per_call={:.1} jitter_p50_ms={:.3} jitter_p99_ms={:.3} lost_by_engine={} recordings_ready={ready}",
        (rss_during.saturating_sub(rss_before)) as f64 / n as f64,
        j.grid_p50,
        j.grid_p99,
        j.gaps as u64 + (stats1.send_errors - stats0.send_errors)
    );
    let _ = std::fs::remove_dir_all(&out_dir);
    engine.shutdown();
    Ok(())
}

/// Every caller sends 20 ms of A-law noise-like speech to its leg on an absolute grid;
/// caller `i` is in phase slot `i % SLOTS` (2 ms apart), as independent phones are not
/// synchronised with each other.
fn caller_voices(socks: Vec<(UdpSocket, SocketAddr)>, stop: Arc<AtomicBool>) {
    const SLOTS: u32 = 10;
    let start = Instant::now();
    let payload: Vec<u8> = (0..160u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 | 0x10)
        .collect();
    let mut packet = vec![0u8; 12 + 160];
    let mut slot: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        let (k, phase) = (slot / SLOTS, slot % SLOTS);
        let due = start + Duration::from_millis(20) * k + Duration::from_millis(2) * phase;
        slot += 1;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        for (i, (sock, to)) in socks.iter().enumerate() {
            if i as u32 % SLOTS != phase {
                continue;
            }
            packet[0] = 0x80;
            packet[1] = 8 | if k == 0 { 0x80 } else { 0 };
            packet[2..4].copy_from_slice(&(k as u16).to_be_bytes());
            packet[4..8].copy_from_slice(&(k * 160).to_be_bytes());
            packet[8..12].copy_from_slice(&(0x1000_0000 + i as u32).to_be_bytes());
            packet[12..].copy_from_slice(&payload);
            let _ = sock.send_to(&packet, to);
        }
    }
}

/// Receives on every caller socket; returns, per leg, (kernel arrival time in ms,
/// RTP timestamp, sequence number) for the packets that arrived inside the window.
/// Arrival times are the kernel's receive timestamps (`SO_TIMESTAMPNS`), so the
/// measuring thread's own scheduling does not show up as the engine's jitter.
fn listen(socks: Vec<UdpSocket>, from: Instant, to: Instant) -> Result<Vec<Vec<(f64, u32, u16)>>> {
    use nix::sys::socket::{
        ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
    };
    use std::os::fd::AsRawFd;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut tasks = Vec::new();
        for s in socks {
            setsockopt(&s, sockopt::ReceiveTimestampns, &true)?;
            s.set_nonblocking(true)?;
            let s = tokio::net::UdpSocket::from_std(s)?;
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::with_capacity(2000);
                let mut buf = [0u8; 512];
                let end = tokio::time::Instant::from_std(to);
                let fd = s.as_raw_fd();
                loop {
                    if tokio::time::timeout_at(end, s.readable()).await.is_err() {
                        break;
                    }
                    let got = s.try_io(tokio::io::Interest::READABLE, || {
                        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
                        let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
                        let msg = recvmsg::<SockaddrStorage>(
                            fd,
                            &mut iov,
                            Some(&mut cmsg),
                            MsgFlags::empty(),
                        )
                        .map_err(std::io::Error::from)?;
                        let mut stamp = None;
                        for c in msg.cmsgs().map_err(std::io::Error::from)? {
                            if let ControlMessageOwned::ScmTimestampns(t) = c {
                                stamp = Some(t.tv_sec() as f64 * 1000.0 + t.tv_nsec() as f64 / 1e6);
                            }
                        }
                        Ok((msg.bytes, stamp))
                    });
                    let (len, stamp) = match got {
                        Ok(v) => v,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        Err(_) => break,
                    };
                    let Some(at) = stamp else { continue };
                    if Instant::now() < from || len < 12 || buf[1] >= 200 {
                        continue;
                    }
                    let seq = u16::from_be_bytes([buf[2], buf[3]]);
                    let ts = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
                    out.push((at, ts, seq));
                }
                out
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await?);
        }
        Ok(all)
    })
}

struct Jitter {
    grid_p50: f64,
    grid_p99: f64,
    grid_p999: f64,
    grid_max: f64,
    ia_p50: f64,
    ia_p99: f64,
    packets: usize,
    expected: usize,
    gaps: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Grid deviation: for each leg, packet n (by RTP timestamp) is due at
/// `t0 + n·20 ms`; its deviation is `arrival - due` minus the leg's median deviation
/// (the constant offset of that leg within the shard's tick is not jitter).
fn jitter(arrivals: &[Vec<(f64, u32, u16)>], ptime_ms: f64) -> Jitter {
    let mut grid = Vec::new();
    let mut ia = Vec::new();
    let (mut packets, mut expected, mut gaps) = (0, 0, 0);
    for leg in arrivals {
        let Some(&(t0, ts0, seq0)) = leg.first() else {
            continue;
        };
        let mut devs: Vec<f64> = leg
            .iter()
            .map(|(t, ts, _)| {
                let n = f64::from(ts.wrapping_sub(ts0)) / 160.0;
                (t - t0) - n * ptime_ms
            })
            .collect();
        let mut sorted = devs.clone();
        sorted.sort_by(f64::total_cmp);
        let median = percentile(&sorted, 0.5);
        for d in &mut devs {
            grid.push((*d - median).abs());
        }
        for w in leg.windows(2) {
            let dt = w[1].0 - w[0].0;
            let steps = f64::from(w[1].1.wrapping_sub(w[0].1)) / 160.0;
            ia.push((dt - steps * ptime_ms).abs());
        }
        let (last_seq, n) = (leg[leg.len() - 1].2, leg.len());
        let span = usize::from(last_seq.wrapping_sub(seq0)) + 1;
        packets += n;
        expected += span;
        gaps += span.saturating_sub(n);
    }
    grid.sort_by(f64::total_cmp);
    ia.sort_by(f64::total_cmp);
    Jitter {
        grid_p50: percentile(&grid, 0.5),
        grid_p99: percentile(&grid, 0.99),
        grid_p999: percentile(&grid, 0.999),
        grid_max: grid.last().copied().unwrap_or(f64::NAN),
        ia_p50: percentile(&ia, 0.5),
        ia_p99: percentile(&ia, 0.99),
        packets,
        expected,
        gaps,
    }
}

fn rss_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?)
}

/// CPU ticks (user + system) per thread-name prefix group.
fn cpu_by_group() -> Result<HashMap<String, u64>> {
    let mut out = HashMap::new();
    for entry in std::fs::read_dir("/proc/self/task")? {
        let path: PathBuf = entry?.path().join("stat");
        let Ok(stat) = std::fs::read_to_string(&path) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // After the name: state is field 3, utime 14, stime 15 (1-based in proc(5)).
        let (Some(u), Some(s)) = (fields.get(11), fields.get(12)) else {
            continue;
        };
        let ticks = u.parse::<u64>().unwrap_or(0) + s.parse::<u64>().unwrap_or(0);
        let group = [
            "media-shard",
            "media-recorder",
            "media-sync",
            "load-send",
            "load-recv",
            "tokio-runtime-w",
        ]
        .into_iter()
        .find(|g| name.starts_with(g))
        .unwrap_or("other");
        *out.entry(group.to_owned()).or_insert(0) += ticks;
    }
    Ok(out)
}

/// USER_HZ: 100 on every Linux architecture this runs on.
fn clock_ticks_per_sec() -> f64 {
    100.0
}

/// The SIPp mode: real callers through the whole engine.
mod sipp {
    use super::*;
    use dispatchline::media::engine::{SEND_BUCKET, SendTiming};
    use dispatchline::server::Engine;

    /// The callers' scenario: INVITE with PCMA, ACK, stream speech-like audio for
    /// the call (`rtp_stream`, looped), hang up after `-d`.
    const SCENARIO: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="media_load caller">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:bench[call_number]@[local_ip]:[local_port]>;tag=[pid]b[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:bench@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=bench 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [rtpstream_audio_port] RTP/AVP 8
      a=rtpmap:8 PCMA/8000
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:bench[call_number]@[local_ip]:[local_port]>;tag=[pid]b[call_number]
      [last_To:]
      [routes]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <nop><action><exec rtp_stream="voice.pcma,-1,8"/></action></nop>
  <pause/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:bench[call_number]@[local_ip]:[local_port]>;tag=[pid]b[call_number]
      [last_To:]
      [routes]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
</scenario>
"#;

    const RTP_MIN: u16 = 40000;
    const RTP_MAX: u16 = 49999;

    /// Four seconds of speech-like A-law: two tones under a syllable-rate envelope.
    fn voice() -> Vec<u8> {
        let law = dispatchline::media::g711::Law::A;
        let pcm: Vec<i16> = (0..32_000)
            .map(|i| {
                let t = f64::from(i) / 8000.0;
                let env = (std::f64::consts::PI * 4.0 * t).sin().abs();
                let v = (2.0 * std::f64::consts::PI * 220.0 * t).sin() * 0.6
                    + (2.0 * std::f64::consts::PI * 710.0 * t).sin() * 0.3;
                (v * env * 9000.0) as i16
            })
            .collect();
        let mut out = Vec::new();
        dispatchline::media::g711::encode_into(law, &pcm, &mut out);
        out
    }

    pub(super) async fn run(calls: usize, window: Duration, rate: u32) -> Result<()> {
        let dir = std::env::temp_dir().join(format!("dl-media-sipp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("caller.xml"), SCENARIO)?;
        std::fs::write(dir.join("voice.pcma"), voice())?;
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut config = Config::parse(
            &format!(
                r#"
[sip]
listen = "127.0.0.1:0"
max_concurrent_calls = {max}
max_call_rate = 100000
[http]
listen = "127.0.0.1:0"
[database]
url = "sqlite://{dir}/bench.db"
data_dir = "{dir}"
[media]
record_calls = true
rtp_port_min = {RTP_MIN}
rtp_port_max = {RTP_MAX}
[queue]
callback_after_s = 3600
abandon_threshold_s = 3600
[[trunk]]
name = "sipp"
proxy = "127.0.0.1:5999"
options_interval_s = 0
[[number]]
number = "+73432000001"
kind = "tenant"
tenant = "etalon"
city = "ekb"
trunk = "sipp"
greeting = "ru/greeting-etalon.wav"
"#,
                max = calls + 100,
                dir = dir.display()
            ),
            Path::new("media_load.toml"),
        )?;
        config.media.prompts_dir = root.join("ivr-prompts");
        let engine = Engine::start(config).await?;
        dispatchline::store::demo::seed(&engine.store).await?;
        let rss_before = rss_kib()?;

        // Each call lasts until well after the window, whatever its place in the ramp.
        let ramp = Duration::from_secs_f64(calls as f64 / f64::from(rate.max(1)));
        let hold = ramp + WARM_UP + window + Duration::from_secs(8);
        let sipp_port = free_udp_port()?;
        let mut sipp = std::process::Command::new("sipp")
            .current_dir(&dir)
            .args(["-sf", "caller.xml"])
            .arg(engine.sip_addr.to_string())
            .args([
                "-s",
                "+73432000001",
                "-i",
                "127.0.0.1",
                "-nostdin",
                "-trace_err",
            ])
            .args([
                "-p",
                &sipp_port.to_string(),
                "-mp",
                &free_udp_port()?.to_string(),
            ])
            .args(["-r", &rate.to_string(), "-rp", "1000"])
            .args(["-l", &calls.to_string(), "-m", &calls.to_string()])
            .args(["-d", &hold.as_millis().to_string()])
            .args(["-max_socket", "4096", "-timeout"])
            .arg(format!("{}s", (hold + ramp).as_secs() + 60))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("sipp is installed (package sip-tester)")?;
        println!(
            "sipp: {calls} callers at {rate}/s, each streaming audio for {:.0} s; engine at {}",
            hold.as_secs_f64(),
            engine.sip_addr
        );
        // All up?
        let deadline = tokio::time::Instant::now() + ramp + Duration::from_secs(30);
        loop {
            let up = engine.media.stats().legs_active as usize;
            if up >= calls {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                let _ = sipp.kill();
                bail!("only {up} of {calls} calls came up");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!("all {calls} calls up; warming up {} s", WARM_UP.as_secs());
        tokio::time::sleep(WARM_UP).await;

        let cpu0 = cpu_by_group()?;
        let sipp0 = proc_ticks(sipp.id())?;
        let drops0 = udp_drops()?;
        let stats0 = engine.media.stats();
        let timing0 = engine.media.send_timing();
        let started = Instant::now();
        tokio::time::sleep(window).await;
        let secs = started.elapsed().as_secs_f64();
        let cpu1 = cpu_by_group()?;
        let sipp1 = proc_ticks(sipp.id())?;
        let drops1 = udp_drops()?;
        let stats1 = engine.media.stats();
        // Shards publish their histograms about once a second.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let timing = engine.media.send_timing().since(&timing0);
        let rss_during = rss_kib()?;
        let active = engine.media.stats().legs_active;

        // SIPp hangs up; every recording must come back ready.
        let status = tokio::task::spawn_blocking(move || sipp.wait()).await??;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let ready = loop {
            let ready = engine
                .events
                .replay(0)
                .map(|v| v.iter().filter(|e| e.kind == "recording.ready").count())
                .unwrap_or(0);
            if ready >= calls || tokio::time::Instant::now() > deadline {
                break ready;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };

        let ticks = clock_ticks_per_sec();
        let share = |group: &str| -> f64 {
            let a = cpu0.get(group).copied().unwrap_or(0);
            let b = cpu1.get(group).copied().unwrap_or(0);
            (b.saturating_sub(a)) as f64 / ticks / secs * 100.0
        };
        let media_cpu = share("media-shard") + share("media-recorder") + share("media-sync");
        let core_cpu = share("tokio-runtime-w") + share("other");
        let sipp_cpu = sipp1.saturating_sub(sipp0) as f64 / ticks / secs * 100.0;
        let q = |h: &[u64], p: f64| {
            SendTiming::quantile(h, p).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
        };
        let packets: u64 = timing.lateness.iter().sum();
        let over_2ms: u64 = timing.interdeparture
            [(Duration::from_millis(2).as_micros() / SEND_BUCKET.as_micros()) as usize..]
            .iter()
            .sum();
        let lost = (stats1.send_errors - stats0.send_errors)
            + (stats1.frames_skipped - stats0.frames_skipped)
            + (stats1.relays_dropped - stats0.relays_dropped)
            + drops1.saturating_sub(drops0);
        let per_call = rss_during.saturating_sub(rss_before) as f64 / calls as f64;
        println!(
            "--- media_load sipp: {calls} SIPp calls hearing prompts, both sides recorded, {secs:.0} s window"
        );
        println!("calls up during the window: {active} legs");
        println!(
            "cpu (% of one core; the machine has 2): media {media_cpu:.1}% (shards {:.1}%, recording writer+sync {:.1}%), SIP and call core {core_cpu:.1}%, engine total {:.1}%; SIPp {sipp_cpu:.1}%",
            share("media-shard"),
            share("media-recorder") + share("media-sync"),
            media_cpu + core_cpu
        );
        println!(
            "memory: RSS {} MiB -> {} MiB with every call up: {per_call:.1} KiB per call",
            rss_before / 1024,
            rss_during / 1024
        );
        println!(
            "send-time jitter (engine's own send timestamps, {packets} paced packets): interval deviation from 20 ms p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, {over_2ms} over 2 ms; lateness after the grid instant p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms (50 µs buckets, upper bounds)",
            q(&timing.interdeparture, 0.5),
            q(&timing.interdeparture, 0.99),
            q(&timing.interdeparture, 0.999),
            q(&timing.lateness, 0.5),
            q(&timing.lateness, 0.99),
            q(&timing.lateness, 0.999)
        );
        println!(
            "lost by the engine in the window: {lost} (send errors {}, skipped frames {}, relays dropped {}, kernel receive drops on the engine's sockets {}); ticks missed {}",
            stats1.send_errors - stats0.send_errors,
            stats1.frames_skipped - stats0.frames_skipped,
            stats1.relays_dropped - stats0.relays_dropped,
            drops1.saturating_sub(drops0),
            stats1.ticks_missed - stats0.ticks_missed
        );
        println!(
            "engine: in {} pkt/s, out {} pkt/s",
            (stats1.packets_in - stats0.packets_in) as f64 as u64 / window.as_secs().max(1),
            (stats1.packets_out - stats0.packets_out) / window.as_secs().max(1)
        );
        println!("sipp exited {status}; recordings ready {ready}/{calls}");
        println!(
            "RESULT mode=sipp calls={calls} engine_cpu_pct={:.1} media_cpu_pct={media_cpu:.1} sipp_cpu_pct={sipp_cpu:.1} rss_kib_per_call={per_call:.1} jitter_p50_ms={:.2} jitter_p99_ms={:.2} lateness_p99_ms={:.2} lost_by_engine={lost} ticks_missed={} recordings_ready={ready}",
            media_cpu + core_cpu,
            q(&timing.interdeparture, 0.5),
            q(&timing.interdeparture, 0.99),
            q(&timing.lateness, 0.99),
            stats1.ticks_missed - stats0.ticks_missed
        );
        engine.shutdown(Duration::from_secs(5)).await;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    fn free_udp_port() -> Result<u16> {
        Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
    }

    /// utime + stime of a process, in clock ticks.
    fn proc_ticks(pid: u32) -> Result<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let close = stat.rfind(')').context("stat")?;
        let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Ok(n(11) + n(12))
    }

    /// Datagrams the kernel dropped on this process's UDP sockets (the engine's: RTP
    /// legs and SIP) for want of buffer room: the `drops` column of
    /// /proc/net/udp{,6}, for the sockets whose inodes this process holds.
    fn udp_drops() -> Result<u64> {
        let mut mine = std::collections::HashSet::new();
        for fd in std::fs::read_dir("/proc/self/fd")?.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                let link = link.to_string_lossy().into_owned();
                if let Some(inode) = link
                    .strip_prefix("socket:[")
                    .and_then(|l| l.strip_suffix(']'))
                {
                    mine.insert(inode.to_owned());
                }
            }
        }
        let mut total = 0;
        for file in ["/proc/net/udp", "/proc/net/udp6"] {
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split_whitespace().collect();
                // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref ptr drops
                if f.get(9).is_some_and(|inode| mine.contains(*inode)) {
                    total += f.last().and_then(|d| d.parse::<u64>().ok()).unwrap_or(0);
                }
            }
        }
        Ok(total)
    }
}
