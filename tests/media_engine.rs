//! The engine over real loopback sockets: prompt playback (packets, timestamps,
//! marker, the finished event), the RTP inactivity timeout and hold, the port pool
//! (pairs, reuse, ports taken by others), recordings with no audio and recordings
//! finished by closing the leg, binding apart from the advertised address, RTCP
//! between the RTCP ports (port + 1) ending with a BYE.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/media_util.rs"]
mod util;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dispatchline::media::prompts::Prompt;
use dispatchline::media::sdp::Direction;
use dispatchline::media::{MediaEngine, MediaError, MediaEvent, Playlist, PromptLibrary};
use util::*;

fn library() -> Arc<PromptLibrary> {
    let mut lib = PromptLibrary::empty();
    lib.insert(Prompt::from_samples("beep", &tone(440.0, 8000, 0)));
    lib.insert(Prompt::from_samples("short", &tone(600.0, 1600, 0)));
    Arc::new(lib)
}

const PCMA: (&str, &str) = ("8 101", "a=rtpmap:101 telephone-event/8000\r\n");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_plays_on_the_grid_and_reports_when_done() {
    let (engine, mut events) = MediaEngine::start(
        &settings(34000, 34999),
        library(),
        "127.0.0.1".parse().unwrap(),
    )
    .unwrap();
    let (leg, local) = engine.open_leg().unwrap();
    let (sock, peer) = endpoint().await;
    engine
        .set_remote(leg, negotiate(peer, local, PCMA.0, PCMA.1))
        .unwrap();
    let id = engine
        .play(leg, &Playlist::sequence(["beep", "short"]))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1500];
    while let Ok(Ok((n, from))) =
        tokio::time::timeout(Duration::from_millis(300), sock.recv_from(&mut buf)).await
    {
        assert_eq!(from, local, "symmetric RTP: sent from the leg's own port");
        got.push((Instant::now(), parse_rtp(&buf[..n]).unwrap()));
    }
    assert_eq!(got.len(), 60, "1 s + 200 ms of prompt");
    assert!(
        got[0].1.1 && got.iter().skip(1).all(|p| !p.1.1),
        "marker on the first only"
    );
    for w in got.windows(2) {
        assert_eq!(w[1].1.3.wrapping_sub(w[0].1.3), 160);
        assert_eq!(w[1].1.2, w[0].1.2.wrapping_add(1));
        assert_eq!(w[1].1.4.len(), 160);
    }
    // Real time, loosely (CI machines are busy): 59 intervals of 20 ms = 1180 ms.
    let span = got[59].0 - got[0].0;
    assert!(
        span > Duration::from_millis(1100) && span < Duration::from_millis(1500),
        "{span:?}"
    );
    let done = wait_for(&mut events, Duration::from_secs(1), |e| match e {
        MediaEvent::PlaybackFinished { leg: l, id: i } if *l == leg => Some(*i),
        _ => None,
    })
    .await;
    assert_eq!(done, Some(id));
    assert!(matches!(
        engine.play(leg, &Playlist::one("nope")),
        Err(MediaError::Prompt(_))
    ));
    // A stopped looping playlist ends without an event.
    engine.play(leg, &Playlist::one("short").looping()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    engine.stop_playback(leg).unwrap();
    let later = collect(&mut events, Duration::from_millis(400)).await;
    assert!(
        !later
            .iter()
            .any(|e| matches!(e, MediaEvent::PlaybackFinished { .. })),
        "{later:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_timeout_fires_but_not_on_hold() {
    let mut s = settings(35000, 35999);
    s.rtp_timeout = Duration::from_millis(300);
    let (engine, mut events) =
        MediaEngine::start(&s, library(), "127.0.0.1".parse().unwrap()).unwrap();
    let (silent, local) = engine.open_leg().unwrap();
    let (_sock, peer) = endpoint().await;
    engine
        .set_remote(silent, negotiate(peer, local, PCMA.0, PCMA.1))
        .unwrap();
    let (held, local2) = engine.open_leg().unwrap();
    let (_sock2, peer2) = endpoint().await;
    let mut hold = negotiate(peer2, local2, PCMA.0, PCMA.1);
    hold.direction = Direction::RecvOnly; // the peer sent a=sendonly: it holds us
    engine.set_remote(held, hold).unwrap();
    let got = collect(&mut events, Duration::from_millis(900)).await;
    let timeouts: Vec<_> = got
        .iter()
        .filter_map(|e| match e {
            MediaEvent::RtpTimeout { leg } => Some(*leg),
            _ => None,
        })
        .collect();
    assert_eq!(timeouts, vec![silent]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_come_in_pairs_are_reused_and_skip_taken_ones() {
    // Four ports = two pairs; someone else holds the first RTP port.
    let base = 36100;
    let squatter = std::net::UdpSocket::bind(("127.0.0.1", base)).unwrap();
    let (engine, _events) = MediaEngine::start(
        &settings(base, base + 3),
        library(),
        "127.0.0.1".parse().unwrap(),
    )
    .unwrap();
    let (leg, local) = engine.open_leg().unwrap();
    assert_eq!(local.port(), base + 2, "the taken pair is skipped");
    assert!(matches!(engine.open_leg(), Err(MediaError::NoPorts { .. })));
    engine.close_leg(leg).unwrap();
    // The shard releases the pair when it has closed the sockets.
    let deadline = Instant::now() + Duration::from_secs(2);
    let reopened = loop {
        match engine.open_leg() {
            Ok((_, addr)) => break addr,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(reopened.port(), base + 2);
    drop(squatter);
    assert!(matches!(
        engine.set_remote(
            leg,
            negotiate("127.0.0.1:9".parse().unwrap(), local, PCMA.0, PCMA.1)
        ),
        Err(MediaError::UnknownLeg(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_without_audio_leave_no_file_and_close_finishes_them() {
    let dir = scratch("engine-rec");
    let (engine, mut events) = MediaEngine::start(
        &settings(37000, 37999),
        library(),
        "127.0.0.1".parse().unwrap(),
    )
    .unwrap();
    // A call that never got audio.
    let (quiet, _) = engine.open_leg().unwrap();
    let empty = dir.join("empty.wav");
    let rec = engine.start_recording(quiet, &empty).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    engine.stop_recording(rec).unwrap();
    let discarded = wait_for(&mut events, Duration::from_secs(2), |e| match e {
        MediaEvent::RecordingDiscarded { id } => Some(*id),
        _ => None,
    })
    .await;
    assert_eq!(discarded, Some(rec));
    assert!(!empty.exists());

    // A call hearing a prompt, hung up mid-prompt: closing the leg completes the file.
    let (leg, local) = engine.open_leg().unwrap();
    let (_sock, peer) = endpoint().await;
    engine
        .set_remote(leg, negotiate(peer, local, PCMA.0, PCMA.1))
        .unwrap();
    let path = dir.join("hangup.wav");
    let rec = engine.start_recording(leg, &path).unwrap();
    engine.play(leg, &Playlist::one("beep")).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Written as the call goes: the file exists before hang-up, under its
    // unfinished name until the recording is closed.
    let part = dir.join("hangup.wav.part");
    assert!(part.exists(), "the file is created with the first audio");
    assert!(!path.exists());
    engine.close_leg(leg).unwrap();
    let ready = wait_for(&mut events, Duration::from_secs(3), |e| match e {
        MediaEvent::RecordingReady { id, duration, .. } if *id == rec => Some(*duration),
        _ => None,
    })
    .await
    .expect("ready");
    assert!(ready >= Duration::from_millis(1000), "{ready:?}");
    let (left, right) = read_stereo(&path);
    assert!(left.iter().all(|s| *s == 0), "the caller said nothing");
    assert!(rms(&right) > 3000.0, "the caller heard the prompt");
    assert_eq!(engine.stats().recordings_ready, 1);
    assert_eq!(engine.stats().recordings_discarded, 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_a_stranger_does_not_stall_playback() {
    let (engine, mut events) = MediaEngine::start(
        &settings(38000, 38999),
        library(),
        "127.0.0.1".parse().unwrap(),
    )
    .unwrap();
    let (leg, local) = engine.open_leg().unwrap();
    let (sock, peer) = endpoint().await;
    engine
        .set_remote(leg, negotiate(peer, local, PCMA.0, PCMA.1))
        .unwrap();
    // The real peer speaks first, so the leg latches onto it.
    sock.send_to(&rtp(8, true, 1, 0, 0x77, &[0xD5; 160]), local)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let id = engine.play(leg, &Playlist::one("beep")).unwrap();
    // Junk and well-formed RTP from elsewhere, as fast as one thread can send, for
    // the length of the prompt.
    let flood = std::thread::spawn(move || {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let until = Instant::now() + Duration::from_millis(1000);
        let mut n = 0u32;
        while Instant::now() < until {
            let junk: &[u8] = if n % 2 == 0 {
                &[0xFF; 40]
            } else {
                &[0x80, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xD5]
            };
            let _ = s.send_to(junk, local);
            n += 1;
        }
        n
    });
    let mut got = 0;
    let mut buf = [0u8; 1500];
    let start = Instant::now();
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(300), sock.recv_from(&mut buf)).await
    {
        got += 1;
    }
    let sent = flood.join().unwrap();
    assert!(sent > 1000, "the flood sent {sent}");
    assert!(got >= 45, "only {got} of 50 prompt packets arrived");
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "{:?}",
        start.elapsed()
    );
    let done = wait_for(&mut events, Duration::from_secs(1), |e| match e {
        MediaEvent::PlaybackFinished { id: i, .. } => Some(*i),
        _ => None,
    })
    .await;
    assert_eq!(done, Some(id));
    // Neither kind of junk was taken for media.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(engine.stats().dropped > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_running_recordings() {
    fn assert_handle<T: Clone + Send + Sync + 'static>() {}
    assert_handle::<MediaEngine>();
    let dir = scratch("engine-shutdown");
    let (engine, mut events) = MediaEngine::start(
        &settings(39000, 39999),
        library(),
        "127.0.0.1".parse().unwrap(),
    )
    .unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        let (leg, local) = engine.open_leg().unwrap();
        let (_sock, peer) = endpoint().await;
        engine
            .set_remote(leg, negotiate(peer, local, PCMA.0, PCMA.1))
            .unwrap();
        ids.push(
            engine
                .start_recording(leg, dir.join(format!("{i}.wav")))
                .unwrap(),
        );
        engine.play(leg, &Playlist::one("beep").looping()).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    engine.shutdown();
    let mut ready = Vec::new();
    while ready.len() < 3 {
        match wait_for(&mut events, Duration::from_secs(3), |e| match e {
            MediaEvent::RecordingReady { id, .. } => Some(*id),
            _ => None,
        })
        .await
        {
            Some(id) => ready.push(id),
            None => break,
        }
    }
    ready.sort();
    assert_eq!(ready, ids);
    assert!(matches!(engine.open_leg(), Err(MediaError::Stopped)));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legs_bind_where_told_and_are_advertised_apart() {
    use dispatchline::media::EngineOptions;
    // 1:1 NAT: the public address is not this host's (binding there failed every
    // call); the leg binds to the local address and SDP gets the public one.
    let public: std::net::IpAddr = "203.0.113.7".parse().unwrap();
    for (bind, advertised) in [
        ("127.0.0.1", Some(public)),
        // Every interface, advertised as configured.
        ("0.0.0.0", Some("127.0.0.1".parse().unwrap())),
    ] {
        let (engine, _events) = MediaEngine::start_with(
            &settings(42000, 42999),
            library(),
            bind.parse().unwrap(),
            EngineOptions {
                advertised_ip: advertised,
                ..EngineOptions::default()
            },
        )
        .unwrap();
        let (leg, sdp_addr) = engine.open_leg().unwrap();
        assert_eq!(Some(sdp_addr.ip()), advertised, "{bind}");
        let local = std::net::SocketAddr::new("127.0.0.1".parse().unwrap(), sdp_addr.port());
        let (sock, peer) = endpoint().await;
        engine
            .set_remote(leg, negotiate(peer, sdp_addr, PCMA.0, PCMA.1))
            .unwrap();
        engine.play(leg, &Playlist::one("short")).unwrap();
        let mut buf = [0u8; 1500];
        let (_, from) = tokio::time::timeout(Duration::from_secs(1), sock.recv_from(&mut buf))
            .await
            .expect("the prompt arrives")
            .unwrap();
        assert_eq!(from, local, "{bind}: sent from the leg's socket");
        engine.shutdown();
    }
    // Every interface and nothing to advertise: SDP would say 0.0.0.0 (hold).
    assert!(matches!(
        MediaEngine::start(
            &settings(42000, 42999),
            library(),
            "0.0.0.0".parse().unwrap()
        ),
        Err(MediaError::Unadvertised(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtcp_goes_between_the_rtcp_ports_and_a_bye_ends_it() {
    use dispatchline::media::EngineOptions;
    let (engine, _events) = MediaEngine::start_with(
        &settings(43000, 43999),
        library(),
        "127.0.0.1".parse().unwrap(),
        EngineOptions {
            rtcp_interval: Duration::from_millis(200),
            ..EngineOptions::default()
        },
    )
    .unwrap();
    // The peer's RTP and RTCP ports, RTCP on RTP + 1 (RFC 3550 §11).
    let (rtp, rtcp) = loop {
        let rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = rtp.local_addr().unwrap().port();
        if port % 2 == 0 {
            if let Ok(rtcp) = tokio::net::UdpSocket::bind(("127.0.0.1", port + 1)).await {
                break (rtp, rtcp);
            }
        }
    };
    let peer = rtp.local_addr().unwrap();
    let (leg, local) = engine.open_leg().unwrap();
    engine
        .set_remote(leg, negotiate(peer, local, PCMA.0, PCMA.1))
        .unwrap();
    engine.play(leg, &Playlist::one("beep")).unwrap();
    let mut buf = [0u8; 1500];
    let (n, from) = tokio::time::timeout(Duration::from_secs(2), rtcp.recv_from(&mut buf))
        .await
        .expect("a report within two intervals")
        .unwrap();
    assert_eq!(from.port(), local.port() + 1, "from our RTCP port");
    assert_eq!(buf[1], 200, "a Sender Report: we send the prompt");
    assert!(n >= 28);
    // The peer's own report, to our RTCP port.
    let before = engine.stats().packets_in;
    let rr = [
        0x80, 201, 0, 1, 0, 0, 0xAB, 0xCD, // RR, no blocks
        0x81, 202, 0, 2, 0, 0, 0xAB, 0xCD, 1, 1, b'p', 0, // SDES CNAME "p"
    ];
    rtcp.send_to(&rr, from).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(engine.stats().packets_in > before);
    assert_eq!(engine.stats().dropped, 0, "a valid compound is not dropped");
    // Closing: the last RTCP is a BYE (RFC 3550 §6.6).
    engine.close_leg(leg).unwrap();
    let mut last = Vec::new();
    while let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(500), rtcp.recv_from(&mut buf)).await
    {
        last = buf[..n].to_vec();
    }
    let mut i = 0;
    let mut types = Vec::new();
    while i + 4 <= last.len() {
        types.push(last[i + 1]);
        i += (usize::from(u16::from_be_bytes([last[i + 2], last[i + 3]])) + 1) * 4;
    }
    assert_eq!(types.last(), Some(&203), "{types:?}");
}
