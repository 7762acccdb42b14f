//! Property tests: random and mutated messages never panic the wire layer, the
//! stream framer cuts the same messages however the bytes are chunked, and what the
//! engine writes it can read back.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly by design

use bytes::Bytes;
use dispatchline::sip::wire::{Frame, Framing, Message, StreamFramer, parse};
use proptest::prelude::*;

fn corpus() -> Vec<Vec<u8>> {
    let dir = format!("{}/tests/data/rfc4475", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Duplicate(usize, usize),
    Delete(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop::sample::select(vec![
        b"\r\n".to_vec(),
        b"\r\n ".to_vec(),
        b";".to_vec(),
        b",".to_vec(),
        b"\"".to_vec(),
        b"<".to_vec(),
        b">".to_vec(),
        b"%".to_vec(),
        b"[".to_vec(),
        b":".to_vec(),
        b"\0".to_vec(),
        b"Content-Length: 99999\r\n".to_vec(),
        b"l: -1\r\n".to_vec(),
        b"\xff\xfe".to_vec(),
        b"Via: SIP/2.0/UDP [::1;branch=z9hG4bK".to_vec(),
        b"CSeq: 99999999999999 INVITE\r\n".to_vec(),
    ]);
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), interesting).prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
    ]
}

fn apply(mut msg: Vec<u8>, m: &Mutation) -> Vec<u8> {
    if msg.is_empty() {
        return msg;
    }
    let at = |i: usize, len: usize| i % (len + 1);
    match m {
        Mutation::Flip(i, b) => {
            let i = i % msg.len();
            msg[i] ^= b | 1;
        }
        Mutation::Truncate(i) => msg.truncate(at(*i, msg.len())),
        Mutation::Insert(i, v) => {
            let i = at(*i, msg.len());
            msg.splice(i..i, v.iter().copied());
        }
        Mutation::Duplicate(i, n) => {
            let i = at(*i, msg.len());
            let end = (i + n).min(msg.len());
            let piece = msg[i..end].to_vec();
            msg.splice(i..i, piece);
        }
        Mutation::Delete(i, n) => {
            let i = at(*i, msg.len());
            let end = (i + n).min(msg.len());
            msg.drain(i..end);
        }
    }
    msg
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse(Bytes::from(bytes.clone()), Framing::Datagram);
        let mut f = StreamFramer::new();
        f.push(&bytes);
        while let Ok(Some(_)) = f.next_frame() {}
    }

    #[test]
    fn mutated_torture_messages_never_panic(
        pick in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let corpus = corpus();
        let mut msg = corpus[pick.index(corpus.len())].clone();
        for m in &mutations {
            msg = apply(msg, m);
        }
        if let Ok(parsed) = parse(Bytes::from(msg.clone()), Framing::Datagram) {
            // Whatever parses can be written and read back to the same message.
            let again = parse(parsed.to_bytes(), Framing::Stream);
            prop_assert_eq!(again.as_ref().ok(), Some(&parsed), "{:?}", String::from_utf8_lossy(&msg));
        } else if let Err(e) = parse(Bytes::from(msg), Framing::Datagram) {
            let _ = e.response("t");
        }
    }

    #[test]
    fn stream_chunking_does_not_change_framing(cuts in prop::collection::vec(1usize..200, 1..20)) {
        let valid: Vec<Vec<u8>> = corpus()
            .into_iter()
            .filter_map(|m| match parse(Bytes::from(m), Framing::Datagram) { Ok(msg) => Some(msg.to_bytes().to_vec()), Err(_) => None })
            .collect();
        let mut stream = Vec::new();
        for m in &valid {
            stream.extend_from_slice(m);
            stream.extend_from_slice(b"\r\n\r\n");
        }
        let mut framer = StreamFramer::new();
        let mut got = Vec::new();
        let mut pos = 0;
        let mut cut = cuts.iter().cycle();
        while pos < stream.len() {
            let n = (*cut.next().unwrap()).min(stream.len() - pos);
            framer.push(&stream[pos..pos + n]);
            pos += n;
            while let Some(frame) = framer.next_frame().unwrap() {
                if let Frame::Message(m) = frame { got.push(m.to_vec()); }
            }
        }
        prop_assert_eq!(got, valid);
    }
}

#[test]
fn everything_valid_in_the_corpus_round_trips() {
    for m in corpus() {
        if let Ok(parsed) = parse(Bytes::from(m), Framing::Datagram) {
            let again = parse(parsed.to_bytes(), Framing::Stream).unwrap();
            assert_eq!(again, parsed);
            if let Message::Request(r) = &parsed {
                assert_eq!(r.uri.to_string(), r.uri.as_str());
            }
        }
    }
}

/// Inputs cargo-fuzz (fuzz/) once crashed the parser with, kept so they never do again.
#[test]
fn inputs_the_fuzzer_found_are_refused_cleanly() {
    let found: &[&[u8]] = &[
        // A multi-byte character where "SIP/" would be in a version token.
        b"\0 \0 @S\x05\xec\x83\xabI`,))\n",
    ];
    for input in found {
        let _ = parse(Bytes::from_static(input), Framing::Datagram);
        let mut framer = StreamFramer::new();
        framer.push(input);
        while let Ok(Some(_)) = framer.next_frame() {}
    }
}
