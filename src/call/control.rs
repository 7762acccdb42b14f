//! The call-control core: every call of the engine, on top of one SIP endpoint.
//!
//! Owns the calls and the indices that route SIP events to them (server and client
//! transactions, dialogs), call admission (concurrent-call limit and a new-call rate
//! limit, both answered with 503 + Retry-After), out-of-dialog OPTIONS, 481 for
//! requests in dialogs we do not know, and the call events the journal and the
//! console are built from.
//!
//! Sans-IO, like the endpoint it wraps: feed [`CallControl::handle_inbound`],
//! [`CallControl::handle_timeout`] and commands; drain [`CallControl::poll_transmit`]
//! and [`CallControl::poll_event`]; sleep until [`CallControl::poll_timeout`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::b2bua::{Bridge, InboundLeg, OutboundLeg, Pending, Side, body_of, map_failure};
use super::handle::{Answer, Board, Query};
use super::operators::{OperatorView, Operators};
use super::routing::{Route, dialled, forward_uri, route, target_for};
use super::trunks::{Health, Purpose, Trunks};
use crate::config::{Config, NumberKind};
use crate::sip::dialog::{Dialog, DialogId};
use crate::sip::digest::DigestAuth;
use crate::sip::endpoint::{ClientFailure, ClientTx, Endpoint, EndpointEvent, ServerTx, Transmit};
use crate::sip::registrar::{Registrar, RegistrarSettings, RegistrationChange};
use crate::sip::transport::Target;
use crate::sip::transport::driver::Inbound;
use crate::sip::wire::{CSeq, Contact, Headers, Method, NameAddr, Request, Response};
use chrono::{DateTime, Utc};

/// An engine-wide call identifier (also the journal's key).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct CallId(pub String);

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a call ended, as the journal records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Disposition {
    /// Answered and talked.
    Answered,
    /// The caller hung up before an answer.
    Abandoned,
    /// The engine refused it (unknown number, overload, bad request).
    Rejected,
    /// The far side was busy.
    Busy,
    /// Nobody answered.
    NoAnswer,
    /// The far side could not be reached.
    Unreachable,
    /// Something else failed.
    Failed,
}

/// What happened to a call, for the event bus and the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// A new call arrived and was routed.
    Offered {
        /// The call.
        call: CallId,
        /// Caller (From user).
        from: String,
        /// The dialled number.
        to: String,
        /// The number's kind.
        kind: NumberKind,
        /// The number's tenant, if any.
        tenant: Option<String>,
    },
    /// The call was answered.
    Answered {
        /// The call.
        call: CallId,
        /// Time from arrival to answer.
        wait: Duration,
    },
    /// An operator's softphone registered (first binding) or lost its last binding.
    Registration {
        /// The operator's extension.
        extension: String,
        /// Whether it is now reachable.
        online: bool,
    },
    /// An operator's state or registration changed.
    OperatorState(OperatorView),
    /// A trunk went up or down.
    TrunkHealth {
        /// Trunk name.
        trunk: String,
        /// Its new health.
        health: Health,
        /// Why.
        reason: String,
    },
    /// The call is over.
    Ended {
        /// The call.
        call: CallId,
        /// How it ended.
        disposition: Disposition,
        /// The SIP status the caller got (200 for answered calls).
        status: u16,
        /// Time from arrival to answer (or to the end, if never answered).
        wait: Duration,
        /// Time from answer to the end.
        talk: Duration,
        /// The number's tenant, if any.
        tenant: Option<String>,
    },
}

/// Limits on new calls.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    /// New calls beyond this many concurrent ones get 503.
    pub max_concurrent: usize,
    /// New calls per second beyond which 503 is answered.
    pub max_rate: u32,
    /// Retry-After seconds on those 503s.
    pub retry_after: u32,
}

struct RateLimiter {
    tokens: f64,
    last: Option<Instant>,
}

struct Call {
    id: CallId,
    tenant: Option<String>,
    bridge: Bridge,
    /// The end has been reported; the state stays only while transactions of the
    /// call are still running.
    reported: bool,
    /// Client transactions of this call still running.
    outstanding: u32,
}

/// The call-control core.
pub struct CallControl {
    config: Arc<Config>,
    endpoint: Endpoint,
    registrar: Registrar,
    trunks: Trunks,
    operators: Operators,
    /// Wall-clock time at a monotonic instant: the core derives UTC from `now`.
    wall_anchor: (Instant, DateTime<Utc>),
    trunk_tx: HashMap<ClientTx, (usize, Purpose)>,
    admission: Admission,
    rate: RateLimiter,
    draining: bool,
    refused_overload: u64,
    next_key: u64,
    calls: HashMap<u64, Call>,
    by_server_tx: HashMap<ServerTx, u64>,
    by_client_tx: HashMap<ClientTx, (u64, Pending)>,
    by_dialog: HashMap<DialogId, (u64, Side)>,
    events: VecDeque<CallEvent>,
}

impl std::fmt::Debug for CallControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallControl")
            .field("calls", &self.calls.len())
            .finish_non_exhaustive()
    }
}

impl CallControl {
    /// A call-control core over `endpoint`.
    pub fn new(
        config: Arc<Config>,
        mut endpoint: Endpoint,
        admission: Admission,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Self {
        let burst = f64::from(admission.max_rate.max(1));
        let secret = format!("{:08x}{:08x}", endpoint.random_u32(), endpoint.random_u32());
        let registrar = Registrar::new(
            DigestAuth::new(&config.sip.realm, &secret, now)
                .with_algorithms(&config.sip.digest_algorithms),
            RegistrarSettings::default(),
        );
        let contact = endpoint.contact_uri(None, crate::sip::transport::TransportKind::Udp);
        let trunks = Trunks::new(&config.trunks, now, contact, &secret);
        let operators = Operators::new(&config.operators, config.queue.wrap_up, now, wall);
        Self {
            config,
            endpoint,
            registrar,
            trunks,
            operators,
            wall_anchor: (now, wall),
            trunk_tx: HashMap::new(),
            admission,
            rate: RateLimiter {
                tokens: burst,
                last: None,
            },
            draining: false,
            refused_overload: 0,
            next_key: 1,
            calls: HashMap::new(),
            by_server_tx: HashMap::new(),
            by_client_tx: HashMap::new(),
            by_dialog: HashMap::new(),
            events: VecDeque::new(),
        }
    }

    /// Stops taking new calls (SIGTERM): they get 503 with Retry-After; calls in
    /// progress go on until they end.
    pub fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
    }

    /// New calls refused with 503 since start (concurrency or rate limit, draining).
    pub fn refused_overload(&self) -> u64 {
        self.refused_overload
    }

    /// Calls in progress.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// The SIP endpoint (for its statistics).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Something arrived from the transports.
    pub fn handle_inbound(&mut self, now: Instant, inbound: Inbound) {
        match inbound {
            Inbound::Message {
                message: Ok(message),
                source,
                ..
            } => self.endpoint.handle_message(now, message, source),
            Inbound::Message {
                message: Err(err),
                source,
                ..
            } => {
                tracing::debug!(%source, error = %err, "unparseable message");
                self.endpoint.reject_unparseable(&err, source);
            }
            Inbound::Unreachable { target } => self.endpoint.handle_transport_error(target),
        }
        self.process(now);
    }

    /// The wall-clock time at monotonic `now`.
    pub fn wall(&self, now: Instant) -> DateTime<Utc> {
        let (epoch, wall) = self.wall_anchor;
        let elapsed =
            chrono::Duration::from_std(now.saturating_duration_since(epoch)).unwrap_or_default();
        wall + elapsed
    }

    /// Re-anchors wall-clock time (the driver does this now and then, so NTP
    /// corrections reach the journal).
    pub fn set_wall_clock(&mut self, now: Instant, wall: DateTime<Utc>) {
        self.wall_anchor = (now, wall);
    }

    /// Answers a query from the console or the API.
    pub fn handle_query(&mut self, now: Instant, query: Query) -> Answer {
        let answer = match query {
            Query::Operators => Answer::Operators(self.operators.views()),
            Query::SetOperatorState {
                extension,
                state,
                reason,
            } => {
                let wall = self.wall(now);
                Answer::OperatorState(self.operators.request(&extension, state, reason, now, wall))
            }
            Query::Board => Answer::Board(Board {
                waiting: Vec::new(),
                operators: self.operators.views(),
                calls_active: self.calls.len(),
            }),
        };
        self.report_operators();
        answer
    }

    fn report_operators(&mut self) {
        for view in self.operators.take_changes() {
            self.events.push_back(CallEvent::OperatorState(view));
        }
    }

    /// Deadlines that have passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.endpoint.handle_timeout(now);
        if self.operators.next_deadline().is_some_and(|at| at <= now) {
            let wall = self.wall(now);
            self.operators.handle_timeout(now, wall);
            self.report_operators();
        }
        while let Some((index, purpose, request, target)) = self.trunks.poll_request(now) {
            let tx = self.endpoint.send_request(now, request, target);
            self.trunk_tx.insert(tx, (index, purpose));
        }
        if self.registrar.next_expiry().is_some_and(|at| at <= now) {
            for extension in self.registrar.expire(now) {
                tracing::info!(%extension, "registration expired");
                let wall = self.wall(now);
                self.operators.set_registered(&extension, false, now, wall);
                self.events.push_back(CallEvent::Registration {
                    extension,
                    online: false,
                });
            }
        }
        self.process(now);
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.endpoint.poll_transmit()
    }

    /// The next call event.
    pub fn poll_event(&mut self) -> Option<CallEvent> {
        self.events.pop_front()
    }

    /// When [`CallControl::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.endpoint.poll_timeout(),
            self.registrar.next_expiry(),
            self.trunks.next_deadline(),
            self.operators.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn process(&mut self, now: Instant) {
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                EndpointEvent::Request {
                    tx,
                    request,
                    source,
                } => self.on_request(now, tx, request, source),
                EndpointEvent::Ack { request, .. } => self.on_ack(now, request),
                EndpointEvent::Cancelled { tx } => self.on_cancelled(now, tx),
                EndpointEvent::AckTimeout { tx } => self.on_ack_timeout(now, tx),
                EndpointEvent::Response { tx, response } => self.on_response(now, tx, response),
                EndpointEvent::Failed { tx, reason } => self.on_failed(now, tx, reason),
            }
        }
    }

    // -- small helpers ----------------------------------------------------------

    fn reply(
        &mut self,
        now: Instant,
        tx: ServerTx,
        request: &Request,
        status: u16,
        reason: Option<&str>,
    ) {
        let mut response = match reason {
            Some(r) => request.response_with_reason(status, r),
            None => request.response(status),
        };
        if response.headers.to.tag().is_none() {
            let tag = self.endpoint.new_tag();
            response.headers.to.set_tag(&tag);
        }
        self.endpoint.respond(now, tx, response);
    }

    fn admit(&mut self, now: Instant) -> Result<(), &'static str> {
        if self.draining {
            return Err("Service Unavailable: shutting down");
        }
        if self.calls.len() >= self.admission.max_concurrent {
            return Err("Service Unavailable: too many calls");
        }
        let rate = f64::from(self.admission.max_rate.max(1));
        let elapsed = self
            .rate
            .last
            .map_or(0.0, |l| now.saturating_duration_since(l).as_secs_f64());
        self.rate.last = Some(now);
        self.rate.tokens = (self.rate.tokens + elapsed * rate).min(rate);
        if self.rate.tokens < 1.0 {
            return Err("Service Unavailable: call rate limit");
        }
        self.rate.tokens -= 1.0;
        Ok(())
    }

    fn new_call_id(&mut self) -> CallId {
        CallId(format!(
            "c{:08x}{:08x}",
            self.endpoint.random_u32(),
            self.endpoint.random_u32()
        ))
    }

    // -- requests -------------------------------------------------------------------

    fn on_request(&mut self, now: Instant, tx: ServerTx, request: Request, source: Target) {
        if request.headers.to.tag().is_some() {
            return self.on_in_dialog(now, tx, request);
        }
        match request.method {
            Method::Invite => self.on_invite(now, tx, request, source),
            Method::Options => {
                let mut r = request.response(200);
                let tag = self.endpoint.new_tag();
                r.headers.to.set_tag(&tag);
                r.headers.push("Allow", self.endpoint.allow_header());
                r.headers.push("Accept", "application/sdp");
                r.headers
                    .push("Supported", self.endpoint.supported_header());
                self.endpoint.respond(now, tx, r);
            }
            Method::Register => self.on_register(now, tx, request, source),
            _ => self.reply(now, tx, &request, 481, None),
        }
    }

    fn on_register(&mut self, now: Instant, tx: ServerTx, request: Request, source: Target) {
        let config = self.config.clone();
        let password_of = |ext: &str| config.operator(ext).map(|o| o.password.clone());
        let (mut response, change) = self.registrar.handle(now, &request, source, password_of);
        let tag = self.endpoint.new_tag();
        response.headers.to.set_tag(&tag);
        self.endpoint.respond(now, tx, response);
        if let Some(RegistrationChange::Online(e) | RegistrationChange::Offline(e)) = &change {
            let wall = self.wall(now);
            let online = matches!(change, Some(RegistrationChange::Online(_)));
            self.operators.set_registered(e, online, now, wall);
            self.report_operators();
        }
        match change {
            Some(RegistrationChange::Online(extension)) => {
                tracing::info!(%extension, %source, "operator softphone registered");
                self.events.push_back(CallEvent::Registration {
                    extension,
                    online: true,
                });
            }
            Some(RegistrationChange::Offline(extension)) => {
                tracing::info!(%extension, "operator softphone unregistered");
                self.events.push_back(CallEvent::Registration {
                    extension,
                    online: false,
                });
            }
            None => {}
        }
    }

    fn on_invite(&mut self, now: Instant, tx: ServerTx, invite: Request, source: Target) {
        let config = self.config.clone();
        // Calls come from the providers' trunks or from registered operators, never
        // from anyone else: a stranger's INVITE must not become a paid outbound call.
        let from_trunk = self.trunks.trunk_of_source(source.addr.ip()).is_some();
        if !from_trunk && self.registrar.registered_source(&source, now).is_none() {
            tracing::warn!(%source, uri = %invite.uri, from = %invite.headers.from.uri, "INVITE from an unknown address refused");
            return self.reply(
                now,
                tx,
                &invite,
                403,
                Some("Forbidden: not a trunk or a registered operator"),
            );
        }
        let number = match route(&config, &invite) {
            Route::Number(n) => n,
            Route::Unknown => {
                tracing::info!(uri = %invite.uri, from = %invite.headers.from.uri, "INVITE for an unknown number");
                return self.reply(
                    now,
                    tx,
                    &invite,
                    404,
                    Some("Not Found: number not served here"),
                );
            }
        };
        if invite.headers.max_forwards == Some(0) {
            return self.reply(now, tx, &invite, 483, None);
        }
        if let Err(reason) = self.admit(now) {
            self.refused_overload += 1;
            let mut r = invite.response_with_reason(503, reason);
            let tag = self.endpoint.new_tag();
            r.headers.to.set_tag(&tag);
            r.headers
                .push("Retry-After", self.admission.retry_after.to_string());
            return self.endpoint.respond(now, tx, r);
        }
        match number.kind {
            NumberKind::Forward => {
                let dialled = dialled(&invite).unwrap_or_default();
                let Some(uri) = forward_uri(number, &dialled) else {
                    return self.reply(
                        now,
                        tx,
                        &invite,
                        500,
                        Some("Server Internal Error: bad forward target"),
                    );
                };
                let Some(target) = target_for(&uri) else {
                    return self.reply(
                        now,
                        tx,
                        &invite,
                        502,
                        Some("Bad Gateway: forward target is not an IP address"),
                    );
                };
                let tenant = number.tenant.clone();
                self.start_bridge(
                    now,
                    tx,
                    invite,
                    source,
                    uri,
                    target,
                    number.kind,
                    tenant,
                    dialled,
                );
            }
            _ => self.reply(
                now,
                tx,
                &invite,
                480,
                Some("Temporarily Unavailable: number kind not served yet"),
            ),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn start_bridge(
        &mut self,
        now: Instant,
        tx: ServerTx,
        invite: Request,
        source: Target,
        uri: crate::sip::wire::Uri,
        target: Target,
        kind: NumberKind,
        tenant: Option<String>,
        dialled: String,
    ) {
        let key = self.next_key;
        self.next_key += 1;
        let call_id = self.new_call_id();
        let a_tag = self.endpoint.new_tag();
        let b_tag = self.endpoint.new_tag();
        let h = &invite.headers;
        let mut from = NameAddr {
            display_name: h.from.display_name.clone(),
            uri: h.from.uri.clone(),
            params: Vec::new(),
        };
        from.set_tag(&b_tag);
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
            contact: vec![Contact::Address(NameAddr::new(
                self.endpoint.contact_uri(None, target.transport),
            ))],
            route: Vec::new(),
            record_route: Vec::new(),
            other: Vec::new(),
        };
        headers.push("Allow", self.endpoint.allow_header());
        if let Some((ct, _)) = body_of(&invite.headers, &invite.body) {
            headers.push("Content-Type", ct);
        }
        let b_invite = Request {
            method: Method::Invite,
            uri,
            headers,
            body: invite.body.clone(),
        };
        let b_tx = self.endpoint.send_request(now, b_invite, target);
        let Some(sent) = self.endpoint.client_request(b_tx).cloned() else {
            return;
        };
        let from_user = invite.headers.from.uri.user_unescaped().unwrap_or_default();
        let call = Call {
            id: call_id.clone(),
            tenant: tenant.clone(),
            reported: false,
            outstanding: 1,
            bridge: Bridge {
                a: InboundLeg {
                    tx,
                    invite,
                    source,
                    tag: a_tag,
                    dialog: None,
                    answered: false,
                    acked: false,
                    bye_after_ack: false,
                },
                b: OutboundLeg {
                    tx: b_tx,
                    invite: sent,
                    target,
                    dialog: None,
                    finished: false,
                    cancel_wanted: false,
                    ack_waits_for_caller: false,
                },
                started: now,
                answered_at: None,
                ended: [false, false],
            },
        };
        self.by_server_tx.insert(tx, key);
        self.by_client_tx.insert(b_tx, (key, Pending::Invite));
        self.calls.insert(key, call);
        self.events.push_back(CallEvent::Offered {
            call: call_id,
            from: from_user,
            to: dialled,
            kind,
            tenant,
        });
    }

    fn on_in_dialog(&mut self, now: Instant, tx: ServerTx, request: Request) {
        let Some(id) = DialogId::of_request(&request) else {
            return;
        };
        let Some(&(key, side)) = self.by_dialog.get(&id) else {
            return self.reply(now, tx, &request, 481, None);
        };
        let Some(mut call) = self.calls.remove(&key) else {
            return self.reply(now, tx, &request, 481, None);
        };
        self.in_dialog(now, key, &mut call, side, tx, request);
        self.put_back(key, call);
    }

    fn in_dialog(
        &mut self,
        now: Instant,
        key: u64,
        call: &mut Call,
        side: Side,
        tx: ServerTx,
        request: Request,
    ) {
        let Some(dialog) = call.bridge.dialog_mut(side) else {
            return;
        };
        if let Err(e) = dialog.handle_request(&request) {
            self.reply(
                now,
                tx,
                &request,
                500,
                Some(&format!("Server Internal Error: {e}")),
            );
            return;
        }
        match request.method {
            Method::Bye => {
                self.reply(now, tx, &request, 200, None);
                // The call ends when the other side's BYE completes.
                call.bridge.end_side(side);
                self.hang_up(now, key, call, side.other());
                self.end_if_both_sides_ended(call, now);
            }
            Method::Options => {
                self.reply(now, tx, &request, 200, None);
            }
            Method::Invite | Method::Update | Method::Info => {
                self.relay(now, key, call, side, tx, request);
            }
            _ => {
                self.reply(now, tx, &request, 405, None);
            }
        }
    }

    /// Relays an in-dialog request to the other leg; its final answer comes back.
    fn relay(
        &mut self,
        now: Instant,
        key: u64,
        call: &mut Call,
        from_side: Side,
        tx: ServerTx,
        request: Request,
    ) {
        let to = from_side.other();
        let target = match to {
            Side::A => call.bridge.a.source,
            Side::B => call.bridge.b.target,
        };
        let Some(dialog) = call.bridge.dialog_mut(to) else {
            return self.reply(
                now,
                tx,
                &request,
                491,
                Some("Request Pending: other leg not ready"),
            );
        };
        let mut out = dialog.request(request.method.clone());
        if let Some((ct, body)) = body_of(&request.headers, &request.body) {
            out.headers.push("Content-Type", ct);
            out.body = body;
        }
        let late_offer = request.method == Method::Invite && request.body.is_empty();
        let target = target_for(dialog.next_hop())
            .map(|t| Target {
                connection: None,
                ..t
            })
            .unwrap_or(target);
        let ctx = self.endpoint.send_request(now, out, target);
        self.expect(
            call,
            key,
            ctx,
            Pending::Relay {
                from: tx,
                to,
                late_offer,
            },
        );
    }

    /// Sends BYE on `side` if it has a dialog; marks it ended otherwise.
    fn hang_up(&mut self, now: Instant, key: u64, call: &mut Call, side: Side) {
        if call.bridge.ended[side as usize] {
            return;
        }
        if side == Side::A
            && call.bridge.a.answered
            && !call.bridge.a.acked
            && call.bridge.a.dialog.is_some()
        {
            call.bridge.a.bye_after_ack = true;
            return;
        }
        let target = match side {
            Side::A => call.bridge.a.source,
            Side::B => call.bridge.b.target,
        };
        let Some(dialog) = call.bridge.dialog_mut(side) else {
            call.bridge.end_side(side);
            return;
        };
        let bye = dialog.request(Method::Bye);
        let target = target_for(dialog.next_hop())
            .map(|t| Target {
                connection: None,
                ..t
            })
            .unwrap_or(target);
        let tx = self.endpoint.send_request(now, bye, target);
        self.expect(call, key, tx, Pending::Bye(side));
    }

    fn on_ack(&mut self, now: Instant, ack: Request) {
        let Some(id) = DialogId::of_request(&ack) else {
            return;
        };
        let Some(&(key, side)) = self.by_dialog.get(&id) else {
            return;
        };
        let Some(mut call) = self.calls.remove(&key) else {
            return;
        };
        if side == Side::A {
            call.bridge.a.acked = true;
            if let Some(d) = call.bridge.a.dialog.as_mut() {
                d.confirm(None);
            }
            if call.bridge.b.ack_waits_for_caller {
                call.bridge.b.ack_waits_for_caller = false;
                self.ack_b(&mut call, body_of(&ack.headers, &ack.body));
            }
            if call.bridge.a.bye_after_ack {
                call.bridge.a.bye_after_ack = false;
                self.hang_up(now, key, &mut call, Side::A);
                self.end_if_both_sides_ended(&mut call, now);
            }
        }
        self.put_back(key, call);
    }

    fn ack_b(&mut self, call: &mut Call, body: Option<(String, Bytes)>) {
        let Some(dialog) = call.bridge.b.dialog.as_ref() else {
            return;
        };
        let ack = dialog.ack(
            call.bridge.b.invite.headers.cseq.seq,
            body.as_ref().map(|(ct, b)| (ct.as_str(), b.clone())),
        );
        self.endpoint
            .send_ack(call.bridge.b.tx, ack, call.bridge.b.target);
    }

    fn on_cancelled(&mut self, now: Instant, tx: ServerTx) {
        let Some(&key) = self.by_server_tx.get(&tx) else {
            return;
        };
        let Some(mut call) = self.calls.remove(&key) else {
            return;
        };
        self.reply_a(now, &mut call, 487, None);
        if !call.bridge.b.finished {
            if self.endpoint.can_cancel(call.bridge.b.tx) {
                if let Some(c) = self.endpoint.cancel(now, call.bridge.b.tx) {
                    self.expect(&mut call, key, c, Pending::Cancel);
                }
            } else {
                call.bridge.b.cancel_wanted = true;
            }
        }
        self.finish(&mut call, now, Disposition::Abandoned, 487);
        // B may still need its CANCEL answered, or an ACK and BYE: the call stays
        // in the table until its transactions are done.
        self.put_back(key, call);
    }

    /// Starts tracking a client transaction of a call.
    fn expect(&mut self, call: &mut Call, key: u64, tx: ClientTx, pending: Pending) {
        call.outstanding += 1;
        self.by_client_tx.insert(tx, (key, pending));
    }

    fn on_ack_timeout(&mut self, now: Instant, tx: ServerTx) {
        let Some(&key) = self.by_server_tx.get(&tx) else {
            return;
        };
        let Some(mut call) = self.calls.remove(&key) else {
            return;
        };
        tracing::info!(call = %call.id, "no ACK for our 2xx; ending the call");
        call.bridge.a.acked = true;
        call.bridge.a.bye_after_ack = false;
        self.hang_up(now, key, &mut call, Side::A);
        self.hang_up(now, key, &mut call, Side::B);
        self.put_back(key, call);
    }

    /// Sends a final (or provisional) response on leg A's INVITE.
    fn reply_a(&mut self, now: Instant, call: &mut Call, status: u16, reason: Option<&str>) {
        if call.bridge.a.answered {
            return;
        }
        let a = &mut call.bridge.a;
        let mut r = match reason {
            Some(reason) => a.invite.response_with_reason(status, reason),
            None => a.invite.response(status),
        };
        r.headers.to.set_tag(&a.tag);
        if status >= 200 {
            a.answered = true;
        }
        self.endpoint.respond(now, a.tx, r);
    }

    // -- responses ----------------------------------------------------------------

    fn on_response(&mut self, now: Instant, tx: ClientTx, response: Response) {
        if let Some(&(index, purpose)) = self.trunk_tx.get(&tx) {
            if !response.is_provisional() {
                self.trunk_tx.remove(&tx);
                self.trunks
                    .handle_response(now, index, purpose, Some(&response));
                self.report_trunk_health();
            }
            return;
        }
        let Some(&(key, pending)) = self.by_client_tx.get(&tx) else {
            return;
        };
        // A final response ends our interest in the transaction. (An INVITE's stays
        // in Accepted for a while; its 2xx retransmissions are re-ACKed by the
        // endpoint, and a 2xx from another fork arrives as a stray.)
        let over = !response.is_provisional();
        if over {
            self.by_client_tx.remove(&tx);
        }
        let Some(mut call) = self.calls.remove(&key) else {
            self.stray(now, tx, pending, &response);
            return;
        };
        if over {
            call.outstanding = call.outstanding.saturating_sub(1);
        }
        match pending {
            Pending::Invite => self.on_b_invite_response(now, key, &mut call, response),
            Pending::Bye(side) if over => {
                call.bridge.end_side(side);
                self.end_if_both_sides_ended(&mut call, now);
            }
            Pending::Bye(_) | Pending::Cancel => {}
            Pending::Relay {
                from,
                to,
                late_offer,
            } => {
                self.on_relay_response(now, &mut call, tx, from, to, late_offer, response);
            }
        }
        self.put_back(key, call);
    }

    /// A response for a call already gone: a late 2xx to our INVITE is ACKed and
    /// hung up so the far end does not ring forever.
    fn stray(&mut self, now: Instant, tx: ClientTx, pending: Pending, response: &Response) {
        let live =
            DialogId::of_response(response).is_some_and(|id| self.by_dialog.contains_key(&id));
        if pending == Pending::Invite && response.is_success() && !live {
            if let Some(invite) = self.endpoint.client_request(tx).cloned() {
                if let Ok(mut d) = Dialog::uac(
                    &invite,
                    response,
                    self.endpoint
                        .contact_uri(None, crate::sip::transport::TransportKind::Udp),
                ) {
                    if let Some(target) = target_for(d.next_hop()) {
                        self.endpoint
                            .send_ack(tx, d.ack(invite.headers.cseq.seq, None), target);
                        let bye = d.request(Method::Bye);
                        let _ = self.endpoint.send_request(now, bye, target);
                    }
                }
            }
        }
    }

    /// Reports the end once both sides have hung up.
    fn end_if_both_sides_ended(&mut self, call: &mut Call, now: Instant) {
        if call.bridge.ended == [true, true] {
            let disposition = if call.bridge.answered_at.is_some() {
                Disposition::Answered
            } else {
                Disposition::Abandoned
            };
            self.finish(call, now, disposition, 200);
        }
    }

    fn on_b_invite_response(
        &mut self,
        now: Instant,
        key: u64,
        call: &mut Call,
        response: Response,
    ) {
        let b_tx = call.bridge.b.tx;
        if response.status == 100 {
            return;
        }
        if response.is_provisional() {
            if response.headers.to.tag().is_some() && call.bridge.b.dialog.is_none() {
                let contact = self
                    .endpoint
                    .contact_uri(None, call.bridge.b.target.transport);
                if let Ok(d) = Dialog::uac(&call.bridge.b.invite, &response, contact) {
                    self.by_dialog.insert(d.id().clone(), (key, Side::B));
                    call.bridge.b.dialog = Some(d);
                }
            }
            if call.bridge.b.cancel_wanted {
                call.bridge.b.cancel_wanted = false;
                if let Some(c) = self.endpoint.cancel(now, b_tx) {
                    self.expect(call, key, c, Pending::Cancel);
                }
                return;
            }
            if !call.bridge.a.answered {
                self.relay_to_a(now, call, &response, false);
            }
            return;
        }
        if response.is_success() {
            let contact = self
                .endpoint
                .contact_uri(None, call.bridge.b.target.transport);
            let new_dialog = match Dialog::uac(&call.bridge.b.invite, &response, contact) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(call = %call.id, error = %e, "unusable 2xx on the outbound leg");
                    return;
                }
            };
            let known = call.bridge.b.dialog.as_ref().is_some_and(|d| {
                d.id() == new_dialog.id() && d.state() == crate::sip::dialog::DialogState::Confirmed
            });
            if known {
                return; // a retransmission while our ACK waits for the caller's
            }
            let other_fork = call.bridge.b.finished && !known;
            if other_fork || call.bridge.a.answered {
                // A second fork, or the caller already gone: ACK and hang it up.
                let mut d = new_dialog;
                let target = target_for(d.next_hop()).unwrap_or(call.bridge.b.target);
                self.endpoint.send_ack(
                    b_tx,
                    d.ack(call.bridge.b.invite.headers.cseq.seq, None),
                    target,
                );
                let bye = d.request(Method::Bye);
                let tx = self.endpoint.send_request(now, bye, target);
                // A fork's BYE is not this call's B leg ending: track it as a
                // CANCEL-like side transaction.
                let pending = if other_fork {
                    Pending::Cancel
                } else {
                    Pending::Bye(Side::B)
                };
                self.expect(call, key, tx, pending);
                return;
            }
            let mut d = new_dialog;
            d.confirm(Some(&response));
            if let Some(old) = call.bridge.b.dialog.take() {
                self.by_dialog.remove(old.id());
            }
            self.by_dialog.insert(d.id().clone(), (key, Side::B));
            let target = target_for(d.next_hop()).unwrap_or(call.bridge.b.target);
            call.bridge.b.target = target;
            call.bridge.b.dialog = Some(d);
            call.bridge.b.finished = true;
            if call.bridge.b.invite.body.is_empty() {
                call.bridge.b.ack_waits_for_caller = true;
            } else {
                self.ack_b(call, None);
            }
            call.bridge.answered_at = Some(now);
            self.relay_to_a(now, call, &response, true);
            self.events.push_back(CallEvent::Answered {
                call: call.id.clone(),
                wait: now - call.bridge.started,
            });
            return;
        }
        // A final failure.
        call.bridge.b.finished = true;
        call.bridge.ended[Side::B as usize] = true;
        if let Some(d) = call.bridge.b.dialog.take() {
            self.by_dialog.remove(d.id());
        }
        if call.bridge.a.answered {
            return; // the caller is gone; nothing to map
        }
        let (status, reason) = map_failure(Ok(&response));
        self.reply_a(now, call, status, Some(&reason));
        let disposition = match response.status {
            486 | 600 => Disposition::Busy,
            480 | 408 => Disposition::NoAnswer,
            603 => Disposition::Rejected,
            _ => Disposition::Failed,
        };
        self.finish(call, now, disposition, status);
    }

    /// Maps a provisional or 2xx from B onto A, with our tag, Contact and B's body.
    fn relay_to_a(&mut self, now: Instant, call: &mut Call, response: &Response, success: bool) {
        let a = &mut call.bridge.a;
        let mut r = a
            .invite
            .response_with_reason(response.status, &response.reason);
        r.headers.to.set_tag(&a.tag);
        let contact = self.endpoint.contact_uri(None, a.source.transport);
        r.headers
            .contact
            .push(Contact::Address(NameAddr::new(contact.clone())));
        r.headers.record_route = Vec::new();
        if let Some((ct, body)) = body_of(&response.headers, &response.body) {
            r.headers.push("Content-Type", ct);
            r.body = body;
        }
        if success {
            r.headers.push("Allow", self.endpoint.allow_header());
            a.answered = true;
            if let Ok(d) = Dialog::uas(&a.invite, &a.tag, contact) {
                self.by_dialog
                    .insert(d.id().clone(), (self.key_of_server(a.tx), Side::A));
                a.dialog = Some(d);
            }
        }
        self.endpoint.respond(now, a.tx, r);
    }

    fn key_of_server(&self, tx: ServerTx) -> u64 {
        self.by_server_tx.get(&tx).copied().unwrap_or_default()
    }

    #[allow(clippy::too_many_arguments)]
    fn on_relay_response(
        &mut self,
        now: Instant,
        call: &mut Call,
        tx: ClientTx,
        from: ServerTx,
        to: Side,
        late_offer: bool,
        response: Response,
    ) {
        if response.status == 100 {
            return;
        }
        let Some(original) = self.endpoint.server_request(from).cloned() else {
            return;
        };
        let sent = self.endpoint.client_request(tx).cloned();
        if response.is_success() {
            if let Some(d) = call.bridge.dialog_mut(to) {
                d.handle_refresh_response(&response);
            }
            if original.method == Method::Invite && !late_offer {
                // ACK the re-INVITE's 2xx on the far leg now.
                if let (Some(d), Some(sent)) = (call.bridge.dialog_mut(to), sent) {
                    let ack = d.ack(sent.headers.cseq.seq, None);
                    let target = target_for(d.next_hop()).unwrap_or(match to {
                        Side::A => call.bridge.a.source,
                        Side::B => call.bridge.b.target,
                    });
                    self.endpoint.send_ack(tx, ack, target);
                }
            }
        }
        let mut r = original.response_with_reason(response.status, &response.reason);
        let local_tag = match to.other() {
            Side::A => call.bridge.a.tag.clone(),
            Side::B => call
                .bridge
                .b
                .invite
                .headers
                .from
                .tag()
                .unwrap_or_default()
                .to_owned(),
        };
        r.headers.to.set_tag(&local_tag);
        if original.method == Method::Invite || original.method == Method::Update {
            let transport = match to.other() {
                Side::A => call.bridge.a.source.transport,
                Side::B => call.bridge.b.target.transport,
            };
            r.headers.contact.push(Contact::Address(NameAddr::new(
                self.endpoint.contact_uri(None, transport),
            )));
        }
        if let Some((ct, body)) = body_of(&response.headers, &response.body) {
            r.headers.push("Content-Type", ct);
            r.body = body;
        }
        self.endpoint.respond(now, from, r);
    }

    fn report_trunk_health(&mut self) {
        for change in self.trunks.take_changes() {
            tracing::info!(trunk = %change.trunk, health = ?change.health, reason = %change.reason, "trunk health changed");
            self.events.push_back(CallEvent::TrunkHealth {
                trunk: change.trunk,
                health: change.health,
                reason: change.reason,
            });
        }
    }

    fn on_failed(&mut self, now: Instant, tx: ClientTx, reason: ClientFailure) {
        if let Some((index, purpose)) = self.trunk_tx.remove(&tx) {
            self.trunks.handle_response(now, index, purpose, None);
            self.report_trunk_health();
            return;
        }
        let Some((key, pending)) = self.by_client_tx.remove(&tx) else {
            return;
        };
        let Some(mut call) = self.calls.remove(&key) else {
            return;
        };
        call.outstanding = call.outstanding.saturating_sub(1);
        match pending {
            Pending::Invite => {
                call.bridge.b.finished = true;
                call.bridge.ended[Side::B as usize] = true;
                if !call.bridge.a.answered {
                    let (status, text) = map_failure(Err(reason));
                    self.reply_a(now, &mut call, status, Some(&text));
                    let disposition = match reason {
                        ClientFailure::Timeout => Disposition::NoAnswer,
                        ClientFailure::Transport => Disposition::Unreachable,
                    };
                    self.finish(&mut call, now, disposition, status);
                }
            }
            Pending::Bye(side) => {
                // No answer to our BYE: that side is gone all the same.
                call.bridge.end_side(side);
                self.end_if_both_sides_ended(&mut call, now);
            }
            Pending::Cancel => {}
            Pending::Relay { from, .. } => {
                if let Some(original) = self.endpoint.server_request(from).cloned() {
                    let status = if reason == ClientFailure::Timeout {
                        408
                    } else {
                        502
                    };
                    let mut r = original.response(status);
                    r.headers.to.set_tag(&call.bridge.a.tag);
                    self.endpoint.respond(now, from, r);
                }
            }
        }
        self.put_back(key, call);
    }

    // -- the end of a call ------------------------------------------------------------

    /// Reports the end of a call, once.
    fn finish(&mut self, call: &mut Call, now: Instant, disposition: Disposition, status: u16) {
        if call.reported {
            return;
        }
        call.reported = true;
        let wait = call.bridge.answered_at.unwrap_or(now) - call.bridge.started;
        let talk = call.bridge.answered_at.map_or(Duration::ZERO, |a| now - a);
        self.events.push_back(CallEvent::Ended {
            call: call.id.clone(),
            disposition,
            status,
            wait,
            talk,
            tenant: call.tenant.clone(),
        });
    }

    /// Returns a call to the table, or drops it when its end has been reported and
    /// none of its transactions is still running.
    fn put_back(&mut self, key: u64, call: Call) {
        if call.reported && call.outstanding == 0 {
            self.by_server_tx.remove(&call.bridge.a.tx);
            for d in [&call.bridge.a.dialog, &call.bridge.b.dialog]
                .into_iter()
                .flatten()
            {
                self.by_dialog.remove(d.id());
            }
            return;
        }
        self.calls.insert(key, call);
    }
}
