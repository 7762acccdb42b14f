//! The websocket event stream on a real engine: replay after a reconnect with no gap
//! and no duplicate, a client that stops reading is cut off while another gets every
//! event in order, tenant scoping, bad and expired tokens, and `since` too old or in
//! the future.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::engine;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use dispatchline::config::Config;
use dispatchline::console::api::auth::token_hash;
use dispatchline::server::Engine;
use dispatchline::store::{Store, StoredToken};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const OPERATORS: &str = r#"
[[operator]]
extension = "1001"
password = "pw-1001"
tenants = ["etalon"]

[[operator]]
extension = "1002"
password = "pw-1002"
tenants = ["uyut"]

[[operator]]
extension = "9000"
password = "pw-9000"
role = "supervisor"
"#;

struct Running {
    engine: Engine,
    dir: PathBuf,
    http: reqwest::Client,
}

impl Running {
    async fn start() -> Self {
        let dir = engine::scratch_dir();
        let text = format!(
            "[sip]\nlisten = \"127.0.0.1:0\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n\
             [database]\nurl = \"sqlite://{0}/dispatchline.db\"\ndata_dir = \"{0}\"\n\n\
             [media]\nrecord_calls = false\n\n{OPERATORS}",
            dir.display()
        );
        let config = Config::parse(&text, Path::new("ws-test.toml")).unwrap();
        let engine = Engine::start(config).await.unwrap();
        Self {
            engine,
            dir,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.engine.http_addr)
    }

    async fn login(&self, extension: &str) -> String {
        let answer: Value = self
            .http
            .post(self.url("/api/v1/auth/token"))
            .json(&json!({"extension": extension, "password": format!("pw-{extension}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["token"].as_str().unwrap().to_owned()
    }

    async fn connect(&self, token: &str, since: Option<u64>) -> Ws {
        let mut url = format!("ws://{}/ws?token={token}", self.engine.http_addr);
        if let Some(since) = since {
            url.push_str(&format!("&since={since}"));
        }
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        ws
    }

    fn publish(&self, kind: &str, tenant: Option<&str>, n: u64) -> u64 {
        self.engine
            .events
            .publish(kind, tenant, json!({ "call": format!("c{n}"), "n": n }))
    }

    async fn metric(&self, name: &str) -> u64 {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("dispatchline_{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("metric {name} missing"))
    }
}

/// What a client reads: a JSON text frame, or the end of the stream.
#[derive(Debug)]
enum Frame {
    Json(Value),
    Closed(Option<(u16, String)>),
}

async fn next_frame(ws: &mut Ws, within: Duration) -> Frame {
    loop {
        let message = tokio::time::timeout(within, ws.next())
            .await
            .expect("a frame within the time limit");
        match message {
            Some(Ok(Message::Text(text))) => {
                return Frame::Json(serde_json::from_str(&text).unwrap());
            }
            Some(Ok(Message::Close(frame))) => {
                return Frame::Closed(frame.map(|f| (u16::from(f.code), f.reason.to_string())));
            }
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return Frame::Closed(None),
        }
    }
}

/// Reads until an event with `seq >= last`; returns the events (control messages
/// dropped).
async fn events_until(ws: &mut Ws, last: u64) -> Vec<Value> {
    events_until_reporting(ws, last, &AtomicU64::new(0)).await
}

/// [`events_until`], storing the last seq read in `progress` as it goes.
async fn events_until_reporting(ws: &mut Ws, last: u64, progress: &AtomicU64) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        match next_frame(ws, Duration::from_secs(10)).await {
            Frame::Json(v) if v.get("seq").is_some() => {
                let seq = v["seq"].as_u64().unwrap();
                progress.store(seq, Ordering::Relaxed);
                events.push(v);
                if seq >= last {
                    return events;
                }
            }
            Frame::Json(_) => {}
            Frame::Closed(c) => panic!("closed before seq {last}: {c:?}"),
        }
    }
}

fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

async fn hello(ws: &mut Ws) -> Value {
    match next_frame(ws, Duration::from_secs(5)).await {
        Frame::Json(v) if v["type"] == "hello" => v,
        other => panic!("expected hello, got {other:?}"),
    }
}

#[tokio::test]
async fn replay_after_reconnect_has_no_gap_and_no_duplicate() {
    let r = Running::start().await;
    let token = r.login("9000").await;
    let mut ws = r.connect(&token, None).await;
    let hi = hello(&mut ws).await;
    assert_eq!(hi["position"], 0);
    assert_eq!(hi["role"], "supervisor");
    for n in 1..=50 {
        r.publish("call.offered", Some("etalon"), n);
    }
    let first = events_until(&mut ws, 20).await;
    assert_eq!(seqs(&first), (1..=20).collect::<Vec<_>>());
    // The event is the bus's JSON as DESIGN.md fixes it.
    let e = &first[0];
    assert_eq!(e["type"], "call.offered");
    assert_eq!(e["tenant"], "etalon");
    assert_eq!(e["payload"]["n"], 1);
    assert!(e["ts"].as_str().unwrap().ends_with('Z'));
    drop(ws);

    // Events keep coming while the client is away and while it reconnects.
    for n in 51..=80 {
        r.publish("call.offered", Some("etalon"), n);
    }
    let publisher = {
        let events = r.engine.events.clone();
        tokio::spawn(async move {
            for n in 81..=300u64 {
                events.publish("operator.state", None, json!({ "n": n }));
                if n % 20 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        })
    };
    let mut ws = r.connect(&token, Some(20)).await;
    let hi = hello(&mut ws).await;
    assert_eq!(hi["position"], 20);
    publisher.await.unwrap();
    let rest = events_until(&mut ws, 300).await;
    assert_eq!(
        seqs(&rest),
        (21..=300).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    assert_eq!(rest[60]["payload"]["n"], 81);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_others_get_everything() {
    let r = Running::start().await;
    let token = r.login("9000").await;
    let mut stuck = r.connect(&token, None).await;
    hello(&mut stuck).await;
    let mut reader = r.connect(&token, None).await;
    hello(&mut reader).await;
    assert_eq!(r.metric("ws_clients").await, 2);

    // 12,000 events of 2 KB: far more than the socket buffers hold and more than
    // the bus keeps for a live subscriber, so the stuck client must fall behind.
    let total = 12_000u64;
    let filler = "x".repeat(2048);
    let events = r.engine.events.clone();
    let progress = Arc::new(AtomicU64::new(0));
    let reading = tokio::spawn({
        let progress = progress.clone();
        async move {
            let got = events_until_reporting(&mut reader, total, &progress).await;
            (reader, got)
        }
    });
    let mut slowest = Duration::ZERO;
    for n in 1..=total {
        // The reader is kept well within the bus's live slack (8192 events), so
        // only the stuck client can fall behind however loaded the machine is.
        while n > progress.load(Ordering::Relaxed) + 2_000 {
            assert!(!reading.is_finished(), "the reader stopped at seq {n}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let t = Instant::now();
        events.publish(
            "call.offered",
            Some("etalon"),
            json!({ "n": n, "filler": filler }),
        );
        slowest = slowest.max(t.elapsed());
        if n % 500 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert!(
        slowest < Duration::from_secs(1),
        "publishing waited on a client: {slowest:?}"
    );
    let (mut reader, got) = tokio::time::timeout(Duration::from_secs(60), reading)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        seqs(&got),
        (1..=total).collect::<Vec<_>>(),
        "every event in order"
    );

    // The stuck client is cut off within the send timeout (5 s) or at once on lag.
    let deadline = Instant::now() + Duration::from_secs(15);
    while r.metric("ws_clients").await != 1 {
        assert!(
            Instant::now() < deadline,
            "the stuck client was not cut off"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(r.metric("ws_dropped_slow_total").await, 1);

    // Reading now, it finds a prefix of the stream in order, then the end; the close
    // reason (when it got through) says where to resume.
    let mut prefix = Vec::new();
    let close = loop {
        match next_frame(&mut stuck, Duration::from_secs(10)).await {
            Frame::Json(v) if v.get("seq").is_some() => prefix.push(v["seq"].as_u64().unwrap()),
            Frame::Json(v) => assert!(v["type"] == "error" || v["type"] == "heartbeat", "{v}"),
            Frame::Closed(c) => break c,
        }
    };
    assert!(
        (prefix.len() as u64) < total,
        "it cannot have got everything"
    );
    assert_eq!(prefix, (1..=prefix.len() as u64).collect::<Vec<_>>());
    let resume = match close {
        Some((code, reason)) => {
            assert_eq!(code, 4000, "{reason}");
            let since: u64 = reason
                .strip_prefix("slow consumer: resume with since=")
                .unwrap_or_else(|| panic!("close reason: {reason}"))
                .parse()
                .unwrap();
            assert!(since <= prefix.len() as u64);
            since
        }
        None => prefix.len() as u64,
    };
    let mut again = r.connect(&token, Some(resume)).await;
    hello(&mut again).await;
    let rest = events_until(&mut again, total).await;
    assert_eq!(seqs(&rest), (resume + 1..=total).collect::<Vec<_>>());

    // The reader is still live.
    let seq = r.publish("operator.state", None, 0);
    assert_eq!(seqs(&events_until(&mut reader, seq).await), vec![seq]);
}

#[tokio::test]
async fn operators_see_only_their_tenants_and_untenanted_events() {
    let r = Running::start().await;
    let etalon = r.login("1001").await;
    let uyut = r.login("1002").await;
    let all = r.login("9000").await;
    // Some history first: scoping applies to the replay too.
    let mut expected_etalon = Vec::new();
    let mut expected_uyut = Vec::new();
    let mut n = 0;
    let mut publish = |tenant: Option<&str>| {
        n += 1;
        let seq = r.publish("ticket.changed", tenant, n);
        match tenant {
            Some("etalon") => expected_etalon.push(seq),
            Some("uyut") => expected_uyut.push(seq),
            None => {
                expected_etalon.push(seq);
                expected_uyut.push(seq);
            }
            Some(_) => {}
        }
        seq
    };
    for tenant in [Some("etalon"), Some("uyut"), None, Some("uyut")] {
        publish(tenant);
    }
    let mut a = r.connect(&etalon, Some(0)).await;
    let mut b = r.connect(&uyut, Some(0)).await;
    let mut s = r.connect(&all, Some(0)).await;
    for ws in [&mut a, &mut b, &mut s] {
        hello(ws).await;
    }
    let mut last = 0;
    for tenant in [
        Some("uyut"),
        Some("etalon"),
        None,
        Some("stolica"),
        Some("uyut"),
    ] {
        last = publish(tenant);
    }
    // A final event every client sees, to know when to stop reading.
    last = last.max(publish(None));
    let got_a = seqs(&events_until(&mut a, last).await);
    let got_b = seqs(&events_until(&mut b, last).await);
    let got_s = seqs(&events_until(&mut s, last).await);
    assert_eq!(got_a, expected_etalon);
    assert_eq!(got_b, expected_uyut);
    assert_eq!(got_s, (1..=last).collect::<Vec<_>>());

    // A quiet tenant's client still learns how far its stream is complete: the
    // heartbeat (and the hello) carry the position to resume from.
    let mut c = r.connect(&etalon, None).await;
    assert_eq!(hello(&mut c).await["position"], last);
}

#[tokio::test]
async fn bad_and_expired_tokens_are_refused_before_the_upgrade() {
    let r = Running::start().await;
    let ws_url = format!("ws://{}/ws", r.engine.http_addr);
    // No token, an unknown one, an expired one: 401 with the API's JSON error.
    let store = Store::connect(&format!("sqlite://{}/dispatchline.db", r.dir.display()))
        .await
        .unwrap();
    let expired = "e".repeat(64);
    store
        .store_token(
            &token_hash(&expired),
            &StoredToken {
                extension: "1001".into(),
                role: "operator".into(),
                tenants: vec!["etalon".into()],
                expires_at: Utc::now() - chrono::Duration::minutes(1),
            },
            Utc::now() - chrono::Duration::hours(12),
        )
        .await
        .unwrap();
    for query in [
        "",
        "?token=",
        "?token=nonsense",
        &format!("?token={expired}"),
    ] {
        let err = tokio_tungstenite::connect_async(format!("{ws_url}{query}"))
            .await
            .expect_err("refused");
        let tokio_tungstenite::tungstenite::Error::Http(response) = err else {
            panic!("expected an HTTP refusal for {query:?}, got {err}");
        };
        assert_eq!(response.status(), 401, "{query:?}");
        let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
        assert_eq!(body["field"], "token", "{query:?}: {body}");
        assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
    }
    // A good token without an upgrade: told this is a websocket.
    let token = r.login("1001").await;
    let plain = r
        .http
        .get(r.url(&format!("/ws?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 426);
    // A bad `since` is a 400 naming it.
    let bad = tokio_tungstenite::connect_async(format!("{ws_url}?token={token}&since=-1"))
        .await
        .expect_err("refused");
    let tokio_tungstenite::tungstenite::Error::Http(response) = bad else {
        panic!("expected an HTTP refusal");
    };
    assert_eq!(response.status(), 400);
    // The bearer header works as well as the query.
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            ws_url.as_str(),
        )
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(hello(&mut ws).await["extension"], "1001");
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn since_too_old_or_in_the_future_is_an_error_and_a_close_with_the_reason() {
    let r = Running::start().await;
    let token = r.login("9000").await;
    // Three events older than the bus keeps (15 minutes), then a fresh one: the old
    // ones fall out of the history.
    let old = Utc::now() - chrono::Duration::minutes(20);
    for n in 0..3 {
        r.engine
            .events
            .publish_at(old, "call.ended", Some("etalon"), json!({ "n": n }));
    }
    let last = r.publish("call.offered", Some("etalon"), 4);
    assert_eq!(last, 4);

    for (since, code, error) in [
        (1u64, 4002u16, "since-too-old"),
        (last + 100, 4003, "since-in-future"),
    ] {
        let mut ws = r.connect(&token, Some(since)).await;
        let Frame::Json(message) = next_frame(&mut ws, Duration::from_secs(5)).await else {
            panic!("expected an error message");
        };
        assert_eq!(message["type"], "error");
        assert_eq!(message["error"], error, "{message}");
        assert!(message.get("seq").is_none());
        match next_frame(&mut ws, Duration::from_secs(5)).await {
            Frame::Closed(Some((c, reason))) => {
                assert_eq!(c, code);
                assert!(reason.contains("reload"), "{reason}");
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    // The oldest held event is still a valid place to resume from.
    let mut ws = r.connect(&token, Some(3)).await;
    hello(&mut ws).await;
    assert_eq!(seqs(&events_until(&mut ws, 4).await), vec![4]);
}
