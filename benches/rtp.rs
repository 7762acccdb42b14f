//! Micro-benchmarks of the media path: RTP header parsing, G.711 decoding, encoding
//! and PCMA↔PCMU transcoding of one 20 ms frame, and one packet through a leg's
//! receive path (sequence and jitter tracking, relay to the other leg).
//!
//! ```text
//! cargo bench --bench rtp
//! ```

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dispatchline::media::g711::{self, Law};
use dispatchline::media::rtp::{self, RtpHeader, Ssrc};
use dispatchline::media::session::{LegConfig, LegSession};
use dispatchline::media::{Codec, Direction, Negotiated, PayloadFormat};

fn packet(seq: u16, ts: u32) -> Vec<u8> {
    let payload: Vec<u8> = (0..160u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut out = Vec::new();
    rtp::build_into(
        &RtpHeader {
            pt: 8,
            marker: false,
            seq,
            ts,
            ssrc: Ssrc(0xABCD),
        },
        &payload,
        &mut out,
    )
    .unwrap();
    out
}

fn codecs(c: &mut Criterion) {
    let frame = packet(1, 160);
    let mut g = c.benchmark_group("g711 (one 20 ms frame)");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse RTP header", |b| {
        b.iter(|| rtp::parse(black_box(&frame)).unwrap().payload.len())
    });
    let payload = rtp::parse(&frame).unwrap().payload.to_vec();
    let mut pcm = Vec::with_capacity(160);
    g.bench_function("decode PCMA", |b| {
        b.iter(|| {
            pcm.clear();
            g711::decode_into(Law::A, black_box(&payload), &mut pcm);
            pcm.len()
        })
    });
    let samples: Vec<i16> = (0..160)
        .map(|i| ((i * 409) % 30000 - 15000) as i16)
        .collect();
    let mut out = Vec::with_capacity(160);
    g.bench_function("encode PCMU", |b| {
        b.iter(|| {
            out.clear();
            g711::encode_into(Law::Mu, black_box(&samples), &mut out);
            out.len()
        })
    });
    let mut buf = payload.clone();
    g.bench_function("transcode PCMA to PCMU", |b| {
        b.iter(|| g711::transcode_in_place(Law::A, Law::Mu, black_box(&mut buf)))
    });
    g.finish();
}

fn leg() -> LegSession {
    let mut leg = LegSession::new(LegConfig {
        ssrc: Ssrc(0x1234),
        initial_seq: 1000,
        initial_ts: 5000,
        rtp_timeout: Duration::from_secs(60),
        rtcp_interval: Duration::ZERO,
        cname: "bench".into(),
        wallclock: None,
        seed: 42,
    });
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    leg.set_remote(
        Instant::now(),
        Negotiated {
            remote_rtp: Some(peer),
            remote_rtcp: Some("127.0.0.1:40001".parse().unwrap()),
            rtcp_mux: false,
            codec: PayloadFormat::at_static(Codec::Pcma),
            dtmf_pt: Some(101),
            dtmf_events: 0x1_FFFF,
            direction: Direction::SendRecv,
            ptime: 20,
        },
    );
    leg.set_relay(true);
    leg
}

fn receive_path(c: &mut Criterion) {
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let packets: Vec<Vec<u8>> = (0..1000u32).map(|i| packet(i as u16, i * 160)).collect();
    let mut g = c.benchmark_group("leg");
    g.throughput(Throughput::Elements(packets.len() as u64));
    g.bench_function("receive and relay 1000 packets", |b| {
        b.iter(|| {
            let mut leg = leg();
            let t0 = Instant::now();
            let mut relayed = 0;
            for (i, p) in packets.iter().enumerate() {
                leg.handle_rtp(t0 + Duration::from_millis(20 * i as u64), peer, p);
                while leg.poll_relay().is_some() {
                    relayed += 1;
                }
                while leg.poll_event().is_some() {}
            }
            black_box(relayed)
        })
    });
    g.finish();
}

criterion_group!(benches, codecs, receive_path);
criterion_main!(benches);
