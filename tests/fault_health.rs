//! `/healthz` and `/readyz` tell the truth: ok only while the call core, the
//! media engine and the store are alive; `/readyz` also says when the engine
//! drains.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly by design

mod common;

use std::time::Duration;

use common::engine;
use serde_json::Value;

async fn get(engine: &dispatchline::server::Engine, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("http://{}{path}", engine.http_addr))
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_each_part_and_a_dead_one_fails_it() {
    let engine = engine::start("").await;
    let (status, body) = get(&engine, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    for part in ["call_core", "media", "store"] {
        assert_eq!(body[part], "ok", "{body}");
    }
    let (status, body) = get(&engine, "/readyz").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("ready")),
        "{body}"
    );

    // The media engine stops: the engine is no longer healthy, and says why.
    engine.media.shutdown();
    let (status, body) = get(&engine, "/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["media"], "down", "{body}");
    assert_eq!(body["call_core"], "ok", "{body}");

    // The store goes away too.
    engine.store.close().await;
    let (status, body) = get(&engine, "/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["store"], "down", "{body}");
    let (status, _) = get(&engine, "/readyz").await;
    assert_eq!(status, 503);
    engine.shutdown(Duration::from_secs(1)).await;
}
