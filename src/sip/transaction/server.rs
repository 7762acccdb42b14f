//! The non-INVITE server transaction (RFC 3261 §17.2.2, Figure 8).
//!
//! Retransmitted requests are absorbed until the TU responds, then answered with the
//! last response. After the final response, Timer J (64·T1 on UDP, zero on TCP) keeps
//! the transaction around to absorb retransmissions. A request the TU never answers
//! is dropped after 64·T1 (not an RFC timer: it only bounds memory).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Timer, TimerSettings, TimerTable, TransactionEvent};
use crate::sip::wire::{Request, Response};

/// States of Figure 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for the TU.
    Trying,
    /// A provisional response was sent.
    Proceeding,
    /// The final response was sent.
    Completed,
    /// Done.
    Terminated,
}

/// A non-INVITE server transaction.
#[derive(Debug)]
pub struct ServerNonInvite {
    state: State,
    request: Request,
    reliable: bool,
    settings: TimerSettings,
    timers: TimerTable,
    last_response: Option<Bytes>,
    out: VecDeque<Bytes>,
    events: VecDeque<TransactionEvent>,
}

impl ServerNonInvite {
    /// Creates the transaction for a new request.
    pub fn new(now: Instant, request: Request, reliable: bool, settings: TimerSettings) -> Self {
        let mut timers = TimerTable::default();
        timers.start(Timer::Abandon, now + settings.t1x64());
        Self {
            state: State::Trying,
            request,
            reliable,
            settings,
            timers,
            last_response: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The request that created the transaction.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Whether the transaction can be forgotten.
    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// A retransmission of the request.
    pub fn handle_request(&mut self, _now: Instant, _request: &Request) {
        if matches!(self.state, State::Proceeding | State::Completed) {
            if let Some(last) = &self.last_response {
                self.out.push_back(last.clone());
            }
        }
    }

    /// The TU's response.
    pub fn send_response(&mut self, now: Instant, response: &Response) {
        if matches!(self.state, State::Completed | State::Terminated) {
            return;
        }
        let bytes = response.to_bytes();
        self.last_response = Some(bytes.clone());
        self.out.push_back(bytes);
        if response.is_provisional() {
            self.state = State::Proceeding;
            return;
        }
        self.state = State::Completed;
        self.timers.clear();
        let wait = if self.reliable {
            Duration::ZERO
        } else {
            self.settings.t1x64()
        };
        self.timers.start(Timer::J, now + wait);
        if self.reliable {
            self.handle_timeout(now);
        }
    }

    /// Deadlines that have passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_expired(now) {
            if matches!(timer, Timer::J | Timer::Abandon) {
                self.terminate();
            }
        }
    }

    /// The transport failed to deliver the response.
    pub fn handle_transport_error(&mut self) {
        if self.state != State::Terminated {
            self.events.push_back(TransactionEvent::TransportError);
            self.terminate();
        }
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timers.clear();
        self.events.push_back(TransactionEvent::Terminated);
    }

    /// Bytes to send to the response target.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.out.pop_front()
    }

    /// Something for the TU.
    pub fn poll_event(&mut self) -> Option<TransactionEvent> {
        self.events.pop_front()
    }

    /// When [`ServerNonInvite::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::tests::{request, response_to};
    use crate::sip::wire::Method;

    #[test]
    fn absorbs_until_answered_then_repeats_the_answer_until_timer_j() {
        let t0 = Instant::now();
        let req = request(Method::Options);
        let mut tx = ServerNonInvite::new(t0, req.clone(), false, TimerSettings::default());
        tx.handle_request(t0, &req);
        assert!(tx.poll_transmit().is_none(), "Trying absorbs");
        tx.send_response(t0, &response_to(&req, 200));
        assert!(tx.poll_transmit().is_some());
        tx.handle_request(t0, &req);
        assert!(
            tx.poll_transmit().is_some(),
            "Completed repeats the final response"
        );
        assert_eq!(
            tx.poll_timeout(),
            Some(t0 + Duration::from_secs(32)),
            "Timer J = 64*T1"
        );
        tx.handle_timeout(t0 + Duration::from_secs(32));
        assert!(tx.is_terminated());
    }

    #[test]
    fn timer_j_is_zero_on_tcp_and_unanswered_requests_are_dropped() {
        let t0 = Instant::now();
        let req = request(Method::Bye);
        let mut tcp = ServerNonInvite::new(t0, req.clone(), true, TimerSettings::default());
        tcp.send_response(t0, &response_to(&req, 200));
        assert!(tcp.is_terminated());
        let mut ignored = ServerNonInvite::new(t0, req, false, TimerSettings::default());
        ignored.handle_timeout(t0 + Duration::from_secs(32));
        assert!(ignored.is_terminated());
    }
}
