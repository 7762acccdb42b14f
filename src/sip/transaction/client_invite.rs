//! The INVITE client transaction (RFC 3261 §17.1.1, Figure 5, with RFC 6026 §8.4's
//! Accepted state).
//!
//! Timer A retransmits the INVITE on unreliable transports, doubling each time
//! (unbounded by T2, as §17.1.1.2 says); Timer B gives up after 64·T1 without any
//! response. A non-2xx final response is acknowledged by the transaction itself
//! (§17.1.1.3) and that ACK is repeated for each retransmission during Timer D. A 2xx
//! moves to Accepted, where further 2xx (retransmissions, or other forks) go to the
//! TU, which acknowledges them (§13.2.2.4), until Timer M.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use super::{Timer, TimerSettings, TimerTable, TransactionEvent};
use crate::sip::wire::{CSeq, Headers, Method, Request, Response};

/// States of Figure 5 plus Accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// INVITE sent, nothing heard.
    Calling,
    /// A provisional response arrived.
    Proceeding,
    /// A non-2xx final arrived and was acknowledged.
    Completed,
    /// A 2xx arrived (RFC 6026).
    Accepted,
    /// Done.
    Terminated,
}

/// An INVITE client transaction.
#[derive(Debug)]
pub struct ClientInvite {
    state: State,
    invite: Request,
    invite_bytes: Bytes,
    reliable: bool,
    settings: TimerSettings,
    timers: TimerTable,
    interval_a: std::time::Duration,
    ack: Option<Bytes>,
    out: VecDeque<Bytes>,
    events: VecDeque<TransactionEvent>,
}

impl ClientInvite {
    /// Starts the transaction: the INVITE is queued for sending now.
    pub fn new(now: Instant, invite: Request, reliable: bool, settings: TimerSettings) -> Self {
        let invite_bytes = invite.to_bytes();
        let mut timers = TimerTable::default();
        if !reliable {
            timers.start(Timer::A, now + settings.t1);
        }
        timers.start(Timer::B, now + settings.t1x64());
        Self {
            state: State::Calling,
            out: VecDeque::from([invite_bytes.clone()]),
            invite,
            invite_bytes,
            reliable,
            settings,
            timers,
            interval_a: settings.t1,
            ack: None,
            events: VecDeque::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The INVITE this transaction sent (CANCEL and ACK are built from it).
    pub fn request(&self) -> &Request {
        &self.invite
    }

    /// Whether the transaction can be forgotten.
    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// A response matched to this transaction.
    pub fn handle_response(&mut self, now: Instant, response: Response) {
        match (self.state, response.status) {
            (State::Calling | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
                self.timers.stop(Timer::A);
                self.timers.stop(Timer::B);
                self.events.push_back(TransactionEvent::Response(response));
            }
            (State::Calling | State::Proceeding, 200..=299) => {
                self.state = State::Accepted;
                self.timers.clear();
                self.timers.start(Timer::M, now + self.settings.t1x64());
                self.events.push_back(TransactionEvent::Response(response));
            }
            (State::Calling | State::Proceeding, _) => {
                self.state = State::Completed;
                self.timers.clear();
                let ack = self.build_ack(&response).to_bytes();
                self.out.push_back(ack.clone());
                self.ack = Some(ack);
                // Timer D: at least 32 s on UDP (RFC 3261 Table 4), zero on reliable.
                let wait = if self.reliable {
                    std::time::Duration::ZERO
                } else {
                    std::time::Duration::from_secs(32).max(self.settings.t1x64())
                };
                self.timers.start(Timer::D, now + wait);
                self.events.push_back(TransactionEvent::Response(response));
                if self.reliable {
                    self.handle_timeout(now);
                }
            }
            (State::Completed, 300..=699) => {
                // A retransmitted final response: repeat the ACK, tell nobody.
                if let Some(ack) = &self.ack {
                    self.out.push_back(ack.clone());
                }
            }
            (State::Accepted, 200..=299) => {
                self.events.push_back(TransactionEvent::Response(response));
            }
            _ => {}
        }
    }

    /// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3).
    fn build_ack(&self, response: &Response) -> Request {
        let h = &self.invite.headers;
        let headers = Headers {
            via: h.via.iter().take(1).cloned().collect(),
            from: h.from.clone(),
            to: response.headers.to.clone(),
            call_id: h.call_id.clone(),
            cseq: CSeq {
                seq: h.cseq.seq,
                method: Method::Ack,
            },
            max_forwards: Some(70),
            contact: Vec::new(),
            route: h.route.clone(),
            record_route: Vec::new(),
            other: Vec::new(),
        };
        Request {
            method: Method::Ack,
            uri: self.invite.uri.clone(),
            headers,
            body: Bytes::new(),
        }
    }

    /// Deadlines that have passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                Timer::A if self.state == State::Calling => {
                    self.out.push_back(self.invite_bytes.clone());
                    self.interval_a *= 2;
                    self.timers.start(Timer::A, now + self.interval_a);
                }
                Timer::B if self.state == State::Calling => {
                    self.events.push_back(TransactionEvent::Timeout);
                    self.terminate();
                }
                Timer::Abandon if matches!(self.state, State::Calling | State::Proceeding) => {
                    self.events.push_back(TransactionEvent::Timeout);
                    self.terminate();
                }
                Timer::D | Timer::M => self.terminate(),
                _ => {}
            }
        }
    }

    /// The TU sent a CANCEL for this INVITE: if no final response comes within
    /// 64·T1, the transaction is abandoned (RFC 3261 §9.1).
    pub fn cancel_sent(&mut self, now: Instant) {
        if matches!(self.state, State::Calling | State::Proceeding) {
            self.timers
                .start(Timer::Abandon, now + self.settings.t1x64());
        }
    }

    /// The transport failed to deliver the INVITE (§17.1.1.2: treat as 503).
    pub fn handle_transport_error(&mut self) {
        if matches!(self.state, State::Calling | State::Proceeding) {
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

    /// When [`ClientInvite::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::tests::{invite, response_to, run_until, sent_times};
    use std::time::Duration;

    #[test]
    fn timer_a_doubles_from_t1_and_timer_b_ends_it() {
        let t0 = Instant::now();
        let mut tx = ClientInvite::new(t0, invite(), false, TimerSettings::default());
        let (sends, events) = run_until(&mut tx, t0, t0 + Duration::from_secs(40));
        // RFC 3261 §17.1.1.2: 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; Timer B at 32 s.
        let expected: Vec<u64> = vec![0, 500, 1500, 3500, 7500, 15500, 31500];
        assert_eq!(sent_times(&sends, t0), expected);
        assert_eq!(
            events,
            vec![
                (Duration::from_secs(32), TransactionEvent::Timeout),
                (Duration::from_secs(32), TransactionEvent::Terminated)
            ]
        );
        assert!(tx.is_terminated());
    }

    #[test]
    fn reliable_transport_sends_once() {
        let t0 = Instant::now();
        let mut tx = ClientInvite::new(t0, invite(), true, TimerSettings::default());
        let (sends, _) = run_until(&mut tx, t0, t0 + Duration::from_secs(40));
        assert_eq!(sends.len(), 1);
    }

    #[test]
    fn provisional_stops_retransmission_and_non_2xx_is_acked() {
        let t0 = Instant::now();
        let mut tx = ClientInvite::new(t0, invite(), false, TimerSettings::default());
        assert!(tx.poll_transmit().is_some());
        tx.handle_response(t0, response_to(&invite(), 180));
        assert_eq!(tx.state(), State::Proceeding);
        assert_eq!(tx.poll_timeout(), None, "no Timer A or B in Proceeding");
        let t1 = t0 + Duration::from_secs(5);
        tx.handle_response(t1, response_to(&invite(), 486));
        assert_eq!(tx.state(), State::Completed);
        let ack = String::from_utf8(tx.poll_transmit().unwrap().to_vec()).unwrap();
        assert!(
            ack.starts_with("ACK sip:100@127.0.0.1 SIP/2.0\r\n"),
            "{ack}"
        );
        assert!(ack.contains("CSeq: 1 ACK\r\n"));
        assert!(
            ack.contains(";tag=callee"),
            "To tag from the response: {ack}"
        );
        // A retransmitted 486 gets the same ACK again and no new event.
        while tx.poll_event().is_some() {}
        tx.handle_response(t1, response_to(&invite(), 486));
        assert!(tx.poll_transmit().is_some());
        assert_eq!(tx.poll_event(), None);
        // Timer D: 32 s on UDP.
        assert_eq!(tx.poll_timeout(), Some(t1 + Duration::from_secs(32)));
        tx.handle_timeout(t1 + Duration::from_secs(32));
        assert!(tx.is_terminated());
    }

    #[test]
    fn accepted_state_passes_2xx_to_the_tu_until_timer_m() {
        let t0 = Instant::now();
        let mut tx = ClientInvite::new(t0, invite(), false, TimerSettings::default());
        tx.handle_response(t0, response_to(&invite(), 200));
        assert_eq!(tx.state(), State::Accepted);
        assert!(matches!(tx.poll_event(), Some(TransactionEvent::Response(r)) if r.status == 200));
        tx.handle_response(t0 + Duration::from_secs(1), response_to(&invite(), 200));
        assert!(matches!(tx.poll_event(), Some(TransactionEvent::Response(r)) if r.status == 200));
        tx.handle_timeout(t0 + Duration::from_secs(32));
        assert!(tx.is_terminated());
    }
}
