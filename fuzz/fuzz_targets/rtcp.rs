//! A compound RTCP packet from a peer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dispatchline::media::rtcp::is_rtcp(data);
    let _ = dispatchline::media::rtcp::parse_compound(data);
});
