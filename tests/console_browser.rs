//! The operator console in real headless Chromium against a real engine over the
//! demo data: an operator logs in and goes ready; a call arrives and the call card
//! shows the caller's address, the outage and the open tickets; the operator
//! registers an emergency ticket from the card and reads its number; the ticket is
//! red in the list; the call's recording plays; a dropped websocket reconnects with
//! `since` and shows nothing twice; the supervisor's board shows the compliance
//! tiles and the chart. Screenshots of every step are in
//! `target/test-artifacts/console_browser/`.
//!
//! The call is real: SIPp registers operator 1001's softphone and answers for it, a
//! SIPp resident calls the tenant number over SIP and RTP, and the page shows what
//! the call core publishes; the recording played is the call's own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "common/browser.rs"]
mod browser;

use std::path::Path;
use std::time::Duration;

use browser::Browser;
use common::engine::free_port;
use common::sipp::{self, Sipp};
use dispatchline::config::Config;
use dispatchline::server::Engine;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

const CONFIG: &str = r#"
[[trunk]]
name = "provider-x"
proxy = "127.0.0.1:5999"
options_interval_s = 0

[[number]]
number = "+73432000001"
kind = "tenant"
tenant = "etalon"
city = "ekb"
trunk = "provider-x"
greeting = "ru/greeting-etalon.wav"

[[operator]]
extension = "1001"
name = "Иванова Мария"
password = "pw-1001"
tenants = ["etalon"]

[[operator]]
extension = "9000"
name = "Петров Сергей"
password = "pw-9000"
role = "supervisor"
"#;

struct World {
    engine: Engine,
    url: String,
}

async fn world() -> World {
    let dir = common::engine::scratch_dir();
    let text = format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\ndigest_algorithms = [\"MD5\"]\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n\
         [database]\nurl = \"sqlite://{0}/dispatchline.db\"\ndata_dir = \"{0}\"\n\n\
         [media]\nrecord_calls = true\nprompts_dir = \"{1}/ivr-prompts\"\n\n{CONFIG}",
        dir.display(),
        env!("CARGO_MANIFEST_DIR"),
    );
    let config = Config::parse(&text, Path::new("console-test.toml")).unwrap();
    let engine = Engine::start(config).await.unwrap();
    dispatchline::store::demo::seed(&engine.store)
        .await
        .unwrap();
    let url = format!("http://{}/", engine.http_addr);
    World { engine, url }
}

/// A resident calls: SIPp registers operator 1001's softphone (which answers and
/// talks), then a SIPp resident calls `to` from `from` and talks for `talk_ms` after
/// the engine answers. Returns the call id (from `call.offered`) and the two SIPp
/// runs, which end when the resident hangs up.
async fn call_arrives(w: &World, from: &str, to: &str, talk_ms: u32) -> (String, Sipp, Sipp) {
    let dir = sipp::workdir("console-browser");
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sipp/g711a.pcap");
    std::fs::copy(capture, dir.join("g711a.pcap")).unwrap();
    let port = free_port();
    let answering: Vec<String> = [
        "-sf",
        &sipp::scenario("operator_answers.xml"),
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-m",
        "1",
        "-mp",
        &free_port().to_string(),
    ]
    .map(String::from)
    .to_vec();
    let softphone = sipp::spawn("operator", &dir, &answering);
    sipp::wait_bound(port).await;
    let register: Vec<String> = [
        "-sf",
        &sipp::scenario("operator_register.xml"),
        &w.engine.sip_addr.to_string(),
        "-i",
        "127.0.0.1",
        "-m",
        "1",
        "-key",
        "ext",
        "1001",
        "-au",
        "1001",
        "-ap",
        "pw-1001",
        "-key",
        "contact_port",
        &port.to_string(),
        "-p",
        &free_port().to_string(),
    ]
    .map(String::from)
    .to_vec();
    sipp::spawn("register", &dir, &register)
        .finish(WAIT * 3)
        .await
        .assert_success("softphone registration");
    let calling: Vec<String> = [
        "-sf",
        &sipp::scenario("resident_calls.xml"),
        &w.engine.sip_addr.to_string(),
        "-s",
        to,
        "-key",
        "caller",
        from,
        "-i",
        "127.0.0.1",
        "-m",
        "1",
        "-d",
        &talk_ms.to_string(),
        "-p",
        &free_port().to_string(),
        "-mp",
        &free_port().to_string(),
    ]
    .map(String::from)
    .to_vec();
    let resident = sipp::spawn("resident", &dir, &calling);
    let offered = common::engine::wait_for_events(&w.engine, "call.offered", 1, WAIT).await;
    let call = offered
        .iter()
        .find(|e| e.payload["from"] == from)
        .unwrap()
        .payload["call"]
        .as_str()
        .unwrap()
        .to_owned();
    (call, resident, softphone)
}

async fn login(b: &mut Browser, url: &str, extension: &str) {
    b.goto(url).await;
    let ext = b.wait_for("#login-extension", None, WAIT).await;
    b.type_into(&ext, extension).await;
    let pw = b.find("#login-password").await;
    b.type_into(&pw, &format!("pw-{extension}")).await;
    b.click(&b.find("#login-submit").await).await;
    b.wait_for("#conn[data-conn='live']", None, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_takes_a_call_registers_an_emergency_and_plays_the_recording() {
    let w = world().await;
    let mut b = Browser::start("console_browser").await;

    // Log in and go ready.
    b.goto(&w.url).await;
    b.wait_for("#login-form", None, WAIT).await;
    b.screenshot("login").await;
    login(&mut b, &w.url, "1001").await;
    b.click(&b.find("#btn-ready").await).await;
    b.wait_for("#my-state[data-state='ready']", Some("Готов"), WAIT)
        .await;
    b.screenshot("ready").await;

    // A call: the card pops with the caller's address and the outage at the house.
    let (call, resident, softphone) =
        call_arrives(&w, "+79120000001", "+73432000001", 25_000).await;
    let address = b
        .wait_text(
            &format!(
                "[data-testid='call-card'][data-call='{call}'] [data-testid='caller-address']"
            ),
            Some("Малышева"),
            WAIT,
        )
        .await;
    assert!(address.contains("кв. 12"), "{address}");
    let outage = b
        .wait_text("[data-testid='outage']", Some("Отключение"), WAIT)
        .await;
    assert!(outage.contains("горячая вода"), "{outage}");
    let head = b
        .wait_text("[data-testid='call-card'] header", None, WAIT)
        .await;
    assert!(head.contains("Эталон"), "{head}");
    b.screenshot("call-card").await;

    // An emergency ticket from the card: house and apartment prefilled.
    b.click(&b.find("[data-testid='start-ticket']").await).await;
    let apartment = b
        .js(
            "return document.getElementById('tf-apartment').value",
            vec![],
        )
        .await;
    assert_eq!(apartment, "12");
    let reason = b.find("#tf-reason-q").await;
    b.type_into(&reason, "лифт застр").await;
    // The results re-render as the search answers arrive: click what is there.
    b.wait_click(
        "#tf-reason-results button",
        Some("Застревание в лифте"),
        WAIT,
    )
    .await;
    b.wait_for("#tf-reason-chosen .cat-emergency", None, WAIT)
        .await;
    b.type_into(&b.find("#tf-description").await, "Застряли двое, 5 этаж")
        .await;
    b.screenshot("ticket-form").await;
    b.click(&b.find("#tf-submit").await).await;
    let number = b.wait_text("#ticket-number", Some("№"), WAIT).await;
    let number = number.trim_start_matches("№ ").to_owned();
    assert!(
        number.parse::<u32>().is_ok(),
        "registration number {number}"
    );
    b.wait_for("[data-testid='executor-chain'] li", None, WAIT)
        .await;
    b.screenshot("ticket-registered").await;

    // It is in the list, red and labelled emergency.
    b.click(&b.find("[data-tab='tickets']").await).await;
    let row = b
        .wait_text(
            "#tickets-body tr[data-category='emergency']",
            Some(&number),
            WAIT,
        )
        .await;
    assert!(row.contains("АВАРИЙНАЯ"), "{row}");
    let colour = b
        .js(
            "return getComputedStyle(document.querySelector(\"#tickets-body tr[data-category='emergency'] .cat\")).backgroundColor",
            vec![],
        )
        .await;
    assert_eq!(colour, "rgb(179, 38, 30)", "emergency is red");
    b.screenshot("ticket-list").await;

    // The resident hangs up; the call's recording plays.
    resident.finish(WAIT * 6).await.assert_success("resident");
    softphone.finish(WAIT * 3).await.assert_success("operator");
    common::engine::wait_for_events(&w.engine, "recording.ready", 1, WAIT).await;
    b.click(&b.find("[data-tab='journal']").await).await;
    b.wait_click(
        &format!("#journal-body tr[data-call='{call}'] [data-testid='play']"),
        None,
        WAIT,
    )
    .await;
    let duration = b
        .wait_until(
            "the recording loads",
            "const a = document.querySelector(\"[data-testid='recording']\"); \
             return a && a.readyState >= 1 && a.duration > 0 ? a.duration : null",
            WAIT,
        )
        .await;
    assert!(
        duration.as_f64().unwrap() > 15.0,
        "the whole call is recorded: {duration}"
    );
    b.screenshot("recording").await;

    // The websocket drops; events published meanwhile arrive once, replayed after
    // the reconnect with since=.
    b.click(&b.find("[data-tab='call']").await).await;
    b.js("window.dispatchline.state.ws.close()", vec![]).await;
    let second = "call-browser-2";
    w.engine.events.publish(
        "call.offered",
        Some("etalon"),
        json!({ "call": second, "from": "+79120000003", "to": "+73432000001", "number_kind": "tenant" }),
    );
    w.engine.events.publish(
        "call.ended",
        Some("etalon"),
        json!({ "call": second, "disposition": "abandoned", "wait_ms": 3000 }),
    );
    b.wait_until(
        "the console showed it was reconnecting",
        "return window.dispatchline.state.connLog.slice(-3).includes('reconnecting')",
        WAIT,
    )
    .await;
    b.wait_for("#conn[data-conn='live']", None, WAIT).await;
    let replayed = b
        .js("return window.dispatchline.state.lastHello.replay", vec![])
        .await;
    assert!(replayed.as_u64().unwrap() >= 2, "replayed {replayed}");
    b.wait_for(
        &format!("[data-call='{second}'] [data-testid='debtor']"),
        Some("Должник"),
        WAIT,
    )
    .await;
    b.wait_for(
        &format!("[data-call='{second}'][data-status='ended']"),
        None,
        WAIT,
    )
    .await;
    let cards = b
        .find_all(&format!("[data-testid='call-card'][data-call='{second}']"))
        .await;
    assert_eq!(cards.len(), 1, "shown once");
    let position = b
        .js("return window.dispatchline.state.position", vec![])
        .await;
    assert_eq!(position.as_u64(), Some(w.engine.events.last_seq()));
    b.screenshot("after-reconnect").await;

    // The supervisor's board: tiles, the chart and the operator on the floor.
    b.click(&b.find("#btn-signout").await).await;
    login(&mut b, &w.url, "9000").await;
    b.wait_for("[data-testid='tile']", Some("Ответ за 30 секунд"), WAIT)
        .await;
    b.wait_for("#b-chart svg rect", None, WAIT).await;
    b.wait_for("#b-operators [data-state='ready']", Some("1001"), WAIT)
        .await;
    b.screenshot("board").await;

    b.quit().await;
}
