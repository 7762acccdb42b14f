//! Two engine nodes on one PostgreSQL share the floor: an operator whose softphone
//! registered through node A takes a resident's call that reached node B, and
//! while both nodes have callers waiting, the one who waited longest gets the
//! operator first, whichever node holds the call.
//!
//! Both nodes run in this process (their own SIP, media and HTTP sockets on
//! loopback, their own node ids), SIPp plays the residents and the softphone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/store_db.rs"]
mod store_db;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::engine::{self, free_port, wait_for_events};
use common::sipp::{self, Sipp, scenario, spawn};
use dispatchline::call::OperatorState;
use dispatchline::server::Engine;
use store_db::TestDb;

const KNOWN_CALLER: &str = "+79120000001";
const OTHER_CALLER: &str = "+79120000002";
const TENANT_NUMBER: &str = "+73432000001";

fn numbers() -> String {
    format!(
        r#"
[[trunk]]
name = "provider-x"
proxy = "127.0.0.1:5999"
options_interval_s = 0

[[number]]
number = "{TENANT_NUMBER}"
kind = "tenant"
tenant = "etalon"
city = "ekb"
trunk = "provider-x"
greeting = "ru/connecting.wav"

[[operator]]
extension = "1001"
name = "Анна"
password = "op1001pass"
"#
    )
}

/// A node of the cluster on the shared database `url`.
async fn node(url: &str) -> Engine {
    let url = url.to_owned();
    engine::start_with(&numbers(), move |c| c.database.url = url).await
}

fn workdir(test: &str) -> PathBuf {
    let dir = sipp::workdir(test);
    let captures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sipp");
    std::fs::copy(captures.join("g711a.pcap"), dir.join("g711a.pcap")).unwrap();
    dir
}

fn resident(node: &Engine, dir: &Path, phone: &str, talk_ms: u32) -> Sipp {
    let args = sipp::args(&[
        "-sf",
        &scenario("resident_calls.xml"),
        &node.sip_addr.to_string(),
        "-s",
        TENANT_NUMBER,
        "-key",
        "caller",
        phone,
        "-i",
        "127.0.0.1",
        "-m",
        "1",
        "-d",
        &talk_ms.to_string(),
        "-p",
        &free_port().to_string(),
        "-mp",
        &free_port().to_string(),
    ]);
    spawn(&format!("resident-{phone}"), dir, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_registered_through_one_node_takes_a_call_held_by_the_other() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let a = node(&db.url).await;
    let b = node(&db.url).await;
    dispatchline::store::demo::seed(&a.store).await.unwrap();
    let dir = workdir("cluster-floor-reach");

    // Anna's softphone registers through node A, and she goes ready there.
    let softphone =
        sipp::operator_on_duty(&a, &dir, "operator_answers.xml", 0, "1001", "op1001pass", 1).await;

    // A resident's call reaches node B, which has no softphone of its own.
    let caller = resident(&b, &dir, KNOWN_CALLER, 20_000);
    let ringing = wait_for_events(&b, "call.ringing", 1, Duration::from_secs(20)).await;
    assert_eq!(ringing[0].payload["operator"], "1001");
    caller
        .finish(Duration::from_secs(60))
        .await
        .assert_success("resident");
    softphone
        .finish(Duration::from_secs(30))
        .await
        .assert_success("operator's softphone");
    let ended = wait_for_events(&b, "call.ended", 1, Duration::from_secs(10)).await;
    assert_eq!(ended[0].payload["disposition"], "answered");
    assert_eq!(ended[0].payload["operator"], "1001");

    // Her going busy on B's call was published once in the cluster's stream, by
    // node B; node A mirrored it without reporting it again.
    let busy = |engine: &Engine| {
        engine
            .events
            .replay(0)
            .unwrap()
            .iter()
            .filter(|e| {
                e.kind == "operator.state"
                    && e.payload["extension"] == "1001"
                    && e.payload["state"] == "busy"
            })
            .map(|e| e.seq)
            .collect::<Vec<_>>()
    };
    assert_eq!(busy(&a).len(), 1, "once in the stream");
    assert_eq!(busy(&a), busy(&b), "the same event on both nodes");
    a.shutdown(Duration::from_secs(2)).await;
    b.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_who_waited_longest_gets_the_operator_whichever_node_holds_the_call() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let quick_wrap_up = |url: String| {
        move |c: &mut dispatchline::config::Config| {
            c.database.url = url;
            c.queue.wrap_up = Duration::ZERO;
        }
    };
    let a = engine::start_with(&numbers(), quick_wrap_up(db.url.clone())).await;
    let b = engine::start_with(&numbers(), quick_wrap_up(db.url.clone())).await;
    dispatchline::store::demo::seed(&a.store).await.unwrap();
    let dir = workdir("cluster-floor-order");

    // Anna's softphone is registered through node A; she is on a break.
    let softphone =
        sipp::operator_on_duty(&a, &dir, "operator_answers.xml", 0, "1001", "op1001pass", 2).await;
    a.call_handle
        .set_operator_state("1001", OperatorState::Paused, Some("обед".into()))
        .await
        .unwrap()
        .unwrap();

    // The first resident reaches node B, the second node A (Anna's own) after them.
    let first = resident(&b, &dir, OTHER_CALLER, 25_000);
    wait_for_events(&b, "call.queued", 1, Duration::from_secs(20)).await;
    let second = resident(&a, &dir, KNOWN_CALLER, 45_000);
    wait_for_events(&a, "call.queued", 1, Duration::from_secs(30)).await;

    // Anna is back, on node A's console: the first caller is offered to her first,
    // though their call is on the other node.
    a.call_handle
        .set_operator_state("1001", OperatorState::Ready, None)
        .await
        .unwrap()
        .unwrap();
    let ringing = wait_for_events(&b, "call.ringing", 1, Duration::from_secs(10)).await;
    assert_eq!(ringing[0].payload["operator"], "1001");
    assert_eq!(
        ringing[0].payload["from"], OTHER_CALLER,
        "the first caller, on node B, is offered first"
    );
    first
        .finish(Duration::from_secs(60))
        .await
        .assert_success("first resident");

    // Then the second caller, on node A.
    let ringing = wait_for_events(&a, "call.ringing", 2, Duration::from_secs(30)).await;
    assert_eq!(ringing[1].payload["operator"], "1001");
    assert_eq!(ringing[1].payload["from"], KNOWN_CALLER);
    second
        .finish(Duration::from_secs(60))
        .await
        .assert_success("second resident");
    softphone
        .finish(Duration::from_secs(30))
        .await
        .assert_success("operator's softphone");
    a.shutdown(Duration::from_secs(2)).await;
    b.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_softphone_registered_through_the_proxy_is_reached_through_it_from_either_node() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let setup = |url: String| {
        move |c: &mut dispatchline::config::Config| {
            c.database.url = url;
            c.queue.wrap_up = Duration::ZERO;
        }
    };
    let a = engine::start_with(&numbers(), setup(db.url.clone())).await;
    let b = engine::start_with(&numbers(), setup(db.url.clone())).await;
    dispatchline::store::demo::seed(&a.store).await.unwrap();
    let dir = workdir("cluster-floor-path");
    let proxy = common::cluster::start_edge_at(&dir, &[a.sip_addr.port(), b.sip_addr.port()]).await;
    let edge = proxy.port;

    // Anna's softphone registers through the proxy (whichever node it picks); the
    // proxy stays on the path to it (RFC 3327).
    let phone_port = free_port();
    // On duty for the whole story, however slow the machine.
    let softphone = sipp::spawn_for(
        "operator-1001",
        &dir,
        &sipp::args(&[
            "-sf",
            &scenario("operator_answers.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            &phone_port.to_string(),
            "-m",
            "2",
            "-mp",
            &free_port().to_string(),
        ]),
        Duration::from_secs(180),
    );
    sipp::wait_bound(phone_port).await;
    spawn(
        "register",
        &dir,
        &sipp::args(&[
            "-sf",
            &scenario("operator_register.xml"),
            &format!("127.0.0.1:{edge}"),
            "-i",
            "127.0.0.1",
            "-m",
            "1",
            "-key",
            "ext",
            "1001",
            "-au",
            "1001",
            "-ap",
            "op1001pass",
            "-key",
            "contact_port",
            &phone_port.to_string(),
            "-p",
            &free_port().to_string(),
        ]),
    )
    .finish(Duration::from_secs(30))
    .await
    .assert_success("registration through the proxy");
    let mut shared = String::new();
    for _ in 0..50 {
        let floor = a.store.floor_snapshot(chrono::Utc::now()).await.unwrap();
        if let Some(set) = floor.bindings.first() {
            shared.clone_from(&set.bindings);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        shared.contains(&format!("127.0.0.1:{edge};lr")),
        "the proxy is on the binding's path: {shared}"
    );
    b.call_handle
        .set_operator_state("1001", OperatorState::Ready, None)
        .await
        .unwrap()
        .unwrap();

    // A resident's call on each node reaches her, each offer through the proxy.
    for (i, (node, phone)) in [(&a, OTHER_CALLER), (&b, KNOWN_CALLER)]
        .into_iter()
        .enumerate()
    {
        // Long enough to hear the greeting and be put through on a busy machine.
        let talk = if phone == KNOWN_CALLER {
            14_000
        } else {
            10_000
        };
        resident(node, &dir, phone, talk)
            .finish(Duration::from_secs(60))
            .await
            .assert_success("resident");
        // The cluster's stream holds both nodes' calls, in order.
        let ended = wait_for_events(node, "call.ended", i + 1, Duration::from_secs(10)).await;
        assert_eq!(ended[i].payload["disposition"], "answered", "{phone}");
        assert_eq!(ended[i].payload["operator"], "1001");
    }
    softphone
        .finish(Duration::from_secs(30))
        .await
        .assert_success("operator's softphone");
    a.shutdown(Duration::from_secs(2)).await;
    b.shutdown(Duration::from_secs(2)).await;
}
