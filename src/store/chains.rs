//! Hand-off chains as the store keeps them: the chain of one ticket (who it may
//! call and by which rules, the phase it is in, the node running it) and every call
//! it placed.
//!
//! The store does not know the rules; the dialer does (`dialer::chain`). What the
//! store guarantees is what makes the rules survive a crash and several nodes:
//!
//! - one running chain per ticket, whichever node starts it (a unique index);
//! - a chain is run by the node holding its **lease**; a node that dies loses it
//!   after the lease, or as soon as its heartbeat lapses ([`super::nodes`]), one
//!   that restarts under the same node id gets its own back at once, and a node that
//!   lost the lease cannot write an attempt;
//! - an attempt is written (state `placing`) **before** its call is placed, in one
//!   statement that also checks the lease, so a call is never placed twice for one
//!   attempt; attempts that never reported back are settled as `unknown` when the
//!   chain is claimed again, and count as made;
//! - acceptance is one transaction on the ticket guarded by its version
//!   ([`Store::accept_in_chain`](super::Store::accept_in_chain)): the first wins.
//!
//! The plan and the policy are stored as the dialer wrote them (JSON); the store
//! only hands them back.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::backend::{dispatch, per_backend};
use super::directory::TenantScope;
use super::ids::{DialChainId, EmployeeId, RecordingId, TicketId};
use super::tickets::Category;
use super::{Store, StoreError, text_enum};

per_backend!("sql/chains.rs");

text_enum! {
    /// Where a chain stands.
    pub enum ChainState {
        /// Calling people.
        Running = "running",
        /// Somebody accepted the ticket.
        Accepted = "accepted",
        /// Everybody was tried and nobody accepted: an alarm until a person acts.
        Exhausted = "exhausted",
        /// The ticket was cancelled, done or closed before anybody accepted it
        /// through the chain.
        Cancelled = "cancelled",
    }
}

text_enum! {
    /// Where one call of a chain stands.
    pub enum AttemptState {
        /// Stored; the call is being placed (or waits for an operator).
        Placing = "placing",
        /// The person's phone rings.
        Ringing = "ringing",
        /// The person answered.
        Answered = "answered",
        /// Over.
        Ended = "ended",
    }
}

text_enum! {
    /// How one call of a chain ended.
    pub enum AttemptOutcome {
        /// The person answered.
        Answered = "answered",
        /// Busy (486/600).
        Busy = "busy",
        /// Rang out (our ring timer, 408 or 480 from the far end while ringing).
        NoAnswer = "no-answer",
        /// Declined the call (603).
        Rejected = "rejected",
        /// Unreachable (404, 484, 604, 480 before any ringing).
        Unreachable = "unreachable",
        /// Technical failure (5xx after every trunk, transport errors).
        Failed = "failed",
        /// Stopped by the chain (somebody accepted, the ticket closed).
        Cancelled = "cancelled",
        /// The engine stopped before the call reported back; it counts as made.
        Unknown = "unknown",
    }
}

text_enum! {
    /// What the person said when reached.
    pub enum AttemptDecision {
        /// Accepted the ticket (keypad 1, or the operator's "accepted").
        Accepted = "accepted",
        /// Declined it (keypad 2, or the operator's "declined").
        Declined = "declined",
        /// Pressed 1 after another employee had accepted.
        Taken = "taken",
        /// Pressed nothing while the message was repeated.
        NoInput = "no-input",
        /// The operator could not reach them on this call.
        NotReached = "not-reached",
    }
}

impl From<super::DialAttemptOutcome> for AttemptOutcome {
    fn from(o: super::DialAttemptOutcome) -> Self {
        use super::DialAttemptOutcome as D;
        match o {
            D::Answered => Self::Answered,
            D::Busy => Self::Busy,
            D::NoAnswer => Self::NoAnswer,
            D::Rejected => Self::Rejected,
            D::Unreachable => Self::Unreachable,
            D::Failed => Self::Failed,
        }
    }
}

/// One call a chain placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainAttempt {
    /// Its number within the chain.
    pub seq: i64,
    /// `level-1` .. `level-3`, `informer`, `responsible`, `manager`, `head`.
    pub stage: String,
    /// Who was called.
    pub employee_id: Option<EmployeeId>,
    /// Their name.
    pub person_name: String,
    /// The number dialled.
    pub phone: String,
    /// Which try of this number (1-based).
    pub try_no: i64,
    /// Tries allowed per number.
    pub tries: i64,
    /// `operator-first` or `informer` (informer when the operator wait ran out).
    pub reach: String,
    /// Where it stands.
    pub state: AttemptState,
    /// How it ended.
    pub outcome: Option<AttemptOutcome>,
    /// What the person said.
    pub decision: Option<AttemptDecision>,
    /// The engine's call id of the call to the person.
    pub call_id: Option<String>,
    /// The operator who made the call (operator-first).
    pub operator: Option<String>,
    /// The SIP status that ended it.
    pub sip_status: Option<i64>,
    /// Written (just before the call was placed).
    pub placed_at: DateTime<Utc>,
    /// The person answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// It ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// The call's recording, once it is stored.
    pub recording_id: Option<RecordingId>,
}

/// A chain with its attempts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Chain {
    /// Row id.
    pub id: DialChainId,
    /// The ticket.
    pub ticket_id: TicketId,
    /// Its registration number.
    pub ticket_number: String,
    /// Its tenant.
    pub tenant: String,
    /// Its category.
    pub category: Category,
    /// Its deadline.
    pub deadline_at: DateTime<Utc>,
    /// Where the chain stands.
    pub state: ChainState,
    /// `level-1` .. `level-3` or `final`.
    pub phase: String,
    /// When the phase started.
    pub phase_started_at: Option<DateTime<Utc>>,
    /// In the final round, the escalation person being tried (0 = responsible).
    pub escalation_index: i64,
    /// Since when.
    pub escalation_started_at: Option<DateTime<Utc>>,
    /// Who it may call, as the dialer wrote it.
    pub plan: serde_json::Value,
    /// The rules it runs by, as the dialer wrote them.
    pub policy: serde_json::Value,
    /// The node running it.
    pub claimed_by: Option<String>,
    /// Until when (another node may take it over after).
    pub claimed_until: Option<DateTime<Utc>>,
    /// Started.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Who accepted the ticket through it.
    pub accepted_by: Option<EmployeeId>,
    /// Their name.
    pub accepted_by_name: Option<String>,
    /// How: `keypad`, `operator`, `api`.
    pub accepted_via: Option<String>,
    /// In which attempt.
    pub accepted_attempt: Option<i64>,
    /// An exhausted chain a supervisor has acted on.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// Who.
    pub acknowledged_by: Option<String>,
    /// Why it ended, in words.
    pub note: String,
    /// Every call it placed, oldest first.
    pub attempts: Vec<ChainAttempt>,
}

/// An attempt about to be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttempt {
    /// The chain.
    pub chain: DialChainId,
    /// Its number within the chain.
    pub seq: u32,
    /// Its stage (see [`ChainAttempt::stage`]).
    pub stage: String,
    /// Who is called.
    pub employee_id: Option<EmployeeId>,
    /// Their name.
    pub person_name: String,
    /// The number dialled.
    pub phone: String,
    /// Which try of this number.
    pub try_no: u32,
    /// Tries allowed per number.
    pub tries: u32,
    /// How the person is reached.
    pub reach: String,
}

/// What happened to an attempt; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptUpdate {
    /// Its state now.
    pub state: Option<AttemptState>,
    /// How it ended.
    pub outcome: Option<AttemptOutcome>,
    /// What the person said.
    pub decision: Option<AttemptDecision>,
    /// The call to the person.
    pub call_id: Option<String>,
    /// The operator making it.
    pub operator: Option<String>,
    /// The SIP status that ended it.
    pub sip_status: Option<u16>,
    /// How the person is reached now (`informer` when the operator wait ran out).
    pub reach: Option<String>,
    /// The person answered at.
    pub answered_at: Option<DateTime<Utc>>,
    /// It ended at.
    pub ended_at: Option<DateTime<Utc>>,
}

/// Where a running chain is, as the dialer reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainProgress {
    /// `level-1` .. `level-3` or `final`.
    pub phase: String,
    /// When the phase started.
    pub phase_started_at: DateTime<Utc>,
    /// The executor level (1..3) for `current_level`, 4 in the final round.
    pub level: i64,
    /// The escalation person being tried.
    pub escalation_index: i64,
    /// Since when.
    pub escalation_started_at: Option<DateTime<Utc>>,
}

/// A registered ticket that has never had a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnchainedTicket {
    /// The ticket.
    pub id: TicketId,
    /// Its tenant.
    pub tenant: String,
    /// Its category.
    pub category: Category,
}

/// What starting a chain found.
#[derive(Debug, Clone, PartialEq)]
pub enum ChainStart {
    /// Started; this node holds it.
    Started(Box<Chain>),
    /// The ticket already has a running chain (another node started it).
    Running(DialChainId),
    /// The ticket already had a chain and this is no restart.
    HadOne(DialChainId),
    /// The ticket is no longer registered (accepted, cancelled, ...).
    NotRegistered,
}

/// The longest a node may hold a chain without renewing.
pub const MAX_LEASE: Duration = Duration::hours(1);

impl Store {
    /// Starts the chain of `ticket` for `node` (held until `lease_until`), unless
    /// the ticket is no longer registered or already has a chain. With `restart`, a
    /// ticket whose chain ended (exhausted, say) gets a new one: a supervisor asked.
    #[allow(clippy::too_many_arguments)]
    pub async fn start_chain(
        &self,
        ticket: TicketId,
        plan: &serde_json::Value,
        policy: &serde_json::Value,
        phase: &str,
        node: &str,
        lease_until: DateTime<Utc>,
        restart: bool,
        now: DateTime<Utc>,
    ) -> Result<ChainStart, StoreError> {
        let (plan, policy) = (plan.to_string(), policy.to_string());
        dispatch!(
            self,
            start(
                ticket,
                &plan,
                &policy,
                phase,
                node,
                lease_until.min(now + MAX_LEASE),
                restart,
                now
            )
        )
    }

    /// Takes up to `limit` running chains for `node` until `lease_until`: those
    /// nobody holds and those whose node's lease lapsed, and with `own` (the node has
    /// just started) also those `node` held before (a restart under the same node id
    /// gets them back at once). Attempts of these chains that never reported back
    /// are settled as `unknown` (they count as made). Each chain comes with its
    /// attempts.
    pub async fn claim_chains(
        &self,
        node: &str,
        own: bool,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Chain>, StoreError> {
        dispatch!(
            self,
            claim(
                node,
                own,
                now,
                lease_until.min(now + MAX_LEASE),
                limit.clamp(1, 10_000)
            )
        )
    }

    /// Extends `node`'s lease on these chains; returns the ids it still holds (a
    /// chain missing from the answer was taken over or has ended).
    pub async fn renew_chain_leases(
        &self,
        node: &str,
        chains: &[DialChainId],
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<DialChainId>, StoreError> {
        if chains.is_empty() {
            return Ok(Vec::new());
        }
        dispatch!(
            self,
            renew(node, chains, lease_until.min(now + MAX_LEASE), now)
        )
    }

    /// Hands `node`'s chains back (the engine is stopping): any node may take
    /// them at once.
    pub async fn release_chains(
        &self,
        node: &str,
        chains: &[DialChainId],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if chains.is_empty() {
            return Ok(());
        }
        dispatch!(self, renew(node, chains, now, now)).map(|_| ())
    }

    /// Records where a running chain of `node` is.
    pub async fn record_chain_progress(
        &self,
        chain: DialChainId,
        node: &str,
        progress: &ChainProgress,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self, progress(chain, node, progress, now))
    }

    /// Writes attempts about to be placed, each only if its chain is still running
    /// and held by `node`; returns, for each, whether it was written. A call is
    /// placed only for an attempt written here.
    pub async fn begin_attempts(
        &self,
        node: &str,
        attempts: &[NewAttempt],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>, StoreError> {
        if attempts.is_empty() {
            return Ok(Vec::new());
        }
        dispatch!(self, begin_attempts(node, attempts, now))
    }

    /// Records what happened to attempt `seq` of `chain`.
    pub async fn update_attempt(
        &self,
        chain: DialChainId,
        seq: u32,
        update: &AttemptUpdate,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self, update_attempt(chain, seq, update, now))
    }

    /// Ends a running chain as `state` (exhausted, cancelled, or accepted outside
    /// the chain) with a note; `false` when it was not running any more.
    pub async fn end_chain(
        &self,
        chain: DialChainId,
        state: ChainState,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        if state == ChainState::Running {
            return Err(StoreError::invalid(
                "state",
                "a chain ends as accepted, exhausted or cancelled",
            ));
        }
        dispatch!(self, end(chain, state, note, now))
    }

    /// A supervisor has acted on an exhausted chain: it leaves the board.
    pub async fn acknowledge_chain(
        &self,
        chain: DialChainId,
        who: &str,
        now: DateTime<Utc>,
    ) -> Result<Chain, StoreError> {
        dispatch!(self, acknowledge(chain, who, now))?;
        self.chain(chain)
            .await?
            .ok_or_else(|| StoreError::not_found("chain", chain))
    }

    /// A chain with its attempts.
    pub async fn chain(&self, chain: DialChainId) -> Result<Option<Chain>, StoreError> {
        dispatch!(self, chain(chain))
    }

    /// Every chain of a ticket, newest first, with their attempts.
    pub async fn chains_of_ticket(&self, ticket: TicketId) -> Result<Vec<Chain>, StoreError> {
        dispatch!(self, of_ticket(ticket))
    }

    /// The chains supervisors must see, in `scope`: running ones and exhausted ones
    /// nobody has acted on, oldest first, with their attempts.
    pub async fn open_chains(&self, scope: &TenantScope) -> Result<Vec<Chain>, StoreError> {
        dispatch!(self, open(scope))
    }

    /// Registered tickets created since `since` that never had a chain, oldest
    /// first: the tickets a chain must start for (an engine that stopped between
    /// registering a ticket and starting its chain catches up here).
    pub async fn unchained_tickets(
        &self,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<UnchainedTicket>, StoreError> {
        dispatch!(self, unchained(since, limit.clamp(1, 1000)))
    }

    /// The running chain of each of these tickets whose ticket is no longer
    /// registered, with the ticket's status: chains to stop.
    pub async fn chains_of_moved_tickets(
        &self,
        chains: &[DialChainId],
    ) -> Result<Vec<(DialChainId, super::TicketStatus)>, StoreError> {
        if chains.is_empty() {
            return Ok(Vec::new());
        }
        dispatch!(self, moved(chains))
    }
}
