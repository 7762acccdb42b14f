//! The calls of tickets' hand-off chains, as the call core receives them from the
//! dialer.
//!
//! An order reaches the person operator-first or by the informer. An
//! operator-first order waits here for a free operator, behind the residents in the
//! queue (they are served first: a hand-off never leaves a resident waiting past
//! the 5-minute rule), for at most its `operator_wait`; then the informer calls the
//! person instead, so a busy floor never stops a chain. An operator who misses the
//! call hands the order back here with the time it has left. The dialer's `Stop`
//! reaches the order wherever it is: waiting here (it is dropped and reported
//! cancelled), ringing, or answered.

use std::time::Instant;

use super::control::CallControl;
use super::outbound::{Errand, Input};
use crate::config::Reach;
use crate::dialer::chain::StopWhy;
use crate::dialer::order::{AttemptRef, ChainEvent, HandoffOrder, ToCalls};
use crate::store::AttemptOutcome;

/// An operator-first order waiting for a free operator.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    /// The order.
    pub order: Box<HandoffOrder>,
    /// When it stops waiting and goes to the informer.
    pub deadline: Instant,
}

impl CallControl {
    /// What the dialer tells the call core about a chain's calls.
    pub fn handle_chain(&mut self, now: Instant, message: ToCalls) {
        match message {
            ToCalls::Place(order) => self.place_handoff(now, order),
            ToCalls::Stop { attempt, why } => self.stop_handoff(now, attempt, why),
            ToCalls::Decided { attempt, won } => {
                if let Some(key) = self.call_of_attempt(attempt) {
                    self.with_call(now, key, |cc, call| {
                        cc.run_flow(now, call, Input::Decided(won));
                    });
                }
            }
        }
        self.process(now);
    }

    fn place_handoff(&mut self, now: Instant, order: Box<HandoffOrder>) {
        if self.call_of_attempt(order.attempt).is_some()
            || self
                .handoffs
                .iter()
                .any(|h| h.order.attempt == order.attempt)
        {
            tracing::warn!(attempt = %order.attempt, "the same chain attempt was ordered twice; ignored");
            return;
        }
        if self.draining {
            // The engine is stopping: no new calls. The attempt counts as made and
            // the dialer goes on after the restart.
            self.report(
                Some(order.attempt),
                ChainEvent::Ended {
                    outcome: AttemptOutcome::Cancelled,
                    sip_status: 503,
                },
            );
            return;
        }
        match order.reach {
            Reach::Informer => self.start_informer(now, order),
            Reach::OperatorFirst => {
                let deadline = now + order.operator_wait;
                self.handoffs.push_back(Held { order, deadline });
                self.wants_dispatch = true;
            }
        }
    }

    fn stop_handoff(&mut self, now: Instant, attempt: AttemptRef, why: StopWhy) {
        if let Some(i) = self
            .handoffs
            .iter()
            .position(|h| h.order.attempt == attempt)
        {
            self.handoffs.remove(i);
            self.report(
                Some(attempt),
                ChainEvent::Ended {
                    outcome: AttemptOutcome::Cancelled,
                    sip_status: 0,
                },
            );
            return;
        }
        match self.call_of_attempt(attempt) {
            Some(key) => self.with_call(now, key, |cc, call| {
                cc.run_flow(now, call, Input::Stop(why));
            }),
            None => tracing::debug!(%attempt, "stop for a chain attempt no call holds (it ended)"),
        }
    }

    /// The live call of a chain attempt.
    pub(crate) fn call_of_attempt(&self, attempt: AttemptRef) -> Option<u64> {
        self.calls
            .iter()
            .find(|(_, c)| {
                !c.reported && c.flow.as_ref().and_then(|f| f.attempt()) == Some(attempt)
            })
            .map(|(k, _)| *k)
    }

    /// Operator-first orders whose wait ran out go to the informer.
    pub(crate) fn expire_held_handoffs(&mut self, now: Instant) {
        while let Some(i) = self.handoffs.iter().position(|h| h.deadline <= now) {
            let Some(held) = self.handoffs.remove(i) else {
                break;
            };
            tracing::info!(attempt = %held.order.attempt, "no operator free in time: the informer calls instead");
            self.start_informer(now, held.order);
        }
    }

    /// When the next held order stops waiting.
    pub(crate) fn next_held_deadline(&self) -> Option<Instant> {
        self.handoffs.iter().map(|h| h.deadline).min()
    }

    /// Offers held hand-offs of emergency tickets (or of the others) to free
    /// operators, oldest first; `false` when media ran out and the round must stop.
    pub(crate) fn dispatch_handoffs(
        &mut self,
        now: Instant,
        unreachable: &mut Vec<String>,
        emergencies: bool,
    ) -> bool {
        let held = std::mem::take(&mut self.handoffs);
        let mut kept = std::collections::VecDeque::with_capacity(held.len());
        let mut out_of_media = false;
        for h in held {
            let emergency = h.order.card.category == crate::store::Category::Emergency;
            if out_of_media || emergency != emergencies {
                kept.push_back(h);
                continue;
            }
            loop {
                let Some(ext) = self.operators.pick(
                    Some(&h.order.card.tenant),
                    Some(&h.order.card.city),
                    unreachable,
                ) else {
                    kept.push_back(h);
                    break;
                };
                let errand = Errand::Handoff {
                    order: h.order.clone(),
                    deadline: h.deadline,
                };
                match self.start_operator_first(now, errand, ext.clone()) {
                    Ok(()) => break,
                    Err(super::inbound::RingFailure::NoContact) => unreachable.push(ext),
                    Err(super::inbound::RingFailure::NoMedia) => {
                        out_of_media = true;
                        kept.push_back(h);
                        break;
                    }
                }
            }
        }
        kept.extend(self.handoffs.drain(..));
        self.handoffs = kept;
        !out_of_media
    }

    /// Offers people the informer put through (keypad 0) to free operators.
    pub(crate) fn dispatch_transfers(&mut self, now: Instant, unreachable: &[String]) {
        let waiting: Vec<u64> = self.transfers.drain(..).collect();
        for key in waiting {
            let (tenant, city) = match self.calls.get(&key) {
                Some(c) if !c.reported => (c.tenant.clone(), c.city.clone()),
                _ => continue,
            };
            match self
                .operators
                .pick(tenant.as_deref(), city.as_deref(), unreachable)
            {
                Some(ext) => self.with_call(now, key, |cc, call| {
                    cc.run_flow(now, call, Input::Operator(ext));
                }),
                None => self.transfers.push_back(key),
            }
        }
    }
}
