//! The shared database goes away for longer than a node's heartbeat silence, and
//! comes back: that is an outage, not a death.
//!
//! Two engine nodes (the real binary) on a PostgreSQL cluster of the test's own; a
//! resident waits in each node's queue (SIPp; nobody is on duty). PostgreSQL is
//! stopped for 13 s, longer than the 10 s after which a silent node counts as
//! dead, so when it is back every node's heartbeat has lapsed. The first node
//! back must not take the other for dead: neither recovers the other, nobody's
//! call is closed and no waiting caller is promised a callback, and both callers
//! are still waiting on their nodes.
//!
//! Skipped (with a message) when PostgreSQL's server binaries are not installed.
//! Real time, bounded: about 40 s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::cluster;
use common::engine::free_port;
use common::pg_cluster::PgCluster;
use common::sipp;
use dispatchline::store::{DialJobFilter, DialKind, Store, TenantScope};

/// A resident of «Эталон» calling `node` from `phone` and waiting 45 s.
fn resident(dir: &Path, node: &cluster::Node, phone: u64) -> sipp::Sipp {
    let list = dir.join(format!("resident-{phone}.csv"));
    cluster::residents_file(&list, phone, 1);
    sipp::spawn(
        &format!("resident-{phone}"),
        dir,
        &sipp::args(&[
            "-sf",
            &sipp::scenario("residents_wait.xml"),
            &format!("127.0.0.1:{}", node.sip),
            "-s",
            "+73432000001",
            "-inf",
            &list.display().to_string(),
            "-i",
            "127.0.0.1",
            "-p",
            &free_port().to_string(),
            "-mp",
            &free_port().to_string(),
            "-m",
            "1",
            "-d",
            "45000",
        ]),
    )
}

/// Calls still waiting for an operator, by node.
async fn waiting(url: &str) -> Vec<(String, String)> {
    let pg = sqlx::PgPool::connect(url).await.unwrap();
    let rows = sqlx::query_as::<_, (String, String)>(
        "SELECT node, from_number FROM calls WHERE queued_at IS NOT NULL \
         AND answered_at IS NULL AND ended_at IS NULL ORDER BY node",
    )
    .fetch_all(&pg)
    .await
    .unwrap();
    pg.close().await;
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_longer_than_the_silence_is_not_taken_for_a_death() {
    let Some(pg) = PgCluster::start("cluster-outage") else {
        return;
    };
    let store = Store::connect(&pg.url()).await.unwrap();
    store.migrate().await.unwrap();
    dispatchline::store::demo::seed(&store).await.unwrap();
    let dir = sipp::workdir("cluster-db-outage");
    let config = format!(
        "[media]\nrecord_calls = false\nprompts_dir = \"{}\"\n\n\
         [[trunk]]\nname = \"p\"\nproxy = \"127.0.0.1:5999\"\noptions_interval_s = 0\n\
         inbound_from = [\"127.0.0.1\"]\n\n\
         [[number]]\nnumber = \"+73432000001\"\nkind = \"tenant\"\ntenant = \"etalon\"\n\
         city = \"ekb\"\ntrunk = \"p\"\ngreeting = \"ru/greeting-etalon.wav\"\n",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("ivr-prompts")
            .display()
    );
    let a = cluster::start_node(&dir, "node-a", &pg.url(), &config).await;
    let b = cluster::start_node(&dir, "node-b", &pg.url(), &config).await;

    // A resident waits on each node.
    let _on_a = resident(&dir, &a, 100);
    let _on_b = resident(&dir, &b, 200);
    cluster::until(Duration::from_secs(20), "both residents queued", || {
        let url = pg.url();
        async move { (waiting(&url).await.len() == 2).then_some(()) }
    })
    .await;

    // The database is away longer than the silence after which a node is dead.
    pg.stop();
    tokio::time::sleep(Duration::from_secs(13)).await;
    pg.resume();

    // Back: once the nodes have reached it for a whole silence they would judge
    // each other; by then both have renewed their heartbeats.
    tokio::time::sleep(Duration::from_secs(14)).await;
    for node in [&a, &b] {
        assert_eq!(
            store.node_recovered_by(&node.name).await.unwrap(),
            None,
            "{} was not taken for dead",
            node.name
        );
    }
    let live = store.live_nodes(chrono::Utc::now()).await.unwrap();
    assert_eq!(live, ["node-a", "node-b"]);
    let callbacks = store
        .dial_jobs(
            &TenantScope::All,
            &DialJobFilter {
                kind: Some(DialKind::Callback),
                ..DialJobFilter::default()
            },
        )
        .await
        .unwrap()
        .items;
    assert!(
        callbacks.is_empty(),
        "nobody promised a callback: {callbacks:?}"
    );
    assert_eq!(
        waiting(&pg.url()).await,
        [
            ("node-a".to_owned(), "+79120000100".to_owned()),
            ("node-b".to_owned(), "+79120000200".to_owned())
        ],
        "both residents still wait on their nodes"
    );
    drop(a);
    drop(b);
}
