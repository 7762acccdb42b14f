//! The operator console in real headless Chromium against a real engine over the
//! demo data: an operator logs in and goes ready; a call arrives and the call card
//! shows the caller's address, the outage and the open tickets; the operator
//! registers an emergency ticket from the card and reads its number; the ticket is
//! red in the list; the call's recording plays; a dropped websocket reconnects with
//! `since` and shows nothing twice; the supervisor's board shows the compliance
//! tiles and the chart. Screenshots of every step are in
//! `target/test-artifacts/console_browser/`.
//!
//! The call comes from [`call_arrives`], which for now writes the journal row and a
//! real WAV recording through the store and publishes `call.offered` on the bus, as
//! the call core does; swap it for a SIPp call once the inbound flow queues calls to
//! operators.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "common/browser.rs"]
mod browser;

use std::path::{Path, PathBuf};
use std::time::Duration;

use browser::Browser;
use chrono::Utc;
use dispatchline::config::Config;
use dispatchline::server::Engine;
use dispatchline::store::{CallDirection, CallRecord, Store};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

const CONFIG: &str = r#"
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
    store: Store,
    recordings: PathBuf,
    url: String,
}

async fn world() -> World {
    let dir = common::engine::scratch_dir();
    let db = format!("sqlite://{}/dispatchline.db", dir.display());
    let text = format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n\
         [database]\nurl = \"{db}\"\ndata_dir = \"{0}\"\n\n\
         [media]\nrecord_calls = false\n\n{CONFIG}",
        dir.display()
    );
    let config = Config::parse(&text, Path::new("console-test.toml")).unwrap();
    let recordings = config.recordings_dir();
    std::fs::create_dir_all(&recordings).unwrap();
    let engine = Engine::start(config).await.unwrap();
    // The engine's own bus gets the ticket changes the console makes; this second
    // handle only seeds and writes the journal.
    let store = Store::connect(&db)
        .await
        .unwrap()
        .with_events(engine.events.clone());
    dispatchline::store::demo::seed(&store).await.unwrap();
    let url = format!("http://{}/", engine.http_addr);
    World {
        engine,
        store,
        recordings,
        url,
    }
}

/// A resident calls: the journal row and its recording are written, and the call is
/// offered on the bus with the payload the call core publishes. Returns the call id.
///
/// This is the one place to change when the inbound flow can be driven by SIPp.
async fn call_arrives(w: &World, call: &str, from: &str, to: &str) -> String {
    let mut record = CallRecord::offered(call, CallDirection::Inbound, from, to, Utc::now());
    record.tenant = Some("etalon".into());
    record.number_kind = Some("tenant".into());
    record.answered_at = Some(Utc::now());
    record.wait_seconds = Some(4);
    record.operator_extension = Some("1001".into());
    w.store.upsert_call(&record).await.unwrap();
    // Two seconds of a 440 Hz tone, 8 kHz 16-bit mono, as recordings are written.
    let file = format!("{call}.wav");
    let path = w.recordings.join(&file);
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..16_000u32 {
        let t = i as f32 / 8000.0;
        let sample = (t * 440.0 * std::f32::consts::TAU).sin() * 8000.0;
        writer.write_sample(sample as i16).unwrap();
    }
    writer.finalize().unwrap();
    let bytes = std::fs::metadata(&path).unwrap().len() as i64;
    w.store
        .insert_recording(call, &file, 2000, bytes)
        .await
        .unwrap();
    w.engine.events.publish(
        "call.offered",
        Some("etalon"),
        json!({ "call": call, "from": from, "to": to, "number_kind": "tenant" }),
    );
    call.to_owned()
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
    let call = call_arrives(&w, "call-browser-1", "+79120000001", "+73432000001").await;
    let card = b
        .wait_for(
            &format!(
                "[data-testid='call-card'][data-call='{call}'] [data-testid='caller-address']"
            ),
            Some("Малышева"),
            WAIT,
        )
        .await;
    let address = b.text(&card).await;
    assert!(address.contains("кв. 12"), "{address}");
    let outage = b
        .wait_for("[data-testid='outage']", Some("Отключение"), WAIT)
        .await;
    assert!(b.text(&outage).await.contains("горячая вода"));
    let head = b
        .text(&b.find("[data-testid='call-card'] header").await)
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
    let option = b
        .wait_for(
            "#tf-reason-results button",
            Some("Застревание в лифте"),
            WAIT,
        )
        .await;
    b.click(&option).await;
    b.wait_for("#tf-reason-chosen .cat-emergency", None, WAIT)
        .await;
    b.type_into(&b.find("#tf-description").await, "Застряли двое, 5 этаж")
        .await;
    b.screenshot("ticket-form").await;
    b.click(&b.find("#tf-submit").await).await;
    let number = b.wait_for("#ticket-number", Some("№"), WAIT).await;
    let number = b.text(&number).await.trim_start_matches("№ ").to_owned();
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
        .wait_for(
            "#tickets-body tr[data-category='emergency']",
            Some(&number),
            WAIT,
        )
        .await;
    assert!(b.text(&row).await.contains("АВАРИЙНАЯ"));
    let colour = b
        .js(
            "return getComputedStyle(document.querySelector(\"#tickets-body tr[data-category='emergency'] .cat\")).backgroundColor",
            vec![],
        )
        .await;
    assert_eq!(colour, "rgb(179, 38, 30)", "emergency is red");
    b.screenshot("ticket-list").await;

    // The call's recording plays.
    b.click(&b.find("[data-tab='journal']").await).await;
    let play = b
        .wait_for(
            &format!("#journal-body tr[data-call='{call}'] [data-testid='play']"),
            None,
            WAIT,
        )
        .await;
    b.click(&play).await;
    let duration = b
        .wait_until(
            "the recording loads",
            "const a = document.querySelector(\"[data-testid='recording']\"); \
             return a && a.readyState >= 1 && a.duration > 0 ? a.duration : null",
            WAIT,
        )
        .await;
    assert!((duration.as_f64().unwrap() - 2.0).abs() < 0.1, "{duration}");
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
