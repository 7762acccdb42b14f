//! Client and server transactions talking over lossy, delaying links in virtual
//! time (STYLE §7): a seeded RNG drops and delays each datagram, the clock jumps
//! from event to event, and every run of a seed is the same run.
//!
//! Each scenario starts a client transaction, creates the server transaction when
//! the first copy of the request arrives (as the endpoint does) and lets the
//! server's TU answer at once. It checks what RFC 3261 §17 promises: the client
//! either hears the final response or gives up by Timer B/F at exactly 64·T1,
//! both machines terminate, and nothing depends on anything but the seed.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::tests::{invite, request};
use super::{
    ClientInvite, ClientNonInvite, ServerInvite, ServerNonInvite, TimerSettings, TransactionEvent,
};
use crate::sip::wire::{Framing, Message, Method, Request, Response, parse};

/// One direction of the network: each datagram is lost with probability `loss`,
/// else delivered after a delay drawn from `delay`.
struct Link {
    loss: f64,
    delay: (u64, u64),
    in_flight: VecDeque<(Instant, Bytes)>,
}

impl Link {
    fn new(loss: f64, delay: (u64, u64)) -> Self {
        Self {
            loss,
            delay,
            in_flight: VecDeque::new(),
        }
    }

    fn send(&mut self, rng: &mut SmallRng, now: Instant, bytes: Bytes) {
        if rng.random_bool(self.loss) {
            return;
        }
        let delay = Duration::from_millis(rng.random_range(self.delay.0..=self.delay.1));
        self.in_flight.push_back((now + delay, bytes));
        self.in_flight.make_contiguous().sort_by_key(|(at, _)| *at);
    }

    fn next_arrival(&self) -> Option<Instant> {
        self.in_flight.front().map(|(at, _)| *at)
    }

    fn arrived(&mut self, now: Instant) -> Option<Bytes> {
        if self.next_arrival()? <= now {
            return self.in_flight.pop_front().map(|(_, b)| b);
        }
        None
    }
}

/// The two ends of a transaction, INVITE or not.
enum Client {
    Invite(ClientInvite),
    NonInvite(ClientNonInvite),
}

enum Server {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

macro_rules! both {
    ($e:expr, $m:ident => $body:expr) => {
        match $e {
            Client::Invite($m) => $body,
            Client::NonInvite($m) => $body,
        }
    };
}

macro_rules! each {
    ($e:expr, $m:ident => $body:expr) => {
        match $e {
            Server::Invite($m) => $body,
            Server::NonInvite($m) => $body,
        }
    };
}

/// What one run did, in order, with times relative to its start.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    trace: Vec<(Duration, String)>,
    /// The final status the client's TU heard, if any.
    final_status: Option<u16>,
    /// When the client reported Timer B/F.
    timeout_at: Option<Duration>,
    /// Whether the server transaction saw the ACK (INVITE) or simply finished.
    server_done: bool,
    client_done: bool,
}

fn parse_msg(bytes: &Bytes) -> Message {
    match parse(bytes.clone(), Framing::Datagram) {
        Ok(m) => m,
        Err(e) => panic!("the machines sent something unparseable: {e}"),
    }
}

fn final_for(request: &Request) -> Response {
    let status = if request.method == Method::Invite {
        486
    } else {
        200
    };
    request.response(status).with_to_tag("uas")
}

/// Runs one transaction of `request` over links with `loss` and `delay` (ms).
fn run(seed: u64, request: Request, loss: f64, delay: (u64, u64)) -> Run {
    let settings = TimerSettings::default();
    let mut rng = SmallRng::seed_from_u64(seed);
    let t0 = Instant::now();
    let mut now = t0;
    let mut up = Link::new(loss, delay);
    let mut down = Link::new(loss, delay);
    let mut client = if request.method == Method::Invite {
        Client::Invite(ClientInvite::new(now, request, false, settings))
    } else {
        Client::NonInvite(ClientNonInvite::new(now, request, false, settings))
    };
    let mut server: Option<Server> = None;
    let mut out = Run {
        trace: Vec::new(),
        final_status: None,
        timeout_at: None,
        server_done: false,
        client_done: false,
    };
    let end = t0 + Duration::from_secs(300);
    loop {
        // Drain both machines into the links, and the client's events.
        while let Some(b) = both!(&mut client, m => m.poll_transmit()) {
            up.send(&mut rng, now, b);
        }
        while let Some(e) = both!(&mut client, m => m.poll_event()) {
            let at = now - t0;
            match &e {
                TransactionEvent::Response(r) if r.status >= 200 => {
                    out.final_status.get_or_insert(r.status);
                }
                TransactionEvent::Timeout => out.timeout_at = Some(at),
                _ => {}
            }
            out.trace.push((at, format!("client {e:?}")));
        }
        if let Some(s) = server.as_mut() {
            while let Some(b) = each!(s, m => m.poll_transmit()) {
                down.send(&mut rng, now, b);
            }
            while let Some(e) = each!(s, m => m.poll_event()) {
                out.trace.push((now - t0, format!("server {e:?}")));
            }
        }
        let next = [
            both!(&client, m => m.poll_timeout()),
            server
                .as_ref()
                .and_then(|s| each!(s, m => m.poll_timeout())),
            up.next_arrival(),
            down.next_arrival(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next.filter(|n| *n <= end) else {
            break;
        };
        now = now.max(next);
        while let Some(bytes) = up.arrived(now) {
            let Message::Request(req) = parse_msg(&bytes) else {
                panic!("a response on the way up")
            };
            out.trace
                .push((now - t0, format!("server got {}", req.method)));
            match server.as_mut() {
                Some(s) => each!(s, m => m.handle_request(now, &req)),
                None if req.method == Method::Ack => {}
                None => {
                    // A new server transaction; its TU answers at once.
                    let answer = final_for(&req);
                    let mut s = if req.method == Method::Invite {
                        Server::Invite(ServerInvite::new(req, false, settings))
                    } else {
                        Server::NonInvite(ServerNonInvite::new(now, req, false, settings))
                    };
                    each!(&mut s, m => m.send_response(now, &answer));
                    server = Some(s);
                }
            }
        }
        while let Some(bytes) = down.arrived(now) {
            let Message::Response(resp) = parse_msg(&bytes) else {
                panic!("a request on the way down")
            };
            both!(&mut client, m => m.handle_response(now, resp));
        }
        both!(&mut client, m => m.handle_timeout(now));
        if let Some(s) = server.as_mut() {
            each!(s, m => m.handle_timeout(now));
        }
    }
    out.client_done = both!(&client, m => m.is_terminated());
    out.server_done = server
        .as_ref()
        .is_none_or(|s| each!(s, m => m.is_terminated()));
    out
}

fn check(seed: u64, run: &Run, expected_final: u16) {
    match (run.final_status, run.timeout_at) {
        (Some(status), _) => assert_eq!(status, expected_final, "seed {seed}: {:#?}", run.trace),
        (None, Some(at)) => assert_eq!(
            at,
            Duration::from_secs(32),
            "seed {seed}: Timer B/F is 64·T1: {:#?}",
            run.trace
        ),
        (None, None) => panic!(
            "seed {seed}: neither an answer nor a timeout: {:#?}",
            run.trace
        ),
    }
    assert!(
        run.client_done,
        "seed {seed}: client still alive: {:#?}",
        run.trace
    );
    assert!(
        run.server_done,
        "seed {seed}: server still alive: {:#?}",
        run.trace
    );
}

#[test]
fn invite_transactions_complete_over_a_lossy_link() {
    let mut answered = 0;
    for seed in 0..200 {
        let r = run(seed, invite(), 0.3, (5, 300));
        check(seed, &r, 486);
        answered += usize::from(r.final_status.is_some());
        assert_eq!(r, run(seed, invite(), 0.3, (5, 300)), "seed {seed} replays");
    }
    assert!(
        answered >= 195,
        "only {answered} of 200 answered at 30% loss"
    );
}

#[test]
fn non_invite_transactions_complete_over_a_lossy_link() {
    let mut answered = 0;
    for seed in 0..200 {
        let r = run(seed, request(Method::Options), 0.3, (5, 300));
        check(seed, &r, 200);
        answered += usize::from(r.final_status.is_some());
        assert_eq!(
            r,
            run(seed, request(Method::Options), 0.3, (5, 300)),
            "seed {seed} replays"
        );
    }
    assert!(
        answered >= 195,
        "only {answered} of 200 answered at 30% loss"
    );
}

#[test]
fn a_dead_link_ends_in_timer_b_and_timer_f_at_64_t1() {
    for seed in 0..5 {
        let r = run(seed, invite(), 1.0, (5, 300));
        assert_eq!(r.timeout_at, Some(Duration::from_secs(32)), "Timer B");
        assert!(r.client_done && r.final_status.is_none());
        let r = run(seed, request(Method::Bye), 1.0, (5, 300));
        assert_eq!(r.timeout_at, Some(Duration::from_secs(32)), "Timer F");
        assert!(r.client_done && r.final_status.is_none());
    }
}

#[test]
fn an_ack_lost_every_time_ends_the_server_by_timer_h() {
    // Only the way up is dead after the INVITE got through: the client hears the
    // 486 and ACKs it, the ACKs are lost, and the server gives up at 64·T1.
    let settings = TimerSettings::default();
    let t0 = Instant::now();
    let mut server = ServerInvite::new(invite(), false, settings);
    server.send_response(t0, &final_for(&invite()));
    let mut sends = 0;
    let mut timeout = None;
    while let Some(at) = server.poll_timeout() {
        server.handle_timeout(at);
        while server.poll_transmit().is_some() {
            sends += 1;
        }
        while let Some(e) = server.poll_event() {
            if e == TransactionEvent::Timeout {
                timeout = Some(at - t0);
            }
        }
    }
    assert_eq!(timeout, Some(Duration::from_secs(32)));
    assert!(server.is_terminated());
    assert_eq!(
        sends,
        1 + 1 + 10,
        "the 100, the 486 and Timer G's ten repeats"
    );
}
