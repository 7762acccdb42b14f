//! Two engine nodes behind Kamailio with the shipped `cluster/kamailio.cfg`, on
//! loopback: a provider's calls (SIPp) reach the proxy, which spreads them over
//! both nodes; node A is killed with SIGKILL; within seconds every new call is
//! taken by node B, and none fails. Each node here has its own SQLite store: this
//! is the proxy's spreading and failover alone (`cluster_failover.rs` runs the
//! nodes on one PostgreSQL, sharing the floor).
//!
//! Needs `kamailio` (Debian package `kamailio`); `scripts/test` installs it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::cluster::{self, Node};
use common::engine::free_port;
use common::sipp;
use dispatchline::store::{CallFilter, Store, TenantScope};

/// Node `name` on its own SQLite store, listening for SIP on `sip`; the provider
/// reaches it through the proxy on `edge`, and number 100 forwards to `callee`.
async fn node(dir: &Path, name: &str, sip: u16, edge: u16, callee: u16) -> Node {
    let config = format!(
        r#"[media]
record_calls = false
prompts_dir = "{prompts}"

# The provider reaches this node through the edge proxy.
[[trunk]]
name = "edge"
proxy = "127.0.0.1:{edge}"
inbound_from = ["127.0.0.1"]
options_interval_s = 0

[[number]]
number = "100"
kind = "forward"
target = "sip:127.0.0.1:{callee}"

[[operator]]
extension = "2001"
password = "cluster-supervisor-2001"
role = "supervisor"
"#,
        prompts = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("ivr-prompts")
            .display(),
    );
    let database = format!("sqlite://{}/dispatchline.db", dir.join(name).display());
    let node = cluster::start_node_on(dir, name, &database, &config, (sip, free_port())).await;
    assert_eq!(
        std::fs::read_to_string(node.data.join("node-id"))
            .unwrap()
            .trim(),
        name,
        "the node id is kept in the data directory"
    );
    node
}

/// Calls each node has journalled.
async fn calls_of(data: &Path) -> i64 {
    let store = Store::connect(&format!("sqlite://{}/dispatchline.db", data.display()))
        .await
        .unwrap();
    let total = store
        .calls(&TenantScope::All, &CallFilter::default())
        .await
        .unwrap()
        .total;
    store.close().await;
    total
}

/// SIPp as the provider: `calls` calls to number 100 through the proxy.
async fn provider_calls(dir: &Path, edge: u16, calls: u32) -> sipp::Outcome {
    sipp::spawn(
        "provider",
        dir,
        &sipp::args(&[
            "-sn",
            "uac",
            &format!("127.0.0.1:{edge}"),
            "-s",
            "100",
            "-i",
            "127.0.0.1",
            "-p",
            &free_port().to_string(),
            "-m",
            &calls.to_string(),
            "-r",
            "5",
            "-d",
            "300",
        ]),
    )
    .finish(Duration::from_secs(60))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_calls_go_to_the_surviving_node_within_seconds_of_a_node_dying() {
    let dir = sipp::workdir("cluster-edge");
    let (edge, a_port, b_port, callee) = (free_port(), free_port(), free_port(), free_port());
    let _callee = sipp::spawn(
        "callee",
        &dir,
        &sipp::args(&["-sn", "uas", "-i", "127.0.0.1", "-p", &callee.to_string()]),
    );
    sipp::wait_bound(callee).await;
    let a = node(&dir, "node-a", a_port, edge, callee).await;
    let b = node(&dir, "node-b", b_port, edge, callee).await;

    let kamailio = cluster::start_edge_on(&dir, edge, &[a_port, b_port]).await;

    // The proxy spreads the provider's calls over both nodes.
    provider_calls(&dir, edge, 10)
        .await
        .assert_success("calls through two nodes");
    let (before_a, before_b) = (calls_of(&a.data).await, calls_of(&b.data).await);
    assert_eq!(before_a + before_b, 10, "every call journalled once");
    assert!(
        before_a >= 3 && before_b >= 3,
        "spread: {before_a} / {before_b}"
    );

    // Node A dies. Within its probe interval the proxy stops sending to it; new
    // calls all complete on node B.
    let a_data = a.data.clone();
    a.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    provider_calls(&dir, edge, 10)
        .await
        .assert_success("calls after node A died");
    assert_eq!(calls_of(&b.data).await, before_b + 10);
    assert_eq!(
        calls_of(&a_data).await,
        before_a,
        "nothing went to the dead node"
    );
    drop(kamailio);
}
