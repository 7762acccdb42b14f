//! Placing the engine's own leg to a party through the providers' trunks.
//!
//! Owns what every outbound call does the same way, whatever it is for: the
//! INVITE goes out from the number the call is made for (the tenant's own number,
//! the citywide one) on that number's trunk first, then on the other usable trunks;
//! a 401/407 from the trunk is answered once with the trunk's credentials (RFC 3261
//! §22.2–22.3); a failure of the provider (5xx, a 408 before any ringing, no
//! response at all) is retried on the next trunk within the same attempt, a refusal
//! by the party (486, 480, 603, ...) never is; and how the leg ended is classified
//! once, by [`crate::dialer::outcome`].

use std::time::Instant;

use super::super::control::{Call, CallControl, CallTimer, Kind, Stage};
use super::super::inbound::escape_user;
use super::super::leg::Leg;
use crate::dialer::{self, Ending, Silence};
use crate::sip::digest;
use crate::sip::endpoint::ClientFailure;
use crate::sip::wire::{Method, NameAddr, Request, Response, Uri};
use crate::store::{CallDirection, DialAttemptOutcome, TicketId};

/// The party's leg of an outbound call, through the trunks.
#[derive(Debug, Clone)]
pub(crate) struct Dialout {
    /// The number called.
    pub target: String,
    /// The number the call goes out from (our caller ID).
    pub from: String,
    /// Trunks still to try, in order.
    trunks_left: Vec<String>,
    /// The trunk the current INVITE went out on.
    pub trunk: Option<String>,
    /// The current INVITE was already sent again with credentials.
    auth_tried: bool,
    /// The party's phone rang on the current trunk.
    pub rang: bool,
    /// The leg in the call, once placed.
    pub leg: Option<usize>,
}

/// What to do after the party's leg failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// The provider failed: the next trunk is tried ([`Dialout::place`] again).
    NextTrunk,
    /// The attempt is over with this outcome.
    Over(DialAttemptOutcome),
}

impl CallControl {
    /// A call the engine places straight to `target` with no operator on the line
    /// (the informer, a follow-up's robot): its journal row (from the tenant's
    /// number, else the city's citywide one; to `target`; the tenant and ticket),
    /// ringing, and the dial-out through the calling number's trunk first.
    pub(crate) fn direct_call(
        &mut self,
        now: Instant,
        tenant: Option<&str>,
        city: Option<&str>,
        ticket: Option<TicketId>,
        target: &str,
    ) -> (u64, Call, Dialout) {
        let number = self.caller_id_number(None, tenant, city);
        let from = number
            .as_ref()
            .map(|n| n.number.to_string())
            .unwrap_or_default();
        let preferred = number.as_ref().and_then(|n| n.trunk.clone());
        let (key, mut call) = self.new_call(
            now,
            Kind::Outbound,
            number,
            target.to_owned(),
            target.to_owned(),
            CallDirection::Outbound,
        );
        call.record.from_number = from.clone();
        call.record.to_number = target.to_owned();
        call.tenant = tenant.map(str::to_owned).or(call.tenant);
        call.record.tenant = call.tenant.clone();
        call.record.ticket_id = ticket;
        call.city = city.map(str::to_owned);
        call.stage = Stage::Ringing;
        let dialout = Dialout::new(self, now, target, &from, preferred.as_deref());
        (key, call, dialout)
    }
}

impl Dialout {
    /// A dial-out to `target` from `from`, trying `preferred` first.
    pub(crate) fn new(
        cc: &CallControl,
        now: Instant,
        target: &str,
        from: &str,
        preferred: Option<&str>,
    ) -> Self {
        Self {
            target: target.to_owned(),
            from: from.to_owned(),
            trunks_left: cc
                .trunks
                .failover_order(preferred, now)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            trunk: None,
            auth_tried: false,
            rang: false,
            leg: None,
        }
    }

    /// Whether leg `idx` is the party's.
    pub(crate) fn is_leg(&self, idx: usize) -> bool {
        self.leg == Some(idx)
    }

    /// Places the party's leg on the next trunk left (arming the call's ring
    /// timer); `false` when no trunk would take it.
    pub(crate) fn place(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call) -> bool {
        while !self.trunks_left.is_empty() {
            let trunk = self.trunks_left.remove(0);
            let Some(config) = cc.trunks.config(&trunk).cloned() else {
                continue;
            };
            let Some(target) = cc.trunks.target(&trunk) else {
                continue;
            };
            let Ok(uri) = Uri::parse(&format!(
                "sip:{}@{}",
                escape_user(&self.target),
                config.domain
            )) else {
                continue;
            };
            let from_uri = Uri::parse(&format!(
                "sip:{}@{}",
                escape_user(&self.from),
                config.domain
            ))
            .unwrap_or_else(|_| uri.clone());
            let mut from = NameAddr::new(from_uri);
            from.set_tag(&cc.endpoint.new_tag());
            let request = Request::out_of_dialog(
                Method::Invite,
                uri.clone(),
                from,
                NameAddr::new(uri),
                cc.endpoint.new_call_id(),
                1,
            );
            let prefs = cc.sdp.clone();
            match Leg::outgoing(
                &mut cc.endpoint,
                cc.media.as_ref(),
                now,
                request,
                target,
                &prefs,
            ) {
                Ok(leg) => {
                    let key = call.key;
                    let idx = cc.add_leg(key, call, leg);
                    self.leg = Some(idx);
                    self.trunk = Some(trunk);
                    self.auth_tried = false;
                    self.rang = false;
                    call.ringing = Some(idx);
                    call.set_timer(CallTimer::Ring, now + cc.config.dialer.ring_timeout);
                    return true;
                }
                Err(r) => {
                    tracing::warn!(%trunk, reason = %r.reason, call = %call.id, "cannot place the call on this trunk")
                }
            }
        }
        false
    }

    /// The party's leg failed with `status` (or no response): another trunk, or
    /// the attempt's outcome.
    pub(crate) fn failed(&mut self, status: u16, failure: Option<ClientFailure>) -> AfterFailure {
        let ending = match failure {
            Some(ClientFailure::Timeout) => Ending::silence(Silence::Timeout, self.rang),
            Some(ClientFailure::Transport) => Ending::silence(Silence::Transport, self.rang),
            None => Ending::status(status, self.rang),
        };
        self.leg = None;
        if dialer::fail_over(ending) && !self.trunks_left.is_empty() {
            AfterFailure::NextTrunk
        } else {
            AfterFailure::Over(dialer::outcome(ending))
        }
    }

    /// The trunk challenged the INVITE on leg `idx` (401 or 407): it is sent again
    /// once, with a new CSeq on the same Call-ID and the trunk's credentials in
    /// Authorization (401) or Proxy-Authorization (407). The client transaction
    /// ACKs the challenge itself. `false` when this response is not such a
    /// challenge or cannot be answered (no credentials, tried already): it then
    /// counts as the leg's final answer.
    pub(crate) fn answer_challenge(
        &mut self,
        cc: &mut CallControl,
        now: Instant,
        call: &mut Call,
        idx: usize,
        response: &Response,
    ) -> bool {
        if !self.is_leg(idx) || self.auth_tried || !matches!(response.status, 401 | 407) {
            return false;
        }
        let Some(trunk) = self.trunk.clone() else {
            return false;
        };
        let Some((user, password)) = cc
            .trunks
            .credentials(&trunk)
            .map(|(u, p)| (u.to_owned(), p.to_owned()))
        else {
            tracing::warn!(%trunk, status = response.status, "trunk challenged an outbound call but has no credentials");
            return false;
        };
        let (asked, answered) = if response.status == 407 {
            ("Proxy-Authenticate", "Proxy-Authorization")
        } else {
            ("WWW-Authenticate", "Authorization")
        };
        let Some(challenge) = response.headers.get(asked) else {
            return false;
        };
        let Some(leg) = call.legs.get(idx) else {
            return false;
        };
        let mut request = leg.invite.clone();
        request.headers.via.clear();
        request.headers.cseq.seq = request.headers.cseq.seq.saturating_add(1);
        request.headers.remove("Authorization");
        request.headers.remove("Proxy-Authorization");
        let cnonce = format!("{:08x}", cc.endpoint.random_u32());
        let Some(credentials) = digest::answer(
            challenge,
            "INVITE",
            request.uri.as_str(),
            &user,
            &password,
            &cnonce,
        ) else {
            tracing::warn!(%trunk, %challenge, "cannot answer the trunk's challenge");
            return false;
        };
        request.headers.push(answered, credentials);
        self.auth_tried = true;
        tracing::info!(call = %call.id, %trunk, status = response.status, "outbound INVITE challenged; sending it again with credentials");
        let key = call.key;
        cc.resend_invite(now, key, call, idx, request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialout() -> Dialout {
        Dialout {
            target: "+79120000001".into(),
            from: "+73432000001".into(),
            trunks_left: vec!["provider-y".into()],
            trunk: Some("provider-x".into()),
            auth_tried: false,
            rang: false,
            leg: Some(1),
        }
    }

    #[test]
    fn the_provider_failing_tries_the_next_trunk_and_the_party_refusing_does_not() {
        assert_eq!(dialout().failed(503, None), AfterFailure::NextTrunk);
        assert_eq!(
            dialout().failed(0, Some(ClientFailure::Timeout)),
            AfterFailure::NextTrunk
        );
        assert_eq!(
            dialout().failed(486, None),
            AfterFailure::Over(DialAttemptOutcome::Busy)
        );
        let mut rang = dialout();
        rang.rang = true;
        assert_eq!(
            rang.failed(480, None),
            AfterFailure::Over(DialAttemptOutcome::NoAnswer)
        );
        let mut last = dialout();
        last.trunks_left.clear();
        assert_eq!(
            last.failed(503, None),
            AfterFailure::Over(DialAttemptOutcome::Failed)
        );
    }
}
