//! Simulated parties for the demo and for trying an engine by hand: an operator's
//! softphone and a resident's phone ([`SimPhone`]), and the people behind a
//! provider answering the calls the engine places ([`SimProvider`]).
//!
//! A [`SimPhone`] is a real SIP user agent (the engine's own endpoint and dialogs,
//! over its own UDP socket) with real RTP (a leg of a [`MediaEngine`] that plays a
//! prompt as its "voice"). It registers with digest credentials, places and answers
//! calls, presses keys, and hangs up, on command or by itself. It handles one call
//! at a time; a second INVITE gets 486.
//!
//! A phone binds one local address for SIP and RTP alike: loopback by default
//! ([`SimPhone::start`]), or an address of this host the engine can reach
//! ([`SimPhone::start_on`]; an unspecified address such as 0.0.0.0 is refused,
//! since the phone writes its address into its Via, Contact and SDP).

pub mod provider;

pub use provider::{Party, Script, SimProvider};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc};

use crate::media::sdp::{SdpSession, SessionDescription};
use crate::media::{LegId, MediaEngine, Playlist, SdpPreferences};
use crate::sip::dialog::Dialog;
use crate::sip::endpoint::{ClientTx, Endpoint, EndpointConfig, EndpointEvent, ServerTx};
use crate::sip::transport::Target;
use crate::sip::wire::{
    CSeq, Contact, Framing, Headers, Method, NameAddr, Request, Response, Uri, parse,
};

/// What a simulated phone does by itself.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Answer incoming calls after this long (`None`: wait for [`Command::Answer`]).
    pub auto_answer: Option<Duration>,
    /// Hang up an answered call after this long (`None`: wait for the other side).
    pub hang_up_after: Option<Duration>,
    /// The prompt played as this party's voice while a call is up.
    pub voice: String,
}

/// Orders for a simulated phone.
#[derive(Debug, Clone)]
pub enum Command {
    /// Register `user` with `password` at the engine.
    Register {
        /// Extension.
        user: String,
        /// Digest password.
        password: String,
    },
    /// Call `number` as `from`; press `digits` once answered.
    Call {
        /// What to dial.
        number: String,
        /// Our number (From user).
        from: String,
        /// Keys to press after the answer, one per second (the first two seconds
        /// after it); a `,` presses nothing for that second.
        digits: Vec<char>,
    },
    /// Answer the ringing call.
    Answer,
    /// Hang up (or cancel) the current call.
    HangUp,
}

/// What a simulated phone reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneEvent {
    /// Registration succeeded.
    Registered,
    /// Registration failed with this status.
    RegistrationFailed(u16),
    /// An incoming call rings; `from` is the caller as shown.
    Ringing {
        /// The From display name or user.
        from: String,
    },
    /// The call is up.
    Connected,
    /// The call ended (`reason` says how).
    Ended {
        /// `hangup`, `remote-hangup`, `rejected 486`, ...
        reason: String,
    },
}

/// A handle to a simulated phone.
#[derive(Clone)]
pub struct SimPhone {
    commands: mpsc::UnboundedSender<Command>,
    events: broadcast::Sender<PhoneEvent>,
    addr: SocketAddr,
}

impl std::fmt::Debug for SimPhone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimPhone")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl SimPhone {
    /// Starts a phone on a free loopback port that talks to the engine at `engine`.
    pub async fn start(
        engine: SocketAddr,
        media: MediaEngine,
        behaviour: Behaviour,
    ) -> std::io::Result<Self> {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), engine, media, behaviour).await
    }

    /// Starts a phone on a free port of `bind` (an address of this host, not an
    /// unspecified one) that talks to the engine at `engine`.
    pub async fn start_on(
        bind: IpAddr,
        engine: SocketAddr,
        media: MediaEngine,
        behaviour: Behaviour,
    ) -> std::io::Result<Self> {
        if bind.is_unspecified() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{bind} is not an address the engine can send to: bind a concrete one"),
            ));
        }
        let socket = UdpSocket::bind(SocketAddr::new(bind, 0)).await?;
        let addr = socket.local_addr()?;
        let (commands, rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(64);
        let endpoint = Endpoint::new(EndpointConfig::new(addr), rand::random());
        let state = Phone {
            socket: Arc::new(socket),
            endpoint,
            engine: Target::udp(engine),
            media,
            behaviour,
            events: events.clone(),
            call: None,
            register: None,
            local_addr: addr,
        };
        tokio::spawn(state.run(rx));
        Ok(Self {
            commands,
            events,
            addr,
        })
    }

    /// The phone's SIP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends a command.
    pub fn send(&self, command: Command) {
        let _ = self.commands.send(command);
    }

    /// Events from now on.
    pub fn events(&self) -> broadcast::Receiver<PhoneEvent> {
        self.events.subscribe()
    }
}

struct RegisterState {
    user: String,
    password: String,
    tx: Option<ClientTx>,
    cseq: u32,
    call_id: String,
    authed: bool,
    refresh_at: Option<Instant>,
}

enum Side {
    Incoming(ServerTx),
    Outgoing(ClientTx),
}

struct CallState {
    side: Side,
    invite: Request,
    dialog: Option<Dialog>,
    leg: LegId,
    sdp: SdpSession,
    local: SocketAddr,
    tag: String,
    answer_at: Option<Instant>,
    hang_up_at: Option<Instant>,
    digits: Vec<char>,
    next_digit: Option<Instant>,
    up: bool,
}

struct Phone {
    socket: Arc<UdpSocket>,
    endpoint: Endpoint,
    engine: Target,
    media: MediaEngine,
    behaviour: Behaviour,
    events: broadcast::Sender<PhoneEvent>,
    call: Option<CallState>,
    register: Option<RegisterState>,
    local_addr: SocketAddr,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl Phone {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut buf = vec![0u8; 65536];
        loop {
            self.flush().await;
            let deadline = [self.endpoint.poll_timeout(), self.own_deadline()]
                .into_iter()
                .flatten()
                .min();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => tokio::time::sleep(Duration::from_secs(3600)).await,
                }
            };
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => {
                    if let Ok((n, from)) = received {
                        if let Ok(message) = parse(Bytes::copy_from_slice(&buf[..n]), Framing::Datagram) {
                            self.endpoint.handle_message(now(), message, Target::udp(from));
                        }
                    }
                }
                command = commands.recv() => {
                    let Some(command) = command else { return };
                    self.command(command);
                }
                _ = sleep => {
                    self.endpoint.handle_timeout(now());
                    self.timers();
                }
            }
            self.process();
        }
    }

    async fn flush(&mut self) {
        while let Some(t) = self.endpoint.poll_transmit() {
            let _ = self.socket.send_to(&t.bytes, t.target.addr).await;
        }
    }

    fn own_deadline(&self) -> Option<Instant> {
        let call = self.call.as_ref();
        [
            call.and_then(|c| c.answer_at),
            call.and_then(|c| c.hang_up_at),
            call.and_then(|c| c.next_digit),
            self.register.as_ref().and_then(|r| r.refresh_at),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn emit(&self, event: PhoneEvent) {
        let _ = self.events.send(event);
    }

    fn headers(
        &self,
        from: NameAddr,
        to: NameAddr,
        call_id: String,
        seq: u32,
        method: Method,
    ) -> Headers {
        Headers {
            via: Vec::new(),
            from,
            to,
            call_id,
            cseq: CSeq { seq, method },
            max_forwards: Some(70),
            contact: vec![Contact::Address(NameAddr::new(Uri::sip(
                None,
                &crate::sip::wire::Host::Ip(self.local_addr.ip()),
                Some(self.local_addr.port()),
            )))],
            route: Vec::new(),
            record_route: Vec::new(),
            other: Vec::new(),
        }
    }

    fn engine_uri(&self, user: &str) -> Option<Uri> {
        Uri::parse(&format!(
            "sip:{}@{}",
            crate::call::inbound::escape_user(user),
            self.engine.addr
        ))
        .ok()
    }

    fn command(&mut self, command: Command) {
        let t = now();
        match command {
            Command::Register { user, password } => {
                let call_id = self.endpoint.new_call_id();
                self.register = Some(RegisterState {
                    user,
                    password,
                    tx: None,
                    cseq: 0,
                    call_id,
                    authed: false,
                    refresh_at: Some(t),
                });
            }
            Command::Call {
                number,
                from,
                digits,
            } => {
                if self.call.is_some() {
                    return;
                }
                let (Some(to), Some(from_uri)) = (self.engine_uri(&number), self.engine_uri(&from))
                else {
                    return;
                };
                let Ok((leg, local)) = self.media.open_leg() else {
                    return;
                };
                let mut sdp = SdpSession::new(u64::from(self.endpoint.random_u32()));
                let offer = sdp.offer(local, &SdpPreferences::default());
                let tag = self.endpoint.new_tag();
                let call_id = self.endpoint.new_call_id();
                let mut headers = self.headers(
                    NameAddr::new(from_uri).with_tag(&tag),
                    NameAddr::new(to.clone()),
                    call_id,
                    1,
                    Method::Invite,
                );
                headers.push("Content-Type", "application/sdp");
                let request = Request {
                    method: Method::Invite,
                    uri: to,
                    headers,
                    body: Bytes::from(offer.to_string()),
                };
                let tx = self.endpoint.send_request(t, request, self.engine);
                let Some(invite) = self.endpoint.client_request(tx).cloned() else {
                    return;
                };
                self.call = Some(CallState {
                    side: Side::Outgoing(tx),
                    invite,
                    dialog: None,
                    leg,
                    sdp,
                    local,
                    tag,
                    answer_at: None,
                    hang_up_at: None,
                    digits,
                    next_digit: None,
                    up: false,
                });
            }
            Command::Answer => self.answer(t),
            Command::HangUp => self.hang_up(t, "hangup"),
        }
    }

    fn timers(&mut self) {
        let t = now();
        if let Some(r) = self.register.as_mut() {
            if r.refresh_at.is_some_and(|at| at <= t) {
                r.refresh_at = None;
                self.send_register(t);
            }
        }
        let Some(call) = self.call.as_mut() else {
            return;
        };
        if call.answer_at.is_some_and(|at| at <= t) {
            call.answer_at = None;
            self.answer(t);
            return;
        }
        if call.next_digit.is_some_and(|at| at <= t) {
            if call.digits.is_empty() {
                call.next_digit = None;
            } else {
                let d = call.digits.remove(0);
                if d != ',' {
                    let _ = self
                        .media
                        .send_dtmf(call.leg, d, Duration::from_millis(200));
                }
                call.next_digit = Some(t + Duration::from_secs(1));
            }
        }
        if self
            .call
            .as_ref()
            .is_some_and(|c| c.hang_up_at.is_some_and(|at| at <= t))
        {
            self.hang_up(t, "hangup");
        }
    }

    fn send_register(&mut self, t: Instant) {
        let engine = self.engine.addr;
        let Some(r) = self.register.as_mut() else {
            return;
        };
        r.cseq += 1;
        let Ok(aor) = Uri::parse(&format!("sip:{}@{}", r.user, engine)) else {
            return;
        };
        let Ok(registrar) = Uri::parse(&format!("sip:{engine}")) else {
            return;
        };
        let (call_id, seq) = (r.call_id.clone(), r.cseq);
        let mut headers = self.headers(
            NameAddr::new(aor.clone()).with_tag("reg"),
            NameAddr::new(aor),
            call_id,
            seq,
            Method::Register,
        );
        headers.push("Expires", "300");
        let request = Request {
            method: Method::Register,
            uri: registrar,
            headers,
            body: Bytes::new(),
        };
        let tx = self.endpoint.send_request(t, request, self.engine);
        if let Some(r) = self.register.as_mut() {
            r.tx = Some(tx);
        }
    }

    fn register_response(&mut self, t: Instant, response: &Response) {
        let engine = self.engine.addr;
        let Some(r) = self.register.as_mut() else {
            return;
        };
        match response.status {
            200..=299 => {
                r.authed = false;
                r.refresh_at = Some(t + Duration::from_secs(240));
                self.emit(PhoneEvent::Registered);
            }
            401 if !r.authed => {
                // Answer the first challenge we support (SHA-256 or MD5).
                let challenges: Vec<String> = response
                    .headers
                    .get_all("WWW-Authenticate")
                    .map(str::to_owned)
                    .collect();
                let registrar = format!("sip:{engine}");
                let cnonce = format!("{:08x}", self.endpoint.random_u32());
                let Some(r) = self.register.as_mut() else {
                    return;
                };
                let auth = challenges.iter().find_map(|c| {
                    crate::sip::digest::answer(
                        c,
                        "REGISTER",
                        &registrar,
                        &r.user,
                        &r.password,
                        &cnonce,
                    )
                });
                let Some(auth) = auth else { return };
                r.authed = true;
                r.cseq += 1;
                let (user, call_id, seq) = (r.user.clone(), r.call_id.clone(), r.cseq);
                let (Ok(aor), Ok(uri)) = (
                    Uri::parse(&format!("sip:{user}@{engine}")),
                    Uri::parse(&registrar),
                ) else {
                    return;
                };
                let mut headers = self.headers(
                    NameAddr::new(aor.clone()).with_tag("reg"),
                    NameAddr::new(aor),
                    call_id,
                    seq,
                    Method::Register,
                );
                headers.push("Expires", "300");
                headers.push("Authorization", auth);
                let request = Request {
                    method: Method::Register,
                    uri,
                    headers,
                    body: Bytes::new(),
                };
                let tx = self.endpoint.send_request(t, request, self.engine);
                if let Some(r) = self.register.as_mut() {
                    r.tx = Some(tx);
                }
            }
            status => {
                r.authed = false;
                r.refresh_at = Some(t + Duration::from_secs(30));
                self.emit(PhoneEvent::RegistrationFailed(status));
            }
        }
    }

    fn process(&mut self) {
        let t = now();
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                EndpointEvent::Request {
                    tx,
                    request,
                    source,
                } => self.on_request(t, tx, request, source),
                EndpointEvent::Ack { .. } => {}
                EndpointEvent::Cancelled { tx } => {
                    if let Some(call) = self.call.take() {
                        if let Side::Incoming(invite_tx) = call.side {
                            if invite_tx == tx {
                                let r = call.invite.response(487).with_to_tag(&call.tag);
                                self.endpoint.respond(t, tx, r);
                            }
                        }
                        let _ = self.media.close_leg(call.leg);
                        self.emit(PhoneEvent::Ended {
                            reason: "cancelled".into(),
                        });
                    }
                }
                EndpointEvent::AckTimeout { .. } => {}
                EndpointEvent::Response { tx, response } => self.on_response(t, tx, &response),
                EndpointEvent::Failed { tx, .. } => {
                    if self.register.as_ref().and_then(|r| r.tx) == Some(tx) {
                        if let Some(r) = self.register.as_mut() {
                            r.refresh_at = Some(t + Duration::from_secs(10));
                        }
                    } else if self
                        .call
                        .as_ref()
                        .is_some_and(|c| matches!(c.side, Side::Outgoing(x) if x == tx))
                    {
                        self.end_call("no answer");
                    }
                }
            }
        }
    }

    fn on_request(&mut self, t: Instant, tx: ServerTx, request: Request, source: Target) {
        let tag = self.endpoint.new_tag();
        if request.headers.to.tag().is_some() {
            // In-dialog: BYE ends the call; anything else is acknowledged.
            let r = request.response(200);
            self.endpoint.respond(t, tx, r);
            if request.method == Method::Bye {
                self.end_call("remote-hangup");
            }
            return;
        }
        match request.method {
            Method::Invite if self.call.is_none() => {
                let Ok((leg, local)) = self.media.open_leg() else {
                    return self
                        .endpoint
                        .respond(t, tx, request.response(503).with_to_tag(&tag));
                };
                let mut sdp = SdpSession::new(u64::from(self.endpoint.random_u32()));
                let offer = std::str::from_utf8(&request.body)
                    .ok()
                    .and_then(|b| SessionDescription::parse(b).ok());
                let answered =
                    offer.and_then(|o| sdp.answer(&o, local, &SdpPreferences::default()).ok());
                let Some((_, negotiated)) = answered.as_ref() else {
                    let _ = self.media.close_leg(leg);
                    return self
                        .endpoint
                        .respond(t, tx, request.response(488).with_to_tag(&tag));
                };
                let _ = self.media.set_remote(leg, negotiated.clone());
                self.endpoint
                    .respond(t, tx, request.response(180).with_to_tag(&tag));
                let from = request
                    .headers
                    .from
                    .display_name
                    .clone()
                    .map(|d| d.trim_matches('"').to_owned());
                let from = from
                    .or_else(|| request.headers.from.uri.user_unescaped())
                    .unwrap_or_default();
                let _ = source;
                self.call = Some(CallState {
                    side: Side::Incoming(tx),
                    invite: request,
                    dialog: None,
                    leg,
                    sdp,
                    local,
                    tag,
                    answer_at: self.behaviour.auto_answer.map(|d| t + d),
                    hang_up_at: None,
                    digits: Vec::new(),
                    next_digit: None,
                    up: false,
                });
                self.emit(PhoneEvent::Ringing { from });
            }
            Method::Invite => self
                .endpoint
                .respond(t, tx, request.response(486).with_to_tag(&tag)),
            Method::Options => {
                self.endpoint
                    .respond(t, tx, request.response(200).with_to_tag(&tag))
            }
            _ => self
                .endpoint
                .respond(t, tx, request.response(405).with_to_tag(&tag)),
        }
    }

    fn answer(&mut self, t: Instant) {
        let Some(call) = self.call.as_mut() else {
            return;
        };
        let Side::Incoming(tx) = call.side else {
            return;
        };
        if call.up {
            return;
        }
        let Some(offer) = std::str::from_utf8(&call.invite.body)
            .ok()
            .and_then(|b| SessionDescription::parse(b).ok())
        else {
            return;
        };
        let Ok((answer, _)) = call
            .sdp
            .answer(&offer, call.local, &SdpPreferences::default())
        else {
            return;
        };
        let contact = Uri::sip(
            None,
            &crate::sip::wire::Host::Ip(self.local_addr.ip()),
            Some(self.local_addr.port()),
        );
        let mut r = call
            .invite
            .response(200)
            .with_to_tag(&call.tag)
            .with_body("application/sdp", Bytes::from(answer.to_string()));
        r.headers
            .contact
            .push(Contact::Address(NameAddr::new(contact.clone())));
        call.dialog = Dialog::uas(&call.invite, &call.tag, contact).ok();
        call.up = true;
        call.hang_up_at = self.behaviour.hang_up_after.map(|d| t + d);
        let _ = self.media.play(
            call.leg,
            &Playlist::one(self.behaviour.voice.clone()).looping(),
        );
        self.endpoint.respond(t, tx, r);
        self.emit(PhoneEvent::Connected);
    }

    fn on_response(&mut self, t: Instant, tx: ClientTx, response: &Response) {
        if self.register.as_ref().and_then(|r| r.tx) == Some(tx) {
            if !response.is_provisional() {
                self.register_response(t, response);
            }
            return;
        }
        let Some(call) = self.call.as_mut() else {
            return;
        };
        let Side::Outgoing(invite_tx) = call.side else {
            return;
        };
        if invite_tx != tx || response.is_provisional() {
            return;
        }
        if !response.is_success() {
            let reason = format!("rejected {}", response.status);
            return self.end_call(&reason);
        }
        if call.up {
            return;
        }
        let contact = Uri::sip(
            None,
            &crate::sip::wire::Host::Ip(self.local_addr.ip()),
            Some(self.local_addr.port()),
        );
        let Ok(mut dialog) = Dialog::uac(&call.invite, response, contact) else {
            return;
        };
        dialog.confirm(Some(response));
        if let Some(n) = std::str::from_utf8(&response.body)
            .ok()
            .and_then(|b| SessionDescription::parse(b).ok())
            .and_then(|a| call.sdp.accept_answer(&a).ok())
        {
            let _ = self.media.set_remote(call.leg, n);
        }
        let ack = dialog.ack(call.invite.headers.cseq.seq, None);
        self.endpoint.send_ack(tx, ack, self.engine);
        call.dialog = Some(dialog);
        call.up = true;
        call.hang_up_at = self.behaviour.hang_up_after.map(|d| t + d);
        call.next_digit = (!call.digits.is_empty()).then(|| t + Duration::from_secs(2));
        let _ = self.media.play(
            call.leg,
            &Playlist::one(self.behaviour.voice.clone()).looping(),
        );
        self.emit(PhoneEvent::Connected);
    }

    fn hang_up(&mut self, t: Instant, reason: &str) {
        let Some(call) = self.call.as_mut() else {
            return;
        };
        if call.up {
            if let Some(dialog) = call.dialog.as_mut() {
                let bye = dialog.request(Method::Bye);
                let _ = self.endpoint.send_request(t, bye, self.engine);
            }
        } else {
            match call.side {
                Side::Outgoing(tx) => {
                    let _ = self.endpoint.cancel(t, tx);
                }
                Side::Incoming(tx) => {
                    let r = call.invite.response(486).with_to_tag(&call.tag);
                    self.endpoint.respond(t, tx, r);
                }
            }
        }
        self.end_call(reason);
    }

    fn end_call(&mut self, reason: &str) {
        if let Some(call) = self.call.take() {
            let _ = self.media.close_leg(call.leg);
            self.emit(PhoneEvent::Ended {
                reason: reason.to_owned(),
            });
        }
    }
}
