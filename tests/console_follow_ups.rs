//! The console shows follow-up calls, in real headless Chromium against a real
//! engine: a supervisor starts an outage broadcast and watches its progress on the
//! board; operator 1001's softphone (SIPp) is rung for a status check of a ticket
//! accepted two hours ago, the card says why the engine calls and what to ask, and
//! when the executor is on the line the operator records «В работе»: the ticket
//! moves to in progress. Screenshots are in `tests/artifacts/console_follow_ups/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "common/browser.rs"]
mod browser;

use std::path::Path;
use std::time::Duration;

use browser::Browser;
use chrono::Utc;
use common::chains::login as api_login;
use common::engine::{free_port, wait_for_events};
use common::follow_ups::{self, phone};
use common::sipp;
use dispatchline::store::TicketStatus;
use dispatchline::store::notices::NewOutage;

const WAIT: Duration = Duration::from_secs(20);

async fn login(b: &mut Browser, url: &str, extension: &str, password: &str) {
    b.goto(url).await;
    let ext = b.wait_for("#login-extension", None, WAIT).await;
    b.type_into(&ext, extension).await;
    let pw = b.find("#login-password").await;
    b.type_into(&pw, password).await;
    b.click(&b.find("#login-submit").await).await;
    b.wait_for("#conn[data-conn='live']", None, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_shows_a_broadcast_and_the_operator_records_a_status_check() {
    let dir = sipp::workdir("console-follow-ups");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sipp/g711a.pcap"),
        dir.join("g711a.pcap"),
    )
    .unwrap();
    let port = free_port();
    let _people = follow_ups::people(&dir, port, 1500).await;
    let engine = common::engine::start(&follow_ups::config(
        port,
        "ekb",
        "quiet_hours = \"00:00-00:00\"\nstatus_check_reach = \"operator-first\"",
    ))
    .await;
    let w = follow_ups::seed(&engine.store, "ekb", "Asia/Yekaterinburg").await;
    let url = format!("http://{}/", engine.http_addr);
    let mut b = Browser::start("console_follow_ups").await;

    // The supervisor starts a broadcast of a hot water outage to six residents.
    login(&mut b, &url, "2001", "sup2001pass-long").await;
    b.wait_for("#tab-board[aria-selected='true']", None, WAIT)
        .await;
    let now = Utc::now();
    for i in 1..=6 {
        engine
            .store
            .learn_contact(
                &phone(&format!("+79150000{i:03}")),
                "etalon",
                w.house2,
                Some(&i.to_string()),
                now,
            )
            .await
            .unwrap();
    }
    let outage = engine
        .store
        .create_outage(
            &NewOutage {
                tenant: "etalon".into(),
                kind: "hot_water".into(),
                text: "Нет горячей воды до 18:00".into(),
                starts_at: now,
                ends_at: now + chrono::Duration::hours(6),
                house_ids: vec![w.house2],
            },
            now,
        )
        .await
        .unwrap();
    let token = api_login(engine.http_addr, "2001", "sup2001pass-long").await;
    let started = reqwest::Client::new()
        .post(format!(
            "http://{}/api/v1/outages/{}/broadcast",
            engine.http_addr, outage.id.0
        ))
        .bearer_auth(&token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let row = b
        .wait_text(
            "#b-broadcasts [data-testid='broadcast']",
            Some("Нет горячей воды до 18:00"),
            WAIT,
        )
        .await;
    assert!(
        row.contains("УК «Эталон»") || row.contains("etalon"),
        "{row}"
    );
    // Live from the events: every resident called and answered, without a reload.
    let figures = b
        .wait_text(
            "#b-broadcasts [data-testid='broadcast-figures']",
            Some("6 из 6 · ответили 6"),
            Duration::from_secs(60),
        )
        .await;
    assert!(figures.contains("занято 0"), "{figures}");
    b.screenshot("board-broadcast").await;
    b.click(&b.find("#btn-signout").await).await;

    // A ticket accepted two hours ago: its status check rings operator 1001 first.
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
    login(&mut b, &url, "1001", "op1001pass-long").await;
    let accepted = Utc::now() - chrono::Duration::hours(2);
    let t = follow_ups::ticket(
        &engine.store,
        &w,
        None,
        accepted - chrono::Duration::minutes(3),
    )
    .await;
    follow_ups::move_to(&engine.store, t, TicketStatus::Accepted, accepted).await;
    let card = b
        .wait_text(
            "[data-testid='follow-up'][data-purpose='status-check']",
            Some("Проверка выполнения заявки"),
            WAIT,
        )
        .await;
    assert!(card.contains("Не работает домофон"), "{card}");
    assert!(card.contains("ул. Ленина, д. 5"), "{card}");
    let ask = b
        .wait_text("[data-testid='follow-up-ask']", None, WAIT)
        .await;
    assert!(ask.contains("как идут работы"), "{ask}");
    b.screenshot("operator-status-check").await;

    // The softphone answered and the engine dialled the executor: the operator asks
    // and records the answer.
    wait_for_events(&engine, "call.answered", 1, WAIT).await;
    b.wait_click(
        "[data-testid='status-answers'] [data-answer='in-progress']",
        None,
        WAIT,
    )
    .await;
    b.wait_for("[data-testid='follow-up-result']", Some("В работе"), WAIT)
        .await;
    b.screenshot("operator-recorded").await;
    let answered = wait_for_events(&engine, "status-check.answered", 1, WAIT).await;
    assert_eq!(answered[0].payload["by"], "1001");
    assert_eq!(answered[0].payload["answer"], "in-progress");
    let detail = engine.store.ticket(t).await.unwrap().unwrap();
    assert_eq!(detail.ticket.status, TicketStatus::InProgress);

    b.quit().await;
    engine.shutdown(Duration::from_secs(5)).await;
    drop(softphone);
}
