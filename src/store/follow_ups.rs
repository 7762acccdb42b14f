//! Follow-up calls in the store: what the follow-up planner reads to decide which
//! status checks, feedback surveys and supplier calls a ticket needs; the one
//! transaction that writes what such a call brought (the attempt, the answer, the
//! line in the ticket's history, a status the executor reported, the resident's
//! ratings, the supplier's next call, the next check); residents who asked not to
//! be surveyed; and outage broadcasts with their progress.
//!
//! The planner never plans twice: the schema allows one open status check per
//! ticket, one survey per ticket ever, one open call per supplier hand-over and one
//! call per number and outage, and planning inserts with `ON CONFLICT DO NOTHING`,
//! so two nodes planning the same ticket at once make one job.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::backend::{dispatch, per_backend};
use super::dial_jobs::{DialAttemptOutcome, DialJob, DialKind, NewDialJob};
use super::ids::{DialJobId, EmployeeId, OutageId, SupplierTicketId, TicketId};
use super::journal::SurveyMetric;
use super::tickets::{Category, SupplierStatus, Ticket, TicketStatus};
use super::{Store, StoreError};
use crate::phone::PhoneNumber;

per_backend!("sql/follow_ups.rs");

/// A ticket as the follow-up planner reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketFollowUp {
    /// The ticket.
    pub ticket: TicketId,
    /// Its registration number.
    pub number: String,
    /// Tenant code.
    pub tenant: String,
    /// The time zone of the tenant's city (quiet hours).
    pub time_zone: Tz,
    /// Emergency, planned or paid.
    pub category: Category,
    /// Where it stands.
    pub status: TicketStatus,
    /// The executor's name.
    pub executor_name: Option<String>,
    /// The executor's first phone.
    pub executor_phone: Option<String>,
    /// The resident's phone.
    pub caller_phone: Option<String>,
    /// When it was first accepted (or taken in progress).
    pub accepted_at: Option<DateTime<Utc>>,
    /// When it was last reported done.
    pub done_at: Option<DateTime<Utc>>,
    /// Status checks planned for it so far, open or finished.
    pub status_checks: i64,
    /// Whether one is pending or being made.
    pub open_status_check: bool,
    /// Whether a survey was ever planned for it.
    pub survey_planned: bool,
    /// Whether the resident asked not to be surveyed.
    pub caller_opted_out: bool,
}

/// A hand-over to a resource supplier as the planner reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct SupplierFollowUp {
    /// The hand-over.
    pub supplier_ticket: SupplierTicketId,
    /// The ticket it came from.
    pub ticket: TicketId,
    /// Its registration number.
    pub number: String,
    /// Tenant code.
    pub tenant: String,
    /// The time zone of the tenant's city.
    pub time_zone: Tz,
    /// The ticket's category.
    pub category: Category,
    /// The ticket's status.
    pub ticket_status: TicketStatus,
    /// The supplier's name.
    pub supplier_name: String,
    /// The supplier's dispatch phone.
    pub dispatch_phone: Option<String>,
    /// Where the hand-over stands.
    pub status: SupplierStatus,
    /// When the supplier is to be asked again.
    pub recheck_at: Option<DateTime<Utc>>,
    /// Hand-over calls planned so far.
    pub handoff_calls: i64,
    /// Hand-over calls answered.
    pub handoff_answered: i64,
    /// Status queries planned so far.
    pub queries: i64,
    /// The open call about it, if one is pending or being made: its id and due time.
    pub open_call: Option<(DialJobId, DateTime<Utc>)>,
}

/// What one attempt of a follow-up job brought, written in one transaction by
/// [`Store::record_follow_up`].
#[derive(Debug, Clone)]
pub struct FollowUpResult {
    /// How the attempt ended.
    pub outcome: DialAttemptOutcome,
    /// The call.
    pub call_id: Option<String>,
    /// When the next attempt is due, if the job goes on (ignored once answered or
    /// out of attempts).
    pub retry_at: DateTime<Utc>,
    /// What the party answered (`done`, `in-progress`, `cannot`, `csi=4 ces=5`,
    /// `no-input`, ...): the job is done with it. `None` for an attempt that did
    /// not reach the party.
    pub answer: Option<String>,
    /// A line for the ticket's history (actor `engine`).
    pub note: Option<String>,
    /// A status the party reported, applied when the ticket may move to it.
    pub move_to: Option<TicketStatus>,
    /// The resident's ratings.
    pub ratings: Vec<(SurveyMetric, i64)>,
    /// The resident asked not to be surveyed again.
    pub opt_out: bool,
    /// The job planned once this one is over (answered or out of attempts): the
    /// next status check.
    pub next: Option<NewDialJob>,
    /// For a supplier call: when the supplier is to be asked next, if the hand-over
    /// is still open and nobody set a later time.
    pub supplier_recheck_at: Option<DateTime<Utc>>,
}

impl FollowUpResult {
    /// An attempt that ended with `outcome`, nothing else said.
    pub fn attempt(
        outcome: DialAttemptOutcome,
        call_id: Option<String>,
        retry_at: DateTime<Utc>,
    ) -> Self {
        Self {
            outcome,
            call_id,
            retry_at,
            answer: None,
            note: None,
            move_to: None,
            ratings: Vec::new(),
            opt_out: false,
            next: None,
            supplier_recheck_at: None,
        }
    }
}

/// What [`Store::record_follow_up`] wrote.
#[derive(Debug, Clone)]
pub struct FollowUpRecorded {
    /// The job as it is now.
    pub job: DialJob,
    /// Whether the job is over (answered, or out of attempts).
    pub ended: bool,
    /// The ticket, when the party's answer moved its status.
    pub moved: Option<Ticket>,
    /// The job planned after it.
    pub next: Option<DialJob>,
}

/// How an outage broadcast stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BroadcastProgress {
    /// The outage.
    pub outage: OutageId,
    /// Numbers to call.
    pub total: i64,
    /// Numbers called at least once.
    pub called: i64,
    /// Numbers that answered and heard the notice.
    pub answered: i64,
    /// Numbers whose last try was busy.
    pub busy: i64,
    /// Numbers whose last try rang out.
    pub no_answer: i64,
    /// Numbers given up on (every try failed or went unanswered).
    pub failed: i64,
    /// Numbers not yet tried or due again.
    pub waiting: i64,
    /// Numbers no longer called (the outage was withdrawn).
    pub cancelled: i64,
}

impl BroadcastProgress {
    /// Whether every number has been dealt with.
    pub fn finished(&self) -> bool {
        self.waiting == 0
    }
}

/// Input for [`Store::start_broadcast`].
#[derive(Debug, Clone)]
pub struct NewBroadcast {
    /// The outage.
    pub outage: OutageId,
    /// Whether it rings through quiet hours.
    pub urgent: bool,
    /// When the first calls are due.
    pub due_at: DateTime<Utc>,
    /// Tries per number.
    pub attempts: u32,
}

/// Whose ratings to read.
#[derive(Debug, Clone, Copy)]
pub(in crate::store) enum RatingsOf {
    /// Those given for one ticket.
    Ticket(TicketId),
    /// Those of one executor's work.
    Executor(EmployeeId),
}

impl Store {
    /// Open tickets (accepted, in progress) and done ones changed since `since`,
    /// or exactly `tickets` when given, as the follow-up planner reads them; at most
    /// `limit`, most recently changed first.
    pub async fn ticket_follow_ups(
        &self,
        since: DateTime<Utc>,
        tickets: Option<&[TicketId]>,
        limit: i64,
    ) -> Result<Vec<TicketFollowUp>, StoreError> {
        dispatch!(
            self,
            ticket_follow_ups(since, tickets, limit.clamp(1, 2000))
        )
    }

    /// Open hand-overs to resource suppliers (pending or handed over), or exactly
    /// those of `tickets` when given.
    pub async fn supplier_follow_ups(
        &self,
        tickets: Option<&[TicketId]>,
        limit: i64,
    ) -> Result<Vec<SupplierFollowUp>, StoreError> {
        dispatch!(self, supplier_follow_ups(tickets, limit.clamp(1, 2000)))
    }

    /// Plans follow-up jobs; those already planned (see the module doc) are skipped.
    /// Returns the jobs made.
    pub async fn plan_dial_jobs(
        &self,
        jobs: &[NewDialJob],
        now: DateTime<Utc>,
    ) -> Result<Vec<DialJob>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        dispatch!(self, plan_jobs(jobs, now))
    }

    /// Cancels the open follow-up jobs (status checks, supplier calls) of tickets
    /// that no longer need them: status checks of tickets done, closed or
    /// cancelled, supplier calls of hand-overs done or cancelled or of tickets
    /// closed or cancelled, hand-over calls of hand-overs no longer pending.
    /// Returns the jobs cancelled (a node holding one drops it).
    pub async fn cancel_stale_follow_ups(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<DialJobId>, StoreError> {
        dispatch!(self, cancel_stale(now))
    }

    /// Hands a claimed job back without counting an attempt, due at `until` (the
    /// city's quiet hours, no trunk capacity).
    pub async fn postpone_dial_job(
        &self,
        id: DialJobId,
        node: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        dispatch!(self, postpone(id, node, until, now))
    }

    /// Marks the jobs waiting unclaimed in the store (no node had anyone free to
    /// make them) whose deadline is at risk (`share` of the time from creation to
    /// deadline gone), once across the nodes; returns those marked now, for the
    /// caller to tell supervisors.
    pub async fn mark_unclaimed_at_risk(
        &self,
        share: f64,
        now: DateTime<Utc>,
    ) -> Result<Vec<UnclaimedAtRisk>, StoreError> {
        dispatch!(self, mark_unclaimed_at_risk(share, now))
    }

    /// Marks when supervisors were told the deadline of `jobs` is at risk.
    pub async fn mark_at_risk(
        &self,
        jobs: &[DialJobId],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if jobs.is_empty() {
            return Ok(());
        }
        dispatch!(self, mark_at_risk(jobs, now))
    }

    /// Writes one attempt of a follow-up job claimed by `node` and everything it
    /// brought, in one transaction: the attempt; the job done with the answer, or
    /// due again, or failed when out of attempts; the history line; the status the
    /// party reported (when the ticket may move there); the ratings and the
    /// opt-out; the supplier hand-over's last call and next re-check; and, once the
    /// job is over, the next job. Nothing is half-written.
    pub async fn record_follow_up(
        &self,
        id: DialJobId,
        node: &str,
        result: &FollowUpResult,
        now: DateTime<Utc>,
    ) -> Result<FollowUpRecorded, StoreError> {
        for (metric, score) in &result.ratings {
            if !(1..=5).contains(score) {
                return Err(StoreError::invalid(
                    "score",
                    format!("{metric} takes 1..=5, not {score}"),
                ));
            }
        }
        let recorded = dispatch!(self, record_follow_up(id, node, result, now))?;
        if let Some(ticket) = &recorded.moved {
            self.publish_status(ticket);
        }
        Ok(recorded)
    }

    /// An operator's record of what the party of an operator-first follow-up said
    /// (a status check's answer): the job keeps the answer, the ticket's history
    /// gets the line, and the ticket moves to `move_to` when it may, in one
    /// transaction. Returns the job and the ticket as it is now.
    pub async fn answer_follow_up(
        &self,
        job: DialJobId,
        answer: &str,
        move_to: Option<TicketStatus>,
        actor: &str,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<(DialJob, Option<Ticket>), StoreError> {
        let (job, ticket, moved) = dispatch!(
            self,
            answer_follow_up(job, answer, move_to, actor, note, now)
        )?;
        if let (Some(t), true) = (&ticket, moved) {
            self.publish_status(t);
        }
        Ok((job, ticket))
    }

    /// The ratings given for `ticket`, in the order given.
    pub async fn survey_scores(
        &self,
        ticket: TicketId,
    ) -> Result<Vec<(SurveyMetric, i64)>, StoreError> {
        dispatch!(self, survey_scores(RatingsOf::Ticket(ticket)))
    }

    /// The ratings residents gave the work of `executor` (the ticket's executor
    /// when the rating was given), in the order given.
    pub async fn executor_scores(
        &self,
        executor: EmployeeId,
    ) -> Result<Vec<(SurveyMetric, i64)>, StoreError> {
        dispatch!(self, survey_scores(RatingsOf::Executor(executor)))
    }

    /// Whether `phone` asked not to be surveyed.
    pub async fn opted_out_of_surveys(&self, phone: &PhoneNumber) -> Result<bool, StoreError> {
        dispatch!(self, opted_out(phone.as_str()))
    }

    /// Starts (or widens) an outage broadcast: one job per distinct contact phone of
    /// the outage's houses not called for it yet, in one transaction; the outage
    /// is marked broadcast (and urgent or not). Returns the progress.
    pub async fn start_broadcast(
        &self,
        new: &NewBroadcast,
        now: DateTime<Utc>,
    ) -> Result<BroadcastProgress, StoreError> {
        if new.attempts == 0 {
            return Err(StoreError::invalid("attempts", "must be at least 1"));
        }
        dispatch!(self, start_broadcast(new, now))?;
        self.broadcast_progress(new.outage).await
    }

    /// How the broadcast of `outage` stands.
    pub async fn broadcast_progress(
        &self,
        outage: OutageId,
    ) -> Result<BroadcastProgress, StoreError> {
        dispatch!(self, broadcast_progress(outage))
    }

    /// The progress of every broadcast with numbers still waiting, or finished
    /// since `since`, in `scope`.
    pub async fn broadcasts(
        &self,
        scope: &super::TenantScope,
        since: DateTime<Utc>,
    ) -> Result<Vec<(BroadcastProgress, String)>, StoreError> {
        dispatch!(self, broadcasts(scope, since))
    }
}

/// A job waiting unclaimed whose deadline came at risk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnclaimedAtRisk {
    /// The job.
    pub job: DialJobId,
    /// Its tenant.
    pub tenant: Option<String>,
    /// What it is for.
    pub kind: DialKind,
    /// Whom it calls.
    pub target: String,
    /// Its deadline.
    pub deadline: DateTime<Utc>,
    /// The call it follows up.
    pub call_id: Option<String>,
}
