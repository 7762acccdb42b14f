//! The management company's journal in real headless Chromium against a real
//! engine. A tenant viewer logs in, sees only their company's tickets, opens one,
//! plays the recording of the hand-off call (the engine's call to the executor
//! about it) in place, reads the time in each status, rates the resident's call and
//! exports the month as a PDF whose text (pdftotext) holds the ticket and the
//! company's name. A supervisor's monitor shows a ticket turn red, without a
//! reload, the second its deadline passes. Screenshots are in
//! `tests/artifacts/console_journal*/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "common/browser.rs"]
mod browser;
#[path = "common/store_db.rs"]
mod store_db;
#[path = "common/store_world.rs"]
mod store_world;

use std::path::Path;
use std::time::Duration;

use browser::Browser;
use chrono::Utc;
use dispatchline::config::{Config, Role};
use dispatchline::server::Engine;
use dispatchline::store::chains::{AttemptUpdate, ChainStart, NewAttempt};
use dispatchline::store::tickets::Channel;
use dispatchline::store::users::NewUser;
use dispatchline::store::{
    CallDirection, CallRecord, NewTicket, StatusUpdate, Ticket, TicketStatus,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

// The story writes the ticket's hand-off chain itself (as the engine records one):
// the engine starts none of its own.
const CONFIG: &str = r#"
[chains]
categories = []

[[operator]]
extension = "9000"
name = "Петров Сергей"
password = "pw-9000"
role = "supervisor"
"#;

async fn engine() -> (Engine, std::path::PathBuf) {
    let dir = common::engine::scratch_dir();
    let config = format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n\
         [database]\nurl = \"sqlite://{0}/dispatchline.db\"\ndata_dir = \"{0}\"\n\n\
         [media]\nrecord_calls = false\nprompts_dir = \"{1}/ivr-prompts\"\n\n{CONFIG}",
        dir.display(),
        env!("CARGO_MANIFEST_DIR"),
    );
    let config = Config::parse(&config, Path::new("journal-test.toml")).unwrap();
    let recordings = config.recordings_dir();
    (Engine::start(config).await.unwrap(), recordings)
}

async fn ticket(
    engine: &Engine,
    tenant: &str,
    w: &store_world::World,
    at: chrono::DateTime<Utc>,
) -> Ticket {
    let (house, reason) = if tenant == "etalon" {
        (w.ekb_house, w.flooding)
    } else {
        (w.msk_house, w.roof)
    };
    engine
        .store
        .create_ticket(
            &NewTicket {
                tenant: tenant.into(),
                house_id: house,
                apartment: Some("7".into()),
                reason_id: reason,
                description: "Течёт с потолка".into(),
                source: Channel::Phone,
                labels: vec![],
                caller_phone: None,
                call_id: None,
                actor: "9000".into(),
            },
            at,
        )
        .await
        .unwrap()
        .ticket
}

async fn login(b: &mut Browser, engine: &Engine, extension: &str, password: &str) {
    b.goto(&format!("http://{}/", engine.http_addr)).await;
    let ext = b.wait_for("#login-extension", None, WAIT).await;
    b.type_into(&ext, extension).await;
    b.type_into(&b.find("#login-password").await, password)
        .await;
    b.click(&b.find("#login-submit").await).await;
    b.wait_for("#conn[data-conn='live']", None, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_company_viewer_reads_a_ticket_rates_the_call_and_exports_the_month() {
    let (engine, recordings) = engine().await;
    let w = store_world::build(&engine.store).await;
    let store = &engine.store;
    store
        .create_user(
            &NewUser {
                extension: "70001".into(),
                name: "Директор Эталона".into(),
                role: Some(Role::TenantViewer),
                tenants: vec!["etalon".into()],
                cities: vec![],
                password: "pw-70001".into(),
                sip_password: None,
                auto_answer: false,
            },
            "dispatchline",
        )
        .await
        .unwrap();
    let now = Utc::now();
    let mine = ticket(&engine, "etalon", &w, now - chrono::Duration::minutes(1)).await;
    let theirs = ticket(&engine, "stolica", &w, now - chrono::Duration::minutes(1)).await;
    // The hand-off: the chain called the level-1 executor, who accepted.
    let ChainStart::Started(chain) = store
        .start_chain(
            mine.id,
            &json!({"levels": []}),
            &json!({"attempts": 5}),
            "level-1",
            "story",
            now + chrono::Duration::minutes(10),
            false,
            now - chrono::Duration::seconds(55),
        )
        .await
        .unwrap()
    else {
        panic!("the ticket's chain starts")
    };
    let attempt = NewAttempt {
        chain: chain.id,
        seq: 1,
        stage: "level-1".into(),
        employee_id: mine.executor_id,
        person_name: "Исполнитель".into(),
        phone: "+79120000009".into(),
        try_no: 1,
        tries: 5,
        reach: "informer".into(),
    };
    assert_eq!(
        store
            .begin_attempts("story", &[attempt], now - chrono::Duration::seconds(50))
            .await
            .unwrap(),
        vec![true]
    );
    let mut handoff = CallRecord::offered(
        "out-1",
        CallDirection::Outbound,
        "+73432000001",
        "+79120000009",
        now - chrono::Duration::seconds(50),
    );
    handoff.tenant = Some("etalon".into());
    handoff.answered_at = Some(now - chrono::Duration::seconds(45));
    handoff.ended_at = Some(now - chrono::Duration::seconds(25));
    store.upsert_call(&handoff).await.unwrap();
    store
        .update_attempt(
            chain.id,
            1,
            &AttemptUpdate {
                call_id: Some("out-1".into()),
                answered_at: handoff.answered_at,
                ended_at: handoff.ended_at,
                ..AttemptUpdate::default()
            },
            now - chrono::Duration::seconds(25),
        )
        .await
        .unwrap();
    store
        .change_status(
            mine.id,
            &StatusUpdate {
                to: TicketStatus::Accepted,
                actor: "9000".into(),
                note: String::new(),
                expected_version: Some(1),
            },
            now - chrono::Duration::seconds(20),
        )
        .await
        .unwrap();
    // The resident's call and the hand-off call, each recorded (one second of a tone).
    std::fs::create_dir_all(&recordings).unwrap();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    for name in ["in-1.wav", "out-1.wav"] {
        let mut wav = hound::WavWriter::create(recordings.join(name), spec).unwrap();
        for i in 0..8000 {
            wav.write_sample(((f64::from(i) * 0.3).sin() * 8000.0) as i16)
                .unwrap();
        }
        wav.finalize().unwrap();
    }
    let mut call = CallRecord::offered(
        "in-1",
        CallDirection::Inbound,
        "+79120000001",
        "+73432000001",
        now - chrono::Duration::minutes(2),
    );
    call.tenant = Some("etalon".into());
    call.ticket_id = Some(mine.id);
    call.operator_extension = Some("9000".into());
    store.upsert_call(&call).await.unwrap();
    store
        .insert_recording("in-1", "in-1.wav", 1000, 16044)
        .await
        .unwrap();
    store
        .insert_recording("out-1", "out-1.wav", 1000, 16044)
        .await
        .unwrap();

    let mut b = Browser::start("console_journal").await;
    login(&mut b, &engine, "70001", "pw-70001").await;
    // Their tickets only.
    b.wait_for(&format!("[data-open-ticket='{}']", mine.id), None, WAIT)
        .await;
    let shown: Value = b
        .js("return [...document.querySelectorAll('#tickets-body tr[data-ticket]')].map((r) => Number(r.dataset.ticket))", vec![])
        .await;
    assert_eq!(shown, json!([mine.id.0]), "not {}", theirs.id);
    b.screenshot("list").await;
    b.wait_click(&format!("[data-open-ticket='{}']", mine.id), None, WAIT)
        .await;
    // Time in each status.
    b.wait_text(
        "[data-testid='status-times'] li[data-status='registered']",
        Some("Зарегистрирована"),
        WAIT,
    )
    .await;
    b.wait_text(
        "[data-testid='status-times'] li[data-status='accepted']",
        Some("(сейчас)"),
        WAIT,
    )
    .await;
    b.wait_for("[data-testid='deadline-left']", Some("осталось"), WAIT)
        .await;
    // The hand-off call is listed as such and its recording plays in place.
    let handoff_audio = "[data-call='out-1'][data-kind='handoff'] [data-testid='call-recording']";
    b.wait_for(handoff_audio, None, WAIT).await;
    b.js(
        &format!("const a = document.querySelector(\"{handoff_audio}\"); a.muted = true; a.play(); return true"),
        vec![],
    )
    .await;
    b.wait_until(
        "the hand-off call's recording plays",
        &format!("const a = document.querySelector(\"{handoff_audio}\"); return a && a.src.includes('/recordings/') && (a.currentTime > 0 || a.ended)"),
        WAIT,
    )
    .await;
    b.screenshot("card").await;
    // Rating the line's call.
    b.js("document.querySelector(\"[data-testid='review-score']\").value = '2'; document.querySelector(\"[data-testid='review-comment']\").value = 'не уточнили подъезд'; return true", vec![]).await;
    b.wait_click("[data-testid='review-send']", None, WAIT)
        .await;
    b.wait_text("[data-testid='call-review']", Some("★2"), WAIT)
        .await;
    let reviews = store
        .call_reviews(&dispatchline::store::TenantScope::All, &Default::default())
        .await
        .unwrap();
    assert_eq!((reviews.total, reviews.items[0].score), (1, 2));
    // The month as a PDF.
    b.wait_click("#tab-analytics", None, WAIT).await;
    b.wait_for("[data-testid='a-calls']", None, WAIT).await;
    b.wait_click("[data-export='tickets.pdf']", None, WAIT)
        .await;
    b.wait_for("#a-export-state[data-done='tickets.pdf']", None, WAIT)
        .await;
    b.screenshot("analytics").await;
    let query: Value = b
        .js("return [sessionStorage.getItem('dispatchline.token'), document.getElementById('a-from').value, document.getElementById('a-to').value]", vec![])
        .await;
    let token = query[0].as_str().unwrap();
    let from = format!("{}T00:00:00Z", query[1].as_str().unwrap());
    let to = (Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%dT00:00:00Z")
        .to_string();
    let pdf = reqwest::Client::new()
        .get(format!(
            "http://{}/api/v1/export/tickets.pdf?from={from}&to={to}",
            engine.http_addr
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let file = common::engine::scratch_dir().join("month.pdf");
    std::fs::write(&file, &pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .args([file.to_str().unwrap(), "-"])
        .output()
        .expect("pdftotext (poppler-utils)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("УК «Эталон»"), "{text}");
    assert!(text.contains(&mine.number), "{text}");
    assert!(text.contains("Всего заявок: 1"), "{text}");
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_turns_a_ticket_red_when_its_deadline_passes() {
    let (engine, _) = engine().await;
    let w = store_world::build(&engine.store).await;
    // Emergency plumbing has 60 minutes: registered 59 min 52 s ago, it is due in 8 s.
    let due = ticket(
        &engine,
        "etalon",
        &w,
        Utc::now() - chrono::Duration::seconds(3600 - 8),
    )
    .await;
    let mut b = Browser::start("console_journal_monitor").await;
    login(&mut b, &engine, "9000", "pw-9000").await;
    b.wait_click("#tab-monitor", None, WAIT).await;
    let row = format!("#m-tickets tr[data-ticket='{}']", due.id);
    b.wait_for(&format!("{row}[data-state='due-soon']"), None, WAIT)
        .await;
    b.js("window.__notReloaded = true; return true", vec![])
        .await;
    b.screenshot("due-soon").await;
    b.wait_for(
        &format!("{row}[data-state='overdue']"),
        Some("просрочена"),
        Duration::from_secs(30),
    )
    .await;
    let red: Value = b
        .js(&format!("const td = document.querySelector(\"{row} td:last-child\"); return [window.__notReloaded === true, getComputedStyle(td).backgroundColor]"), vec![])
        .await;
    assert_eq!(red[0], json!(true), "no reload");
    let colour = red[1].as_str().unwrap();
    assert!(
        colour.starts_with("rgb(") && colour != "rgba(0, 0, 0, 0)",
        "{colour}"
    );
    b.wait_text("[data-testid='m-overdue'] strong", Some("1"), WAIT)
        .await;
    b.screenshot("overdue").await;
    b.quit().await;
}
