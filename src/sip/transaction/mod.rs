//! RFC 3261 §17 transactions with the RFC 6026 Accepted states, sans-IO.
//!
//! One file per machine: [`client_invite`] (§17.1.1), [`client`] (§17.1.2, non-INVITE),
//! [`server_invite`] (§17.2.1) and [`server`] (§17.2.2, non-INVITE). Each machine is
//! driven the same way:
//!
//! 1. create it with the current time (a client transaction queues its request);
//! 2. feed it what arrives (`handle_request` / `handle_response`), what the TU
//!    decides (`send_response`) and expired deadlines (`handle_timeout(now)`);
//! 3. after each call, drain `poll_transmit` (bytes for the transaction's target) and
//!    `poll_event` (what the TU must hear), and re-read `poll_timeout`.
//!
//! Time only enters as the `now` argument, so tests run Timer B's 32 seconds in
//! microseconds. Timers are named as in the RFC; T1, T2 and T4 are configurable.
//! Besides each machine's own tests, a harness runs client and server pairs over
//! seeded lossy, delaying links (`lossy.rs`).

use std::time::{Duration, Instant};

pub mod client;
pub mod client_invite;
mod key;
#[cfg(test)]
mod lossy;
pub mod server;
pub mod server_invite;

pub use client::ClientNonInvite;
pub use client_invite::ClientInvite;
pub use key::TransactionKey;
pub use server::ServerNonInvite;
pub use server_invite::ServerInvite;

use super::wire::Response;

/// RFC 3261 Table 4's base values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerSettings {
    /// RTT estimate (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses (4 s).
    pub t2: Duration,
    /// Maximum duration a message remains in the network (5 s).
    pub t4: Duration,
}

impl Default for TimerSettings {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerSettings {
    /// 64·T1: Timers B, F, H, J, L and M.
    pub fn t1x64(&self) -> Duration {
        self.t1 * 64
    }
}

/// The transaction timers of RFC 3261 §17 and RFC 6026 §8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// INVITE request retransmit (client, unreliable).
    A,
    /// INVITE transaction timeout (client).
    B,
    /// Wait for response retransmits after a non-2xx final (client INVITE).
    D,
    /// Non-INVITE request retransmit (client, unreliable).
    E,
    /// Non-INVITE transaction timeout (client).
    F,
    /// INVITE final response retransmit (server, unreliable).
    G,
    /// Wait for ACK (server INVITE).
    H,
    /// Wait for ACK retransmits (server INVITE, Confirmed).
    I,
    /// Wait for non-INVITE request retransmits (server, Completed).
    J,
    /// Wait for response retransmits (client non-INVITE, Completed).
    K,
    /// Wait for INVITE retransmits after a 2xx (server INVITE, Accepted; RFC 6026).
    L,
    /// Wait for 2xx retransmits (client INVITE, Accepted; RFC 6026).
    M,
    /// Not named by the RFC: a server non-INVITE transaction the TU never answered,
    /// or a cancelled INVITE that never got a final response (§9.1), is given up
    /// after 64·T1 instead of living forever; a server INVITE the TU never answered
    /// is reported at the deadline its owner set.
    Abandon,
}

/// Deadlines of the timers a machine has running.
#[derive(Debug, Default, Clone)]
pub(crate) struct TimerTable {
    running: Vec<(Timer, Instant)>,
}

impl TimerTable {
    pub(crate) fn start(&mut self, timer: Timer, at: Instant) {
        self.stop(timer);
        self.running.push((timer, at));
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.running.retain(|(t, _)| *t != timer);
    }

    pub(crate) fn clear(&mut self) {
        self.running.clear();
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.running.iter().map(|(_, at)| *at).min()
    }

    /// Removes and returns the earliest timer due at `now`.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<Timer> {
        let (i, _) = self
            .running
            .iter()
            .enumerate()
            .filter(|(_, (_, at))| *at <= now)
            .min_by_key(|(_, (_, at))| *at)?;
        Some(self.running.swap_remove(i).0)
    }
}

/// What a transaction tells its TU.
#[derive(Debug, Clone, PartialEq, Eq)]
// Responses are the common case; boxing them would add an allocation per response.
#[allow(clippy::large_enum_variant)]
pub enum TransactionEvent {
    /// A response for the TU (client transactions). Retransmissions that the
    /// transaction absorbs are not reported.
    Response(Response),
    /// No final response in time (Timer B or F), or no ACK for a non-2xx final
    /// (Timer H).
    Timeout,
    /// The transport could not deliver a message.
    TransportError,
    /// The transaction reached Terminated and can be forgotten.
    Terminated,
}

#[cfg(test)]
pub(crate) mod tests {
    //! A virtual-clock harness shared by the machines' tests.

    use std::time::{Duration, Instant};

    use bytes::Bytes;

    use super::*;
    use crate::sip::wire::{Framing, Message, Method, Request, parse};

    pub(crate) trait Machine {
        fn transmit(&mut self) -> Option<Bytes>;
        fn event(&mut self) -> Option<TransactionEvent>;
        fn deadline(&self) -> Option<Instant>;
        fn timeout(&mut self, now: Instant);
    }

    macro_rules! machine {
        ($t:ty) => {
            impl Machine for $t {
                fn transmit(&mut self) -> Option<Bytes> {
                    self.poll_transmit()
                }
                fn event(&mut self) -> Option<TransactionEvent> {
                    self.poll_event()
                }
                fn deadline(&self) -> Option<Instant> {
                    self.poll_timeout()
                }
                fn timeout(&mut self, now: Instant) {
                    self.handle_timeout(now)
                }
            }
        };
    }
    machine!(ClientInvite);
    machine!(ClientNonInvite);
    machine!(ServerInvite);
    machine!(ServerNonInvite);

    /// Runs a machine by jumping the clock from deadline to deadline until `end`;
    /// returns when each transmit happened and each event with its offset from `t0`.
    pub(crate) fn run_until<M: Machine>(
        m: &mut M,
        t0: Instant,
        end: Instant,
    ) -> (Vec<Instant>, Vec<(Duration, TransactionEvent)>) {
        let mut sends = Vec::new();
        let mut events = Vec::new();
        let mut now = t0;
        loop {
            while m.transmit().is_some() {
                sends.push(now);
            }
            while let Some(e) = m.event() {
                events.push((now - t0, e));
            }
            match m.deadline() {
                Some(at) if at <= end => {
                    now = at.max(now);
                    m.timeout(now);
                }
                _ => return (sends, events),
            }
        }
    }

    pub(crate) fn sent_times(sends: &[Instant], t0: Instant) -> Vec<u64> {
        sends.iter().map(|s| (*s - t0).as_millis() as u64).collect()
    }

    fn parse_request(text: &str) -> Request {
        match parse(Bytes::from(text.replace('\n', "\r\n")), Framing::Stream) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    pub(crate) fn request(method: Method) -> Request {
        parse_request(&format!(
            "{m} sip:100@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-test-1\nFrom: <sip:caller@127.0.0.1>;tag=caller\nTo: <sip:100@127.0.0.1>\nCall-ID: test-call\nCSeq: 1 {m}\nMax-Forwards: 70\nContent-Length: 0\n\n",
            m = method
        ))
    }

    pub(crate) fn invite() -> Request {
        request(Method::Invite)
    }

    pub(crate) fn ack_for(invite: &Request) -> Request {
        let mut ack = invite.clone();
        ack.method = Method::Ack;
        ack.headers.cseq.method = Method::Ack;
        ack.headers.to.set_tag("callee");
        ack
    }

    pub(crate) fn response_to(request: &Request, status: u16) -> crate::sip::wire::Response {
        let r = request.response(status);
        if status > 100 {
            r.with_to_tag("callee")
        } else {
            r
        }
    }
}
