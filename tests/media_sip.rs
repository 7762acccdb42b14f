//! The media layer through real SIP over loopback sockets, at the call level: an
//! in-test user agent (plain UDP, every byte written here) calls the engine and
//! answers for it, and sends and hears RTP.
//!
//! - media binds where SIP listens and SDP says the advertised address;
//! - an offer of only G.729 gets 488;
//! - hold and resume by re-INVITE (sendonly, inactive, `c=0.0.0.0`): the other party
//!   hears hold music, then the two hear each other again;
//! - hold suspends the RTP inactivity timeout; after resume it ends the call;
//! - SIP INFO `application/dtmf-relay` digits reach the IVR;
//! - DTMF crosses between legs whichever way each leg negotiated it (RFC 4733 events
//!   one side, SIP INFO the other);
//! - a citywide call's recording moves into the tenant's directory once the tenant
//!   is known, under its call's name (one `.wav`);
//! - an unusable SDP answer ends the call (ACK then BYE; late offer answered badly in
//!   the ACK);
//! - every RFC 2833 capture SIPp ships, played into a test number by SIPp, gives
//!   exactly its digit.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly by design

mod common;
#[path = "common/media_util.rs"]
mod util;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::engine::{self, free_port, wait_for_events, wait_no_calls};
use common::sipp::{self, spawn};
use dispatchline::server::Engine;
use tokio::net::UdpSocket;

// ---------------------------------------------------------------------------------
// A small SIP user agent over UDP.

#[derive(Debug, Clone)]
struct Msg {
    start: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Msg {
    fn parse(bytes: &[u8]) -> Option<Msg> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let mut lines = head.split("\r\n");
        let start = lines.next()?.to_owned();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| {
                let n = n.trim().to_ascii_lowercase();
                let n = match n.as_str() {
                    "v" => "via",
                    "f" => "from",
                    "t" => "to",
                    "i" => "call-id",
                    "m" => "contact",
                    "c" => "content-type",
                    "l" => "content-length",
                    other => other,
                }
                .to_owned();
                (n, v.trim().to_owned())
            })
            .collect();
        Some(Msg {
            start,
            headers,
            body: body.to_owned(),
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn status(&self) -> Option<u16> {
        self.start
            .strip_prefix("SIP/2.0 ")?
            .split(' ')
            .next()?
            .parse()
            .ok()
    }

    fn method(&self) -> Option<&str> {
        if self.start.starts_with("SIP/2.0") {
            return None;
        }
        self.start.split(' ').next()
    }

    fn cseq_method(&self) -> &str {
        self.header("cseq")
            .and_then(|c| c.split_whitespace().nth(1))
            .unwrap_or_default()
    }

    /// The `<...>` URI of a Contact (or any name-addr) header.
    fn uri_of(&self, name: &str) -> Option<String> {
        let v = self.header(name)?;
        let start = v.find('<')? + 1;
        let end = v[start..].find('>')? + start;
        Some(v[start..end].to_owned())
    }

    /// The RTP address in the SDP body (c= and m=audio).
    fn media(&self) -> Option<SocketAddr> {
        let mut ip = None;
        let mut port = None;
        for l in self.body.lines() {
            if let Some(c) = l.strip_prefix("c=IN IP4 ") {
                ip = c.trim().parse::<std::net::IpAddr>().ok();
            }
            if let Some(m) = l.strip_prefix("m=audio ") {
                port = m.split(' ').next().and_then(|p| p.parse::<u16>().ok());
            }
        }
        Some(SocketAddr::new(ip?, port?))
    }
}

/// One side of a dialog, enough to send in-dialog requests.
#[derive(Debug, Clone)]
struct Dialog {
    call_id: String,
    /// Our From (or To, as UAS) header value, tag included.
    local: String,
    /// The peer's, tag included.
    remote: String,
    /// Request-URI for in-dialog requests (the peer's Contact).
    target: String,
    cseq: u32,
    /// The INVITE's branch and Request-URI (a non-2xx is ACKed with them).
    invite: Option<(String, String)>,
}

static BRANCH: AtomicU32 = AtomicU32::new(1);

fn branch() -> String {
    format!("z9hG4bKmt{}", BRANCH.fetch_add(1, Ordering::Relaxed))
}

/// An SDP body offering or answering `formats` at `ip:port` with `extra` lines.
fn sdp(ip: &str, port: u16, version: u32, formats: &str, extra: &str) -> String {
    format!(
        "v=0\r\no=ua 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {formats}\r\n{extra}"
    )
}

const PCMA: &str = "a=rtpmap:8 PCMA/8000\r\n";
const PCMA_TE: &str =
    "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n";

struct Ua {
    sip: UdpSocket,
    addr: SocketAddr,
    engine: SocketAddr,
    /// Every message received, in order.
    seen: Vec<Msg>,
    rtp: Rtp,
}

impl Ua {
    async fn new(engine: SocketAddr) -> Self {
        Self::on(engine, "127.0.0.1:0").await
    }

    async fn on(engine: SocketAddr, bind: &str) -> Self {
        let sip = UdpSocket::bind(bind).await.unwrap();
        let addr = sip.local_addr().unwrap();
        Self {
            sip,
            addr,
            engine,
            seen: Vec::new(),
            rtp: Rtp::start().await,
        }
    }

    async fn send(&self, text: &str) {
        self.sip
            .send_to(text.as_bytes(), self.engine)
            .await
            .unwrap();
    }

    /// The next message matching `pick` within `within`; others are kept in `seen`
    /// (requests among them are answered 200, as a phone would).
    async fn wait(&mut self, within: Duration, pick: impl Fn(&Msg) -> bool) -> Option<Msg> {
        let deadline = tokio::time::Instant::now() + within;
        let mut buf = vec![0u8; 8192];
        loop {
            let got = tokio::time::timeout_at(deadline, self.sip.recv_from(&mut buf)).await;
            let Ok(Ok((n, _))) = got else { return None };
            let Some(msg) = Msg::parse(&buf[..n]) else {
                continue;
            };
            self.seen.push(msg.clone());
            if pick(&msg) {
                return Some(msg);
            }
            if matches!(msg.method(), Some("BYE" | "INFO" | "OPTIONS")) {
                self.respond(&msg, 200, "", None).await;
            }
        }
    }

    /// Waits for the engine's BYE and answers it.
    async fn hung_up(&mut self, within: Duration) -> bool {
        match self.request_named("BYE", within).await {
            Some(bye) => {
                self.respond(&bye, 200, "", None).await;
                true
            }
            None => false,
        }
    }

    fn seen_lines(&self) -> Vec<&str> {
        self.seen.iter().map(|m| m.start.as_str()).collect()
    }

    async fn request_named(&mut self, method: &str, within: Duration) -> Option<Msg> {
        let m = method.to_owned();
        self.wait(within, move |x| x.method() == Some(m.as_str()))
            .await
    }

    /// Answers a request, copying what a response must copy; `tag` goes on To.
    async fn respond(&self, req: &Msg, status: u16, tag: &str, body: Option<&str>) {
        let mut out = format!(
            "SIP/2.0 {status} {}\r\n",
            if status == 200 { "OK" } else { "Whatever" }
        );
        for v in req.all("via") {
            out.push_str(&format!("Via: {v}\r\n"));
        }
        let to = req.header("to").unwrap_or_default();
        let to = if to.contains("tag=") || tag.is_empty() {
            to.to_owned()
        } else {
            format!("{to};tag={tag}")
        };
        out.push_str(&format!(
            "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:ua@{}>\r\n",
            req.header("from").unwrap_or_default(),
            req.header("call-id").unwrap_or_default(),
            req.header("cseq").unwrap_or_default(),
            self.addr
        ));
        match body {
            Some(b) => out.push_str(&format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )),
            None => out.push_str("Content-Length: 0\r\n\r\n"),
        }
        self.sip.send_to(out.as_bytes(), self.engine).await.unwrap();
    }

    /// Sends an INVITE for `number` from `caller`; returns the dialog as far as it
    /// is known (the To tag comes with the answer).
    async fn invite(&self, number: &str, caller: &str, body: Option<&str>) -> Dialog {
        let call_id = format!("{}@media-sip", branch());
        let local = format!("<sip:{caller}@{}>;tag=a{}", self.addr, branch());
        let remote = format!("<sip:{number}@{}>", self.engine);
        let uri = format!("sip:{number}@{}", self.engine);
        let b = branch();
        let d = Dialog {
            call_id,
            local,
            remote,
            target: uri.clone(),
            cseq: 1,
            invite: Some((b.clone(), uri)),
        };
        self.send(&self.request_with(&d, "INVITE", 1, body, "application/sdp", &b, &d.target))
            .await;
        d
    }

    fn request_text(
        &self,
        d: &Dialog,
        method: &str,
        cseq: u32,
        body: Option<&str>,
        content_type: &str,
    ) -> String {
        self.request_with(d, method, cseq, body, content_type, &branch(), &d.target)
    }

    #[allow(clippy::too_many_arguments)]
    fn request_with(
        &self,
        d: &Dialog,
        method: &str,
        cseq: u32,
        body: Option<&str>,
        content_type: &str,
        branch: &str,
        uri: &str,
    ) -> String {
        let mut out = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch={branch};rport\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContact: <sip:ua@{}>\r\n",
            self.addr, d.local, d.remote, d.call_id, self.addr
        );
        match body {
            Some(b) => out.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )),
            None => out.push_str("Content-Length: 0\r\n\r\n"),
        }
        out
    }

    /// Waits for the INVITE's final response; a 2xx completes the dialog and is
    /// ACKed (with `ack_body`, for a late offer).
    async fn final_response(&mut self, d: &mut Dialog, ack_body: Option<&str>) -> Msg {
        let call_id = d.call_id.clone();
        let fin = self
            .wait(Duration::from_secs(10), move |m| {
                m.status().is_some_and(|s| s >= 200)
                    && m.header("call-id") == Some(call_id.as_str())
                    && m.cseq_method() == "INVITE"
            })
            .await
            .expect("a final response to the INVITE");
        if let Some(to) = fin.header("to") {
            d.remote = to.to_owned();
        }
        let cseq = fin
            .header("cseq")
            .and_then(|c| c.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        if fin.status().is_some_and(|s| s >= 300) {
            // RFC 3261 §17.1.1.3: the ACK of a non-2xx is part of the INVITE
            // transaction: same branch, same Request-URI.
            let (b, uri) = d.invite.clone().unwrap_or_default();
            self.send(&self.request_with(d, "ACK", cseq, None, "", &b, &uri))
                .await;
            return fin;
        }
        if let Some(c) = fin.uri_of("contact") {
            d.target = c;
        }
        self.send(&self.request_text(d, "ACK", cseq, ack_body, "application/sdp"))
            .await;
        fin
    }

    /// An in-dialog request; returns its final response.
    async fn in_dialog(
        &mut self,
        d: &mut Dialog,
        method: &str,
        body: Option<&str>,
        content_type: &str,
    ) -> Msg {
        d.cseq += 1;
        let cseq = d.cseq;
        self.send(&self.request_text(d, method, cseq, body, content_type))
            .await;
        let m = method.to_owned();
        let call_id = d.call_id.clone();
        let fin = self
            .wait(Duration::from_secs(5), move |x| {
                x.status().is_some_and(|s| s >= 200)
                    && x.cseq_method() == m
                    && x.header("call-id") == Some(call_id.as_str())
            })
            .await
            .unwrap_or_else(|| panic!("a final response to {method}"));
        if method == "INVITE" {
            self.send(&self.request_text(d, "ACK", cseq, None, ""))
                .await;
        }
        fin
    }

    /// Answers the engine's INVITE with 200 and `body`; returns our dialog.
    async fn answer(&mut self, invite: &Msg, body: &str) -> Dialog {
        let tag = format!("b{}", branch());
        self.respond(invite, 200, &tag, Some(body)).await;
        Dialog {
            call_id: invite.header("call-id").unwrap_or_default().to_owned(),
            local: format!("{};tag={tag}", invite.header("to").unwrap_or_default()),
            remote: invite.header("from").unwrap_or_default().to_owned(),
            target: invite.uri_of("contact").unwrap_or_default(),
            cseq: 100,
            invite: None,
        }
    }
}

/// What an RTP endpoint received: arrival, payload type, payload.
type Received = Arc<Mutex<Vec<(Instant, u8, Vec<u8>)>>>;
/// What it sends every 20 ms: destination, payload type, payload.
type Sending = Arc<Mutex<Option<(SocketAddr, u8, Vec<u8>)>>>;

/// An RTP endpoint: records what it receives, sends a constant payload every 20 ms
/// while told to.
struct Rtp {
    addr: SocketAddr,
    sock: Arc<UdpSocket>,
    got: Received,
    /// Where to and what: (destination, payload type, payload).
    sending: Sending,
    seq: Arc<AtomicU32>,
}

impl Rtp {
    async fn start() -> Self {
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = sock.local_addr().unwrap();
        let got: Received = Arc::default();
        let sending: Sending = Arc::default();
        let seq = Arc::new(AtomicU32::new(1));
        let (rs, rg) = (sock.clone(), got.clone());
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while let Ok((n, _)) = rs.recv_from(&mut buf).await {
                if let Some((pt, _, _, _, payload)) = util::parse_rtp(&buf[..n]) {
                    rg.lock().unwrap().push((Instant::now(), pt, payload));
                }
            }
        });
        let (ss, sn, sq) = (sock.clone(), sending.clone(), seq.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let ssrc = rand_ssrc(&ss);
            loop {
                tick.tick().await;
                let what = sn.lock().unwrap().clone();
                if let Some((dest, pt, payload)) = what {
                    let n = sq.fetch_add(1, Ordering::Relaxed);
                    let p = util::rtp(pt, n == 1, n as u16, n * 160, ssrc, &payload);
                    let _ = ss.send_to(&p, dest).await;
                }
            }
        });
        Self {
            addr,
            sock,
            got,
            sending,
            seq,
        }
    }

    fn send(&self, dest: SocketAddr, pt: u8, payload: Vec<u8>) {
        *self.sending.lock().unwrap() = Some((dest, pt, payload));
    }

    fn stop(&self) {
        *self.sending.lock().unwrap() = None;
    }

    fn clear(&self) {
        self.got.lock().unwrap().clear();
    }

    /// Payloads of audio (pt 0/8) received since the last `clear`.
    fn audio(&self) -> Vec<Vec<u8>> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, pt, _)| *pt == 0 || *pt == 8)
            .map(|(_, _, p)| p.clone())
            .collect()
    }

    /// telephone-event payloads received with payload type `pt`.
    fn events(&self, pt: u8) -> Vec<Vec<u8>> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, p, _)| *p == pt)
            .map(|(_, _, p)| p.clone())
            .collect()
    }

    /// Sends one RFC 4733 key press (100 ms: five packets and three ends) to `dest`.
    async fn press(&self, dest: SocketAddr, event: u8) {
        let ts = self.seq.load(Ordering::Relaxed) * 160 + 80_000;
        for k in 1..=8u16 {
            let end = k > 5;
            let dur = (k.min(5)) * 160;
            let block = [
                event,
                if end { 0x80 | 10 } else { 10 },
                (dur >> 8) as u8,
                dur as u8,
            ];
            let n = self.seq.fetch_add(1, Ordering::Relaxed);
            let p = util::rtp(101, k == 1, n as u16, ts, 0x7777, &block);
            self.sock.send_to(&p, dest).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn rand_ssrc(s: &UdpSocket) -> u32 {
    u32::from(s.local_addr().map(|a| a.port()).unwrap_or(1)) * 7919
}

/// What the engine sends from its leg, as seen by a party: the RTP address in the
/// SDP, on loopback.
fn on_loopback(a: SocketAddr) -> SocketAddr {
    SocketAddr::new("127.0.0.1".parse().unwrap(), a.port())
}

// ---------------------------------------------------------------------------------
// Engines.

const TRUNK: &str =
    "[[trunk]]\nname = \"provider-x\"\nproxy = \"127.0.0.1:5999\"\noptions_interval_s = 0\n\n";

async fn forward_engine(
    target: SocketAddr,
    adjust: impl FnOnce(&mut dispatchline::config::Config),
) -> Engine {
    engine::start_with(
        &format!(
            "{TRUNK}[[number]]\nnumber = \"100\"\nkind = \"forward\"\ntarget = \"sip:{target}\"\n"
        ),
        adjust,
    )
    .await
}

/// A call from `a` through the engine's forward number to `b`, both answering
/// with the given SDP formats; returns both dialogs and where each party sends RTP.
async fn forward_call(
    a: &mut Ua,
    b: &mut Ua,
    a_offer: (&str, &str),
    b_answer: (&str, &str),
) -> (Dialog, Dialog, SocketAddr, SocketAddr) {
    let offer = sdp("127.0.0.1", a.rtp.addr.port(), 1, a_offer.0, a_offer.1);
    let mut da = a.invite("100", "+79120000099", Some(&offer)).await;
    let invite = b
        .request_named("INVITE", Duration::from_secs(5))
        .await
        .expect("the engine calls the target");
    let b_media = on_loopback(invite.media().expect("an offer"));
    let answer = sdp("127.0.0.1", b.rtp.addr.port(), 1, b_answer.0, b_answer.1);
    let db = b.answer(&invite, &answer).await;
    b.request_named("ACK", Duration::from_secs(5))
        .await
        .expect("the engine ACKs the target");
    let fin = a.final_response(&mut da, None).await;
    assert_eq!(fin.status(), Some(200), "{fin:?}");
    let a_media = on_loopback(fin.media().expect("an answer"));
    (da, db, a_media, b_media)
}

fn events_of(engine: &Engine, kind: &str) -> Vec<serde_json::Value> {
    engine
        .events
        .replay(0)
        .unwrap()
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| e.payload.clone())
        .collect()
}

// ---------------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_binds_where_sip_listens_and_sdp_says_the_advertised_address() {
    // Behind 1:1 NAT: the public address is not this host's. Binding media to it
    // failed every call with 503.
    let b = Ua::new("127.0.0.1:9".parse().unwrap()).await;
    let engine = forward_engine(b.addr, |c| {
        c.sip.advertised_address = Some("203.0.113.7".parse().unwrap());
    })
    .await;
    let mut a = Ua::new(engine.sip_addr).await;
    let mut b = Ua {
        engine: engine.sip_addr,
        ..b
    };
    let (mut da, _db, a_media, b_media) =
        forward_call(&mut a, &mut b, ("8", PCMA), ("8", PCMA)).await;
    for m in [&a.seen, &b.seen] {
        let sdp = m.iter().rev().find(|x| !x.body.is_empty()).unwrap();
        assert!(
            sdp.body.contains("c=IN IP4 203.0.113.7\r\n"),
            "{}",
            sdp.body
        );
    }
    // The legs are bound on the listen address: media flows through them.
    a.rtp.send(a_media, 8, vec![0x9A; 160]);
    b.rtp.send(b_media, 8, vec![0x1B; 160]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(b.rtp.audio().iter().any(|p| p == &vec![0x9A; 160]));
    assert!(a.rtp.audio().iter().any(|p| p == &vec![0x1B; 160]));
    a.rtp.stop();
    b.rtp.stop();
    assert_eq!(
        a.in_dialog(&mut da, "BYE", None, "").await.status(),
        Some(200)
    );
    assert!(b.hung_up(Duration::from_secs(5)).await);
    wait_no_calls(&engine, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_of_only_g729_is_refused_with_488() {
    let engine = forward_engine("127.0.0.1:9".parse().unwrap(), |_| {}).await;
    let mut a = Ua::new(engine.sip_addr).await;
    let offer = sdp(
        "127.0.0.1",
        a.rtp.addr.port(),
        1,
        "18",
        "a=rtpmap:18 G729/8000\r\n",
    );
    let mut d = a.invite("100", "+79120000099", Some(&offer)).await;
    let fin = a.final_response(&mut d, None).await;
    assert_eq!(fin.status(), Some(488), "{}", fin.start);
    assert!(fin.start.contains("Not Acceptable Here"), "{}", fin.start);
    wait_no_calls(&engine, Duration::from_secs(10)).await;
    assert_eq!(engine.media.stats().legs_active, 0, "the leg was freed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_by_reinvite_plays_music_to_the_other_party_and_resume_bridges_again() {
    let mut b = Ua::new("127.0.0.1:9".parse().unwrap()).await;
    let engine = forward_engine(b.addr, |_| {}).await;
    b.engine = engine.sip_addr;
    let mut a = Ua::new(engine.sip_addr).await;
    let (mut da, _db, a_media, b_media) =
        forward_call(&mut a, &mut b, ("8 101", PCMA_TE), ("8", PCMA)).await;
    let voice_a = vec![0x9A; 160];
    a.rtp.send(a_media, 8, voice_a.clone());
    b.rtp.send(b_media, 8, vec![0x1B; 160]);
    let hears_a = |b: &Ua| b.rtp.audio().iter().filter(|p| **p == voice_a).count();
    let music = |b: &Ua| {
        b.rtp
            .audio()
            .iter()
            .filter(|p| {
                **p != voice_a
                    && util::rms(&p.iter().map(|c| util::alaw(*c)).collect::<Vec<_>>()) > 300.0
            })
            .count()
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(hears_a(&b) > 10, "bridged before the hold");
    let mut version = 1;
    for (how, ip, dir) in [
        ("sendonly", "127.0.0.1", "a=sendonly\r\n"),
        ("inactive", "127.0.0.1", "a=inactive\r\n"),
        ("c=0.0.0.0", "0.0.0.0", ""),
    ] {
        version += 1;
        let hold = sdp(
            ip,
            a.rtp.addr.port(),
            version,
            "8 101",
            &format!("{PCMA_TE}{dir}"),
        );
        let ok = a
            .in_dialog(&mut da, "INVITE", Some(&hold), "application/sdp")
            .await;
        assert_eq!(ok.status(), Some(200), "{how}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        b.rtp.clear();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(
            hears_a(&b),
            0,
            "{how}: the held party's audio is not relayed"
        );
        assert!(music(&b) > 30, "{how}: the other party hears hold music");
        version += 1;
        let resume = sdp("127.0.0.1", a.rtp.addr.port(), version, "8 101", PCMA_TE);
        let ok = a
            .in_dialog(&mut da, "INVITE", Some(&resume), "application/sdp")
            .await;
        assert_eq!(ok.status(), Some(200), "{how}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        b.rtp.clear();
        a.rtp.clear();
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(hears_a(&b) > 20, "{how}: bridged again after resume");
        assert_eq!(music(&b), 0, "{how}: the music stopped");
        assert!(
            a.rtp
                .audio()
                .iter()
                .filter(|p| **p == vec![0x1B; 160])
                .count()
                > 20,
            "{how}: the holder hears the other party again"
        );
    }
    let holds: Vec<bool> = events_of(&engine, "call.hold")
        .iter()
        .map(|e| e["held"].as_bool().unwrap())
        .collect();
    assert_eq!(holds, [true, false, true, false, true, false]);
    a.rtp.stop();
    b.rtp.stop();
    a.in_dialog(&mut da, "BYE", None, "").await;
    assert!(b.hung_up(Duration::from_secs(5)).await);
    wait_no_calls(&engine, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_suspends_the_rtp_timeout_and_resume_restores_it() {
    let mut b = Ua::new("127.0.0.1:9".parse().unwrap()).await;
    let engine = forward_engine(b.addr, |c| c.media.rtp_timeout = Duration::from_secs(2)).await;
    b.engine = engine.sip_addr;
    let mut a = Ua::new(engine.sip_addr).await;
    let (mut da, _db, a_media, b_media) =
        forward_call(&mut a, &mut b, ("8", PCMA), ("8", PCMA)).await;
    a.rtp.send(a_media, 8, vec![0x9A; 160]);
    b.rtp.send(b_media, 8, vec![0x1B; 160]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A puts B on hold and, as many phones do, stops sending; B hears music and
    // keeps talking.
    let hold = sdp(
        "127.0.0.1",
        a.rtp.addr.port(),
        2,
        "8",
        &format!("{PCMA}a=sendonly\r\n"),
    );
    a.in_dialog(&mut da, "INVITE", Some(&hold), "application/sdp")
        .await;
    a.rtp.stop();
    let bye = a.request_named("BYE", Duration::from_secs(5)).await;
    assert!(
        bye.is_none(),
        "held for 5 s with a 2 s RTP timeout: the call stays up"
    );
    // Resumed and still silent: the timeout ends the call.
    let resume = sdp("127.0.0.1", a.rtp.addr.port(), 3, "8", PCMA);
    a.in_dialog(&mut da, "INVITE", Some(&resume), "application/sdp")
        .await;
    let started = Instant::now();
    let hung_up = a.hung_up(Duration::from_secs(6)).await;
    assert!(
        hung_up,
        "no RTP after resume: the engine hangs up; A saw {:?}",
        a.seen_lines()
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    assert!(
        b.hung_up(Duration::from_secs(5)).await,
        "the other party too"
    );
    b.rtp.stop();
    wait_for_events(&engine, "call.ended", 1, Duration::from_secs(5)).await;
    wait_no_calls(&engine, Duration::from_secs(10)).await;
}

/// A tenant number with a menu: 1 queues the call.
fn menu_config() -> String {
    format!(
        "{TRUNK}[[number]]\nnumber = \"+73432000200\"\nkind = \"tenant\"\ntenant = \"etalon\"\ncity = \"ekb\"\ntrunk = \"provider-x\"\ngreeting = \"ru/connecting.wav\"\nmenu = \"main\"\n\n\
         [[menu]]\nname = \"main\"\nprompt = \"ru/menu-main.wav\"\ntimeout_s = 20\n[[menu.option]]\ndigit = \"1\"\naction = \"queue\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_info_digits_reach_the_ivr() {
    let engine = engine::start(&menu_config()).await;
    dispatchline::store::demo::seed(&engine.store)
        .await
        .unwrap();
    let mut a = Ua::new(engine.sip_addr).await;
    let offer = sdp("127.0.0.1", a.rtp.addr.port(), 1, "8", PCMA);
    let mut d = a.invite("+73432000200", "+79120000098", Some(&offer)).await;
    assert_eq!(a.final_response(&mut d, None).await.status(), Some(200));
    // The greeting (about a second), then the menu prompt plays: a key during it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let info = a
        .in_dialog(
            &mut d,
            "INFO",
            Some("Signal=1\r\nDuration=160\r\n"),
            "application/dtmf-relay",
        )
        .await;
    assert_eq!(info.status(), Some(200));
    let queued = wait_for_events(&engine, "call.queued", 1, Duration::from_secs(5)).await;
    assert_eq!(queued.len(), 1);
    let digits: Vec<(String, String)> = events_of(&engine, "call.dtmf")
        .iter()
        .map(|e| {
            (
                e["digit"].as_str().unwrap().to_owned(),
                e["stage"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(digits, [("1".to_owned(), "menu".to_owned())]);
    a.in_dialog(&mut d, "BYE", None, "").await;
    wait_no_calls(&engine, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_crosses_between_legs_as_each_negotiated_it() {
    // A speaks RFC 4733; B has no telephone-event and gets SIP INFO, and B's INFO
    // reaches A as events.
    let mut b = Ua::new("127.0.0.1:9".parse().unwrap()).await;
    let engine = forward_engine(b.addr, |_| {}).await;
    b.engine = engine.sip_addr;
    let mut a = Ua::new(engine.sip_addr).await;
    let (_da, mut db, a_media, b_media) =
        forward_call(&mut a, &mut b, ("8 101", PCMA_TE), ("8", PCMA)).await;
    a.rtp.send(a_media, 8, vec![0x9A; 160]);
    b.rtp.send(b_media, 8, vec![0x1B; 160]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.rtp.press(a_media, 5).await;
    let info = b
        .request_named("INFO", Duration::from_secs(3))
        .await
        .expect("A's key reaches B as SIP INFO");
    b.respond(&info, 200, "", None).await;
    assert_eq!(info.header("content-type"), Some("application/dtmf-relay"));
    assert!(info.body.contains("Signal=5"), "{}", info.body);
    assert!(info.body.contains("Duration=100"), "{}", info.body);
    let ok = b
        .in_dialog(
            &mut db,
            "INFO",
            Some("Signal=7\r\nDuration=120\r\n"),
            "application/dtmf-relay",
        )
        .await;
    assert_eq!(ok.status(), Some(200));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let events = a.rtp.events(101);
    assert!(events.len() >= 4, "{events:?}");
    assert!(events.iter().all(|e| e[0] == 7), "{events:?}");
    assert!(events.iter().any(|e| e[1] & 0x80 != 0), "with end packets");
    let dur = events
        .iter()
        .map(|e| u16::from_be_bytes([e[2], e[3]]))
        .max()
        .unwrap();
    assert_eq!(dur, 960, "120 ms at 8 kHz");
    a.rtp.stop();
    b.rtp.stop();
    b.in_dialog(&mut db, "BYE", None, "").await;
    assert!(a.hung_up(Duration::from_secs(5)).await);
    wait_no_calls(&engine, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citywide_recording_moves_to_the_tenant_found_under_one_wav_name() {
    let engine = engine::start_with(
        &format!(
            "{TRUNK}[[number]]\nnumber = \"+73432000100\"\nkind = \"citywide\"\ncity = \"ekb\"\ntrunk = \"provider-x\"\n"
        ),
        |c| c.media.record_calls = true,
    )
    .await;
    dispatchline::store::demo::seed(&engine.store)
        .await
        .unwrap();
    let mut a = Ua::new(engine.sip_addr).await;
    let offer = sdp("127.0.0.1", a.rtp.addr.port(), 1, "8", PCMA);
    // The demo's known caller lives in a house of tenant etalon.
    let mut d = a.invite("+73432000100", "+79120000001", Some(&offer)).await;
    let fin = a.final_response(&mut d, None).await;
    assert_eq!(fin.status(), Some(200));
    a.rtp
        .send(on_loopback(fin.media().unwrap()), 8, vec![0x9A; 160]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    a.rtp.stop();
    a.in_dialog(&mut d, "BYE", None, "").await;
    let ready = wait_for_events(&engine, "recording.ready", 1, Duration::from_secs(10)).await;
    let call = ready[0].payload["call"].as_str().unwrap().to_owned();
    let id = dispatchline::store::RecordingId(ready[0].payload["recording"].as_i64().unwrap());
    let row = engine.store.recording(id).await.unwrap().unwrap();
    let path = std::path::PathBuf::from(&row.path);
    assert!(path.is_file(), "{}", path.display());
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.ends_with(".wav") && !name.ends_with(".wav.wav"),
        "{name}"
    );
    assert_eq!(
        path.parent().unwrap().file_name().unwrap(),
        "etalon",
        "{}",
        path.display()
    );
    // The date is Yekaterinburg's (the city's), not UTC's.
    let local = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Yekaterinburg)
        .format("%Y/%m/%d")
        .to_string();
    assert!(
        path.to_string_lossy().contains(&local),
        "{} not under {local}",
        path.display()
    );
    let root = path.ancestors().nth(5).unwrap();
    let stray: Vec<_> = walk(root)
        .into_iter()
        .filter(|p| {
            p.to_string_lossy().contains("no-tenant") || p.to_string_lossy().ends_with(".part")
        })
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    let (left, right) = util::read_stereo(&path);
    assert!(util::rms(&left) > 100.0, "the caller's audio");
    assert!(util::rms(&right) > 100.0, "the greeting");
    let _ = call;
    wait_no_calls(&engine, Duration::from_secs(10)).await;
}

fn walk(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_sdp_answer_is_acked_then_hung_up() {
    let mut b = Ua::new("127.0.0.1:9".parse().unwrap()).await;
    let engine = forward_engine(b.addr, |_| {}).await;
    b.engine = engine.sip_addr;
    let mut a = Ua::new(engine.sip_addr).await;
    let offer = sdp("127.0.0.1", a.rtp.addr.port(), 1, "8", PCMA);
    let mut da = a.invite("100", "+79120000099", Some(&offer)).await;
    let invite = b
        .request_named("INVITE", Duration::from_secs(5))
        .await
        .unwrap();
    // B answers with a codec the engine never offered.
    let bad = sdp(
        "127.0.0.1",
        b.rtp.addr.port(),
        1,
        "18",
        "a=rtpmap:18 G729/8000\r\n",
    );
    b.answer(&invite, &bad).await;
    b.request_named("ACK", Duration::from_secs(5))
        .await
        .expect("RFC 3261 §13.2.1: the 2xx is ACKed");
    let bye = b
        .request_named("BYE", Duration::from_secs(5))
        .await
        .expect("... and the dialog ended with BYE");
    b.respond(&bye, 200, "", None).await;
    let fin = a.final_response(&mut da, None).await;
    assert_eq!(fin.status(), Some(488), "{}", fin.start);
    wait_no_calls(&engine, Duration::from_secs(10)).await;

    // A late offer (INVITE without SDP) whose ACK brings no answer.
    let mut a = Ua::new(engine.sip_addr).await;
    let mut da = a.invite("100", "+79120000099", None).await;
    let invite = b
        .request_named("INVITE", Duration::from_secs(5))
        .await
        .unwrap();
    let good = sdp("127.0.0.1", b.rtp.addr.port(), 1, "8", PCMA);
    b.answer(&invite, &good).await;
    b.request_named("ACK", Duration::from_secs(5))
        .await
        .unwrap();
    let fin = a.final_response(&mut da, None).await;
    assert_eq!(fin.status(), Some(200));
    assert!(fin.media().is_some(), "the 2xx holds the engine's offer");
    assert!(
        a.hung_up(Duration::from_secs(5)).await,
        "no answer in the ACK: the engine hangs up"
    );
    assert!(
        b.hung_up(Duration::from_secs(5)).await,
        "and the other party too"
    );
    wait_no_calls(&engine, Duration::from_secs(10)).await;
}

/// A SIPp scenario calling `[service]` that plays one capture after the answer.
fn capture_scenario(capture: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="dtmf capture">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]dtmf[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:[caller]@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]dtmf[call_number]
      [last_To:]
      [routes]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <pause milliseconds="500"/>
  <nop><action><exec play_pcap_audio="{capture}"/></action></nop>
  <pause milliseconds="2500"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]dtmf[call_number]
      [last_To:]
      [routes]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
</scenario>
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rfc2833_capture_played_by_sipp_gives_exactly_its_digit() {
    let engine = engine::start(&menu_config()).await;
    dispatchline::store::demo::seed(&engine.store)
        .await
        .unwrap();
    let dir = sipp::workdir("media-dtmf-captures");
    let captures = [
        ("0", '0'),
        ("1", '1'),
        ("2", '2'),
        ("3", '3'),
        ("4", '4'),
        ("5", '5'),
        ("6", '6'),
        ("7", '7'),
        ("8", '8'),
        ("9", '9'),
        ("star", '*'),
        ("pound", '#'),
    ];
    let mut runs = Vec::new();
    for (i, (name, _)) in captures.iter().enumerate() {
        let file = format!("dtmf_2833_{name}.pcap");
        std::fs::copy(util::sipp_capture(&file), dir.join(&file)).unwrap();
        let scenario = dir.join(format!("dtmf_{name}.xml"));
        std::fs::write(&scenario, capture_scenario(&file)).unwrap();
        let caller = format!("+791200001{i:02}");
        let args = sipp::args(&[
            "-sf",
            &scenario.to_string_lossy(),
            &engine.sip_addr.to_string(),
            "-s",
            "+73432000200",
            "-key",
            "caller",
            &caller,
            "-i",
            "127.0.0.1",
            "-m",
            "1",
            "-p",
            &free_port().to_string(),
            "-mp",
            &free_port().to_string(),
        ]);
        runs.push(spawn(name, &dir, &args));
        // Spread the calls a little: a dozen SIPp processes start at once otherwise.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    for run in runs {
        run.finish(Duration::from_secs(60))
            .await
            .assert_success("dtmf capture");
    }
    wait_for_events(
        &engine,
        "call.ended",
        captures.len(),
        Duration::from_secs(10),
    )
    .await;
    let offered = events_of(&engine, "call.offered");
    let digits = events_of(&engine, "call.dtmf");
    for (i, (name, digit)) in captures.iter().enumerate() {
        let caller = format!("+791200001{i:02}");
        let call = offered
            .iter()
            .find(|o| o["from"] == caller.as_str())
            .unwrap_or_else(|| panic!("call from {caller}"))["call"]
            .clone();
        let got: Vec<String> = digits
            .iter()
            .filter(|d| d["call"] == call)
            .map(|d| d["digit"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(got, [digit.to_string()], "{name}: exactly its digit, once");
    }
    wait_no_calls(&engine, Duration::from_secs(10)).await;
}
