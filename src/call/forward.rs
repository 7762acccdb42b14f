//! The B2BUA for `forward` numbers: the caller's INVITE becomes a call the engine
//! places to the configured target, with media anchored on both legs and the call
//! recorded.
//!
//! Provisional and final answers of the target map onto the caller's leg, CANCEL and
//! BYE propagate, and a failure of the target becomes a sensible final response for
//! the caller ([`map_failure`]). A target that does not answer within
//! `forward_no_answer` (RFC 3261 Timer C, restarted by its first ringing) is
//! cancelled and the caller answered 408. Each leg is its own RFC 3261 dialog with its own
//! Call-ID, tags and CSeq, and its own SDP with the engine: the peers never see each
//! other's signalling identifiers or addresses.

use std::time::Instant;

use serde_json::json;

use super::control::{CallControl, CallTimer, Disposition, Kind, Stage};
use super::leg::{Leg, Note};
use super::routing::forward_uri;
use crate::config::Number;
use crate::sip::endpoint::{ClientFailure, ServerTx};
use crate::sip::transport::Target;
use crate::sip::wire::{Method, NameAddr, Request};
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
        let Some(target) = Target::for_uri(&uri) else {
            return self.refuse(
                now,
                tx,
                &invite,
                502,
                "Bad Gateway: forward target is not an IP address over UDP or TCP",
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
        let mut request = Request::out_of_dialog(
            Method::Invite,
            uri.clone(),
            from,
            NameAddr::new(uri),
            self.endpoint.new_call_id(),
            1,
        );
        // A B2BUA passes the hop count on (RFC 3261 §16.6 step 3, by analogy).
        request.headers.max_forwards = Some(h.max_forwards.map_or(70, |m| m.saturating_sub(1)));
        request.headers.push("Allow", self.endpoint.allow_header());
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
                call.set_timer(CallTimer::Ring, now + self.config.sip.forward_no_answer);
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
                // Timer C restarts on a provisional (RFC 3261 §16.7 step 2).
                call.set_timer(CallTimer::Ring, now + self.config.sip.forward_no_answer);
                if let Some(a) = call.legs.get_mut(0) {
                    a.ring(&mut self.endpoint, now);
                }
            }
            Note::Answered => {
                call.clear_timer(CallTimer::Ring);
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
                call.clear_timer(CallTimer::Ring);
                let (status, reason, disposition) = map_failure(status, &reason, failure);
                if let Some(a) = call.legs.get_mut(0) {
                    a.reject(&mut self.endpoint, now, status, &reason);
                }
                self.finish(now, call, disposition, status);
            }
            _ => {}
        }
    }

    /// The target rang for `forward_no_answer` without answering (Timer C): it is
    /// cancelled and the caller gets 408.
    pub(crate) fn forward_no_answer(
        &mut self,
        now: Instant,
        key: u64,
        call: &mut super::control::Call,
    ) {
        if call.answered_at.is_some() || call.reported {
            return;
        }
        tracing::info!(call = %call.id, "the forward target did not answer in time; cancelling it");
        if let Some(b) = call.ringing {
            self.drop_leg(now, key, call, b);
        }
        if let Some(a) = call.legs.get_mut(0) {
            a.reject(
                &mut self.endpoint,
                now,
                408,
                "Request Timeout: no answer from the target",
            );
        }
        self.finish(now, call, Disposition::NoAnswer, 408);
    }

    /// A party of a forward call is gone: the other is hung up too (and the gone
    /// one as well, when it went without a BYE: no ACK, no RTP).
    pub(crate) fn forward_gone(
        &mut self,
        now: Instant,
        key: u64,
        call: &mut super::control::Call,
        idx: usize,
        why: &str,
    ) {
        call.clear_timer(CallTimer::Ring);
        let other = if idx == 0 { 1 } else { 0 };
        self.drop_leg(now, key, call, idx);
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
    use crate::sip::wire::Response;

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

    /// The B2BUA in virtual time: a call core on a fake media port, fed parsed
    /// messages and jumped from deadline to deadline; what it sends is collected.
    mod b2bua {
        use std::net::SocketAddr;
        use std::path::Path;
        use std::sync::Arc;
        use std::time::{Duration, Instant};

        use bytes::Bytes;

        use crate::call::control::{Admission, CallControl};
        use crate::call::media_port::fake::FakeMedia;
        use crate::config::Config;
        use crate::sip::endpoint::{Endpoint, EndpointConfig};
        use crate::sip::transport::Target;
        use crate::sip::transport::driver::Inbound;
        use crate::sip::wire::{Contact, Framing, Message, Request, Response, parse};

        pub(super) const CALLER: &str = "192.0.2.1:5060";
        pub(super) const CALLEE: &str = "192.0.2.2:5080";
        const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

        pub(super) struct World {
            pub cc: CallControl,
            pub now: Instant,
            /// Everything sent, in order, as (destination, text).
            pub sent: Vec<(SocketAddr, String)>,
            seen: usize,
        }

        fn addr(s: &str) -> SocketAddr {
            s.parse().expect("test address")
        }

        impl World {
            pub(super) fn new() -> Self {
                let config = Config::parse(
                    &format!(
                        "[[trunk]]\nname = \"t\"\nproxy = \"{CALLER}\"\noptions_interval_s = 0\n\n\
                         [[number]]\nnumber = \"100\"\nkind = \"forward\"\ntarget = \"sip:{CALLEE}\"\n\n\
                         [media]\nrecord_calls = false\n"
                    ),
                    Path::new("test.toml"),
                )
                .expect("test config");
                let now = Instant::now();
                let endpoint = Endpoint::new(EndpointConfig::new(addr("192.0.2.100:5060")), 1);
                let cc = CallControl::new(
                    Arc::new(config),
                    endpoint,
                    Box::new(FakeMedia::default()),
                    Admission {
                        max_concurrent: 10,
                        max_rate: 10,
                        retry_after: 5,
                    },
                    now,
                    chrono::Utc::now(),
                );
                Self {
                    cc,
                    now,
                    sent: Vec::new(),
                    seen: 0,
                }
            }

            fn drain(&mut self) {
                while let Some(t) = self.cc.poll_transmit() {
                    if !t.bytes.is_empty() {
                        self.sent.push((
                            t.target.addr,
                            String::from_utf8_lossy(&t.bytes).into_owned(),
                        ));
                    }
                }
                while self.cc.poll_event().is_some() {}
                while self.cc.poll_action().is_some() {}
            }

            /// A message arrives from `from`.
            pub(super) fn feed(&mut self, from: &str, text: &str) {
                let message = parse(Bytes::from(text.to_owned()), Framing::Datagram)
                    .unwrap_or_else(|e| panic!("{e}: {text}"));
                self.cc.handle_inbound(
                    self.now,
                    Inbound::Message {
                        message: Ok(message),
                        source: Target::udp(addr(from)),
                        received: self.now,
                    },
                );
                self.drain();
            }

            pub(super) fn respond(&mut self, from: &str, response: Response) {
                self.feed(from, &String::from_utf8_lossy(&response.to_bytes()));
            }

            /// Lets virtual time run to `until` (relative to now), deadline by deadline.
            pub(super) fn advance(&mut self, by: Duration) {
                let until = self.now + by;
                while let Some(at) = self.cc.poll_timeout().filter(|at| *at <= until) {
                    self.now = self.now.max(at);
                    self.cc.handle_timeout(self.now);
                    self.drain();
                }
                self.now = until;
            }

            /// What was sent to `to` since the last call, as start lines.
            pub(super) fn new_to(&mut self, to: &str) -> Vec<String> {
                self.sent[self.seen..]
                    .iter()
                    .filter(|(a, _)| *a == addr(to))
                    .map(|(_, m)| m.lines().next().unwrap_or("").to_owned())
                    .collect()
            }

            pub(super) fn mark(&mut self) {
                self.seen = self.sent.len();
            }

            /// The last request with `method` sent to `to`, parsed.
            pub(super) fn last_request(&self, to: &str, method: &str) -> Request {
                let text = self
                    .sent
                    .iter()
                    .rev()
                    .find(|(a, m)| *a == addr(to) && m.starts_with(&format!("{method} ")))
                    .map(|(_, m)| m.clone())
                    .unwrap_or_else(|| panic!("no {method} to {to}: {:#?}", self.sent));
                match parse(Bytes::from(text), Framing::Datagram) {
                    Ok(Message::Request(r)) => r,
                    other => panic!("{other:?}"),
                }
            }

            /// The last response with `status` sent to `to`, as text.
            pub(super) fn last_response(&self, to: &str, status: u16) -> String {
                self.sent
                    .iter()
                    .rev()
                    .find(|(a, m)| *a == addr(to) && m.starts_with(&format!("SIP/2.0 {status} ")))
                    .map(|(_, m)| m.clone())
                    .unwrap_or_else(|| panic!("no {status} to {to}: {:#?}", self.sent))
            }
        }

        pub(super) fn caller_invite(extra: &str) -> String {
            format!(
                "INVITE sip:100@192.0.2.100 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKcaller1\r\n{extra}From: <sip:79990001122@192.0.2.1>;tag=ct\r\nTo: <sip:100@192.0.2.100>\r\nCall-ID: caller-call\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:79990001122@{CALLER}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
                SDP.len()
            )
        }

        /// A request from the caller inside the call's dialog (to tag `tag`).
        pub(super) fn caller_in_dialog(method: &str, cseq: u32, tag: &str, body: &str) -> String {
            let ct = if body.is_empty() {
                String::new()
            } else {
                "Content-Type: application/sdp\r\n".to_owned()
            };
            format!(
                "{method} sip:engine@192.0.2.100 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKin{method}{cseq}\r\nFrom: <sip:79990001122@192.0.2.1>;tag=ct\r\nTo: <sip:100@192.0.2.100>;tag={tag}\r\nCall-ID: caller-call\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContact: <sip:79990001122@{CALLER}>\r\n{ct}Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
        }

        /// The callee's answer to the engine's INVITE.
        pub(super) fn callee_answer(invite: &Request, status: u16, tag: &str) -> Response {
            let mut r = invite.response(status);
            if status > 100 {
                r = r.with_to_tag(tag);
            }
            if status == 200 {
                r.headers.contact =
                    vec![Contact::parse(&format!("<sip:callee@{CALLEE}>")).expect("contact")];
                r = r.with_body("application/sdp", Bytes::from_static(SDP.as_bytes()));
            }
            r
        }

        pub(super) fn ack_for(invite: &Request, response_to_tag: &str) -> String {
            format!(
                "ACK {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKack{n}\r\nFrom: <sip:79990001122@192.0.2.1>;tag=ct\r\nTo: <sip:100@192.0.2.100>;tag={response_to_tag}\r\nCall-ID: caller-call\r\nCSeq: {n} ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                uri = invite.uri,
                n = invite.headers.cseq.seq
            )
        }

        pub(super) fn tag_of(response: &str) -> String {
            response
                .lines()
                .find(|l| l.starts_with("To:"))
                .and_then(|l| l.split(";tag=").nth(1))
                .map(|t| t.trim().to_owned())
                .unwrap_or_default()
        }

        /// A call set up to the point where the callee rings.
        pub(super) fn ringing(extra: &str) -> (World, Request) {
            let mut w = World::new();
            w.feed(CALLER, &caller_invite(extra));
            let invite = w.last_request(CALLEE, "INVITE");
            w.respond(CALLEE, callee_answer(&invite, 100, ""));
            w.respond(CALLEE, callee_answer(&invite, 180, "cl1"));
            assert!(w.last_response(CALLER, 180).contains("SIP/2.0 180"));
            (w, invite)
        }

        /// A call answered on both sides and ACKed by the caller.
        pub(super) fn connected(extra: &str) -> (World, Request, String) {
            let (mut w, invite) = ringing(extra);
            w.respond(CALLEE, callee_answer(&invite, 200, "cl1"));
            let ok = w.last_response(CALLER, 200);
            let tag = tag_of(&ok);
            let caller_invite = match parse(Bytes::from(caller_invite(extra)), Framing::Datagram) {
                Ok(Message::Request(r)) => r,
                other => panic!("{other:?}"),
            };
            w.feed(CALLER, &ack_for(&caller_invite, &tag));
            (w, invite, tag)
        }
    }

    use b2bua::*;
    use std::time::Duration;

    #[test]
    fn a_target_that_only_rings_is_cancelled_and_the_caller_gets_408() {
        let (mut w, invite) = ringing("");
        w.mark();
        // Nothing happens before Timer C ...
        w.advance(Duration::from_secs(189));
        assert!(w.new_to(CALLER).iter().all(|l| !l.starts_with("SIP/2.0 4")));
        assert!(w.new_to(CALLEE).is_empty(), "{:?}", w.new_to(CALLEE));
        // ... then the target is cancelled and the caller hears 408.
        w.advance(Duration::from_secs(2));
        assert_eq!(
            w.new_to(CALLEE).first().map(String::as_str),
            Some(format!("CANCEL {} SIP/2.0", invite.uri).as_str())
        );
        assert!(
            w.new_to(CALLER)
                .contains(&"SIP/2.0 408 Request Timeout: no answer from the target".to_owned()),
            "{:?}",
            w.new_to(CALLER)
        );
        // The target confirms; everything ends and nothing is left behind.
        let cancel = w.last_request(CALLEE, "CANCEL");
        w.respond(CALLEE, cancel.response(200).with_to_tag("cl1"));
        w.respond(CALLEE, callee_answer(&invite, 487, "cl1"));
        assert!(w.new_to(CALLEE).iter().any(|l| l.starts_with("ACK ")));
        w.advance(Duration::from_secs(64));
        assert_eq!(w.cc.active_calls(), 0);
    }

    #[test]
    fn a_cancel_held_back_goes_out_on_a_100() {
        let mut w = World::new();
        w.feed(CALLER, &caller_invite(""));
        let invite = w.last_request(CALLEE, "INVITE");
        // The caller gives up before the target said anything.
        let mut cancel = caller_invite("").replacen("INVITE sip:", "CANCEL sip:", 1);
        cancel = cancel.replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
        w.feed(CALLER, &cancel);
        assert!(w.last_response(CALLER, 487).contains("CSeq: 1 INVITE"));
        w.mark();
        w.respond(CALLEE, callee_answer(&invite, 100, ""));
        assert_eq!(
            w.new_to(CALLEE),
            vec![format!("CANCEL {} SIP/2.0", invite.uri)],
            "the 100 is enough (RFC 3261 §9.1)"
        );
    }

    #[test]
    fn the_callers_record_route_is_echoed_and_followed() {
        let rr = "Record-Route: <sip:192.0.2.50;lr;ftag=ct>\r\n";
        let (mut w, _, tag) = connected(rr);
        let ok = w.last_response(CALLER, 200);
        assert!(
            ok.contains("Record-Route: <sip:192.0.2.50;lr;ftag=ct>\r\n"),
            "{ok}"
        );
        let ringing = w.last_response(CALLER, 180);
        assert!(ringing.contains("Record-Route: <sip:192.0.2.50;lr;ftag=ct>\r\n"));
        // The callee hangs up: the caller's BYE goes by the route set, to the proxy.
        let invite = w.last_request(CALLEE, "INVITE");
        let bye_text = format!(
            "BYE sip:engine@192.0.2.100 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLEE};branch=z9hG4bKcalleebye\r\nFrom: <sip:100@{CALLEE}>;tag=cl1\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            to = invite.headers.from,
            cid = invite.headers.call_id
        );
        w.feed(CALLEE, &bye_text);
        let sent = w.last_request("192.0.2.50:5060", "BYE");
        assert_eq!(sent.uri.as_str(), "sip:79990001122@192.0.2.1:5060");
        assert_eq!(
            sent.headers.route[0].uri.as_str(),
            "sip:192.0.2.50;lr;ftag=ct"
        );
        assert_eq!(sent.headers.from.tag(), Some(tag.as_str()));
    }

    #[test]
    fn a_second_answering_fork_is_acked_and_hung_up() {
        let (mut w, invite) = ringing("");
        w.respond(CALLEE, callee_answer(&invite, 200, "cl1"));
        w.mark();
        w.respond(CALLEE, callee_answer(&invite, 200, "fork2"));
        let to_callee = w.new_to(CALLEE);
        assert_eq!(to_callee.len(), 2, "{to_callee:?}");
        assert!(to_callee[0].starts_with("ACK ") && to_callee[1].starts_with("BYE "));
        assert!(w.last_request(CALLEE, "BYE").headers.to.tag() == Some("fork2"));
        assert!(w.new_to(CALLER).is_empty(), "the caller sees one answer");
    }

    #[test]
    fn a_2xx_without_contact_is_acked_and_hung_up_and_the_caller_gets_502() {
        let (mut w, invite) = ringing("");
        let mut ok: Response = callee_answer(&invite, 200, "cl1");
        ok.headers.contact.clear();
        w.mark();
        w.respond(CALLEE, ok);
        let to_callee = w.new_to(CALLEE);
        assert!(
            to_callee[0].starts_with("ACK ") && to_callee[1].starts_with("BYE "),
            "{to_callee:?}"
        );
        assert!(
            w.last_response(CALLER, 502)
                .starts_with("SIP/2.0 502 Bad Gateway")
        );
    }

    #[test]
    fn an_offerless_update_gets_a_2xx_without_sdp() {
        let (mut w, _, tag) = connected("");
        w.feed(CALLER, &caller_in_dialog("UPDATE", 2, &tag, ""));
        let ok = w.last_response(CALLER, 200);
        assert!(ok.contains("CSeq: 2 UPDATE"), "{ok}");
        assert!(ok.contains("Content-Length: 0\r\n"), "no SDP: {ok}");
        assert!(
            ok.contains("Contact: "),
            "a target refresh names ours: {ok}"
        );
    }

    #[test]
    fn an_unacknowledged_reinvite_2xx_ends_the_call() {
        let (mut w, _, tag) = connected("");
        let hold = "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=sendonly\r\n";
        w.feed(CALLER, &caller_in_dialog("INVITE", 2, &tag, hold));
        assert!(w.last_response(CALLER, 200).contains("a=recvonly"));
        w.mark();
        // No ACK ever comes: after 64·T1 both sides are hung up.
        w.advance(Duration::from_secs(33));
        assert!(
            w.new_to(CALLER).iter().any(|l| l.starts_with("BYE ")),
            "{:?}",
            w.new_to(CALLER)
        );
        assert!(
            w.new_to(CALLEE).iter().any(|l| l.starts_with("BYE ")),
            "{:?}",
            w.new_to(CALLEE)
        );
    }
}
