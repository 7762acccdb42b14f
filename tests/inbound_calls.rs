//! Residents calling the dispatch service, as stories over real sockets: SIPp plays
//! the resident, the operator's softphone and the provider; the engine runs with
//! the demo data set in its store.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly by design

mod common;
#[path = "common/media_util.rs"]
mod media_util;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::engine::{self, free_port, wait_for_events, wait_no_calls};
use common::sipp::{self, Sipp, scenario, spawn, wait_bound};
use dispatchline::call::OperatorState;
use dispatchline::config::Config;
use dispatchline::events::Event;
use dispatchline::server::Engine;

/// The known caller of the demo data: ул. Малышева 51 (etalon), apartment 12, with
/// an active hot-water outage at the house.
const KNOWN_CALLER: &str = "+79120000001";
const TENANT_NUMBER: &str = "+73432000001";
const CITYWIDE_NUMBER: &str = "+73432000100";
const LEGACY_NUMBER: &str = "+73432999001";

fn numbers(provider_port: u16) -> String {
    format!(
        r#"
[[trunk]]
name = "provider-x"
proxy = "127.0.0.1:{provider_port}"
options_interval_s = 0

[[number]]
number = "{TENANT_NUMBER}"
kind = "tenant"
tenant = "etalon"
city = "ekb"
trunk = "provider-x"
greeting = "ru/greeting-etalon.wav"

[[number]]
number = "{CITYWIDE_NUMBER}"
kind = "citywide"
city = "ekb"
trunk = "provider-x"

[[number]]
number = "{LEGACY_NUMBER}"
kind = "legacy"
tenant = "etalon"
new_number = "{TENANT_NUMBER}"
trunk = "provider-x"

[[operator]]
extension = "1001"
name = "Анна"
password = "op1001pass"
"#
    )
}

/// A running engine with the demo data, and a folder for SIPp holding the captures.
async fn world(test: &str, extra: &str, adjust: impl FnOnce(&mut Config)) -> (Engine, PathBuf) {
    let engine = engine::start_with(extra, adjust).await;
    dispatchline::store::demo::seed(&engine.store)
        .await
        .unwrap();
    let dir = sipp::workdir(test);
    let captures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sipp");
    std::fs::create_dir_all(dir.join("pcap")).unwrap();
    for name in ["g711a.pcap", "dtmf_2833_1.pcap"] {
        std::fs::copy(captures.join(name), dir.join(name)).unwrap();
        std::fs::copy(captures.join(name), dir.join("pcap").join(name)).unwrap();
    }
    (engine, dir)
}

/// Operator 1001's softphone: one SIPp instance answers (with `scenario_file`), another
/// registers the extension pointing at it; then the operator goes ready.
async fn operator_on_duty(engine: &Engine, dir: &Path, scenario_file: &str, talk_ms: u32) -> Sipp {
    sipp::operator_on_duty(engine, dir, scenario_file, talk_ms, "1001", "op1001pass", 1).await
}

/// The resident's phone behind a provider listening on `port` (SIPp as UAS).
async fn phone_behind_provider(dir: &Path, port: u16, scenario_file: &str, talk_ms: u32) -> Sipp {
    let args = sipp::args(&[
        "-sf",
        &scenario(scenario_file),
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-m",
        "1",
        "-mp",
        &free_port().to_string(),
        "-d",
        &talk_ms.to_string(),
    ]);
    let phone = spawn("resident-phone", dir, &args);
    wait_bound(port).await;
    phone
}

/// A callback job in the store, due now.
async fn callback_job(engine: &Engine, target: &str, tenant: Option<&str>) {
    engine
        .store
        .create_dial_job(
            &dispatchline::store::NewDialJob {
                kind: dispatchline::store::DialKind::Callback,
                tenant: tenant.map(str::to_owned),
                target: dispatchline::phone::PhoneNumber::parse(target).unwrap(),
                due_at: chrono::Utc::now(),
                max_attempts: 3,
                ticket_id: None,
                call_id: None,
                deadline_at: None,
                quiet_hours: false,
                reach: None,
                outage_id: None,
                supplier_ticket_id: None,
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
}

/// Waits until `pred` holds for the live board, or panics after `within`.
async fn wait_board(
    engine: &Engine,
    within: Duration,
    pred: impl Fn(&dispatchline::call::handle::Board) -> bool,
) -> dispatchline::call::handle::Board {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let board = engine.call_handle.board().await.unwrap();
        if pred(&board) {
            return board;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("board never got there: {board:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn seq_of(events: &[std::sync::Arc<Event>], pred: impl Fn(&Event) -> bool) -> u64 {
    events
        .iter()
        .find(|e| pred(e))
        .map(|e| e.seq)
        .unwrap_or_else(|| panic!("no such event"))
}

/// A resident calling `number` from `phone`, talking for `talk_ms` after the answer.
fn resident(
    engine: &Engine,
    dir: &Path,
    file: &str,
    number: &str,
    phone: &str,
    talk_ms: u32,
) -> Sipp {
    let args = sipp::args(&[
        "-sf",
        &scenario(file),
        &engine.sip_addr.to_string(),
        "-s",
        number,
        "-key",
        "caller",
        phone,
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
    ]);
    spawn("resident", dir, &args)
}

fn of_call<'a>(events: &'a [std::sync::Arc<Event>], call: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter(|e| e.payload["call"] == call)
        .map(|e| e.kind.as_str())
        .collect()
}

async fn recording_of(engine: &Engine, call: &str) -> (Vec<i16>, Vec<i16>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let event = loop {
        let ready = wait_for_events(engine, "recording.ready", 1, Duration::from_secs(10)).await;
        if let Some(e) = ready.into_iter().find(|e| e.payload["call"] == call) {
            break e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no recording of {call}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let id = dispatchline::store::RecordingId(event.payload["recording"].as_i64().unwrap());
    let recording = engine
        .store
        .recording(id)
        .await
        .unwrap()
        .expect("recording row");
    media_util::read_stereo(Path::new(&recording.path))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_reaches_an_operator_who_sees_the_address_and_the_call_is_recorded() {
    let (engine, dir) = world("story-tenant", &numbers(5999), |c| {
        c.media.record_calls = true
    })
    .await;
    let softphone = operator_on_duty(&engine, &dir, "operator_answers.xml", 0).await;

    // The resident hears the greeting and the outage notice (about 11 s), is put
    // through to the operator, talks, and hangs up after 20 s.
    let caller = resident(
        &engine,
        &dir,
        "resident_calls.xml",
        TENANT_NUMBER,
        KNOWN_CALLER,
        20_000,
    );
    let offered = wait_for_events(&engine, "call.offered", 1, Duration::from_secs(10)).await;
    let pop = &offered[0].payload;
    assert_eq!(pop["tenant"], "etalon");
    assert_eq!(pop["number_kind"], "tenant");
    assert_eq!(pop["to"], TENANT_NUMBER);
    assert!(
        pop["caller"]["address"]["address"]
            .as_str()
            .unwrap()
            .contains("Малышева"),
        "{pop}"
    );
    assert_eq!(pop["caller"]["address"]["apartment"], "12");
    assert!(
        !pop["caller"]["outages"].as_array().unwrap().is_empty(),
        "the outage is on the card: {pop}"
    );

    caller
        .finish(Duration::from_secs(60))
        .await
        .assert_success("resident");
    softphone
        .finish(Duration::from_secs(30))
        .await
        .assert_success("operator");
    let call = pop["call"].as_str().unwrap().to_owned();
    wait_for_events(&engine, "call.ended", 1, Duration::from_secs(10)).await;

    // The events tell the story in order.
    let all = engine.events.replay(0).unwrap();
    let story: Vec<&str> = of_call(&all, &call)
        .into_iter()
        .filter(|k| {
            [
                "call.offered",
                "call.queued",
                "call.ringing",
                "call.answered",
                "call.ended",
            ]
            .contains(k)
        })
        .collect();
    assert_eq!(
        story,
        [
            "call.offered",
            "call.queued",
            "call.ringing",
            "call.answered",
            "call.ended"
        ]
    );
    let ended = all.iter().find(|e| e.kind == "call.ended").unwrap();
    assert_eq!(ended.payload["disposition"], "answered");
    assert_eq!(ended.payload["operator"], "1001");

    // The stereo recording: the caller's side (left) and what the caller heard
    // (right): the greeting from the first seconds, then the operator.
    let (left, right) = recording_of(&engine, &call).await;
    assert!(
        left.len() > 8000 * 15,
        "about 20 s recorded, got {} samples",
        left.len()
    );
    assert!(
        media_util::rms(&left) > 100.0,
        "the resident's voice is on the left"
    );
    assert!(
        media_util::rms(&right[..8000 * 4]) > 100.0,
        "the greeting is on the right from the start"
    );
    assert!(
        media_util::rms(&right[8000 * 13..]) > 100.0,
        "the operator is on the right after the bridge"
    );

    // The journal row.
    let row = engine
        .store
        .get_call(&call)
        .await
        .unwrap()
        .expect("journal row");
    assert_eq!(
        row.disposition,
        Some(dispatchline::store::Disposition::Answered)
    );
    assert_eq!(row.operator_extension.as_deref(), Some("1001"));
    assert_eq!(row.tenant.as_deref(), Some("etalon"));
    assert!(row.queued_at.is_some() && row.answered_at.is_some() && row.ended_at.is_some());
    assert!(row.recording_id.is_some());
    assert!(row.talk_seconds.unwrap() >= 5);
    wait_no_calls(&engine, Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citywide_call_finds_the_tenant_from_a_known_address_and_leaves_it_open_otherwise() {
    let (engine, dir) = world("story-citywide", &numbers(5999), |c| {
        c.prompts.citywide_greeting = "ru/connecting.wav".into()
    })
    .await;
    let known = resident(
        &engine,
        &dir,
        "resident_calls.xml",
        CITYWIDE_NUMBER,
        KNOWN_CALLER,
        2_000,
    );
    known
        .finish(Duration::from_secs(30))
        .await
        .assert_success("known resident");
    let unknown = resident(
        &engine,
        &dir,
        "resident_calls.xml",
        CITYWIDE_NUMBER,
        "+79129999999",
        6_000,
    );
    let offered = wait_for_events(&engine, "call.offered", 2, Duration::from_secs(10)).await;
    let open_call = offered
        .iter()
        .find(|e| e.payload["from"] == "+79129999999")
        .unwrap()
        .payload["call"]
        .as_str()
        .unwrap()
        .to_owned();

    // The operator chooses the company of the unknown caller from the console.
    let http = format!("http://{}", engine.http_addr);
    let client = reqwest::Client::new();
    let token: serde_json::Value = client
        .post(format!("{http}/api/v1/auth/token"))
        .json(&serde_json::json!({ "extension": "1001", "password": "op1001pass" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    let set_tenant = |tenant: &'static str| {
        client
            .post(format!("{http}/api/v1/calls/{open_call}/tenant"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "tenant": tenant }))
            .send()
    };
    let wrong = set_tenant("no-such-company").await.unwrap();
    assert_eq!(wrong.status().as_u16(), 422);
    let set = set_tenant("etalon").await.unwrap();
    assert_eq!(set.status().as_u16(), 200);
    let set: serde_json::Value = set.json().await.unwrap();
    assert_eq!(set["tenant"], "etalon");
    assert!(set["previous"].is_null(), "{set}");
    unknown
        .finish(Duration::from_secs(30))
        .await
        .assert_success("unknown resident");
    let by_phone = |phone: &str| {
        offered
            .iter()
            .find(|e| e.payload["from"] == phone)
            .unwrap()
            .payload
            .clone()
    };
    let known = by_phone(KNOWN_CALLER);
    assert_eq!(known["number_kind"], "citywide");
    assert_eq!(
        known["tenant"], "etalon",
        "resolved from the caller's address: {known}"
    );
    assert_eq!(
        known["tenant_name"].as_str().map(|n| n.contains("Эталон")),
        Some(true)
    );
    let unknown = by_phone("+79129999999");
    assert!(
        unknown["tenant"].is_null(),
        "left for the operator to choose: {unknown}"
    );
    assert_eq!(unknown["city"], "ekb");
    // Both hung up while waiting for less than the abandon threshold.
    let ended = wait_for_events(&engine, "call.ended", 2, Duration::from_secs(5)).await;
    assert!(
        ended
            .iter()
            .all(|e| e.payload["disposition"] == "abandoned"),
        "{ended:?}"
    );
    // From the operator's choice on, the call is the tenant's.
    let chosen = ended
        .iter()
        .find(|e| e.payload["call"] == open_call.as_str())
        .unwrap();
    assert_eq!(chosen.tenant.as_deref(), Some("etalon"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let row = engine.store.get_call(&open_call).await.unwrap().unwrap();
    assert_eq!(row.tenant.as_deref(), Some("etalon"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_number_announces_the_new_number_and_hangs_up_without_forwarding() {
    let (engine, dir) = world("story-legacy", &numbers(5999), |_| {}).await;
    let caller = resident(
        &engine,
        &dir,
        "resident_hears_legacy.xml",
        LEGACY_NUMBER,
        KNOWN_CALLER,
        0,
    );
    caller
        .finish(Duration::from_secs(40))
        .await
        .assert_success("resident of the old number");
    let ended = wait_for_events(&engine, "call.ended", 1, Duration::from_secs(5)).await;
    assert_eq!(ended[0].payload["disposition"], "rejected");
    // Nothing was sent anywhere else: no second leg, no ringing.
    let all = engine.events.replay(0).unwrap();
    assert!(
        all.iter()
            .all(|e| e.kind != "call.ringing" && e.kind != "dial.attempt")
    );
    assert_eq!(engine.media.stats().legs_active, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_operator_busy_a_resident_who_gives_up_is_called_back_by_the_freed_operator() {
    let provider_port = free_port();
    let (engine, dir) = world("story-callback", &numbers(provider_port), |c| {
        c.queue.abandon_threshold = Duration::from_secs(1);
        c.queue.wrap_up = Duration::ZERO;
        c.media.record_calls = true;
        c.numbers[0].greeting = Some("ru/connecting.wav".into());
    })
    .await;
    // The resident's phone, for when the engine calls back through provider X.
    let phone =
        phone_behind_provider(&dir, provider_port, "resident_phone_answers.xml", 2_000).await;
    // The only operator on duty takes two calls: the first resident's, then the
    // callback (the engine hangs both up).
    let softphone = sipp::operator_on_duty(
        &engine,
        &dir,
        "operator_answers.xml",
        0,
        "1001",
        "op1001pass",
        2,
    )
    .await;

    // Resident A reaches the operator and stays on the line for 14 s: every
    // operator is busy.
    let first = resident(
        &engine,
        &dir,
        "resident_calls.xml",
        TENANT_NUMBER,
        "+79120005555",
        14_000,
    );
    wait_for_events(&engine, "call.answered", 1, Duration::from_secs(10)).await;

    // Resident B waits: greeting, then the queue's announcement and music; gives
    // up after 5 s.
    let waiting_phone = "+79120004444";
    let second = resident(
        &engine,
        &dir,
        "resident_calls.xml",
        TENANT_NUMBER,
        waiting_phone,
        5_000,
    );
    let offered = wait_for_events(&engine, "call.offered", 2, Duration::from_secs(10)).await;
    let waiting_call = offered
        .iter()
        .find(|e| e.payload["from"] == waiting_phone)
        .expect("B's call was offered")
        .payload["call"]
        .as_str()
        .unwrap()
        .to_owned();
    // Queued after the greeting (and any notices): a bound, not a measurement.
    wait_for_events(&engine, "call.queued", 2, Duration::from_secs(30)).await;
    second
        .finish(Duration::from_secs(30))
        .await
        .assert_success("resident who gave up");
    let scheduled = wait_for_events(&engine, "callback.scheduled", 1, Duration::from_secs(5)).await;
    assert_eq!(scheduled[0].payload["phone"], waiting_phone);
    assert_eq!(scheduled[0].payload["call"], waiting_call);
    // What B heard while waiting is on the right channel of their recording.
    let (_, heard) = recording_of(&engine, &waiting_call).await;
    assert!(heard.len() > 8000 * 3, "{} samples", heard.len());
    assert!(
        media_util::rms(&heard[8000 * 2..]) > 100.0,
        "the queue announcement and music were heard"
    );

    // A hangs up; the freed operator gets the callback first, as an incoming call,
    // and only then does the resident's phone ring.
    first
        .finish(Duration::from_secs(30))
        .await
        .assert_success("resident on the line");
    let outcome = wait_for_events(&engine, "dial.outcome", 1, Duration::from_secs(20)).await;
    assert_eq!(outcome[0].payload["outcome"], "answered");
    softphone
        .finish(Duration::from_secs(30))
        .await
        .assert_success("operator");
    phone
        .finish(Duration::from_secs(30))
        .await
        .assert_success("resident's phone");
    let all = engine.events.replay(0).unwrap();
    let rang_operator = seq_of(&all, |e| {
        e.kind == "call.ringing"
            && e.payload["direction"] == "outbound"
            && e.payload["purpose"] == "callback"
            && e.payload["original_call"] == waiting_call.as_str()
            && e.payload["operator"] == "1001"
    });
    let rang_resident = seq_of(&all, |e| {
        e.kind == "dial.attempt" && e.payload["target"] == waiting_phone
    });
    assert!(
        rang_operator < rang_resident,
        "operator first, then the resident"
    );
    let attempt = all.iter().find(|e| e.kind == "dial.attempt").unwrap();
    assert_eq!(attempt.payload["trunk"], "provider-x");
    // The job is done in the store.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let jobs = engine
        .store
        .dial_jobs(
            &dispatchline::store::TenantScope::All,
            &dispatchline::store::DialJobFilter::default(),
        )
        .await
        .unwrap();
    assert_eq!(jobs.items.len(), 1);
    assert_eq!(jobs.items[0].state, dispatchline::store::DialJobState::Done);
    assert_eq!(
        jobs.items[0].origin_number.as_deref(),
        Some(TENANT_NUMBER),
        "called back from the number the resident dialled"
    );
    wait_no_calls(&engine, Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_who_does_not_answer_a_callback_is_passed_over_for_the_next() {
    let provider_port = free_port();
    let extra = format!(
        "{}\n[[operator]]\nextension = \"1002\"\nname = \"Игорь\"\npassword = \"op1002pass\"\n",
        numbers(provider_port)
    );
    let (engine, dir) = world("story-callback-missed", &extra, |c| {
        c.queue.ring_timeout = Duration::from_secs(3);
        c.queue.wrap_up = Duration::ZERO;
    })
    .await;
    let phone =
        phone_behind_provider(&dir, provider_port, "resident_phone_answers.xml", 1_000).await;
    // 1001 has waited longest but their desk is empty; 1002 answers.
    let empty_desk = sipp::operator_on_duty(
        &engine,
        &dir,
        "operator_never_answers.xml",
        0,
        "1001",
        "op1001pass",
        1,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let present = sipp::operator_on_duty(
        &engine,
        &dir,
        "operator_answers.xml",
        0,
        "1002",
        "op1002pass",
        1,
    )
    .await;
    callback_job(&engine, KNOWN_CALLER, Some("etalon")).await;

    let rung = wait_for_events(&engine, "call.ringing", 2, Duration::from_secs(20)).await;
    assert_eq!(rung[0].payload["operator"], "1001");
    assert_eq!(rung[1].payload["operator"], "1002");
    empty_desk
        .finish(Duration::from_secs(20))
        .await
        .assert_success("the softphone nobody picked up");
    let outcome = wait_for_events(&engine, "dial.outcome", 1, Duration::from_secs(20)).await;
    assert_eq!(outcome[0].payload["outcome"], "answered");
    present
        .finish(Duration::from_secs(20))
        .await
        .assert_success("operator who took the callback");
    phone
        .finish(Duration::from_secs(20))
        .await
        .assert_success("resident's phone");
    let all = engine.events.replay(0).unwrap();
    let returned = all
        .iter()
        .find(|e| e.kind == "call.ended" && e.payload["call"] == rung[0].payload["call"])
        .expect("the missed offer closes its card");
    assert_eq!(returned.payload["disposition"], "returned");
    let attempts: Vec<&std::sync::Arc<Event>> =
        all.iter().filter(|e| e.kind == "dial.attempt").collect();
    assert_eq!(attempts.len(), 1, "the resident was dialled once, by 1002");
    let missed = engine
        .call_handle
        .operators()
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.extension == "1001")
        .unwrap();
    assert_eq!(missed.state, OperatorState::Paused);
    wait_no_calls(&engine, Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_who_declines_a_call_is_paused_and_the_caller_keeps_the_front_of_the_queue() {
    let (engine, dir) = world("story-declined", &numbers(5999), |c| {
        c.numbers[0].greeting = Some("ru/connecting.wav".into());
    })
    .await;
    // Operator 1001 is on duty but their softphone declines what rings.
    let softphone = operator_on_duty(&engine, &dir, "operator_declines.xml", 0).await;
    let caller = resident(
        &engine,
        &dir,
        "resident_calls.xml",
        TENANT_NUMBER,
        "+79120009999",
        8_000,
    );
    let ringing = wait_for_events(&engine, "call.ringing", 1, Duration::from_secs(10)).await;
    assert_eq!(ringing[0].payload["operator"], "1001");
    softphone
        .finish(Duration::from_secs(15))
        .await
        .assert_success("operator's softphone");

    // The engine pauses them, so calls stop going to an empty desk, and the
    // resident is back at the front of the queue.
    let call = ringing[0].payload["call"].clone();
    let queued = wait_for_events(&engine, "call.queued", 2, Duration::from_secs(5)).await;
    assert_eq!(queued[1].payload["call"], call);
    assert_eq!(queued[1].payload["position"], 1);
    let states = wait_for_events(&engine, "operator.state", 1, Duration::from_secs(5)).await;
    let last = engine
        .call_handle
        .operators()
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.extension == "1001")
        .unwrap();
    assert_eq!(last.state, OperatorState::Paused, "{states:?}");
    assert_eq!(last.reason.as_deref(), Some("Пропущенный вызов"));

    // Nobody is rung in a loop: the resident waits, hears the queue, hangs up.
    caller
        .finish(Duration::from_secs(30))
        .await
        .assert_success("resident");
    let rung = engine
        .events
        .replay(0)
        .unwrap()
        .iter()
        .filter(|e| e.kind == "call.ringing")
        .count();
    assert_eq!(rung, 1, "the paused operator is not rung again");
    let ended = wait_for_events(&engine, "call.ended", 1, Duration::from_secs(5)).await;
    assert_eq!(ended[0].payload["call"], call);
    wait_no_calls(&engine, Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_provider_x_down_citywide_calls_via_y_reach_operators_and_callbacks_leave_by_y() {
    // Provider X's proxy is a socket that never answers anything.
    let silent = std::net::UdpSocket::bind("127.0.0.3:0").unwrap();
    let x_port = silent.local_addr().unwrap().port();
    let y_port = free_port();
    let extra = format!(
        r#"
[[trunk]]
name = "provider-x"
proxy = "127.0.0.3:{x_port}"
register = true
username = "etalon"
password = "secret"
options_interval_s = 1

[[trunk]]
name = "provider-y"
proxy = "127.0.0.1:{y_port}"
options_interval_s = 0

[[number]]
number = "{TENANT_NUMBER}"
kind = "tenant"
tenant = "etalon"
city = "ekb"
trunk = "provider-x"

[[number]]
number = "{CITYWIDE_NUMBER}"
kind = "citywide"
city = "ekb"
trunk = "provider-y"

[[operator]]
extension = "1001"
password = "op1001pass"
"#
    );
    let (engine, dir) = world("story-trunks", &extra, |c| {
        // Short protocol timers so the dead provider is noticed in seconds.
        c.sip.t1 = Duration::from_millis(40);
        c.sip.t2 = Duration::from_millis(320);
        c.prompts.citywide_greeting = "ru/connecting.wav".into();
        c.queue.wrap_up = Duration::ZERO;
    })
    .await;
    let health = wait_for_events(&engine, "trunk.health", 1, Duration::from_secs(10)).await;
    assert_eq!(health[0].payload["trunk"], "provider-x");
    assert_eq!(health[0].payload["health"], "down");
    let board = wait_board(&engine, Duration::from_secs(10), |b| {
        b.trunks.iter().any(|t| t.name == "provider-x" && !t.usable)
    })
    .await;
    let x = board
        .trunks
        .iter()
        .find(|t| t.name == "provider-x")
        .unwrap();
    assert_eq!(x.registered, Some(false), "{x:?}");
    let y = board
        .trunks
        .iter()
        .find(|t| t.name == "provider-y")
        .unwrap();
    assert!(y.usable, "{y:?}");

    // A resident on the citywide number (provider Y) reaches the operator.
    let softphone = sipp::operator_on_duty(
        &engine,
        &dir,
        "operator_answers.xml",
        0,
        "1001",
        "op1001pass",
        2,
    )
    .await;
    let caller = resident(
        &engine,
        &dir,
        "resident_calls.xml",
        CITYWIDE_NUMBER,
        KNOWN_CALLER,
        12_000,
    );
    caller
        .finish(Duration::from_secs(30))
        .await
        .assert_success("resident via provider Y");
    let answered = wait_for_events(&engine, "call.answered", 1, Duration::from_secs(5)).await;
    assert_eq!(answered[0].payload["operator"], "1001");
    assert_eq!(answered[0].tenant.as_deref(), Some("etalon"));

    // A callback of the tenant whose own number is on X leaves by Y instead.
    let phone = phone_behind_provider(&dir, y_port, "resident_phone_answers.xml", 1_000).await;
    callback_job(&engine, "+79120000002", Some("etalon")).await;
    let outcome = wait_for_events(&engine, "dial.outcome", 1, Duration::from_secs(20)).await;
    assert_eq!(outcome[0].payload["outcome"], "answered");
    let attempt = wait_for_events(&engine, "dial.attempt", 1, Duration::from_secs(5)).await;
    assert_eq!(attempt[0].payload["trunk"], "provider-y");
    phone
        .finish(Duration::from_secs(20))
        .await
        .assert_success("resident's phone via Y");
    softphone
        .finish(Duration::from_secs(20))
        .await
        .assert_success("operator");
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_asking_for_digest_gets_it_on_register_and_on_callback_invites() {
    let x_port = free_port();
    let dir = sipp::workdir("story-digest-provider");
    // The provider's registrar is up before the engine starts.
    let registrar = sipp::args(&[
        "-sf",
        &scenario("provider_registrar.xml"),
        "-i",
        "127.0.0.1",
        "-p",
        &x_port.to_string(),
        "-m",
        "1",
    ]);
    let registrar = spawn("provider-registrar", &dir, &registrar);
    wait_bound(x_port).await;
    let extra = format!(
        r#"
[[trunk]]
name = "provider-x"
proxy = "127.0.0.1:{x_port}"
register = true
username = "etalon"
password = "secret"
register_expires_s = 600
options_interval_s = 0

[[number]]
number = "{TENANT_NUMBER}"
kind = "tenant"
tenant = "etalon"
city = "ekb"
trunk = "provider-x"

[[operator]]
extension = "1001"
password = "op1001pass"
"#
    );
    let (engine, dir) = world("story-digest", &extra, |_| {}).await;
    registrar
        .finish(Duration::from_secs(20))
        .await
        .assert_success("provider registrar");
    let board = wait_board(&engine, Duration::from_secs(10), |b| {
        b.trunks.iter().any(|t| t.registered == Some(true))
    })
    .await;
    assert!(board.trunks[0].usable, "{board:?}");

    // Now the same provider challenges the callback's INVITE.
    let phone = phone_behind_provider(&dir, x_port, "resident_phone_behind_auth.xml", 1_000).await;
    let softphone = operator_on_duty(&engine, &dir, "operator_answers.xml", 0).await;
    callback_job(&engine, KNOWN_CALLER, Some("etalon")).await;
    let outcome = wait_for_events(&engine, "dial.outcome", 1, Duration::from_secs(20)).await;
    assert_eq!(
        outcome[0].payload["outcome"], "answered",
        "the second INVITE carried valid credentials"
    );
    phone
        .finish(Duration::from_secs(20))
        .await
        .assert_success("provider asking for credentials");
    softphone
        .finish(Duration::from_secs(20))
        .await
        .assert_success("operator");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_of_numbers_only_serves_its_forward_and_tenant_numbers() {
    let dir = engine::scratch_dir();
    let target_port = free_port();
    // What a test or benchmark outside the code writes: [[number]] tables only.
    let file = dir.join("numbers.toml");
    std::fs::write(
        &file,
        format!(
            r#"[[number]]
number = "{TENANT_NUMBER}"
kind = "tenant"
tenant = "etalon"
city = "ekb"
trunk = "provider-x"
greeting = "ru/connecting.wav"

[[number]]
number = "100"
kind = "forward"
target = "sip:127.0.0.1:{target_port}"
"#
        ),
    )
    .unwrap();
    let mut config = Config::load(&file).unwrap();
    assert!(!config.warnings().is_empty(), "check-config would warn");
    // What `serve --sip-listen --http-listen --data-dir` would change.
    config.sip.listen = "127.0.0.1:0".parse().unwrap();
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.database.url = format!("sqlite://{}/dispatchline.db", dir.display());
    config.database.data_dir = dir.clone();
    config.media.prompts_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-prompts");
    config.media.record_calls = false;
    let engine = Engine::start(config).await.unwrap();
    dispatchline::store::demo::seed(&engine.store)
        .await
        .unwrap();
    let sipp_dir = sipp::workdir("numbers-only");

    let target = sipp::args(&[
        "-sn",
        "uas",
        "-i",
        "127.0.0.1",
        "-p",
        &target_port.to_string(),
        "-m",
        "1",
        "-mp",
        &free_port().to_string(),
    ]);
    let target = spawn("forward-target", &sipp_dir, &target);
    wait_bound(target_port).await;
    let caller = sipp::args(&[
        "-sn",
        "uac",
        &engine.sip_addr.to_string(),
        "-s",
        "100",
        "-i",
        "127.0.0.1",
        "-m",
        "1",
        "-d",
        "500",
        "-p",
        &free_port().to_string(),
        "-mp",
        &free_port().to_string(),
    ]);
    spawn("caller", &sipp_dir, &caller)
        .finish(Duration::from_secs(30))
        .await
        .assert_success("caller of the forward number");
    target
        .finish(Duration::from_secs(30))
        .await
        .assert_success("forward target");
    // And a resident of the tenant number is answered, not refused.
    let captures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sipp");
    std::fs::copy(captures.join("g711a.pcap"), sipp_dir.join("g711a.pcap")).unwrap();
    resident(
        &engine,
        &sipp_dir,
        "resident_calls.xml",
        TENANT_NUMBER,
        "+79120000077",
        1_000,
    )
    .finish(Duration::from_secs(30))
    .await
    .assert_success("resident of the tenant number");
    let ended = wait_for_events(&engine, "call.ended", 2, Duration::from_secs(10)).await;
    assert_eq!(ended[0].payload["disposition"], "answered", "{ended:?}");
    wait_no_calls(&engine, Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keypad_digits_from_sipps_capture_are_detected_once_and_the_recording_holds_the_callers_audio()
 {
    let extra = format!(
        "{}\n[[number]]\nnumber = \"+73432000200\"\nkind = \"tenant\"\ntenant = \"etalon\"\ncity = \"ekb\"\ngreeting = \"ru/connecting.wav\"\nmenu = \"main\"\n\n\
         [[menu]]\nname = \"main\"\nprompt = \"ru/menu-main.wav\"\ntimeout_s = 10\n[[menu.option]]\ndigit = \"1\"\naction = \"queue\"\n",
        numbers(5999)
    );
    let (engine, dir) = world("story-pcap", &extra, |c| c.media.record_calls = true).await;
    // SIPp's own uac_pcap scenario: G.711 A-law speech, then the RFC 2833 digit 1.
    let args = sipp::args(&[
        "-sn",
        "uac_pcap",
        &engine.sip_addr.to_string(),
        "-s",
        "+73432000200",
        "-i",
        "127.0.0.1",
        "-m",
        "1",
        "-p",
        &free_port().to_string(),
        "-mp",
        &free_port().to_string(),
    ]);
    spawn("uac_pcap", &dir, &args)
        .finish(Duration::from_secs(60))
        .await
        .assert_success("uac_pcap");
    let ended = wait_for_events(&engine, "call.ended", 1, Duration::from_secs(10)).await;
    let call = ended[0].payload["call"].as_str().unwrap().to_owned();
    let digits: Vec<String> = engine
        .events
        .replay(0)
        .unwrap()
        .iter()
        .filter(|e| e.kind == "call.dtmf" && e.payload["call"] == call)
        .map(|e| e.payload["digit"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(digits, ["1"], "exactly the digit sent, once");
    assert!(
        engine
            .events
            .replay(0)
            .unwrap()
            .iter()
            .any(|e| e.kind == "call.queued"),
        "digit 1 queued the call"
    );

    // The caller's channel holds the capture's audio: compare energy envelopes with
    // the capture decoded independently.
    let (left, _) = recording_of(&engine, &call).await;
    let capture = media_util::read_pcap(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sipp/g711a.pcap"),
    );
    let decoded: Vec<i16> = capture
        .iter()
        .filter_map(|p| media_util::parse_rtp(&p.payload))
        .flat_map(|(_, _, _, _, payload)| payload.into_iter().map(media_util::alaw))
        .collect();
    let window = 160;
    let (correlation, _) = media_util::best_alignment(
        &media_util::envelope(&decoded, window),
        &media_util::envelope(&left, window),
        8000 * 3 / window as isize,
    );
    assert!(correlation > 0.9, "envelope correlation {correlation}");
}
