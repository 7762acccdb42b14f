//! The dialer: persistent outbound dial jobs and the hand-off chains that survive a
//! restart.
//!
//! - [`chain`]: one ticket's hand-off chain as a sans-IO state machine;
//!
//! This module itself owns the policy around the jobs the store keeps: which kinds
//! this engine runs (callbacks for the 5-minute rule and staff callbacks; status
//! checks and surveys are stored but not yet run), claiming due jobs with a
//! lease so several nodes split the work and a crashed node's jobs come back,
//! renewing the lease of the jobs held in memory (and handing them back on
//! shutdown), what a SIP outcome counts as (busy, no answer, rejected, unreachable
//! and failed are different outcomes, DESIGN.md), when a call should fail over to another
//! trunk (5xx, 408, no answer at all; never 486, 480 or 603), and how an attempt
//! is written back.
//!
//! The call layer places the calls; this module decides what they mean.

use std::time::Duration;

pub mod chain;

use chrono::{DateTime, Utc};

use crate::store::{
    AfterAttempt, DialAttemptOutcome, DialJob, DialJobId, DialJobState, DialKind, Store, StoreError,
};

/// The job kinds this engine runs.
pub const KINDS: [DialKind; 2] = [DialKind::Callback, DialKind::StaffCallback];

/// How long a claimed job is ours before another node may take it.
pub const LEASE: Duration = Duration::from_secs(600);

/// How often due jobs are claimed.
pub const POLL: Duration = Duration::from_secs(2);

/// How a SIP attempt at the far party ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A final status from the far side (or its provider).
    Status(u16),
    /// No response at all.
    Timeout,
    /// The provider could not be reached.
    Unreachable,
}

/// What an attempt counts as.
pub fn outcome(ending: Ending) -> DialAttemptOutcome {
    match ending {
        Ending::Timeout => DialAttemptOutcome::NoAnswer,
        Ending::Unreachable => DialAttemptOutcome::Unreachable,
        Ending::Status(200..=299) => DialAttemptOutcome::Answered,
        Ending::Status(486 | 600) => DialAttemptOutcome::Busy,
        // 408 from the far end is its ring timer running out.
        Ending::Status(408) => DialAttemptOutcome::NoAnswer,
        Ending::Status(603) => DialAttemptOutcome::Rejected,
        // 480: the subscriber's phone is off or out of coverage.
        Ending::Status(480 | 404 | 484 | 604) => DialAttemptOutcome::Unreachable,
        Ending::Status(_) => DialAttemptOutcome::Failed,
    }
}

/// Whether another trunk should be tried: the provider failed, not the party.
pub fn fail_over(ending: Ending) -> bool {
    match ending {
        Ending::Timeout | Ending::Unreachable => true,
        Ending::Status(status) => status == 408 || (500..600).contains(&status),
    }
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
        .claim_due_dial_jobs_of(node, now, lease, limit, &KINDS)
        .await
}

/// Writes one attempt: a job answered is done; otherwise the next attempt is due
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
        store
            .record_dial_attempt(job, node, outcome, call_id, AfterAttempt::Hold, now)
            .await?;
        store
            .complete_dial_job(job, DialJobState::Done, outcome.as_str(), now)
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
        assert_eq!(outcome(Ending::Status(486)), DialAttemptOutcome::Busy);
        assert_eq!(
            outcome(Ending::Status(480)),
            DialAttemptOutcome::Unreachable
        );
        assert_eq!(outcome(Ending::Status(408)), DialAttemptOutcome::NoAnswer);
        assert_eq!(outcome(Ending::Status(603)), DialAttemptOutcome::Rejected);
        assert_eq!(
            outcome(Ending::Status(404)),
            DialAttemptOutcome::Unreachable
        );
        assert_eq!(outcome(Ending::Status(503)), DialAttemptOutcome::Failed);
        assert_eq!(outcome(Ending::Timeout), DialAttemptOutcome::NoAnswer);
        assert_eq!(
            outcome(Ending::Unreachable),
            DialAttemptOutcome::Unreachable
        );
    }

    #[test]
    fn failover_only_when_the_provider_failed() {
        assert!(fail_over(Ending::Status(503)));
        assert!(fail_over(Ending::Status(408)));
        assert!(fail_over(Ending::Timeout));
        for party in [486, 480, 603, 404] {
            assert!(!fail_over(Ending::Status(party)), "{party}");
        }
    }
}
