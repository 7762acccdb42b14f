//! What each principal's websocket may carry (152-ФЗ): screen-pops trimmed to the
//! tenants the operator serves, untenanted call events only for the call's city,
//! screen-pop deliveries in the access log; and resuming across an engine restart,
//! which the epoch in `hello` makes detectable.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::engine::{self, free_port};
use common::sipp::{self, scenario, spawn};
use dispatchline::phone::PhoneNumber;
use dispatchline::server::Engine;
use dispatchline::store::directory::{HouseFilter, TenantScope};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const CITYWIDE_NUMBER: &str = "+73432000100";
/// Known to the demo data at ул. Малышева 51 (etalon); the test adds a uyut address.
const CALLER: &str = "+79120000001";

const CONFIG: &str = r#"
[[trunk]]
name = "provider-x"
proxy = "127.0.0.1:5999"
options_interval_s = 0

[[number]]
number = "+73432000100"
kind = "citywide"
city = "ekb"
trunk = "provider-x"

[[operator]]
extension = "1001"
password = "pw-1001"
tenants = ["etalon"]

[[operator]]
extension = "1002"
password = "pw-1002"
tenants = ["uyut"]

[[operator]]
extension = "3001"
password = "pw-3001"
tenants = ["elsewhere"]

[[operator]]
extension = "9000"
password = "pw-9000"
role = "supervisor"
"#;

async fn login(engine: &Engine, extension: &str) -> String {
    let answer: Value = reqwest::Client::new()
        .post(format!("http://{}/api/v1/auth/token", engine.http_addr))
        .json(&json!({"extension": extension, "password": format!("pw-{extension}")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["token"].as_str().unwrap().to_owned()
}

async fn connect(engine: &Engine, token: &str, query: &str) -> Ws {
    let url = format!("ws://{}/ws?token={token}{query}", engine.http_addr);
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The next JSON frame, or the close code and reason.
async fn next(ws: &mut Ws) -> Result<Value, Option<(u16, String)>> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("a frame within 20 s");
        match message {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Close(frame))) => {
                return Err(frame.map(|f| (u16::from(f.code), f.reason.to_string())));
            }
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return Err(None),
        }
    }
}

/// Events (control messages dropped) until one with `seq >= last`.
async fn events_until(ws: &mut Ws, last: u64) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let frame = next(ws).await.unwrap_or_else(|c| panic!("closed: {c:?}"));
        if let Some(seq) = frame["seq"].as_u64() {
            events.push(frame);
            if seq >= last {
                return events;
            }
        }
    }
}

fn tenants_of(addresses: &Value) -> Vec<String> {
    addresses
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["tenant"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citywide_screen_pop_shows_each_operator_only_their_tenants_data() {
    let engine = engine::start_with(CONFIG, |c| {
        c.prompts.citywide_greeting = "ru/connecting.wav".into();
    })
    .await;
    dispatchline::store::demo::seed(&engine.store)
        .await
        .unwrap();
    // The caller is also known at a house of uyut (more recently than at etalon).
    let uyut = TenantScope::Only(vec!["uyut".to_owned()]);
    let house = engine
        .store
        .houses(&uyut, &HouseFilter::default())
        .await
        .unwrap()
        .items[0]
        .clone();
    engine
        .store
        .learn_contact(
            &PhoneNumber::parse(CALLER).unwrap(),
            "uyut",
            house.id,
            Some("7"),
            chrono::Utc::now(),
        )
        .await
        .unwrap();

    let mut etalon = connect(&engine, &login(&engine, "1001").await, "").await;
    let mut uyut = connect(&engine, &login(&engine, "1002").await, "").await;
    let mut all = connect(&engine, &login(&engine, "9000").await, "").await;
    for ws in [&mut etalon, &mut uyut, &mut all] {
        assert_eq!(next(ws).await.unwrap()["type"], "hello");
    }

    let dir = sipp::workdir("ws-scoping");
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sipp/g711a.pcap"),
        dir.join("g711a.pcap"),
    )
    .unwrap();
    let args = sipp::args(&[
        "-sf",
        &scenario("resident_calls.xml"),
        &engine.sip_addr.to_string(),
        "-s",
        CITYWIDE_NUMBER,
        "-key",
        "caller",
        CALLER,
        "-i",
        "127.0.0.1",
        "-m",
        "1",
        "-d",
        "2000",
        "-p",
        &free_port().to_string(),
        "-mp",
        &free_port().to_string(),
    ]);
    spawn("resident", &dir, &args)
        .finish(Duration::from_secs(40))
        .await
        .assert_success("resident");
    let ended = engine::wait_for_events(&engine, "call.ended", 1, Duration::from_secs(10)).await;
    let last = ended[0].seq;
    // A last untenanted, non-call event every client gets, to know where to stop.
    let marker = engine.events.publish("trunk.health", None, json!({}));
    assert!(marker > last);

    // The supervisor of all tenants sees everything the lookup found.
    let seen_all = events_until(&mut all, marker).await;
    let offered = seen_all
        .iter()
        .find(|e| e["type"] == "call.offered")
        .expect("the supervisor gets the screen-pop");
    let tenant = offered["tenant"].as_str().unwrap().to_owned();
    assert_eq!(
        tenant, "uyut",
        "resolved from the newest address: {offered}"
    );
    let caller = &offered["payload"]["caller"];
    assert_eq!(caller["address"]["tenant"], "uyut");
    assert!(
        tenants_of(&caller["other_addresses"]).contains(&"etalon".to_owned()),
        "{caller}"
    );

    // uyut's operator gets the call, with uyut's address and none of etalon's.
    let seen_uyut = events_until(&mut uyut, marker).await;
    let offered = seen_uyut
        .iter()
        .find(|e| e["type"] == "call.offered")
        .expect("uyut's operator gets the screen-pop");
    let caller = &offered["payload"]["caller"];
    assert_eq!(caller["address"]["tenant"], "uyut", "{caller}");
    assert!(
        tenants_of(&caller["other_addresses"])
            .iter()
            .all(|t| t == "uyut"),
        "{caller}"
    );
    let text = serde_json::to_string(&seen_uyut).unwrap();
    assert!(
        !text.contains("Малышева"),
        "etalon's address leaked: {text}"
    );

    // etalon's operator gets nothing of this call, and no address at all.
    let seen_etalon = events_until(&mut etalon, marker).await;
    assert_eq!(seen_etalon.len(), 1, "{seen_etalon:?}");
    assert_eq!(seen_etalon[0]["type"], "trunk.health");

    // Each screen-pop delivered is in the access log (written off the stream's path).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let log = engine.store.access_log(100).await.unwrap();
        let readers: Vec<&str> = log
            .iter()
            .filter(|e| e.subject == "caller" && e.purpose == "GET /ws call.offered")
            .map(|e| e.principal.as_str())
            .collect();
        if readers.contains(&"1002") && readers.contains(&"9000") {
            assert!(!readers.contains(&"1001"), "{readers:?}");
            let entry = log.iter().find(|e| e.principal == "1002").unwrap();
            assert_eq!(entry.subject_id, CALLER);
            assert_eq!(entry.tenant.as_deref(), Some("uyut"));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "screen-pop deliveries not logged: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn untenanted_call_events_go_only_to_the_calls_city_and_to_all_tenant_principals() {
    let engine = engine::start(CONFIG).await;
    dispatchline::store::demo::seed(&engine.store)
        .await
        .unwrap();
    // "elsewhere" is a tenant in another city.
    engine
        .store
        .create_city("msk", "Москва", "Europe/Moscow")
        .await
        .unwrap();
    engine
        .store
        .create_tenant("elsewhere", "УК «Другая»", "msk")
        .await
        .unwrap();
    let mut ekb = connect(&engine, &login(&engine, "1001").await, "").await;
    let mut msk = connect(&engine, &login(&engine, "3001").await, "").await;
    let mut all = connect(&engine, &login(&engine, "9000").await, "").await;
    for ws in [&mut ekb, &mut msk, &mut all] {
        next(ws).await.unwrap();
    }
    let bus = &engine.events;
    // An unknown caller on ekb's citywide number: tenant not known yet.
    bus.publish(
        "call.offered",
        None,
        json!({"call": "c-ekb", "city": "ekb", "from": "+79129999999",
               "caller": {"phone": "+79129999999", "address": null, "other_addresses": [
                   {"tenant": "etalon", "address": "ул. Малышева, д. 51"},
                   {"tenant": "uyut", "address": "ул. Ленина, д. 1"}]}}),
    );
    bus.publish("call.queued", None, json!({"call": "c-ekb", "city": "ekb"}));
    // Its end names no city: it follows the call.
    bus.publish(
        "call.ended",
        None,
        json!({"call": "c-ekb", "disposition": "abandoned"}),
    );
    // A call whose city is not known reaches only all-tenant principals.
    bus.publish(
        "call.offered",
        None,
        json!({"call": "c-nowhere", "city": null}),
    );
    // Operator states are for everyone.
    let marker = bus.publish("operator.state", None, json!({"extension": "1001"}));

    let kinds = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .map(|e| format!("{} {}", e["type"].as_str().unwrap(), e["payload"]["call"]))
            .collect()
    };
    let seen_ekb = events_until(&mut ekb, marker).await;
    assert_eq!(
        kinds(&seen_ekb),
        [
            "call.offered \"c-ekb\"",
            "call.queued \"c-ekb\"",
            "call.ended \"c-ekb\"",
            "operator.state null"
        ]
    );
    // Trimmed: only etalon's address is left for etalon's operator.
    assert_eq!(
        tenants_of(&seen_ekb[0]["payload"]["caller"]["other_addresses"]),
        ["etalon"]
    );
    let seen_msk = events_until(&mut msk, marker).await;
    assert_eq!(kinds(&seen_msk), ["operator.state null"]);
    let seen_all = events_until(&mut all, marker).await;
    assert_eq!(seen_all.len(), 5);
    assert_eq!(
        tenants_of(&seen_all[0]["payload"]["caller"]["other_addresses"]),
        ["etalon", "uyut"]
    );
}

#[tokio::test]
async fn resuming_across_an_engine_restart_is_refused_by_the_epoch() {
    let first = engine::start(CONFIG).await;
    let token = login(&first, "9000").await;
    let mut ws = connect(&first, &token, "").await;
    let hello = next(&mut ws).await.unwrap();
    let epoch = hello["epoch"].as_str().unwrap().to_owned();
    assert!(!epoch.is_empty());
    for n in 0..3 {
        first
            .events
            .publish("ticket.changed", Some("etalon"), json!({ "n": n }));
    }
    let seen = events_until(&mut ws, 3).await;
    let position = seen.last().unwrap()["seq"].as_u64().unwrap();
    drop(ws);
    first.shutdown(Duration::from_secs(2)).await;

    // The next run starts again at 1 and soon passes the old position: without the
    // epoch, `since` alone would silently skip or mix events.
    let second = engine::start(CONFIG).await;
    for n in 0..10 {
        second
            .events
            .publish("ticket.changed", Some("etalon"), json!({ "n": n }));
    }
    assert!(second.events.last_seq() > position);
    let token = login(&second, "9000").await;
    let mut ws = connect(&second, &token, &format!("&since={position}&epoch={epoch}")).await;
    let error = next(&mut ws).await.unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"], "epoch-changed");
    assert_eq!(error["epoch"], second.events.epoch());
    let (code, reason) = next(&mut ws).await.unwrap_err().unwrap();
    assert_eq!(code, 4003);
    assert!(reason.contains("restarted"), "{reason}");

    // With this run's epoch the same `since` resumes normally.
    let now = second.events.epoch().to_owned();
    let mut ws = connect(&second, &token, &format!("&since={position}&epoch={now}")).await;
    let hello = next(&mut ws).await.unwrap();
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["epoch"], now.as_str());
    let replayed = events_until(&mut ws, 10).await;
    assert_eq!(replayed[0]["seq"].as_u64(), Some(position + 1));
}
