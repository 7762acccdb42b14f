//! A telephony configuration file: every fault is reported with its line, never a
//! panic.
#![no_main]

use dispatchline::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::parse(text, std::path::Path::new("fuzz.toml"));
    }
});
