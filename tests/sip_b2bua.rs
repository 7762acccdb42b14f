//! Calls through the B2BUA on a `forward` number, with SIPp on both sides over real
//! loopback sockets: a caller (SIPp uac) dials 100, the engine places the call to
//! the configured target (SIPp uas), and every SIPp call must succeed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly by design

mod common;

use std::time::Duration;

use common::engine::{self, free_port, wait_for_events, wait_no_calls};
use common::sipp::{self, scenario, spawn, wait_bound};

enum Scenario {
    Builtin(&'static str),
    File(&'static str),
}

impl Scenario {
    fn args(&self) -> Vec<String> {
        match self {
            Scenario::Builtin(name) => vec!["-sn".into(), (*name).into()],
            Scenario::File(file) => vec!["-sf".into(), scenario(file)],
        }
    }
}

/// One story: `calls` calls from `caller` through the engine to `callee`.
async fn story(
    test: &str,
    tcp: bool,
    caller: Scenario,
    callee: Scenario,
    calls: u32,
) -> dispatchline::server::Engine {
    story_with(test, tcp, caller, callee, calls, |_| {}).await
}

/// [`story`] on an engine whose configuration `adjust` changed.
async fn story_with(
    test: &str,
    tcp: bool,
    caller: Scenario,
    callee: Scenario,
    calls: u32,
    adjust: impl FnOnce(&mut dispatchline::config::Config),
) -> dispatchline::server::Engine {
    let dir = sipp::workdir(test);
    let callee_port = free_port();
    let transport = if tcp { ";transport=tcp" } else { "" };
    let engine = engine::start_with(
        &format!(
            "[[trunk]]\nname = \"sipp\"\nproxy = \"127.0.0.1:5999\"\noptions_interval_s = 0\n\n[[number]]\nnumber = \"100\"\nkind = \"forward\"\ntarget = \"sip:127.0.0.1:{callee_port}{transport}\"\n"
        ),
        adjust,
    )
    .await;
    let t = if tcp { "t1" } else { "u1" };

    let mut callee_args = callee.args();
    callee_args.extend(["-i", "127.0.0.1", "-t", t, "-m"].map(String::from));
    callee_args.push(calls.to_string());
    callee_args.extend(["-p".to_owned(), callee_port.to_string()]);
    let uas = spawn("callee", &dir, &callee_args);
    wait_bound(callee_port).await;

    let mut caller_args = caller.args();
    caller_args.push(engine.sip_addr.to_string());
    caller_args.extend(
        [
            "-s",
            "100",
            "-i",
            "127.0.0.1",
            "-t",
            t,
            "-r",
            "20",
            "-l",
            "20",
            "-d",
            "200",
            "-m",
        ]
        .map(String::from),
    );
    caller_args.push(calls.to_string());
    caller_args.extend(["-p".to_owned(), free_port().to_string()]);
    let uac = spawn("caller", &dir, &caller_args);

    uac.finish(Duration::from_secs(90))
        .await
        .assert_success("caller");
    uas.finish(Duration::from_secs(30))
        .await
        .assert_success("callee");
    // Nothing is left behind: every call's state is gone once its transactions end.
    wait_no_calls(&engine, Duration::from_secs(15)).await;
    engine
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_reaches_the_forward_target_and_hangs_up_over_udp() {
    let engine = story(
        "fwd-udp",
        false,
        Scenario::Builtin("uac"),
        Scenario::Builtin("uas"),
        20,
    )
    .await;
    let ended = wait_for_events(&engine, "call.ended", 20, Duration::from_secs(10)).await;
    assert!(
        ended.iter().all(|e| e.payload["disposition"] == "answered"),
        "{ended:?}"
    );
    let answered = wait_for_events(&engine, "call.answered", 20, Duration::from_secs(1)).await;
    assert_eq!(answered.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_reaches_the_forward_target_and_hangs_up_over_tcp() {
    let engine = story(
        "fwd-tcp",
        true,
        Scenario::Builtin("uac"),
        Scenario::Builtin("uas"),
        20,
    )
    .await;
    let ended = wait_for_events(&engine, "call.ended", 20, Duration::from_secs(10)).await;
    assert!(
        ended.iter().all(|e| e.payload["disposition"] == "answered"),
        "{ended:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_gives_up_while_it_rings_cancels_the_target_over_udp() {
    let engine = story(
        "cancel-udp",
        false,
        Scenario::File("uac_cancel.xml"),
        Scenario::File("uas_ring_until_cancel.xml"),
        5,
    )
    .await;
    let ended = wait_for_events(&engine, "call.ended", 5, Duration::from_secs(10)).await;
    assert!(
        ended
            .iter()
            .all(|e| e.payload["disposition"] == "abandoned" && e.payload["sip_status"] == 487),
        "{ended:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_gives_up_while_it_rings_cancels_the_target_over_tcp() {
    story(
        "cancel-tcp",
        true,
        Scenario::File("uac_cancel.xml"),
        Scenario::File("uas_ring_until_cancel.xml"),
        5,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_callee_hangs_up_the_caller_gets_the_bye_over_udp() {
    let engine = story(
        "bye-udp",
        false,
        Scenario::File("uac_callee_hangs_up.xml"),
        Scenario::File("uas_hangs_up.xml"),
        5,
    )
    .await;
    let ended = wait_for_events(&engine, "call.ended", 5, Duration::from_secs(10)).await;
    assert!(
        ended.iter().all(|e| e.payload["disposition"] == "answered"),
        "{ended:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_callee_hangs_up_the_caller_gets_the_bye_over_tcp() {
    story(
        "bye-tcp",
        true,
        Scenario::File("uac_callee_hangs_up.xml"),
        Scenario::File("uas_hangs_up.xml"),
        5,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_never_acks_the_answer_is_hung_up_on_both_sides() {
    // T1 of 40 ms: the 2xx is retransmitted for 64·T1 = 2.56 s, then given up.
    let engine = story_with(
        "no-ack-udp",
        false,
        Scenario::File("uac_never_acks.xml"),
        Scenario::Builtin("uas"),
        2,
        |c| c.sip.t1 = Duration::from_millis(40),
    )
    .await;
    let ended = wait_for_events(&engine, "call.ended", 2, Duration::from_secs(10)).await;
    assert!(
        ended.iter().all(|e| e.payload["disposition"] == "answered"),
        "{ended:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_place_calls_through_the_engine() {
    // The only trunk is at 127.0.0.1; the stranger calls from 127.0.0.2.
    let target_port = free_port();
    let engine = engine::start(&format!(
        "[[trunk]]\nname = \"provider\"\nproxy = \"127.0.0.1:5999\"\noptions_interval_s = 0\n\n\
         [[number]]\nnumber = \"100\"\nkind = \"forward\"\ntarget = \"sip:127.0.0.1:{target_port}\"\n"
    ))
    .await;
    let target = tokio::net::UdpSocket::bind(("127.0.0.1", target_port))
        .await
        .unwrap();
    let stranger = tokio::net::UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let invite = format!(
        "INVITE sip:100@{0} SIP/2.0\r\nVia: SIP/2.0/UDP {1};branch=z9hG4bKstranger;rport\r\nFrom: <sip:fraud@example.com>;tag=f\r\nTo: <sip:100@{0}>\r\nCall-ID: stranger@test\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:fraud@{1}>\r\nContent-Length: 0\r\n\r\n",
        engine.sip_addr,
        stranger.local_addr().unwrap()
    );
    stranger
        .send_to(invite.as_bytes(), engine.sip_addr)
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut finals = Vec::new();
    while let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(500), stranger.recv_from(&mut buf)).await
    {
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.starts_with("SIP/2.0 100") {
            finals.push(text.lines().next().unwrap_or("").to_owned());
        }
    }
    assert_eq!(
        finals.first().map(String::as_str),
        Some("SIP/2.0 403 Forbidden: not a trunk or a registered operator")
    );
    let reached =
        tokio::time::timeout(Duration::from_millis(300), target.recv_from(&mut buf)).await;
    assert!(reached.is_err(), "nothing was sent to the target");
    assert_eq!(
        engine
            .calls
            .offered
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    // Counted where an operator looks: /metrics (the core publishes its counters
    // after each round, so the scrape may need another try).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = reqwest::get(format!("http://{}/metrics", engine.http_addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("dispatchline_{name} ")))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or_else(|| panic!("metric {name} missing:\n{text}"))
        };
        let refused = value("calls_refused_source_total");
        // A refusal for its source gets no journal row by design; the budget of
        // rejection rows was never touched.
        assert_eq!(value("calls_rejected_unjournaled_total"), 0);
        assert_eq!(value("calls_waiting"), 0, "nobody queued");
        if refused == 1 {
            break;
        }
        assert_eq!(refused, 0, "one stranger, one refusal");
        assert!(
            tokio::time::Instant::now() < deadline,
            "calls_refused_source_total never reached 1"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
