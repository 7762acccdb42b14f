//! The websocket's timers, on the console router with short settings so they run in
//! a second: JSON heartbeats with the resume position, a client that never answers
//! pings is closed (4001), and a token that expires while connected closes the
//! socket (4401), and a stopping engine closes it with 1001 (going away).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use dispatchline::config::Config;
use dispatchline::console::api::ApiState;
use dispatchline::console::api::auth::token_hash;
use dispatchline::console::ws::WsSettings;
use dispatchline::console::{ConsoleState, router};
use dispatchline::events::EventBus;
use dispatchline::store::{Store, StoredToken};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

struct Server {
    addr: std::net::SocketAddr,
    store: Store,
    events: EventBus,
    _task: tokio::task::JoinHandle<()>,
    dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn serve() -> Server {
    let dir = std::env::temp_dir().join(format!(
        "dispatchline-ws-heartbeat-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::connect(&format!("sqlite://{}/t.db", dir.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let events = EventBus::default();
    let config = Config::parse(
        "[[operator]]\nextension = \"1001\"\npassword = \"pw-1001\"\n",
        Path::new("t.toml"),
    )
    .unwrap();
    store
        .seed_users(&config.seed_users(), &config.sip.realm)
        .await
        .unwrap();
    let api = ApiState::new(store.clone(), events.clone(), Arc::new(config));
    let mut console = ConsoleState::new(events.clone(), Arc::default(), Arc::default());
    console.ws = WsSettings {
        ping_interval: Duration::from_millis(200),
        send_timeout: Duration::from_secs(1),
        auth_recheck: Duration::from_millis(200),
    };
    let app = router(console, api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server {
        addr,
        store,
        events,
        _task: task,
        dir,
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A token for 1001 valid for `valid`.
async fn token(server: &Server, valid: chrono::Duration) -> String {
    let token = format!("{:064x}", rand_suffix() + 77);
    server
        .store
        .store_token(
            &token_hash(&token),
            &StoredToken {
                extension: "1001".into(),
                role: "operator".into(),
                tenants: vec!["etalon".into()],
                expires_at: Utc::now() + valid,
            },
            Utc::now(),
        )
        .await
        .unwrap();
    token
}

#[tokio::test]
async fn heartbeats_carry_the_position_even_when_nothing_is_visible() {
    let server = serve().await;
    let token = token(&server, chrono::Duration::hours(1)).await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws?token={token}", server.addr))
            .await
            .unwrap();
    // Another tenant's events: not sent, but the position moves past them.
    for n in 0..3 {
        server
            .events
            .publish("call.offered", Some("uyut"), json!({ "n": n }));
    }
    let mut pings = 0;
    let heartbeat = loop {
        match tokio::time::timeout(Duration::from_secs(3), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Text(text))) => {
                let v: Value = serde_json::from_str(&text).unwrap();
                assert!(
                    v.get("seq").is_none(),
                    "no uyut event for an etalon operator"
                );
                if v["type"] == "heartbeat" && v["position"] == 3 {
                    break v;
                }
            }
            Some(Ok(Message::Ping(_))) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(heartbeat["ts"].as_str().is_some());
    // Keep reading (which answers pings) across several intervals: still open.
    let until = tokio::time::Instant::now() + Duration::from_millis(700);
    while let Ok(frame) = tokio::time::timeout_at(until, ws.next()).await {
        match frame {
            Some(Ok(Message::Ping(_))) => pings += 1,
            Some(Ok(Message::Text(_))) => {}
            other => panic!("closed although it answers pings: {other:?}"),
        }
    }
    assert!(pings >= 2, "pings: {pings}");
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_closed() {
    let server = serve().await;
    let token = token(&server, chrono::Duration::hours(1)).await;
    // A hand-made client: it reads, but never sends a pong.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "GET /ws?token={token} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf))
            .await
            .expect("the server closes a silent client")
            .unwrap();
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buf[..n]);
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(received.starts_with(b"HTTP/1.1 101"));
    // A close frame (0x88) with code 4001 (0x0FA1).
    let close = received
        .windows(4)
        .position(|w| w[0] == 0x88 && w[2] == 0x0F && w[3] == 0xA1);
    assert!(
        close.is_some(),
        "no 4001 close frame in {:?}",
        String::from_utf8_lossy(&received)
    );
}

#[tokio::test]
async fn a_token_that_expires_while_connected_closes_the_socket() {
    let server = serve().await;
    let token = token(&server, chrono::Duration::milliseconds(300)).await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws?token={token}", server.addr))
            .await
            .unwrap();
    let mut error = None;
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(3), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Text(text))) => {
                let v: Value = serde_json::from_str(&text).unwrap();
                if v["type"] == "error" {
                    error = Some(v);
                }
            }
            Some(Ok(Message::Close(frame))) => break frame.unwrap(),
            Some(Ok(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 4401);
    assert_eq!(error.unwrap()["error"], "unauthorized");
}

#[tokio::test]
async fn a_stopping_engine_closes_the_stream_with_going_away() {
    let server = serve().await;
    let token = token(&server, chrono::Duration::hours(1)).await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws?token={token}", server.addr))
            .await
            .unwrap();
    let mut seen = Vec::new();
    // Subscribed once the hello arrives.
    match tokio::time::timeout(Duration::from_secs(3), ws.next())
        .await
        .unwrap()
    {
        Some(Ok(Message::Text(text))) => {
            let v: Value = serde_json::from_str(&text).unwrap();
            seen.push(v["type"].as_str().unwrap_or_default().to_owned());
        }
        other => panic!("expected hello, got {other:?}"),
    }
    server
        .events
        .publish("call.offered", Some("etalon"), json!({"call": "c1"}));
    server.events.close();
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(3), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Text(text))) => {
                let v: Value = serde_json::from_str(&text).unwrap();
                seen.push(v["type"].as_str().unwrap_or_default().to_owned());
            }
            Some(Ok(Message::Close(frame))) => break frame.unwrap(),
            Some(Ok(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        u16::from(close.code),
        1001,
        "going away: reconnect elsewhere"
    );
    assert_eq!(
        seen,
        ["hello", "call.offered"],
        "what came before the close is sent"
    );
}
