//! Dialogs through the B2BUA over real loopback sockets, with the test itself as
//! both parties (a caller and a callee, each a UDP or TCP socket that speaks SIP
//! by hand): Record-Route echoed and followed, OPTIONS inside a dialog, 481 for
//! unknown dialogs, the target's failures mapped onto the caller, CANCEL racing the
//! 200, hold and resume, a quiet TCP call outliving the idle timeout, and 513.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly by design

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::engine::{self, wait_for_events, wait_no_calls};
use dispatchline::sip::wire::{Framing, Message, Request, Response, StreamFramer, parse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const WAIT: Duration = Duration::from_secs(5);

/// One party, speaking SIP over a UDP socket of its own.
struct Peer {
    socket: UdpSocket,
    /// Messages read but not asked for yet.
    stash: VecDeque<Message>,
}

impl Peer {
    async fn bind() -> Self {
        Self {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            stash: VecDeque::new(),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    async fn send(&self, to: SocketAddr, text: &str) {
        self.socket.send_to(text.as_bytes(), to).await.unwrap();
    }

    async fn send_response(&self, to: SocketAddr, response: &Response) {
        self.socket.send_to(&response.to_bytes(), to).await.unwrap();
    }

    /// The next message that `wanted` accepts, within `within` (others are kept).
    async fn next(
        &mut self,
        within: Duration,
        wanted: impl Fn(&Message) -> bool,
    ) -> Option<Message> {
        if let Some(i) = self.stash.iter().position(&wanted) {
            return self.stash.remove(i);
        }
        let deadline = tokio::time::Instant::now() + within;
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, _) = tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buf))
                .await
                .ok()?
                .unwrap();
            let message = parse(Bytes::copy_from_slice(&buf[..n]), Framing::Datagram).unwrap();
            if wanted(&message) {
                return Some(message);
            }
            self.stash.push_back(message);
        }
    }

    async fn request(&mut self, method: &str) -> Request {
        match self
            .next(
                WAIT,
                |m| matches!(m, Message::Request(r) if r.method.as_str() == method),
            )
            .await
        {
            Some(Message::Request(r)) => r,
            _ => panic!("no {method} arrived; saw {:?}", self.summary()),
        }
    }

    /// The next final response (or provisional with `status`) to a `method`.
    async fn response(&mut self, method: &str, status: u16) -> Response {
        match self
            .next(WAIT, |m| {
                matches!(m, Message::Response(r) if r.status == status && r.headers.cseq.method.as_str() == method)
            })
            .await
        {
            Some(Message::Response(r)) => r,
            _ => panic!("no {status} to {method} arrived; saw {:?}", self.summary()),
        }
    }

    async fn final_response(&mut self, method: &str) -> Response {
        match self
            .next(WAIT, |m| {
                matches!(m, Message::Response(r) if r.status >= 200 && r.headers.cseq.method.as_str() == method)
            })
            .await
        {
            Some(Message::Response(r)) => r,
            _ => panic!("no final response to {method}; saw {:?}", self.summary()),
        }
    }

    /// Whether nothing but `ignored` arrives for `within`.
    async fn quiet(&mut self, within: Duration) -> Vec<String> {
        let mut seen = Vec::new();
        while let Some(m) = self.next(within, |_| true).await {
            seen.push(start_line(&m));
        }
        seen
    }

    fn summary(&self) -> Vec<String> {
        self.stash.iter().map(start_line).collect()
    }
}

fn start_line(m: &Message) -> String {
    String::from_utf8_lossy(&m.to_bytes())
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

fn sdp(rtp: SocketAddr, direction: &str) -> String {
    format!(
        "v=0\r\no=- 7 {v} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na={direction}\r\n",
        v = if direction == "sendrecv" { 1 } else { 2 },
        port = rtp.port()
    )
}

/// The caller's INVITE to number 100, with `extra` header lines.
fn invite(
    engine: SocketAddr,
    caller: SocketAddr,
    rtp: SocketAddr,
    call_id: &str,
    extra: &str,
) -> String {
    let body = sdp(rtp, "sendrecv");
    format!(
        "INVITE sip:100@{engine} SIP/2.0\r\nVia: SIP/2.0/UDP {caller};branch=z9hG4bK{call_id}-1;rport\r\n{extra}From: <sip:79991234567@127.0.0.1>;tag=caller\r\nTo: <sip:100@{engine}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:79991234567@{caller}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A request from the caller inside its dialog with the engine.
fn in_dialog(
    engine: SocketAddr,
    caller: SocketAddr,
    method: &str,
    call_id: &str,
    tag: &str,
    cseq: u32,
    body: &str,
) -> String {
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{method} sip:engine@{engine} SIP/2.0\r\nVia: SIP/2.0/UDP {caller};branch=z9hG4bK{call_id}-{method}-{cseq};rport\r\nFrom: <sip:79991234567@127.0.0.1>;tag=caller\r\nTo: <sip:100@{engine}>;tag={tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContact: <sip:79991234567@{caller}>\r\n{content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn ack(engine: SocketAddr, caller: SocketAddr, call_id: &str, tag: &str) -> String {
    format!(
        "ACK sip:engine@{engine} SIP/2.0\r\nVia: SIP/2.0/UDP {caller};branch=z9hG4bK{call_id}-ack;rport\r\nFrom: <sip:79991234567@127.0.0.1>;tag=caller\r\nTo: <sip:100@{engine}>;tag={tag}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The callee's answer to the engine's INVITE.
fn answer(invite: &Request, status: u16, callee: SocketAddr, rtp: SocketAddr) -> Response {
    let mut r = invite.response(status);
    if status > 100 {
        r = r.with_to_tag("callee");
    }
    if status == 200 {
        r.headers.contact = vec![
            dispatchline::sip::wire::Contact::parse(&format!("<sip:callee@{callee}>")).unwrap(),
        ];
        r = r.with_body("application/sdp", Bytes::from(sdp(rtp, "sendrecv")));
    }
    r
}

/// The callee's BYE inside the dialog the engine opened with it.
fn callee_bye(invite: &Request, callee: SocketAddr) -> String {
    format!(
        "BYE {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {callee};branch=z9hG4bKcalleebye1;rport\r\nFrom: {to};tag=callee\r\nTo: {from}\r\nCall-ID: {cid}\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        contact = invite.headers.contact_uri().unwrap(),
        to = dispatchline::sip::wire::NameAddr::new(invite.headers.to.uri.clone()),
        from = invite.headers.from,
        cid = invite.headers.call_id
    )
}

fn engine_config(callee: SocketAddr) -> String {
    format!(
        "[[trunk]]\nname = \"provider\"\nproxy = \"127.0.0.1:5999\"\noptions_interval_s = 0\n\n\
         [[number]]\nnumber = \"100\"\nkind = \"forward\"\ntarget = \"sip:{callee}\"\n"
    )
}

/// A call from `caller` to `callee` through `engine`, answered and ACKed; returns
/// the engine's INVITE to the callee and the engine's tag towards the caller.
async fn connect(
    engine: SocketAddr,
    caller: &mut Peer,
    callee: &mut Peer,
    rtp: SocketAddr,
    call_id: &str,
    extra: &str,
) -> (Request, Response) {
    caller
        .send(engine, &invite(engine, caller.addr(), rtp, call_id, extra))
        .await;
    let out = callee.request("INVITE").await;
    let callee_addr = callee.addr();
    callee
        .send_response(engine, &answer(&out, 180, callee_addr, rtp))
        .await;
    callee
        .send_response(engine, &answer(&out, 200, callee_addr, rtp))
        .await;
    let _ = callee.request("ACK").await;
    let ok = caller.response("INVITE", 200).await;
    let tag = ok.headers.to.tag().unwrap().to_owned();
    caller
        .send(engine, &ack(engine, caller.addr(), call_id, &tag))
        .await;
    (out, ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_route_is_echoed_options_work_in_dialog_and_unknown_dialogs_get_481() {
    let mut caller = Peer::bind().await;
    let mut callee = Peer::bind().await;
    let engine = engine::start(&engine_config(callee.addr())).await;
    let e = engine.sip_addr;
    // The caller's "proxy" record-routes through the caller's own socket.
    let rr = format!("Record-Route: <sip:{};lr;ftag=caller>\r\n", caller.addr());
    let rtp = caller.addr();
    let (out, ok) = connect(e, &mut caller, &mut callee, rtp, "rr-1", &rr).await;
    assert_eq!(
        ok.headers
            .record_route
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>(),
        vec![format!("<sip:{};lr;ftag=caller>", caller.addr())],
        "RFC 3261 §12.1.1: the 200 carries the Record-Route"
    );
    let tag = ok.headers.to.tag().unwrap().to_owned();

    // OPTIONS inside the dialog: 200.
    caller
        .send(
            e,
            &in_dialog(e, caller.addr(), "OPTIONS", "rr-1", &tag, 2, ""),
        )
        .await;
    assert_eq!(caller.final_response("OPTIONS").await.status, 200);
    // BYE and INFO for a dialog nobody has: 481.
    for method in ["BYE", "INFO"] {
        caller
            .send(
                e,
                &in_dialog(e, caller.addr(), method, "rr-1", "nosuchtag", 3, ""),
            )
            .await;
        assert_eq!(caller.final_response(method).await.status, 481, "{method}");
    }

    // The callee hangs up: the caller's BYE carries the route set.
    callee.send(e, &callee_bye(&out, callee.addr())).await;
    assert_eq!(callee.final_response("BYE").await.status, 200);
    let bye = caller.request("BYE").await;
    assert_eq!(
        bye.headers.route.first().map(|r| r.uri.to_string()),
        Some(format!("sip:{};lr;ftag=caller", caller.addr()))
    );
    assert_eq!(
        bye.uri.to_string(),
        format!("sip:79991234567@{}", caller.addr())
    );
    let reply = bye.response(200);
    caller.send_response(e, &reply).await;
    wait_no_calls(&engine, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_of_the_target_reach_the_caller_mapped() {
    let mut caller = Peer::bind().await;
    let mut callee = Peer::bind().await;
    // T1 of 40 ms: a target that never answers fails by Timer B in 2.56 s.
    let engine = engine::start_with(&engine_config(callee.addr()), |c| {
        c.sip.t1 = Duration::from_millis(40);
    })
    .await;
    let e = engine.sip_addr;
    let rtp = caller.addr();
    let mut seen = std::collections::HashSet::new();
    for (n, (status, expected)) in [(486, 486), (503, 502), (0, 408)].into_iter().enumerate() {
        let call_id = format!("fail-{n}");
        caller
            .send(e, &invite(e, caller.addr(), rtp, &call_id, ""))
            .await;
        // Retransmissions of the last call's INVITE may still be arriving.
        let out = match callee
            .next(WAIT, |m| matches!(m, Message::Request(r) if r.method.as_str() == "INVITE" && !seen.contains(&r.headers.call_id)))
            .await
        {
            Some(Message::Request(r)) => r,
            other => panic!("{call_id}: no INVITE to the target: {other:?}"),
        };
        seen.insert(out.headers.call_id.clone());
        if status != 0 {
            callee
                .send_response(e, &answer(&out, status, callee.addr(), rtp))
                .await;
        }
        let final_response = match caller
            .next(Duration::from_secs(10), |m| {
                matches!(m, Message::Response(r) if r.status >= 200 && r.headers.call_id == call_id)
            })
            .await
        {
            Some(Message::Response(r)) => r,
            other => panic!("{call_id}: {other:?}"),
        };
        assert_eq!(
            final_response.status, expected,
            "target {status}: {}",
            final_response.reason
        );
        if status != 0 {
            // The engine acknowledges the target's failure itself.
            let acked = callee
                .next(WAIT, |m| matches!(m, Message::Request(r) if r.method.as_str() == "ACK" && r.headers.call_id == out.headers.call_id))
                .await;
            assert!(acked.is_some(), "{status} was ACKed");
        }
        callee.stash.clear();
    }
    let ended = wait_for_events(&engine, "call.ended", 3, WAIT).await;
    let statuses: Vec<_> = ended
        .iter()
        .map(|e| e.payload["sip_status"].clone())
        .collect();
    assert_eq!(statuses, vec![486, 502, 408]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_racing_the_200_ends_with_every_dialog_hung_up() {
    let mut caller = Peer::bind().await;
    let mut callee = Peer::bind().await;
    let engine = engine::start(&engine_config(callee.addr())).await;
    let e = engine.sip_addr;
    let rtp = caller.addr();
    let call_id = "race-1";
    caller
        .send(e, &invite(e, caller.addr(), rtp, call_id, ""))
        .await;
    let out = callee.request("INVITE").await;
    callee
        .send_response(e, &answer(&out, 180, callee.addr(), rtp))
        .await;
    let _ = caller.response("INVITE", 180).await;
    // Both at once: the caller gives up as the callee answers.
    let cancel = invite(e, caller.addr(), rtp, call_id, "")
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    let ok = answer(&out, 200, callee.addr(), rtp);
    let (a, b) = tokio::join!(caller.send(e, &cancel), callee.send_response(e, &ok));
    let ((), ()) = (a, b);
    assert_eq!(caller.final_response("CANCEL").await.status, 200);
    let invite_final = caller.final_response("INVITE").await;
    match invite_final.status {
        // The CANCEL won: the engine still takes the callee's 200, ACKs and BYEs it.
        487 => {
            let tag = invite_final.headers.to.tag().unwrap().to_owned();
            let ack_487 = ack(e, caller.addr(), call_id, &tag)
                .replace(&format!("{call_id}-ack"), &format!("{call_id}-1"))
                .replacen(
                    &format!("ACK sip:engine@{e}"),
                    &format!("ACK sip:100@{e}"),
                    1,
                );
            caller.send(e, &ack_487).await;
        }
        // The 200 won: the caller has a call it no longer wants, and hangs it up.
        200 => {
            let tag = invite_final.headers.to.tag().unwrap().to_owned();
            caller.send(e, &ack(e, caller.addr(), call_id, &tag)).await;
            caller
                .send(e, &in_dialog(e, caller.addr(), "BYE", call_id, &tag, 2, ""))
                .await;
            assert_eq!(caller.final_response("BYE").await.status, 200);
        }
        other => panic!("INVITE ended {other}"),
    }
    let _ = callee.request("ACK").await;
    let bye = callee.request("BYE").await;
    callee.send_response(e, &bye.response(200)).await;
    wait_no_calls(&engine, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_resume_play_music_to_the_other_party_and_get_200() {
    let mut caller = Peer::bind().await;
    let mut callee = Peer::bind().await;
    let callee_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let engine = engine::start(&engine_config(callee.addr())).await;
    let e = engine.sip_addr;
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let call_id = "hold-1";
    caller
        .send(
            e,
            &invite(
                e,
                caller.addr(),
                caller_rtp.local_addr().unwrap(),
                call_id,
                "",
            ),
        )
        .await;
    let out = callee.request("INVITE").await;
    let callee_addr = callee.addr();
    callee
        .send_response(
            e,
            &answer(&out, 200, callee_addr, callee_rtp.local_addr().unwrap()),
        )
        .await;
    let ok = caller.response("INVITE", 200).await;
    let tag = ok.headers.to.tag().unwrap().to_owned();
    caller.send(e, &ack(e, caller.addr(), call_id, &tag)).await;
    let mut buf = [0u8; 2048];
    // Bridged, and the caller sends nothing: the callee hears nothing yet.
    let before =
        tokio::time::timeout(Duration::from_millis(300), callee_rtp.recv_from(&mut buf)).await;
    assert!(before.is_err(), "no audio before the hold");

    // Hold: the caller offers sendonly and gets recvonly back.
    let held = sdp(caller_rtp.local_addr().unwrap(), "sendonly");
    caller
        .send(
            e,
            &in_dialog(e, caller.addr(), "INVITE", call_id, &tag, 2, &held),
        )
        .await;
    let ok = caller.response("INVITE", 200).await;
    let body = String::from_utf8_lossy(&ok.body).into_owned();
    assert!(body.contains("a=recvonly"), "{body}");
    caller
        .send(
            e,
            &ack(e, caller.addr(), call_id, &tag).replace("CSeq: 1 ACK", "CSeq: 2 ACK"),
        )
        .await;
    // The other party hears hold music (media is anchored: it sees no re-INVITE).
    let music = tokio::time::timeout(Duration::from_secs(2), callee_rtp.recv_from(&mut buf)).await;
    assert!(music.is_ok(), "hold music reaches the callee");
    let held_events = wait_for_events(&engine, "call.hold", 1, WAIT).await;
    assert_eq!(held_events[0].payload["held"], true);

    // Resume: sendrecv again; the music stops.
    let resumed = sdp(caller_rtp.local_addr().unwrap(), "sendrecv").replace(" 7 1 ", " 7 3 ");
    caller
        .send(
            e,
            &in_dialog(e, caller.addr(), "INVITE", call_id, &tag, 3, &resumed),
        )
        .await;
    let ok = caller.response("INVITE", 200).await;
    assert!(String::from_utf8_lossy(&ok.body).contains("a=sendrecv"));
    caller
        .send(
            e,
            &ack(e, caller.addr(), call_id, &tag).replace("CSeq: 1 ACK", "CSeq: 3 ACK"),
        )
        .await;
    let resumed_events = wait_for_events(&engine, "call.hold", 2, WAIT).await;
    assert_eq!(resumed_events[1].payload["held"], false);
    tokio::time::sleep(Duration::from_millis(200)).await;
    while tokio::time::timeout(Duration::from_millis(1), callee_rtp.recv_from(&mut buf))
        .await
        .is_ok()
    {}
    let after =
        tokio::time::timeout(Duration::from_millis(400), callee_rtp.recv_from(&mut buf)).await;
    assert!(after.is_err(), "the music stopped with the resume");
    // The callee saw no SIP at all during hold and resume.
    let seen = callee.quiet(Duration::from_millis(100)).await;
    assert!(seen.iter().all(|l| !l.starts_with("INVITE")), "{seen:?}");

    caller
        .send(e, &in_dialog(e, caller.addr(), "BYE", call_id, &tag, 4, ""))
        .await;
    assert_eq!(caller.final_response("BYE").await.status, 200);
    let bye = callee.request("BYE").await;
    callee.send_response(e, &bye.response(200)).await;
    wait_no_calls(&engine, Duration::from_secs(10)).await;
}

/// A SIP stream over TCP, the test's side.
struct Stream {
    tcp: TcpStream,
    framer: StreamFramer,
}

impl Stream {
    async fn connect(to: SocketAddr) -> Self {
        Self {
            tcp: TcpStream::connect(to).await.unwrap(),
            framer: StreamFramer::new(),
        }
    }

    async fn send(&mut self, text: &str) {
        self.tcp.write_all(text.as_bytes()).await.unwrap();
    }

    /// The next message, or `None` when the engine closed the connection or nothing
    /// came within `within`.
    async fn next(&mut self, within: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + within;
        let mut buf = vec![0u8; 65536];
        loop {
            if let Some(dispatchline::sip::wire::Frame::Message(bytes)) =
                self.framer.next_frame().unwrap()
            {
                return Some(parse(bytes, Framing::Stream).unwrap());
            }
            let n = tokio::time::timeout_at(deadline, self.tcp.read(&mut buf))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.framer.push(&buf[..n]);
        }
    }

    async fn until(
        &mut self,
        within: Duration,
        wanted: impl Fn(&Message) -> bool,
    ) -> Option<Message> {
        loop {
            let m = self.next(within).await?;
            if wanted(&m) {
                return Some(m);
            }
        }
    }

    /// Whether the engine closed the connection within `within`.
    async fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(deadline, self.tcp.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_tcp_call_outlives_the_idle_timeout_and_an_idle_connection_does_not() {
    let mut callee = Peer::bind().await;
    let engine = engine::start_with(&engine_config(callee.addr()), |c| {
        c.sip.tcp_idle_timeout = Duration::from_secs(1);
    })
    .await;
    let e = engine.sip_addr;
    // The caller connects over TCP and listens nowhere: only its own connection
    // reaches it.
    let mut caller = Stream::connect(e).await;
    let local = caller.tcp.local_addr().unwrap();
    let invite_text = invite(e, local, local, "tcp-1", "")
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP")
        .replace(
            &format!("<sip:79991234567@{local}>"),
            &format!("<sip:79991234567@{local};transport=tcp>"),
        );
    caller.send(&invite_text).await;
    let out = callee.request("INVITE").await;
    callee
        .send_response(e, &answer(&out, 200, callee.addr(), callee.addr()))
        .await;
    let Some(Message::Response(ok)) = caller
        .until(
            WAIT,
            |m| matches!(m, Message::Response(r) if r.status == 200),
        )
        .await
    else {
        panic!("no 200 over TCP");
    };
    let tag = ok.headers.to.tag().unwrap().to_owned();
    caller
        .send(&ack(e, local, "tcp-1", &tag).replace("SIP/2.0/UDP", "SIP/2.0/TCP"))
        .await;
    // Three idle timeouts pass without a byte on the connection.
    assert!(
        !caller.closed_within(Duration::from_secs(3)).await,
        "a connection a call uses stays open"
    );
    // The callee hangs up: the BYE reaches the caller over its connection.
    callee.send(e, &callee_bye(&out, callee.addr())).await;
    let Some(Message::Request(bye)) = caller
        .until(
            WAIT,
            |m| matches!(m, Message::Request(r) if r.method.as_str() == "BYE"),
        )
        .await
    else {
        panic!("no BYE over TCP");
    };
    let reply = bye.response(200);
    caller.tcp.write_all(&reply.to_bytes()).await.unwrap();
    wait_no_calls(&engine, Duration::from_secs(10)).await;
    // Once the call is over, the connection is idle like any other.
    assert!(
        caller.closed_within(Duration::from_secs(4)).await,
        "then it is closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_message_over_64_kib_gets_513_and_the_connection_closes() {
    let engine = engine::start(
        "[[trunk]]\nname = \"provider\"\nproxy = \"127.0.0.1:5999\"\noptions_interval_s = 0\n",
    )
    .await;
    let mut stream = Stream::connect(engine.sip_addr).await;
    let local = stream.tcp.local_addr().unwrap();
    let body = "x".repeat(70_000);
    let big = format!(
        "OPTIONS sip:{e} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bKbig\r\nFrom: <sip:a@127.0.0.1>;tag=a\r\nTo: <sip:{e}>\r\nCall-ID: big-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: {}\r\n\r\n{body}",
        body.len(),
        e = engine.sip_addr
    );
    // The engine may close while we are still writing; that is fine.
    let _ = stream.tcp.write_all(big.as_bytes()).await;
    let Some(Message::Response(r)) = stream.next(WAIT).await else {
        panic!("no answer to the oversize message");
    };
    assert_eq!(r.status, 513, "{}", r.reason);
    assert_eq!(r.headers.call_id, "big-1");
    assert!(
        stream.closed_within(WAIT).await,
        "and the connection is closed"
    );
}
