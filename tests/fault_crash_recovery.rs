//! After a crash, a node closes its own unfinished journal rows with their last
//! known state and calls back the callers who were waiting in its queue (once),
//! on SQLite and PostgreSQL; other nodes' live calls are left alone. And an engine
//! started on a store a crash left so does it at start, and links the recording
//! the crash cut off once its header is repaired.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/store_db.rs"]
mod store_db;

mod common;

use std::time::Duration;

use chrono::Utc;
use dispatchline::store::{
    CallDirection, CallRecord, DialJobFilter, DialKind, Disposition, Store, TenantScope,
};

fn open(id: &str, from: &str) -> CallRecord {
    CallRecord::offered(
        id.to_owned(),
        CallDirection::Inbound,
        from,
        "+73432000001",
        Utc::now() - chrono::Duration::seconds(90),
    )
}

/// Rows as a node left them when it was SIGKILLed.
async fn crashed(store: &Store, node: &str) {
    let mut answered = open("c-talking", "+79120000001");
    answered.answered_at = Some(Utc::now() - chrono::Duration::seconds(60));
    let mut queued = open("c-waiting", "+79120000002");
    queued.queued_at = Some(Utc::now() - chrono::Duration::seconds(80));
    let greeting = open("c-greeting", "+79120000003");
    let mut done = open("c-done", "+79120000004");
    done.ended_at = Some(Utc::now() - chrono::Duration::seconds(10));
    done.disposition = Some(Disposition::Abandoned);
    let rows = [answered, queued, greeting, done];
    store.upsert_calls(&rows).await.unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    store.own_calls(node, &ids).await.unwrap();
    // Another node's call in progress.
    let mut theirs = open("c-elsewhere", "+79120000005");
    theirs.queued_at = Some(Utc::now());
    store
        .upsert_calls(std::slice::from_ref(&theirs))
        .await
        .unwrap();
    store
        .own_calls("node-other", &["c-elsewhere"])
        .await
        .unwrap();
}

async fn a_crashed_nodes_calls_are_closed_and_its_waiting_callers_listed(store: Store) {
    crashed(&store, "node-a").await;
    // Recovery plans no callback here (the engine's plan is tested below).
    let recovered = store
        .close_unfinished_calls("node-a", Utc::now(), &|_| None)
        .await
        .unwrap();
    let (closed, waiting) = (recovered.closed, recovered.waiting);
    assert_eq!(closed, 3);
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].call_id, "c-waiting");
    assert_eq!(waiting[0].from_number, "+79120000002");
    let get = |id: &'static str| {
        let store = store.clone();
        async move { store.get_call(id).await.unwrap().unwrap() }
    };
    let talking = get("c-talking").await;
    assert_eq!(talking.disposition, Some(Disposition::Answered));
    assert!(talking.ended_at.is_some() && talking.talk_seconds.is_some());
    assert_eq!(
        get("c-waiting").await.disposition,
        Some(Disposition::CallbackScheduled)
    );
    assert_eq!(
        get("c-greeting").await.disposition,
        Some(Disposition::Failed)
    );
    assert_eq!(
        get("c-done").await.disposition,
        Some(Disposition::Abandoned)
    );
    assert!(
        get("c-elsewhere").await.ended_at.is_none(),
        "another node's live call"
    );
    // Run again (a second crash before anything happened): nothing twice.
    let again = store
        .close_unfinished_calls("node-a", Utc::now(), &|_| None)
        .await
        .unwrap();
    assert_eq!((again.closed, again.waiting.len()), (0, 0));
}

on_both_backends!(a_crashed_nodes_calls_are_closed_and_its_waiting_callers_listed,);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_started_after_a_crash_calls_back_who_was_waiting() {
    let dir = common::engine::scratch_dir();
    let url = format!("sqlite://{}/crashed.db", dir.display());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    crashed(&store, "node-crashed").await;
    store.close().await;
    std::fs::write(dir.join("node-id"), "node-crashed\n").unwrap();
    // The waiting caller's greeting was being recorded: the file the crash left.
    let day = dir.join("recordings/2026/01/01/etalon");
    std::fs::create_dir_all(&day).unwrap();
    let part = day.join("c-waiting.wav.part");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut wav = hound::WavWriter::create(&part, spec).unwrap();
    for i in 0..16_000i32 {
        wav.write_sample((i % 100) as i16).unwrap();
    }
    wav.finalize().unwrap();

    let engine = common::engine::start_with("", |c| {
        c.database.url = url.clone();
        c.database.data_dir = dir.clone();
    })
    .await;
    assert_eq!(engine.node, "node-crashed");
    let jobs = engine
        .store
        .dial_jobs(&TenantScope::All, &DialJobFilter::default())
        .await
        .unwrap()
        .items;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].kind, DialKind::Callback);
    assert_eq!(jobs[0].target.as_str(), "+79120000002");
    assert_eq!(jobs[0].call_id.as_deref(), Some("c-waiting"));
    let ready =
        common::engine::wait_for_events(&engine, "recording.ready", 1, Duration::from_secs(10))
            .await;
    assert_eq!(ready[0].payload["call"], "c-waiting");
    assert_eq!(ready[0].payload["duration_ms"], 1000);
    let row = engine.store.get_call("c-waiting").await.unwrap().unwrap();
    assert!(row.ended_at.is_some());
    assert!(
        row.recording_id.is_some(),
        "the repaired recording is linked"
    );
    assert!(day.join("c-waiting.wav").exists());
    engine.shutdown(Duration::from_secs(1)).await;
}
