//! Stories of emergency tickets handed over by phone, over real SIP on loopback:
//! SIPp behind the provider's trunk plays the people of the chain, the informer
//! calls them, and the manager accepts by pressing 1 (RFC 4733 events from SIPp's
//! own capture). Timers are seconds here; the 10-minute levels run in virtual time
//! in tests/chain_runner.rs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::chains::{self, HEAD, LEVEL1, LEVEL2, LEVEL3, MANAGER, RESPONSIBLE};
use common::engine::{self, free_port, wait_for_events};
use common::sipp;
use dispatchline::store::{AttemptDecision, AttemptOutcome, ChainState, TicketId, TicketStatus};

/// SIPp playing the people of the chain on a free port; its message log is
/// `people.log` in `dir`.
async fn people(dir: &Path, port: u16) -> sipp::Sipp {
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sipp/dtmf_2833_1.pcap");
    std::fs::copy(capture, dir.join("dtmf_2833_1.pcap")).unwrap();
    let args = sipp::args(&[
        "-sf",
        &sipp::scenario("chain_people.xml"),
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-mp",
        &free_port().to_string(),
        "-d",
        "1500",
        "-trace_msg",
        "-message_file",
        "people.log",
    ]);
    let s = sipp::spawn("people", dir, &args);
    sipp::wait_bound(port).await;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emergency_nobody_answers_until_the_manager_presses_1() {
    let dir = sipp::workdir("chain-story");
    let port = free_port();
    let sipp = people(&dir, port).await;
    let engine = engine::start_with(
        &chains::config(
            port,
            "level_modes = [\"informer\"]\nescalation_mode = \"informer\"\ninformer_repeats = 1",
            "",
        ),
        |c| c.media.record_calls = true,
    )
    .await;
    let people = chains::seed(&engine.store).await;

    // An operator registers the ticket through the API: its chain starts at once.
    let id = chains::register_ticket(engine.http_addr, "2001", "sup2001pass-long", &people).await;
    let started = wait_for_events(&engine, "chain.started", 1, Duration::from_secs(5)).await;
    assert_eq!(started[0].payload["ticket"], id);
    let accepted = wait_for_events(&engine, "chain.accepted", 1, Duration::from_secs(60)).await;
    assert_eq!(accepted[0].payload["by_name"], "Управляющий Домом");
    assert_eq!(accepted[0].payload["via"], "keypad");
    // Whatever still rang is cancelled; nothing more is dialled.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let ticket = engine.store.ticket(TicketId(id)).await.unwrap().unwrap();
    assert_eq!(ticket.ticket.status, TicketStatus::Accepted);
    assert_eq!(ticket.ticket.executor_id, Some(people.manager));
    let chain = engine
        .store
        .chains_of_ticket(TicketId(id))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(chain.state, ChainState::Accepted);
    let of = |phone: &str, stage: &str| -> Vec<&dispatchline::store::ChainAttempt> {
        chain
            .attempts
            .iter()
            .filter(|a| a.phone == phone && a.stage == stage)
            .collect()
    };
    // Exactly five tries of each of level 1's numbers, each with its own outcome:
    // 480 before ringing is unreachable, ringing out is no answer.
    assert_eq!(of(LEVEL1[0], "level-1").len(), 5);
    assert_eq!(of(LEVEL1[1], "level-1").len(), 5);
    assert!(
        of(LEVEL1[0], "level-1")
            .iter()
            .all(|a| a.outcome == Some(AttemptOutcome::Unreachable) && a.sip_status == Some(480))
    );
    assert!(
        of(LEVEL1[1], "level-1")
            .iter()
            .all(|a| a.outcome == Some(AttemptOutcome::NoAnswer))
    );
    assert!(
        of(LEVEL2, "level-2")
            .iter()
            .all(|a| a.outcome == Some(AttemptOutcome::Busy))
    );
    assert_eq!(of(LEVEL2, "level-2").len(), 5);
    assert_eq!(of(LEVEL3, "level-3").len(), 5);
    assert!(
        of(RESPONSIBLE, "responsible")
            .iter()
            .all(|a| a.outcome == Some(AttemptOutcome::Rejected))
    );
    // The informer dialled all three levels, and the manager accepted.
    for phone in [LEVEL1[0], LEVEL2, LEVEL3] {
        assert!(!of(phone, "informer").is_empty(), "informer to {phone}");
    }
    let accepted = of(MANAGER, "manager");
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].decision, Some(AttemptDecision::Accepted));
    assert!(of(HEAD, "head").is_empty(), "the head was never needed");

    // The accepted call is recorded and its recording is on the attempt.
    let mut recording = None;
    for _ in 0..100 {
        let c = engine
            .store
            .chains_of_ticket(TicketId(id))
            .await
            .unwrap()
            .remove(0);
        recording = c
            .attempts
            .iter()
            .find(|a| a.decision == Some(AttemptDecision::Accepted))
            .and_then(|a| a.recording_id);
        if recording.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recording.is_some(), "the manager's call is recorded");
    let journal_row = engine
        .store
        .get_call(accepted[0].call_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(journal_row.ticket_id, Some(TicketId(id)));

    // SIPp saw exactly the INVITEs the store holds: no attempt twice, nothing after
    // the acceptance.
    drop(sipp);
    let invites = chains::invites_by_number(&dir.join("people.log"));
    for phone in [LEVEL1[0], LEVEL1[1], LEVEL2, LEVEL3, RESPONSIBLE, MANAGER] {
        let stored = chain.attempts.iter().filter(|a| a.phone == phone).count();
        assert_eq!(
            invites.get(phone).copied().unwrap_or(0),
            stored,
            "INVITEs to {phone}"
        );
    }
    // Every step is on the ticket and on the bus with the ticket and the chain.
    let attempts = engine::wait_for_events(
        &engine,
        "dial.attempt",
        chain.attempts.len(),
        Duration::from_secs(1),
    )
    .await;
    assert!(
        attempts
            .iter()
            .all(|e| e.payload["ticket"] == id && e.payload["chain"] == chain.id.0)
    );
    for kind in ["chain.escalated", "dial.outcome"] {
        assert!(
            !engine
                .events
                .replay(0)
                .unwrap()
                .iter()
                .all(|e| e.kind != kind),
            "{kind}"
        );
    }
    let api = reqwest::Client::new();
    let token = chains::login(engine.http_addr, "2001", "sup2001pass-long").await;
    let detail: serde_json::Value = api
        .get(format!("http://{}/api/v1/tickets/{id}", engine.http_addr))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["handoff"]["state"], "accepted");
    assert_eq!(
        detail["handoff"]["attempts"].as_array().unwrap().len(),
        chain.attempts.len()
    );
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_ticket_mid_chain_cancels_the_ringing_call_and_dials_nobody_else() {
    let dir = sipp::workdir("chain-cancel");
    let port = free_port();
    let sipp = people(&dir, port).await;
    // Level 1 rings for 20 s (the second number of level 1 rings and never
    // answers; the first is made unreachable for this test by trying it second).
    let engine = engine::start_with(
        &chains::config(port, "level_modes = [\"informer\"]", ""),
        |c| c.dialer.ring_timeout = Duration::from_secs(20),
    )
    .await;
    let people = chains::seed(&engine.store).await;
    let id = chains::register_ticket(engine.http_addr, "2001", "sup2001pass-long", &people).await;
    // Wait until level 1's ringing number rings.
    let mut ringing = false;
    for _ in 0..100 {
        let c = engine.store.chains_of_ticket(TicketId(id)).await.unwrap();
        if c.first().is_some_and(|c| {
            c.attempts.iter().any(|a| {
                a.phone == LEVEL1[1] && a.state == dispatchline::store::AttemptState::Ringing
            })
        }) {
            ringing = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ringing, "level 1's second number rings");
    let token = chains::login(engine.http_addr, "2001", "sup2001pass-long").await;
    let status = reqwest::Client::new()
        .post(format!(
            "http://{}/api/v1/tickets/{id}/status",
            engine.http_addr
        ))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "status": "cancelled", "note": "дубль" }))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let cancelled = wait_for_events(&engine, "chain.cancelled", 1, Duration::from_secs(5)).await;
    assert_eq!(cancelled[0].payload["ticket"], id);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let chain = engine
        .store
        .chains_of_ticket(TicketId(id))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(chain.state, ChainState::Cancelled);
    let last = chain.attempts.last().unwrap();
    assert_eq!(last.outcome, Some(AttemptOutcome::Cancelled));
    drop(sipp);
    let log = std::fs::read_to_string(dir.join("people.log")).unwrap_or_default();
    assert!(log.contains("CANCEL sip:"), "the ringing call got a CANCEL");
    let invites = chains::invites_by_number(&dir.join("people.log"));
    let total: usize = invites.values().sum();
    assert_eq!(total, chain.attempts.len(), "nobody else was dialled");
    let _ = people.level2;
    engine.shutdown(Duration::from_secs(5)).await;
}
