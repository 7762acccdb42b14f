//! Two RTP endpoints bridged through the engine with different codecs (PCMU on the
//! caller's leg, PCMA on the operator's): audio flows both ways, transcoded; DTMF is
//! relayed with the other leg's telephone-event type; both channels of the caller's
//! recording are non-silent. Run with one shard (inline relay) and two (relay across
//! shard threads).

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/media_util.rs"]
mod util;

use std::sync::Arc;
use std::time::Duration;

use dispatchline::media::{EngineOptions, MediaEngine, MediaEvent, PromptLibrary};
use tokio::net::UdpSocket;
use util::*;

/// Sends `packets` 20 ms apart; `make(i)` builds packet `i`.
async fn send_paced(
    sock: &UdpSocket,
    to: std::net::SocketAddr,
    packets: usize,
    make: impl Fn(usize) -> Vec<u8>,
) {
    let start = tokio::time::Instant::now();
    for i in 0..packets {
        tokio::time::sleep_until(start + Duration::from_millis(20 * i as u64)).await;
        sock.send_to(&make(i), to).await.unwrap();
    }
}

/// Everything a socket receives until it has been quiet for `quiet`.
async fn receive_all(sock: &UdpSocket, quiet: Duration) -> Vec<(u8, bool, u16, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(Ok((n, _))) = tokio::time::timeout(quiet, sock.recv_from(&mut buf)).await {
        if let Some(p) = parse_rtp(&buf[..n]) {
            out.push(p);
        }
    }
    out
}

async fn bridged_call(shards: usize, port_min: u16) {
    let dir = scratch(&format!("bridge-{shards}"));
    let options = EngineOptions {
        shards,
        ..EngineOptions::default()
    };
    let (engine, mut events) = MediaEngine::start_with(
        &settings(port_min, port_min + 999),
        Arc::new(PromptLibrary::empty()),
        "127.0.0.1".parse().unwrap(),
        options,
    )
    .unwrap();
    // Caller: PCMU and telephone-event 101. Operator: PCMA and telephone-event 96.
    let (caller_leg, caller_local) = engine.open_leg().unwrap();
    let (operator_leg, operator_local) = engine.open_leg().unwrap();
    let (caller, caller_addr) = endpoint().await;
    let (operator, operator_addr) = endpoint().await;
    let neg_c = negotiate(
        caller_addr,
        caller_local,
        "0 101",
        "a=rtpmap:101 telephone-event/8000\r\n",
    );
    let neg_o = negotiate(
        operator_addr,
        operator_local,
        "8 96",
        "a=rtpmap:96 telephone-event/8000\r\n",
    );
    assert_eq!((neg_c.codec.pt, neg_c.dtmf_pt), (0, Some(101)));
    assert_eq!((neg_o.codec.pt, neg_o.dtmf_pt), (8, Some(96)));
    engine.set_remote(caller_leg, neg_c).unwrap();
    engine.set_remote(operator_leg, neg_o).unwrap();
    engine.bridge(caller_leg, operator_leg).unwrap();
    let path = dir.join("call.wav");
    let rec = engine.start_recording(caller_leg, &path).unwrap();

    // One second of talk both ways: the caller at 400 Hz, the operator at 1 kHz.
    let c_send = send_paced(&caller, caller_local, 50, |i| {
        let pcm = tone(400.0, 160, i * 160);
        let payload: Vec<u8> = pcm.iter().map(|s| ulaw_encode(*s)).collect();
        rtp(
            0,
            i == 0,
            1000 + i as u16,
            50_000 + 160 * i as u32,
            0xCA11,
            &payload,
        )
    });
    let o_send = send_paced(&operator, operator_local, 50, |i| {
        let pcm = tone(1000.0, 160, i * 160);
        let payload: Vec<u8> = pcm.iter().map(|s| alaw_encode(*s)).collect();
        rtp(
            8,
            i == 0,
            7 + i as u16,
            9_000_000 + 160 * i as u32,
            0x0BE1,
            &payload,
        )
    });
    let c_recv = receive_all(&caller, Duration::from_millis(400));
    let o_recv = receive_all(&operator, Duration::from_millis(400));
    let (_, _, at_caller, at_operator) = tokio::join!(c_send, o_send, c_recv, o_recv);

    // The operator hears the caller in PCMA, the caller hears the operator in PCMU.
    assert!(
        at_operator.len() >= 45,
        "operator got {} packets",
        at_operator.len()
    );
    assert!(
        at_caller.len() >= 45,
        "caller got {} packets",
        at_caller.len()
    );
    assert!(at_operator.iter().all(|p| p.0 == 8));
    assert!(at_caller.iter().all(|p| p.0 == 0));
    assert!(at_operator[0].1, "marker on the first relayed packet");
    let heard_by_operator: Vec<i16> = at_operator
        .iter()
        .flat_map(|p| p.4.iter().map(|b| alaw(*b)))
        .collect();
    let heard_by_caller: Vec<i16> = at_caller
        .iter()
        .flat_map(|p| p.4.iter().map(|b| ulaw(*b)))
        .collect();
    assert!(
        rms(&heard_by_operator) > 4000.0,
        "{}",
        rms(&heard_by_operator)
    );
    assert!(rms(&heard_by_caller) > 4000.0, "{}", rms(&heard_by_caller));
    // Timestamps keep the sender's spacing.
    for w in at_operator.windows(2) {
        assert_eq!(
            w[1].3.wrapping_sub(w[0].3),
            160 * u32::from(w[1].2.wrapping_sub(w[0].2))
        );
    }

    // The caller presses 5 (RFC 4733, PT 101): the operator gets it as PT 96.
    let dtmf = |i: usize| {
        let (end, dur) = if i < 4 {
            (0u8, 160 * (i as u16 + 1))
        } else {
            (0x80, 800)
        };
        let d = dur.to_be_bytes();
        rtp(
            101,
            i == 0,
            1050 + i as u16,
            50_000 + 160 * 50,
            0xCA11,
            &[5, end | 10, d[0], d[1]],
        )
    };
    let (_, relayed) = tokio::join!(
        send_paced(&caller, caller_local, 7, dtmf),
        receive_all(&operator, Duration::from_millis(300))
    );
    assert_eq!(relayed.len(), 7, "{relayed:?}");
    assert!(relayed.iter().all(|p| p.0 == 96 && p.4[0] == 5));
    assert!(relayed[0].1);
    let digit = wait_for(&mut events, Duration::from_secs(1), |e| match e {
        MediaEvent::Dtmf { leg, digit, .. } if *leg == caller_leg => Some(*digit),
        _ => None,
    })
    .await;
    assert_eq!(digit, Some('5'));

    // The engine sends a key to the operator itself (e.g. from a SIP INFO).
    engine
        .send_dtmf(operator_leg, '9', Duration::from_millis(100))
        .unwrap();
    let sent = receive_all(&operator, Duration::from_millis(300)).await;
    assert!(
        sent.len() >= 5 && sent.iter().all(|p| p.0 == 96 && p.4[0] == 9),
        "{sent:?}"
    );

    engine.stop_recording(rec).unwrap();
    let ready = wait_for(&mut events, Duration::from_secs(5), |e| match e {
        MediaEvent::RecordingReady { id, .. } if *id == rec => Some(()),
        _ => None,
    })
    .await;
    assert!(ready.is_some());
    let (left, right) = read_stereo(&path);
    assert!(rms(&left) > 2000.0, "caller channel {}", rms(&left));
    assert!(rms(&right) > 2000.0, "operator channel {}", rms(&right));
    // Both channels cover the same second: talk starts at the same place in each.
    let onset = |s: &[i16]| s.iter().position(|v| v.abs() > 1000).unwrap();
    let skew = onset(&left) as i64 - onset(&right) as i64;
    assert!(skew.abs() < 8 * 40, "channels skewed by {skew} samples");

    engine.close_leg(caller_leg).unwrap();
    engine.close_leg(operator_leg).unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_transcodes_both_ways_one_shard() {
    bridged_call(1, 32000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_transcodes_both_ways_across_shards() {
    bridged_call(2, 33000).await;
}
