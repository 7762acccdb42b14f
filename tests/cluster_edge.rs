//! Two engine nodes behind Kamailio with the shipped `cluster/kamailio.cfg`, on
//! loopback: a provider's calls (SIPp) reach the proxy, which spreads them over
//! both nodes; node A is killed with SIGKILL; within seconds every new call is
//! taken by node B, and none fails. Each node here has its own SQLite store (the
//! shared PostgreSQL floor state is not built yet: see the README).
//!
//! Needs `kamailio` (Debian package `kamailio`); `scripts/test` installs it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::engine::free_port;
use common::sipp;
use dispatchline::store::{CallFilter, Store, TenantScope};

const BIN: &str = env!("CARGO_BIN_EXE_dispatchline");

/// A child process killed (SIGKILL) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Node {
    process: Killed,
    data: PathBuf,
}

async fn node(dir: &Path, name: &str, sip: u16, edge: u16, callee: u16) -> Node {
    let data = dir.join(name);
    std::fs::create_dir_all(&data).unwrap();
    let http = free_port();
    let config = data.join("dispatchline.toml");
    std::fs::write(
        &config,
        format!(
            r#"[sip]
listen = "127.0.0.1:{sip}"

[http]
listen = "127.0.0.1:{http}"

[database]
url = "sqlite://{data}/dispatchline.db"
data_dir = "{data}"

[media]
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
    let process = Killed(child);
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if client
            .get(format!("http://127.0.0.1:{http}/healthz"))
            .send()
            .await
            .is_ok()
        {
            assert_eq!(
                std::fs::read_to_string(data.join("node-id"))
                    .unwrap()
                    .trim(),
                name
            );
            return Node { process, data };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("node {name} did not start");
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

    let kamailio = common::cluster::start_edge_on(&dir, edge, &[a_port, b_port]).await;

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
    let Node {
        process,
        data: a_data,
    } = a;
    drop(process);
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
