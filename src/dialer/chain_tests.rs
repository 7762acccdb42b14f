//! The cases of `CHAINS.md`, one test each, in virtual time: a chain, a clock that
//! jumps from deadline to deadline, and scripted people who answer (or not) each
//! call after a while.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::*;
use crate::config::{ChainPolicy, Config};
use crate::store::assignment::{EscalationRole, Person};
use crate::store::ids::EmployeeId;

fn policy() -> ChainPolicy {
    let config = Config::parse(
        "[[number]]\nnumber = \"100\"\nkind = \"forward\"\ntarget = \"sip:127.0.0.1:5080\"\n",
        std::path::Path::new("t.toml"),
    )
    .unwrap();
    config.chains.policy("etalon", "emergency")
}

fn person(id: i64, phones: &[&str]) -> Person {
    Person {
        id: EmployeeId(id),
        name: format!("p{id}"),
        phones: phones
            .iter()
            .map(|p| PhoneNumber::parse(p).unwrap())
            .collect(),
    }
}

/// Three levels of one person each, and the three escalation people.
fn full_plan() -> ChainPlan {
    ChainPlan {
        levels: vec![
            vec![person(1, &["+79120000001"])],
            vec![person(2, &["+79120000002"])],
            vec![person(3, &["+79120000003"])],
        ],
        escalation: vec![
            (EscalationRole::Responsible, person(4, &["+79120000004"])),
            (EscalationRole::Manager, person(5, &["+79120000005"])),
            (EscalationRole::Head, person(6, &["+79120000006"])),
        ],
    }
}

/// What a person does when called.
#[derive(Debug, Clone, Copy)]
enum Callee {
    /// Rings out after this long.
    NoAnswer(Duration),
    /// Answers after this long and declines.
    Declines(Duration),
    /// Answers after this long and accepts.
    Accepts(Duration),
}

/// A placed call and its fate.
#[derive(Debug, Clone)]
struct Placed {
    at: Duration,
    attempt: Attempt,
    ended: Option<Duration>,
}

struct Sim {
    chain: Chain,
    t0: Instant,
    now: Instant,
    callees: HashMap<i64, Callee>,
    placed: Vec<Placed>,
    /// (due, seq, what happens then)
    pending: Vec<(Instant, u32, Callee)>,
    outputs: Vec<(Duration, Output)>,
}

impl Sim {
    fn new(plan: ChainPlan, policy: ChainPolicy, callees: &[(i64, Callee)]) -> Self {
        let t0 = Instant::now();
        let chain = Chain::start(plan, policy, t0, None);
        let mut sim = Self {
            chain,
            t0,
            now: t0,
            callees: callees.iter().copied().collect(),
            placed: Vec::new(),
            pending: Vec::new(),
            outputs: Vec::new(),
        };
        sim.drain();
        sim
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    fn drain(&mut self) {
        while let Some(out) = self.chain.poll_output() {
            match &out {
                Output::Place(a) => {
                    let callee = self
                        .callees
                        .get(&a.person.id.0)
                        .copied()
                        .unwrap_or(Callee::NoAnswer(Duration::from_secs(30)));
                    let after = match callee {
                        Callee::NoAnswer(d) | Callee::Declines(d) | Callee::Accepts(d) => d,
                    };
                    self.pending.push((self.now + after, a.seq, callee));
                    self.placed.push(Placed {
                        at: self.elapsed(),
                        attempt: a.clone(),
                        ended: None,
                    });
                }
                Output::Stop { seq, .. } => {
                    // Stopped calls end at once (CANCEL answered).
                    let seq = *seq;
                    self.pending.retain(|(_, s, _)| *s != seq);
                    self.mark_ended(seq);
                    self.outputs.push((self.elapsed(), out.clone()));
                    self.chain.handle_ended(self.now, seq);
                    continue;
                }
                _ => {}
            }
            self.outputs.push((self.elapsed(), out));
        }
    }

    fn mark_ended(&mut self, seq: u32) {
        let at = self.elapsed();
        if let Some(p) = self.placed.iter_mut().find(|p| p.attempt.seq == seq) {
            p.ended.get_or_insert(at);
        }
    }

    /// Runs until `limit` after start or until the chain ends.
    fn run(&mut self, limit: Duration) {
        for _ in 0..100_000 {
            if self.chain.ended().is_some() {
                return;
            }
            let next_call = self.pending.iter().map(|(at, _, _)| *at).min();
            let next = [self.chain.poll_timeout(), next_call]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next else { return };
            if next > self.t0 + limit {
                self.now = self.t0 + limit;
                return;
            }
            self.now = next.max(self.now);
            if let Some(i) = self.pending.iter().position(|(at, _, _)| *at <= self.now) {
                let (_, seq, callee) = self.pending.remove(i);
                self.mark_ended(seq);
                match callee {
                    Callee::NoAnswer(_) => self.chain.handle_ended(self.now, seq),
                    Callee::Declines(_) => {
                        self.chain.handle_declined(self.now, seq);
                        self.drain();
                        self.chain.handle_ended(self.now, seq);
                    }
                    Callee::Accepts(_) => {
                        self.chain.handle_accepted(self.now, Some(seq));
                        self.drain();
                        self.chain.handle_ended(self.now, seq);
                    }
                }
            } else {
                self.chain.handle_timeout(self.now);
            }
            self.drain();
        }
        panic!("the chain never stops");
    }

    fn calls_to(&self, id: i64, stage: Stage) -> Vec<&Placed> {
        self.placed
            .iter()
            .filter(|p| p.attempt.person.id.0 == id && p.attempt.stage == stage)
            .collect()
    }

    fn moved_at(&self, phase: Phase) -> Option<Duration> {
        self.outputs.iter().find_map(|(at, o)| match o {
            Output::Moved { phase: p, .. } if *p == phase => Some(*at),
            _ => None,
        })
    }

    fn ended(&self) -> Option<(Duration, End)> {
        self.outputs.iter().find_map(|(at, o)| match o {
            Output::Ended(e) => Some((*at, *e)),
            _ => None,
        })
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn mins(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

#[test]
fn the_timeline_of_an_emergency_ticket_nobody_picks_up() {
    // The timeline of CHAINS.md with the defaults, levels held for their full ten
    // minutes (no early hand-over).
    let mut p = policy();
    p.advance_when_unreachable = false;
    let mut sim = Sim::new(full_plan(), p, &[]);
    sim.run(mins(60));

    assert_eq!(sim.moved_at(Phase::Level(2)), Some(mins(10)));
    assert_eq!(sim.moved_at(Phase::Level(3)), Some(mins(20)));
    assert_eq!(sim.moved_at(Phase::Final), Some(mins(30)));
    for (id, stage, start) in [
        (1, Stage::Level1, 0),
        (2, Stage::Level2, 10),
        (3, Stage::Level3, 20),
    ] {
        let calls = sim.calls_to(id, stage);
        assert_eq!(calls.len(), 5, "level person {id} is tried exactly 5 times");
        // Each try starts attempt_interval after the previous ended (30 s ringing).
        for (n, c) in calls.iter().enumerate() {
            assert_eq!(c.at, mins(start) + secs(90 * n as u64), "try {}", n + 1);
            assert_eq!(c.attempt.try_no, n as u32 + 1);
            assert_eq!(c.attempt.reach, Reach::OperatorFirst);
        }
    }
    // The informer round dials all three levels in parallel from minute 30.
    for id in 1..=3 {
        let calls = sim.calls_to(id, Stage::Informer);
        assert_eq!(calls.len(), 5, "informer to {id}");
        assert_eq!(calls[0].at, mins(30));
        assert!(calls.iter().all(|c| c.attempt.reach == Reach::Informer));
    }
    // ... while escalating: responsible, then manager, then head, 200 s each.
    assert_eq!(sim.calls_to(4, Stage::Responsible)[0].at, mins(30));
    assert_eq!(sim.calls_to(5, Stage::Manager)[0].at, mins(30) + secs(200));
    assert_eq!(sim.calls_to(6, Stage::Head)[0].at, mins(30) + secs(400));
    assert_eq!(sim.calls_to(4, Stage::Responsible).len(), 3, "0, 90, 180 s");
    // Window over at minute 40; nobody accepted: exhausted, once the last call ends.
    let (at, end) = sim.ended().unwrap();
    assert_eq!(end, End::Exhausted);
    assert!(at >= mins(40) && at <= mins(40) + secs(30), "{at:?}");
    assert!(
        sim.placed.iter().all(|p| p.at < mins(40)),
        "nothing placed after the window"
    );
}

#[test]
fn a_level_whose_people_are_all_unreachable_hands_over_at_once() {
    let mut sim = Sim::new(full_plan(), policy(), &[]);
    sim.run(mins(60));
    // Five tries of 30 s ringing, 60 s apart: the last ends at 6 min 30 s.
    assert_eq!(sim.moved_at(Phase::Level(2)), Some(secs(390)));
    assert_eq!(sim.calls_to(1, Stage::Level1).len(), 5);
    assert_eq!(sim.calls_to(2, Stage::Level2)[0].at, secs(390));
    assert!(matches!(
        sim.outputs
            .iter()
            .find(|(_, o)| matches!(o, Output::Moved { .. })),
        Some((_, Output::Moved { early: true, .. }))
    ));
}

#[test]
fn a_level_still_ringing_when_its_time_runs_out_may_still_accept() {
    let mut p = policy();
    p.attempts = 1;
    p.level_timeout = secs(60);
    p.advance_when_unreachable = false;
    // Level 1 answers only after 100 s (a long ring), and accepts.
    let mut sim = Sim::new(
        full_plan(),
        p,
        &[
            (1, Callee::Accepts(secs(100))),
            (2, Callee::NoAnswer(secs(60))),
        ],
    );
    sim.run(mins(10));
    assert_eq!(sim.moved_at(Phase::Level(2)), Some(secs(60)));
    assert_eq!(sim.calls_to(2, Stage::Level2)[0].at, secs(60));
    let (at, end) = sim.ended().unwrap();
    assert_eq!(at, secs(100));
    assert_eq!(
        end,
        End::Accepted { seq: Some(1) },
        "the old level's call counts"
    );
    // Level 2's call was stopped.
    assert!(sim.outputs.iter().any(|(_, o)| matches!(
        o,
        Output::Stop {
            seq: 2,
            why: StopWhy::Accepted
        }
    )));
}

#[test]
fn a_decline_moves_on_at_once_to_the_next_person_then_the_next_level() {
    let plan = ChainPlan {
        levels: vec![
            vec![person(1, &["+79120000001"]), person(7, &["+79120000007"])],
            vec![person(2, &["+79120000002"])],
        ],
        escalation: vec![],
    };
    let mut sim = Sim::new(
        plan,
        policy(),
        &[
            (1, Callee::Declines(secs(10))),
            (7, Callee::Declines(secs(5))),
            (2, Callee::Accepts(secs(5))),
        ],
    );
    sim.run(mins(30));
    assert_eq!(
        sim.calls_to(1, Stage::Level1).len(),
        1,
        "a decline is not retried"
    );
    assert_eq!(sim.calls_to(7, Stage::Level1)[0].at, secs(10));
    assert_eq!(sim.moved_at(Phase::Level(2)), Some(secs(15)));
    assert_eq!(
        sim.ended().unwrap(),
        (secs(20), End::Accepted { seq: Some(3) })
    );
}

#[test]
fn the_same_person_on_two_levels_is_tried_on_each_and_a_decline_stands() {
    let mut p = policy();
    p.attempts = 2;
    // Person 1 is on levels 1 and 3; person 2 is on level 2 and declines.
    let plan = ChainPlan {
        levels: vec![
            vec![person(1, &["+79120000001"])],
            vec![person(2, &["+79120000002"])],
            vec![person(1, &["+79120000001"])],
        ],
        escalation: vec![],
    };
    let mut sim = Sim::new(plan, p, &[(2, Callee::Declines(secs(5)))]);
    sim.run(mins(60));
    assert_eq!(sim.calls_to(1, Stage::Level1).len(), 2);
    assert_eq!(sim.calls_to(2, Stage::Level2).len(), 1);
    assert_eq!(
        sim.calls_to(1, Stage::Level3).len(),
        2,
        "tried again on level 3"
    );
    // The informer round calls person 1 once per try budget, not once per level,
    // and never calls the person who declined.
    assert_eq!(sim.calls_to(1, Stage::Informer).len(), 2);
    assert!(sim.calls_to(2, Stage::Informer).is_empty());
    assert_eq!(sim.ended().unwrap().1, End::Exhausted);
}

#[test]
fn the_first_acceptance_stops_every_other_call_of_the_final_round() {
    let mut p = policy();
    p.attempts = 1;
    p.level_timeout = secs(60);
    let mut sim = Sim::new(
        full_plan(),
        p,
        &[
            // The manager accepts on the first ring of the final round... not
            // reached: the responsible person accepts first.
            (4, Callee::Accepts(secs(20))),
            (1, Callee::NoAnswer(secs(40))),
        ],
    );
    sim.run(mins(60));
    let final_at = sim.moved_at(Phase::Final).unwrap();
    let (at, end) = sim.ended().unwrap();
    assert_eq!(at, final_at + secs(20));
    let responsible = sim.calls_to(4, Stage::Responsible)[0].attempt.seq;
    assert_eq!(
        end,
        End::Accepted {
            seq: Some(responsible)
        }
    );
    // The three informer calls in progress were stopped at that moment.
    let stopped: Vec<u32> = sim
        .outputs
        .iter()
        .filter_map(|(t, o)| match o {
            Output::Stop {
                seq,
                why: StopWhy::Accepted,
            } if *t == at => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(stopped.len(), 3, "{stopped:?}");
    assert!(
        sim.placed.iter().all(|p| p.at <= at),
        "nothing after acceptance"
    );
}

#[test]
fn nobody_on_duty_goes_straight_to_escalation_with_an_alarm() {
    let plan = ChainPlan {
        levels: vec![],
        escalation: full_plan().escalation,
    };
    let mut sim = Sim::new(plan, policy(), &[(5, Callee::Accepts(secs(3)))]);
    assert!(matches!(
        sim.outputs.first(),
        Some((_, Output::Alarm(Alarm::NoExecutors)))
    ));
    sim.run(mins(30));
    assert_eq!(sim.moved_at(Phase::Final), Some(Duration::ZERO));
    assert_eq!(sim.calls_to(4, Stage::Responsible)[0].at, Duration::ZERO);
    // Three tries of the responsible person fit in their 200 s, then the manager.
    assert_eq!(sim.calls_to(5, Stage::Manager)[0].at, secs(200));
    assert!(matches!(sim.ended().unwrap().1, End::Accepted { .. }));
}

#[test]
fn nobody_at_all_is_exhausted_at_once() {
    let sim = Sim::new(ChainPlan::default(), policy(), &[]);
    assert_eq!(sim.ended(), Some((Duration::ZERO, End::Exhausted)));
    assert!(sim.placed.is_empty());
}

#[test]
fn several_numbers_of_one_person_are_tried_in_turn() {
    let mut p = policy();
    p.attempts = 2;
    p.advance_when_unreachable = true;
    let plan = ChainPlan {
        levels: vec![vec![person(1, &["+79120000001", "+73432000011"])]],
        escalation: vec![],
    };
    let mut sim = Sim::new(plan, p, &[]);
    sim.run(secs(300));
    let calls: Vec<(Duration, String)> = sim
        .calls_to(1, Stage::Level1)
        .iter()
        .map(|c| (c.at, c.attempt.phone.to_string()))
        .collect();
    assert_eq!(
        calls,
        [
            (secs(0), "+79120000001".to_owned()),
            (secs(30), "+73432000011".to_owned()),
            (secs(90), "+79120000001".to_owned()),
            (secs(120), "+73432000011".to_owned()),
        ]
    );
}

#[test]
fn a_ticket_closed_mid_chain_stops_its_calls() {
    let mut sim = Sim::new(full_plan(), policy(), &[]);
    sim.run(secs(10));
    assert_eq!(sim.chain.in_flight(), vec![1]);
    sim.chain.handle_closed(sim.now);
    sim.drain();
    assert!(sim.outputs.iter().any(|(_, o)| *o
        == Output::Stop {
            seq: 1,
            why: StopWhy::TicketClosed
        }));
    assert_eq!(sim.ended().unwrap().1, End::Cancelled);
    assert_eq!(sim.chain.poll_timeout(), None);
}

#[test]
fn a_resumed_chain_counts_every_attempt_and_places_the_next_one_when_due() {
    let p = policy();
    let t0 = Instant::now();
    // Before the crash: level 1 was tried three times; the third was in flight
    // (no outcome) when the engine died 10 s after placing it.
    let attempts = vec![
        PastAttempt {
            seq: 1,
            stage: Stage::Level1,
            person: EmployeeId(1),
            phone: PhoneNumber::parse("+79120000001").unwrap(),
            ended: t0 + secs(30),
            declined: false,
        },
        PastAttempt {
            seq: 2,
            stage: Stage::Level1,
            person: EmployeeId(1),
            phone: PhoneNumber::parse("+79120000001").unwrap(),
            ended: t0 + secs(120),
            declined: false,
        },
        PastAttempt {
            seq: 3,
            stage: Stage::Level1,
            person: EmployeeId(1),
            phone: PhoneNumber::parse("+79120000001").unwrap(),
            ended: t0 + secs(180),
            declined: false,
        },
    ];
    let saved = Saved {
        phase: Phase::Level(1),
        phase_started: t0,
        escalation: None,
        attempts,
    };
    // The engine is back 20 s after the crash.
    let restart = t0 + secs(210);
    let mut chain = Chain::resume(full_plan(), p, saved, restart, None);
    assert_eq!(
        chain.poll_output(),
        None,
        "nothing due yet: the 4th try is due at 240 s"
    );
    assert_eq!(chain.poll_timeout(), Some(t0 + secs(240)));
    chain.handle_timeout(t0 + secs(240));
    match chain.poll_output() {
        Some(Output::Place(a)) => {
            assert_eq!((a.seq, a.try_no, a.stage), (4, 4, Stage::Level1));
        }
        other => panic!("{other:?}"),
    }
    chain.handle_ended(t0 + secs(270), 4);
    chain.handle_timeout(t0 + secs(330));
    match chain.poll_output() {
        Some(Output::Place(a)) => assert_eq!((a.seq, a.try_no), (5, 5)),
        other => panic!("{other:?}"),
    }
    chain.handle_ended(t0 + secs(360), 5);
    // Five made: level 1 is done and level 2 starts.
    let outs: Vec<Output> = std::iter::from_fn(|| chain.poll_output()).collect();
    assert!(
        matches!(
            outs.first(),
            Some(Output::Moved {
                phase: Phase::Level(2),
                ..
            })
        ),
        "{outs:?}"
    );
    assert!(
        matches!(outs.get(1), Some(Output::Place(a)) if a.seq == 6 && a.stage == Stage::Level2)
    );
}

#[test]
fn a_deadline_close_at_hand_raises_one_alarm() {
    let p = policy();
    let t0 = Instant::now();
    let mut chain = Chain::start(full_plan(), p, t0, Some(t0 + mins(40)));
    let outs: Vec<Output> = std::iter::from_fn(|| chain.poll_output()).collect();
    assert!(!outs.contains(&Output::Alarm(Alarm::DeadlineAtRisk)));
    // Warning 30 min before a deadline 40 min away: at minute 10.
    assert_eq!(chain.poll_timeout(), Some(t0 + mins(10)));
    chain.handle_timeout(t0 + mins(10));
    let outs: Vec<Output> = std::iter::from_fn(|| chain.poll_output()).collect();
    assert_eq!(
        outs.iter()
            .filter(|o| **o == Output::Alarm(Alarm::DeadlineAtRisk))
            .count(),
        1
    );
    chain.handle_timeout(t0 + mins(11));
    assert!(
        std::iter::from_fn(|| chain.poll_output())
            .all(|o| o != Output::Alarm(Alarm::DeadlineAtRisk))
    );
}

#[test]
fn stages_and_phases_read_back_from_their_stored_words() {
    for stage in [
        Stage::Level1,
        Stage::Level2,
        Stage::Level3,
        Stage::Informer,
        Stage::Responsible,
        Stage::Manager,
        Stage::Head,
    ] {
        assert_eq!(stage.as_str().parse::<Stage>().unwrap(), stage);
    }
    for phase in [Phase::Level(1), Phase::Level(3), Phase::Final] {
        assert_eq!(Phase::parse(phase.as_str()), Some(phase));
    }
    assert_eq!(Phase::parse("informer"), None);
}
