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
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::chain::{Alarm, Chain, ChainPlan, End, Output, PastAttempt, Phase, Saved, Stage};
use super::message;
use super::order::{AttemptRef, ChainEvent, ChainReport, HandoffOrder, TicketCard, ToCalls};
use crate::config::{ChainPolicy, ChainSettings};
use crate::events::EventBus;
use crate::store::chains::Chain as StoredChain;
use crate::store::{
    Acceptance, AttemptDecision, AttemptOutcome, AttemptState, AttemptUpdate, ChainAcceptance,
    ChainProgress, ChainStart, ChainState, DialChainId, EmployeeId, EscalationRole, NewAttempt,
    Store, StoreError, TicketId, TicketStatus,
};

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

/// Figures for `/metrics` and the benchmark.
#[derive(Debug, Clone, Default)]
pub struct RunnerStats {
    /// Attempts written and ordered.
    pub placed: u64,
    /// Store statements issued.
    pub queries: u64,
    /// How late attempts were ordered after they became due, a sample per attempt
    /// (the newest 100 000).
    pub lateness: VecDeque<Duration>,
    /// Chains running now.
    pub running: usize,
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

/// A write the store could not take yet.
#[derive(Debug, Clone)]
enum Write {
    Attempt(AttemptRef, AttemptUpdate, DateTime<Utc>),
    Progress(DialChainId, ChainProgress, DateTime<Utc>),
    End(DialChainId, ChainState, String, DateTime<Utc>),
    Note(TicketId, String, DateTime<Utc>),
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
    stats: RunnerStats,
    /// A real clock for lateness (the virtual one does not move while we work).
    clock: fn() -> Instant,
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
            stats: RunnerStats::default(),
            clock: Instant::now,
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

    /// Figures so far.
    pub fn stats(&self) -> &RunnerStats {
        &self.stats
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Whether writes or attempts wait for the store (the driver retries soon).
    pub fn has_backlog(&self) -> bool {
        !self.unwritten.is_empty() || !self.backlog.is_empty()
    }

    // -- starting and resuming --------------------------------------------------------

    /// Takes this node's chains (with `own`, those it held before a restart too),
    /// rebuilds their machines and lets them go on. Returns how many it took.
    pub async fn resume(&mut self, own: bool, now: Instant) -> Result<usize, StoreError> {
        let wall = self.wall(now);
        let lease = wall + chrono::Duration::from_std(self.settings.lease).unwrap_or_default();
        let mut taken = 0;
        loop {
            self.stats.queries += 1;
            let batch = self
                .store
                .claim_chains(&self.settings.node, own, wall, lease, 500)
                .await?;
            let n = batch.len();
            for stored in batch {
                if self.chains.contains_key(&stored.id) {
                    continue;
                }
                match self.resume_one(&stored, now).await {
                    Ok(()) => taken += 1,
                    Err(e) => {
                        tracing::error!(chain = %stored.id, error = %e, "cannot resume a chain; it stays in the store for another try");
                    }
                }
            }
            if n < 500 {
                break;
            }
        }
        self.place_pending(now).await;
        Ok(taken)
    }

    async fn resume_one(&mut self, stored: &StoredChain, now: Instant) -> Result<(), StoreError> {
        let plan: ChainPlan = serde_json::from_value(stored.plan.clone())
            .map_err(|e| StoreError::Corrupt(format!("chain {} plan: {e}", stored.id)))?;
        let policy: ChainPolicy = serde_json::from_value(stored.policy.clone())
            .map_err(|e| StoreError::Corrupt(format!("chain {} policy: {e}", stored.id)))?;
        let card = self.card(stored.ticket_id, now).await?;
        let phase = Phase::parse(&stored.phase).unwrap_or(Phase::Level(1));
        let phase_started = self.mono(stored.phase_started_at.unwrap_or(stored.created_at));
        let escalation = stored.escalation_started_at.map(|at| {
            (
                usize::try_from(stored.escalation_index).unwrap_or(0),
                self.mono(at),
            )
        });
        let mut attempts = HashMap::new();
        let mut past = Vec::new();
        for a in &stored.attempts {
            let Ok(stage) = a.stage.parse::<Stage>() else {
                continue;
            };
            let Some(person) = a.employee_id else {
                continue;
            };
            let Ok(phone) = crate::phone::PhoneNumber::parse(&a.phone) else {
                continue;
            };
            let seq = u32::try_from(a.seq).unwrap_or(0);
            // An attempt that never reported its end counts from when it was placed.
            let ended = match a.outcome {
                Some(AttemptOutcome::Unknown) | None => a.placed_at,
                Some(_) => a.ended_at.unwrap_or(a.placed_at),
            };
            past.push(PastAttempt {
                seq,
                stage,
                person,
                phone,
                ended: self.mono(ended),
                declined: a.decision == Some(AttemptDecision::Declined),
            });
            attempts.insert(
                seq,
                AttemptInfo {
                    person,
                    name: a.person_name.clone(),
                    call: a.call_id.clone(),
                    operator: a.operator.clone(),
                },
            );
        }
        let deadline = Some(self.mono(card.deadline));
        let saved = Saved {
            phase,
            phase_started,
            escalation,
            attempts: past,
        };
        let machine = Chain::resume(plan, policy, saved, now, deadline);
        tracing::info!(chain = %stored.id, ticket = %stored.ticket_number, phase = %stored.phase, attempts = stored.attempts.len(), "chain resumed");
        let stored_phase = (
            machine.phase(),
            machine.phase_started(),
            machine.escalation(),
        );
        self.chains.insert(
            stored.id,
            Running {
                machine,
                ticket: stored.ticket_id,
                tenant: stored.tenant.clone(),
                card,
                attempts,
                stored: stored_phase,
            },
        );
        self.drain(stored.id, now).await;
        Ok(())
    }

    /// Starts chains for registered tickets that have none (registered while no
    /// engine ran, or an engine stopped between the ticket and its chain).
    pub async fn start_unchained(&mut self, now: Instant) -> Result<usize, StoreError> {
        let since =
            self.wall(now) - chrono::Duration::from_std(self.settings.catch_up).unwrap_or_default();
        self.stats.queries += 1;
        let tickets = self.store.unchained_tickets(since, 200).await?;
        let mut started = 0;
        for t in tickets {
            let policy = self.settings.chains.policy(&t.tenant, t.category.as_str());
            if !policy.enabled {
                continue;
            }
            match self.start(t.id, false, now).await {
                Ok(Some(_)) => started += 1,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(ticket = %t.id, error = %e, "cannot start the ticket's chain now; trying again later")
                }
            }
        }
        Ok(started)
    }

    /// Starts the chain of `ticket` (a supervisor's restart when `restart`); `None`
    /// when it has one already or is no longer registered.
    pub async fn start(
        &mut self,
        ticket: TicketId,
        restart: bool,
        now: Instant,
    ) -> Result<Option<DialChainId>, StoreError> {
        let wall = self.wall(now);
        self.stats.queries += 3;
        let Some(detail) = self.store.ticket(ticket).await? else {
            return Err(StoreError::not_found("ticket", ticket));
        };
        let t = &detail.ticket;
        let executors = self
            .store
            .executor_chain(&t.tenant, t.house_id, t.reason_id, t.created_at)
            .await?;
        let mut plan = ChainPlan::default();
        for e in &executors.executors {
            let level = usize::from(e.level.max(1)) - 1;
            while plan.levels.len() <= level {
                plan.levels.push(Vec::new());
            }
            if let Some(people) = plan.levels.get_mut(level) {
                people.push(e.employee.clone());
            }
        }
        let roles = [
            (EscalationRole::Responsible, &executors.responsible),
            (EscalationRole::Manager, &executors.manager),
            (EscalationRole::Head, &executors.head),
        ];
        for (role, person) in roles {
            if let Some(p) = person {
                plan.escalation.push((role, p.clone()));
            }
        }
        let policy = self.settings.chains.policy(&t.tenant, t.category.as_str());
        let card = self.card(ticket, now).await?;
        let first = if plan.levels.iter().any(|l| !l.is_empty()) {
            Phase::Level(1)
        } else {
            Phase::Final
        };
        let lease = wall + chrono::Duration::from_std(self.settings.lease).unwrap_or_default();
        let plan_json = serde_json::to_value(&plan).unwrap_or(Value::Null);
        let policy_json = serde_json::to_value(&policy).unwrap_or(Value::Null);
        let started = self
            .store
            .start_chain(
                ticket,
                &plan_json,
                &policy_json,
                first.as_str(),
                &self.settings.node,
                lease,
                restart,
                wall,
            )
            .await?;
        let stored = match started {
            ChainStart::Started(c) => c,
            ChainStart::Running(_) | ChainStart::HadOne(_) | ChainStart::NotRegistered => {
                return Ok(None);
            }
        };
        let id = stored.id;
        let machine = Chain::start(
            plan.clone(),
            policy.clone(),
            now,
            Some(self.mono(card.deadline)),
        );
        let levels: Vec<Vec<&str>> = plan
            .levels
            .iter()
            .map(|l| l.iter().map(|p| p.name.as_str()).collect())
            .collect();
        let escalation: Vec<Value> = plan
            .escalation
            .iter()
            .map(|(role, p)| json!({ "role": role, "name": p.name }))
            .collect();
        tracing::info!(chain = %id, ticket = %t.number, tenant = %t.tenant, levels = plan.levels.len(), "chain started");
        self.note(
            ticket,
            format!(
                "Цепочка передачи запущена: уровней {}, эскалация {}",
                plan.levels.len(),
                plan.escalation.len()
            ),
            wall,
        )
        .await;
        self.bus.publish(
            "chain.started",
            Some(&t.tenant),
            json!({
                "ticket": ticket,
                "chain": id,
                "number": t.number,
                "category": t.category,
                "levels": levels,
                "escalation": escalation,
                "attempts": policy.attempts,
                "level_timeout_s": secs(policy.level_timeout),
                "broadcast_window_s": secs(policy.broadcast_window),
                "phase": machine.phase().as_str(),
                "phase_ends_at": self.wall(machine.phase_deadline()),
                "deadline": t.deadline_at,
                "restart": restart,
            }),
        );
        let stored_phase = (
            machine.phase(),
            machine.phase_started(),
            machine.escalation(),
        );
        self.chains.insert(
            id,
            Running {
                machine,
                ticket,
                tenant: t.tenant.clone(),
                card,
                attempts: HashMap::new(),
                stored: stored_phase,
            },
        );
        self.drain(id, now).await;
        self.place_pending(now).await;
        Ok(Some(id))
    }

    /// The card of a ticket: what operators see and the informer says.
    async fn card(
        &mut self,
        ticket: TicketId,
        now: Instant,
    ) -> Result<Arc<TicketCard>, StoreError> {
        self.stats.queries += 3;
        let detail = self
            .store
            .ticket(ticket)
            .await?
            .ok_or_else(|| StoreError::not_found("ticket", ticket))?;
        let t = detail.ticket;
        let tenant = self.store.tenant(&t.tenant).await?;
        let reason = self.store.reason(t.reason_id).await?;
        let (tenant_name, city, zone) = match &tenant {
            Some(tn) => (tn.name.clone(), tn.city.code.clone(), tn.city.time_zone),
            None => (t.tenant.clone(), String::new(), chrono_tz::UTC),
        };
        let work_type = reason.map(|r| r.work_type).unwrap_or_default();
        let has = self.prompts.clone();
        let spoken = message::informer(
            &self.settings.language,
            &message::Ticket {
                tenant: &t.tenant,
                number: &t.number,
                category: t.category,
                work_type: &work_type,
                address: &t.address,
                deadline: t.deadline_at,
                zone,
            },
            self.wall(now),
            &|p| has(p),
        );
        Ok(Arc::new(TicketCard {
            ticket,
            number: t.number,
            tenant: t.tenant,
            tenant_name,
            city,
            category: t.category,
            address: t.address,
            apartment: t.apartment,
            reason: t.reason,
            description: t.description,
            deadline: t.deadline_at,
            caller_phone: None,
            message: spoken.items,
            address_unsaid: spoken.address_unsaid,
        }))
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
        self.stats.queries += held.len().div_ceil(500) as u64;
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
        self.stats.queries += held.len().div_ceil(500) as u64;
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

    // -- acceptance and declines ----------------------------------------------------

    /// Accepts the ticket of `attempt`'s chain for the person called in it; `true`
    /// when this acceptance won.
    async fn accept(
        &mut self,
        attempt: AttemptRef,
        via: &str,
        operator: Option<&str>,
        now: Instant,
    ) -> bool {
        let wall = self.wall(now);
        let Some(r) = self.chains.get(&attempt.chain) else {
            return false;
        };
        let info = r.attempts.get(&attempt.seq).cloned();
        let ticket = r.ticket;
        let tenant = r.tenant.clone();
        let (employee, name) = info.as_ref().map_or((None, String::from("?")), |i| {
            (Some(i.person), i.name.clone())
        });
        let call = info
            .as_ref()
            .and_then(|i| i.call.clone())
            .unwrap_or_default();
        let note = match operator {
            Some(op) => format!(
                "Принял(а) {name}: оператор {op} по телефону, звонок {call} (попытка {})",
                attempt.seq
            ),
            None => format!(
                "Принял(а) {name}: нажал(а) 1 в звонке информатора {call} (попытка {})",
                attempt.seq
            ),
        };
        let how = ChainAcceptance {
            chain: attempt.chain,
            seq: Some(attempt.seq),
            employee,
            via: via.to_owned(),
            actor: operator.map_or_else(
                || {
                    format!(
                        "employee:{} {name}",
                        employee.map(|e| e.0).unwrap_or_default()
                    )
                },
                str::to_owned,
            ),
            note,
        };
        self.stats.queries += 1;
        let result = match self.store.accept_in_chain(ticket, &how, wall).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(%attempt, error = %e, "cannot record the acceptance");
                return false;
            }
        };
        match result {
            Acceptance::Won(_) => {
                tracing::info!(%attempt, person = %name, via, "ticket accepted through its chain");
                self.bus.publish(
                    "chain.accepted",
                    Some(&tenant),
                    json!({
                        "ticket": ticket,
                        "chain": attempt.chain,
                        "seq": attempt.seq,
                        "by": employee,
                        "by_name": name,
                        "via": via,
                        "operator": operator,
                        "call": call,
                    }),
                );
                if let Some(r) = self.chains.get_mut(&attempt.chain) {
                    r.machine.handle_accepted(now, Some(attempt.seq));
                }
                self.drain(attempt.chain, now).await;
                true
            }
            Acceptance::Lost(status) => {
                tracing::info!(%attempt, person = %name, %status, "pressed 1 after the ticket had moved on");
                self.write(Write::Attempt(
                    attempt,
                    AttemptUpdate {
                        decision: Some(AttemptDecision::Taken),
                        ..AttemptUpdate::default()
                    },
                    wall,
                ))
                .await;
                false
            }
        }
    }

    async fn declined(&mut self, attempt: AttemptRef, by: &str, now: Instant) {
        let wall = self.wall(now);
        self.write(Write::Attempt(
            attempt,
            AttemptUpdate {
                decision: Some(AttemptDecision::Declined),
                ..AttemptUpdate::default()
            },
            wall,
        ))
        .await;
        let Some(r) = self.chains.get_mut(&attempt.chain) else {
            return;
        };
        r.machine.handle_declined(now, attempt.seq);
        let name = r
            .attempts
            .get(&attempt.seq)
            .map(|i| i.name.clone())
            .unwrap_or_default();
        let (ticket, tenant) = (r.ticket, r.tenant.clone());
        self.note(
            ticket,
            format!("{name} отказался(ась) от заявки ({by})"),
            wall,
        )
        .await;
        self.bus.publish(
            "chain.declined",
            Some(&tenant),
            json!({ "ticket": ticket, "chain": attempt.chain, "seq": attempt.seq, "person": name, "via": by }),
        );
        self.drain(attempt.chain, now).await;
    }

    // -- output --------------------------------------------------------------------

    fn info_mut(&mut self, attempt: AttemptRef) -> Option<&mut AttemptInfo> {
        self.chains
            .get_mut(&attempt.chain)
            .and_then(|r| r.attempts.get_mut(&attempt.seq))
    }

    async fn drain(&mut self, id: DialChainId, now: Instant) {
        self.drain_due(id, now, None).await;
    }

    /// Acts on what chain `id` wants; `due` is when the wake-up that made it want
    /// it was due (for lateness).
    async fn drain_due(&mut self, id: DialChainId, now: Instant, due: Option<Instant>) {
        let wall = self.wall(now);
        loop {
            let Some(r) = self.chains.get_mut(&id) else {
                return;
            };
            let Some(out) = r.machine.poll_output() else {
                break;
            };
            let (ticket, tenant) = (r.ticket, r.tenant.clone());
            match out {
                Output::Place(a) => {
                    r.attempts.insert(
                        a.seq,
                        AttemptInfo {
                            person: a.person.id,
                            name: a.person.name.clone(),
                            call: None,
                            operator: None,
                        },
                    );
                    self.unwritten.push((id, a, due.unwrap_or(now)));
                }
                Output::Stop { seq, why } => {
                    let _ = self.to_calls.send(ToCalls::Stop {
                        attempt: AttemptRef { chain: id, seq },
                        why,
                    });
                }
                Output::Moved { phase, early } => {
                    let (deadline, text) = {
                        let r = self.chains.get(&id);
                        let deadline = r.map(|r| self.wall(r.machine.phase_deadline()));
                        let text = match phase {
                            Phase::Level(n) => format!("Передача уровню {n}"),
                            Phase::Final => {
                                "Информатор обзванивает все уровни, эскалация руководству"
                                    .to_owned()
                            }
                        };
                        (deadline, text)
                    };
                    let why = if early {
                        "все предыдущие не дозвонились или отказались"
                    } else {
                        "время уровня истекло"
                    };
                    self.note(ticket, format!("{text} ({why})"), wall).await;
                    self.bus.publish(
                        "chain.escalated",
                        Some(&tenant),
                        json!({
                            "ticket": ticket,
                            "chain": id,
                            "phase": phase.as_str(),
                            "early": early,
                            "phase_ends_at": deadline,
                        }),
                    );
                }
                Output::Escalating { role, person } => {
                    let role_text = match role {
                        EscalationRole::Responsible => "ответственному",
                        EscalationRole::Manager => "руководителю",
                        EscalationRole::Head => "директору",
                    };
                    self.note(
                        ticket,
                        format!("Эскалация {role_text}: {}", person.name),
                        wall,
                    )
                    .await;
                    self.bus.publish(
                        "chain.escalated",
                        Some(&tenant),
                        json!({ "ticket": ticket, "chain": id, "phase": "final", "to": role, "person": person.name }),
                    );
                }
                Output::Skipped { stage, person } => {
                    self.note(
                        ticket,
                        format!(
                            "{} ({}) не вызывается: нет номера телефона",
                            person.name,
                            stage.as_str()
                        ),
                        wall,
                    )
                    .await;
                }
                Output::Alarm(alarm) => {
                    let (reason, text) = match alarm {
                        Alarm::NoExecutors => (
                            "no-executors",
                            "Никого из исполнителей нет на смене: сразу эскалация руководству",
                        ),
                        Alarm::DeadlineAtRisk => (
                            "deadline-at-risk",
                            "Срок выполнения близко, заявка никем не принята",
                        ),
                    };
                    tracing::warn!(chain = %id, %ticket, reason, "chain alarm");
                    self.note(ticket, text.to_owned(), wall).await;
                    self.bus.publish(
                        "chain.alarm",
                        Some(&tenant),
                        json!({ "ticket": ticket, "chain": id, "reason": reason, "number": self.chains.get(&id).map(|r| r.card.number.clone()) }),
                    );
                }
                Output::Ended(end) => {
                    self.ended(id, end, now).await;
                    return;
                }
            }
        }
        self.persist_progress(id, now).await;
        self.arm(id);
    }

    async fn ended(&mut self, id: DialChainId, end: End, now: Instant) {
        let wall = self.wall(now);
        let Some(r) = self.chains.remove(&id) else {
            return;
        };
        let (ticket, tenant) = (r.ticket, r.tenant.clone());
        match end {
            // The store was told in the acceptance's own transaction (or by
            // `ticket_moved`); `chain.accepted` is published there.
            End::Accepted { .. } => {}
            End::Exhausted => {
                tracing::warn!(chain = %id, %ticket, "chain exhausted: nobody accepted the ticket");
                self.write(Write::End(
                    id,
                    ChainState::Exhausted,
                    "все уровни и руководство обзвонены, никто не принял".into(),
                    wall,
                ))
                .await;
                self.note(
                    ticket,
                    "Цепочка исчерпана: никто не принял заявку. Нужны действия диспетчера".into(),
                    wall,
                )
                .await;
                self.bus.publish(
                    "chain.exhausted",
                    Some(&tenant),
                    json!({ "ticket": ticket, "chain": id, "number": r.card.number }),
                );
            }
            End::Cancelled => {
                self.bus.publish(
                    "chain.cancelled",
                    Some(&tenant),
                    json!({ "ticket": ticket, "chain": id, "number": r.card.number }),
                );
            }
        }
    }

    /// Writes the chain's phase when it changed.
    async fn persist_progress(&mut self, id: DialChainId, now: Instant) {
        let Some(r) = self.chains.get(&id) else {
            return;
        };
        let current = (
            r.machine.phase(),
            r.machine.phase_started(),
            r.machine.escalation(),
        );
        if current == r.stored {
            return;
        }
        let (phase, started, escalation) = current;
        let progress = ChainProgress {
            phase: phase.as_str().to_owned(),
            phase_started_at: self.wall(started),
            level: match phase {
                Phase::Level(n) => i64::from(n),
                Phase::Final => 4,
            },
            escalation_index: escalation.map_or(0, |(i, _)| i as i64),
            escalation_started_at: escalation.map(|(_, at)| self.wall(at)),
        };
        if let Some(r) = self.chains.get_mut(&id) {
            r.stored = current;
        }
        let wall = self.wall(now);
        self.write(Write::Progress(id, progress, wall)).await;
    }

    fn arm(&mut self, id: DialChainId) {
        if let Some(at) = self.chains.get(&id).and_then(|r| r.machine.poll_timeout()) {
            self.timers.push(Reverse((at, id)));
        }
        self.stats.running = self.chains.len();
    }

    async fn place_pending(&mut self, now: Instant) {
        self.place_pending_since(now, None).await;
    }

    /// Writes the attempts the machines want (one batch), then orders their calls.
    async fn place_pending_since(&mut self, now: Instant, started: Option<Instant>) {
        if self.unwritten.is_empty() {
            return;
        }
        let wall = self.wall(now);
        let batch = std::mem::take(&mut self.unwritten);
        let rows: Vec<NewAttempt> = batch
            .iter()
            .map(|(chain, a, _)| NewAttempt {
                chain: *chain,
                seq: a.seq,
                stage: a.stage.as_str().to_owned(),
                employee_id: Some(a.person.id),
                person_name: a.person.name.clone(),
                phone: a.phone.to_string(),
                try_no: a.try_no,
                tries: a.tries,
                reach: a.reach.as_str().to_owned(),
            })
            .collect();
        self.stats.queries += 1;
        let written = match self
            .store
            .begin_attempts(&self.settings.node, &rows, wall)
            .await
        {
            Ok(w) => w,
            Err(e) => {
                // Never placed unwritten: they wait and are written again.
                tracing::warn!(error = %e, attempts = batch.len(), "cannot write chain attempts now; trying again");
                self.unwritten = batch;
                return;
            }
        };
        for ((chain, a, due), ok) in batch.into_iter().zip(written) {
            if !ok {
                // The chain is no longer this node's (or no longer running).
                tracing::warn!(%chain, seq = a.seq, "attempt not written: the chain is not ours any more");
                self.chains.remove(&chain);
                continue;
            }
            let Some(r) = self.chains.get(&chain) else {
                continue;
            };
            let policy = r.machine.policy();
            let order = HandoffOrder {
                attempt: AttemptRef { chain, seq: a.seq },
                stage: a.stage,
                card: r.card.clone(),
                person: a.person.id,
                person_name: a.person.name.clone(),
                phone: a.phone.clone(),
                try_no: a.try_no,
                tries: a.tries,
                reach: a.reach,
                operator_wait: policy.operator_wait,
                repeats: policy.informer_repeats,
            };
            self.bus.publish(
                "dial.attempt",
                Some(&r.tenant),
                json!({
                    "ticket": r.ticket,
                    "chain": chain,
                    "seq": a.seq,
                    "stage": a.stage.as_str(),
                    "person": a.person.name,
                    "target": a.phone,
                    "attempt": a.try_no,
                    "tries": a.tries,
                    "reach": a.reach,
                    "purpose": "handoff",
                }),
            );
            let _ = self.to_calls.send(ToCalls::Place(Box::new(order)));
            self.stats.placed += 1;
            let late = now.saturating_duration_since(due)
                + started.map_or(Duration::ZERO, |s| {
                    (self.clock)().saturating_duration_since(s)
                });
            if self.stats.lateness.len() >= 100_000 {
                self.stats.lateness.pop_front();
            }
            self.stats.lateness.push_back(late);
        }
    }

    async fn note(&mut self, ticket: TicketId, text: String, wall: DateTime<Utc>) {
        self.write(Write::Note(ticket, text, wall)).await;
    }

    /// Performs a write, or keeps it (in order) when the store cannot take it now.
    async fn write(&mut self, w: Write) {
        if !self.backlog.is_empty() {
            self.backlog.push_back(w);
            return;
        }
        if let Err(e) = self.perform(&w).await {
            if is_transient(&e) {
                tracing::warn!(error = %e, "store write kept for later");
                self.backlog.push_back(w);
            } else {
                tracing::error!(error = %e, write = ?w, "store write refused");
            }
        }
    }

    async fn perform(&mut self, w: &Write) -> Result<(), StoreError> {
        self.stats.queries += 1;
        match w {
            Write::Attempt(a, u, wall) => self.store.update_attempt(a.chain, a.seq, u, *wall).await,
            Write::Progress(id, p, wall) => {
                self.store
                    .record_chain_progress(*id, &self.settings.node, p, *wall)
                    .await
            }
            Write::End(id, state, note, wall) => self
                .store
                .end_chain(*id, *state, note, *wall)
                .await
                .map(|_| ()),
            Write::Note(ticket, text, wall) => {
                self.store.ticket_note(*ticket, ACTOR, text, *wall).await
            }
        }
    }

    /// Tries the writes kept for later again, in order.
    pub async fn retry_writes(&mut self) {
        while let Some(w) = self.backlog.front().cloned() {
            match self.perform(&w).await {
                Ok(()) => {
                    self.backlog.pop_front();
                }
                Err(e) if is_transient(&e) => return,
                Err(e) => {
                    tracing::error!(error = %e, write = ?w, "store write refused");
                    self.backlog.pop_front();
                }
            }
        }
    }

    /// Retries attempts that could not be written.
    pub async fn retry_attempts(&mut self, now: Instant) {
        self.place_pending(now).await;
    }
}

/// Whether a store error may pass if the write is tried again later.
fn is_transient(e: &StoreError) -> bool {
    e.is_busy()
        || matches!(
            e,
            StoreError::Database(sqlx::Error::Io(_) | sqlx::Error::PoolClosed)
        )
}
