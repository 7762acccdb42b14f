//! Authorization header values from softphones (digest credentials).
#![no_main]

use dispatchline::sip::wire::auth::AuthParams;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = AuthParams::parse(text);
    }
});
