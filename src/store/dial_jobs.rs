//! Persistent outbound dial jobs: the dialer's calls that must survive a restart.
//!
//! A job is one party to call (a resident's callback, a status check, a survey, a
//! staff callback), due at a time, with a budget of attempts. Hand-off chains keep
//! their own calls ([`chains`](super::chains)). The dialer lists due jobs, **claims** one (an atomic state
//! transition with a lease, so with several engine nodes on PostgreSQL exactly one
//! node dials it; a node that dies loses its lease and the job becomes due again),
//! records the outcome of each attempt (busy, no answer, rejected, unreachable and
//! failed are kept apart), and either schedules the next attempt or completes the job.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::backend::{dispatch, per_backend};
use super::directory::TenantScope;
use super::ids::{DialJobId, OutageId, SupplierTicketId, TicketId};
use super::{Store, StoreError, page_bounds, text_enum};
use crate::config::Reach;
use crate::phone::PhoneNumber;

per_backend!("sql/dial_jobs.rs");

text_enum! {
    /// What a dial job is for.
    pub enum DialKind {
        /// Calling back a resident who waited too long or hung up (Rules №416 §13).
        Callback = "callback",
        /// Asking the executor for the ticket's status.
        StatusCheck = "status-check",
        /// Asking the resident for feedback (CSI by keypad).
        Survey = "survey",
        /// Calling back a staff member who called the dispatch line.
        StaffCallback = "staff-callback",
        /// Handing a ticket over to a resource supplier's dispatcher.
        SupplierHandoff = "supplier-handoff",
        /// Asking a resource supplier how a ticket handed to them stands.
        SupplierQuery = "supplier-query",
        /// Telling a house's residents about an outage.
        Broadcast = "broadcast",
    }
}

impl DialKind {
    /// The scheduler's order (lower first): residents' callbacks have the legal
    /// 10-minute deadline, staff callbacks a target; a supplier must get its ticket
    /// before anyone asks how it stands; surveys and broadcasts wait for everything
    /// else.
    pub fn precedence(self) -> i64 {
        match self {
            Self::Callback => 0,
            Self::StaffCallback => 1,
            Self::SupplierHandoff => 2,
            Self::StatusCheck | Self::SupplierQuery => 3,
            Self::Survey => 4,
            Self::Broadcast => 5,
        }
    }

    /// Whether an operator makes the call (else it is a robot call, or
    /// depends on the job's `reach`).
    pub fn needs_operator(self) -> bool {
        matches!(
            self,
            Self::Callback | Self::StaffCallback | Self::SupplierHandoff | Self::SupplierQuery
        )
    }
}

/// Who makes a job's call: an operator (rung first, the engine dials when they
/// answer) or the robot (a message and the keypad). A node claims each kind only
/// up to what it has free for it ([`Store::claim_due_dial_jobs_by`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Crew {
    /// Callbacks, staff callbacks, supplier calls and status checks by operator.
    Operator,
    /// Surveys, broadcasts and status checks by the informer.
    Robot,
}

/// Whose jobs a claim takes: those `crew` makes, of `tenants` (jobs of no tenant
/// always).
#[derive(Debug, Clone, Copy)]
pub struct ClaimFor<'a> {
    /// Operators' jobs or robot calls.
    pub crew: Crew,
    /// Of which tenants.
    pub tenants: &'a TenantScope,
}

impl Crew {
    /// Who makes a job of `kind` reached by `reach` (a status check goes either way;
    /// with no reach stored it is an operator's).
    pub fn of(kind: DialKind, reach: Option<Reach>) -> Self {
        match kind {
            DialKind::Survey | DialKind::Broadcast => Self::Robot,
            DialKind::StatusCheck if reach == Some(Reach::Informer) => Self::Robot,
            _ => Self::Operator,
        }
    }

    /// The same rule over the row `j` of `dial_jobs`, for a claim's filter.
    fn predicate(self) -> &'static str {
        const ROBOT: &str = "(j.kind IN ('survey', 'broadcast') \
             OR (j.kind = 'status-check' AND j.reach = 'informer'))";
        const OPERATOR: &str = "NOT (j.kind IN ('survey', 'broadcast') \
             OR (j.kind = 'status-check' AND COALESCE(j.reach, '') = 'informer'))";
        match self {
            Self::Robot => ROBOT,
            Self::Operator => OPERATOR,
        }
    }
}

text_enum! {
    /// Where a job stands.
    pub enum DialJobState {
        /// Waiting until it is due.
        Pending = "pending",
        /// A node is dialling it (until its lease expires).
        Claimed = "claimed",
        /// Finished with success.
        Done = "done",
        /// Attempts exhausted or given up.
        Failed = "failed",
        /// No longer needed (the resident got through meanwhile).
        Cancelled = "cancelled",
    }
}

text_enum! {
    /// The outcome of one attempt.
    pub enum DialAttemptOutcome {
        /// The party answered.
        Answered = "answered",
        /// Busy (486/600).
        Busy = "busy",
        /// Rang out.
        NoAnswer = "no-answer",
        /// Declined (603).
        Rejected = "rejected",
        /// Unreachable (480, switched off).
        Unreachable = "unreachable",
        /// Technical failure (5xx, timeout).
        Failed = "failed",
    }
}

/// Input for [`Store::create_dial_job`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewDialJob {
    /// What it is for.
    pub kind: DialKind,
    /// Tenant code, when it concerns one.
    pub tenant: Option<String>,
    /// Who to call.
    pub target: PhoneNumber,
    /// When the first attempt is due.
    pub due_at: DateTime<Utc>,
    /// Attempts before giving up.
    pub max_attempts: u32,
    /// The ticket it concerns.
    pub ticket_id: Option<TicketId>,
    /// The call it follows up (the abandoned call of a callback).
    pub call_id: Option<String>,
    /// When the call must have been made by (a callback's 10 minutes, a staff
    /// callback's target).
    pub deadline_at: Option<DateTime<Utc>>,
    /// Whether it waits out the quiet hours of its tenant's city.
    pub quiet_hours: bool,
    /// How the party is reached, for kinds that may go either way (status checks).
    pub reach: Option<Reach>,
    /// The outage it broadcasts.
    pub outage_id: Option<OutageId>,
    /// The supplier hand-over it is about.
    pub supplier_ticket_id: Option<SupplierTicketId>,
}

impl NewDialJob {
    /// A job of `kind` calling `target` from `due_at`, with nothing else set.
    pub fn new(
        kind: DialKind,
        target: PhoneNumber,
        due_at: DateTime<Utc>,
        max_attempts: u32,
    ) -> Self {
        Self {
            kind,
            tenant: None,
            target,
            due_at,
            max_attempts,
            ticket_id: None,
            call_id: None,
            deadline_at: None,
            quiet_hours: false,
            reach: None,
            outage_id: None,
            supplier_ticket_id: None,
        }
    }
}

/// When a job made between `created` and `deadline` is at risk: after `share` of
/// that time.
pub fn at_risk_from(created: DateTime<Utc>, deadline: DateTime<Utc>, share: f64) -> DateTime<Utc> {
    let span = (deadline - created).num_milliseconds().max(0) as f64;
    created + chrono::Duration::milliseconds((span * share) as i64)
}

/// A dial job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialJob {
    /// Row id.
    pub id: DialJobId,
    /// What it is for.
    pub kind: DialKind,
    /// Tenant code.
    pub tenant: Option<String>,
    /// Who to call.
    pub target: String,
    /// When the next attempt is due.
    pub due_at: DateTime<Utc>,
    /// Attempts made so far.
    pub attempts_made: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// Where it stands.
    pub state: DialJobState,
    /// The node holding the claim.
    pub claimed_by: Option<String>,
    /// When the claim lapses.
    pub claimed_until: Option<DateTime<Utc>>,
    /// Outcome of the last attempt, or the final outcome.
    pub outcome: Option<String>,
    /// The ticket.
    pub ticket_id: Option<TicketId>,
    /// The call it follows up.
    pub call_id: Option<String>,
    /// The number the original call dialled (callbacks go out from it).
    pub origin_number: Option<String>,
    /// The scheduler's order ([`DialKind::precedence`]).
    pub precedence: i64,
    /// When the call must have been made by.
    pub deadline_at: Option<DateTime<Utc>>,
    /// Whether it waits out the quiet hours.
    pub quiet_hours: bool,
    /// How the party is reached (status checks).
    pub reach: Option<Reach>,
    /// The outage it broadcasts.
    pub outage_id: Option<OutageId>,
    /// The supplier hand-over it is about.
    pub supplier_ticket_id: Option<SupplierTicketId>,
    /// What the party answered (a status, a rating, the supplier's reference).
    pub answer: Option<String>,
    /// When supervisors were told its deadline is at risk.
    pub at_risk_at: Option<DateTime<Utc>>,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// Last changed at.
    pub updated_at: DateTime<Utc>,
}

/// Filter for listing jobs.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DialJobFilter {
    /// Only this state.
    pub state: Option<DialJobState>,
    /// Only this kind.
    pub kind: Option<DialKind>,
    /// Only this ticket.
    pub ticket_id: Option<TicketId>,
    /// Rows to skip.
    pub offset: Option<i64>,
    /// Page size (1..=500, default 50).
    pub limit: Option<i64>,
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AfterAttempt {
    /// Try again at this time (the claim is released).
    RetryAt(DateTime<Utc>),
    /// Keep the claim: the caller completes the job itself.
    Hold,
    /// The job is done with this attempt (the party answered): the attempt and
    /// the job's end are written in one transaction, so a crash between the two
    /// can never have the party called again.
    Done,
}

impl Store {
    /// Creates a pending job.
    pub async fn create_dial_job(
        &self,
        new: &NewDialJob,
        now: DateTime<Utc>,
    ) -> Result<DialJob, StoreError> {
        self.create_dial_job_from(new, None, now).await
    }

    /// Creates a pending job that follows up a call to `origin` (the number the
    /// original call dialled).
    pub async fn create_dial_job_from(
        &self,
        new: &NewDialJob,
        origin: Option<&PhoneNumber>,
        now: DateTime<Utc>,
    ) -> Result<DialJob, StoreError> {
        if new.max_attempts == 0 {
            return Err(StoreError::invalid("max_attempts", "must be at least 1"));
        }
        let origin = origin.map(PhoneNumber::as_str);
        dispatch!(self, create_job(new, origin, now))
    }

    /// Cancels the pending or claimed jobs of `kind` that follow up `call_id`, with
    /// the final outcome `outcome`; returns how many were cancelled.
    pub async fn cancel_dial_jobs_of_call(
        &self,
        call_id: &str,
        kind: DialKind,
        outcome: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        dispatch!(self, cancel_of_call(call_id, kind, outcome, now))
    }

    /// How many jobs of `kind` (in any state) follow up `call_id`: a replay of
    /// spooled work creates a call's callback only when it has none.
    pub async fn dial_jobs_of_call(
        &self,
        call_id: &str,
        kind: DialKind,
    ) -> Result<u64, StoreError> {
        dispatch!(self, count_of_call(call_id, kind))
    }

    /// Extends the lease of jobs `node` holds until `until` (a node renews the jobs
    /// it keeps waiting for a free operator). With `until` at or before now the
    /// jobs are handed back: due at once for any node. Jobs no longer claimed by
    /// `node` are left alone; returns how many were changed.
    pub async fn renew_dial_job_leases(
        &self,
        node: &str,
        ids: &[DialJobId],
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        dispatch!(self, renew_leases(node, ids, until, now))
    }

    /// Hands back every job `node` holds: due at once for any node. A node calls
    /// it when it starts, so the jobs a crash (a SIGKILL) left claimed under its
    /// stable id are taken up again at once, not after their lease. Returns how
    /// many were handed back.
    pub async fn release_node_dial_jobs(
        &self,
        node: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        dispatch!(self, release_node(node, now))
    }

    /// A job by id.
    pub async fn dial_job(&self, id: DialJobId) -> Result<Option<DialJob>, StoreError> {
        dispatch!(self, job(id))
    }

    /// Jobs that are due at `now`: pending ones whose time has come and claimed ones
    /// whose lease lapsed (their node died), earliest first.
    pub async fn due_dial_jobs(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<DialJob>, StoreError> {
        dispatch!(self, due_jobs(now, limit.clamp(1, 1000)))
    }

    /// Claims one due job for `node` until `now + lease`. `None` when another node
    /// claimed it first or it is no longer due.
    pub async fn claim_dial_job(
        &self,
        id: DialJobId,
        node: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<DialJob>, StoreError> {
        dispatch!(self, claim_job(id, node, now, now + lease))
    }

    /// Claims up to `limit` due jobs for `node` in one step (`FOR UPDATE SKIP LOCKED`
    /// on PostgreSQL, so nodes polling together split the work instead of waiting).
    pub async fn claim_due_dial_jobs(
        &self,
        node: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<DialJob>, StoreError> {
        self.claim_due_dial_jobs_of(node, now, lease, limit, &[])
            .await
    }

    /// Like [`claim_due_dial_jobs`](Self::claim_due_dial_jobs), only jobs of `kinds`
    /// (all kinds when empty): a node claims only what it knows how to run.
    pub async fn claim_due_dial_jobs_of(
        &self,
        node: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
        kinds: &[DialKind],
    ) -> Result<Vec<DialJob>, StoreError> {
        dispatch!(
            self,
            claim_due(node, now, now + lease, limit.clamp(1, 1000), kinds, None)
        )
    }

    /// Like [`claim_due_dial_jobs_of`](Self::claim_due_dial_jobs_of), only the jobs
    /// `whose` names: a node claims operators' jobs up to its free operators, of
    /// the tenants they serve, and robot calls up to its free channels.
    pub async fn claim_due_dial_jobs_by(
        &self,
        node: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
        kinds: &[DialKind],
        whose: ClaimFor<'_>,
    ) -> Result<Vec<DialJob>, StoreError> {
        dispatch!(
            self,
            claim_due(
                node,
                now,
                now + lease,
                limit.clamp(1, 1000),
                kinds,
                Some(whose)
            )
        )
    }

    /// Records one attempt of a job claimed by `node`, then retries or holds.
    pub async fn record_dial_attempt(
        &self,
        id: DialJobId,
        node: &str,
        outcome: DialAttemptOutcome,
        call_id: Option<&str>,
        after: AfterAttempt,
        now: DateTime<Utc>,
    ) -> Result<DialJob, StoreError> {
        dispatch!(self, record_attempt(id, node, outcome, call_id, after, now))
    }

    /// Finishes a job: `Done`, `Failed` or `Cancelled`, with a final outcome text.
    pub async fn complete_dial_job(
        &self,
        id: DialJobId,
        state: DialJobState,
        outcome: &str,
        now: DateTime<Utc>,
    ) -> Result<DialJob, StoreError> {
        if matches!(state, DialJobState::Pending | DialJobState::Claimed) {
            return Err(StoreError::invalid(
                "state",
                "a job completes as done, failed or cancelled",
            ));
        }
        dispatch!(self, complete_job(id, state, outcome, now))
    }

    /// Jobs visible in `scope`, newest first.
    pub async fn dial_jobs(
        &self,
        scope: &TenantScope,
        filter: &DialJobFilter,
    ) -> Result<super::Page<DialJob>, StoreError> {
        let (offset, limit) = page_bounds(filter.offset, filter.limit);
        dispatch!(self, list_jobs(scope, filter, offset, limit))
    }
}
