//! A node dies in the middle of a busy minute, and the other carries on.
//!
//! Two engine nodes share one PostgreSQL behind Kamailio with the shipped
//! `cluster/kamailio.cfg`, on loopback; SIPp plays the residents (through the
//! proxy, 10 calls a second) and the people of a hand-off chain (behind the trunk).
//! Nobody is at an operator's desk, so residents wait in the queue.
//!
//! 1. Twenty residents call at 10 calls/s and wait: the proxy spreads them, so
//!    both nodes have callers in their queues.
//! 2. An emergency ticket is registered: its chain runs on one node; level 1's
//!    phone rings and is not answered.
//! 3. The node running the chain is SIGKILLed while level 1's second try rings.
//! 4. Once the proxy noticed (its probe every second), fifty more residents call at
//!    10 calls/s: every one of them completes, on the survivor.
//! 5. The survivor finds the dead node's heartbeat lapsed and recovers it at once:
//!    every caller who was waiting in the dead node's queue gets exactly one
//!    callback job, due now and within the 10-minute rule.
//! 6. The chain goes on on the survivor with exact counts: level 1 tried five
//!    times (the try that was ringing counts as made, outcome unknown), level 2
//!    five times, level 3 presses 1; SIPp saw each attempt's INVITE once.
//!
//! Needs `kamailio` and PostgreSQL (`DISPATCHLINE_TEST_PG`; a fresh database).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/store_db.rs"]
mod store_db;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::chains::{self, LEVEL2, LEVEL3, MANAGER};
use common::cluster::{self, until};
use common::engine::free_port;
use common::sipp;
use dispatchline::store::directory::Responsibility;
use dispatchline::store::{
    AttemptOutcome, AttemptState, ChainState, DialJobFilter, DialKind, Store, TenantScope, TicketId,
};

const NUMBER: &str = "+73432000001";

/// Each node's configuration: the company's number reached through the proxy, a
/// trunk to SIPp playing the chain's people, the chain by the informer.
fn node_config(people: u16) -> String {
    chains::config(
        people,
        "level_modes = [\"informer\"]",
        &format!(
            "[media]\nrecord_calls = false\nprompts_dir = \"{}\"\n",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("ivr-prompts")
                .display()
        ),
    )
    // Residents' calls come in through the proxy.
    .replace(
        "options_interval_s = 0",
        "options_interval_s = 0\ninbound_from = [\"127.0.0.1\"]",
    )
    // Level 1's phone rings 3 s each try, a second apart; the level has time for
    // five tries even with a node's death in the middle.
    .replace("ring_timeout_s = 1", "ring_timeout_s = 3")
    .replace("level_timeout_s = 30", "level_timeout_s = 90")
}

/// Residents calling the company through the proxy at 10 calls/s, each from their
/// own phone, each waiting `wait_ms` before hanging up.
fn residents(
    dir: &Path,
    edge: u16,
    name: &str,
    first: u64,
    calls: u64,
    wait_ms: u64,
) -> sipp::Sipp {
    let list = dir.join(format!("{name}.csv"));
    cluster::residents_file(&list, first, calls);
    sipp::spawn(
        name,
        dir,
        &sipp::args(&[
            "-sf",
            &sipp::scenario("residents_wait.xml"),
            &format!("127.0.0.1:{edge}"),
            "-s",
            NUMBER,
            "-inf",
            &list.display().to_string(),
            "-i",
            "127.0.0.1",
            "-p",
            &free_port().to_string(),
            "-mp",
            &free_port().to_string(),
            "-r",
            "10",
            "-m",
            &calls.to_string(),
            "-d",
            &wait_ms.to_string(),
        ]),
    )
}

/// The callers waiting in `node`'s queue now, by call id (the journal rows name
/// their node).
async fn waiting_on(pg: &sqlx::PgPool, node: &str) -> HashMap<String, String> {
    sqlx::query_as::<_, (String, String)>(
        "SELECT id, from_number FROM calls WHERE node = $1 AND queued_at IS NOT NULL \
         AND answered_at IS NULL AND ended_at IS NULL",
    )
    .bind(node)
    .fetch_all(pg)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

/// Calls offered since `since`, by node.
async fn calls_by_node(pg: &sqlx::PgPool, from: &str, to: &str) -> HashMap<String, i64> {
    sqlx::query_as::<_, (Option<String>, i64)>(
        "SELECT node, COUNT(*) FROM calls WHERE from_number BETWEEN $1 AND $2 GROUP BY node",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pg)
    .await
    .unwrap()
    .into_iter()
    .map(|(n, c)| (n.unwrap_or_default(), c))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_dies_mid_run_and_the_other_carries_its_callers_and_its_chain() {
    let Some(db) = store_db::TestDb::postgres().await else {
        return;
    };
    let store: Store = db.store.clone();
    let pg = sqlx::PgPool::connect(&db.url).await.unwrap();
    let dir = sipp::workdir("cluster-failover");

    // The chain's people behind the trunk: level 1 rings and never answers, level
    // 2 is busy, level 3 presses 1.
    let people_port = free_port();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sipp/dtmf_2833_1.pcap"),
        dir.join("dtmf_2833_1.pcap"),
    )
    .unwrap();
    let _people = sipp::spawn(
        "people",
        &dir,
        &sipp::args(&[
            "-sf",
            &sipp::scenario("chain_people.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            &people_port.to_string(),
            "-mp",
            &free_port().to_string(),
            "-d",
            "1000",
            "-trace_msg",
            "-message_file",
            "people.log",
        ]),
    );
    sipp::wait_bound(people_port).await;
    let p = chains::seed(&store).await;
    store
        .set_responsibility(&Responsibility {
            tenant: "etalon".into(),
            house_group: "center".into(),
            work_type: "plumbing".into(),
            levels: [vec![p.level3], vec![p.level2], vec![p.manager]],
            responsible: None,
            manager: None,
            head: None,
        })
        .await
        .unwrap();

    // Two nodes on the one database, behind the proxy.
    let config = node_config(people_port);
    let a = cluster::start_node(&dir, "node-a", &db.url, &config).await;
    let b = cluster::start_node(&dir, "node-b", &db.url, &config).await;
    let edge = cluster::start_edge(&dir, &[&a, &b]).await;

    // 1. Twenty residents call and wait in the queues of both nodes.
    let _morning = residents(&dir, edge.port, "morning", 1_000, 20, 40_000);
    let queues = until(Duration::from_secs(20), "both nodes' queues", || {
        let pg = pg.clone();
        async move {
            let (a, b) = (
                waiting_on(&pg, "node-a").await,
                waiting_on(&pg, "node-b").await,
            );
            (a.len() + b.len() == 20).then_some((a, b))
        }
    })
    .await;
    assert!(
        !queues.0.is_empty() && !queues.1.is_empty(),
        "the proxy spread the waiting callers: {} on node A, {} on node B",
        queues.0.len(),
        queues.1.len()
    );

    // 2. An emergency ticket: its chain starts and level 1's phone rings.
    let ticket = chains::register_ticket(a.http_addr(), "2001", "sup2001pass-long", &p).await;
    let running = until(
        Duration::from_secs(20),
        "level 1's second try rings",
        || {
            let store = store.clone();
            async move {
                let chain = store.chains_of_ticket(TicketId(ticket)).await.ok()?.pop()?;
                chain
                    .attempts
                    .iter()
                    .any(|a| a.try_no == 2 && a.state == AttemptState::Ringing)
                    .then_some(chain)
            }
        },
    )
    .await;
    let holder = running.claimed_by.clone().expect("a node runs the chain");

    // 3. The node running the chain dies.
    let (victim, survivor) = if holder == a.name { (a, b) } else { (b, a) };
    let (victim_name, survivor_name) = (victim.name.clone(), survivor.name.clone());
    let stranded = waiting_on(&pg, &victim_name).await;
    assert!(!stranded.is_empty(), "callers wait on the node that dies");
    victim.kill();
    let killed = Instant::now();

    // 4. The proxy notices within its probe interval; then fifty residents call
    //    at 10 calls/s and every call completes, on the survivor.
    tokio::time::sleep(Duration::from_secs(3)).await;
    residents(&dir, edge.port, "after", 5_000, 50, 1_000)
        .finish(Duration::from_secs(60))
        .await
        .assert_success("every call placed after the proxy noticed");
    let after = calls_by_node(&pg, "+79120005000", "+79120005049").await;
    assert_eq!(
        after,
        HashMap::from([(survivor_name.clone(), 50)]),
        "all fifty on the survivor, journalled once"
    );

    // 5. The survivor recovers the dead node: each of its waiting callers gets
    //    one callback, due now, within 10 minutes of their call.
    let recovered_by = until(Duration::from_secs(30), "the dead node recovered", || {
        let store = store.clone();
        let victim = victim_name.clone();
        async move { store.node_recovered_by(&victim).await.ok().flatten() }
    })
    .await;
    assert_eq!(recovered_by, survivor_name);
    let recovered_in = killed.elapsed();
    // The survivor marks the node recovered, then writes the callbacks: wait for
    // them (bounded).
    let give_up = Instant::now() + Duration::from_secs(15);
    let called_back = loop {
        // Every callback (the default page holds 50, and callers who hung up before
        // the kill have theirs too).
        let jobs = store
            .dial_jobs(
                &TenantScope::All,
                &DialJobFilter {
                    kind: Some(DialKind::Callback),
                    limit: Some(500),
                    ..DialJobFilter::default()
                },
            )
            .await
            .unwrap()
            .items;
        let mut called_back: HashMap<String, usize> = HashMap::new();
        for job in jobs.iter().filter(|j| j.kind == DialKind::Callback) {
            let Some(call) = &job.call_id else { continue };
            if let Some(phone) = stranded.get(call) {
                assert_eq!(job.target.as_str(), phone);
                let deadline = job.deadline_at.expect("a callback has its deadline");
                let row = store.get_call(call).await.unwrap().unwrap();
                assert!(deadline <= row.offered_at + chrono::Duration::minutes(10));
                *called_back.entry(call.clone()).or_default() += 1;
            }
        }
        let all = called_back.keys().cloned().collect::<HashSet<_>>()
            == stranded.keys().cloned().collect::<HashSet<_>>();
        if all || Instant::now() > give_up {
            break called_back;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        called_back.keys().cloned().collect::<HashSet<_>>(),
        stranded.keys().cloned().collect::<HashSet<_>>(),
        "every caller waiting on the dead node is called back"
    );
    assert!(
        called_back.values().all(|n| *n == 1),
        "nobody twice: {called_back:?}"
    );
    for call in stranded.keys() {
        assert!(
            store
                .get_call(call)
                .await
                .unwrap()
                .unwrap()
                .ended_at
                .is_some(),
            "the dead node's row is closed"
        );
    }

    // 6. The chain goes on on the survivor with exact counts.
    let chain = until(Duration::from_secs(90), "the chain accepted", || {
        let store = store.clone();
        async move {
            let chain = store.chains_of_ticket(TicketId(ticket)).await.ok()?.pop()?;
            (chain.state != ChainState::Running).then_some(chain)
        }
    })
    .await;
    assert_eq!(chain.state, ChainState::Accepted, "{chain:?}");
    let level1: Vec<_> = chain
        .attempts
        .iter()
        .filter(|a| a.stage == "level-1")
        .collect();
    assert_eq!(level1.len(), 5, "exactly five tries of level 1");
    assert!(
        level1
            .iter()
            .enumerate()
            .all(|(i, a)| a.try_no == i as i64 + 1)
    );
    assert_eq!(
        level1[1].outcome,
        Some(AttemptOutcome::Unknown),
        "the try that rang when the node died counts as made"
    );
    let level2 = chain
        .attempts
        .iter()
        .filter(|a| a.stage == "level-2")
        .count();
    assert_eq!(level2, 5);
    drop(edge);
    drop(survivor);
    let invites = chains::invites_by_number(&dir.join("people.log"));
    assert_eq!(invites.get(LEVEL3).copied(), Some(5), "{invites:?}");
    assert_eq!(invites.get(LEVEL2).copied(), Some(5), "{invites:?}");
    assert_eq!(invites.get(MANAGER).copied(), Some(1), "{invites:?}");
    eprintln!(
        "node {victim_name} killed: {} waiting callers called back, recovered by {survivor_name} {:.1} s after the kill",
        stranded.len(),
        recovered_in.as_secs_f64()
    );
}
