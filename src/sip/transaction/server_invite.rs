//! The INVITE server transaction (RFC 3261 §17.2.1, Figure 7, with RFC 6026 §8's
//! Accepted state).
//!
//! A 100 Trying goes out as soon as the transaction exists, so the caller stops
//! retransmitting while the TU works. Retransmitted INVITEs get the last provisional
//! response again. A non-2xx final is retransmitted by Timer G (T1 doubling to T2, on
//! UDP) until the ACK arrives or Timer H (64·T1) gives up; the ACK is absorbed here.
//! A 2xx moves to Accepted: from then on the TU (not the transaction) retransmits the
//! 2xx and receives the ACK, and INVITE retransmissions are absorbed until Timer L.
//! Proceeding has no RFC timer; [`ServerInvite::abandon_at`] sets a safety net for
//! a TU that never answers.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Timer, TimerSettings, TimerTable, TransactionEvent};
use crate::sip::wire::{Method, Request, Response};

/// States of Figure 7 plus Accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for the TU's final response.
    Proceeding,
    /// A non-2xx final was sent; waiting for the ACK.
    Completed,
    /// The ACK arrived; absorbing its retransmissions.
    Confirmed,
    /// A 2xx was sent (RFC 6026).
    Accepted,
    /// Done.
    Terminated,
}

/// An INVITE server transaction.
#[derive(Debug)]
pub struct ServerInvite {
    state: State,
    invite: Request,
    reliable: bool,
    settings: TimerSettings,
    timers: TimerTable,
    interval_g: Duration,
    last_response: Option<Bytes>,
    /// The To tag of the TU's responses, once it has sent one with a tag.
    local_tag: Option<String>,
    /// When to give up on the TU ([`ServerInvite::abandon_at`]).
    abandon: Option<Instant>,
    out: VecDeque<Bytes>,
    events: VecDeque<TransactionEvent>,
}

impl ServerInvite {
    /// Creates the transaction for a new INVITE and queues 100 Trying.
    pub fn new(invite: Request, reliable: bool, settings: TimerSettings) -> Self {
        let trying = invite.response(100).to_bytes();
        Self {
            state: State::Proceeding,
            invite,
            reliable,
            settings,
            timers: TimerTable::default(),
            interval_g: settings.t1,
            last_response: Some(trying.clone()),
            local_tag: None,
            abandon: None,
            out: VecDeque::from([trying]),
            events: VecDeque::new(),
        }
    }

    /// Gives up waiting for the TU at `at`: if no final response was sent by then,
    /// [`TransactionEvent::Timeout`] is reported while still in Proceeding, and the
    /// owner answers the INVITE itself (Figure 7 has no timer in Proceeding, so a
    /// TU that never answers would otherwise keep the transaction forever).
    ///
    /// The timer first runs to a checkpoint at 64·T1 and only then to `at`: nearly
    /// every INVITE is answered before, so the owner's timer queue never holds more
    /// than 64·T1 worth of outdated deadlines.
    pub fn abandon_at(&mut self, now: Instant, at: Instant) {
        if self.state == State::Proceeding {
            self.abandon = Some(at);
            self.timers
                .start(Timer::Abandon, at.min(now + self.settings.t1x64()));
        }
    }

    /// Takes back the queued 100 Trying when the final response follows at once
    /// (§17.2.1: no 100 is needed when the TU answers within 200 ms).
    pub fn skip_trying(&mut self) {
        if self.state == State::Proceeding {
            self.out.clear();
            self.last_response = None;
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The INVITE that created the transaction.
    pub fn request(&self) -> &Request {
        &self.invite
    }

    /// Whether the transaction can be forgotten.
    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// Whether a final response has been sent.
    pub fn is_answered(&self) -> bool {
        self.state != State::Proceeding
    }

    /// The To tag the TU gave its responses (a provisional carries it before the
    /// final does); a CANCEL's 200 reuses it (RFC 3261 §9.2).
    pub fn local_tag(&self) -> Option<&str> {
        self.local_tag.as_deref()
    }

    /// A request matched to this transaction: an INVITE retransmission or an ACK.
    pub fn handle_request(&mut self, now: Instant, request: &Request) {
        match (&request.method, self.state) {
            (Method::Invite, State::Proceeding | State::Completed) => {
                if let Some(last) = &self.last_response {
                    self.out.push_back(last.clone());
                }
            }
            (Method::Ack, State::Completed) => {
                self.state = State::Confirmed;
                self.timers.clear();
                let wait = if self.reliable {
                    Duration::ZERO
                } else {
                    self.settings.t4
                };
                self.timers.start(Timer::I, now + wait);
                if self.reliable {
                    self.handle_timeout(now);
                }
            }
            _ => {} // absorbed: INVITE retransmits in Accepted, ACK retransmits in Confirmed
        }
    }

    /// The TU's response.
    pub fn send_response(&mut self, now: Instant, response: &Response) {
        let bytes = response.to_bytes();
        if self.local_tag.is_none() {
            self.local_tag = response.headers.to.tag().map(str::to_owned);
        }
        match (self.state, response.status) {
            (State::Proceeding, 100..=199) => {
                self.last_response = Some(bytes.clone());
                self.out.push_back(bytes);
            }
            (State::Proceeding, 200..=299) => {
                self.state = State::Accepted;
                self.last_response = None;
                self.out.push_back(bytes);
                self.timers.stop(Timer::Abandon);
                self.timers.start(Timer::L, now + self.settings.t1x64());
            }
            (State::Accepted, 200..=299) => {
                // The TU's 2xx retransmissions (RFC 3261 §13.3.1.4) pass through.
                self.out.push_back(bytes);
            }
            (State::Proceeding, _) => {
                self.state = State::Completed;
                self.last_response = Some(bytes.clone());
                self.out.push_back(bytes);
                self.timers.stop(Timer::Abandon);
                if !self.reliable {
                    self.timers.start(Timer::G, now + self.interval_g);
                }
                self.timers.start(Timer::H, now + self.settings.t1x64());
            }
            _ => {}
        }
    }

    /// Deadlines that have passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                Timer::G if self.state == State::Completed => {
                    if let Some(last) = &self.last_response {
                        self.out.push_back(last.clone());
                    }
                    self.interval_g = (self.interval_g * 2).min(self.settings.t2);
                    self.timers.start(Timer::G, now + self.interval_g);
                }
                Timer::H if self.state == State::Completed => {
                    self.events.push_back(TransactionEvent::Timeout);
                    self.terminate();
                }
                Timer::I | Timer::L => self.terminate(),
                Timer::Abandon if self.state == State::Proceeding => match self.abandon {
                    Some(at) if at > now => self.timers.start(Timer::Abandon, at),
                    _ => self.events.push_back(TransactionEvent::Timeout),
                },
                _ => {}
            }
        }
    }

    /// The transport failed to deliver a response.
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

    /// When [`ServerInvite::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::tests::{ack_for, invite, response_to, run_until, sent_times};

    fn status_of(bytes: &Bytes) -> String {
        String::from_utf8_lossy(&bytes[8..11]).into_owned()
    }

    #[test]
    fn trying_at_once_and_provisional_on_retransmit() {
        let t0 = Instant::now();
        let mut tx = ServerInvite::new(invite(), false, TimerSettings::default());
        assert_eq!(status_of(&tx.poll_transmit().unwrap()), "100");
        tx.send_response(t0, &response_to(&invite(), 180));
        assert_eq!(status_of(&tx.poll_transmit().unwrap()), "180");
        tx.handle_request(t0, &invite());
        assert_eq!(status_of(&tx.poll_transmit().unwrap()), "180");
    }

    #[test]
    fn timer_g_doubles_to_t2_until_timer_h() {
        let t0 = Instant::now();
        let mut tx = ServerInvite::new(invite(), false, TimerSettings::default());
        tx.poll_transmit();
        tx.send_response(t0, &response_to(&invite(), 486));
        let (sends, events) = run_until(&mut tx, t0, t0 + Duration::from_secs(40));
        assert_eq!(
            sent_times(&sends, t0),
            vec![
                0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
        assert_eq!(
            events[0],
            (Duration::from_secs(32), TransactionEvent::Timeout),
            "Timer H"
        );
    }

    #[test]
    fn ack_confirms_and_timer_i_ends_it() {
        let t0 = Instant::now();
        let mut tx = ServerInvite::new(invite(), false, TimerSettings::default());
        tx.send_response(t0, &response_to(&invite(), 404));
        let t1 = t0 + Duration::from_millis(700);
        tx.handle_request(t1, &ack_for(&invite()));
        assert_eq!(tx.state(), State::Confirmed);
        assert_eq!(
            tx.poll_timeout(),
            Some(t1 + Duration::from_secs(5)),
            "Timer I = T4"
        );
        while tx.poll_transmit().is_some() {}
        tx.handle_request(t1, &ack_for(&invite()));
        tx.handle_request(t1, &invite());
        assert!(tx.poll_transmit().is_none(), "absorbed in Confirmed");
        tx.handle_timeout(t1 + Duration::from_secs(5));
        assert!(tx.is_terminated());
    }

    #[test]
    fn accepted_absorbs_invite_retransmits_until_timer_l() {
        let t0 = Instant::now();
        let mut tx = ServerInvite::new(invite(), false, TimerSettings::default());
        tx.poll_transmit();
        tx.send_response(t0, &response_to(&invite(), 200));
        assert_eq!(tx.state(), State::Accepted);
        assert_eq!(status_of(&tx.poll_transmit().unwrap()), "200");
        tx.handle_request(t0, &invite());
        assert!(tx.poll_transmit().is_none());
        tx.send_response(
            t0 + Duration::from_millis(500),
            &response_to(&invite(), 200),
        );
        assert_eq!(
            status_of(&tx.poll_transmit().unwrap()),
            "200",
            "TU retransmissions pass"
        );
        tx.handle_timeout(t0 + Duration::from_secs(32));
        assert!(tx.is_terminated());
    }

    #[test]
    fn an_unanswered_invite_is_reported_at_the_abandon_deadline() {
        let t0 = Instant::now();
        let mut tx = ServerInvite::new(invite(), false, TimerSettings::default());
        tx.abandon_at(t0, t0 + Duration::from_secs(600));
        assert_eq!(
            tx.poll_timeout(),
            Some(t0 + Duration::from_secs(32)),
            "checkpoint"
        );
        tx.handle_timeout(t0 + Duration::from_secs(32));
        assert_eq!(tx.poll_event(), None);
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(600)));
        tx.handle_timeout(t0 + Duration::from_secs(600));
        assert_eq!(tx.poll_event(), Some(TransactionEvent::Timeout));
        assert_eq!(tx.state(), State::Proceeding, "the owner answers it");
        let mut answered = ServerInvite::new(invite(), false, TimerSettings::default());
        answered.abandon_at(t0, t0 + Duration::from_secs(600));
        answered.send_response(t0, &response_to(&invite(), 200));
        assert_eq!(
            answered.poll_timeout(),
            Some(t0 + Duration::from_secs(32)),
            "Timer L only"
        );
    }

    #[test]
    fn reliable_has_no_timer_g_and_zero_timer_i() {
        let t0 = Instant::now();
        let mut tx = ServerInvite::new(invite(), true, TimerSettings::default());
        tx.send_response(t0, &response_to(&invite(), 486));
        assert_eq!(
            tx.poll_timeout(),
            Some(t0 + Duration::from_secs(32)),
            "only Timer H"
        );
        tx.handle_request(t0, &ack_for(&invite()));
        assert!(tx.is_terminated());
    }
}
