//! SIPp's captures played into an engine leg over loopback UDP, with their original
//! timing, as SIPp's `uac_pcap` scenario does after the SIP exchange: the engine
//! detects exactly the digit each RFC 4733 capture holds, and the caller channel of
//! the recording holds the audio of `g711a.pcap` (energy envelopes compared with the
//! capture decoded independently).

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/media_util.rs"]
mod util;

use std::sync::Arc;
use std::time::Duration;

use dispatchline::media::{MediaEngine, MediaEvent, PromptLibrary};
use util::*;

const SIPP_FORMATS: &str = "8 101";
const SIPP_RTPMAPS: &str = "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

/// Sends a capture's payloads to `to` from `socket` with their original spacing.
async fn play_capture(
    socket: &tokio::net::UdpSocket,
    to: std::net::SocketAddr,
    packets: &[Captured],
) {
    let start = tokio::time::Instant::now();
    for p in packets {
        tokio::time::sleep_until(start + p.offset).await;
        socket.send_to(&p.payload, to).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_dtmf_capture_gives_exactly_its_digit() {
    let (engine, mut events) = MediaEngine::start(
        &settings(31000, 31999),
        Arc::new(PromptLibrary::empty()),
        "127.0.0.1".parse().unwrap(),
    )
    .unwrap();
    let files = [
        ("dtmf_2833_0.pcap", '0'),
        ("dtmf_2833_1.pcap", '1'),
        ("dtmf_2833_2.pcap", '2'),
        ("dtmf_2833_3.pcap", '3'),
        ("dtmf_2833_4.pcap", '4'),
        ("dtmf_2833_5.pcap", '5'),
        ("dtmf_2833_6.pcap", '6'),
        ("dtmf_2833_7.pcap", '7'),
        ("dtmf_2833_8.pcap", '8'),
        ("dtmf_2833_9.pcap", '9'),
        ("dtmf_2833_star.pcap", '*'),
        ("dtmf_2833_pound.pcap", '#'),
    ];
    let mut legs = Vec::new();
    let mut senders = Vec::new();
    for (file, digit) in files {
        let packets = read_pcap(&sipp_capture(file));
        assert_eq!(packets.len(), 10, "{file}");
        let (leg, local) = engine.open_leg().unwrap();
        let (sock, peer) = endpoint().await;
        engine
            .set_remote(leg, negotiate(peer, local, SIPP_FORMATS, SIPP_RTPMAPS))
            .unwrap();
        legs.push((leg, digit));
        senders.push(tokio::spawn(async move {
            play_capture(&sock, local, &packets).await
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    // Give stragglers (a fourth end packet, a late report) time to show up.
    let got = collect(&mut events, Duration::from_millis(500)).await;
    for (leg, digit) in legs {
        let digits: Vec<(char, Duration)> = got
            .iter()
            .filter_map(|e| match e {
                MediaEvent::Dtmf {
                    leg: l,
                    digit,
                    duration,
                    ..
                } if *l == leg => Some((*digit, *duration)),
                _ => None,
            })
            .collect();
        // Three end packets at duration 2240 = 280 ms, reported once.
        assert_eq!(digits, vec![(digit, Duration::from_millis(280))], "{leg}");
    }
    assert_eq!(engine.stats().dtmf_detected, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g711a_capture_is_recorded_on_the_caller_channel() {
    let dir = scratch("pcap-rec");
    let (engine, mut events) = MediaEngine::start(
        &settings(31000, 31999),
        Arc::new(PromptLibrary::empty()),
        "127.0.0.1".parse().unwrap(),
    )
    .unwrap();
    let (leg, local) = engine.open_leg().unwrap();
    let (sock, peer) = endpoint().await;
    engine
        .set_remote(leg, negotiate(peer, local, SIPP_FORMATS, SIPP_RTPMAPS))
        .unwrap();
    let path = dir.join("2026/etalon/call.wav");
    let rec = engine.start_recording(leg, &path).unwrap();

    // uac_pcap: the speech, a pause, then a DTMF digit.
    let speech = read_pcap(&sipp_capture("g711a.pcap"));
    assert_eq!(speech.len(), 236);
    play_capture(&sock, local, &speech).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    play_capture(&sock, local, &read_pcap(&sipp_capture("dtmf_2833_1.pcap"))).await;
    let digit = wait_for(&mut events, Duration::from_secs(2), |e| match e {
        MediaEvent::Dtmf { digit, .. } => Some(*digit),
        _ => None,
    })
    .await;
    assert_eq!(digit, Some('1'));

    engine.stop_recording(rec).unwrap();
    let ready = wait_for(&mut events, Duration::from_secs(5), |e| match e {
        MediaEvent::RecordingReady {
            id,
            path,
            duration,
            bytes,
        } if *id == rec => Some((path.clone(), *duration, *bytes)),
        _ => None,
    })
    .await
    .expect("recording ready");
    assert_eq!(ready.0, path);
    assert_eq!(ready.2, std::fs::metadata(&path).unwrap().len());
    assert!(ready.1 >= Duration::from_millis(7000), "{:?}", ready.1);

    // The capture decoded independently, placed by RTP timestamp.
    let mut reference = Vec::new();
    let mut first_ts = None;
    for p in &speech {
        let (pt, _, _, ts, payload) = parse_rtp(&p.payload).unwrap();
        assert_eq!(pt, 8);
        let base = *first_ts.get_or_insert(ts);
        let at = ts.wrapping_sub(base) as usize;
        if reference.len() < at + payload.len() {
            reference.resize(at + payload.len(), 0);
        }
        for (k, b) in payload.iter().enumerate() {
            reference[at + k] = alaw(*b);
        }
    }
    let (left, right) = read_stereo(&path);
    assert!(
        right.iter().all(|s| *s == 0),
        "nothing was sent to the caller"
    );
    let env_ref = envelope(&reference, 160);
    let env_rec = envelope(&left, 160);
    let (corr, shift) = best_alignment(&env_ref, &env_rec, 50);
    assert!(
        corr > 0.98,
        "envelope correlation {corr:.3} at shift {shift}"
    );
    // And sample for sample, once aligned: the recording is the decoded capture.
    let offset = (shift.max(0) as usize) * 160;
    let exact = (0..reference.len().min(left.len().saturating_sub(offset)))
        .filter(|i| left[offset + i] == reference[*i])
        .count();
    assert!(
        exact as f64 > reference.len() as f64 * 0.9,
        "{exact} of {} samples equal",
        reference.len()
    );
    let _ = std::fs::remove_dir_all(dir);
}
