//! Every RFC 4475 and RFC 5118 torture message through the wire parser, with the
//! verdict each README table asks for. (The same messages are sent to a running
//! engine over UDP in `tests/sip_torture.rs`; this file pins the parser's part.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly by design

use bytes::Bytes;
use dispatchline::sip::wire::{Framing, Message, WireError, parse};

#[derive(Debug, PartialEq)]
enum Verdict {
    /// Parses; what happens next is ordinary processing.
    Accept,
    /// A request rejected by the parser with this status.
    Reject(u16),
    /// Rejected with no answer (a malformed response, or nothing to answer to).
    Drop,
}

fn verdict(bytes: &[u8]) -> Verdict {
    match parse(Bytes::copy_from_slice(bytes), Framing::Datagram) {
        Ok(_) => Verdict::Accept,
        Err(e) => match e.response("tag") {
            Some(_) => Verdict::Reject(e.error.status()),
            None => Verdict::Drop,
        },
    }
}

fn file(dir: &str, name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{dir}/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn rfc4475_parser_verdicts() {
    use Verdict::*;
    let table = [
        // §3.1.1 valid
        ("wsinv", Accept),
        ("intmeth", Accept),
        ("esc01", Accept),
        ("escnull", Accept),
        ("esc02", Accept),
        ("lwsdisp", Accept),
        ("longreq", Accept),
        ("dblreq", Accept),
        ("semiuri", Accept),
        ("transports", Accept),
        ("mpart01", Accept),
        ("unreason", Accept),
        ("noreason", Accept),
        // §3.1.2 invalid
        ("badinv01", Reject(400)),
        ("clerr", Reject(400)),
        ("ncl", Reject(400)),
        ("scalar02", Reject(400)),
        ("scalarlg", Drop),
        ("quotbal", Reject(400)),
        ("ltgtruri", Reject(400)),
        ("lwsruri", Reject(400)),
        ("lwsstart", Accept),
        ("trws", Accept),    // tolerated, as §3.1.2.9-10 allow
        ("escruri", Accept), // parses; the UAS refuses the escaped headers (400)
        ("baddate", Accept), // Date is not used, so it is ignored
        ("regbadct", Reject(400)),
        ("badaspec", Reject(400)),
        ("baddn", Reject(400)),
        ("badvers", Reject(505)),
        ("mismatch01", Accept),
        ("mismatch02", Accept),
        ("bigcode", Drop),
        // §3.2: parses; the transaction layer refuses the bare magic cookie
        ("badbranch", Accept),
        // §3.3: syntactically valid, semantics tested at the UAS
        ("insuf", Reject(400)),
        ("unkscm", Accept),
        ("novelsc", Accept),
        ("unksm2", Accept),
        ("bext01", Accept),
        ("invut", Accept),
        ("regaut01", Accept),
        ("multi01", Reject(400)),
        ("mcl01", Reject(400)),
        ("bcast", Accept),
        ("zeromf", Accept),
        ("cparam01", Accept),
        ("cparam02", Accept),
        ("regescrt", Accept),
        ("sdp01", Accept),
        // §3.4
        ("inv2543", Accept),
        // Not in any section: no SIP-Version and no Via, so nothing to answer.
        ("test", Drop),
    ];
    let mut wrong = Vec::new();
    for (name, expected) in &table {
        let got = verdict(&file("rfc4475", &format!("{name}.dat")));
        if &got != expected {
            wrong.push(format!("{name}: expected {expected:?}, got {got:?}"));
        }
    }
    let covered = std::fs::read_dir(format!("{}/tests/data/rfc4475", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "dat")
        })
        .count();
    assert_eq!(covered, table.len(), "every file has a verdict");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn rfc4475_semantics_the_parser_must_keep() {
    let req = |name: &str| match parse(
        Bytes::from(file("rfc4475", &format!("{name}.dat"))),
        Framing::Datagram,
    ) {
        Ok(Message::Request(r)) => r,
        other => panic!("{name}: {other:?}"),
    };
    // esc01: compare after unescaping once; the name param keeps value%41.
    let esc01 = req("esc01");
    assert_eq!(
        esc01.headers.to.uri.user_unescaped().as_deref(),
        Some("user")
    );
    assert_eq!(
        esc01.headers.contact_uri().unwrap().param("n%61me"),
        Some(Some("v%61lue%25%34%31"))
    );
    // escnull: the NUL does not truncate; two bindings.
    let escnull = req("escnull");
    assert_eq!(
        escnull.headers.to.uri.user_unescaped().as_deref(),
        Some("null-\0-null")
    );
    assert_eq!(escnull.headers.contact.len(), 2);
    // esc02: C%6Fntact is an unknown header, so only two Contacts.
    let esc02 = req("esc02");
    assert_eq!(esc02.headers.contact.len(), 2);
    assert_eq!(esc02.method.as_str(), "RE%47IST%45R");
    // dblreq: the trailing INVITE is not part of the REGISTER.
    let dblreq = req("dblreq");
    assert!(dblreq.body.is_empty());
    // mpart01: the binary body is cut by Content-Length.
    assert_eq!(req("mpart01").body.len(), 553);
    // wsinv: three Vias through folding and compact forms; Subject is empty.
    let wsinv = req("wsinv");
    assert_eq!(wsinv.headers.via.len(), 3);
    assert_eq!(wsinv.headers.cseq.seq, 9);
    assert_eq!(wsinv.headers.max_forwards, Some(68));
    assert_eq!(wsinv.headers.get("Subject"), Some(""));
    assert_eq!(
        wsinv.headers.get("NewFangledHeader"),
        Some("newfangled value continued newfangled value")
    );
    // cparam01/02: a bare URI's ;param is a header param, a bracketed one a URI param.
    let c1 = req("cparam01");
    assert_eq!(
        c1.headers.contact_uri().unwrap().as_str(),
        "sip:+19725552222@gw1.example.net"
    );
    let c2 = req("cparam02");
    assert_eq!(
        c2.headers.contact_uri().unwrap().as_str(),
        "sip:+19725552222@gw1.example.net;unknownparam"
    );
    // regescrt: the escaped Route stays in the stored URI.
    assert_eq!(
        req("regescrt").headers.contact_uri().unwrap().headers(),
        Some("Route=%3Csip:sip.example.com%3E")
    );
    // transports: five Vias with five transports.
    let t: Vec<_> = req("transports")
        .headers
        .via
        .iter()
        .map(|v| v.transport.clone())
        .collect();
    assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    // inv2543: no Content-Length on UDP, so the body is the rest of the datagram.
    assert!(!req("inv2543").body.is_empty());
    // semiuri: the user part holds the semicolon.
    assert_eq!(req("semiuri").uri.user(), Some("user;par=u%40example.net"));
}

/// Applies the RFC 5118 README's recipe: LF to CRLF, add the closing empty line, set
/// Content-Length to the real body length.
fn wire_form(raw: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(raw.to_vec())
        .unwrap()
        .replace("\r\n", "\n");
    let (head, body) = match text.split_once("\n\n") {
        Some((h, b)) => (h.to_owned(), b.to_owned()),
        None => (text.trim_end_matches('\n').to_owned(), String::new()),
    };
    let body = body.replace('\n', "\r\n");
    let head: Vec<String> = head
        .lines()
        .map(|l| {
            if l.to_ascii_lowercase().starts_with("content-length") {
                format!("Content-Length: {}", body.len())
            } else {
                l.to_owned()
            }
        })
        .collect();
    format!("{}\r\n\r\n{}", head.join("\r\n"), body).into_bytes()
}

#[test]
fn rfc5118_ipv6_messages() {
    let expected_reject = ["ipv6-bad"];
    for entry in
        std::fs::read_dir(format!("{}/tests/data/rfc5118", env!("CARGO_MANIFEST_DIR"))).unwrap()
    {
        let path = entry.unwrap().path();
        if path.is_dir() || path.extension().is_some() {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let bytes = wire_form(&std::fs::read(&path).unwrap());
        let result = parse(Bytes::from(bytes), Framing::Datagram);
        if expected_reject.contains(&name.as_str()) {
            let err = result.expect_err(&name);
            assert!(
                matches!(err.error, WireError::BadRequestUri(_)),
                "{name}: {err}"
            );
            assert!(err.response("t").is_some(), "{name} gets a 400");
        } else {
            assert!(
                result.is_ok(),
                "{name}: {:?}",
                result.err().map(|e| e.to_string())
            );
        }
    }
}
