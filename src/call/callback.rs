//! Calling residents and staff back: the dial jobs the 5-minute rule and the
//! dispatch line create.
//!
//! A claimed job waits for a free operator (callbacks are served before the
//! residents in the queue: they have a deadline), then runs as an
//! [operator-first](super::outbound::operator_first) call: the operator's
//! softphones ring with whom the engine will call and why, and the engine calls
//! the resident from the number the original call dialled (the tenant's own
//! number, or the citywide one for a caller of no known company) once the operator
//! answers. A resident who got through on their own meanwhile has their callbacks
//! dropped, here and in the store.

use std::time::Instant;

use super::control::{Action, CallControl, CallId};
use super::inbound::RingFailure;
use super::outbound::Errand;
use crate::store::DialJob;

impl CallControl {
    /// Starts a callback job with a free operator `ext`. `Err` when the operator
    /// cannot be rung (the job stays the caller's).
    pub(crate) fn start_callback(
        &mut self,
        now: Instant,
        job: &DialJob,
        ext: String,
    ) -> Result<(), RingFailure> {
        let briefing = self.briefings.get(&job.id).cloned();
        self.start_operator_first(now, Errand::Job(Box::new(job.clone()), briefing), ext)
    }

    /// Whether a callback job's original call was answered after all.
    pub(crate) fn callback_obsolete(&self, job: &DialJob) -> bool {
        job.kind == crate::store::DialKind::Callback
            && job
                .call_id
                .as_ref()
                .is_some_and(|id| self.callbacks_cancelled.contains_key(id))
    }

    /// The original call got through: its callback jobs held in memory are
    /// dropped, and the store is told to cancel them.
    pub(crate) fn cancel_callbacks(&mut self, now: Instant, call: &CallId) {
        self.callbacks_cancelled.insert(call.0.clone(), now);
        // Remember for as long as a job of the call could still arrive.
        let keep = self.config.queue.callback_deadline + crate::dialer::LEASE;
        self.callbacks_cancelled
            .retain(|_, at| now.saturating_duration_since(*at) <= keep);
        self.jobs.retain(|j| {
            !(j.kind == crate::store::DialKind::Callback && j.call_id.as_deref() == Some(&call.0))
        });
        self.act(Action::CancelJobs { call: call.clone() });
    }
}
