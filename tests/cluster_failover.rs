//! A node dies in the middle of a busy minute, and the other carries on.
//!
//! Two engine nodes share one PostgreSQL behind Kamailio with the shipped
//! `cluster/kamailio.cfg`, on loopback; SIPp plays the residents (through the
//! proxy, 10 calls a second), the operators' softphones (registered through the
//! proxy) and the people of a hand-off chain (behind the trunk). Two supervisors
//! watch the stream, one console on each node.
//!
//! 1. Anna and Boris register their softphones through the proxy and go ready;
//!    they serve «Эталон». A resident of «Эталон» calls each node directly and
//!    each is answered: one operator talks on node A's call, one on node B's.
//! 2. Twenty residents of «Заря» (nobody on duty serves it) call at 10 calls/s
//!    and wait: the proxy spreads them, so both nodes have callers queued.
//! 3. An emergency ticket is registered: its chain runs on one node; level 1's
//!    phone rings and is not answered.
//! 4. The node running the chain is SIGKILLed while level 1's second try rings.
//! 5. Once the proxy noticed (its probe every second), fifty more residents call
//!    at 10 calls/s: every one of them completes, on the survivor. A resident of
//!    «Эталон» calls too: the operator whose call died with the node takes it on
//!    the survivor (her colleague still talks there).
//! 6. The survivor finds the dead node's heartbeat lapsed and recovers it at once:
//!    every caller who was waiting in the dead node's queue gets exactly one
//!    callback job, due now and within the 10-minute rule.
//! 7. The chain goes on on the survivor with exact counts: level 1 tried five
//!    times (the try that was ringing counts as made, outcome unknown), level 2
//!    five times, level 3 presses 1; SIPp saw each attempt's INVITE once.
//! 8. The supervisor on the survivor saw every event of the cluster once, in
//!    order; the one whose node died reconnects to the survivor with where they
//!    were and misses nothing either.
//!
//! Needs `kamailio` and PostgreSQL (`DISPATCHLINE_TEST_PG`; a fresh database).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/store_db.rs"]
mod store_db;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::chains::{self, LEVEL2, LEVEL3, MANAGER};
use common::cluster::{self, until};
use common::engine::free_port;
use common::sipp;
use dispatchline::store::directory::Responsibility;
use dispatchline::store::{
    AttemptOutcome, AttemptState, ChainState, DialJobFilter, DialKind, Store, TenantScope, TicketId,
};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// «Эталон», whose residents Anna and Boris answer.
const ETALON: &str = "+73432000001";
/// «Заря», whose residents nobody on duty serves: they wait.
const ZARYA: &str = "+73432000002";
/// The operators on duty, with their passwords.
const OPERATORS: [(&str, &str); 2] = [("1001", "op1001pass-long"), ("1002", "op1002pass-long")];

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
    // A second company on the same trunk, and the operators who serve only the first.
        + &format!(
            r#"
[[number]]
number = "{ZARYA}"
kind = "tenant"
tenant = "zarya"
city = "ekb"
trunk = "provider-x"
greeting = "ru/greeting-etalon.wav"

[[operator]]
extension = "{}"
name = "Анна"
password = "{}"
tenants = ["etalon"]

[[operator]]
extension = "{}"
name = "Борис"
password = "{}"
tenants = ["etalon"]
"#,
            OPERATORS[0].0, OPERATORS[0].1, OPERATORS[1].0, OPERATORS[1].1
        )
}

/// Residents calling `number` at `to` at 10 calls/s, each from their own phone
/// (`+7912` and seven digits from `first` on), each waiting `wait_ms` after the
/// engine answers before hanging up.
fn residents(
    dir: &Path,
    to: &str,
    number: &str,
    name: &str,
    (first, calls): (u64, u64),
    wait_ms: u64,
) -> sipp::Sipp {
    let list = dir.join(format!("{name}.csv"));
    cluster::residents_file(&list, first, calls);
    // Long enough for the calls at 10 a second, each waiting, and their set-up.
    let lasting = Duration::from_millis(wait_ms + calls * 100) + Duration::from_secs(60);
    sipp::spawn_for(
        name,
        dir,
        &sipp::args(&[
            "-sf",
            &sipp::scenario("residents_wait.xml"),
            to,
            "-s",
            number,
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
        lasting,
    )
}

/// Operator `ext`'s softphone, registered through the proxy at `edge`: it answers
/// every call it is offered and talks until the resident hangs up.
async fn softphone(dir: &Path, edge: u16, (ext, password): (&str, &str)) -> sipp::Sipp {
    let port = free_port();
    // On duty for the whole story, however slow the machine.
    let phone = sipp::spawn_for(
        &format!("operator-{ext}"),
        dir,
        &sipp::args(&[
            "-sf",
            &sipp::scenario("operator_answers.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-m",
            "10",
            "-mp",
            &free_port().to_string(),
        ]),
        Duration::from_secs(300),
    );
    sipp::wait_bound(port).await;
    sipp::spawn(
        &format!("register-{ext}"),
        dir,
        &sipp::args(&[
            "-sf",
            &sipp::scenario("operator_register.xml"),
            &format!("127.0.0.1:{edge}"),
            "-i",
            "127.0.0.1",
            "-m",
            "1",
            "-key",
            "ext",
            ext,
            "-au",
            ext,
            "-ap",
            password,
            "-key",
            "contact_port",
            &port.to_string(),
            "-p",
            &free_port().to_string(),
        ]),
    )
    .finish(Duration::from_secs(30))
    .await
    .assert_success("registration through the proxy");
    phone
}

/// The operator goes ready from her own console on `http`.
async fn goes_ready(http: SocketAddr, (ext, password): (&str, &str)) {
    let token = chains::login(http, ext, password).await;
    let response = reqwest::Client::new()
        .post(format!("http://{http}/api/v1/operators/{ext}/state"))
        .bearer_auth(token)
        .json(&json!({ "state": "ready" }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{ext} ready: {response:?}");
}

/// A supervisor's console: every event it was sent, read in the background.
struct Console {
    events: Arc<Mutex<Vec<Value>>>,
    epoch: String,
    /// The stream's position when it connected.
    start: u64,
    reader: tokio::task::JoinHandle<()>,
}

impl Console {
    /// Connects to the node at `http` as supervisor 2001, from `resume` (the seq
    /// seen last and the epoch) or from now.
    async fn open(http: SocketAddr, resume: Option<(u64, &str)>) -> Self {
        let token = chains::login(http, "2001", "sup2001pass-long").await;
        let mut url = format!("ws://{http}/ws?token={token}");
        if let Some((since, epoch)) = resume {
            url.push_str(&format!("&since={since}&epoch={epoch}"));
        }
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let hello = loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    break serde_json::from_str::<Value>(&text).unwrap();
                }
                Some(Ok(_)) => continue,
                other => panic!("no hello: {other:?}"),
            }
        };
        assert_eq!(hello["type"], "hello", "{hello}");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let reader = tokio::spawn(async move {
            // Until the node dies or the test ends.
            while let Some(Ok(frame)) = ws.next().await {
                if let Message::Text(text) = frame {
                    let event: Value = serde_json::from_str(&text).unwrap();
                    if event.get("seq").is_some() {
                        sink.lock().unwrap().push(event);
                    }
                }
            }
        });
        Self {
            events,
            epoch: hello["epoch"].as_str().unwrap().to_owned(),
            start: hello["position"].as_u64().unwrap(),
            reader,
        }
    }

    fn seqs(&self) -> Vec<u64> {
        let events = self.events.lock().unwrap();
        events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
    }

    fn last(&self) -> u64 {
        self.seqs().last().copied().unwrap_or(self.start)
    }
}

/// The last seq the cluster gave.
async fn last_seq(pg: &sqlx::PgPool) -> u64 {
    let last: i64 = sqlx::query_scalar("SELECT last FROM event_counter")
        .fetch_one(pg)
        .await
        .unwrap();
    last as u64
}

/// The shared floor and the late calls as rows, for a failure's message.
async fn floor_dump(pg: &sqlx::PgPool) -> String {
    let mut out = String::new();
    for sql in [
        "SELECT extension || ' ' || state || ' reason=' || COALESCE(reason, '-') || ' call=' \
         || COALESCE(call_id, '-') || ' holder=' || COALESCE(holder, '-') || ' node=' || node \
         || ' since=' || since::text FROM floor_operators ORDER BY extension",
        "SELECT 'demand ' || node || ' ' || tenant || '/' || city || ' ' || waiting::text || ' since ' \
         || since::text FROM floor_demand",
        "SELECT 'node ' || id || ' alive_until=' || alive_until::text || ' now=' || now()::text \
         FROM nodes",
        "SELECT 'call ' || id || ' ' || from_number || ' node=' || COALESCE(node, '-') \
         || ' queued=' || COALESCE(queued_at::text, '-') || ' answered=' \
         || COALESCE(answered_at::text, '-') || ' ended=' || COALESCE(ended_at::text, '-') \
         || ' operator=' || COALESCE(operator_extension, '-') FROM calls \
         WHERE from_number IN ('+79120000100', '+79120000200', '+79120000300')",
    ] {
        for line in sqlx::query_scalar::<_, Option<String>>(sql)
            .fetch_all(pg)
            .await
            .unwrap_or_default()
        {
            out.push_str(&line.unwrap_or_default());
            out.push('\n');
        }
    }
    out
}

/// Who answered the call from `phone`, and on which node, once it is answered.
async fn answered(pg: &sqlx::PgPool, phone: &str) -> Option<(String, String)> {
    sqlx::query_as::<_, (Option<String>, Option<String>)>(
        "SELECT operator_extension, node FROM calls WHERE from_number = $1 \
         AND answered_at IS NOT NULL",
    )
    .bind(phone)
    .fetch_optional(pg)
    .await
    .unwrap()
    .and_then(|(operator, node)| Some((operator?, node?)))
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
    // The keypress of the chain's manager; the operators' voice.
    for capture in ["dtmf_2833_1.pcap", "g711a.pcap"] {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/sipp")
                .join(capture),
            dir.join(capture),
        )
        .unwrap();
    }
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

    store
        .create_tenant("zarya", "УК «Заря»", "ekb")
        .await
        .unwrap();

    // Two nodes on the one database, behind the proxy; a supervisor on each.
    let config = node_config(people_port);
    let a = cluster::start_node(&dir, "node-a", &db.url, &config).await;
    let b = cluster::start_node(&dir, "node-b", &db.url, &config).await;
    let edge = cluster::start_edge(&dir, &[&a, &b]).await;
    store
        .create_tenant("zarya", "УК «Заря»", "ekb")
        .await
        .unwrap();
    let mut consoles = HashMap::from([
        (a.name.clone(), Console::open(a.http_addr(), None).await),
        (b.name.clone(), Console::open(b.http_addr(), None).await),
    ]);

    // 1. Anna and Boris on duty, registered through the proxy; a resident of
    //    «Эталон» on each node talks to one of them.
    let _phones = [
        softphone(&dir, edge.port, OPERATORS[0]).await,
        softphone(&dir, edge.port, OPERATORS[1]).await,
    ];
    for operator in OPERATORS {
        goes_ready(a.http_addr(), operator).await;
    }
    let sip = |node: &cluster::Node| format!("127.0.0.1:{}", node.sip);
    let _talking = [
        // Both talk for the rest of the story.
        residents(&dir, &sip(&a), ETALON, "talk-a", (100, 1), 150_000),
        residents(&dir, &sip(&b), ETALON, "talk-b", (200, 1), 150_000),
    ];
    let mut talking_on = HashMap::new();
    for phone in ["+79120000100", "+79120000200"] {
        let (operator, node) = until(Duration::from_secs(30), "an operator answers", || {
            answered(&pg, phone)
        })
        .await;
        talking_on.insert(node, operator);
    }
    assert_eq!(talking_on.len(), 2, "one call on each node: {talking_on:?}");

    // 2. Twenty residents of «Заря» call and wait in the queues of both nodes.
    let _morning = residents(
        &dir,
        &format!("127.0.0.1:{}", edge.port),
        ZARYA,
        "morning",
        (1_000, 20),
        40_000,
    );
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

    // 3. An emergency ticket: its chain starts and level 1's phone rings.
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

    // 4. The node running the chain dies, with an operator's call and callers
    //    waiting.
    let (victim, survivor) = if holder == a.name { (a, b) } else { (b, a) };
    let (victim_name, survivor_name) = (victim.name.clone(), survivor.name.clone());
    victim.kill();
    let killed = Instant::now();
    let stranded = waiting_on(&pg, &victim_name).await;
    assert!(!stranded.is_empty(), "callers wait on the node that dies");
    let freed = talking_on[&victim_name].clone();
    let still_talking = talking_on[&survivor_name].clone();

    // 5. The proxy notices within its probe interval; then fifty residents call
    //    at 10 calls/s and every call completes, on the survivor. A resident of
    //    «Эталон» calls as well: the operator freed by the node's death answers.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let proxy = format!("127.0.0.1:{}", edge.port);
    let _late = residents(&dir, &proxy, ETALON, "late", (300, 1), 25_000);
    residents(&dir, &proxy, ZARYA, "after", (5_000, 50), 1_000)
        .finish(Duration::from_secs(60))
        .await
        .assert_success("every call placed after the proxy noticed");
    let after = calls_by_node(&pg, "+79120005000", "+79120005049").await;
    assert_eq!(
        after,
        HashMap::from([(survivor_name.clone(), 50)]),
        "all fifty on the survivor, journalled once"
    );
    let give_up = Instant::now() + Duration::from_secs(30);
    let (operator, node) = loop {
        if let Some(answer) = answered(&pg, "+79120000300").await {
            break answer;
        }
        if Instant::now() > give_up {
            panic!(
                "the late resident was not answered; the floor:\n{}",
                floor_dump(&pg).await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (operator.as_str(), node.as_str()),
        (freed.as_str(), survivor_name.as_str()),
        "the operator whose call died with its node answers on the survivor \
         ({still_talking} still talks there)"
    );

    // 6. The survivor recovers the dead node: each of its waiting callers gets
    //    one callback, due now, within 10 minutes of their call.
    let recovered_by = until(Duration::from_secs(30), "the dead node recovered", || {
        let store = store.clone();
        let victim = victim_name.clone();
        async move { store.node_recovered_by(&victim).await.ok().flatten() }
    })
    .await;
    assert_eq!(recovered_by, survivor_name);
    let recovered_in = killed.elapsed();
    // The supervisors' board shows it: the dead node and who took over.
    let token = chains::login(survivor.http_addr(), "2001", "sup2001pass-long").await;
    let board: Value = reqwest::Client::new()
        .get(format!("http://{}/api/v1/board", survivor.http_addr()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let nodes: Vec<(&str, bool, &str, bool)> = board["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["id"].as_str().unwrap(),
                n["alive"].as_bool().unwrap(),
                n["recovered_by"].as_str().unwrap_or(""),
                n["this"].as_bool().unwrap(),
            )
        })
        .collect();
    let mut expected = vec![
        (victim_name.as_str(), false, survivor_name.as_str(), false),
        (survivor_name.as_str(), true, "", true),
    ];
    expected.sort_unstable();
    assert_eq!(nodes, expected, "the board's nodes");
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

    // 7. The chain goes on on the survivor with exact counts.
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
    let invites = chains::invites_by_number(&dir.join("people.log"));
    assert_eq!(invites.get(LEVEL3).copied(), Some(5), "{invites:?}");
    assert_eq!(invites.get(LEVEL2).copied(), Some(5), "{invites:?}");
    assert_eq!(invites.get(MANAGER).copied(), Some(1), "{invites:?}");

    // 8. The supervisors' consoles. The one on the dead node reconnects to the
    //    survivor from where it was; then both have seen every event the cluster
    //    gave, once, in order.
    let orphan = consoles.remove(&victim_name).unwrap();
    let watching = consoles.remove(&survivor_name).unwrap();
    let resumed = Console::open(
        survivor.http_addr(),
        Some((orphan.last(), orphan.epoch.as_str())),
    )
    .await;
    assert_eq!(resumed.epoch, watching.epoch, "one epoch on every node");
    let end = last_seq(&pg).await;
    until(Duration::from_secs(15), "the consoles caught up", || {
        let done = watching.last() >= end && resumed.last() >= end;
        async move { done.then_some(()) }
    })
    .await;
    let contiguous = |from: u64, seqs: Vec<u64>| {
        let expected: Vec<u64> = (from + 1..from + 1 + seqs.len() as u64).collect();
        assert_eq!(seqs, expected, "every event once, in order, from {from}");
    };
    contiguous(watching.start, watching.seqs());
    let mut orphan_then_resumed = orphan.seqs();
    orphan_then_resumed.extend(resumed.seqs());
    contiguous(orphan.start, orphan_then_resumed);
    let seen = watching.events.lock().unwrap().clone();
    // The survivor told the floor who took the dead node over, once.
    let taken_over: Vec<&Value> = seen
        .iter()
        .filter(|e| e["type"] == "node.recovered")
        .collect();
    assert_eq!(taken_over.len(), 1, "{taken_over:?}");
    assert_eq!(
        taken_over[0]["payload"],
        json!({ "node": victim_name, "by": survivor_name, "callbacks": stranded.len() })
    );
    let accepted: Vec<&Value> = seen
        .iter()
        .filter(|e| e["type"] == "chain.accepted" && e["payload"]["ticket"] == ticket)
        .collect();
    assert_eq!(accepted.len(), 1, "the chain's acceptance, once");
    for console in [orphan, watching, resumed] {
        console.reader.abort();
    }
    drop(edge);
    drop(survivor);
    eprintln!(
        "node {victim_name} killed: {} waiting callers called back, recovered by {survivor_name} {:.1} s after the kill; {freed} freed, {} events watched",
        stranded.len(),
        recovered_in.as_secs_f64(),
        seen.len()
    );
}
