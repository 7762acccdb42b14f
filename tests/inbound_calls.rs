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
    let port = free_port();
    let args: Vec<String> = [
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
    ]
    .map(String::from)
    .to_vec();
    let softphone = spawn("operator", dir, &args);
    wait_bound(port).await;
    let register: Vec<String> = [
        "-sf",
        &scenario("operator_register.xml"),
        &engine.sip_addr.to_string(),
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
        "op1001pass",
        "-key",
        "contact_port",
        &port.to_string(),
        "-p",
        &free_port().to_string(),
    ]
    .map(String::from)
    .to_vec();
    spawn("register", dir, &register)
        .finish(Duration::from_secs(30))
        .await
        .assert_success("softphone registration");
    let state = engine
        .call_handle
        .set_operator_state("1001", OperatorState::Ready, None)
        .await
        .unwrap();
    assert!(state.is_ok(), "{state:?}");
    softphone
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
    let args: Vec<String> = [
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
    ]
    .map(String::from)
    .to_vec();
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
    let ready = wait_for_events(engine, "recording.ready", 1, Duration::from_secs(10)).await;
    let event = ready
        .iter()
        .find(|e| e.payload["call"] == call)
        .expect("the call's recording");
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
        2_000,
    );
    unknown
        .finish(Duration::from_secs(30))
        .await
        .assert_success("unknown resident");
    let offered = wait_for_events(&engine, "call.offered", 2, Duration::from_secs(5)).await;
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
async fn a_resident_who_gives_up_waiting_is_called_back_by_the_next_free_operator() {
    let provider_port = free_port();
    let (engine, dir) = world("story-callback", &numbers(provider_port), |c| {
        c.queue.abandon_threshold = Duration::from_secs(1);
        c.numbers[0].greeting = Some("ru/connecting.wav".into());
    })
    .await;
    // Nobody is on duty: the resident hears the greeting and the outage notice
    // (about 7 s), waits in the queue, then hangs up.
    let caller = resident(
        &engine,
        &dir,
        "resident_calls.xml",
        TENANT_NUMBER,
        KNOWN_CALLER,
        10_000,
    );
    let queued = wait_for_events(&engine, "call.queued", 1, Duration::from_secs(10)).await;
    caller
        .finish(Duration::from_secs(30))
        .await
        .assert_success("resident");
    let scheduled = wait_for_events(&engine, "callback.scheduled", 1, Duration::from_secs(5)).await;
    assert_eq!(scheduled[0].payload["phone"], KNOWN_CALLER);
    assert_eq!(scheduled[0].payload["call"], queued[0].payload["call"]);
    let ended = wait_for_events(&engine, "call.ended", 1, Duration::from_secs(5)).await;
    assert_eq!(ended[0].payload["disposition"], "callback-scheduled");

    // The provider answers for the resident's phone; an operator comes on duty and
    // gets the callback first, as an incoming call, then the resident's phone rings.
    let provider: Vec<String> = [
        "-sn",
        "uas",
        "-i",
        "127.0.0.1",
        "-p",
        &provider_port.to_string(),
        "-m",
        "1",
        "-mp",
        &free_port().to_string(),
    ]
    .map(String::from)
    .to_vec();
    let phone = spawn("resident-phone", &dir, &provider);
    wait_bound(provider_port).await;
    let softphone = operator_on_duty(&engine, &dir, "operator_hangs_up.xml", 3_000).await;
    let ringing = wait_for_events(&engine, "call.ringing", 1, Duration::from_secs(10)).await;
    assert_eq!(ringing[0].payload["direction"], "outbound");
    assert_eq!(ringing[0].payload["purpose"], "callback");
    assert_eq!(
        ringing[0].payload["original_call"],
        queued[0].payload["call"]
    );
    assert_eq!(ringing[0].payload["operator"], "1001");
    softphone
        .finish(Duration::from_secs(30))
        .await
        .assert_success("operator");
    phone
        .finish(Duration::from_secs(30))
        .await
        .assert_success("resident's phone");
    let attempt = wait_for_events(&engine, "dial.attempt", 1, Duration::from_secs(5)).await;
    assert_eq!(attempt[0].payload["target"], KNOWN_CALLER);
    assert_eq!(attempt[0].payload["trunk"], "provider-x");
    let outcome = wait_for_events(&engine, "dial.outcome", 1, Duration::from_secs(5)).await;
    assert_eq!(outcome[0].payload["outcome"], "answered");
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
async fn with_provider_x_down_citywide_calls_through_provider_y_still_reach_operators() {
    let extra = format!(
        r#"
[[trunk]]
name = "provider-x"
proxy = "127.0.0.3:5999"
register = true
username = "etalon"
password = "secret"
options_interval_s = 1

[[trunk]]
name = "provider-y"
proxy = "127.0.0.1:5998"
options_interval_s = 0

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
    })
    .await;
    let health = wait_for_events(&engine, "trunk.health", 1, Duration::from_secs(10)).await;
    assert_eq!(health[0].payload["trunk"], "provider-x");
    assert_eq!(health[0].payload["health"], "down");

    let softphone = operator_on_duty(&engine, &dir, "operator_answers.xml", 0).await;
    // Greeting and outage notice (about 7 s), then the operator.
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
    softphone
        .finish(Duration::from_secs(30))
        .await
        .assert_success("operator");
    let answered = wait_for_events(&engine, "call.answered", 1, Duration::from_secs(5)).await;
    assert_eq!(answered[0].payload["operator"], "1001");
    assert_eq!(answered[0].tenant.as_deref(), Some("etalon"));
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
    let args: Vec<String> = [
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
    ]
    .map(String::from)
    .to_vec();
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
