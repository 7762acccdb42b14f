//! The non-INVITE client transaction (RFC 3261 §17.1.2, Figure 6).
//!
//! Timer E retransmits on unreliable transports, doubling from T1 up to T2 (and at T2
//! once a provisional response has arrived); Timer F gives up after 64·T1. After the
//! final response, Timer K (T4 on UDP, zero on TCP) absorbs retransmissions.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Timer, TimerSettings, TimerTable, TransactionEvent};
use crate::sip::wire::{Request, Response};

/// States of Figure 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Request sent, nothing heard.
    Trying,
    /// A provisional response arrived.
    Proceeding,
    /// The final response arrived.
    Completed,
    /// Done.
    Terminated,
}

/// A non-INVITE client transaction.
#[derive(Debug)]
pub struct ClientNonInvite {
    state: State,
    request: Request,
    request_bytes: Bytes,
    reliable: bool,
    settings: TimerSettings,
    timers: TimerTable,
    interval_e: Duration,
    out: VecDeque<Bytes>,
    events: VecDeque<TransactionEvent>,
}

impl ClientNonInvite {
    /// Starts the transaction: the request is queued for sending now.
    pub fn new(now: Instant, request: Request, reliable: bool, settings: TimerSettings) -> Self {
        let request_bytes = request.to_bytes();
        let mut timers = TimerTable::default();
        if !reliable {
            timers.start(Timer::E, now + settings.t1);
        }
        timers.start(Timer::F, now + settings.t1x64());
        Self {
            state: State::Trying,
            out: VecDeque::from([request_bytes.clone()]),
            request,
            request_bytes,
            reliable,
            settings,
            timers,
            interval_e: settings.t1,
            events: VecDeque::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The request this transaction sent.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Whether the transaction can be forgotten.
    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// A response matched to this transaction.
    pub fn handle_response(&mut self, now: Instant, response: Response) {
        match (self.state, response.status) {
            (State::Trying | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
                self.events.push_back(TransactionEvent::Response(response));
            }
            (State::Trying | State::Proceeding, _) => {
                self.state = State::Completed;
                self.timers.clear();
                let wait = if self.reliable {
                    Duration::ZERO
                } else {
                    self.settings.t4
                };
                self.timers.start(Timer::K, now + wait);
                self.events.push_back(TransactionEvent::Response(response));
                if self.reliable {
                    self.handle_timeout(now);
                }
            }
            _ => {}
        }
    }

    /// Deadlines that have passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                Timer::E if matches!(self.state, State::Trying | State::Proceeding) => {
                    self.out.push_back(self.request_bytes.clone());
                    self.interval_e = if self.state == State::Proceeding {
                        self.settings.t2
                    } else {
                        (self.interval_e * 2).min(self.settings.t2)
                    };
                    self.timers.start(Timer::E, now + self.interval_e);
                }
                Timer::F if matches!(self.state, State::Trying | State::Proceeding) => {
                    self.events.push_back(TransactionEvent::Timeout);
                    self.terminate();
                }
                Timer::K => self.terminate(),
                _ => {}
            }
        }
    }

    /// The transport failed to deliver the request.
    pub fn handle_transport_error(&mut self) {
        if matches!(self.state, State::Trying | State::Proceeding) {
            self.events.push_back(TransactionEvent::TransportError);
            self.terminate();
        }
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timers.clear();
        self.events.push_back(TransactionEvent::Terminated);
    }

    /// Bytes to send to the transaction's target.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.out.pop_front()
    }

    /// Something for the TU.
    pub fn poll_event(&mut self) -> Option<TransactionEvent> {
        self.events.pop_front()
    }

    /// When [`ClientNonInvite::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::tests::{request, response_to, run_until, sent_times};
    use crate::sip::wire::Method;

    #[test]
    fn timer_e_doubles_to_t2_and_timer_f_ends_it() {
        let t0 = Instant::now();
        let mut tx = ClientNonInvite::new(
            t0,
            request(Method::Options),
            false,
            TimerSettings::default(),
        );
        let (sends, events) = run_until(&mut tx, t0, t0 + Duration::from_secs(40));
        // 0, 0.5, 1.5, 3.5, then every 4 s (T2) until Timer F at 32 s.
        assert_eq!(
            sent_times(&sends, t0),
            vec![
                0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
        assert_eq!(
            events[0],
            (Duration::from_secs(32), TransactionEvent::Timeout)
        );
    }

    #[test]
    fn proceeding_retransmits_every_t2() {
        let t0 = Instant::now();
        let mut tx = ClientNonInvite::new(
            t0,
            request(Method::Options),
            false,
            TimerSettings::default(),
        );
        tx.handle_response(t0, response_to(&request(Method::Options), 100));
        let (sends, _) = run_until(&mut tx, t0, t0 + Duration::from_secs(10));
        assert_eq!(sent_times(&sends, t0), vec![0, 500, 4500, 8500]);
    }

    #[test]
    fn final_response_then_timer_k() {
        let t0 = Instant::now();
        let mut tx =
            ClientNonInvite::new(t0, request(Method::Bye), false, TimerSettings::default());
        tx.handle_response(t0, response_to(&request(Method::Bye), 200));
        assert_eq!(tx.state(), State::Completed);
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(5)));
        tx.handle_response(t0, response_to(&request(Method::Bye), 200));
        assert!(matches!(
            tx.poll_event(),
            Some(TransactionEvent::Response(_))
        ));
        assert_eq!(tx.poll_event(), None, "the retransmission is absorbed");
        tx.handle_timeout(t0 + Duration::from_secs(5));
        assert!(tx.is_terminated());
        let mut tcp =
            ClientNonInvite::new(t0, request(Method::Bye), true, TimerSettings::default());
        tcp.handle_response(t0, response_to(&request(Method::Bye), 200));
        assert!(
            tcp.is_terminated(),
            "Timer K is zero on reliable transports"
        );
    }
}
