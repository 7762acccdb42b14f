//! A TCP byte stream cut into arbitrary chunks: the framer must find the same
//! messages however the bytes arrive, and parse each frame without panicking.
#![no_main]

use dispatchline::sip::wire::{Frame, Framing, StreamFramer, parse};
use libfuzzer_sys::fuzz_target;

fn frames(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut framer = StreamFramer::new();
    let mut out = Vec::new();
    for chunk in chunks {
        framer.push(chunk);
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Message(bytes))) => {
                    let _ = parse(bytes.clone(), Framing::Stream);
                    out.push(bytes.to_vec());
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return out,
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let whole = frames(&[rest]);
    let at = usize::from(cut).min(rest.len());
    let (a, b) = rest.split_at(at);
    assert_eq!(frames(&[a, b]), whole);
});
