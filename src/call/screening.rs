//! What the call core does with a message before any transaction exists for it:
//! the SIP side of guessing resistance ([`crate::guard`]) and the stateless
//! refusal of strangers.
//!
//! Owns the SIP [`AuthGuard`] and its counters. A source the guard has banned is
//! dropped unanswered, whatever it sends (trunks and `[sip] inbound_from` are
//! never banned). An INVITE starting a call from an address that may not call in
//! is answered 403 once, statelessly: no transaction, so no retransmissions towards
//! a source that may be forged, and each counts as a failed try of its source (a
//! scanner is banned like a guesser). OPTIONS from strangers are dropped (a sweep
//! for SIP servers finds nothing). REGISTERs are checked by the registrar
//! under the guard's verdict: while a source or extension must wait, credentials
//! are not compared and the answer is the 401 a wrong password gets.

use std::net::IpAddr;
use std::time::Instant;

use super::control::CallControl;
use crate::guard::{AuthGuard, Failure, GuardPolicy, Verdict};
use crate::sip::registrar::AuthOutcome;
use crate::sip::transport::Target;
use crate::sip::wire::{Message, Method, Request, Response};

/// The SIP guard and what it did.
#[derive(Debug)]
pub struct Screening {
    pub(crate) guard: AuthGuard,
    /// Messages dropped because their source is banned.
    pub(crate) dropped_banned: u64,
    /// INVITEs from strangers answered 403 statelessly.
    pub(crate) refused_stateless: u64,
    /// Digest failures (wrong passwords, unknown users, tries made too soon).
    pub(crate) auth_failures: u64,
    /// OPTIONS from addresses that are neither trunks nor registered softphones,
    /// dropped.
    pub(crate) dropped_options: u64,
    /// A registration succeeded: the transport's trusted flows must be renewed.
    flows_dirty: bool,
}

/// Figures for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScreeningStats {
    /// Digest failures since start.
    pub auth_failures: u64,
    /// Sources banned since start.
    pub bans: u64,
    /// Sources banned now.
    pub banned_now: u64,
    /// Messages dropped from banned sources.
    pub dropped_banned: u64,
    /// INVITEs from strangers answered 403 statelessly.
    pub refused_stateless: u64,
    /// OPTIONS from strangers dropped.
    pub dropped_options: u64,
    /// Callbacks refused by the toll-fraud checks ([`super::toll`]).
    pub callbacks_refused: u64,
}

impl Screening {
    /// A guard with `policy`.
    pub fn new(policy: GuardPolicy) -> Self {
        Self {
            guard: AuthGuard::new(policy),
            dropped_banned: 0,
            refused_stateless: 0,
            auth_failures: 0,
            dropped_options: 0,
            flows_dirty: false,
        }
    }
}

impl CallControl {
    /// Whether a source is one the guard never bans: a trunk, an address of
    /// `[sip] inbound_from`, or loopback when no trunk is configured (it then
    /// stands for the provider, as the source check says).
    fn unbannable(&self, ip: IpAddr) -> bool {
        self.trunks.trunk_of_source(ip).is_some()
            || self.config.sip.inbound_from.contains(&ip)
            || (self.config.trunks.is_empty() && ip.is_loopback())
    }

    /// Looks at a message before the endpoint does; `true` when it was dealt
    /// with here (dropped, or refused statelessly).
    pub(crate) fn screen(&mut self, now: Instant, message: &Message, source: Target) -> bool {
        let ip = source.addr.ip();
        if self.screening.guard.ban_of(now, ip).is_some() && !self.unbannable(ip) {
            self.screening.dropped_banned = self.screening.dropped_banned.saturating_add(1);
            return true;
        }
        let Message::Request(request) = message else {
            return false;
        };
        let starts = request.headers.to.tag().is_none();
        match request.method {
            Method::Invite if starts && !self.trusted_source(&source, now) => {
                self.refuse_stranger(now, request, source);
                true
            }
            // A sweep for SIP servers learns nothing: only trunks and registered
            // softphones get an answer to OPTIONS.
            Method::Options if !self.trusted_source(&source, now) => {
                self.screening.dropped_options = self.screening.dropped_options.saturating_add(1);
                true
            }
            _ => false,
        }
    }

    /// A stateless 403 to an INVITE from an address that may not call in,
    /// counted as a failed try of that address.
    fn refuse_stranger(&mut self, now: Instant, invite: &Request, source: Target) {
        self.screening.refused_stateless = self.screening.refused_stateless.saturating_add(1);
        self.count_refused_source();
        tracing::debug!(%source, uri = %invite.uri, "INVITE from an unknown address refused statelessly");
        let mut r: Response =
            invite.response_with_reason(403, "Forbidden: not a trunk or a registered operator");
        let tag = self.endpoint.new_tag();
        r.headers.to.set_tag(&tag);
        self.endpoint.send_stateless(source, r.to_bytes());
        self.note_failure(now, source.addr.ip(), None);
    }

    /// Whether `source` already has as many calls in progress as one address may
    /// (`[security] calls_per_source`); trunks and `inbound_from` have no such cap.
    pub(crate) fn over_call_cap(&self, source: &Target) -> bool {
        let ip = source.addr.ip();
        if self.unbannable(ip) {
            return false;
        }
        let cap = self.config.security.calls_per_source;
        self.calls
            .values()
            .filter(|c| {
                c.legs.first().is_some_and(|l| {
                    matches!(l.role, super::leg::Role::Uas(_)) && l.target.addr.ip() == ip
                })
            })
            .count()
            >= cap
    }

    /// The guard's verdict on a REGISTER for `extension` from `source`: whether
    /// its credentials must be left unchecked.
    pub(crate) fn register_hold_off(
        &mut self,
        now: Instant,
        source: Target,
        extension: &str,
    ) -> bool {
        let verdict = self
            .screening
            .guard
            .check(now, source.addr.ip(), Some(extension));
        verdict != Verdict::Allow
    }

    /// Feeds the guard what a REGISTER's credentials came to.
    pub(crate) fn note_register(
        &mut self,
        now: Instant,
        source: Target,
        extension: &str,
        outcome: &AuthOutcome,
    ) {
        match outcome {
            AuthOutcome::Unchecked => {}
            AuthOutcome::Accepted(user) => {
                self.screening.flows_dirty = true;
                self.screening.guard.succeeded(now, source.addr.ip(), user)
            }
            AuthOutcome::Refused => self.note_failure(now, source.addr.ip(), Some(extension)),
        }
    }

    fn note_failure(&mut self, now: Instant, ip: IpAddr, account: Option<&str>) {
        self.screening.auth_failures = self.screening.auth_failures.saturating_add(1);
        if self.unbannable(ip) {
            return;
        }
        if let Failure::Banned(ip) = self.screening.guard.failed(now, ip, account) {
            let policy = self.screening.guard.policy();
            tracing::warn!(
                source = %ip,
                extension = account.unwrap_or("-"),
                failures = policy.ban_after,
                ban_s = policy.ban_for.as_secs(),
                "SIP source banned after failed authentication: everything it sends is dropped until the ban ends"
            );
        }
    }

    /// The flows of live registrations, when they may have changed since the last
    /// call (for the transport's edge, which trusts them).
    pub fn take_trusted_flows(&mut self, now: Instant) -> Option<Vec<std::net::SocketAddr>> {
        if !std::mem::take(&mut self.screening.flows_dirty) {
            return None;
        }
        Some(self.registrar.flows(now))
    }

    /// The guard's figures.
    pub fn screening_stats(&self, now: Instant) -> ScreeningStats {
        ScreeningStats {
            auth_failures: self.screening.auth_failures,
            bans: self.screening.guard.bans(),
            banned_now: self.screening.guard.banned_now(now) as u64,
            dropped_banned: self.screening.dropped_banned,
            refused_stateless: self.screening.refused_stateless,
            dropped_options: self.screening.dropped_options,
            callbacks_refused: self.callbacks.refused,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::test_harness::*;

    #[test]
    fn a_registered_softphone_has_a_cap_on_calls_and_strangers_get_a_stateless_403() {
        let mut h = Harness::new("");
        let phone = addr("127.0.0.9:7101");
        h.register("1001", "pass1001", phone);
        h.sent.clear();
        for i in 0..8 {
            h.deliver_text(
                phone,
                &format!(
                    "INVITE sip:{TENANT}@{ENGINE} SIP/2.0\r\nVia: SIP/2.0/UDP {phone};branch=z9hG4bKcap{i}\r\nFrom: <sip:1001@{phone}>;tag=c{i}\r\nTo: <sip:{TENANT}@{ENGINE}>\r\nCall-ID: cap-{i}\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@{phone}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
                    SDP.len()
                ),
            );
        }
        assert_eq!(h.cc.active_calls(), 8);
        h.deliver_text(
            phone,
            &format!(
                "INVITE sip:{TENANT}@{ENGINE} SIP/2.0\r\nVia: SIP/2.0/UDP {phone};branch=z9hG4bKcap9\r\nFrom: <sip:1001@{phone}>;tag=c9\r\nTo: <sip:{TENANT}@{ENGINE}>\r\nCall-ID: cap-9\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@{phone}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
                SDP.len()
            ),
        );
        assert_eq!(h.cc.active_calls(), 8, "the ninth is refused");
        assert!(h.responses_to(phone).iter().any(|r| r.status == 503));

        // The same address from another port is no registered flow: a stranger.
        let other = addr("127.0.0.9:7999");
        h.deliver_text(
            other,
            &format!(
                "INVITE sip:{TENANT}@{ENGINE} SIP/2.0\r\nVia: SIP/2.0/UDP {other};branch=z9hG4bKstr\r\nFrom: <sip:+79120000009@{other}>;tag=s\r\nTo: <sip:{TENANT}@{ENGINE}>\r\nCall-ID: str-1\r\nCSeq: 1 INVITE\r\nContact: <sip:x@{other}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            ),
        );
        let refused = h.responses_to(other);
        assert_eq!(refused.len(), 1, "one stateless 403, no retransmissions");
        assert_eq!(refused[0].status, 403);
        h.later(std::time::Duration::from_secs(5));
        assert!(h.responses_to(other).is_empty());
        assert_eq!(h.cc.screening_stats(h.now).refused_stateless, 1);
    }
}
