//! The dialer's hand-off chains on the real store, SQLite and PostgreSQL, in
//! virtual time: the whole 40-minute story of an emergency ticket nobody picks up
//! until the manager presses 1, and an engine that dies mid-chain and takes its
//! chain back on restart with exact attempt counts. The call layer is played by the
//! test: it takes the dialer's orders and answers as the scripted people would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/store_db.rs"]
mod store_db;
#[path = "common/store_world.rs"]
mod store_world;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dispatchline::config::{ChainPolicy, ChainSettings, Config};
use dispatchline::dialer::chain::Stage;
use dispatchline::dialer::order::{AttemptRef, ChainEvent, ChainReport, ToCalls};
use dispatchline::dialer::runner::{ChainRunner, RunnerSettings};
use dispatchline::events::EventBus;
use dispatchline::store::tickets::Channel;
use dispatchline::store::{
    AttemptDecision, AttemptOutcome, ChainState, EmployeeId, NewTicket, Store, TicketId,
    TicketStatus,
};
use store_world::{World, build, tuesday_utc};
use tokio::sync::mpsc;

/// What a person does when the chain calls them at a stage.
#[derive(Debug, Clone, Copy)]
enum Callee {
    /// Rings for this long, then our ring timer ends it.
    RingsOut(u64),
    /// Busy at once.
    Busy,
    /// Answers after this many seconds and presses 1.
    Accepts(u64),
}

fn settings(node: &str) -> RunnerSettings {
    let config = Config::parse(
        "[[number]]\nnumber = \"100\"\nkind = \"forward\"\ntarget = \"sip:127.0.0.1:5080\"\n[chains]\nlevel_modes = [\"informer\"]\nescalation_mode = \"informer\"\n",
        std::path::Path::new("t.toml"),
    )
    .unwrap();
    RunnerSettings {
        node: node.to_owned(),
        chains: Arc::new(config.chains),
        language: "ru".into(),
        lease: Duration::from_secs(60),
        catch_up: Duration::from_secs(24 * 3600),
    }
}

fn policy(settings: &ChainSettings) -> ChainPolicy {
    settings.policy("etalon", "emergency")
}

/// The call layer as the test plays it, on a virtual clock.
struct Calls {
    rx: mpsc::UnboundedReceiver<ToCalls>,
    script: HashMap<(EmployeeId, Stage), Callee>,
    /// Reports due: (when, report).
    due: Vec<(Instant, ChainReport)>,
    /// Every order placed: (when, attempt, person, stage, try).
    placed: Vec<(Instant, AttemptRef, EmployeeId, Stage, u32)>,
    stopped: Vec<AttemptRef>,
}

impl Calls {
    fn take_orders(&mut self, now: Instant) {
        while let Ok(m) = self.rx.try_recv() {
            match m {
                ToCalls::Place(order) => {
                    let a = order.attempt;
                    self.placed
                        .push((now, a, order.person, order.stage, order.try_no));
                    let callee = self
                        .script
                        .get(&(order.person, order.stage))
                        .copied()
                        .unwrap_or(Callee::RingsOut(30));
                    let report = |after: u64, event| {
                        (
                            now + Duration::from_secs(after),
                            ChainReport { attempt: a, event },
                        )
                    };
                    self.due.push(report(
                        0,
                        ChainEvent::Started {
                            call: format!("c-{}-{}", a.chain, a.seq),
                            reach: order.reach,
                            operator: None,
                        },
                    ));
                    match callee {
                        Callee::RingsOut(s) => {
                            self.due.push(report(1, ChainEvent::Ringing));
                            self.due.push(report(
                                s,
                                ChainEvent::Ended {
                                    outcome: AttemptOutcome::NoAnswer,
                                    sip_status: 487,
                                },
                            ));
                        }
                        Callee::Busy => self.due.push(report(
                            1,
                            ChainEvent::Ended {
                                outcome: AttemptOutcome::Busy,
                                sip_status: 486,
                            },
                        )),
                        Callee::Accepts(s) => {
                            self.due.push(report(s, ChainEvent::Answered));
                            self.due.push(report(s + 8, ChainEvent::AcceptPressed));
                        }
                    }
                }
                ToCalls::Stop { attempt, .. } => {
                    self.stopped.push(attempt);
                    self.due.retain(|(_, r)| r.attempt != attempt);
                    self.due.push((
                        now,
                        ChainReport {
                            attempt,
                            event: ChainEvent::Ended {
                                outcome: AttemptOutcome::Cancelled,
                                sip_status: 487,
                            },
                        },
                    ));
                }
                ToCalls::Decided { attempt, .. } => {
                    // The informer thanks them and hangs up.
                    self.due.push((
                        now + Duration::from_secs(3),
                        ChainReport {
                            attempt,
                            event: ChainEvent::Ended {
                                outcome: AttemptOutcome::Answered,
                                sip_status: 200,
                            },
                        },
                    ));
                }
            }
        }
    }

    fn next(&self) -> Option<Instant> {
        self.due.iter().map(|(at, _)| *at).min()
    }
}

async fn ticket(store: &Store, w: &World) -> TicketId {
    store
        .create_ticket(
            &NewTicket {
                tenant: "etalon".into(),
                house_id: w.ekb_house,
                apartment: Some("12".into()),
                reason_id: w.flooding,
                description: "Топит сверху".into(),
                source: Channel::Phone,
                labels: vec![],
                caller_phone: None,
                call_id: None,
                actor: "1001".into(),
            },
            tuesday_utc(5, 0),
        )
        .await
        .unwrap()
        .ticket
        .id
}

fn runner(
    store: &Store,
    bus: &EventBus,
    node: &str,
    t0: Instant,
    at: Duration,
) -> (ChainRunner, mpsc::UnboundedReceiver<ToCalls>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let wall0 = tuesday_utc(5, 0);
    let r = ChainRunner::new(
        store.clone(),
        bus.clone(),
        settings(node),
        Arc::new(|_: &str| true),
        tx,
        t0 + at,
        wall0 + chrono::Duration::from_std(at).unwrap(),
    );
    (r, rx)
}

/// Runs the runner and the calls until `until` after `t0` (virtual time).
async fn run(r: &mut ChainRunner, calls: &mut Calls, t0: Instant, from: Duration, until: Duration) {
    let mut now = t0 + from;
    // The driver renews the node's leases every 20 s.
    let mut renew = now + Duration::from_secs(20);
    calls.take_orders(now);
    for _ in 0..100_000 {
        if now >= renew {
            r.renew(now).await;
            renew = now + Duration::from_secs(20);
        }
        let next = [r.poll_timeout(), calls.next(), Some(renew)]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else { return };
        if next > t0 + until || r.running() == 0 && calls.due.is_empty() {
            return;
        }
        now = next.max(now);
        if now >= renew {
            continue;
        }
        if let Some(i) = calls.due.iter().position(|(at, _)| *at <= now) {
            let (_, report) = calls.due.remove(i);
            r.handle_report(report, now).await;
        } else {
            r.handle_timeout(now).await;
        }
        calls.take_orders(now);
    }
    panic!("the chain never settles");
}

async fn an_emergency_nobody_picks_up_until_the_manager_presses_1(store: Store) {
    let w = build(&store).await;
    let bus = EventBus::default();
    let store = store.with_events(bus.clone());
    let t = ticket(&store, &w).await;
    let t0 = Instant::now();
    let (mut r, rx) = runner(&store, &bus, "node-a", t0, Duration::ZERO);
    // Level 1 (the day plumber) rings out every time; level 2 (the master) is
    // busy; level 3 (the engineer) rings out; in the final round the informer
    // rings everyone out, the responsible person (the master again) is busy, and
    // the manager (the engineer) answers and presses 1.
    let mut calls = Calls {
        rx,
        script: HashMap::from([
            ((w.master, Stage::Level2), Callee::Busy),
            ((w.master, Stage::Responsible), Callee::Busy),
            ((w.engineer, Stage::Manager), Callee::Accepts(1)),
        ]),
        due: Vec::new(),
        placed: Vec::new(),
        stopped: Vec::new(),
    };
    assert_eq!(
        r.start_unchained(t0).await.unwrap(),
        1,
        "the new emergency ticket gets its chain"
    );
    run(
        &mut r,
        &mut calls,
        t0,
        Duration::ZERO,
        Duration::from_secs(3600),
    )
    .await;

    let secs = |at: Instant| at.duration_since(t0).as_secs();
    let tries = |who: EmployeeId, stage: Stage| -> Vec<u64> {
        calls
            .placed
            .iter()
            .filter(|p| p.2 == who && p.3 == stage)
            .map(|p| secs(p.0))
            .collect()
    };
    // Exactly five tries per number, 60 s after each try ended.
    assert_eq!(tries(w.day, Stage::Level1), [0, 90, 180, 270, 360]);
    // Level 1 was unreachable after its fifth try (6 min 30 s): level 2 at once.
    assert_eq!(tries(w.master, Stage::Level2), [390, 451, 512, 573, 634]);
    assert_eq!(tries(w.engineer, Stage::Level3), [635, 725, 815, 905, 995]);
    // The final round from 1025 s: the informer dials all three levels at once,
    // and the chain escalates to the responsible person, then the manager.
    for who in [w.day, w.master, w.engineer] {
        assert_eq!(tries(who, Stage::Informer)[0], 1025, "informer to {who}");
    }
    assert_eq!(tries(w.master, Stage::Responsible)[0], 1025);
    assert_eq!(tries(w.engineer, Stage::Manager), [1025 + 200]);
    let last = calls.placed.iter().map(|p| p.0).max().unwrap();
    assert!(
        secs(last) <= 1225,
        "nothing is dialled after the acceptance"
    );

    // The ticket is accepted by the manager, by keypad, with the call recorded.
    let detail = store.ticket(t).await.unwrap().unwrap();
    assert_eq!(detail.ticket.status, TicketStatus::Accepted);
    assert_eq!(detail.ticket.executor_id, Some(w.engineer));
    let chain = store.chains_of_ticket(t).await.unwrap().remove(0);
    assert_eq!(chain.state, ChainState::Accepted);
    assert_eq!(chain.accepted_by, Some(w.engineer));
    assert_eq!(chain.accepted_via.as_deref(), Some("keypad"));
    let accepted: Vec<_> = chain
        .attempts
        .iter()
        .filter(|a| a.decision == Some(AttemptDecision::Accepted))
        .collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].stage, "manager");
    assert!(accepted[0].call_id.is_some());
    // Every attempt is stored with its outcome; busy is kept apart from no answer.
    assert_eq!(chain.attempts.len(), calls.placed.len());
    let level2: Vec<_> = chain
        .attempts
        .iter()
        .filter(|a| a.stage == "level-2")
        .collect();
    assert!(
        level2
            .iter()
            .all(|a| a.outcome == Some(AttemptOutcome::Busy) && a.sip_status == Some(486))
    );
    let level1: Vec<_> = chain
        .attempts
        .iter()
        .filter(|a| a.stage == "level-1")
        .collect();
    assert!(
        level1
            .iter()
            .all(|a| a.outcome == Some(AttemptOutcome::NoAnswer))
    );
    assert!(
        chain.attempts.iter().all(|a| a.outcome.is_some()),
        "every call reported back"
    );
    // The informer calls ringing at the acceptance were stopped.
    assert_eq!(calls.stopped.len(), 3, "{:?}", calls.stopped);
    // Every step is in the ticket's history.
    let notes: Vec<&str> = detail.history.iter().map(|h| h.note.as_str()).collect();
    for needle in [
        "Цепочка передачи запущена",
        "Передача уровню 2",
        "Передача уровню 3",
        "Информатор",
        "Эскалация ответственному",
        "Эскалация руководителю",
        "Принял(а)",
    ] {
        assert!(
            notes.iter().any(|n| n.contains(needle)),
            "{needle} missing from {notes:?}"
        );
    }
    // And on the bus.
    let kinds: Vec<String> = bus
        .replay(0)
        .unwrap()
        .iter()
        .map(|e| e.kind.clone())
        .collect();
    for kind in [
        "chain.started",
        "chain.escalated",
        "chain.accepted",
        "dial.attempt",
        "dial.outcome",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind}");
    }
    assert_eq!(r.running(), 0);
}

async fn an_engine_killed_mid_chain_takes_it_back_with_exact_counts(store: Store) {
    let w = build(&store).await;
    let bus = EventBus::default();
    let store = store.with_events(bus.clone());
    let t = ticket(&store, &w).await;
    let t0 = Instant::now();
    let (mut a, rx) = runner(&store, &bus, "node-a", t0, Duration::ZERO);
    let mut calls = Calls {
        rx,
        script: HashMap::new(),
        due: Vec::new(),
        placed: Vec::new(),
        stopped: Vec::new(),
    };
    a.start_unchained(t0).await.unwrap();
    // Three tries of level 1 placed (0, 90, 180 s); the third rings when the
    // engine is killed at 200 s: no release, no outcome for it.
    run(
        &mut a,
        &mut calls,
        t0,
        Duration::ZERO,
        Duration::from_secs(200),
    )
    .await;
    assert_eq!(calls.placed.len(), 3);
    drop(a);

    // Another node cannot take it while node a's lease runs.
    let (mut other, _other_rx) = runner(&store, &bus, "node-b", t0, Duration::from_secs(230));
    assert_eq!(
        other
            .resume(false, t0 + Duration::from_secs(230))
            .await
            .unwrap(),
        0
    );

    // Node a is back 60 s later under its own id: it has its chain at once.
    let back = Duration::from_secs(260);
    let (mut b, rx) = runner(&store, &bus, "node-a", t0, back);
    calls.rx = rx;
    calls.due.clear();
    assert_eq!(b.resume(true, t0 + back).await.unwrap(), 1);
    run(&mut b, &mut calls, t0, back, Duration::from_secs(450)).await;
    let chain = store.chains_of_ticket(t).await.unwrap().remove(0);
    let level1: Vec<_> = chain
        .attempts
        .iter()
        .filter(|a| a.stage == "level-1")
        .collect();
    assert_eq!(
        level1.len(),
        5,
        "exactly five tries, the unknown one counted"
    );
    assert_eq!(level1[2].outcome, Some(AttemptOutcome::Unknown));
    let seqs: Vec<i64> = chain.attempts.iter().map(|a| a.seq).collect();
    let mut unique = seqs.clone();
    unique.dedup();
    assert_eq!(seqs, unique, "no attempt twice");
    // The fourth try was due 60 s after the third was placed (240 s): placed at
    // once on restart.
    let fourth = calls.placed.iter().find(|p| p.4 == 4).unwrap();
    assert_eq!(fourth.0.duration_since(t0).as_secs(), 260);
    assert!(
        chain.attempts.iter().any(|a| a.stage == "level-2"),
        "and the chain went on"
    );
}

on_both_backends!(
    an_emergency_nobody_picks_up_until_the_manager_presses_1,
    an_engine_killed_mid_chain_takes_it_back_with_exact_counts,
);

#[test]
fn the_test_policy_is_the_informer_with_the_defaults() {
    let s = settings("x");
    let p = policy(&s.chains);
    assert_eq!((p.attempts, p.level_timeout.as_secs()), (5, 600));
}
