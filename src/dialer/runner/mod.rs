//! The hand-off chains this node runs: each ticket's [`Chain`] machine tied to the
//! store, the event bus and the call layer.
//!
//! Owns the rule "every step is written to the store before it is acted on":
//!
//! - a chain starts in the store first (one running chain per ticket, held by this
//!   node's lease), then its machine starts;
//! - every attempt the machines want is written (state `placing`, in one batch per
//!   wake-up, each only while this node holds the chain) and only then ordered from
//!   the call layer ([`ToCalls::Place`]); an attempt the store could not take now
//!   waits and is written again, never placed unwritten;
//! - what the call layer reports is written before the machine hears it;
//! - acceptance by keypad or by the operator's button is one store transaction on
//!   the ticket ([`Store::accept_in_chain`]); the machine learns the result and stops
//!   every other call of the chain.
//!
//! Other writes (progress, outcomes, notes) that the database cannot take now are
//! kept in order and tried again ([`ChainRunner::retry_writes`]); nothing is dropped.
//!
//! After a restart the node takes its own chains back at once (same node id),
//! rebuilds each machine from the stored phase and attempts (attempts that never
//! reported back count as made) and goes on. Time: the machines run on monotonic
//! instants; the store keeps wall-clock ones; the runner converts with one anchor.
//!
//! Sans-IO towards the clock: every method takes `now`; [`super::driver`] runs it on
//! tokio's clock, tests and the benchmark on a virtual one.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::chain::{Alarm, Chain, ChainPlan, End, Output, PastAttempt, Phase, Saved, Stage};
use super::order::{AttemptRef, ChainEvent, ChainReport, HandoffOrder, TicketCard, ToCalls};
use crate::config::{ChainPolicy, ChainSettings};
use crate::events::EventBus;
use crate::store::chains::Chain as StoredChain;
use crate::store::{
    Acceptance, AttemptDecision, AttemptOutcome, AttemptState, AttemptUpdate, ChainAcceptance,
    ChainProgress, ChainStart, ChainState, DialChainId, EmployeeId, EscalationRole, NewAttempt,
    Store, StoreError, TicketId, TicketStatus,
};

mod decide;
mod output;
mod start;
mod stats;
mod writes;

pub use stats::{ChainStats, LATENESS_SAMPLES};
use writes::Write;

/// Whether a prompt exists (the media engine's library).
pub type PromptCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// How a node runs its chains.
#[derive(Clone)]
pub struct RunnerSettings {
    /// This node's stable id (leases are held under it).
    pub node: String,
    /// The chain policy of the configuration.
    pub chains: Arc<ChainSettings>,
    /// The prompts' language folder.
    pub language: String,
    /// How long a chain is this node's without renewing.
    pub lease: Duration,
    /// Registered tickets older than this never get a chain automatically (an
    /// engine upgraded next to years of tickets must not phone about them).
    pub catch_up: Duration,
}

impl std::fmt::Debug for RunnerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerSettings")
            .field("node", &self.node)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// A result the operator records for an operator-first call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OperatorResult {
    /// The person accepted the ticket.
    Accepted,
    /// The person declined it.
    Declined,
    /// The person could not be reached on this call (wrong person, voicemail).
    NotReached,
}

/// Why the runner refused a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// No such chain, attempt or ticket (or not this node's).
    #[error("{0}")]
    NotFound(String),
    /// The request does not fit the chain's state.
    #[error("{0}")]
    Conflict(String),
    /// The asker may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a chain's attempt is, as the runner remembers it.
#[derive(Debug, Clone)]
struct AttemptInfo {
    person: EmployeeId,
    name: String,
    call: Option<String>,
    operator: Option<String>,
}

/// A chain this node runs.
struct Running {
    machine: Chain,
    ticket: TicketId,
    tenant: String,
    card: Arc<TicketCard>,
    attempts: HashMap<u32, AttemptInfo>,
    /// What the store knows of its phase.
    stored: (Phase, Instant, Option<(usize, Instant)>),
}

/// The chains of this node (see the module doc).
pub struct ChainRunner {
    store: Store,
    bus: EventBus,
    settings: RunnerSettings,
    prompts: PromptCheck,
    to_calls: mpsc::UnboundedSender<ToCalls>,
    anchor: (Instant, DateTime<Utc>),
    chains: HashMap<DialChainId, Running>,
    timers: BinaryHeap<Reverse<(Instant, DialChainId)>>,
    /// Attempts the machines want, not yet written: (chain, attempt, due).
    unwritten: Vec<(DialChainId, super::chain::Attempt, Instant)>,
    /// Writes kept for later, in order.
    backlog: VecDeque<Write>,
    stats: Arc<ChainStats>,
    /// A real clock for lateness (the virtual one does not move while we work).
    clock: fn() -> Instant,
    /// The engine is stopping: nothing new is written or placed (what the
    /// machines want waits, unwritten, for whoever runs the chains next).
    stopping: bool,
}

impl std::fmt::Debug for ChainRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainRunner")
            .field("node", &self.settings.node)
            .field("chains", &self.chains.len())
            .finish_non_exhaustive()
    }
}

const ACTOR: &str = "цепочка";

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

impl ChainRunner {
    /// A runner for `settings.node`; `now` and `wall` anchor its clock.
    pub fn new(
        store: Store,
        bus: EventBus,
        settings: RunnerSettings,
        prompts: PromptCheck,
        to_calls: mpsc::UnboundedSender<ToCalls>,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Self {
        Self {
            store,
            bus,
            settings,
            prompts,
            to_calls,
            anchor: (now, wall),
            chains: HashMap::new(),
            timers: BinaryHeap::new(),
            unwritten: Vec::new(),
            backlog: VecDeque::new(),
            stats: Arc::default(),
            clock: Instant::now,
            stopping: false,
        }
    }

    /// The wall-clock time at `at`.
    pub fn wall(&self, at: Instant) -> DateTime<Utc> {
        let (mono, wall) = self.anchor;
        let ahead =
            chrono::Duration::from_std(at.saturating_duration_since(mono)).unwrap_or_default();
        let behind =
            chrono::Duration::from_std(mono.saturating_duration_since(at)).unwrap_or_default();
        wall + ahead - behind
    }

    /// The instant of wall-clock time `at` (clamped into what an instant can say).
    fn mono(&self, at: DateTime<Utc>) -> Instant {
        let (mono, wall) = self.anchor;
        match (at - wall).to_std() {
            Ok(ahead) => mono
                .checked_add(ahead.min(Duration::from_secs(366 * 86400)))
                .unwrap_or(mono),
            Err(_) => {
                let behind = (wall - at).to_std().unwrap_or_default();
                mono.checked_sub(behind).unwrap_or(mono)
            }
        }
    }

    /// Chains running on this node.
    pub fn running(&self) -> usize {
        self.chains.len()
    }

    /// The ids of the chains this node holds.
    pub fn held(&self) -> Vec<DialChainId> {
        self.chains.keys().copied().collect()
    }

    /// Figures so far (a shared handle: it goes on counting).
    pub fn stats(&self) -> Arc<ChainStats> {
        self.stats.clone()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// The engine is stopping: no new call is written or placed from now on.
    pub fn stop_placing(&mut self) {
        self.stopping = true;
    }

    /// Whether writes or attempts wait for the store (the driver retries soon).
    pub fn has_backlog(&self) -> bool {
        !self.unwritten.is_empty() || !self.backlog.is_empty()
    }

    // -- input ---------------------------------------------------------------------

    /// Deadlines have passed: the machines that are due move on.
    pub async fn handle_timeout(&mut self, now: Instant) {
        let started = (self.clock)();
        let mut due = Vec::new();
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            // Entries are not removed when a machine's deadline moves: only act
            // when the machine is due now.
            let Some(r) = self.chains.get(&id) else {
                continue;
            };
            if r.machine.poll_timeout().is_some_and(|t| t <= now) {
                due.push((id, at));
            }
        }
        for (id, at) in due {
            if let Some(r) = self.chains.get_mut(&id) {
                r.machine.handle_timeout(now);
            }
            self.drain_due(id, now, Some(at)).await;
        }
        self.place_pending_since(now, Some(started)).await;
        self.retry_writes().await;
    }

    /// What the call layer reports about a chain's call.
    pub async fn handle_report(&mut self, report: ChainReport, now: Instant) {
        let wall = self.wall(now);
        let ChainReport { attempt, event } = report;
        let chain = attempt.chain;
        match event {
            ChainEvent::Started {
                call,
                reach,
                operator,
            } => {
                if let Some(info) = self.info_mut(attempt) {
                    info.call = Some(call.clone());
                    info.operator.clone_from(&operator);
                }
                self.write(Write::Attempt(
                    attempt,
                    AttemptUpdate {
                        call_id: Some(call),
                        operator,
                        reach: Some(reach.as_str().to_owned()),
                        ..AttemptUpdate::default()
                    },
                    wall,
                ))
                .await;
            }
            ChainEvent::Ringing => {
                self.write(Write::Attempt(
                    attempt,
                    AttemptUpdate {
                        state: Some(AttemptState::Ringing),
                        ..AttemptUpdate::default()
                    },
                    wall,
                ))
                .await;
            }
            ChainEvent::Answered => {
                self.write(Write::Attempt(
                    attempt,
                    AttemptUpdate {
                        state: Some(AttemptState::Answered),
                        answered_at: Some(wall),
                        ..AttemptUpdate::default()
                    },
                    wall,
                ))
                .await;
            }
            ChainEvent::OperatorJoined { operator } => {
                if let Some(info) = self.info_mut(attempt) {
                    info.operator = Some(operator.clone());
                }
                self.write(Write::Attempt(
                    attempt,
                    AttemptUpdate {
                        operator: Some(operator),
                        ..AttemptUpdate::default()
                    },
                    wall,
                ))
                .await;
            }
            ChainEvent::AcceptPressed => {
                let won = self.accept(attempt, "keypad", None, now).await;
                let _ = self.to_calls.send(ToCalls::Decided { attempt, won });
            }
            ChainEvent::Declined => self.declined(attempt, "keypad", now).await,
            ChainEvent::NoInput => {
                self.write(Write::Attempt(
                    attempt,
                    AttemptUpdate {
                        decision: Some(AttemptDecision::NoInput),
                        ..AttemptUpdate::default()
                    },
                    wall,
                ))
                .await;
            }
            ChainEvent::Ended {
                outcome,
                sip_status,
            } => {
                self.write(Write::Attempt(
                    attempt,
                    AttemptUpdate {
                        state: Some(AttemptState::Ended),
                        outcome: Some(outcome),
                        sip_status: Some(sip_status),
                        ended_at: Some(wall),
                        ..AttemptUpdate::default()
                    },
                    wall,
                ))
                .await;
                let (tenant, ticket, info) = match self.chains.get(&chain) {
                    Some(r) => (
                        Some(r.tenant.clone()),
                        Some(r.ticket),
                        r.attempts.get(&attempt.seq).cloned(),
                    ),
                    None => (None, None, None),
                };
                self.bus.publish(
                    "dial.outcome",
                    tenant.as_deref(),
                    json!({
                        "ticket": ticket,
                        "chain": chain,
                        "seq": attempt.seq,
                        "outcome": outcome,
                        "sip_status": sip_status,
                        "call": info.as_ref().and_then(|i| i.call.clone()),
                        "person": info.as_ref().map(|i| i.name.clone()),
                        "purpose": "handoff",
                    }),
                );
                if let Some(r) = self.chains.get_mut(&chain) {
                    r.machine.handle_ended(now, attempt.seq);
                }
                self.drain(chain, now).await;
            }
        }
        self.place_pending(now).await;
    }

    /// The operator records the result of an operator-first call (or of a person
    /// the informer put through). `by` is their extension; only they (or a
    /// supervisor) may.
    pub async fn operator_result(
        &mut self,
        attempt: AttemptRef,
        result: OperatorResult,
        by: &str,
        supervisor: bool,
        now: Instant,
    ) -> Result<bool, RunnerError> {
        let Some(r) = self.chains.get(&attempt.chain) else {
            return Err(RunnerError::Conflict(format!(
                "chain {} is not running (accepted, exhausted or cancelled already)",
                attempt.chain
            )));
        };
        let Some(info) = r.attempts.get(&attempt.seq) else {
            return Err(RunnerError::NotFound(format!("no attempt {attempt}")));
        };
        if !supervisor && info.operator.as_deref() != Some(by) {
            return Err(RunnerError::Forbidden(format!(
                "{attempt} was not your call"
            )));
        }
        let wall = self.wall(now);
        let outcome = match result {
            OperatorResult::Accepted => {
                let won = self.accept(attempt, "operator", Some(by), now).await;
                if !won {
                    return Err(RunnerError::Conflict(
                        "the ticket is no longer registered: somebody accepted it first".into(),
                    ));
                }
                true
            }
            OperatorResult::Declined => {
                self.declined(attempt, by, now).await;
                true
            }
            OperatorResult::NotReached => {
                self.write(Write::Attempt(
                    attempt,
                    AttemptUpdate {
                        decision: Some(AttemptDecision::NotReached),
                        ..AttemptUpdate::default()
                    },
                    wall,
                ))
                .await;
                true
            }
        };
        self.place_pending(now).await;
        Ok(outcome)
    }

    /// A ticket changed elsewhere (the console, the API, the executor): a chain
    /// whose ticket is no longer registered stops; an emergency ticket just
    /// registered gets its chain.
    pub async fn handle_ticket_event(
        &mut self,
        payload: &Value,
        tenant: Option<&str>,
        now: Instant,
    ) {
        let Some(ticket) = payload.get("ticket").and_then(Value::as_i64).map(TicketId) else {
            return;
        };
        let status = payload
            .get("status")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<TicketStatus>().ok());
        let change = payload.get("change").and_then(Value::as_str);
        if change == Some("created") && status == Some(TicketStatus::Registered) {
            let category = payload
                .get("category")
                .and_then(Value::as_str)
                .unwrap_or("");
            let enabled = tenant.is_some_and(|t| self.settings.chains.policy(t, category).enabled);
            if enabled {
                if let Err(e) = self.start(ticket, false, now).await {
                    tracing::warn!(%ticket, error = %e, "cannot start the chain now; the next poll tries again");
                }
            }
            return;
        }
        if let Some(status) = status.filter(|s| *s != TicketStatus::Registered) {
            let running: Vec<DialChainId> = self
                .chains
                .iter()
                .filter(|(_, r)| r.ticket == ticket)
                .map(|(id, _)| *id)
                .collect();
            for id in running {
                self.ticket_moved(id, status, now).await;
            }
        }
    }

    /// Stops chains whose tickets moved on while an event was missed (the bus
    /// dropped a slow reader, another node changed it).
    pub async fn reconcile(&mut self, now: Instant) {
        let held = self.held();
        if held.is_empty() {
            return;
        }
        self.stats
            .count(&self.stats.queries, held.len().div_ceil(500) as u64);
        match self.store.chains_of_moved_tickets(&held).await {
            Ok(moved) => {
                for (id, status) in moved {
                    self.ticket_moved(id, status, now).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot check the tickets of running chains"),
        }
        self.place_pending(now).await;
    }

    async fn ticket_moved(&mut self, id: DialChainId, status: TicketStatus, now: Instant) {
        let wall = self.wall(now);
        let Some(r) = self.chains.get_mut(&id) else {
            return;
        };
        if r.machine.ended().is_some() {
            return;
        }
        if status == TicketStatus::Accepted {
            r.machine.handle_accepted(now, None);
            self.write(Write::End(
                id,
                ChainState::Accepted,
                "заявка принята вне цепочки (консоль, API)".into(),
                wall,
            ))
            .await;
        } else {
            r.machine.handle_closed(now);
            self.write(Write::End(
                id,
                ChainState::Cancelled,
                format!("заявка {status}"),
                wall,
            ))
            .await;
        }
        self.drain(id, now).await;
    }

    /// Keeps this node's chains: renews their leases; a chain another node took
    /// over meanwhile is let go.
    pub async fn renew(&mut self, now: Instant) {
        let held = self.held();
        if held.is_empty() {
            return;
        }
        let wall = self.wall(now);
        let until = wall + chrono::Duration::from_std(self.settings.lease).unwrap_or_default();
        self.stats
            .count(&self.stats.queries, held.len().div_ceil(500) as u64);
        match self
            .store
            .renew_chain_leases(&self.settings.node, &held, until, wall)
            .await
        {
            Ok(kept) => {
                for id in held {
                    if !kept.contains(&id) {
                        tracing::warn!(chain = %id, "lease lost: another node runs this chain now");
                        self.chains.remove(&id);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot renew chain leases"),
        }
    }

    /// Hands this node's chains back (the engine is stopping): any node takes them
    /// at once.
    pub async fn release(&mut self, now: Instant) {
        self.retry_writes().await;
        let held = self.held();
        let wall = self.wall(now);
        if let Err(e) = self
            .store
            .release_chains(&self.settings.node, &held, wall)
            .await
        {
            tracing::warn!(error = %e, "cannot hand chains back; they return when their lease lapses");
        }
        self.chains.clear();
    }
}
