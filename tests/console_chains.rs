//! The console shows a hand-off chain, in real headless Chromium against a real
//! engine: a supervisor watches an emergency ticket's chain on the board (who is
//! being called, the countdown to the next level) and opens the ticket's calls from
//! the list; operator 1001 goes ready, the engine rings their softphone (SIPp) with
//! the ticket on the card, dials the executor when the softphone answers, and the
//! operator records «Принял заявку»; the ticket is accepted by that executor.
//! Screenshots of every step are in `tests/artifacts/console_chains/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "common/browser.rs"]
mod browser;

use std::path::Path;
use std::time::Duration;

use browser::Browser;
use common::chains;
use common::engine::{free_port, wait_for_events};
use common::sipp;
use dispatchline::store::directory::Responsibility;
use dispatchline::store::{ChainState, TicketId, TicketStatus};

const WAIT: Duration = Duration::from_secs(15);

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
async fn a_supervisor_watches_the_chain_and_the_operator_records_the_acceptance() {
    let dir = sipp::workdir("console-chains");
    for file in ["dtmf_2833_1.pcap", "g711a.pcap"] {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/sipp")
                .join(file),
            dir.join(file),
        )
        .unwrap();
    }
    let port = free_port();
    let _people = sipp::spawn(
        "people",
        &dir,
        &sipp::args(&[
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
        ]),
    );
    sipp::wait_bound(port).await;
    let operators = "[[operator]]\nextension = \"1001\"\nname = \"Анна Смирнова\"\npassword = \"op1001pass-long\"\ntenants = [\"etalon\"]\n";
    let engine = common::engine::start(&chains::config(
        port,
        "level_modes = [\"operator-first\", \"informer\"]\noperator_wait_s = 120",
        operators,
    ))
    .await;
    let p = chains::seed(&engine.store).await;
    // Level 1 is the person who answers; the operator reads the ticket to them.
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
    let url = format!("http://{}/", engine.http_addr);
    let mut b = Browser::start("console_chains").await;

    // The supervisor's board shows the chain as soon as the ticket is registered.
    login(&mut b, &url, "2001", "sup2001pass-long").await;
    b.wait_for("#tab-board[aria-selected='true']", None, WAIT)
        .await;
    let id = chains::register_ticket(engine.http_addr, "2001", "sup2001pass-long", &p).await;
    let row = b
        .wait_text(
            "#b-chains tr[data-state='running']",
            Some("Уровень 1"),
            WAIT,
        )
        .await;
    assert!(row.contains("№ 1001"), "{row}");
    b.wait_for(
        "#b-chains [data-testid='chain-now']",
        Some("Управляющий Домом"),
        WAIT,
    )
    .await;
    let countdown = b.wait_text("#b-chains .countdown", None, WAIT).await;
    assert!(countdown.contains(':'), "a countdown: {countdown}");
    b.screenshot("board-chain-running").await;

    // The ticket's chain from the list: the call waiting for an operator.
    b.wait_click("#tab-tickets", None, WAIT).await;
    b.wait_click(&format!("[data-open-ticket='{id}']"), None, WAIT)
        .await;
    b.wait_for(
        "#ticket-detail [data-testid='chain-state']",
        Some("идёт"),
        WAIT,
    )
    .await;
    b.wait_for(
        "#ticket-detail [data-testid='chain-attempts']",
        Some("Управляющий Домом"),
        WAIT,
    )
    .await;
    b.screenshot("ticket-chain").await;
    b.click(&b.find("#btn-signout").await).await;

    // Operator 1001 goes ready: their softphone is rung with the ticket on the card.
    let _softphone = sipp::operator_on_duty(
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
    let card = b
        .wait_text("[data-testid='handoff']", Some("Заявка № 1001"), WAIT)
        .await;
    assert!(card.contains("АВАРИЙНАЯ"), "{card}");
    assert!(card.contains("ул. Ленина, д. 5, кв. 12"), "{card}");
    let who = b
        .wait_text("[data-testid='handoff-who']", Some("попытка 1 из 5"), WAIT)
        .await;
    assert!(
        who.contains("Управляющий Домом") && who.contains("+79130000005"),
        "{who}"
    );
    b.screenshot("operator-card").await;
    // The softphone answered and the executor answers: they talk; the operator
    // records the acceptance.
    wait_for_events(&engine, "call.answered", 1, WAIT).await;
    b.wait_for(
        "[data-testid='call-card'][data-status='answered']",
        None,
        WAIT,
    )
    .await;
    b.wait_click(
        "[data-testid='handoff'] [data-result='accepted']",
        None,
        WAIT,
    )
    .await;
    b.wait_for("[data-testid='handoff-result']", Some("ПРИНЯЛ"), WAIT)
        .await;
    b.screenshot("operator-recorded").await;
    let accepted = wait_for_events(&engine, "chain.accepted", 1, WAIT).await;
    assert_eq!(accepted[0].payload["operator"], "1001");
    let ticket = engine.store.ticket(TicketId(id)).await.unwrap().unwrap();
    assert_eq!(ticket.ticket.status, TicketStatus::Accepted);
    assert_eq!(ticket.ticket.executor_id, Some(p.manager));
    let chain = engine
        .store
        .chains_of_ticket(TicketId(id))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(chain.state, ChainState::Accepted);

    // Nothing stale: the ticket opened in the list says accepted.
    b.wait_click("#tab-tickets", None, WAIT).await;
    b.wait_click(&format!("[data-open-ticket='{id}']"), None, WAIT)
        .await;
    b.wait_for(
        "#ticket-detail [data-testid='chain-state']",
        Some("принята"),
        WAIT,
    )
    .await;
    b.screenshot("ticket-accepted").await;
    b.quit().await;
    engine.shutdown(Duration::from_secs(5)).await;
}
