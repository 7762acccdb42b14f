//! The RFC 4475 torture messages sent to a running engine over real UDP sockets.
//! Each one gets the answer its README table asks for (or none, for malformed
//! responses and a request without any Via), and afterwards the engine still
//! answers OPTIONS. The parser's own verdicts are pinned in `wire_torture.rs`.
//!
//! Several files share a branch, sent-by and method (they were written as separate
//! tests), so by RFC 3261 §17.2.3 the second one an engine sees is a retransmission
//! of the first. The files are therefore sent in waves, each wave to its own engine,
//! so that no two messages of a wave belong to the same transaction.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly by design

mod common;

use std::time::Duration;

use tokio::net::UdpSocket;

/// What the engine must answer; `None` means no answer at all.
fn expected(name: &str) -> Option<u16> {
    Some(match name {
        // Valid requests, handled normally: INVITEs to numbers not served here get
        // 404, OPTIONS 200, unknown methods 501, MESSAGE (known, not handled) 405.
        "esc01" | "longreq" | "lwsstart" | "baddate" => 404,
        // The RFC 2543 INVITE parses (wire_torture.rs), but it has no Contact, so
        // the dialog it asks for could never be hung up: 400 Missing Contact
        // (RFC 3261 §8.1.1.8; the README table only asks that it never crash).
        "inv2543" => 400,
        // wsinv carries a To tag: an INVITE in a dialog nobody knows (§12.2.2).
        "wsinv" => 481,
        "intmeth" | "esc02" | "mismatch02" => 501,
        "lwsdisp" | "semiuri" | "transports" | "trws" | "zeromf" => 200,
        "mpart01" => 405,
        // REGISTER: the registrar challenges (RFC 3261 §10.3 step 3, §22) before it
        // looks at the bindings; a To that is not a SIP AOR is refused first. The
        // 200 the README table gives for cparam01, cparam02 and regescrt is what
        // they get with credentials: src/sip/registrar.rs tests those bindings.
        "escnull" | "dblreq" | "regaut01" | "cparam01" | "cparam02" | "regescrt" => 401,
        "unksm2" => 400,
        // Malformed or unacceptable requests.
        "badinv01" | "clerr" | "ncl" | "scalar02" | "quotbal" | "ltgtruri" | "lwsruri"
        | "escruri" | "regbadct" | "badaspec" | "baddn" | "mismatch01" | "badbranch" | "insuf"
        | "multi01" | "mcl01" => 400,
        "badvers" => 505,
        "unkscm" | "novelsc" => 416,
        "bext01" => 420,
        "invut" => 415,
        "sdp01" => 406,
        // Responses that match nothing, malformed responses, and test.dat (no Via).
        "unreason" | "noreason" | "bcast" | "scalarlg" | "bigcode" | "test" => return None,
        other => panic!("no expectation for {other}"),
    })
}

/// Sends one file from its own socket; returns the final status answered, if any.
async fn exchange(engine: std::net::SocketAddr, bytes: Vec<u8>, wait: Duration) -> Vec<String> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&bytes, engine).await.unwrap();
    let mut answers = Vec::new();
    let mut buf = vec![0u8; 65536];
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Ok((n, _))) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
        answers.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    answers
}

fn status(answer: &str) -> Option<u16> {
    answer.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// Splits the files into waves whose messages all have distinct transaction keys.
fn waves(files: Vec<(String, Vec<u8>)>) -> Vec<Vec<(String, Vec<u8>)>> {
    use dispatchline::sip::transaction::TransactionKey;
    use dispatchline::sip::wire::{Framing, Message, parse};
    type Wave = (Vec<TransactionKey>, Vec<(String, Vec<u8>)>);
    let mut waves: Vec<Wave> = Vec::new();
    for (name, bytes) in files {
        let key = match parse(bytes::Bytes::from(bytes.clone()), Framing::Datagram) {
            Ok(Message::Request(r)) => TransactionKey::server(&r),
            _ => None,
        };
        let wave = waves
            .iter_mut()
            .find(|(keys, _)| key.as_ref().is_none_or(|k| !keys.contains(k)));
        match wave {
            Some((keys, files)) => {
                keys.extend(key);
                files.push((name, bytes));
            }
            None => waves.push((key.into_iter().collect(), vec![(name, bytes)])),
        }
    }
    waves.into_iter().map(|(_, files)| files).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_torture_message_gets_the_answer_its_table_asks_for() {
    let dir = format!("{}/tests/data/rfc4475", env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "dat") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            files.push((name, std::fs::read(&path).unwrap()));
        }
    }
    files.sort();
    assert_eq!(files.len(), 50, "all 50 RFC 4475 messages");
    let mut wrong = Vec::new();
    let mut count = 0;
    let mut last_engine = None;
    for wave in waves(files) {
        let engine = common::engine::start(
            "[[trunk]]\nname = \"test\"\nproxy = \"127.0.0.1:5999\"\noptions_interval_s = 0\n",
        )
        .await;
        let mut tasks = Vec::new();
        for (name, bytes) in wave {
            let addr = engine.sip_addr;
            tasks.push(tokio::spawn(async move {
                (
                    name,
                    exchange(addr, bytes, Duration::from_millis(800)).await,
                )
            }));
        }
        for task in tasks {
            let (name, answers) = task.await.unwrap();
            count += 1;
            check(&name, &answers, &mut wrong);
        }
        last_engine = Some(engine);
    }
    assert_eq!(count, 50);
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    let engine = last_engine.unwrap();

    // Still alive and answering.
    let options = format!(
        "OPTIONS sip:{0} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKalive;rport\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:{0}>\r\nCall-ID: alive@test\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        engine.sip_addr
    );
    let answers = exchange(
        engine.sip_addr,
        options.into_bytes(),
        Duration::from_millis(500),
    )
    .await;
    assert_eq!(
        answers.first().and_then(|a| status(a)),
        Some(200),
        "{answers:?}"
    );
}

fn check(name: &str, answers: &[String], wrong: &mut Vec<String>) {
    let finals: Vec<u16> = answers
        .iter()
        .filter_map(|a| status(a))
        .filter(|s| *s >= 200)
        .collect();
    let want = expected(name);
    let ok = match want {
        None => answers.is_empty(),
        Some(code) => finals.first() == Some(&code) && finals.iter().all(|s| *s == code),
    };
    if !ok {
        wrong.push(format!(
            "{name}: expected {want:?}, got {:?}",
            answers
                .iter()
                .map(|a| a.lines().next().unwrap_or(""))
                .collect::<Vec<_>>()
        ));
    }
    // Every 400 names the fault in its reason phrase.
    if want == Some(400) {
        if let Some(a) = answers.first() {
            let reason = a
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("SIP/2.0 400")
                .trim();
            if reason.is_empty() || reason == "Bad Request" {
                wrong.push(format!("{name}: the 400 should name the fault: {a}"));
            }
        }
    }
}
