//! Micro-benchmarks of the SIP core: parsing a message off the wire, writing one, and
//! an INVITE server transaction's whole life through the endpoint (INVITE, 100,
//! 180, 200, ACK, then BYE and its 200), all in memory with virtual time.
//!
//! ```text
//! cargo bench --bench sip
//! ```

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use dispatchline::sip::endpoint::{Endpoint, EndpointConfig, EndpointEvent};
use dispatchline::sip::transport::Target;
use dispatchline::sip::wire::{Framing, Message, parse};

fn invite(call: u64) -> Bytes {
    let sdp = "v=0\r\no=resident 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
               a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n";
    Bytes::from(format!(
        "INVITE sip:+73432000001@203.0.113.5 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-{call}-1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"Resident\" <sip:+79120000001@192.0.2.10>;tag=res{call}\r\n\
         To: <sip:+73432000001@203.0.113.5>\r\n\
         Call-ID: {call}-bench@192.0.2.10\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:+79120000001@192.0.2.10:5060>\r\n\
         Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO\r\n\
         User-Agent: provider-x/1.0\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    ))
}

fn in_dialog(method: &str, call: u64, to_tag: &str, cseq: u32) -> Bytes {
    Bytes::from(format!(
        "{method} sip:bench@203.0.113.5:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-{call}-{cseq}{method}\r\n\
         Max-Forwards: 70\r\n\
         From: \"Resident\" <sip:+79120000001@192.0.2.10>;tag=res{call}\r\n\
         To: <sip:+73432000001@203.0.113.5>;tag={to_tag}\r\n\
         Call-ID: {call}-bench@192.0.2.10\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    ))
}

fn parsing(c: &mut Criterion) {
    let bytes = invite(1);
    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse INVITE with SDP", |b| {
        b.iter(|| parse(black_box(bytes.clone()), Framing::Datagram).unwrap())
    });
    let Message::Request(request) = parse(bytes.clone(), Framing::Datagram).unwrap() else {
        panic!("a request");
    };
    g.bench_function("write 180 Ringing", |b| {
        b.iter(|| {
            black_box(&request)
                .response(180)
                .with_to_tag("abc123")
                .to_bytes()
        })
    });
    g.finish();
}

fn transaction(c: &mut Criterion) {
    let source = Target::udp("192.0.2.10:5060".parse().unwrap());
    let mut g = c.benchmark_group("transaction");
    g.throughput(Throughput::Elements(1));
    g.bench_function("INVITE server transaction and BYE, whole call", |b| {
        b.iter_batched(
            || {
                let ep = Endpoint::new(EndpointConfig::new("203.0.113.5:5060".parse().unwrap()), 7);
                let msgs: Vec<Message> = [
                    invite(2),
                    in_dialog("ACK", 2, "uas2", 1),
                    in_dialog("BYE", 2, "uas2", 2),
                ]
                .into_iter()
                .map(|m| parse(m, Framing::Datagram).unwrap())
                .collect();
                (ep, msgs)
            },
            |(mut ep, msgs)| {
                let t0 = Instant::now();
                let mut msgs = msgs.into_iter();
                ep.handle_message(t0, msgs.next().unwrap(), source);
                let tx = match ep.poll_event() {
                    Some(EndpointEvent::Request { tx, .. }) => tx,
                    other => panic!("{other:?}"),
                };
                let request = ep.server_request(tx).unwrap().clone();
                ep.respond(t0, tx, request.response(180).with_to_tag("uas2"));
                ep.respond(t0, tx, request.response(200).with_to_tag("uas2"));
                ep.handle_message(t0 + Duration::from_millis(20), msgs.next().unwrap(), source);
                ep.handle_message(t0 + Duration::from_secs(1), msgs.next().unwrap(), source);
                while let Some(e) = ep.poll_event() {
                    if let EndpointEvent::Request { tx, request, .. } = e {
                        ep.respond(t0, tx, request.response(200));
                    }
                }
                let mut sent = 0;
                while let Some(t) = ep.poll_transmit() {
                    sent += t.bytes.len();
                }
                ep.handle_timeout(t0 + Duration::from_secs(40));
                black_box(sent)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, parsing, transaction);
criterion_main!(benches);
