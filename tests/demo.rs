//! `dispatchline demo` as a newcomer uses it: a resident goes through the IVR menu
//! on Уют's number, operator 1001 logs in, goes ready and answers the call from the
//! console (the softphone is simulated), then hangs up from the console; nobody may
//! drive someone else's softphone.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly by design

mod common;

use std::time::Duration;

use common::engine::{scratch_dir, wait_for_events};
use dispatchline::call::OperatorState;
use dispatchline::demo::{LOGIN, start};
use dispatchline::sim::{Behaviour, Command, SimPhone};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_operator_answers_and_hangs_up_from_the_console() {
    let demo = start(
        "127.0.0.1:0".parse().unwrap(),
        &scratch_dir().join("demo"),
        false,
    )
    .await
    .unwrap();
    let engine = &demo.engine;
    let http = reqwest::Client::new();
    let base = format!("http://{}", engine.http_addr);
    assert!(
        http.get(format!("{base}/demo"))
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );

    // Log in as 1001 and go ready; the simulated colleagues take a break.
    let login: serde_json::Value = http
        .post(format!("{base}/api/v1/auth/token"))
        .json(&json!({ "extension": LOGIN.0, "password": LOGIN.1 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_owned();
    let ready = http
        .post(format!("{base}/api/v1/operators/1001/state"))
        .bearer_auth(&token)
        .json(&json!({ "state": "ready" }))
        .send()
        .await
        .unwrap();
    assert!(ready.status().is_success(), "{:?}", ready.text().await);
    for colleague in ["1002", "1003"] {
        engine
            .call_handle
            .set_operator_state(colleague, OperatorState::Paused, Some("test".into()))
            .await
            .unwrap()
            .unwrap();
    }

    // A resident of Уют calls; its number runs the demo's IVR menu, and the
    // resident presses 0 (an operator) while the menu plays.
    let resident = SimPhone::start(
        engine.sip_addr,
        demo.media.clone(),
        Behaviour {
            auto_answer: None,
            hang_up_after: None,
            voice: "ru/ticket-number-ask.wav".into(),
        },
    )
    .await
    .unwrap();
    resident.send(Command::Call {
        number: dispatchline::demo::MENU_NUMBER.into(),
        from: "+79120000002".into(),
        digits: dispatchline::demo::menu_keys('0'),
    });
    let dtmf = wait_for_events(engine, "call.dtmf", 1, Duration::from_secs(20)).await;
    assert_eq!(dtmf[0].payload["digit"], "0");
    assert_eq!(
        dtmf[0].payload["stage"], "menu",
        "pressed while the menu plays"
    );
    let ringing = wait_for_events(engine, "call.ringing", 1, Duration::from_secs(20)).await;
    assert_eq!(ringing[0].payload["operator"], "1001");
    assert_eq!(ringing[0].payload["tenant"], "uyut");

    // Someone else's softphone is not mine to answer.
    let foreign = http
        .post(format!("{base}/demo/softphones/1002/answer"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    let anonymous = http
        .post(format!("{base}/demo/softphones/1001/answer"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 403);

    let answer = http
        .post(format!("{base}/demo/softphones/1001/answer"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204);
    let answered = wait_for_events(engine, "call.answered", 1, Duration::from_secs(10)).await;
    assert_eq!(answered[0].payload["operator"], "1001");
    let hang_up = http
        .post(format!("{base}/demo/softphones/1001/hangup"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(hang_up.status(), 204);
    let ended = wait_for_events(engine, "call.ended", 1, Duration::from_secs(10)).await;
    assert_eq!(ended[0].payload["disposition"], "answered");
    demo.stop().await;
}

/// The demo's emergency story: a burst pipe is registered, level 1 does not
/// answer (a simulated colleague is rung first each time), level 2 is busy, and
/// level 3 takes the informer's call and presses 1, all within two minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_hands_a_burst_pipe_through_three_levels_to_the_one_who_presses_1() {
    use dispatchline::demo::handoff;
    use dispatchline::store::{AttemptDecision, AttemptOutcome, ChainState};
    let demo = start(
        "127.0.0.1:0".parse().unwrap(),
        &scratch_dir().join("demo-chain"),
        false,
    )
    .await
    .unwrap();
    let engine = &demo.engine;
    handoff::register_burst_pipe(&engine.store).await.unwrap();
    let accepted = wait_for_events(engine, "chain.accepted", 1, Duration::from_secs(120)).await;
    assert_eq!(accepted[0].payload["by_name"], handoff::LEVEL3.0);
    assert_eq!(accepted[0].payload["via"], "keypad");
    let ticket = dispatchline::store::TicketId(accepted[0].payload["ticket"].as_i64().unwrap());
    let chain = engine
        .store
        .chains_of_ticket(ticket)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(chain.state, ChainState::Accepted);
    let by_stage =
        |stage: &str| -> Vec<_> { chain.attempts.iter().filter(|a| a.stage == stage).collect() };
    assert!(
        by_stage("level-1")
            .iter()
            .all(|a| a.outcome == Some(AttemptOutcome::NoAnswer)
                && a.reach == "operator-first"
                && a.operator.is_some())
    );
    assert!(
        by_stage("level-2")
            .iter()
            .all(|a| a.outcome == Some(AttemptOutcome::Busy))
    );
    let last = by_stage("level-3");
    assert_eq!(last.len(), 1);
    assert_eq!(
        (last[0].reach.as_str(), last[0].decision),
        ("informer", Some(AttemptDecision::Accepted))
    );
    demo.stop().await;
}

/// The demo's follow-up calls, each driven the way the demo's timeline does: a
/// status check the electrician answers with 2, a resident's rating of 4, a
/// ticket handed to the heating company through a simulated colleague who records
/// the supplier's reference, and the hot water outage told to its house.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_makes_each_follow_up_call_within_a_minute() {
    use dispatchline::demo::follow_ups;
    let demo = start(
        "127.0.0.1:0".parse().unwrap(),
        &scratch_dir().join("demo-follow-ups"),
        false,
    )
    .await
    .unwrap();
    let engine = &demo.engine;
    // The timeline as the demo runs it (its pauses are the only difference).
    follow_ups::accepted_ticket(&engine.store).await.unwrap();
    follow_ups::done_ticket(&engine.store).await.unwrap();
    follow_ups::supplier_ticket(&engine.store).await.unwrap();
    follow_ups::broadcast(
        &engine.store,
        &engine.events,
        &dispatchline::config::Config::empty(),
    )
    .await
    .unwrap();
    let checked =
        wait_for_events(engine, "status-check.answered", 1, Duration::from_secs(60)).await;
    assert_eq!(checked[0].payload["answer"], "in-progress");
    let rated = wait_for_events(engine, "survey.answered", 1, Duration::from_secs(60)).await;
    assert_eq!(rated[0].payload["csi"], 4);
    assert_eq!(rated[0].payload["ces"], 5);
    let supplier = wait_for_events(engine, "supplier.called", 1, Duration::from_secs(60)).await;
    assert_eq!(supplier[0].payload["purpose"], "supplier-handoff");
    // The outage's residents (ten of them, one busy) are called.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let progress = wait_for_events(engine, "outage.broadcast", 1, Duration::from_secs(5)).await;
        let last = &progress[progress.len() - 1].payload;
        if last["answered"].as_i64().unwrap_or(0) >= 1 && last["busy"].as_i64().unwrap_or(0) >= 1 {
            assert_eq!(last["total"], 10);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{last}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    demo.stop().await;
}
