//! Several nodes on one store: each claims only the dial jobs it can serve, and a
//! node that dies is recovered by exactly one survivor, at once.
//!
//! - Two nodes poll together: node B has no free operator, so it takes none of the
//!   operators' jobs (callbacks, status checks by operator) and only the robot
//!   calls its channels allow; node A, with two operators free, takes two
//!   operators' jobs and robot calls up to its own room. The rest stay due.
//! - Node A dies with a resident talking and one waiting in its queue: of two
//!   survivors asking at once, one takes its recovery; its calls are closed and the
//!   waiting resident gets one callback within the 10-minute rule. When node A
//!   restarts and recovers its own calls, nobody is called twice.
//! - A node whose free operators serve only one company claims that company's
//!   callbacks (and those of no company), never another's: those wait for a node
//!   with someone who serves them.
//! - An operator talking on node A's call when node A dies is free for node B as
//!   soon as node A's heartbeat lapses (nobody will ever write her row again),
//!   unless she had asked for a pause after that call.
//!
//! On SQLite and PostgreSQL (two connections on one database play two nodes).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/store_db.rs"]
mod store_db;

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use dispatchline::call::room::{Capacity, Room};
use dispatchline::config::{Config, Reach};
use dispatchline::dialer;
use dispatchline::phone::PhoneNumber;
use dispatchline::store::{
    CallDirection, CallRecord, Crew, DialJobFilter, DialKind, Disposition, NewDialJob, Store,
    TenantScope,
};

fn job(kind: DialKind, target: &str, reach: Option<Reach>) -> NewDialJob {
    NewDialJob {
        reach,
        ..NewDialJob::new(
            kind,
            PhoneNumber::parse(target).unwrap(),
            Utc::now() - chrono::Duration::seconds(1),
            3,
        )
    }
}

/// A node's figures: `operators` free, 20 channels free (5 kept for residents),
/// robots paced at 2 a second.
fn node_with(operators: usize) -> Capacity {
    Capacity {
        free_operators: operators,
        free_operators_serve: TenantScope::All,
        waiting_for_operator: 0,
        free_channels: 20,
        inbound_reserve: 5,
        held_robots: 0,
        robot_rate: 2.0,
        poll: Duration::from_secs(2),
        held_jobs: 0,
        max_held: 256,
        draining: false,
    }
}

/// What a node takes at one poll with `room`.
async fn poll(store: &Store, node: &str, room: Room) -> Vec<dispatchline::store::DialJob> {
    let mut taken = Vec::new();
    for (crew, limit, tenants) in [
        (Crew::Operator, room.operator_jobs, room.operator_tenants),
        (Crew::Robot, room.robot_jobs, TenantScope::All),
    ] {
        if limit > 0 {
            taken.extend(
                dialer::claim_for(store, node, Utc::now(), limit as i64, crew, &tenants)
                    .await
                    .unwrap(),
            );
        }
    }
    taken
}

async fn two_nodes_split_the_jobs_by_what_each_can_serve(store: Store) {
    let now = Utc::now();
    for i in 0..4 {
        let target = format!("+7912000010{i}");
        store
            .create_dial_job(&job(DialKind::Callback, &target, None), now)
            .await
            .unwrap();
    }
    store
        .create_dial_job(
            &job(
                DialKind::StatusCheck,
                "+79120000200",
                Some(Reach::OperatorFirst),
            ),
            now,
        )
        .await
        .unwrap();
    store
        .create_dial_job(
            &job(DialKind::StatusCheck, "+79120000201", Some(Reach::Informer)),
            now,
        )
        .await
        .unwrap();
    for i in 0..9 {
        let target = format!("+7912000030{i}");
        store
            .create_dial_job(&job(DialKind::Survey, &target, None), now)
            .await
            .unwrap();
    }

    // Node B: no operator free. Room: no operators' job, min(20 - 5, 2 × 2 s) = 4
    // robot calls.
    let b_room = Room::of(&node_with(0));
    assert_eq!(
        b_room,
        Room {
            operator_jobs: 0,
            operator_tenants: TenantScope::All,
            robot_jobs: 4
        }
    );
    let b = poll(&store, "node-b", b_room).await;
    assert_eq!(b.len(), 4);
    assert!(
        b.iter().all(|j| Crew::of(j.kind, j.reach) == Crew::Robot),
        "a node with no free operator takes no operator's job: {b:?}"
    );
    // Status checks come before surveys: the informer's check is among them.
    assert!(b.iter().any(|j| j.kind == DialKind::StatusCheck));

    // Node A: two operators free.
    let a = poll(&store, "node-a", Room::of(&node_with(2))).await;
    let a_operators: Vec<_> = a
        .iter()
        .filter(|j| Crew::of(j.kind, j.reach) == Crew::Operator)
        .collect();
    assert_eq!(a_operators.len(), 2, "{a:?}");
    assert!(
        a_operators.iter().all(|j| j.kind == DialKind::Callback),
        "residents' callbacks first"
    );
    assert_eq!(a.len() - a_operators.len(), 4);

    // The rest stays due for whoever frees up: 2 callbacks, the operator's status
    // check and 2 surveys.
    let rest = poll(
        &store,
        "node-c",
        Room {
            operator_jobs: 100,
            operator_tenants: TenantScope::All,
            robot_jobs: 100,
        },
    )
    .await;
    assert_eq!(rest.len(), 5, "{rest:?}");
    assert!(rest.iter().any(|j| j.kind == DialKind::StatusCheck
        && Crew::of(j.kind, j.reach) == Crew::Operator));
}

fn config() -> Config {
    Config::parse(
        "[[number]]\nnumber = \"+73432000001\"\nkind = \"tenant\"\ntenant = \"etalon\"\n",
        Path::new("cluster-recovery.toml"),
    )
    .unwrap()
}

fn offered(id: &str, from: &str, ago: i64) -> CallRecord {
    CallRecord::offered(
        id.to_owned(),
        CallDirection::Inbound,
        from,
        "+73432000001",
        Utc::now() - chrono::Duration::seconds(ago),
    )
}

async fn callbacks(store: &Store) -> Vec<dispatchline::store::DialJob> {
    store
        .dial_jobs(&TenantScope::All, &DialJobFilter::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|j| j.kind == DialKind::Callback)
        .collect()
}

async fn one_survivor_recovers_a_dead_node_and_its_restart_calls_nobody_twice(store: Store) {
    let config = config();
    // The nodes started half a minute ago (survivors recover by the real clock).
    let now = Utc::now();
    let start = now - chrono::Duration::seconds(30);
    for node in ["node-a", "node-b", "node-c"] {
        store.node_started(node, start).await.unwrap();
    }
    // Node A's calls as it left them: a resident talking, one waiting in the queue.
    let mut talking = offered("a-talking", "+79120000001", 60);
    talking.answered_at = Some(now - chrono::Duration::seconds(40));
    let mut waiting = offered("a-waiting", "+79120000002", 50);
    waiting.queued_at = Some(now - chrono::Duration::seconds(45));
    store
        .upsert_calls(&[talking.clone(), waiting.clone()])
        .await
        .unwrap();
    store
        .own_calls("node-a", &["a-talking", "a-waiting"])
        .await
        .unwrap();
    // Node B's own caller waiting: not node A's, left alone.
    let mut theirs = offered("b-waiting", "+79120000003", 30);
    theirs.queued_at = Some(now - chrono::Duration::seconds(25));
    store
        .upsert_calls(std::slice::from_ref(&theirs))
        .await
        .unwrap();
    store.own_calls("node-b", &["b-waiting"]).await.unwrap();

    // While node A's heartbeat is fresh, nobody recovers it.
    let fresh = start + chrono::Duration::seconds(5);
    assert!(
        store
            .claim_dead_nodes("node-b", fresh)
            .await
            .unwrap()
            .is_empty()
    );

    // Node A is SIGKILLed: B and C keep beating, A's row lapses.
    store.node_alive("node-b", now).await.unwrap();
    store.node_alive("node-c", now).await.unwrap();
    let later = now;
    let (b, c) = tokio::join!(
        dispatchline::call::recovery::recover_dead_nodes(&store, &config, "node-b"),
        dispatchline::call::recovery::recover_dead_nodes(&store, &config, "node-c"),
    );
    let (b, c) = (b.unwrap(), c.unwrap());
    let recovered: Vec<_> = b.iter().chain(c.iter()).collect();
    assert_eq!(
        recovered,
        vec![&("node-a".to_owned(), 1)],
        "exactly one survivor recovers node A, one callback"
    );
    let by = store.node_recovered_by("node-a").await.unwrap();
    assert!(matches!(by.as_deref(), Some("node-b" | "node-c")), "{by:?}");

    let row = store.get_call("a-talking").await.unwrap().unwrap();
    assert_eq!(row.disposition, Some(Disposition::Answered));
    assert!(row.ended_at.is_some());
    let row = store.get_call("a-waiting").await.unwrap().unwrap();
    assert_eq!(row.disposition, Some(Disposition::CallbackScheduled));
    assert!(
        store
            .get_call("b-waiting")
            .await
            .unwrap()
            .unwrap()
            .ended_at
            .is_none(),
        "a live node's caller is left alone"
    );
    let jobs = callbacks(&store).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].target.as_str(), "+79120000002");
    assert_eq!(jobs[0].call_id.as_deref(), Some("a-waiting"));
    let deadline = jobs[0].deadline_at.unwrap();
    assert!(
        deadline <= waiting.offered_at + chrono::Duration::minutes(10),
        "Rules №416: called back within 10 minutes of the call"
    );
    assert!(jobs[0].due_at <= Utc::now(), "due at once");

    // Asked again: nothing more to do.
    assert!(
        dispatchline::call::recovery::recover_dead_nodes(&store, &config, "node-b")
            .await
            .unwrap()
            .is_empty()
    );
    // Node A restarts and recovers its own calls as it always does: nobody twice.
    let scheduled = dispatchline::call::recovery::recover_calls(&store, &config, "node-a")
        .await
        .unwrap();
    assert_eq!(scheduled, 0);
    store.node_started("node-a", later).await.unwrap();
    assert_eq!(callbacks(&store).await.len(), 1);
    assert_eq!(store.node_recovered_by("node-a").await.unwrap(), None);

    // A node that stopped cleanly leaves nothing to recover.
    let much_later = later + chrono::Duration::seconds(30);
    store.node_stopped("node-c", later).await.unwrap();
    store.node_alive("node-a", much_later).await.unwrap();
    store.node_alive("node-b", much_later).await.unwrap();
    assert!(
        store
            .claim_dead_nodes("node-a", much_later)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The dead node restarting while a survivor recovers it: both close its rows
/// at the same moment, and its waiting callers still get one callback each.
async fn a_survivor_and_the_restarting_node_racing_call_each_caller_back_once(store: Store) {
    let config = config();
    let now = Utc::now();
    store
        .node_started("node-a", now - chrono::Duration::seconds(30))
        .await
        .unwrap();
    let mut rows = Vec::new();
    for i in 0..20 {
        let mut r = offered(&format!("a-w{i}"), &format!("+791200001{i:02}"), 50);
        r.queued_at = Some(now - chrono::Duration::seconds(45));
        rows.push(r);
    }
    store.upsert_calls(&rows).await.unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    store.own_calls("node-a", &ids).await.unwrap();
    store.node_alive("node-b", now).await.unwrap();
    let (survivor, restart) = tokio::join!(
        dispatchline::call::recovery::recover_dead_nodes(&store, &config, "node-b"),
        dispatchline::call::recovery::recover_calls(&store, &config, "node-a"),
    );
    let by_survivor: usize = survivor.unwrap().iter().map(|(_, n)| n).sum();
    let by_restart = restart.unwrap();
    assert_eq!(by_survivor + by_restart, 20);
    assert_eq!(callbacks(&store).await.len(), 20);
}

/// Node A's two free operators serve only `etalon`: it claims etalon's callbacks
/// and the one of no company, not zarya's, which stay due for node B, whose
/// operator serves everyone.
async fn a_node_claims_only_the_jobs_its_free_operators_serve(store: Store) {
    let now = Utc::now();
    store
        .create_city("ekb", "Екатеринбург", "Asia/Yekaterinburg")
        .await
        .unwrap();
    for code in ["etalon", "zarya"] {
        store.create_tenant(code, code, "ekb").await.unwrap();
    }
    let callback = |tenant: Option<&str>, target: &str| NewDialJob {
        tenant: tenant.map(str::to_owned),
        ..job(DialKind::Callback, target, None)
    };
    for (tenant, target) in [
        (Some("zarya"), "+79120000401"),
        (Some("etalon"), "+79120000402"),
        (None, "+79120000403"),
        (Some("zarya"), "+79120000404"),
    ] {
        store
            .create_dial_job(&callback(tenant, target), now)
            .await
            .unwrap();
    }
    let etalon_only = Capacity {
        free_operators_serve: TenantScope::Only(vec!["etalon".into()]),
        ..node_with(2)
    };
    let a = poll(&store, "node-a", Room::of(&etalon_only)).await;
    let mut targets: Vec<&str> = a.iter().map(|j| j.target.as_str()).collect();
    targets.sort_unstable();
    assert_eq!(targets, ["+79120000402", "+79120000403"], "{a:?}");
    let b = poll(&store, "node-b", Room::of(&node_with(5))).await;
    assert!(
        b.iter().all(|j| j.tenant.as_deref() == Some("zarya")) && b.len() == 2,
        "{b:?}"
    );
}

/// Anna talks on node A's call and Boris is on another of node A's calls with a
/// pause asked for; node A dies. Node B, with a caller waiting, is granted Anna
/// (cleared of the dead call) once node A's heartbeat has lapsed, never Boris.
async fn an_operator_whose_call_died_with_its_node_is_granted_to_a_survivor(store: Store) {
    use dispatchline::store::floor::{FloorDemand, OperatorWrite};
    let now = Utc::now();
    store
        .node_started("node-a", now - chrono::Duration::seconds(30))
        .await
        .unwrap();
    store.node_alive("node-a", now).await.unwrap();
    store.node_alive("node-b", now).await.unwrap();
    for (extension, call, reason) in [("1001", "a-1", None), ("1002", "a-2", Some("обед"))] {
        let write = OperatorWrite {
            extension,
            state: "busy",
            reason,
            since: now - chrono::Duration::seconds(20),
            call_id: Some(call),
            held: true,
        };
        store
            .floor_put_operator("node-a", write, now)
            .await
            .unwrap();
    }
    let demand = [FloorDemand {
        tenant: None,
        city: None,
        since: now - chrono::Duration::seconds(5),
        waiting: 2,
    }];
    let anyone = |_: &str, _: Option<&str>, _: Option<&str>| true;
    // While node A lives, its operators are its own.
    let granted = store
        .floor_acquire("node-b", &demand, &anyone, now)
        .await
        .unwrap();
    assert!(granted.is_empty(), "{granted:?}");

    // Node A's heartbeat lapses (10 s of silence).
    let later = now + chrono::Duration::seconds(11);
    store.node_alive("node-b", later).await.unwrap();
    let granted = store
        .floor_acquire("node-b", &demand, &anyone, later)
        .await
        .unwrap();
    assert_eq!(granted, ["1001"], "Anna is free; Boris asked for a pause");
    let floor = store.floor_snapshot(later).await.unwrap();
    let anna = floor
        .operators
        .iter()
        .find(|o| o.extension == "1001")
        .unwrap();
    assert_eq!(
        (
            anna.state.as_str(),
            anna.call_id.as_deref(),
            anna.holder.as_deref(),
            anna.holder_alive
        ),
        ("ready", None, Some("node-b"), true),
        "the dead call is cleared with the grant"
    );
    let boris = floor
        .operators
        .iter()
        .find(|o| o.extension == "1002")
        .unwrap();
    assert_eq!(boris.holder.as_deref(), Some("node-a"));
    assert!(!boris.holder_alive);
}

on_both_backends!(
    two_nodes_split_the_jobs_by_what_each_can_serve,
    one_survivor_recovers_a_dead_node_and_its_restart_calls_nobody_twice,
    a_survivor_and_the_restarting_node_racing_call_each_caller_back_once,
    an_operator_whose_call_died_with_its_node_is_granted_to_a_survivor,
    a_node_claims_only_the_jobs_its_free_operators_serve,
);
