//! No toll fraud through callbacks: every callback the engine would schedule
//! (a resident's under the 5-minute rule, a staff member's from the dispatch line)
//! is checked here first, since it becomes a call through the paid trunk to a
//! number the caller's From header named.
//!
//! Owns the refusal rules and their memory: the number must match the dial plan
//! (`[security] callback_numbers` minus `callback_refused`: by default Russian
//! geographic and mobile numbers, premium 809/803 refused, international
//! refused); at most one callback per number is pending (within the callback
//! deadline); at most `callbacks_per_number_hour` per number an hour and
//! `callbacks_per_minute` in all. A refusal is logged, counted and published as
//! `callback.refused`. The tables are bounded.
//!
//! Sans-IO: time is passed in.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::json;

use super::control::CallControl;
use crate::phone::PhoneNumber;
use crate::store::DialKind;

/// Numbers remembered at most.
const MAX_NUMBERS: usize = 50_000;

/// What the callback guard remembers.
#[derive(Debug, Default)]
pub struct CallbackGuard {
    /// When each number's pending callback was scheduled.
    pending: HashMap<String, Instant>,
    /// Callbacks scheduled to each number in the last hour.
    recent: HashMap<String, VecDeque<Instant>>,
    /// Callbacks scheduled in the last minute, all numbers.
    minute: VecDeque<Instant>,
    /// Callbacks refused since start.
    pub(crate) refused: u64,
}

const HOUR: Duration = Duration::from_secs(3600);
const MINUTE: Duration = Duration::from_secs(60);

impl CallbackGuard {
    fn prune(&mut self, now: Instant, pending_for: Duration) {
        let old = |t: &Instant| now.saturating_duration_since(*t) >= HOUR;
        while self
            .minute
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= MINUTE)
        {
            self.minute.pop_front();
        }
        if self.pending.len() >= MAX_NUMBERS || self.recent.len() >= MAX_NUMBERS {
            self.pending
                .retain(|_, t| now.saturating_duration_since(*t) < pending_for);
            self.recent.retain(|_, list| {
                list.retain(|t| !old(t));
                !list.is_empty()
            });
        }
    }
}

impl CallControl {
    /// Whether a callback of `kind` to `phone` may be scheduled now; records it
    /// when it may. A refusal is logged, counted and published.
    pub(crate) fn callback_permitted(
        &mut self,
        now: Instant,
        phone: &PhoneNumber,
        kind: DialKind,
        tenant: Option<String>,
    ) -> bool {
        let security = &self.config.security;
        let pending_for = self.config.queue.callback_deadline.max(MINUTE);
        let (plan_ok, per_hour, per_minute) = (
            security.callback_plan.permits(phone.as_str()),
            security.callbacks_per_number_hour as usize,
            security.callbacks_per_minute as usize,
        );
        let guard = &mut self.callbacks;
        guard.prune(now, pending_for);
        let number = phone.as_str();
        let refusal = if !plan_ok {
            Some("the number is outside the callback dial plan")
        } else if guard
            .pending
            .get(number)
            .is_some_and(|t| now.saturating_duration_since(*t) < pending_for)
        {
            Some("a callback to this number is already pending")
        } else if guard.recent.get(number).is_some_and(|list| {
            list.iter()
                .filter(|t| now.saturating_duration_since(**t) < HOUR)
                .count()
                >= per_hour
        }) {
            Some("too many callbacks to this number this hour")
        } else if guard.minute.len() >= per_minute {
            Some("too many callbacks this minute")
        } else {
            None
        };
        if let Some(reason) = refusal {
            guard.refused = guard.refused.saturating_add(1);
            tracing::warn!(%phone, kind = kind.as_str(), reason, "callback refused");
            self.emit(
                "callback.refused",
                tenant,
                json!({ "phone": phone, "kind": kind.as_str(), "reason": reason }),
            );
            return false;
        }
        guard.pending.insert(number.to_owned(), now);
        let list = guard.recent.entry(number.to_owned()).or_default();
        list.retain(|t| now.saturating_duration_since(*t) < HOUR);
        list.push_back(now);
        guard.minute.push_back(now);
        true
    }
}
