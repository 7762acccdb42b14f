//! An SDP body from a peer: parse it, and answer it as the engine would.
#![no_main]

use dispatchline::media::SdpPreferences;
use dispatchline::media::sdp::SessionDescription;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(offer) = SessionDescription::parse(text) {
        let mut session = dispatchline::media::SdpSession::new(1);
        let local = std::net::SocketAddr::from(([127, 0, 0, 1], 20000));
        let _ = session.answer(&offer, local, &SdpPreferences::default());
    }
});
