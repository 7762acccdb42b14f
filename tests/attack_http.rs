//! HTTP limits an attacker meets: a login body is a few KiB at most (a guesser
//! cannot make the engine read megabytes per try), and `/metrics` can be put
//! behind a token.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly by design

mod common;

use std::time::Duration;

use common::engine;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_bodies_are_small_and_metrics_want_their_token() {
    let engine =
        engine::start_with("", |c| c.security.metrics_token = "m3trics-t0ken".into()).await;
    let client = reqwest::Client::new();
    let base = format!("http://{}", engine.http_addr);

    let huge = format!(
        "{{\"extension\":\"1001\",\"password\":\"{}\"}}",
        "x".repeat(100 * 1024)
    );
    let r = client
        .post(format!("{base}/api/v1/auth/token"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);

    let r = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client
        .get(format!("{base}/metrics"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client
        .get(format!("{base}/metrics"))
        .bearer_auth("m3trics-t0ken")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("dispatchline_calls_active")
    );
    engine.shutdown(Duration::from_secs(1)).await;
}
