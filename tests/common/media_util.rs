//! Helpers shared by the media integration tests: a classic-libpcap reader, RTP test
//! endpoints on loopback, an independent G.711 decoder and audio measurements.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dispatchline::config::{Config, MediaSettings};
use dispatchline::media::sdp::{self, Negotiated, SdpPreferences, SessionDescription};
use dispatchline::media::{MediaEngine, MediaEvent};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::UnboundedReceiver;

/// One UDP datagram from a capture, with its time since the first packet.
#[derive(Debug, Clone)]
pub struct Captured {
    pub offset: Duration,
    pub payload: Vec<u8>,
}

/// Reads a classic libpcap file (v2.4, Ethernet, IPv4, UDP) and returns the UDP
/// payloads. Anything else in the file is skipped.
pub fn read_pcap(path: &Path) -> Vec<Captured> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(data.len() >= 24, "{}: no pcap header", path.display());
    let magic = u32::from_le_bytes(data[0..4].try_into().unwrap());
    let (le, nanos) = match magic {
        0xa1b2c3d4 => (true, false),
        0xa1b23c4d => (true, true),
        0xd4c3b2a1 => (false, false),
        0x4d3cb2a1 => (false, true),
        other => panic!("{}: not a classic pcap ({other:#x})", path.display()),
    };
    let u32_at = |b: &[u8], i: usize| {
        let w: [u8; 4] = b[i..i + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let linktype = u32_at(&data, 20);
    assert_eq!(linktype, 1, "{}: only Ethernet captures", path.display());
    let mut out = Vec::new();
    let mut first: Option<Duration> = None;
    let mut i = 24;
    while i + 16 <= data.len() {
        let sec = u32_at(&data, i);
        let frac = u32_at(&data, i + 4);
        let incl = u32_at(&data, i + 8) as usize;
        let t = Duration::from_secs(u64::from(sec))
            + if nanos {
                Duration::from_nanos(u64::from(frac))
            } else {
                Duration::from_micros(u64::from(frac))
            };
        let frame = &data[i + 16..(i + 16 + incl).min(data.len())];
        i += 16 + incl;
        // Ethernet (optionally one 802.1Q tag) → IPv4 → UDP.
        let mut eth = 14;
        let mut ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        if ethertype == 0x8100 {
            ethertype = u16::from_be_bytes([frame[16], frame[17]]);
            eth = 18;
        }
        if ethertype != 0x0800 {
            continue;
        }
        let ip = &frame[eth..];
        let ihl = usize::from(ip[0] & 0x0F) * 4;
        if ip[9] != 17 {
            continue;
        }
        let udp = &ip[ihl..];
        let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        let payload = udp[8..len.min(udp.len())].to_vec();
        let start = *first.get_or_insert(t);
        out.push(Captured {
            offset: t.saturating_sub(start),
            payload,
        });
    }
    out
}

/// `tests/data/sipp/NAME` (SIPp's captures, vendored).
pub fn sipp_capture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sipp")
        .join(name)
}

/// Media settings on a private port range, with a short RTP timeout.
pub fn settings(port_min: u16, port_max: u16) -> MediaSettings {
    let mut s = Config::empty().media;
    s.rtp_port_min = port_min;
    s.rtp_port_max = port_max;
    s.prompts_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-prompts");
    s
}

/// A scratch directory unique to this process and test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dl-media-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A peer's RTP socket on loopback (port 0).
pub async fn endpoint() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

/// What the engine negotiates when a peer at `peer` offers `formats` (an `m=` format
/// list with rtpmaps), answering from `local`.
pub fn negotiate(peer: SocketAddr, local: SocketAddr, formats: &str, rtpmaps: &str) -> Negotiated {
    let offer = format!(
        "v=0\r\no=peer 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {formats}\r\n{rtpmaps}",
        ip = peer.ip(),
        port = peer.port()
    );
    let offer = SessionDescription::parse(&offer).unwrap();
    sdp::answer(&offer, local, &SdpPreferences::default())
        .unwrap()
        .1
}

/// Waits for the first event matching `pick`, up to `timeout`.
pub async fn wait_for<T>(
    events: &mut UnboundedReceiver<MediaEvent>,
    timeout: Duration,
    mut pick: impl FnMut(&MediaEvent) -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(e)) => {
                if let Some(t) = pick(&e) {
                    return Some(t);
                }
            }
            _ => return None,
        }
    }
}

/// Every event that arrives within `window`.
pub async fn collect(
    events: &mut UnboundedReceiver<MediaEvent>,
    window: Duration,
) -> Vec<MediaEvent> {
    let deadline = tokio::time::Instant::now() + window;
    let mut out = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout_at(deadline, events.recv()).await {
        out.push(e);
    }
    out
}

/// A-law decoding straight from G.711's definition, written independently of the
/// engine's tables so the tests do not check the engine against itself.
pub fn alaw(code: u8) -> i16 {
    let v = code ^ 0x55;
    let sign = v & 0x80;
    let exp = (v >> 4) & 0x07;
    let mant = i32::from(v & 0x0F);
    let mag = if exp == 0 {
        (mant << 4) + 8
    } else {
        ((mant << 4) + 0x108) << (exp - 1)
    };
    if sign != 0 { mag as i16 } else { -(mag as i16) }
}

/// μ-law decoding from the definition (independent of the engine).
pub fn ulaw(code: u8) -> i16 {
    let v = !code;
    let sign = v & 0x80;
    let exp = (v >> 4) & 0x07;
    let mant = i32::from(v & 0x0F);
    let mag = (((mant << 3) + 0x84) << exp) - 0x84;
    if sign != 0 { -(mag as i16) } else { mag as i16 }
}

/// μ-law encoding (for test peers).
pub fn ulaw_encode(s: i16) -> u8 {
    let mut pcm = i32::from(s);
    let sign = if pcm < 0 { 0x80 } else { 0 };
    pcm = pcm.abs().min(32635) + 0x84;
    let mut exp = 7;
    while exp > 0 && pcm & (0x4000 >> (7 - exp)) == 0 {
        exp -= 1;
    }
    let mant = (pcm >> (exp + 3)) & 0x0F;
    !(sign | (exp << 4) | mant) as u8
}

/// A-law encoding (for test peers).
pub fn alaw_encode(s: i16) -> u8 {
    let pcm = i32::from(s) >> 3;
    let (mask, mag) = if pcm >= 0 {
        (0xD5, pcm)
    } else {
        (0x55, -pcm - 1)
    };
    let mut seg = 0;
    while seg < 8 && mag > (0x20 << seg) - 1 {
        seg += 1;
    }
    let a = if seg >= 8 {
        0x7F
    } else if seg < 2 {
        (seg << 4) | ((mag >> 1) & 0x0F)
    } else {
        (seg << 4) | ((mag >> seg) & 0x0F)
    };
    (a ^ mask) as u8
}

/// A sine tone, `n` samples at 8 kHz.
pub fn tone(freq: f64, n: usize, start: usize) -> Vec<i16> {
    (start..start + n)
        .map(|i| (8000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / 8000.0).sin()) as i16)
        .collect()
}

/// RMS of samples.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
}

/// Energy envelope: RMS per window of `w` samples.
pub fn envelope(samples: &[i16], w: usize) -> Vec<f64> {
    samples.chunks(w).map(rms).collect()
}

/// Best normalised correlation of `b` against `a` over shifts in `-max..=max`
/// windows; returns (correlation, shift).
pub fn best_alignment(a: &[f64], b: &[f64], max: isize) -> (f64, isize) {
    let mut best = (f64::MIN, 0);
    for shift in -max..=max {
        let pairs: Vec<(f64, f64)> = (0..a.len() as isize)
            .filter_map(|i| {
                let j = i + shift;
                (j >= 0 && (j as usize) < b.len()).then(|| (a[i as usize], b[j as usize]))
            })
            .collect();
        if pairs.len() < a.len() / 2 {
            continue;
        }
        let n = pairs.len() as f64;
        let (ma, mb) = pairs
            .iter()
            .fold((0.0, 0.0), |acc, p| (acc.0 + p.0 / n, acc.1 + p.1 / n));
        let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
        for (x, y) in &pairs {
            cov += (x - ma) * (y - mb);
            va += (x - ma).powi(2);
            vb += (y - mb).powi(2);
        }
        let c = cov / (va.sqrt() * vb.sqrt()).max(1e-9);
        if c > best.0 {
            best = (c, shift);
        }
    }
    best
}

/// Builds an RTP packet by hand (independent of the engine's builder).
pub fn rtp(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// (pt, marker, seq, ts, payload) of a datagram, if it is RTP.
pub fn parse_rtp(d: &[u8]) -> Option<(u8, bool, u16, u32, Vec<u8>)> {
    if d.len() < 12 || d[0] >> 6 != 2 {
        return None;
    }
    let cc = usize::from(d[0] & 0x0F);
    let start = 12 + cc * 4;
    Some((
        d[1] & 0x7F,
        d[1] & 0x80 != 0,
        u16::from_be_bytes([d[2], d[3]]),
        u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
        d.get(start..)?.to_vec(),
    ))
}

/// Stereo WAV → (left, right).
pub fn read_stereo(path: &Path) -> (Vec<i16>, Vec<i16>) {
    let mut r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 8000, 16)
    );
    let all: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
    let left = all.iter().step_by(2).copied().collect();
    let right = all.iter().skip(1).step_by(2).copied().collect();
    (left, right)
}

/// Starts an engine on a private port range with an empty event backlog.
pub fn start(
    engine: Result<(MediaEngine, UnboundedReceiver<MediaEvent>), dispatchline::media::MediaError>,
) -> (MediaEngine, UnboundedReceiver<MediaEvent>) {
    engine.unwrap()
}
