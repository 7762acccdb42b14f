//! Datagrams arriving on a leg's RTP socket: the session takes any bytes (RTP,
//! RTCP muxed, garbage) without panicking, relays and records what is valid.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dispatchline::media::rtp::Ssrc;
use dispatchline::media::session::{LegConfig, LegSession};
use dispatchline::media::{Codec, Direction, Negotiated, PayloadFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
    let t0 = Instant::now();
    let mut leg = LegSession::new(LegConfig {
        ssrc: Ssrc(1),
        initial_seq: 65500,
        initial_ts: u32::MAX - 100,
        rtp_timeout: Duration::from_secs(60),
        rtcp_interval: Duration::from_secs(5),
        cname: "fuzz".into(),
        wallclock: None,
        seed: 1,
    });
    leg.set_remote(
        t0,
        Negotiated {
            remote_rtp: Some(peer),
            remote_rtcp: None,
            rtcp_mux: true,
            codec: PayloadFormat::at_static(Codec::Pcma),
            dtmf_pt: Some(101),
            dtmf_events: 0x1_FFFF,
            direction: Direction::SendRecv,
            ptime: 20,
        },
    );
    leg.set_relay(true);
    // The input is a run of datagrams, each prefixed by its length byte.
    let mut rest = data;
    let mut now = t0;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (datagram, next) = tail.split_at(n);
        now += Duration::from_millis(20);
        leg.handle_rtp(now, peer, datagram);
        leg.handle_timeout(now);
        while leg.poll_relay().is_some() {}
        while leg.poll_event().is_some() {}
        while leg.poll_transmit().is_some() {}
        rest = next;
    }
});
