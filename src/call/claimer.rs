//! Claiming due dial jobs for the call core: in the background, a batch at a
//! time, no more of each crew than the core has room for ([`super::room`]), each briefed ([`crate::dialer::briefing`]) before it reaches the core;
//! jobs postponed by quiet hours or no longer needed never do. One claim runs at a
//! time, and another follows at once when a batch comes back full, so a fast
//! broadcast is not held to a batch per poll.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Utc;
use tokio::sync::{Notify, mpsc};

use super::room::Room;
use crate::store::{Crew, Store, TenantScope};

/// The most dial jobs the core holds before it stops claiming more (the others
/// stay due in the store, for this node's next poll or another node).
pub(crate) const MAX_HELD_JOBS: usize = 256;

/// The most jobs claimed at once (another claim follows at once when a batch
/// comes back full).
const CLAIM_BATCH: usize = 64;

/// A claimed job and what its call needs to know.
pub(crate) type Claimed = (
    crate::store::DialJob,
    Option<Arc<crate::dialer::briefing::Briefing>>,
);

/// Claims due dial jobs in the background and briefs them; they arrive on `jobs`.
pub(crate) struct Claimer {
    store: Store,
    node: String,
    config: Arc<crate::config::Config>,
    prompts: crate::dialer::runner::PromptCheck,
    jobs: mpsc::UnboundedSender<Claimed>,
    /// A claim is under way (one at a time, so the core never holds more than
    /// [`MAX_HELD_JOBS`] plus one batch).
    busy: Arc<AtomicBool>,
    /// Told when a claim came back full.
    more: Arc<Notify>,
}

impl Claimer {
    /// A claimer for `node`; briefed jobs go to `jobs`.
    pub(crate) fn new(
        store: Store,
        node: String,
        config: Arc<crate::config::Config>,
        prompts: crate::dialer::runner::PromptCheck,
        jobs: mpsc::UnboundedSender<Claimed>,
    ) -> Self {
        Self {
            store,
            node,
            config,
            prompts,
            jobs,
            busy: Arc::new(AtomicBool::new(false)),
            more: Arc::new(Notify::new()),
        }
    }

    /// Notified when a claim came back full and more jobs are due now.
    pub(crate) fn more(&self) -> Arc<Notify> {
        self.more.clone()
    }

    /// Claims up to `room` jobs of each crew (at most a batch of each) unless a
    /// claim is under way.
    pub(crate) fn claim(&self, room: Room) {
        let wanted = [
            (
                Crew::Operator,
                room.operator_jobs.min(CLAIM_BATCH),
                room.operator_tenants.clone(),
            ),
            (
                Crew::Robot,
                room.robot_jobs.min(CLAIM_BATCH),
                TenantScope::All,
            ),
        ];
        if room.is_empty() || self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let (store, node, config, prompts, jobs) = (
            self.store.clone(),
            self.node.clone(),
            self.config.clone(),
            self.prompts.clone(),
            self.jobs.clone(),
        );
        let (busy, more) = (self.busy.clone(), self.more.clone());
        tokio::spawn(async move {
            let mut full = false;
            for (crew, limit, tenants) in wanted {
                if limit == 0 {
                    continue;
                }
                let claimed = crate::dialer::claim_for(
                    &store,
                    &node,
                    Utc::now(),
                    limit as i64,
                    crew,
                    &tenants,
                )
                .await;
                let claimed = match claimed {
                    Ok(claimed) => claimed,
                    Err(e) => {
                        tracing::warn!(error = %e, ?crew, "cannot claim dial jobs");
                        continue;
                    }
                };
                full |= claimed.len() >= limit;
                Self::brief_all(&store, &node, &config, &prompts, &jobs, claimed).await;
            }
            busy.store(false, Ordering::Release);
            if full {
                more.notify_one();
            }
        });
    }

    /// Briefs each claimed job and sends those to call to the core.
    async fn brief_all(
        store: &Store,
        node: &str,
        config: &crate::config::Config,
        prompts: &crate::dialer::runner::PromptCheck,
        jobs: &mpsc::UnboundedSender<Claimed>,
        claimed: Vec<crate::store::DialJob>,
    ) {
        for job in claimed {
            let id = job.id;
            let briefed = crate::dialer::briefing::brief(
                store,
                node,
                &config.media.language,
                &**prompts,
                &config.follow_ups.quiet_hours,
                job,
                Utc::now(),
            )
            .await;
            match briefed {
                Ok(crate::dialer::briefing::Claimed::Call(job, briefing)) => {
                    let _ = jobs.send((*job, briefing));
                }
                Ok(crate::dialer::briefing::Claimed::Postponed(job, until)) => {
                    tracing::info!(job = %job.id, kind = %job.kind, %until, "quiet hours in the city: the call waits for the morning");
                }
                Ok(crate::dialer::briefing::Claimed::Void(job, why)) => {
                    tracing::info!(job = %job.id, kind = %job.kind, %why, "nothing left to call about: job cancelled");
                    let _ = store
                        .complete_dial_job(
                            job.id,
                            crate::store::DialJobState::Cancelled,
                            "not-needed",
                            Utc::now(),
                        )
                        .await;
                }
                Err(e) => {
                    // Handed back: another poll (of this node or another) tries again.
                    tracing::warn!(job = %id, error = %e, "cannot brief a dial job; handing it back");
                    let _ = crate::dialer::release(store, node, &[id], Utc::now()).await;
                }
            }
        }
    }
}
