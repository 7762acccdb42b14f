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

use std::path::Path;
use std::time::Duration;

use common::cluster::{self, Node};
use common::engine::{free_port, scratch_dir};
use futures_util::StreamExt;
use serde_json::{Value, json};
use store_db::TestDb;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Starts node `name` on `database`, in `dir/name`, HTTP on `http`.
async fn node(database: &str, dir: &Path, name: &str, http: u16) -> Node {
    let config = format!(
        r#"[media]
record_calls = false
prompts_dir = "{prompts}"

[[operator]]
extension = "9000"
password = "pw-9000"
role = "supervisor"
"#,
        prompts = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("ivr-prompts")
            .display(),
    );
    cluster::start_node_on(dir, name, database, &config, (free_port(), http)).await
}

async fn post(node: &Node, token: Option<&str>, path: &str, body: Value) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}/api/v1{path}", node.http_addr()))
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn login(node: &Node) -> String {
    let (status, answer) = post(
        node,
        None,
        "/auth/token",
        json!({"extension": "9000", "password": "pw-9000"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    answer["token"].as_str().unwrap().to_owned()
}

async fn connect(node: &Node, token: &str, resume: Option<(u64, &str)>) -> (Ws, Value) {
    let mut url = format!("ws://{}/ws?token={token}", node.http_addr());
    if let Some((since, epoch)) = resume {
        url.push_str(&format!("&since={since}&epoch={epoch}"));
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let hello = next(&mut ws).await;
    assert_eq!(hello["type"], "hello", "{hello}");
    (ws, hello)
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
    let a = node(&db.url, &dir, "node-a", free_port()).await;
    let b = node(&db.url, &dir, "node-b", free_port()).await;
    let token_a = login(&a).await;
    let token_b = login(&b).await;

    // A console on node B.
    let (mut on_b, hello_b) = connect(&b, &token_b, None).await;
    let epoch = hello_b["epoch"].as_str().unwrap().to_owned();
    let start = hello_b["position"].as_u64().unwrap();

    // A ticket registered through node A reaches it once.
    let (status, created) = post(
        &a,
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
            let (status, body) = post(
                a,
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
    let (mut on_a, hello_a) = connect(&a, &token_a, Some((position, &epoch))).await;
    assert_eq!(hello_a["epoch"], epoch.as_str(), "one epoch on every node");
    assert_eq!(hello_a["position"], position);
    let missed = until_comments(&mut on_a, 2).await;
    assert_contiguous(position, &missed);
    assert!(missed.iter().all(|e| e["seq"].as_u64() > Some(position)));
    let position = seqs(&missed).last().copied().unwrap();
    drop(on_a);

    // Node B dies and comes back; what happened meanwhile on node A is replayed
    // by the restarted node B from the shared log, with nothing twice.
    let (http_b, name_b) = (b.http, b.name.clone());
    b.kill();
    comment("while b was down").await;
    let b = node(&db.url, &dir, &name_b, http_b).await;
    let (mut on_b, hello_b) = connect(&b, &token_b, Some((position, &epoch))).await;
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
