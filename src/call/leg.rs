//! One leg of a call: a SIP dialog with its own media leg on the engine.
//!
//! Every leg negotiates SDP with the engine, never with the party on the other leg
//! (media is anchored: that is how calls are recorded and prompts are played).
//! A leg is either *incoming* (we are its UAS: the caller's INVITE) or *outgoing*
//! (we are its UAC: an operator's softphone, a forward target, a resident being
//! called back). The leg does the SIP and SDP work — provisional and final answers,
//! ACK, CANCEL, BYE, re-INVITE for hold and resume, INFO for DTMF — and reports
//! what happened as a [`Note`]; what to do about it is the call's business.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::media_port::MediaPort;
use crate::media::sdp::{SdpSession, SessionDescription};
use crate::media::{Direction, LegId, Negotiated, SdpError, SdpPreferences};
use crate::sip::dialog::Dialog;
use crate::sip::endpoint::{ClientFailure, ClientTx, Endpoint, ServerTx};
use crate::sip::transport::{ResponseRouting, Target, in_dialog_target};
use crate::sip::wire::{Contact, Method, NameAddr, Request, Response};

/// Which side of the dialog we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// We answer (the INVITE came to us).
    Uas(ServerTx),
    /// We called (the INVITE came from us).
    Uac(ClientTx),
}

/// Where the leg stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LegState {
    /// INVITE sent or received, nothing else yet.
    Offering,
    /// Ringing (a provisional with a tag either way).
    Ringing,
    /// Answered (2xx sent or received).
    Answered,
    /// Over (failed, cancelled, or hung up).
    Ended,
}

/// What happened on a leg, for the call to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Note {
    /// Nothing the call needs to know.
    Nothing,
    /// The far end is ringing.
    Ringing,
    /// The far end answered (outgoing legs).
    Answered,
    /// The INVITE failed: a final status, or no answer at all.
    Failed {
        /// The status (0 when there was no response).
        status: u16,
        /// Reason phrase, or what went wrong.
        reason: String,
        /// Set when there was no response.
        failure: Option<ClientFailure>,
    },
    /// The party hung up (BYE received).
    HungUp,
    /// The party put us on hold (true) or resumed (false).
    Hold(bool),
    /// A DTMF key sent by SIP INFO, and how long it was held.
    Dtmf(char, Duration),
}

/// Why a leg could not be set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// Status for the caller.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
}

/// One leg.
#[derive(Debug)]
pub(crate) struct Leg {
    pub role: Role,
    /// The INVITE as received (UAS) or as sent with our Via (UAC).
    pub invite: Request,
    /// Where in-dialog requests go.
    pub target: Target,
    /// Our tag.
    pub tag: String,
    pub dialog: Option<Dialog>,
    pub state: LegState,
    /// The engine's media leg.
    pub media: LegId,
    /// Its RTP address (what our SDP says).
    local: std::net::SocketAddr,
    sdp: SdpSession,
    /// Our SDP for the next answer (UAS) — an answer, or an offer for a late offer.
    local_body: Option<Bytes>,
    /// The INVITE carried no SDP: our 2xx holds the offer and the ACK the answer.
    late_offer: bool,
    pub acked: bool,
    pub bye_after_ack: bool,
    pub cancel_wanted: bool,
    pub on_hold: bool,
    /// The TCP connection this leg's dialog asked the transport to keep open.
    held_flow: Option<Target>,
}

fn sdp_body(description: &SessionDescription) -> Bytes {
    Bytes::from(description.to_string())
}

fn parse_sdp(body: &[u8]) -> Result<SessionDescription, SdpError> {
    let text = std::str::from_utf8(body).map_err(|_| SdpError::Malformed {
        line: 0,
        reason: "not UTF-8".into(),
    })?;
    SessionDescription::parse(text)
}

fn refusal_of(e: &SdpError) -> Refusal {
    match e {
        SdpError::NoCommonCodec => Refusal {
            status: 488,
            reason: "Not Acceptable Here: no common codec (PCMA, PCMU)".into(),
        },
        other => Refusal {
            status: 400,
            reason: format!("Bad Request: SDP {other}"),
        },
    }
}

impl Leg {
    /// The caller's leg, from their INVITE: opens media and prepares our SDP answer
    /// (or our offer, when theirs comes in the ACK). Fails with the status the
    /// INVITE must get (488 no common codec, 400 malformed SDP, 503 no ports).
    pub(crate) fn incoming(
        ep: &mut Endpoint,
        media: &dyn MediaPort,
        tx: ServerTx,
        invite: Request,
        source: Target,
        prefs: &SdpPreferences,
    ) -> Result<Self, Refusal> {
        // The endpoint refuses INVITEs without a Contact; checked again here because
        // a leg whose dialog cannot exist could never be hung up.
        let tag = ep.new_tag();
        if let Err(e) = Dialog::uas(&invite, &tag, ep.contact_uri(None, source.transport)) {
            return Err(Refusal {
                status: 400,
                reason: format!("Bad Request: {e}"),
            });
        }
        let (leg, local) = media.open_leg().map_err(|e| Refusal {
            status: 503,
            reason: format!("Service Unavailable: {e}"),
        })?;
        let mut sdp = SdpSession::new(u64::from(ep.random_u32()));
        let late_offer = invite.body.is_empty();
        let local_body = if late_offer {
            sdp_body(&sdp.offer(local, prefs))
        } else {
            let negotiated =
                parse_sdp(&invite.body).and_then(|offer| sdp.answer(&offer, local, prefs));
            match negotiated {
                Ok((answer, negotiated)) => {
                    let _ = media.set_remote(leg, negotiated);
                    sdp_body(&answer)
                }
                Err(e) => {
                    let _ = media.close_leg(leg);
                    return Err(refusal_of(&e));
                }
            }
        };
        Ok(Self {
            role: Role::Uas(tx),
            invite,
            target: source,
            tag,
            dialog: None,
            state: LegState::Offering,
            media: leg,
            local,
            sdp,
            local_body: Some(local_body),
            late_offer,
            acked: false,
            bye_after_ack: false,
            cancel_wanted: false,
            on_hold: false,
            held_flow: None,
        })
    }

    /// A leg we place: opens media, offers SDP and sends the INVITE built by
    /// `request` (Request-URI, From with tag, To, Call-ID and any extra headers; the
    /// body, Contact and Via are added here).
    pub(crate) fn outgoing(
        ep: &mut Endpoint,
        media: &dyn MediaPort,
        now: Instant,
        mut request: Request,
        target: Target,
        prefs: &SdpPreferences,
    ) -> Result<Self, Refusal> {
        let (leg, local) = media.open_leg().map_err(|e| Refusal {
            status: 503,
            reason: format!("Service Unavailable: {e}"),
        })?;
        let mut sdp = SdpSession::new(u64::from(ep.random_u32()));
        request.body = sdp_body(&sdp.offer(local, prefs));
        request.headers.set("Content-Type", "application/sdp");
        request.headers.contact = vec![Contact::Address(NameAddr::new(
            ep.contact_uri(None, target.transport),
        ))];
        let tag = request.headers.from.tag().unwrap_or_default().to_owned();
        let tx = ep.send_request(now, request, target);
        let invite = ep.client_request(tx).cloned().ok_or_else(|| Refusal {
            status: 500,
            reason: "INVITE not sent".into(),
        })?;
        Ok(Self {
            role: Role::Uac(tx),
            invite,
            target,
            tag,
            dialog: None,
            state: LegState::Offering,
            media: leg,
            local,
            sdp,
            local_body: None,
            late_offer: false,
            acked: false,
            bye_after_ack: false,
            cancel_wanted: false,
            on_hold: false,
            held_flow: None,
        })
    }

    fn uas_response(&self, ep: &Endpoint, status: u16, reason: Option<&str>) -> Response {
        let mut r = match reason {
            Some(reason) => self.invite.response_with_reason(status, reason),
            None => self.invite.response(status),
        };
        r.headers.to.set_tag(&self.tag);
        if status > 100 && status < 300 {
            r.headers.contact.push(Contact::Address(NameAddr::new(
                ep.contact_uri(None, self.target.transport),
            )));
        }
        r
    }

    // -- incoming legs -----------------------------------------------------------

    /// Sends 180 Ringing.
    pub(crate) fn ring(&mut self, ep: &mut Endpoint, now: Instant) {
        if let Role::Uas(tx) = self.role {
            if self.state == LegState::Offering {
                self.state = LegState::Ringing;
                let r = self.uas_response(ep, 180, None);
                ep.respond(now, tx, r);
            }
        }
    }

    /// Answers with 200 and our SDP; the dialog starts.
    pub(crate) fn answer(&mut self, ep: &mut Endpoint, now: Instant) {
        let Role::Uas(tx) = self.role else { return };
        if matches!(self.state, LegState::Answered | LegState::Ended) {
            return;
        }
        let mut r = self.uas_response(ep, 200, None);
        r.headers.push("Allow", ep.allow_header());
        let supported = ep.supported_header();
        if !supported.is_empty() {
            r.headers.push("Supported", supported);
        }
        if let Some(body) = self.local_body.take() {
            r = r.with_body("application/sdp", body);
        }
        let contact = ep.contact_uri(None, self.target.transport);
        match Dialog::uas(&self.invite, &self.tag, contact) {
            Ok(dialog) => {
                self.dialog = Some(dialog);
                self.hold_flow(ep, self.target);
            }
            // Not reached: `incoming` refused such an INVITE.
            Err(e) => tracing::error!(error = %e, "answered an INVITE whose dialog cannot exist"),
        }
        self.state = LegState::Answered;
        ep.respond(now, tx, r);
    }

    /// Refuses the INVITE with a final status.
    pub(crate) fn reject(&mut self, ep: &mut Endpoint, now: Instant, status: u16, reason: &str) {
        let Role::Uas(tx) = self.role else { return };
        if matches!(self.state, LegState::Answered | LegState::Ended) {
            return;
        }
        self.state = LegState::Ended;
        let r = self.uas_response(ep, status, Some(reason));
        ep.respond(now, tx, r);
    }

    /// The ACK for our 2xx; with a late offer it carries the caller's answer.
    /// `false` (media): the offer in our 2xx got no usable answer — none in the
    /// ACK, or one we cannot use — so the call must end with BYE (RFC 3261
    /// §13.2.1).
    pub(crate) fn on_ack(&mut self, media: &dyn MediaPort, ack: &Request) -> bool {
        self.acked = true;
        if let Some(d) = self.dialog.as_mut() {
            d.confirm(None);
        }
        if !self.late_offer {
            return true;
        }
        self.late_offer = false;
        match parse_sdp(&ack.body).and_then(|a| self.sdp.accept_answer(&a)) {
            Ok(negotiated) => {
                let _ = media.set_remote(self.media, negotiated);
                true
            }
            Err(e) => {
                tracing::info!(error = %e, empty = ack.body.is_empty(), "no usable SDP answer in the ACK");
                false
            }
        }
    }

    // -- outgoing legs -------------------------------------------------------------

    /// A response to the INVITE we sent.
    pub(crate) fn on_invite_response(
        &mut self,
        ep: &mut Endpoint,
        media: &dyn MediaPort,
        now: Instant,
        response: &Response,
    ) -> Note {
        let Role::Uac(tx) = self.role else {
            return Note::Nothing;
        };
        let contact = ep.contact_uri(None, self.target.transport);
        if response.is_provisional() {
            // §9.1: any provisional, 100 included, allows the CANCEL we held back.
            if self.cancel_wanted {
                self.cancel_wanted = false;
                let _ = ep.cancel(now, tx);
                return Note::Nothing;
            }
            if response.status == 100 {
                return Note::Nothing;
            }
            if self.dialog.is_none() && response.headers.to.tag().is_some() {
                self.dialog = Dialog::uac(&self.invite, response, contact).ok();
            }
            if self.state == LegState::Offering {
                self.state = LegState::Ringing;
                return Note::Ringing;
            }
            return Note::Nothing;
        }
        if response.is_success() {
            let mut dialog = match Dialog::uac(&self.invite, response, contact.clone()) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "unusable 2xx; acknowledging it and hanging up");
                    let was_ended = self.state == LegState::Ended;
                    self.state = LegState::Ended;
                    self.ack_and_bye_unusable(ep, now, tx, response, contact);
                    if was_ended {
                        return Note::Nothing;
                    }
                    return Note::Failed {
                        status: 502,
                        reason: format!("Bad Gateway: {e}"),
                        failure: None,
                    };
                }
            };
            dialog.confirm(Some(response));
            // Our INVITE carried the offer, so the 2xx must carry a usable answer
            // (RFC 3264 §5); without one no media can flow: ACK, then BYE below.
            let media_ok = parse_sdp(&response.body)
                .and_then(|a| self.sdp.accept_answer(&a))
                .map(|negotiated| {
                    let _ = media.set_remote(self.media, negotiated);
                });
            let ack = dialog.ack(self.invite.headers.cseq.seq, None);
            // The connection the answer came on, when it is the one we opened.
            if let Some(flow) = ep.client_flow(tx).filter(|f| f.addr == self.target.addr) {
                self.target = flow;
            }
            let flow = self.target;
            let target = self.in_dialog_target(ep, &dialog);
            self.target = target;
            ep.send_ack(tx, ack, target);
            let cancelled = self.state == LegState::Ended;
            self.dialog = Some(dialog);
            self.hold_flow(ep, flow);
            if cancelled {
                // We gave up on it but it answered anyway: hang it up at once.
                self.state = LegState::Answered;
                let _ = self.bye(ep, now);
                return Note::Nothing;
            }
            self.state = LegState::Answered;
            if let Err(e) = media_ok {
                // RFC 3261 §13.2.1: an answer the UAC cannot accept is ACKed, then
                // the dialog is ended with BYE.
                tracing::warn!(error = %e, "unusable SDP answer in the 2xx; ending the leg");
                let _ = self.bye(ep, now);
                return Note::Failed {
                    status: 488,
                    reason: format!("Not Acceptable Here: SDP answer {e}"),
                    failure: None,
                };
            }
            return Note::Answered;
        }
        let was_ended = self.state == LegState::Ended;
        self.state = LegState::Ended;
        if was_ended {
            return Note::Nothing; // our own CANCEL's 487
        }
        Note::Failed {
            status: response.status,
            reason: response.reason.clone(),
            failure: None,
        }
    }

    /// The INVITE got no response at all (timeout, or unreachable).
    pub(crate) fn on_invite_failure(&mut self, failure: ClientFailure) -> Note {
        let was_ended = self.state == LegState::Ended;
        self.state = LegState::Ended;
        if was_ended {
            return Note::Nothing;
        }
        let reason = match failure {
            ClientFailure::Timeout => "no answer",
            ClientFailure::Transport => "unreachable",
        };
        Note::Failed {
            status: 0,
            reason: reason.into(),
            failure: Some(failure),
        }
    }

    /// Gives up on an outgoing leg that has not answered (CANCEL, now or after the
    /// first provisional).
    pub(crate) fn cancel(&mut self, ep: &mut Endpoint, now: Instant) {
        let Role::Uac(tx) = self.role else { return };
        if matches!(self.state, LegState::Answered | LegState::Ended) {
            return;
        }
        self.state = LegState::Ended;
        if ep.can_cancel(tx) {
            let _ = ep.cancel(now, tx);
        } else {
            self.cancel_wanted = true;
        }
    }

    // -- both ------------------------------------------------------------------------

    /// Hangs up an answered leg with BYE; returns its transaction. An incoming leg
    /// waits for the ACK of our 2xx first (RFC 3261 §15).
    pub(crate) fn bye(&mut self, ep: &mut Endpoint, now: Instant) -> Option<ClientTx> {
        if self.state != LegState::Answered {
            return None;
        }
        if matches!(self.role, Role::Uas(_)) && !self.acked {
            self.bye_after_ack = true;
            return None;
        }
        self.state = LegState::Ended;
        let Some(mut dialog) = self.dialog.take() else {
            self.release_flow(ep);
            return None;
        };
        let bye = dialog.request(Method::Bye);
        let target = self.in_dialog_target(ep, &dialog);
        self.dialog = Some(dialog);
        // The BYE's transaction holds the connection from here to its 200; the
        // dialog lets go only after, so the connection is never unheld between.
        let tx = ep.send_request(now, bye, target);
        self.release_flow(ep);
        Some(tx)
    }

    /// Asks the transport to keep the dialog's TCP connection open while the call
    /// lasts, however quiet it is (a no-op on UDP).
    fn hold_flow(&mut self, ep: &mut Endpoint, flow: Target) {
        if self.held_flow.is_none() && flow.connection.is_some() {
            ep.hold_flow(flow);
            self.held_flow = Some(flow);
        }
    }

    fn release_flow(&mut self, ep: &mut Endpoint) {
        if let Some(flow) = self.held_flow.take() {
            ep.release_flow(flow);
        }
    }

    /// Where this leg's in-dialog requests go: the dialog's route set and remote
    /// target (§12.2.1.1), over the connection the dialog came on when the peer is
    /// the same; for an incoming leg whose Contact is unreachable behind NAT, where
    /// its INVITE came from ([`in_dialog_target`]).
    fn in_dialog_target(&self, ep: &Endpoint, dialog: &Dialog) -> Target {
        let symmetric = matches!(self.role, Role::Uas(_))
            && ep.config().response_routing == ResponseRouting::Symmetric;
        in_dialog_target(
            dialog.next_hop(),
            !dialog.route_set().is_empty(),
            self.target,
            symmetric,
        )
    }

    /// A 2xx we cannot build a dialog from (no Contact) is still acknowledged and
    /// then hung up (§13.2.2.4), best effort: the Request-URI stands in for the
    /// missing remote target. A 2xx without a To tag identifies no dialog at all
    /// and is only logged.
    fn ack_and_bye_unusable(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        tx: ClientTx,
        response: &Response,
        contact: crate::sip::wire::Uri,
    ) {
        let mut patched = response.clone();
        patched.headers.contact = vec![Contact::Address(NameAddr::new(self.invite.uri.clone()))];
        let Ok(mut dialog) = Dialog::uac(&self.invite, &patched, contact) else {
            tracing::warn!(call_id = %response.headers.call_id, "2xx without a To tag: cannot acknowledge it");
            return;
        };
        let ack = dialog.ack(self.invite.headers.cseq.seq, None);
        let bye = dialog.request(Method::Bye);
        let target = self.in_dialog_target(ep, &dialog);
        ep.send_ack(tx, ack, target);
        let _ = ep.send_request(now, bye, target);
    }

    /// An in-dialog request from the party on this leg.
    pub(crate) fn on_request(
        &mut self,
        ep: &mut Endpoint,
        media: &dyn MediaPort,
        now: Instant,
        tx: ServerTx,
        request: &Request,
        prefs: &SdpPreferences,
    ) -> Note {
        let reply = |ep: &mut Endpoint,
                     leg: &Leg,
                     status: u16,
                     reason: Option<&str>,
                     body: Option<Bytes>| {
            let mut r = match reason {
                Some(reason) => request.response_with_reason(status, reason),
                None => request.response(status),
            };
            r.headers.to.set_tag(&leg.tag);
            // A 2xx to a target refresh names our target (§12.2.2, RFC 3311 §5.2).
            if (200..300).contains(&status)
                && matches!(request.method, Method::Invite | Method::Update)
            {
                r.headers.contact.push(Contact::Address(NameAddr::new(
                    ep.contact_uri(None, leg.target.transport),
                )));
            }
            if let Some(body) = body {
                r = r.with_body("application/sdp", body);
            }
            ep.respond(now, tx, r);
        };
        if let Some(dialog) = self.dialog.as_mut() {
            if let Err(e) = dialog.handle_request(request) {
                reply(
                    ep,
                    self,
                    500,
                    Some(&format!("Server Internal Error: {e}")),
                    None,
                );
                return Note::Nothing;
            }
        }
        match request.method {
            Method::Bye => {
                reply(ep, self, 200, None, None);
                self.state = LegState::Ended;
                self.release_flow(ep);
                Note::HungUp
            }
            Method::Update if request.body.is_empty() => {
                // RFC 3311 §5.2: an UPDATE without an offer (a target refresh) gets a
                // 2xx without SDP; there is no answer to wait for.
                reply(ep, self, 200, None, None);
                Note::Nothing
            }
            Method::Invite | Method::Update => {
                if request.body.is_empty() {
                    // An offer-less re-INVITE: offer what we have; the answer is in the ACK.
                    let offer = sdp_body(&self.sdp.offer(self.local, prefs));
                    self.late_offer = true;
                    reply(ep, self, 200, None, Some(offer));
                    return Note::Nothing;
                }
                let local = self.local;
                match parse_sdp(&request.body)
                    .and_then(|offer| self.sdp.answer(&offer, local, prefs))
                {
                    Ok((answer, negotiated)) => {
                        let held = is_held(&negotiated);
                        let _ = media.set_remote(self.media, negotiated);
                        reply(ep, self, 200, None, Some(sdp_body(&answer)));
                        if held != self.on_hold {
                            self.on_hold = held;
                            return Note::Hold(held);
                        }
                        Note::Nothing
                    }
                    Err(e) => {
                        let r = refusal_of(&e);
                        reply(ep, self, r.status, Some(&r.reason), None);
                        Note::Nothing
                    }
                }
            }
            Method::Info => {
                let content_type = request.headers.content_type().unwrap_or_default();
                let digit = crate::media::dtmf::parse_info_body(&content_type, &request.body);
                reply(ep, self, 200, None, None);
                match digit {
                    Some((d, duration)) => Note::Dtmf(d, duration),
                    None => Note::Nothing,
                }
            }
            Method::Options => {
                reply(ep, self, 200, None, None);
                Note::Nothing
            }
            _ => {
                reply(ep, self, 405, None, None);
                Note::Nothing
            }
        }
    }

    /// Frees the media leg.
    pub(crate) fn close_media(&self, media: &dyn MediaPort) {
        let _ = media.close_leg(self.media);
    }

    // -- DTMF for a party without telephone-event (media, issue 4) ----------------

    /// Sends a DTMF key to the party as SIP INFO `application/dtmf-relay` (for a
    /// party that did not negotiate telephone-event). Only on an answered leg;
    /// returns the INFO's transaction.
    pub(crate) fn send_info_dtmf(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        digit: char,
        duration: Duration,
    ) -> Option<ClientTx> {
        if self.state != LegState::Answered {
            return None;
        }
        let body = crate::media::dtmf::info_body(digit, duration).ok()?;
        let target = self.in_dialog_target(ep, self.dialog.as_ref()?);
        let mut info = self.dialog.as_mut()?.request(Method::Info);
        info.body = Bytes::from(body);
        info.headers.set("Content-Type", "application/dtmf-relay");
        Some(ep.send_request(now, info, target))
    }
}

/// Whether the peer has put us on hold (RFC 3264 §8.4): it offered sendonly or
/// inactive, so our side became recvonly or inactive, or it offered no address.
fn is_held(n: &Negotiated) -> bool {
    n.remote_rtp.is_none() || matches!(n.direction, Direction::RecvOnly | Direction::Inactive)
}
