//! A simulated provider: the people behind a trunk, for the demo.
//!
//! A [`SimProvider`] answers the calls the engine places through its trunks, many
//! at once, each as the [`Party`] its number is scripted to be: someone who answers
//! (and presses keys while the informer speaks, then hangs up), someone busy,
//! someone whose phone rings until the engine gives up, or a phone that is off.
//! It speaks real SIP (the engine's own endpoint and dialogs, its own UDP socket)
//! and real RTP (legs of a [`MediaEngine`]; keys are RFC 4733 events).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;

use crate::media::sdp::{SdpSession, SessionDescription};
use crate::media::{LegId, MediaEngine, Playlist, SdpPreferences};
use crate::phone::PhoneNumber;
use crate::sip::dialog::Dialog;
use crate::sip::endpoint::{Endpoint, EndpointConfig, EndpointEvent, ServerTx};
use crate::sip::transport::Target;
use crate::sip::wire::{Contact, Framing, Method, NameAddr, Request, Uri, parse};

/// What the person behind a number does when the engine calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Party {
    /// Rings, answers after `after`, speaks `voice`, presses `keys` (each at its
    /// time after answering) and hangs up after `hang_up_after` (or waits for the
    /// engine to).
    Answers {
        /// Rings this long first.
        after: Duration,
        /// Hangs up this long after answering (`None`: waits for the engine).
        hang_up_after: Option<Duration>,
        /// The prompt played as their voice.
        voice: String,
        /// Keys pressed, each this long after answering.
        keys: Vec<(Duration, char)>,
    },
    /// Busy: 486 at once.
    Busy,
    /// Rings and never answers: the engine's ring timer cancels it.
    RingsOut,
    /// The phone is off: 480 at once.
    SwitchedOff,
}

/// Who answers which number.
#[derive(Debug, Clone)]
pub struct Script {
    /// By the number called.
    pub parties: HashMap<PhoneNumber, Party>,
    /// Anyone else.
    pub others: Party,
}

/// A handle to a simulated provider.
#[derive(Debug, Clone)]
pub struct SimProvider {
    addr: SocketAddr,
}

impl SimProvider {
    /// Starts a provider on a free loopback port, answering as `script` says.
    pub async fn start(media: MediaEngine, script: Script) -> std::io::Result<Self> {
        let socket = UdpSocket::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)).await?;
        let addr = socket.local_addr()?;
        let endpoint = Endpoint::new(EndpointConfig::new(addr), rand::random());
        let state = Provider {
            socket: Arc::new(socket),
            endpoint,
            media,
            script,
            calls: HashMap::new(),
            addr,
        };
        tokio::spawn(state.run());
        Ok(Self { addr })
    }

    /// Its SIP address (the trunks' proxy).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// One call the engine placed to the provider.
struct Call {
    tx: ServerTx,
    invite: Request,
    tag: String,
    leg: Option<LegId>,
    sdp: SdpSession,
    local: SocketAddr,
    dialog: Option<Dialog>,
    party: Party,
    answer_at: Option<Instant>,
    answered_at: Option<Instant>,
    hang_up_at: Option<Instant>,
    keys: Vec<(Duration, char)>,
    source: Target,
}

struct Provider {
    socket: Arc<UdpSocket>,
    endpoint: Endpoint,
    media: MediaEngine,
    script: Script,
    /// By Call-ID.
    calls: HashMap<String, Call>,
    addr: SocketAddr,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl Provider {
    async fn run(mut self) {
        let mut buf = vec![0u8; 65536];
        loop {
            while let Some(t) = self.endpoint.poll_transmit() {
                let _ = self.socket.send_to(&t.bytes, t.target.addr).await;
            }
            let deadline = [self.endpoint.poll_timeout(), self.next_deadline()]
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
                _ = sleep => {
                    self.endpoint.handle_timeout(now());
                    self.timers(now());
                }
            }
            self.process(now());
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.calls
            .values()
            .flat_map(|c| {
                let key = c
                    .answered_at
                    .and_then(|a| c.keys.first().map(|(after, _)| a + *after));
                [c.answer_at, c.hang_up_at, key]
            })
            .flatten()
            .min()
    }

    fn process(&mut self, t: Instant) {
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                EndpointEvent::Request {
                    tx,
                    request,
                    source,
                } => self.on_request(t, tx, request, source),
                EndpointEvent::Cancelled { tx } => {
                    let id = self
                        .calls
                        .iter()
                        .find(|(_, c)| c.tx == tx)
                        .map(|(id, _)| id.clone());
                    if let Some(call) = id.and_then(|id| self.calls.remove(&id)) {
                        let r = call.invite.response(487).with_to_tag(&call.tag);
                        self.endpoint.respond(t, tx, r);
                        self.close(&call);
                    }
                }
                EndpointEvent::Ack { .. }
                | EndpointEvent::AckTimeout { .. }
                | EndpointEvent::Response { .. }
                | EndpointEvent::Failed { .. } => {}
            }
        }
    }

    fn on_request(&mut self, t: Instant, tx: ServerTx, request: Request, source: Target) {
        if request.headers.to.tag().is_some() {
            // In the dialog: BYE ends the call; anything else is taken.
            self.endpoint.respond(t, tx, request.response(200));
            if request.method == Method::Bye {
                if let Some(call) = self.calls.remove(&request.headers.call_id) {
                    self.close(&call);
                }
            }
            return;
        }
        let tag = self.endpoint.new_tag();
        match request.method {
            Method::Invite => self.invite(t, tx, request, source, tag),
            Method::Options => {
                self.endpoint
                    .respond(t, tx, request.response(200).with_to_tag(&tag))
            }
            _ => self
                .endpoint
                .respond(t, tx, request.response(405).with_to_tag(&tag)),
        }
    }

    fn invite(&mut self, t: Instant, tx: ServerTx, request: Request, source: Target, tag: String) {
        let number = request
            .uri
            .user_unescaped()
            .and_then(|u| PhoneNumber::parse(&u).ok());
        let party = number
            .and_then(|n| self.script.parties.get(&n).cloned())
            .unwrap_or_else(|| self.script.others.clone());
        match &party {
            Party::Busy => {
                return self
                    .endpoint
                    .respond(t, tx, request.response(486).with_to_tag(&tag));
            }
            Party::SwitchedOff => {
                return self
                    .endpoint
                    .respond(t, tx, request.response(480).with_to_tag(&tag));
            }
            Party::RingsOut | Party::Answers { .. } => {}
        }
        let (leg, local) = match &party {
            Party::Answers { .. } => match self.media.open_leg() {
                Ok((leg, local)) => (Some(leg), local),
                Err(_) => {
                    return self
                        .endpoint
                        .respond(t, tx, request.response(503).with_to_tag(&tag));
                }
            },
            _ => (None, self.addr),
        };
        self.endpoint
            .respond(t, tx, request.response(180).with_to_tag(&tag));
        let (answer_at, keys) = match &party {
            Party::Answers { after, keys, .. } => (Some(t + *after), keys.clone()),
            _ => (None, Vec::new()),
        };
        let call = Call {
            tx,
            tag,
            leg,
            sdp: SdpSession::new(u64::from(self.endpoint.random_u32())),
            local,
            dialog: None,
            party,
            answer_at,
            answered_at: None,
            hang_up_at: None,
            keys,
            source,
            invite: request,
        };
        self.calls.insert(call.invite.headers.call_id.clone(), call);
    }

    fn timers(&mut self, t: Instant) {
        let ids: Vec<String> = self.calls.keys().cloned().collect();
        for id in ids {
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            if call.answer_at.is_some_and(|at| at <= t) {
                call.answer_at = None;
                self.answer(t, &id);
                continue;
            }
            if let (Some(answered), Some((after, key))) =
                (call.answered_at, call.keys.first().copied())
            {
                if answered + after <= t {
                    call.keys.remove(0);
                    if let Some(leg) = call.leg {
                        let _ = self.media.send_dtmf(leg, key, Duration::from_millis(160));
                    }
                }
            }
            if call.hang_up_at.is_some_and(|at| at <= t) {
                if let Some(mut call) = self.calls.remove(&id) {
                    if let Some(dialog) = call.dialog.as_mut() {
                        let bye = dialog.request(Method::Bye);
                        let _ = self.endpoint.send_request(t, bye, call.source);
                    }
                    self.close(&call);
                }
            }
        }
    }

    fn answer(&mut self, t: Instant, id: &str) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let Party::Answers {
            hang_up_after,
            voice,
            ..
        } = call.party.clone()
        else {
            return;
        };
        let offer = std::str::from_utf8(&call.invite.body)
            .ok()
            .and_then(|b| SessionDescription::parse(b).ok());
        let answered = offer.and_then(|o| {
            call.sdp
                .answer(&o, call.local, &SdpPreferences::default())
                .ok()
        });
        let Some((answer, negotiated)) = answered else {
            let r = call.invite.response(488).with_to_tag(&call.tag);
            let tx = call.tx;
            self.endpoint.respond(t, tx, r);
            if let Some(call) = self.calls.remove(id) {
                self.close(&call);
            }
            return;
        };
        let contact = Uri::sip(
            None,
            &crate::sip::wire::Host::Ip(self.addr.ip()),
            Some(self.addr.port()),
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
        call.answered_at = Some(t);
        call.hang_up_at = hang_up_after.map(|d| t + d);
        if let Some(leg) = call.leg {
            let _ = self.media.set_remote(leg, negotiated);
            let _ = self.media.play(leg, &Playlist::one(voice).looping());
        }
        let tx = call.tx;
        self.endpoint.respond(t, tx, r);
    }

    fn close(&self, call: &Call) {
        if let Some(leg) = call.leg {
            let _ = self.media.close_leg(leg);
        }
    }
}
