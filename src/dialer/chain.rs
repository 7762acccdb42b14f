//! One ticket's hand-off chain as a sans-IO state machine.
//!
//! Owns the rules of `CHAINS.md`: who is called when, how often, and when the
//! chain moves on. It knows nothing of SIP, the store or the clock: the runner
//! feeds it the current monotonic time and what happened to the calls it asked for,
//! and drains what it wants done.
//!
//! # The rules
//!
//! - **Levels** 1–3 (as the responsibility matrix gave them, empty ones already
//!   left out) are tried one after the other, each from its start for at most
//!   `level_timeout`. Within a level the people are tried in order; each person's
//!   numbers are tried in turn, each number up to `attempts` times with
//!   `attempt_interval` from the end of one try of it to the start of the next.
//!   A person counts as unreachable once every number has had its tries.
//! - A level **moves on early** when every person in it declined, or when every
//!   person is unreachable and the policy says so (`advance_when_unreachable`); a
//!   decline moves on at once to the next person. A call of the old level still in
//!   progress may finish: if that person accepts, it counts.
//! - After the last level comes the **final round**, for `broadcast_window`: the
//!   informer dials every person of every level in parallel (each once, whatever
//!   levels they are on), and at the same time the chain escalates to the
//!   responsible person, then the manager, then the head, each tried like a level
//!   for `escalation_step`. When the window is over and the last call has ended
//!   without an acceptance, the chain is **exhausted**.
//! - Nobody on any level: the chain goes straight to the final round and raises
//!   an alarm at start.
//! - A person who declines is not called again by this chain, on any level.
//! - **Acceptance** (from any path, decided by the store) ends the chain: every
//!   other call of it is stopped. So does the ticket being cancelled or closed.
//!
//! # Driving it
//!
//! Create with [`Chain::start`] (a new chain) or [`Chain::resume`] (after a
//! restart, from what the store kept). After every `handle_*` call drain
//! [`Chain::poll_output`] until it returns `None`, then sleep until
//! [`Chain::poll_timeout`] and call [`Chain::handle_timeout`]. Every
//! [`Output::Place`] must be stored before the call is placed, and its end
//! reported with [`Chain::handle_ended`] (or [`Chain::handle_declined`] first when
//! the person declined).

use std::collections::VecDeque;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::config::{ChainPolicy, Reach};
use crate::phone::PhoneNumber;
use crate::store::assignment::{EscalationRole, Person};
use crate::store::ids::EmployeeId;

/// Where in a chain an attempt belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Executor level 1.
    #[serde(rename = "level-1")]
    Level1,
    /// Executor level 2.
    #[serde(rename = "level-2")]
    Level2,
    /// Executor level 3.
    #[serde(rename = "level-3")]
    Level3,
    /// The informer round to every level after the last one.
    Informer,
    /// Escalation to the responsible person.
    Responsible,
    /// Escalation to the responsible manager.
    Manager,
    /// Escalation to the head of the company.
    Head,
}

impl Stage {
    /// The stored word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Level1 => "level-1",
            Self::Level2 => "level-2",
            Self::Level3 => "level-3",
            Self::Informer => "informer",
            Self::Responsible => "responsible",
            Self::Manager => "manager",
            Self::Head => "head",
        }
    }

    /// The stage of executor level `level` (1-based; 3 and above are level 3).
    pub fn level(level: u8) -> Self {
        match level {
            0 | 1 => Self::Level1,
            2 => Self::Level2,
            _ => Self::Level3,
        }
    }

    /// The stage of an escalation role.
    pub fn escalation(role: EscalationRole) -> Self {
        match role {
            EscalationRole::Responsible => Self::Responsible,
            EscalationRole::Manager => Self::Manager,
            EscalationRole::Head => Self::Head,
        }
    }
}

impl std::str::FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            Self::Level1,
            Self::Level2,
            Self::Level3,
            Self::Informer,
            Self::Responsible,
            Self::Manager,
            Self::Head,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or_else(|| format!("unknown chain stage `{s}`"))
    }
}

/// Who a chain may call: the executor levels and the people it escalates to, as
/// assignment chose them when the ticket was registered. Stored with the chain, so
/// a restart calls the same people.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainPlan {
    /// Executor levels, level 1 first; each lists its people in calling order.
    pub levels: Vec<Vec<Person>>,
    /// The responsible person, the manager and the head, in that order (those
    /// there are).
    pub escalation: Vec<(EscalationRole, Person)>,
}

/// Where a running chain is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "phase", content = "level")]
pub enum Phase {
    /// Executor level n (1-based).
    Level(u8),
    /// The informer round and the escalation.
    Final,
}

impl Phase {
    /// The stored word for it (`level-1`, `final`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Level(n) => Stage::level(n).as_str(),
            Self::Final => "final",
        }
    }

    /// Parses [`Phase::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "final" => Some(Self::Final),
            other => match other.parse::<Stage>().ok()? {
                Stage::Level1 => Some(Self::Level(1)),
                Stage::Level2 => Some(Self::Level(2)),
                Stage::Level3 => Some(Self::Level(3)),
                _ => None,
            },
        }
    }
}

/// One call the chain wants placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Its number within the chain (1, 2, ...), never reused.
    pub seq: u32,
    /// Which stage it belongs to.
    pub stage: Stage,
    /// Who is called.
    pub person: Person,
    /// The number dialled.
    pub phone: PhoneNumber,
    /// Which try of this number it is (1-based).
    pub try_no: u32,
    /// Tries allowed per number.
    pub tries: u32,
    /// How the person is reached.
    pub reach: Reach,
}

/// Why a call of the chain is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopWhy {
    /// Somebody (else) accepted the ticket.
    Accepted,
    /// The ticket was cancelled, done or closed.
    TicketClosed,
}

/// Why a chain raises an alarm supervisors must see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Alarm {
    /// No executor level has anybody on duty: the chain starts with escalation.
    NoExecutors,
    /// The ticket's deadline is near and nobody has accepted it.
    DeadlineAtRisk,
}

/// How a chain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum End {
    /// Somebody accepted the ticket (in attempt `seq` when it was one of the
    /// chain's calls).
    Accepted {
        /// The attempt, when acceptance came through one.
        seq: Option<u32>,
    },
    /// Everybody was tried and nobody accepted.
    Exhausted,
    /// The ticket was cancelled, done or closed.
    Cancelled,
}

/// What the chain wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Store this attempt, then place the call.
    Place(Attempt),
    /// Stop the call of attempt `seq` (CANCEL when ringing, a last prompt and BYE
    /// when answered).
    Stop {
        /// The attempt.
        seq: u32,
        /// Why.
        why: StopWhy,
    },
    /// The chain moved to another phase (`chain.escalated`).
    Moved {
        /// The phase now.
        phase: Phase,
        /// Why it moved: the level's time ran out (`false`) or its people were
        /// all done early (`true`).
        early: bool,
    },
    /// The final round escalates to the next person up (`chain.escalated`).
    Escalating {
        /// Their role.
        role: EscalationRole,
        /// Who.
        person: Person,
    },
    /// A person of the plan cannot be called: they have no phone number.
    Skipped {
        /// Where they were.
        stage: Stage,
        /// Who.
        person: Person,
    },
    /// Something supervisors must see.
    Alarm(Alarm),
    /// The chain is over; nothing more comes out of it.
    Ended(End),
}

/// An attempt as the store kept it, for [`Chain::resume`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastAttempt {
    /// Its number within the chain.
    pub seq: u32,
    /// Its stage.
    pub stage: Stage,
    /// Who was called.
    pub person: EmployeeId,
    /// The number dialled.
    pub phone: PhoneNumber,
    /// When it ended, or when it was placed if it never reported an end (it then
    /// counts as made: outcome unknown).
    pub ended: Instant,
    /// The person declined in it.
    pub declined: bool,
}

/// A chain as the store kept it, for [`Chain::resume`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    /// The phase it was in.
    pub phase: Phase,
    /// When that phase started.
    pub phase_started: Instant,
    /// In the final round: which escalation person was being tried (index into
    /// the plan's escalation) and since when.
    pub escalation: Option<(usize, Instant)>,
    /// Every attempt made so far.
    pub attempts: Vec<PastAttempt>,
}

/// One person at one stage, with their numbers.
#[derive(Debug, Clone)]
struct Track {
    stage: Stage,
    person: Person,
    lines: Vec<Line>,
    /// The attempt of this track in progress, if any.
    busy: Option<Busy>,
}

/// The attempt a track has in progress.
#[derive(Debug, Clone, Copy)]
struct Busy {
    seq: u32,
    /// Which of the person's numbers it dialled.
    line: usize,
}

/// One number of a track.
#[derive(Debug, Clone, Copy)]
struct Line {
    made: u32,
    /// When the next try of this number may start.
    due: Instant,
}

/// Where the chain stands overall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Running,
    Over(End),
}

/// A hand-off chain (see the module doc).
#[derive(Debug, Clone)]
pub struct Chain {
    plan: ChainPlan,
    policy: ChainPolicy,
    status: Status,
    phase: Phase,
    phase_started: Instant,
    /// In the final round: the escalation person being tried and since when.
    escalation: (usize, Instant),
    tracks: Vec<Track>,
    declined: Vec<EmployeeId>,
    next_seq: u32,
    deadline_warning: Option<Instant>,
    /// The final round places nothing more: the chain waits for its last calls.
    closed: bool,
    out: VecDeque<Output>,
}

impl Chain {
    /// A new chain started at `now`. `deadline` is when the ticket is due, as an
    /// instant on the same clock (for the deadline alarm), if known.
    pub fn start(
        plan: ChainPlan,
        policy: ChainPolicy,
        now: Instant,
        deadline: Option<Instant>,
    ) -> Self {
        let mut chain = Self::empty(plan, policy, now, deadline);
        chain.announce_skipped();
        match chain.first_level() {
            Some(level) => {
                chain.phase = Phase::Level(level);
            }
            None => {
                chain.out.push_back(Output::Alarm(Alarm::NoExecutors));
                chain.enter_final(now, false);
            }
        }
        chain.handle_timeout(now);
        chain
    }

    /// A chain rebuilt from what the store kept, at `now`: the phase it was in and
    /// every attempt it made (an attempt that never reported its end counts as
    /// made), so the next attempt is the one that was due next.
    pub fn resume(
        plan: ChainPlan,
        policy: ChainPolicy,
        saved: Saved,
        now: Instant,
        deadline: Option<Instant>,
    ) -> Self {
        let mut chain = Self::empty(plan, policy, saved.phase_started, deadline);
        chain.phase = saved.phase;
        if let Phase::Level(n) = saved.phase {
            if n == 0 || usize::from(n) > chain.plan.levels.len() {
                chain.phase = Phase::Final;
            }
        }
        if let Some(esc) = saved.escalation {
            chain.escalation = esc;
        } else if chain.phase == Phase::Final {
            chain.escalation = (0, saved.phase_started);
        }
        let interval = chain.policy.attempt_interval;
        for past in &saved.attempts {
            chain.next_seq = chain.next_seq.max(past.seq.saturating_add(1));
            if past.declined && !chain.declined.contains(&past.person) {
                chain.declined.push(past.person);
            }
            let track = chain
                .tracks
                .iter_mut()
                .find(|t| t.stage == past.stage && t.person.id == past.person);
            let Some(track) = track else { continue };
            let Some(i) = track.person.phones.iter().position(|p| *p == past.phone) else {
                continue;
            };
            if let Some(line) = track.lines.get_mut(i) {
                line.made = line.made.saturating_add(1);
                line.due = line.due.max(past.ended + interval);
            }
        }
        chain.handle_timeout(now);
        chain
    }

    fn empty(
        plan: ChainPlan,
        policy: ChainPolicy,
        started: Instant,
        deadline: Option<Instant>,
    ) -> Self {
        let mut tracks = Vec::new();
        let line = |_: &PhoneNumber| Line {
            made: 0,
            due: started,
        };
        for (i, people) in plan.levels.iter().enumerate() {
            let stage = Stage::level(u8::try_from(i + 1).unwrap_or(3));
            for person in people {
                tracks.push(Track {
                    stage,
                    person: person.clone(),
                    lines: person.phones.iter().map(line).collect(),
                    busy: None,
                });
            }
        }
        // The informer round calls each person of the levels once.
        let mut seen: Vec<EmployeeId> = Vec::new();
        for person in plan.levels.iter().flatten() {
            if seen.contains(&person.id) {
                continue;
            }
            seen.push(person.id);
            tracks.push(Track {
                stage: Stage::Informer,
                person: person.clone(),
                lines: person.phones.iter().map(line).collect(),
                busy: None,
            });
        }
        for (role, person) in &plan.escalation {
            tracks.push(Track {
                stage: Stage::escalation(*role),
                person: person.clone(),
                lines: person.phones.iter().map(line).collect(),
                busy: None,
            });
        }
        let deadline_warning =
            deadline.map(|d| d.checked_sub(policy.deadline_warning).unwrap_or(started));
        Self {
            plan,
            policy,
            status: Status::Running,
            phase: Phase::Level(1),
            phase_started: started,
            escalation: (0, started),
            tracks,
            declined: Vec::new(),
            next_seq: 1,
            deadline_warning,
            closed: false,
            out: VecDeque::new(),
        }
    }

    fn announce_skipped(&mut self) {
        for t in &self.tracks {
            if t.lines.is_empty() && t.stage != Stage::Informer {
                self.out.push_back(Output::Skipped {
                    stage: t.stage,
                    person: t.person.clone(),
                });
            }
        }
    }

    /// The first level with anybody on it.
    fn first_level(&self) -> Option<u8> {
        self.next_level_after(0)
    }

    fn next_level_after(&self, level: u8) -> Option<u8> {
        (usize::from(level)..self.plan.levels.len())
            .find(|&i| self.plan.levels.get(i).is_some_and(|l| !l.is_empty()))
            .and_then(|i| u8::try_from(i + 1).ok())
    }

    // -- what the chain is doing ------------------------------------------------------

    /// The phase it is in.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// When the phase started.
    pub fn phase_started(&self) -> Instant {
        self.phase_started
    }

    /// In the final round: the escalation person being tried and since when.
    pub fn escalation(&self) -> Option<(usize, Instant)> {
        (self.phase == Phase::Final).then_some(self.escalation)
    }

    /// How it ended, once it has.
    pub fn ended(&self) -> Option<End> {
        match self.status {
            Status::Over(end) => Some(end),
            Status::Running => None,
        }
    }

    /// The attempts in progress.
    pub fn in_flight(&self) -> Vec<u32> {
        self.tracks
            .iter()
            .filter_map(|t| t.busy.map(|b| b.seq))
            .collect()
    }

    /// When the phase hands over to the next one at the latest (the end of the
    /// informer window in the final round).
    pub fn phase_deadline(&self) -> Instant {
        match self.phase {
            Phase::Level(_) => self.phase_started + self.policy.level_timeout,
            Phase::Final => self.phase_started + self.policy.broadcast_window,
        }
    }

    /// The policy it runs by.
    pub fn policy(&self) -> &ChainPolicy {
        &self.policy
    }

    /// Who it may call.
    pub fn plan(&self) -> &ChainPlan {
        &self.plan
    }

    // -- input ---------------------------------------------------------------------

    /// Time has passed: moves on when a phase is over and places the attempts
    /// that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.status != Status::Running {
            return;
        }
        if self.deadline_warning.is_some_and(|at| at <= now) {
            self.deadline_warning = None;
            self.out.push_back(Output::Alarm(Alarm::DeadlineAtRisk));
        }
        // Each round either moves the chain on or stops; a chain has at most three
        // levels and three escalation people, so this ends quickly.
        for _ in 0..16 {
            if !self.move_on(now) {
                break;
            }
        }
        if self.phase == Phase::Final && self.final_over(now) {
            // Nothing more is placed; calls in progress may still end in acceptance.
            self.closed = true;
            if self.tracks.iter().all(|t| t.busy.is_none()) {
                self.finish(End::Exhausted);
            }
            return;
        }
        self.place_due(now);
    }

    /// Attempt `seq` is over (the call ended, however it ended): the number's
    /// next try counts from now.
    pub fn handle_ended(&mut self, now: Instant, seq: u32) {
        let interval = self.policy.attempt_interval;
        for t in &mut self.tracks {
            if let Some(busy) = t.busy.filter(|b| b.seq == seq) {
                t.busy = None;
                if let Some(line) = t.lines.get_mut(busy.line) {
                    line.due = now + interval;
                }
            }
        }
        self.handle_timeout(now);
    }

    /// The person called in attempt `seq` declined the ticket: they are not called
    /// again by this chain. Report the call's end with [`handle_ended`](Self::handle_ended).
    pub fn handle_declined(&mut self, now: Instant, seq: u32) {
        let person = self
            .tracks
            .iter()
            .find(|t| t.busy.is_some_and(|b| b.seq == seq))
            .map(|t| t.person.id);
        if let Some(id) = person {
            if !self.declined.contains(&id) {
                self.declined.push(id);
            }
        }
        self.handle_timeout(now);
    }

    /// The ticket was accepted (in attempt `seq`, or elsewhere): the chain ends and
    /// every other call of it is stopped.
    pub fn handle_accepted(&mut self, _now: Instant, seq: Option<u32>) {
        if self.status != Status::Running {
            return;
        }
        self.stop_all(seq, StopWhy::Accepted);
        self.finish(End::Accepted { seq });
    }

    /// The ticket was cancelled, done or closed: the chain ends and every call of
    /// it is stopped.
    pub fn handle_closed(&mut self, _now: Instant) {
        if self.status != Status::Running {
            return;
        }
        self.stop_all(None, StopWhy::TicketClosed);
        self.finish(End::Cancelled);
    }

    // -- output --------------------------------------------------------------------

    /// The next thing the chain wants done.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.status != Status::Running || self.closed {
            // Over, or only waiting for the calls in progress to report.
            return None;
        }
        let mut next: Option<Instant> = self.deadline_warning;
        let mut consider = |at: Instant| {
            next = Some(next.map_or(at, |n| n.min(at)));
        };
        match self.phase {
            Phase::Level(_) => consider(self.phase_started + self.policy.level_timeout),
            Phase::Final => {
                let window_end = self.phase_started + self.policy.broadcast_window;
                consider(window_end);
                if self.escalation.0 < self.plan.escalation.len() {
                    consider(self.escalation.1 + self.policy.escalation_step);
                }
            }
        }
        for i in self.active_tracks() {
            if let Some(t) = self.tracks.get(i) {
                if t.busy.is_none() {
                    if let Some(due) = self.next_line(t).map(|(_, due)| due) {
                        consider(due);
                    }
                }
            }
        }
        next
    }

    // -- the rules -----------------------------------------------------------------

    fn finish(&mut self, end: End) {
        self.status = Status::Over(end);
        self.out.push_back(Output::Ended(end));
    }

    fn stop_all(&mut self, except: Option<u32>, why: StopWhy) {
        for t in &self.tracks {
            if let Some(Busy { seq, .. }) = t.busy {
                if Some(seq) != except {
                    self.out.push_back(Output::Stop { seq, why });
                }
            }
        }
    }

    /// Whether the person of track `t` is done at this stage: they declined (the
    /// chain moves on at once, while their call says goodbye), or every number had
    /// its tries and no call to them is in progress.
    fn finished(&self, t: &Track) -> bool {
        self.declined.contains(&t.person.id)
            || (t.busy.is_none() && t.lines.iter().all(|l| l.made >= self.policy.attempts))
    }

    fn declined_person(&self, t: &Track) -> bool {
        self.declined.contains(&t.person.id)
    }

    /// Tracks that may place calls now.
    fn active_tracks(&self) -> Vec<usize> {
        match self.phase {
            Phase::Level(n) => {
                let stage = Stage::level(n);
                // People of a level are tried one after the other.
                self.tracks
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.stage == stage)
                    .find(|(_, t)| !self.finished(t))
                    .map(|(i, _)| vec![i])
                    .unwrap_or_default()
            }
            Phase::Final => {
                let mut out = Vec::new();
                if self.policy.informer_round {
                    out.extend(
                        self.tracks
                            .iter()
                            .enumerate()
                            .filter(|(_, t)| t.stage == Stage::Informer && !self.finished(t))
                            .map(|(i, _)| i),
                    );
                }
                if let Some((role, person)) = self.plan.escalation.get(self.escalation.0) {
                    let stage = Stage::escalation(*role);
                    if let Some(i) = self
                        .tracks
                        .iter()
                        .position(|t| t.stage == stage && t.person.id == person.id)
                    {
                        out.push(i);
                    }
                }
                out
            }
        }
    }

    /// Moves the chain on when its phase or escalation step is over; `true` when
    /// it moved.
    fn move_on(&mut self, now: Instant) -> bool {
        match self.phase {
            Phase::Level(n) => {
                let stage = Stage::level(n);
                let people: Vec<&Track> = self.tracks.iter().filter(|t| t.stage == stage).collect();
                let all_done = people.iter().all(|t| self.finished(t));
                let all_declined = people.iter().all(|t| self.declined_person(t));
                let timed_out = now >= self.phase_started + self.policy.level_timeout;
                let early = all_done && (all_declined || self.policy.advance_when_unreachable);
                if !(timed_out || early) {
                    return false;
                }
                match self.next_level_after(n) {
                    Some(next) => {
                        self.phase = Phase::Level(next);
                        self.phase_started = now;
                        self.out.push_back(Output::Moved {
                            phase: self.phase,
                            early: !timed_out,
                        });
                    }
                    None => self.enter_final(now, !timed_out),
                }
                true
            }
            Phase::Final => {
                let Some((role, person)) = self.plan.escalation.get(self.escalation.0).cloned()
                else {
                    return false;
                };
                let stage = Stage::escalation(role);
                let done = self
                    .tracks
                    .iter()
                    .find(|t| t.stage == stage && t.person.id == person.id)
                    .is_none_or(|t| {
                        self.finished(t)
                            && (self.declined_person(t) || self.policy.advance_when_unreachable)
                    });
                let timed_out = now >= self.escalation.1 + self.policy.escalation_step;
                if !(done || timed_out) {
                    return false;
                }
                self.escalation = (self.escalation.0 + 1, now);
                self.announce_escalation(now);
                true
            }
        }
    }

    fn enter_final(&mut self, now: Instant, early: bool) {
        self.phase = Phase::Final;
        self.phase_started = now;
        self.escalation = (0, now);
        self.out.push_back(Output::Moved {
            phase: Phase::Final,
            early,
        });
        self.announce_escalation(now);
    }

    fn announce_escalation(&mut self, now: Instant) {
        if self.final_over(now) {
            return;
        }
        if let Some((role, person)) = self.plan.escalation.get(self.escalation.0) {
            self.out.push_back(Output::Escalating {
                role: *role,
                person: person.clone(),
            });
        }
    }

    /// Whether the final round has nothing more to place: its window is over, or
    /// everybody in it is done.
    fn final_over(&self, now: Instant) -> bool {
        if now >= self.phase_started + self.policy.broadcast_window {
            return true;
        }
        let informers_done = !self.policy.informer_round
            || self
                .tracks
                .iter()
                .filter(|t| t.stage == Stage::Informer)
                .all(|t| self.finished(t));
        let escalation_done = self.escalation.0 >= self.plan.escalation.len();
        let everyone_declined = self
            .tracks
            .iter()
            .filter(|t| t.stage == Stage::Informer)
            .all(|t| self.declined_person(t));
        informers_done
            && escalation_done
            && (self.policy.advance_when_unreachable || everyone_declined)
    }

    /// The number of track `t` to try next and when it may be tried: the one due
    /// earliest among those with tries left (fewer tries first, then file order).
    fn next_line(&self, t: &Track) -> Option<(usize, Instant)> {
        if self.declined_person(t) {
            return None;
        }
        t.lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.made < self.policy.attempts)
            .min_by_key(|(i, l)| (l.due, l.made, *i))
            .map(|(i, l)| (i, l.due))
    }

    fn place_due(&mut self, now: Instant) {
        for i in self.active_tracks() {
            let Some(t) = self.tracks.get(i) else {
                continue;
            };
            if t.busy.is_some() {
                continue;
            }
            let Some((line, due)) = self.next_line(t) else {
                continue;
            };
            if due > now {
                continue;
            }
            let reach = match t.stage {
                Stage::Level1 => self.policy.level_mode(1),
                Stage::Level2 => self.policy.level_mode(2),
                Stage::Level3 => self.policy.level_mode(3),
                Stage::Informer => Reach::Informer,
                Stage::Responsible | Stage::Manager | Stage::Head => self.policy.escalation_mode,
            };
            let seq = self.next_seq;
            self.next_seq = self.next_seq.saturating_add(1);
            let tries = self.policy.attempts;
            let Some(t) = self.tracks.get_mut(i) else {
                continue;
            };
            let Some(phone) = t.person.phones.get(line).cloned() else {
                continue;
            };
            let Some(l) = t.lines.get_mut(line) else {
                continue;
            };
            l.made += 1;
            t.busy = Some(Busy { seq, line });
            let attempt = Attempt {
                seq,
                stage: t.stage,
                person: t.person.clone(),
                phone,
                try_no: l.made,
                tries,
                reach,
            };
            self.out.push_back(Output::Place(attempt));
        }
    }
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
