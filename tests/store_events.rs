//! The cluster's event stream at the store level: two buses on one PostgreSQL
//! database (two nodes) see the same events, in the same order, under the same
//! seqs and epoch, while both publish at once; a bus that joins later (a node's
//! restart) loads what it missed and continues the same sequence.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/store_db.rs"]
mod store_db;

use std::collections::HashMap;
use std::time::Duration;

use dispatchline::events::EventBus;
use dispatchline::events::cluster::{self, ClusterSettings};
use serde_json::json;
use store_db::TestDb;

fn settings(node: &str) -> ClusterSettings {
    ClusterSettings {
        batch: 64,
        ..ClusterSettings::new(node)
    }
}

/// Waits until `bus` holds seq `last`, or panics.
async fn holds(bus: &EventBus, last: u64) {
    bus.reach(last, Duration::from_secs(20)).await;
    assert!(
        bus.last_seq() >= last,
        "the bus holds up to {}, expected {last}",
        bus.last_seq()
    );
}

/// (seq, json) of every event held.
fn held(bus: &EventBus) -> Vec<(u64, String)> {
    bus.replay(0)
        .unwrap()
        .iter()
        .map(|e| (e.seq, e.json.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_see_one_sequence() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let a = cluster::start(&db.store, settings("node-a")).await.unwrap();
    let b = cluster::start(&db.second_node().await, settings("node-b"))
        .await
        .unwrap();
    assert_eq!(a.epoch(), b.epoch(), "one epoch for the cluster");
    assert!(a.is_clustered() && b.is_clustered());
    let mut live_b = b.subscribe(None).unwrap().live;

    // Both nodes publish at once, from several tasks each.
    const PER_TASK: u64 = 300;
    let mut publishers = Vec::new();
    for (node, bus) in [("a", a.clone()), ("b", b.clone())] {
        for task in 0..2 {
            let bus = bus.clone();
            publishers.push(tokio::spawn(async move {
                for n in 0..PER_TASK {
                    bus.publish(
                        "ticket.changed",
                        Some("etalon"),
                        json!({ "from": format!("{node}{task}"), "n": n }),
                    );
                    if n % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            }));
        }
    }
    for p in publishers {
        p.await.unwrap();
    }
    let total = 4 * PER_TASK;
    assert!(a.settle(Duration::from_secs(20)).await);
    assert!(b.settle(Duration::from_secs(20)).await);
    holds(&a, total).await;
    holds(&b, total).await;

    let (seen_a, seen_b) = (held(&a), held(&b));
    assert_eq!(seen_a.len() as u64, total);
    assert_eq!(
        seen_a, seen_b,
        "same events, same seqs, same bytes, same order"
    );
    let seqs: Vec<u64> = seen_a.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "contiguous from 1");
    // Each publisher's events keep the order it published them in.
    let mut next: HashMap<String, u64> = HashMap::new();
    for event in a.replay(0).unwrap() {
        let from = event.payload["from"].as_str().unwrap().to_owned();
        let n = event.payload["n"].as_u64().unwrap();
        let expected = next.entry(from.clone()).or_default();
        assert_eq!(n, *expected, "{from}'s events in order");
        *expected += 1;
        // Each node knows which events are its own.
        assert_eq!(event.local, from.starts_with('a'));
    }
    // Live delivery on B: every event once, in order.
    let mut live = Vec::new();
    while let Ok(event) = live_b.try_recv() {
        live.push(event.seq);
    }
    assert_eq!(live, seqs);
    let stats = a.cluster_stats().unwrap();
    assert_eq!((stats.queued, stats.written, stats.dropped), (600, 600, 0));

    // A node that starts now (B after a restart) holds the same history and goes
    // on with the same sequence.
    let again = cluster::start(&db.second_node().await, settings("node-b"))
        .await
        .unwrap();
    assert_eq!(again.epoch(), a.epoch());
    assert_eq!(held(&again), seen_a);
    again.publish("call.offered", None, json!({ "call": "c-after" }));
    holds(&a, total + 1).await;
    holds(&again, total + 1).await;
    let last = a.replay(total).unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].payload["call"], "c-after");
    assert!(!last[0].local);
    for bus in [&a, &b, &again] {
        bus.close();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_point_a_node_has_not_read_yet_is_waited_for() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let a = cluster::start(&db.store, settings("node-a")).await.unwrap();
    a.publish("operator.state", None, json!({ "extension": "1001" }));
    assert!(a.settle(Duration::from_secs(10)).await);
    assert_eq!(a.last_seq(), 1);
    // A node joining later starts from the log; a seq it does not hold yet is
    // in the future only once the wait is over.
    let b = cluster::start(&db.second_node().await, settings("node-b"))
        .await
        .unwrap();
    assert_eq!(b.last_seq(), 1);
    assert!(b.subscribe(Some(1)).unwrap().backlog.remaining() == 0);
    b.reach(5, Duration::from_millis(50)).await;
    assert!(b.subscribe(Some(5)).is_err());
    a.close();
    b.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_while_the_database_is_away_are_written_in_order_when_it_returns() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let a = cluster::start(&db.store, settings("node-a")).await.unwrap();
    let b = cluster::start(&db.second_node().await, settings("node-b"))
        .await
        .unwrap();
    a.publish("x", None, json!({ "from": "a", "n": 0 }));
    holds(&b, 1).await;

    // The database goes away: no connection to it is kept or allowed.
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let admin = sqlx::PgPool::connect(
        &std::env::var("DISPATCHLINE_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
    )
    .await
    .unwrap();
    let away = |allow: bool| {
        let (admin, name) = (admin.clone(), name.clone());
        async move {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}"
            )))
            .execute(&admin)
            .await
            .unwrap();
            if !allow {
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                )
                .bind(&name)
                .execute(&admin)
                .await
                .unwrap();
            }
        }
    };
    away(false).await;
    // Publishing goes on and never waits; nothing is delivered meanwhile (it has
    // no seq yet).
    for n in 1..=50 {
        a.publish("x", None, json!({ "from": "a", "n": n }));
        b.publish("x", None, json!({ "from": "b", "n": n }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((a.last_seq(), b.last_seq()), (1, 1), "held, not delivered");
    assert!(!a.settle(Duration::from_millis(100)).await);

    // It comes back: what was held is written, in each node's order, and both
    // nodes get all of it under the same seqs.
    away(true).await;
    assert!(a.settle(Duration::from_secs(20)).await);
    assert!(b.settle(Duration::from_secs(20)).await);
    holds(&a, 101).await;
    holds(&b, 101).await;
    assert_eq!(held(&a), held(&b));
    let mut next: HashMap<String, u64> = HashMap::new();
    for event in a.replay(0).unwrap() {
        let from = event.payload["from"].as_str().unwrap().to_owned();
        let n = event.payload["n"].as_u64().unwrap();
        let expected = next
            .entry(from.clone())
            .or_insert(if from == "a" { 0 } else { 1 });
        assert_eq!(n, *expected, "{from}'s events in order, none twice");
        *expected += 1;
    }
    assert_eq!(next["a"], 51);
    assert_eq!(next["b"], 51);
    assert_eq!(a.cluster_stats().unwrap().dropped, 0);
    admin.close().await;
    a.close();
    b.close();
}
