//! A UDP datagram off the wire: parse it; whatever parses must write out and parse
//! back to the same message.
#![no_main]

use bytes::Bytes;
use dispatchline::sip::wire::{Framing, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = parse(Bytes::copy_from_slice(data), Framing::Datagram) {
        let again = parse(message.to_bytes(), Framing::Stream);
        assert_eq!(again.ok().as_ref(), Some(&message));
    }
});
