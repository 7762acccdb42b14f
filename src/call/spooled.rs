//! The call core's store work in the write-ahead spool ([`crate::store::spool`]):
//! which actions are kept there (journal rows, recordings, dial jobs and their
//! attempts, the follow-up calls' attempts with what the party answered,
//! cancellations, releases and at-risk marks), how they are written as JSON records, and the store
//! writer's use of the file: everything it holds back while the database is down
//! is in the spool, `fsync`ed, before the writer waits; the spool is emptied when
//! the database has taken it all, and replayed, in order, when the engine starts.
//!
//! Replays are idempotent: journal rows are upserts by call id, a recording row is
//! found again by its path, an attempt is refused once its job is no longer held
//! by this node, a replayed callback whose call already has one is skipped, and
//! cancelling, releasing and marking again change nothing.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::control::{Action, CallId};
use super::driver::CallStats;
use crate::phone::PhoneNumber;
use crate::store::spool::{Spool, SpoolError};
use crate::store::{CallRecord, DialAttemptOutcome, DialJobId, NewDialJob};

/// One action as the spool keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Spooled {
    /// [`Action::Journal`].
    Journal(Box<CallRecord>),
    /// [`Action::Recording`].
    Recording {
        call: String,
        tenant: Option<String>,
        path: PathBuf,
        duration_ms: u64,
        bytes: u64,
    },
    /// [`Action::ScheduleJob`].
    ScheduleJob {
        job: Box<NewDialJob>,
        origin: Option<PhoneNumber>,
    },
    /// [`Action::ReleaseJobs`].
    ReleaseJobs(Vec<DialJobId>),
    /// [`Action::CancelJobs`].
    CancelJobs { call: String },
    /// [`Action::MarkAtRisk`].
    MarkAtRisk(Vec<DialJobId>),
    /// [`Action::FollowUp`]: the job as claimed (a replay is refused once the job
    /// is no longer held by this node, so it is recorded once).
    FollowUp {
        job: Box<crate::store::DialJob>,
        outcome: DialAttemptOutcome,
        call: Option<String>,
        answer: Option<crate::dialer::follow_up::Answer>,
    },
    /// [`Action::JobAttempt`].
    JobAttempt {
        job: DialJobId,
        outcome: DialAttemptOutcome,
        call: Option<String>,
        retry_in_ms: u64,
    },
}

impl Spooled {
    /// The record of `action`, when it is store work the spool keeps.
    pub(crate) fn of(action: &Action) -> Option<Self> {
        Some(match action {
            Action::Journal(r) => Self::Journal(r.clone()),
            Action::Recording {
                call,
                tenant,
                path,
                duration,
                bytes,
            } => Self::Recording {
                call: call.0.clone(),
                tenant: tenant.clone(),
                path: path.clone(),
                duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
                bytes: *bytes,
            },
            Action::ScheduleJob { job, origin } => Self::ScheduleJob {
                job: job.clone(),
                origin: origin.clone(),
            },
            Action::ReleaseJobs(jobs) => Self::ReleaseJobs(jobs.clone()),
            Action::CancelJobs { call } => Self::CancelJobs {
                call: call.0.clone(),
            },
            Action::MarkAtRisk(jobs) => Self::MarkAtRisk(jobs.clone()),
            Action::JobAttempt {
                job,
                outcome,
                call,
                retry_in,
            } => Self::JobAttempt {
                job: *job,
                outcome: *outcome,
                call: call.as_ref().map(|c| c.0.clone()),
                retry_in_ms: u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX),
            },
            // The shared floor is re-read from the store, never replayed.
            Action::FollowUp {
                job,
                outcome,
                call,
                answer,
            } => Self::FollowUp {
                job: job.clone(),
                outcome: *outcome,
                call: call.as_ref().map(|c| c.0.clone()),
                answer: answer.clone(),
            },
            Action::Lookup { .. } | Action::Chain(_) | Action::Floor(_) => return None,
        })
    }

    /// The action again.
    pub(crate) fn into_action(self) -> Action {
        match self {
            Self::Journal(r) => Action::Journal(r),
            Self::Recording {
                call,
                tenant,
                path,
                duration_ms,
                bytes,
            } => Action::Recording {
                call: CallId(call),
                tenant,
                path,
                duration: Duration::from_millis(duration_ms),
                bytes,
            },
            Self::ScheduleJob { job, origin } => Action::ScheduleJob { job, origin },
            Self::ReleaseJobs(jobs) => Action::ReleaseJobs(jobs),
            Self::CancelJobs { call } => Action::CancelJobs { call: CallId(call) },
            Self::MarkAtRisk(jobs) => Action::MarkAtRisk(jobs),
            Self::FollowUp {
                job,
                outcome,
                call,
                answer,
            } => Action::FollowUp {
                job,
                outcome,
                call: call.map(CallId),
                answer,
            },
            Self::JobAttempt {
                job,
                outcome,
                call,
                retry_in_ms,
            } => Action::JobAttempt {
                job,
                outcome,
                call: call.map(CallId),
                retry_in: Duration::from_millis(retry_in_ms),
            },
        }
    }
}

/// The store writer's spool: the file (when it could be opened) and the
/// figures `/metrics` shows.
#[derive(Debug)]
pub(crate) struct WriterSpool {
    spool: Option<Spool>,
    stats: Arc<CallStats>,
    /// The spool refused a record since it was last emptied (logged once).
    full: bool,
}

impl WriterSpool {
    /// Opens the spool under `<data dir>/spool` and returns it with the actions a
    /// crash left in it, in order. A spool that cannot be opened is logged; the
    /// writer then keeps its work in memory only.
    pub(crate) fn open(
        data_dir: &std::path::Path,
        cap: u64,
        stats: Arc<CallStats>,
    ) -> (Self, Vec<Action>) {
        let (spool, payloads) = match Spool::open(&data_dir.join("spool"), cap) {
            Ok(opened) => opened,
            Err(e) => {
                tracing::error!(error = %e, "the write-ahead spool cannot be opened: store work waits in memory only while the database is down");
                return (
                    Self {
                        spool: None,
                        stats,
                        full: false,
                    },
                    Vec::new(),
                );
            }
        };
        let mut actions = Vec::with_capacity(payloads.len());
        for payload in payloads {
            match serde_json::from_slice::<Spooled>(&payload) {
                Ok(record) => actions.push(record.into_action()),
                Err(e) => {
                    tracing::error!(error = %e, "a spool record that cannot be read is skipped")
                }
            }
        }
        if !actions.is_empty() {
            tracing::warn!(
                spool = %spool.path().display(),
                actions = actions.len(),
                "store work spooled while the database was down is replayed"
            );
        }
        stats.spool_bytes.store(spool.bytes(), Ordering::Relaxed);
        (
            Self {
                spool: Some(spool),
                stats,
                full: false,
            },
            actions,
        )
    }

    /// Whether the spool holds records (new work then goes to it at once).
    pub(crate) fn active(&self) -> bool {
        self.spool.as_ref().is_some_and(|s| !s.is_empty())
    }

    /// Appends `action` when it is work the spool keeps.
    pub(crate) fn append(&mut self, action: &Action) {
        if let Some(record) = Spooled::of(action) {
            self.append_record(&record);
        }
    }

    fn append_record(&mut self, record: &Spooled) {
        let Some(spool) = self.spool.as_mut() else {
            return;
        };
        let payload = match serde_json::to_vec(record) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "store work cannot be written to the spool");
                return;
            }
        };
        match spool.append(&payload) {
            Ok(()) => {}
            Err(SpoolError::Full { bytes, cap }) => {
                self.stats.spool_full.fetch_add(1, Ordering::Relaxed);
                if !self.full {
                    self.full = true;
                    tracing::error!(
                        bytes,
                        cap,
                        "THE WRITE-AHEAD SPOOL IS FULL: further store work waits in memory only and is lost if the engine stops before the database returns"
                    );
                }
            }
            Err(e) => tracing::error!(error = %e, "store work cannot be written to the spool"),
        }
        self.stats
            .spool_bytes
            .store(spool.bytes(), Ordering::Relaxed);
    }

    /// Makes the appended records durable.
    pub(crate) fn sync(&mut self) {
        if let Some(spool) = self.spool.as_mut()
            && let Err(e) = spool.sync()
        {
            tracing::error!(error = %e, "the write-ahead spool cannot be synced");
        }
    }

    /// Empties the spool: the database has taken everything in it.
    pub(crate) fn clear(&mut self) {
        let Some(spool) = self.spool.as_mut() else {
            return;
        };
        if spool.is_empty() {
            return;
        }
        let records = spool.records();
        match spool.clear() {
            Ok(()) => {
                tracing::info!(records, "the database took the spooled store work");
                self.full = false;
            }
            Err(e) => tracing::error!(error = %e, "the write-ahead spool cannot be emptied"),
        }
        self.stats
            .spool_bytes
            .store(spool.bytes(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::{CallDirection, DialKind};

    #[test]
    fn spooled_actions_come_back_as_they_went_in() {
        let now = chrono::Utc::now();
        let row = CallRecord::offered("c1", CallDirection::Inbound, "+79120000001", "112", now);
        let job = NewDialJob::new(
            DialKind::Callback,
            PhoneNumber::parse("+79120000001").unwrap(),
            now,
            3,
        );
        let actions = [
            Action::Journal(Box::new(row.clone())),
            Action::ScheduleJob {
                job: Box::new(job),
                origin: None,
            },
            Action::JobAttempt {
                job: DialJobId(7),
                outcome: DialAttemptOutcome::Busy,
                call: Some(CallId("c2".into())),
                retry_in: Duration::from_secs(60),
            },
            Action::ReleaseJobs(vec![DialJobId(1), DialJobId(2)]),
            Action::FollowUp {
                job: Box::new(claimed_job(now)),
                outcome: DialAttemptOutcome::Answered,
                call: Some(CallId("c3".into())),
                answer: Some(crate::dialer::follow_up::Answer::Ratings {
                    csi: Some(5),
                    ces: None,
                    opt_out: false,
                }),
            },
        ];
        for action in actions {
            let text = serde_json::to_vec(&Spooled::of(&action).unwrap()).unwrap();
            let back: Spooled = serde_json::from_slice(&text).unwrap();
            assert_eq!(format!("{:?}", back.into_action()), format!("{action:?}"));
        }
    }

    fn claimed_job(now: chrono::DateTime<chrono::Utc>) -> crate::store::DialJob {
        crate::store::DialJob {
            id: DialJobId(9),
            kind: crate::store::DialKind::Survey,
            tenant: Some("etalon".into()),
            target: "+79120000001".into(),
            due_at: now,
            attempts_made: 0,
            max_attempts: 2,
            state: crate::store::DialJobState::Claimed,
            claimed_by: Some("node-a".into()),
            claimed_until: Some(now),
            outcome: None,
            ticket_id: Some(crate::store::TicketId(4)),
            call_id: None,
            origin_number: None,
            precedence: 4,
            deadline_at: None,
            quiet_hours: true,
            reach: None,
            outage_id: None,
            supplier_ticket_id: None,
            answer: None,
            at_risk_at: None,
            created_at: now,
            updated_at: now,
        }
    }
}
