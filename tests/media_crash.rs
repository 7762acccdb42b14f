//! A crash loses at most a second of a recording (issue 4): a child process (this
//! test binary, run again) records RTP it is fed, and is killed with SIGKILL in the
//! middle. What reached the disk is within a second of what was fed, the file is
//! readable as it was left, and the start-up sweep repairs and names it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly by design

#[path = "common/media_util.rs"]
mod util;

use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use dispatchline::media::{MediaEngine, PromptLibrary};

const CHILD: &str = "DISPATCHLINE_CRASH_CHILD";
const TEST: &str = "a_killed_engine_loses_at_most_a_second_of_recording";

/// The child: records a leg and feeds it 20 ms packets, printing after each how
/// much audio it has fed so far, until it is killed.
fn child(dir: &str) -> ! {
    let (engine, _events) = MediaEngine::start(
        &util::settings(44000, 44999),
        Arc::new(PromptLibrary::empty()),
        "127.0.0.1".parse().unwrap(),
    )
    .unwrap();
    let (leg, local) = engine.open_leg().unwrap();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer = sock.local_addr().unwrap();
    engine
        .set_remote(
            leg,
            util::negotiate(peer, local, "8", "a=rtpmap:8 PCMA/8000\r\n"),
        )
        .unwrap();
    engine
        .start_recording(leg, std::path::Path::new(dir).join("crash.wav"))
        .unwrap();
    let start = Instant::now();
    let out = std::io::stdout();
    for n in 0u32.. {
        let due = start + Duration::from_millis(20) * n;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let p = util::rtp(8, n == 0, n as u16, n * 160, 0x5EED, &[0x9A; 160]);
        sock.send_to(&p, local).unwrap();
        // Fed so far: the packets sent, 20 ms each.
        let mut o = out.lock();
        let _ = writeln!(o, "fed {}", (n + 1) * 20);
        let _ = o.flush();
    }
    unreachable!()
}

#[test]
fn a_killed_engine_loses_at_most_a_second_of_recording() {
    if let Ok(dir) = std::env::var(CHILD) {
        child(&dir);
    }
    let dir = util::scratch("crash");
    let mut proc = std::process::Command::new(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, &dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let fed = Arc::new(AtomicU64::new(0));
    let reader = {
        let fed = fed.clone();
        let stdout = proc.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(ms) = line.strip_prefix("fed ").and_then(|v| v.parse().ok()) {
                    fed.store(ms, Ordering::SeqCst);
                }
            }
        })
    };
    // Kill it mid-chunk, some seconds in.
    let deadline = Instant::now() + Duration::from_secs(20);
    while fed.load(Ordering::SeqCst) < 3_310 {
        assert!(Instant::now() < deadline, "the child never fed 3.3 s");
        std::thread::sleep(Duration::from_millis(2));
    }
    proc.kill().unwrap(); // SIGKILL: no destructor, no flush, no header fix-up
    let fed_ms = fed.load(Ordering::SeqCst);
    proc.wait().unwrap();
    let _ = reader.join();

    let part = dir.join("crash.wav.part");
    assert!(part.is_file(), "the unfinished file is there");
    // As the crash left it: the header was brought up to date with every chunk.
    let on_disk = hound::WavReader::open(&part)
        .expect("readable as left")
        .duration();
    let repaired = dispatchline::media::recording::recover_unfinished(&dir, SystemTime::now());
    assert_eq!(repaired, vec![dir.join("crash.wav")]);
    let (left, _) = util::read_stereo(&dir.join("crash.wav"));
    assert_eq!(left.len() as u32, on_disk);
    // The file starts PRE_ROLL before the first audio.
    let audio_ms = u64::from(on_disk) * 1000 / 8000
        - dispatchline::media::recording::PRE_ROLL.as_millis() as u64;
    assert!(
        audio_ms + 1000 >= fed_ms,
        "fed {fed_ms} ms, {audio_ms} ms on disk: lost more than a second"
    );
    assert!(audio_ms <= fed_ms, "fed {fed_ms} ms, {audio_ms} ms on disk");
    eprintln!("fed {fed_ms} ms before SIGKILL, {audio_ms} ms on disk");
    assert!(
        left.iter().skip(480).take(8000).all(|s| *s != 0),
        "the audio fed is there"
    );
    let _ = std::fs::remove_dir_all(dir);
}
