//! Operator-first hand-offs over real SIP: a registered operator (SIPp) is rung
//! with the ticket on the card, the executor's phone (SIPp behind the trunk) rings
//! only when the operator answers, and the operator marks "accepted" through the
//! API; with no operator free in time the informer calls instead. And a provider
//! that fails with 503 hands the same attempt to the other trunk, while busy never
//! fails over.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::chains::{self, MANAGER};
use common::engine::{self, free_port, wait_for_events};
use common::sipp;
use dispatchline::store::directory::Responsibility;
use dispatchline::store::{AttemptOutcome, ChainState, TicketId, TicketStatus};

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
        "60000",
        "-trace_msg",
        "-message_file",
        "people.log",
    ]);
    let s = sipp::spawn("people", dir, &args);
    sipp::wait_bound(port).await;
    s
}

const OPERATOR: &str = "[[operator]]\nextension = \"1001\"\nname = \"Анна Смирнова\"\npassword = \"op1001pass-long\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_is_rung_first_and_records_that_the_executor_accepted() {
    let dir = sipp::workdir("chain-operator-first");
    let port = free_port();
    let _people = people(&dir, port).await;
    let engine = engine::start(&chains::config(
        port,
        "level_modes = [\"operator-first\"]\noperator_wait_s = 30",
        OPERATOR,
    ))
    .await;
    let p = chains::seed(&engine.store).await;
    // Level 1 is the person who answers.
    engine
        .store
        .set_responsibility(&Responsibility {
            tenant: "etalon".into(),
            house_group: "center".into(),
            work_type: "plumbing".into(),
            levels: [vec![p.manager], vec![p.level2], vec![p.level3]],
            responsible: Some(p.responsible),
            manager: None,
            head: None,
        })
        .await
        .unwrap();
    let copy = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sipp/g711a.pcap");
    std::fs::copy(copy, dir.join("g711a.pcap")).unwrap();
    let softphone = sipp::operator_on_duty(
        &engine,
        &dir,
        "operator_answers.xml",
        0,
        "1001",
        "op1001pass-long",
        1,
    )
    .await;

    let id = chains::register_ticket(engine.http_addr, "2001", "sup2001pass-long", &p).await;
    // The operator's card shows the ticket, who is called and which try it is.
    let offered = wait_for_events(&engine, "call.offered", 1, Duration::from_secs(10)).await;
    let card = &offered[0].payload["handoff"];
    assert_eq!(offered[0].payload["purpose"], "handoff");
    assert_eq!(card["ticket"]["ticket"], id);
    assert_eq!(card["ticket"]["address"], "ул. Ленина, д. 5");
    assert_eq!(card["ticket"]["category"], "emergency");
    assert_eq!(card["person_name"], "Управляющий Домом");
    assert_eq!(
        (card["attempt"].as_u64(), card["tries"].as_u64()),
        (Some(1), Some(5))
    );
    // The executor's phone rings only once the operator answered; they talk.
    let answered = wait_for_events(&engine, "call.answered", 1, Duration::from_secs(10)).await;
    assert_eq!(answered[0].payload["purpose"], "handoff");
    let chain = engine
        .store
        .chains_of_ticket(TicketId(id))
        .await
        .unwrap()
        .remove(0);
    let attempt = &chain.attempts[0];
    assert_eq!(attempt.phone, MANAGER);
    assert_eq!(attempt.operator.as_deref(), Some("1001"));
    assert_eq!(attempt.reach, "operator-first");

    // The operator records the result on the card.
    let token = chains::login(engine.http_addr, "1001", "op1001pass-long").await;
    let client = reqwest::Client::new();
    let url = format!(
        "http://{}/api/v1/chains/{}/attempts/{}/result",
        engine.http_addr, chain.id, attempt.seq
    );
    let r = client
        .post(&url)
        .bearer_auth(&token)
        .json(&serde_json::json!({ "result": "accepted" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let accepted = wait_for_events(&engine, "chain.accepted", 1, Duration::from_secs(5)).await;
    assert_eq!(accepted[0].payload["via"], "operator");
    assert_eq!(accepted[0].payload["operator"], "1001");
    let ticket = engine.store.ticket(TicketId(id)).await.unwrap().unwrap();
    assert_eq!(ticket.ticket.status, TicketStatus::Accepted);
    assert_eq!(ticket.ticket.executor_id, Some(p.manager));
    assert!(
        ticket
            .history
            .last()
            .unwrap()
            .note
            .contains("оператор 1001")
    );
    // A second result is refused: the chain is over.
    let again = client
        .post(&url)
        .bearer_auth(&token)
        .json(&serde_json::json!({ "result": "declined" }))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    engine.shutdown(Duration::from_secs(5)).await;
    drop(softphone);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_operator_free_the_informer_calls_and_a_503_fails_over_while_busy_does_not() {
    let dir = sipp::workdir("chain-no-operator");
    let port = free_port();
    let _people = people(&dir, port).await;
    // Provider X answers every INVITE with 503; provider Y has the people.
    let broken = free_port();
    let dir_x = sipp::workdir("chain-provider-x-down");
    let x = sipp::spawn(
        "provider-x",
        &dir_x,
        &sipp::args(&[
            "-sf",
            &sipp::scenario("provider_fails_503.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            &broken.to_string(),
            "-trace_msg",
            "-message_file",
            "x.log",
        ]),
    );
    sipp::wait_bound(broken).await;
    let second_trunk = format!(
        "[[trunk]]\nname = \"provider-y\"\nproxy = \"127.0.0.1:{port}\"\noptions_interval_s = 0\n"
    );
    let engine = engine::start(&chains::config(
        broken,
        "level_modes = [\"operator-first\"]\noperator_wait_s = 1\nescalation_mode = \"informer\"",
        &second_trunk,
    ))
    .await;
    let p = chains::seed(&engine.store).await;
    let engine_store = engine.store.clone();
    let id = chains::register_ticket(engine.http_addr, "2001", "sup2001pass-long", &p).await;
    wait_for_events(&engine, "chain.started", 1, Duration::from_secs(5)).await;
    // No operator is on duty: after the 1 s wait the informer calls level 1.
    let mut level2 = Vec::new();
    for _ in 0..300 {
        let c = engine
            .store
            .chains_of_ticket(TicketId(id))
            .await
            .unwrap()
            .remove(0);
        level2 = c
            .attempts
            .iter()
            .filter(|a| a.stage == "level-2" && a.outcome.is_some())
            .cloned()
            .collect();
        if level2.len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(level2.len(), 5, "level 2 tried five times");
    let chain = engine
        .store
        .chains_of_ticket(TicketId(id))
        .await
        .unwrap()
        .remove(0);
    assert!(
        chain
            .attempts
            .iter()
            .filter(|a| a.outcome.is_some())
            .all(|a| a.reach == "informer"),
        "the informer stood in for the operator"
    );
    // Busy from provider Y: no try on provider X again.
    assert!(
        level2
            .iter()
            .all(|a| a.outcome == Some(AttemptOutcome::Busy))
    );
    // Freeze everything, then compare what the store says with what the
    // providers saw.
    engine.shutdown(Duration::from_secs(5)).await;
    drop(x);
    let chain = engine_store
        .chains_of_ticket(TicketId(id))
        .await
        .unwrap()
        .remove(0);
    let dialled = chain
        .attempts
        .iter()
        .filter(|a| a.call_id.is_some())
        .count();
    let x_invites: usize = chains::invites_by_number(&dir_x.join("x.log"))
        .values()
        .sum();
    let y_invites: usize = chains::invites_by_number(&dir.join("people.log"))
        .values()
        .sum();
    // Every call went to X first (503), then to Y within the same attempt; Y's
    // busy never sent it back to X.
    assert_eq!(x_invites, dialled, "each call tried provider X once");
    assert!(
        y_invites + 1 >= dialled && y_invites <= dialled,
        "{y_invites} INVITEs on provider Y for {dialled} calls"
    );
    assert_eq!(
        chain.state,
        ChainState::Running,
        "the chain waits for the next node"
    );
}
