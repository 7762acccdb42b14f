//! The dialer: persistent outbound dial jobs and the hand-off chains that survive a
//! restart.
//!
//! - [`chain`]: one ticket's hand-off chain as a sans-IO state machine;
//! - [`order`]: what the dialer and the call layer say about a chain's calls;
//! - [`message`]: what the informer says about a ticket;
//! - [`runner`]: the chains of this node, tied to the store, the bus and the calls;
//! - [`driver`]: the tokio task that runs them, and the handle the API uses;
//! - [`follow_up`], [`planner`], [`quiet_hours`]: which follow-up calls a ticket,
//!   a supplier hand-over or an outage needs, and when they may be made;
//! - [`briefing`], [`card`]: what the operator or the robot is told before a call;
//! - [`answers`]: writing what a follow-up call was answered;
//! - [`broadcast`]: starting an outage broadcast to a house's residents;
//!
//! This module itself owns the policy around the jobs the store keeps: which kinds
//! this engine runs (all of them: residents' and staff callbacks, status checks,
//! feedback surveys, supplier hand-overs and queries, outage broadcasts), claiming due jobs with a
//! lease so several nodes split the work and a crashed node's jobs come back,
//! renewing the lease of the jobs held in memory (and handing them back on
//! shutdown), what a SIP outcome counts as (busy, no answer, rejected, unreachable
//! and failed are different outcomes, DESIGN.md), when a call should fail over to another
//! trunk (5xx, 408, no answer at all; never 486, 480 or 603), and how an attempt
//! is written back.
//!
//! The call layer places the calls; this module decides what they mean.

use std::time::Duration;

pub mod answers;
pub mod briefing;
pub mod broadcast;
pub mod card;
pub mod chain;
pub mod driver;
pub mod follow_up;
pub mod message;
pub mod order;
pub mod planner;
pub mod quiet_hours;
pub mod runner;

use chrono::{DateTime, Utc};

use crate::store::{
    AfterAttempt, ClaimFor, Crew, DialAttemptOutcome, DialJob, DialJobId, DialKind, Store,
    StoreError, TenantScope,
};

/// The job kinds this engine runs: all of them.
pub const KINDS: &[DialKind] = DialKind::ALL;

/// How long a claimed job is ours before another node may take it.
pub const LEASE: Duration = Duration::from_secs(600);

/// How long a hand-off chain is its node's without renewing: a node that dies is
/// replaced by another within this (a restarting node takes its own back at once).
pub const CHAIN_LEASE: Duration = Duration::from_secs(60);

/// How often due jobs are claimed.
pub const POLL: Duration = Duration::from_secs(2);

/// How a SIP attempt at the far party ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    /// The final status from the far side or its provider (0 when none came).
    pub status: u16,
    /// A provisional with ringing (180/183) came first: the far end's phone rang,
    /// so a 408 or 480 is the person not answering, not the provider failing.
    pub rang: bool,
    /// No final response came at all.
    pub silence: Option<Silence>,
}

/// Why no final response came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// Timer B ran out.
    Timeout,
    /// The provider could not be reached (ICMP, TCP refused).
    Transport,
}

impl Ending {
    /// A final status after ringing or not.
    pub fn status(status: u16, rang: bool) -> Self {
        Self {
            status,
            rang,
            silence: None,
        }
    }

    /// No final response at all.
    pub fn silence(why: Silence, rang: bool) -> Self {
        Self {
            status: 0,
            rang,
            silence: Some(why),
        }
    }
}

/// What an attempt counts as (CHAINS.md, case 4): answered; busy (486, 600); no
/// answer (our ring timer, or 408/480 from the far end while ringing); rejected
/// (603); unreachable (404, 484, 604, 480 before any ringing); failed (5xx, a 408
/// or silence from the provider, transport errors, anything else).
pub fn outcome(ending: Ending) -> DialAttemptOutcome {
    if ending.silence.is_some() {
        return DialAttemptOutcome::Failed;
    }
    match ending.status {
        200..=299 => DialAttemptOutcome::Answered,
        486 | 600 => DialAttemptOutcome::Busy,
        603 => DialAttemptOutcome::Rejected,
        408 | 480 if ending.rang => DialAttemptOutcome::NoAnswer,
        480 | 404 | 484 | 604 => DialAttemptOutcome::Unreachable,
        _ => DialAttemptOutcome::Failed,
    }
}

/// Whether another trunk should be tried within the same attempt: the provider
/// failed (5xx, 408 before any ringing, no response at all), not the party. Busy,
/// 480 and 603 are the party's answer and never fail over.
pub fn fail_over(ending: Ending) -> bool {
    ending.silence.is_some()
        || (500..600).contains(&ending.status)
        || (ending.status == 408 && !ending.rang)
}

/// Claims up to `limit` due jobs of the kinds this engine runs.
pub async fn claim(
    store: &Store,
    node: &str,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<DialJob>, StoreError> {
    let lease = chrono::Duration::from_std(LEASE).unwrap_or_default();
    store
        .claim_due_dial_jobs_of(node, now, lease, limit, KINDS)
        .await
}

/// Claims up to `limit` due jobs of the kinds this engine runs that `crew` makes,
/// of `tenants` (a node claims operators' jobs up to its free operators, of the
/// tenants they serve, and robot calls up to its free channels:
/// [`crate::call::room`]).
pub async fn claim_for(
    store: &Store,
    node: &str,
    now: DateTime<Utc>,
    limit: i64,
    crew: Crew,
    tenants: &TenantScope,
) -> Result<Vec<DialJob>, StoreError> {
    let lease = chrono::Duration::from_std(LEASE).unwrap_or_default();
    store
        .claim_due_dial_jobs_by(node, now, lease, limit, KINDS, ClaimFor { crew, tenants })
        .await
}

/// Writes one attempt: a job answered is done (in the same transaction);
/// otherwise the next attempt is due
/// after `retry_in` (the store fails the job when its attempts run out).
pub async fn record(
    store: &Store,
    node: &str,
    job: DialJobId,
    outcome: DialAttemptOutcome,
    call_id: Option<&str>,
    retry_in: Duration,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if outcome == DialAttemptOutcome::Answered {
        // One transaction: nobody is called twice, whenever the engine dies.
        store
            .record_dial_attempt(job, node, outcome, call_id, AfterAttempt::Done, now)
            .await?;
        return Ok(());
    }
    let retry = now + chrono::Duration::from_std(retry_in).unwrap_or_default();
    store
        .record_dial_attempt(
            job,
            node,
            outcome,
            call_id,
            AfterAttempt::RetryAt(retry),
            now,
        )
        .await
        .map(|_| ())
}

/// The resident got through on their own: their pending callbacks are cancelled
/// (every one of them, in one statement, whatever else the store holds).
pub async fn cancel_callbacks_of(
    store: &Store,
    call_id: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    store
        .cancel_dial_jobs_of_call(call_id, DialKind::Callback, "answered-before", now)
        .await
        .map(|_| ())
}

/// How often the leases of held jobs are renewed (well inside [`LEASE`]).
pub const RENEW: Duration = Duration::from_secs(120);

/// Keeps the jobs this node holds (waiting for an operator, or being dialled)
/// claimed for another [`LEASE`], so no node — this one included — claims them
/// again while they are in hand.
pub async fn renew(
    store: &Store,
    node: &str,
    jobs: &[DialJobId],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let lease = chrono::Duration::from_std(LEASE).unwrap_or_default();
    store
        .renew_dial_job_leases(node, jobs, now + lease, now)
        .await
        .map(|_| ())
}

/// Hands held jobs back (the engine is stopping): due at once for any node.
pub async fn release(
    store: &Store,
    node: &str,
    jobs: &[DialJobId],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    store
        .renew_dial_job_leases(node, jobs, now, now)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_kept_apart() {
        use DialAttemptOutcome::*;
        let cases = [
            (Ending::status(200, true), Answered),
            (Ending::status(486, false), Busy),
            (Ending::status(600, true), Busy),
            (Ending::status(603, true), Rejected),
            (Ending::status(480, true), NoAnswer),
            (Ending::status(408, true), NoAnswer),
            (Ending::status(480, false), Unreachable),
            (Ending::status(404, false), Unreachable),
            (Ending::status(484, false), Unreachable),
            (Ending::status(604, false), Unreachable),
            (Ending::status(503, false), Failed),
            (Ending::status(408, false), Failed),
            (Ending::status(488, false), Failed),
            (Ending::silence(Silence::Timeout, false), Failed),
            (Ending::silence(Silence::Transport, false), Failed),
        ];
        for (ending, expected) in cases {
            assert_eq!(outcome(ending), expected, "{ending:?}");
        }
    }

    #[test]
    fn failover_only_when_the_provider_failed() {
        assert!(fail_over(Ending::status(503, false)));
        assert!(fail_over(Ending::status(500, true)));
        assert!(fail_over(Ending::status(408, false)));
        assert!(fail_over(Ending::silence(Silence::Timeout, false)));
        assert!(fail_over(Ending::silence(Silence::Transport, false)));
        assert!(
            !fail_over(Ending::status(408, true)),
            "the person's own ring timer"
        );
        for party in [486, 600, 480, 603, 404] {
            assert!(!fail_over(Ending::status(party, false)), "{party}");
        }
    }
}
