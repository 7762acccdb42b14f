//! Events across the cluster, end to end: two engine nodes (the real binary, child
//! processes, `serve --node-id`) on one PostgreSQL database. A console on node B
//! sees a ticket change made through node A's API exactly once; reconnecting to
//! node A with the `since` and `epoch` node B gave replays exactly what was missed;
//! node B killed with SIGKILL and started again resumes the same stream with no gap
//! and no duplicate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/store_db.rs"]
mod store_db;
#[path = "common/store_world.rs"]
mod store_world;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::engine::{free_port, scratch_dir};
use futures_util::StreamExt;
use serde_json::{Value, json};
use store_db::TestDb;
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_dispatchline");

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A node: the child process (SIGKILLed when dropped) and where it listens.
struct Node {
    child: Child,
    http: u16,
    data: PathBuf,
    name: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts node `name` on `database`, its data in `data`, HTTP on `http`.
async fn node(database: &str, data: &Path, name: &str, http: u16) -> Node {
    std::fs::create_dir_all(data).unwrap();
    let config = data.join("dispatchline.toml");
    std::fs::write(
        &config,
        format!(
            r#"[sip]
listen = "127.0.0.1:0"

[http]
listen = "127.0.0.1:{http}"

[database]
url = "{database}"
data_dir = "{data}"

[media]
record_calls = false
prompts_dir = "{prompts}"

[[operator]]
extension = "9000"
password = "pw-9000"
role = "supervisor"
"#,
            data = data.display(),
            prompts = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("ivr-prompts")
                .display(),
        ),
    )
    .unwrap();
    let child = Command::new(BIN)
        .args([
            "serve",
            "--config",
            &config.display().to_string(),
            "--node-id",
            name,
        ])
        .env("DISPATCHLINE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let node = Node {
        child,
        http,
        data: data.to_owned(),
        name: name.to_owned(),
    };
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if client
            .get(format!("http://127.0.0.1:{http}/healthz"))
            .send()
            .await
            .is_ok()
        {
            return node;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("node {name} did not start");
}

impl Node {
    async fn post(&self, token: Option<&str>, path: &str, body: Value) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/api/v1{path}", self.http))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn login(&self) -> String {
        let (status, answer) = self
            .post(
                None,
                "/auth/token",
                json!({"extension": "9000", "password": "pw-9000"}),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        answer["token"].as_str().unwrap().to_owned()
    }

    async fn connect(&self, token: &str, resume: Option<(u64, &str)>) -> (Ws, Value) {
        let mut url = format!("ws://127.0.0.1:{}/ws?token={token}", self.http);
        if let Some((since, epoch)) = resume {
            url.push_str(&format!("&since={since}&epoch={epoch}"));
        }
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let hello = next(&mut ws).await;
        assert_eq!(hello["type"], "hello", "{hello}");
        (ws, hello)
    }
}

/// The next text frame (event or control message) as JSON.
async fn next(ws: &mut Ws) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("a frame within 20 s")
            .expect("the stream is open")
            .expect("a good frame");
        match frame {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(close) => panic!("closed: {close:?}"),
            _ => {}
        }
    }
}

/// Events (control messages skipped) until the `comments`-th comment on a
/// ticket, inclusive.
async fn until_comments(ws: &mut Ws, comments: usize) -> Vec<Value> {
    let mut events = Vec::new();
    let mut seen = 0;
    loop {
        let message = next(ws).await;
        if message.get("seq").is_none() {
            continue;
        }
        if is_comment(&message) {
            seen += 1;
        }
        events.push(message);
        if seen == comments {
            return events;
        }
    }
}

fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

/// A supervisor of every tenant is sent every event, so the seqs are contiguous.
fn assert_contiguous(after: u64, events: &[Value]) {
    let got = seqs(events);
    let expected: Vec<u64> = (after + 1..after + 1 + got.len() as u64).collect();
    assert_eq!(got, expected, "every event once, in order, from {after}");
}

fn is_comment(event: &Value) -> bool {
    event["type"] == "ticket.changed" && event["payload"]["change"] == "comment"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_on_any_node_sees_every_event_once_and_resumes_anywhere() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let world = store_world::build(&db.store).await;
    let dir = scratch_dir();
    let a = node(&db.url, &dir.join("node-a"), "node-a", free_port()).await;
    let b = node(&db.url, &dir.join("node-b"), "node-b", free_port()).await;
    let token_a = a.login().await;
    let token_b = b.login().await;

    // A console on node B.
    let (mut on_b, hello_b) = b.connect(&token_b, None).await;
    let epoch = hello_b["epoch"].as_str().unwrap().to_owned();
    let start = hello_b["position"].as_u64().unwrap();

    // A ticket registered through node A reaches it once.
    let (status, created) = a
        .post(
            Some(&token_a),
            "/tickets",
            json!({"tenant": "etalon", "house_id": world.ekb_house2, "reason_id": world.intercom,
                   "description": "не работает домофон"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let ticket = created["ticket"]["id"].as_i64().unwrap();
    let comment = |text: &'static str| {
        let (a, token) = (&a, token_a.clone());
        async move {
            let (status, body) = a
                .post(
                    Some(&token),
                    &format!("/tickets/{ticket}/comments"),
                    json!({ "text": text }),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
    };
    comment("first").await;
    let seen = until_comments(&mut on_b, 1).await;
    assert_contiguous(start, &seen);
    let created_events: Vec<&Value> = seen
        .iter()
        .filter(|e| e["type"] == "ticket.changed" && e["payload"]["change"] == "created")
        .collect();
    assert_eq!(created_events.len(), 1, "created once: {seen:?}");
    assert_eq!(created_events[0]["payload"]["ticket"], ticket);
    let position = seqs(&seen).last().copied().unwrap();
    drop(on_b);

    // While no console is connected, node A changes the ticket twice; reconnecting
    // to node A with node B's resume point replays exactly those.
    comment("second").await;
    comment("third").await;
    let (mut on_a, hello_a) = a.connect(&token_a, Some((position, &epoch))).await;
    assert_eq!(hello_a["epoch"], epoch.as_str(), "one epoch on every node");
    assert_eq!(hello_a["position"], position);
    let missed = until_comments(&mut on_a, 2).await;
    assert_contiguous(position, &missed);
    assert!(missed.iter().all(|e| e["seq"].as_u64() > Some(position)));
    let position = seqs(&missed).last().copied().unwrap();
    drop(on_a);

    // Node B dies and comes back; what happened meanwhile on node A is replayed
    // by the restarted node B from the shared log, with nothing twice.
    let (http_b, data_b, name_b) = (b.http, b.data.clone(), b.name.clone());
    drop(b);
    comment("while b was down").await;
    let b = node(&db.url, &data_b, &name_b, http_b).await;
    let (mut on_b, hello_b) = b.connect(&token_b, Some((position, &epoch))).await;
    assert_eq!(
        hello_b["epoch"],
        epoch.as_str(),
        "the epoch outlives restarts"
    );
    let missed = until_comments(&mut on_b, 1).await;
    assert_contiguous(position, &missed);
    let position = seqs(&missed).last().copied().unwrap();
    // And live again: a change through node A.
    comment("after the restart").await;
    let live = until_comments(&mut on_b, 1).await;
    assert_contiguous(position, &live);
    drop(on_b);
    drop(a);
    drop(b);
}
