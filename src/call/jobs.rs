//! The dialer's jobs in the call core: held from their claim until they run.
//!
//! A job an operator makes (a callback, a staff callback, a supplier hand-over or
//! query, a status check by operator) waits in `jobs` for a free operator and is
//! offered by precedence and deadline (`CallControl::dispatch_jobs`, called by
//! the dispatch round between the classes of work it orders). A robot call (a
//! survey, a broadcast, a status check by the informer) waits in `robots` until the
//! pacer gives a token and a channel is free beyond those kept for residents'
//! incoming calls (`CallControl::dispatch_robots`). A held job whose deadline is
//! near (three quarters of its time gone, by default) raises
//! `dial.deadline-at-risk` for supervisors once. Jobs the dialer no longer needs
//! (the ticket was closed meanwhile) are dropped without a call.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use super::control::{Action, CallControl, CallId};
use super::inbound::RingFailure;
use crate::config::Reach;
use crate::dialer::briefing::Briefing;
use crate::store::{DialJob, DialJobId, DialKind};

impl CallControl {
    /// A dial job claimed from the store, with what the operator's card or the
    /// robot says about it.
    ///
    /// A job this core already holds (its lease lapsed and the store handed it out
    /// again) is not taken twice, and a callback for a call that got through in the
    /// meantime is dropped (the store cancels it).
    pub fn handle_claimed_job(
        &mut self,
        now: Instant,
        job: DialJob,
        briefing: Option<Arc<Briefing>>,
    ) {
        let held = self.jobs.iter().any(|j| j.id == job.id)
            || self.robots.iter().any(|(j, _)| j.id == job.id)
            || self.calls.values().any(|c| {
                c.flow
                    .as_ref()
                    .and_then(|f| f.errand().job())
                    .is_some_and(|j| j.id == job.id)
            });
        if held {
            tracing::debug!(job = %job.id, "dial job already held; ignoring the second claim");
        } else if self.callback_obsolete(&job) {
            tracing::info!(job = %job.id, call = ?job.call_id, "callback no longer needed: the caller got through");
            if let Some(call) = job.call_id.clone() {
                self.act(Action::CancelJobs { call: CallId(call) });
            }
        } else if let (true, Some(briefing)) = (robot_job(&job), briefing.clone()) {
            self.robots.push_back((job, briefing));
            self.wants_dispatch = true;
        } else {
            if let Some(b) = briefing {
                self.briefings.insert(job.id, b);
            }
            self.jobs.push_back(job);
            self.wants_dispatch = true;
        }
        self.process(now);
    }

    /// A dial job (callback) claimed from the store, with no briefing.
    pub fn handle_dial_job(&mut self, now: Instant, job: DialJob) {
        self.handle_claimed_job(now, job, None);
    }

    /// The dialer cancelled these jobs (their ticket was done or closed): those
    /// still held are dropped; a call already under way finishes.
    pub fn drop_jobs(&mut self, now: Instant, ids: &[DialJobId]) {
        self.jobs.retain(|j| !ids.contains(&j.id));
        self.robots.retain(|(j, _)| !ids.contains(&j.id));
        for id in ids {
            self.briefings.remove(id);
        }
        self.process(now);
    }

    /// Offers the held jobs whose precedence is in `precedence` to free operators,
    /// most urgent first (precedence, then deadline or due time); `false` when media
    /// ran out and the round must stop.
    pub(crate) fn dispatch_jobs(
        &mut self,
        now: Instant,
        unreachable: &mut Vec<String>,
        precedence: RangeInclusive<i64>,
    ) -> bool {
        self.jobs
            .make_contiguous()
            .sort_by_key(|j| (j.precedence, j.deadline_at.unwrap_or(j.due_at), j.id.0));
        let jobs = std::mem::take(&mut self.jobs);
        let mut kept = std::collections::VecDeque::with_capacity(jobs.len());
        let mut out_of_media = false;
        for job in jobs {
            if out_of_media || !precedence.contains(&job.precedence) {
                kept.push_back(job);
                continue;
            }
            if self.callback_obsolete(&job) {
                if let Some(call) = job.call_id.clone() {
                    self.act(Action::CancelJobs { call: CallId(call) });
                }
                continue;
            }
            let waiting_caller = job
                .call_id
                .as_ref()
                .is_some_and(|id| self.original_still_waiting(id));
            if waiting_caller {
                // The caller is still on the line in the queue: serve them there.
                kept.push_back(job);
                continue;
            }
            let city = self
                .briefings
                .get(&job.id)
                .and_then(|b| b.ticket.as_ref())
                .map(|t| t.city.clone());
            loop {
                let Some(ext) =
                    self.operators
                        .pick(job.tenant.as_deref(), city.as_deref(), unreachable)
                else {
                    // Nobody for this job now; a job of another tenant may still
                    // find someone.
                    kept.push_back(job);
                    break;
                };
                match self.start_callback(now, &job, ext.clone()) {
                    Ok(()) => break,
                    Err(RingFailure::NoContact) => unreachable.push(ext),
                    Err(RingFailure::NoMedia) => {
                        out_of_media = true;
                        kept.push_back(job);
                        break;
                    }
                }
            }
        }
        // Jobs given back meanwhile (an operator who did not take one) keep their
        // place by deadline at the next round.
        kept.extend(self.jobs.drain(..));
        self.jobs = kept;
        !out_of_media
    }

    /// Starts the robot calls the pacer and the free channels allow.
    pub(crate) fn dispatch_robots(&mut self, now: Instant) {
        while !self.robots.is_empty() && !self.draining {
            if self.free_channels() <= self.config.follow_ups.inbound_reserve as usize {
                // A call that ends runs the dispatch again.
                return;
            }
            if !self.pacer.take(now) {
                return;
            }
            let Some((job, briefing)) = self.robots.pop_front() else {
                return;
            };
            self.start_robot(now, job, briefing);
        }
    }

    /// When the pacer lets the next held robot call start.
    pub(crate) fn next_robot_start(&self, now: Instant) -> Option<Instant> {
        if self.robots.is_empty()
            || self.free_channels() <= self.config.follow_ups.inbound_reserve as usize
        {
            return None;
        }
        Some(self.pacer.next_token(now))
    }

    /// Channels free for a new call: the trunks' channels (or the engine's own
    /// limit, whichever is lower) less the calls in progress.
    pub(crate) fn free_channels(&self) -> usize {
        let limit = self.config.sip.max_concurrent_calls;
        let trunks: Option<usize> = self
            .config
            .trunks
            .iter()
            .map(|t| t.channels.map(|c| c as usize))
            .sum();
        let channels = trunks.map_or(limit, |t| t.min(limit));
        channels.saturating_sub(self.active_calls())
    }

    /// Raises `dial.deadline-at-risk` once for each held job whose deadline is
    /// near and that has not been made yet.
    pub(crate) fn check_deadlines(&mut self, now: Instant) {
        let wall = self.wall(now);
        let share = self.config.follow_ups.at_risk_share;
        let mut flagged = Vec::new();
        for job in self.jobs.iter_mut() {
            let (Some(deadline), None) = (job.deadline_at, job.at_risk_at) else {
                continue;
            };
            if wall < crate::store::dial_jobs::at_risk_from(job.created_at, deadline, share) {
                continue;
            }
            job.at_risk_at = Some(wall);
            flagged.push(job.clone());
        }
        if flagged.is_empty() {
            return;
        }
        for job in &flagged {
            tracing::warn!(job = %job.id, kind = %job.kind, target = %job.target, deadline = ?job.deadline_at, "a dial job's deadline is at risk: no operator free");
            self.emit(
                "dial.deadline-at-risk",
                job.tenant.clone(),
                json!({
                    "job": job.id,
                    "purpose": job.kind,
                    "target": job.target,
                    "deadline": job.deadline_at,
                    "call": job.call_id,
                    "operator_ready": self.operators.any_ready(job.tenant.as_deref(), None),
                }),
            );
        }
        self.act(Action::MarkAtRisk(flagged.iter().map(|j| j.id).collect()));
    }

    /// When the next held job's deadline comes at risk.
    pub(crate) fn next_deadline_check(&self) -> Option<Instant> {
        let share = self.config.follow_ups.at_risk_share;
        self.jobs
            .iter()
            .filter(|j| j.at_risk_at.is_none())
            .filter_map(|j| {
                Some(self.instant_at(crate::store::dial_jobs::at_risk_from(
                    j.created_at,
                    j.deadline_at?,
                    share,
                )))
            })
            .min()
    }
}

/// Whether the job is a robot call (no operator on the line).
fn robot_job(job: &DialJob) -> bool {
    match job.kind {
        DialKind::Survey | DialKind::Broadcast => true,
        DialKind::StatusCheck => job.reach == Some(Reach::Informer),
        _ => false,
    }
}
