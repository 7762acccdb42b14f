//! The B2BUA for `forward` numbers: the caller's INVITE becomes a call the engine
//! places to the configured target, with media anchored on both legs and the call
//! recorded.
//!
//! Provisional and final answers of the target map onto the caller's leg, CANCEL and
//! BYE propagate, and a failure of the target becomes a sensible final response for
//! the caller ([`map_failure`]). Each leg is its own RFC 3261 dialog with its own
//! Call-ID, tags and CSeq, and its own SDP with the engine: the peers never see each
//! other's signalling identifiers or addresses.

use std::time::Instant;

use bytes::Bytes;
use serde_json::json;

use super::control::{CallControl, Disposition, Kind, Stage};
use super::leg::{Leg, Note};
use super::routing::{forward_uri, target_for};
use crate::config::Number;
use crate::sip::endpoint::{ClientFailure, ServerTx};
use crate::sip::transport::Target;
use crate::sip::wire::{CSeq, Headers, Method, NameAddr, Request};
use crate::store::CallDirection;

/// The final response the caller gets when the target fails, and how the journal
/// records it.
///
/// Busy, decline and not-found keep their meaning; redirections are not followed
/// (480); the target's own authentication challenges are not the caller's business
/// (403); server errors become 502 (a 503 from us would tell upstream *we* are
/// down); no answer at all is 408 and an unreachable target 502.
pub fn map_failure(
    status: u16,
    reason: &str,
    failure: Option<ClientFailure>,
) -> (u16, String, Disposition) {
    match (failure, status) {
        (Some(ClientFailure::Timeout), _) => (
            408,
            "Request Timeout: no answer from the target".into(),
            Disposition::NoAnswer,
        ),
        (Some(ClientFailure::Transport), _) => (
            502,
            "Bad Gateway: target unreachable".into(),
            Disposition::Unreachable,
        ),
        (None, 486 | 600) => (status, reason.into(), Disposition::Busy),
        (None, 603) => (status, reason.into(), Disposition::Rejected),
        (None, 480 | 408) => (status, reason.into(), Disposition::NoAnswer),
        (None, 404 | 484 | 604) => (status, reason.into(), Disposition::Unreachable),
        (None, 300..=399) => (480, "Temporarily Unavailable".into(), Disposition::Failed),
        (None, 401 | 407) => (
            403,
            "Forbidden: the target refused our credentials".into(),
            Disposition::Failed,
        ),
        (None, 400..=499 | 600..=699) => (status, reason.into(), Disposition::Failed),
        _ => (
            502,
            format!("Bad Gateway: target answered {status}"),
            Disposition::Failed,
        ),
    }
}

impl CallControl {
    /// A call to a `forward` number.
    pub(crate) fn start_forward(
        &mut self,
        now: Instant,
        tx: ServerTx,
        invite: Request,
        source: Target,
        number: Number,
        dialled: String,
    ) {
        let caller = invite.headers.from.uri.user_unescaped().unwrap_or_default();
        let Some(uri) = forward_uri(&number, &dialled) else {
            return self.refuse(
                now,
                tx,
                &invite,
                500,
                "Server Internal Error: bad forward target",
            );
        };
        let Some(target) = target_for(&uri) else {
            return self.refuse(
                now,
                tx,
                &invite,
                502,
                "Bad Gateway: forward target is not an IP address",
            );
        };
        let prefs = self.sdp.clone();
        let a = match Leg::incoming(
            &mut self.endpoint,
            self.media.as_ref(),
            tx,
            invite,
            source,
            &prefs,
        ) {
            Ok(leg) => leg,
            Err(r) => return self.refuse_leg(now, tx, r),
        };
        let (key, mut call) = self.new_call(
            now,
            Kind::Forward,
            Some(number),
            dialled.clone(),
            caller.clone(),
            CallDirection::Inbound,
        );
        let h = &a.invite.headers;
        let mut from = NameAddr {
            display_name: h.from.display_name.clone(),
            uri: h.from.uri.clone(),
            params: Vec::new(),
        };
        from.set_tag(&self.endpoint.new_tag());
        let mut headers = Headers {
            via: Vec::new(),
            from,
            to: NameAddr::new(uri.clone()),
            call_id: self.endpoint.new_call_id(),
            cseq: CSeq {
                seq: 1,
                method: Method::Invite,
            },
            max_forwards: Some(h.max_forwards.map_or(70, |m| m.saturating_sub(1))),
            contact: Vec::new(),
            route: Vec::new(),
            record_route: Vec::new(),
            other: Vec::new(),
        };
        headers.push("Allow", self.endpoint.allow_header());
        let request = Request {
            method: Method::Invite,
            uri,
            headers,
            body: Bytes::new(),
        };
        self.add_leg(key, &mut call, a);
        match Leg::outgoing(
            &mut self.endpoint,
            self.media.as_ref(),
            now,
            request,
            target,
            &prefs,
        ) {
            Ok(b) => {
                let idx = self.add_leg(key, &mut call, b);
                call.ringing = Some(idx);
            }
            Err(r) => {
                if let Some(a) = call.legs.get_mut(0) {
                    a.reject(&mut self.endpoint, now, r.status, &r.reason);
                }
                self.finish(now, &mut call, Disposition::Failed, r.status);
                self.insert_call(key, call);
                return;
            }
        }
        self.emit(
            "call.offered",
            call.tenant.clone(),
            json!({ "call": call.id, "direction": "inbound", "from": caller, "to": dialled, "number_kind": "forward" }),
        );
        self.journal(&call);
        self.insert_call(key, call);
    }

    pub(crate) fn refuse(
        &mut self,
        now: Instant,
        tx: ServerTx,
        invite: &Request,
        status: u16,
        reason: &str,
    ) {
        let mut r = invite.response_with_reason(status, reason);
        let tag = self.endpoint.new_tag();
        r.headers.to.set_tag(&tag);
        self.endpoint.respond(now, tx, r);
    }

    pub(crate) fn refuse_leg(&mut self, now: Instant, tx: ServerTx, refusal: super::leg::Refusal) {
        if let Some(invite) = self.endpoint.server_request(tx).cloned() {
            self.refuse(now, tx, &invite, refusal.status, &refusal.reason);
        }
    }

    /// What the target's leg reports.
    pub(crate) fn forward_note(
        &mut self,
        now: Instant,
        key: u64,
        call: &mut super::control::Call,
        idx: usize,
        note: Note,
    ) {
        if idx == 0 {
            return;
        }
        match note {
            Note::Ringing => {
                if let Some(a) = call.legs.get_mut(0) {
                    a.ring(&mut self.endpoint, now);
                }
            }
            Note::Answered => {
                if let Some(a) = call.legs.get_mut(0) {
                    a.answer(&mut self.endpoint, now);
                }
                self.index_dialog(key, call, 0);
                if let (Some(a), Some(b)) = (
                    call.legs.first().map(|l| l.media),
                    call.legs.get(idx).map(|l| l.media),
                ) {
                    let _ = self.media.bridge(a, b);
                }
                self.start_recording(now, call, 0);
                call.answered_at = Some(now);
                call.stage = Stage::Connected;
                call.record.answered_at = Some(self.wall(now));
                let wait = now.saturating_duration_since(call.started);
                self.emit(
                    "call.answered",
                    call.tenant.clone(),
                    json!({ "call": call.id, "wait_ms": wait.as_millis() as u64 }),
                );
                self.journal(call);
            }
            Note::Failed {
                status,
                reason,
                failure,
            } => {
                let (status, reason, disposition) = map_failure(status, &reason, failure);
                if let Some(a) = call.legs.get_mut(0) {
                    a.reject(&mut self.endpoint, now, status, &reason);
                }
                self.finish(now, call, disposition, status);
            }
            _ => {}
        }
    }

    /// A party of a forward call is gone: the other is hung up too.
    pub(crate) fn forward_gone(
        &mut self,
        now: Instant,
        key: u64,
        call: &mut super::control::Call,
        idx: usize,
        why: &str,
    ) {
        let other = if idx == 0 { 1 } else { 0 };
        self.drop_leg(now, key, call, other);
        let (disposition, status) = match (call.answered_at, why) {
            (Some(_), _) => (Disposition::Answered, 200),
            (None, "cancelled") => (Disposition::Abandoned, 487),
            (None, _) => (Disposition::Failed, 500),
        };
        self.finish(now, call, disposition, status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_sensible_caller_responses() {
        assert_eq!(map_failure(486, "Busy", None).0, 486);
        assert_eq!(map_failure(486, "Busy", None).2, Disposition::Busy);
        assert_eq!(map_failure(603, "Decline", None).2, Disposition::Rejected);
        assert_eq!(map_failure(302, "Moved", None).0, 480);
        assert_eq!(map_failure(407, "Auth", None).0, 403);
        assert_eq!(map_failure(503, "Down", None).0, 502);
        assert_eq!(
            map_failure(0, "", Some(ClientFailure::Timeout)),
            (
                408,
                "Request Timeout: no answer from the target".into(),
                Disposition::NoAnswer
            )
        );
        assert_eq!(
            map_failure(0, "", Some(ClientFailure::Transport)).2,
            Disposition::Unreachable
        );
    }
}
