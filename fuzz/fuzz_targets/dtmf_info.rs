//! DTMF from a peer: SIP INFO bodies (application/dtmf-relay, application/dtmf) and
//! RFC 4733 telephone-event payloads through the detector.
#![no_main]

use std::time::{Duration, Instant};

use dispatchline::media::dtmf::{DtmfDetector, parse_info_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_info_body("application/dtmf-relay", data);
    let _ = parse_info_body("application/dtmf", data);
    let mut detector = DtmfDetector::default();
    let t0 = Instant::now();
    for (i, block) in data.chunks(8).enumerate() {
        let (ts, payload) = block.split_at(block.len().min(4));
        let mut b = [0u8; 4];
        b[..ts.len()].copy_from_slice(ts);
        let now = t0 + Duration::from_millis(10 * i as u64);
        detector.handle(now, u32::from_be_bytes(b), payload);
        detector.handle_timeout(now);
        while detector.poll_digit().is_some() {}
    }
});
