//! The call core in virtual time, for the call layer's tests: residents,
//! operators' softphones and providers are SIP messages fed in and read out, media
//! is the scripted [`FakeMedia`], and the clock only moves when a test says so.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

pub(crate) use super::control::*;
pub(crate) use super::handle::{Answer, Query};
use crate::call::media_port::fake::FakeMedia;
pub(crate) use crate::config::Config;
pub(crate) use crate::media::{LegId, MediaEvent};
pub(crate) use crate::phone::PhoneNumber;
pub(crate) use crate::sip::endpoint::Endpoint;
use crate::sip::endpoint::EndpointConfig;
pub(crate) use crate::sip::transport::Target;
pub(crate) use crate::sip::transport::driver::Inbound;
use crate::sip::wire::{Contact, Framing, Message, NameAddr, Response, Uri, parse};
pub(crate) use crate::sip::wire::{Method, Request};
use crate::store::{ActiveOutage, DialJobState, DialKind};
pub(crate) use crate::store::{CallerInfo, DialJob, DialJobId};
pub(crate) use std::time::{Duration, Instant};

// -- the harness -----------------------------------------------------------------------

pub(crate) const ENGINE: &str = "127.0.0.1:5060";
pub(crate) const TENANT: &str = "+73432000001";
pub(crate) const CITYWIDE: &str = "+73432000100";
pub(crate) const MENU_NUMBER: &str = "+73432000200";

/// Numbers, operators and a provider every test starts from.
pub(crate) fn config_text(extra: &str) -> String {
    format!(
        r#"
[queue]
ring_timeout_s = 20
announce_interval_s = 30
callback_after_s = 240
abandon_threshold_s = 15
wrap_up_s = 0

[[trunk]]
name = "provider-x"
proxy = "127.0.0.1:5070"
options_interval_s = 0
username = "etalon"
password = "secret"

[[trunk]]
name = "provider-y"
proxy = "127.0.0.1:5072"
options_interval_s = 0

[[number]]
number = "{TENANT}"
kind = "tenant"
tenant = "etalon"
city = "ekb"
trunk = "provider-x"
greeting = "ru/greeting-etalon.wav"

[[number]]
number = "{CITYWIDE}"
kind = "citywide"
city = "ekb"
trunk = "provider-y"

[[number]]
number = "{MENU_NUMBER}"
kind = "tenant"
tenant = "etalon"
city = "ekb"
trunk = "provider-x"
greeting = "ru/greeting-etalon.wav"
menu = "main"

[[number]]
number = "+73432000900"
kind = "dispatch"
tenant = "etalon"
trunk = "provider-x"

[[number]]
number = "100"
kind = "forward"
target = "sip:127.0.0.1:5080"

[[menu]]
name = "main"
prompt = "ru/menu-main.wav"
timeout_s = 5
[[menu.option]]
digit = "1"
action = "queue"

[[operator]]
extension = "1001"
password = "pass1001"

[[operator]]
extension = "1002"
password = "pass1002"
{extra}
"#
    )
}

pub(crate) struct Harness {
    pub(crate) cc: CallControl,
    pub(crate) media: FakeMedia,
    pub(crate) now: Instant,
    t0: Instant,
    pub(crate) events: Vec<CallEvent>,
    pub(crate) actions: Vec<Action>,
    /// Messages the engine sent, not yet looked at.
    pub(crate) sent: Vec<(Target, Message)>,
    pub(crate) seq: u32,
}

pub(crate) fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub(crate) const SDP: &str = "v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

/// A resident's side of a call, as their phone knows it.
#[derive(Debug, Clone)]
pub(crate) struct Dialog {
    pub(crate) from: SocketAddr,
    pub(crate) caller: String,
    pub(crate) number: String,
    pub(crate) call_id: String,
    pub(crate) to_tag: String,
}

impl Harness {
    pub(crate) fn new(extra: &str) -> Self {
        Self::with_config(Config::parse(&config_text(extra), Path::new("t.toml")).unwrap())
    }

    pub(crate) fn with_config(config: Config) -> Self {
        let t0 = Instant::now();
        let endpoint = Endpoint::new(EndpointConfig::new(addr(ENGINE)), 7);
        let media = FakeMedia::default();
        let cc = CallControl::new(
            Arc::new(config),
            endpoint,
            Box::new(media.clone()),
            Admission {
                max_concurrent: 100,
                max_rate: 1000,
                retry_after: 5,
            },
            t0,
            "2026-03-02T09:00:00Z".parse().unwrap(),
        );
        let mut h = Self {
            cc,
            media,
            now: t0,
            t0,
            events: Vec::new(),
            actions: Vec::new(),
            sent: Vec::new(),
            seq: 0,
        };
        h.drain();
        h
    }

    pub(crate) fn drain(&mut self) {
        while let Some(t) = self.cc.poll_transmit() {
            match parse(t.bytes.clone(), Framing::Datagram) {
                Ok(m) => self.sent.push((t.target, m)),
                Err(e) => panic!("engine sent something unparseable: {e}"),
            }
        }
        while let Some(e) = self.cc.poll_event() {
            self.events.push(e);
        }
        while let Some(a) = self.cc.poll_action() {
            self.actions.push(a);
        }
    }

    pub(crate) fn deliver(&mut self, from: SocketAddr, message: Message) {
        self.cc.handle_inbound(
            self.now,
            Inbound::Message {
                message: Ok(message),
                source: Target::udp(from),
                received: self.now,
            },
        );
        self.drain();
    }

    pub(crate) fn deliver_text(&mut self, from: SocketAddr, text: &str) {
        let m = parse(Bytes::from(text.to_owned()), Framing::Datagram).unwrap();
        self.deliver(from, m);
    }

    /// Moves the clock to `by` after start, running every deadline on the way.
    pub(crate) fn at(&mut self, by: Duration) {
        let target = self.t0 + by;
        for _ in 0..100_000 {
            match self.cc.poll_timeout() {
                Some(at) if at <= target => {
                    self.now = at.max(self.now);
                    self.cc.handle_timeout(self.now);
                    self.drain();
                }
                _ => {
                    self.now = target.max(self.now);
                    return;
                }
            }
        }
        panic!("deadlines never stop coming");
    }

    pub(crate) fn later(&mut self, d: Duration) {
        let by = self.now.saturating_duration_since(self.t0) + d;
        self.at(by);
    }

    pub(crate) fn next_seq(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }

    /// Takes the requests of `method` the engine sent to `to` (retransmissions
    /// counted once).
    pub(crate) fn requests_to(&mut self, to: SocketAddr, method: Method) -> Vec<Request> {
        let mut out: Vec<Request> = Vec::new();
        self.sent.retain(|(t, m)| match m {
            Message::Request(r) if t.addr == to && r.method == method => {
                let again = out.iter().any(|o| {
                    o.headers.call_id == r.headers.call_id && o.headers.cseq == r.headers.cseq
                });
                if !again {
                    out.push(r.clone());
                }
                false
            }
            _ => true,
        });
        out
    }

    /// Takes the responses the engine sent to `to`.
    pub(crate) fn responses_to(&mut self, to: SocketAddr) -> Vec<Response> {
        let mut out = Vec::new();
        self.sent.retain(|(t, m)| match m {
            Message::Response(r) if t.addr == to => {
                out.push(r.clone());
                false
            }
            _ => true,
        });
        out
    }

    pub(crate) fn events_of(&self, kind: &str) -> Vec<&CallEvent> {
        self.events.iter().filter(|e| e.kind == kind).collect()
    }

    // -- operators -----------------------------------------------------------------

    /// Registers a contact for `ext` (challenge, then credentials).
    pub(crate) fn register(&mut self, ext: &str, password: &str, contact: SocketAddr) {
        let n = self.next_seq();
        let text = |cseq: u32, auth: &str| {
            format!(
                "REGISTER sip:{ENGINE} SIP/2.0\r\nVia: SIP/2.0/UDP {contact};branch=z9hG4bKreg{n}x{cseq}\r\nFrom: <sip:{ext}@{ENGINE}>;tag=r{n}\r\nTo: <sip:{ext}@{ENGINE}>\r\nCall-ID: reg-{ext}-{n}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{ext}@{contact}>\r\nExpires: 3600\r\n{auth}Content-Length: 0\r\n\r\n"
            )
        };
        self.deliver_text(contact, &text(1, ""));
        let challenge = self
            .responses_to(contact)
            .into_iter()
            .find(|r| r.status == 401)
            .expect("challenged");
        let www = challenge
            .headers
            .get("WWW-Authenticate")
            .unwrap()
            .to_owned();
        let a = crate::sip::digest::answer(
            &www,
            "REGISTER",
            &format!("sip:{ENGINE}"),
            ext,
            password,
            &format!("c{n}"),
        )
        .unwrap();
        self.deliver_text(contact, &text(2, &format!("Authorization: {a}\r\n")));
        let ok = self.responses_to(contact);
        assert!(ok.iter().any(|r| r.status == 200), "{ok:?}");
    }

    pub(crate) fn ready(&mut self, ext: &str) {
        let answer = self.cc.handle_query(
            self.now,
            Query::SetOperatorState {
                extension: ext.into(),
                state: crate::call::OperatorState::Ready,
                reason: None,
            },
        );
        assert!(matches!(answer, Answer::OperatorState(Ok(_))), "{answer:?}");
        self.drain();
    }

    pub(crate) fn on_duty(&mut self, ext: &str, password: &str, contact: SocketAddr) {
        self.register(ext, password, contact);
        self.ready(ext);
        self.later(Duration::from_millis(1));
    }

    pub(crate) fn operator_state(&self, ext: &str) -> crate::call::OperatorView {
        self.cc.operators.view(ext).unwrap()
    }

    /// A softphone answers (or otherwise responds to) an INVITE.
    pub(crate) fn respond(&mut self, from: SocketAddr, invite: &Request, status: u16, tag: &str) {
        let mut r = invite.response(status).with_to_tag(tag);
        if (200..300).contains(&status) {
            r.headers.contact.push(Contact::Address(NameAddr::new(
                Uri::parse(&format!("sip:party@{from}")).unwrap(),
            )));
            r = r.with_body("application/sdp", Bytes::from_static(SDP.as_bytes()));
        }
        self.deliver(from, Message::Response(r));
    }

    pub(crate) fn respond_with(&mut self, from: SocketAddr, response: Response) {
        self.deliver(from, Message::Response(response));
    }

    // -- residents -------------------------------------------------------------------

    /// A resident's INVITE; the engine's 200 is ACKed. `None` when refused.
    pub(crate) fn call(&mut self, from: SocketAddr, caller: &str, number: &str) -> Option<Dialog> {
        let n = self.next_seq();
        let call_id = format!("res-{n}");
        let invite = format!(
            "INVITE sip:{number}@{ENGINE} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKinv{n}\r\nFrom: <sip:{caller}@{from}>;tag=f{n}\r\nTo: <sip:{number}@{ENGINE}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:{caller}@{from}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        );
        self.deliver_text(from, &invite);
        let responses = self.responses_to(from);
        let ok = responses.iter().find(|r| r.status == 200)?;
        let to_tag = ok.headers.to.tag().unwrap().to_owned();
        let d = Dialog {
            from,
            caller: caller.into(),
            number: number.into(),
            call_id,
            to_tag,
        };
        let ack = self.in_dialog(&d, "ACK", 1);
        self.deliver_text(from, &ack);
        Some(d)
    }

    pub(crate) fn in_dialog(&mut self, d: &Dialog, method: &str, cseq: u32) -> String {
        let n = self.next_seq();
        format!(
            "{method} sip:{ENGINE} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK{method}{n}\r\nFrom: <sip:{}@{}>;tag=f{}\r\nTo: <sip:{}@{ENGINE}>;tag={}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            d.from,
            d.caller,
            d.from,
            d.call_id.trim_start_matches("res-"),
            d.number,
            d.to_tag,
            d.call_id
        )
    }

    pub(crate) fn hang_up(&mut self, d: &Dialog) {
        let bye = self.in_dialog(d, "BYE", 2);
        self.deliver_text(d.from, &bye);
    }

    /// The engine's id of the only live call from `caller`.
    pub(crate) fn call_of(&self, caller: &str) -> (u64, CallId) {
        let (k, c) = self
            .cc
            .calls
            .iter()
            .find(|(_, c)| c.caller == caller && c.kind != Kind::Outbound)
            .expect("the call is live");
        (*k, c.id.clone())
    }

    /// The caller leg's media of the live call from `caller`.
    pub(crate) fn caller_leg(&self, caller: &str) -> LegId {
        let (k, _) = self.call_of(caller);
        self.cc.calls[&k].legs[0].media
    }

    /// What plays on `leg` now.
    pub(crate) fn playing(&self, leg: LegId) -> Option<Vec<String>> {
        self.media
            .state()
            .playing
            .get(&leg)
            .map(|(_, items)| items.clone())
    }

    /// The prompt playing on `leg` ends.
    pub(crate) fn finish_playback(&mut self, leg: LegId) {
        let (id, _) = self
            .media
            .state()
            .playing
            .remove(&leg)
            .expect("something plays");
        self.cc
            .handle_media(self.now, MediaEvent::PlaybackFinished { leg, id });
        self.drain();
    }

    /// The store's answer to the caller lookup.
    pub(crate) fn looked_up(&mut self, caller: &str, info: Option<CallerInfo>) {
        let (k, _) = self.call_of(caller);
        let context = info.map(|info| CallerContext { info, zone: None });
        self.cc.handle_lookup(self.now, k, context);
        self.drain();
    }

    /// A resident of an unknown address: the lookup finds nothing.
    pub(crate) fn unknown(&mut self, caller: &str) {
        let info = caller_info(caller, Vec::new());
        self.looked_up(caller, Some(info));
    }

    /// Greeting over, lookup answered with nothing: the caller is in the queue.
    pub(crate) fn queued(&mut self, from: SocketAddr, caller: &str, number: &str) -> Dialog {
        let d = self.call(from, caller, number).expect("answered");
        self.unknown(caller);
        let leg = self.caller_leg(caller);
        self.finish_playback(leg);
        let (k, _) = self.call_of(caller);
        assert!(
            matches!(self.cc.calls[&k].stage, Stage::Queued | Stage::Ringing),
            "{:?}",
            self.cc.calls[&k].stage
        );
        d
    }

    pub(crate) fn dial_job(
        &mut self,
        id: i64,
        target: &str,
        tenant: Option<&str>,
        call: Option<&str>,
    ) {
        let wall = self.cc.wall(self.now);
        let job = DialJob {
            id: DialJobId(id),
            kind: DialKind::Callback,
            tenant: tenant.map(str::to_owned),
            target: target.into(),
            due_at: wall,
            attempts_made: 0,
            max_attempts: 5,
            state: DialJobState::Claimed,
            claimed_by: Some("node".into()),
            claimed_until: None,
            outcome: None,
            ticket_id: None,
            call_id: call.map(str::to_owned),
            origin_number: None,
            precedence: 0,
            deadline_at: None,
            quiet_hours: false,
            reach: None,
            outage_id: None,
            supplier_ticket_id: None,
            answer: None,
            at_risk_at: None,
            created_at: wall,
            updated_at: wall,
        };
        self.cc.handle_dial_job(self.now, job);
        self.drain();
    }

    pub(crate) fn deliver_job(&mut self, job: DialJob) {
        self.cc.handle_dial_job(self.now, job);
        self.drain();
    }
}

pub(crate) fn caller_info(phone: &str, outages: Vec<ActiveOutage>) -> CallerInfo {
    CallerInfo {
        phone: PhoneNumber::parse(phone).unwrap(),
        tenant: None,
        city: Some("ekb".into()),
        address: None,
        other_addresses: Vec::new(),
        open_tickets: Vec::new(),
        debtor: None,
        outages,
        staff: None,
    }
}

/// Runs `f` on another thread and fails if it does not return within `limit`
/// (the core must never spin).
pub(crate) fn returns_within<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("did not return within {limit:?}: the core spins"))
}

pub(crate) const RESIDENT: &str = "127.0.0.1:7000";
pub(crate) const RESIDENT_2: &str = "127.0.0.1:7002";
pub(crate) const PHONE_1001: &str = "127.0.0.1:7101";
pub(crate) const PHONE_1001_B: &str = "127.0.0.1:7103";
pub(crate) const PHONE_1002: &str = "127.0.0.1:7201";
pub(crate) const PROVIDER_X: &str = "127.0.0.1:5070";
pub(crate) const PROVIDER_Y: &str = "127.0.0.1:5072";
