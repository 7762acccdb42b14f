//! HTTP limits an attacker meets: a login body is a few KiB at most (a guesser
//! cannot make the engine read megabytes per try), `/metrics` can be put behind a
//! token, a slowloris client is cut off after the header timeout, one address
//! cannot hold more than its share of connections, and an import by a caller who
//! may not import is refused before its body is read.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly by design

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::engine;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_bodies_are_small_and_metrics_want_their_token() {
    let engine =
        engine::start_with("", |c| c.security.metrics_token = "m3trics-t0ken".into()).await;
    let client = reqwest::Client::new();
    let base = format!("http://{}", engine.http_addr);

    let huge = format!(
        "{{\"extension\":\"1001\",\"password\":\"{}\"}}",
        "x".repeat(100 * 1024)
    );
    let r = client
        .post(format!("{base}/api/v1/auth/token"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);

    let r = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client
        .get(format!("{base}/metrics"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client
        .get(format!("{base}/metrics"))
        .bearer_auth("m3trics-t0ken")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("dispatchline_calls_active")
    );
    engine.shutdown(Duration::from_secs(1)).await;
}

/// Reads until the server closes the connection (or `within` passes); returns
/// what was read and whether it closed.
fn read_until_closed(tcp: &mut TcpStream, within: Duration) -> (String, bool) {
    tcp.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match tcp.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), true),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_client_is_cut_off_after_the_header_timeout() {
    let engine = engine::start_with("", |c| c.http.header_timeout = Duration::from_secs(1)).await;
    let addr = engine.http_addr;
    let (cut_after, sent) = tokio::task::spawn_blocking(move || {
        let mut tcp = TcpStream::connect(addr).unwrap();
        let started = Instant::now();
        let headers = b"GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: slowloris\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        let mut sent = 0;
        // A byte every 100 ms: the headers would take 8 s and never end.
        for byte in headers {
            if tcp.write_all(&[*byte]).is_err() {
                break;
            }
            sent += 1;
            let (_, closed) = read_until_closed(&mut tcp, Duration::from_millis(100));
            if closed {
                break;
            }
        }
        (started.elapsed(), sent)
    })
    .await
    .unwrap();
    assert!(
        cut_after < Duration::from_secs(3),
        "cut off after {cut_after:?} ({sent} bytes sent)"
    );
    assert!(cut_after >= Duration::from_millis(900), "{cut_after:?}");
    // A normal request still gets through.
    let r = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    engine.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_more_than_its_connections() {
    let engine = engine::start_with("", |c| {
        c.http.max_connections_per_source = 4;
        c.http.max_connections = 50;
    })
    .await;
    let addr = engine.http_addr;
    let refused = tokio::task::spawn_blocking(move || {
        // Four idle connections from 127.0.0.1 take its share...
        let held: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(200));
        // ...so a fifth is closed at once, before it sends anything.
        let mut fifth = TcpStream::connect(addr).unwrap();
        let _ = fifth.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        let (answer, closed) = read_until_closed(&mut fifth, Duration::from_secs(2));
        drop(held);
        (answer, closed)
    });
    // Meanwhile a client from another address is served.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let r = other
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (answer, closed) = refused.await.unwrap();
    assert!(closed, "the fifth connection was served: {answer}");
    assert!(answer.is_empty(), "{answer}");
    // The places are given back once the connections close.
    let mut ok = false;
    for _ in 0..20 {
        if let Ok(r) = reqwest::get(format!("http://{addr}/healthz")).await
            && r.status().as_u16() == 200
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "127.0.0.1 is served again");
    engine.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_by_an_operator_is_refused_before_its_body_is_read() {
    let engine = engine::start(
        "[[operator]]\nextension = \"1001\"\npassword = \"a-long-operator-passw0rd\"\n",
    )
    .await;
    let base = format!("http://{}", engine.http_addr);
    let login: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/token"))
        .json(&serde_json::json!({"extension": "1001", "password": "a-long-operator-passw0rd"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_owned();
    let addr = engine.http_addr;
    let (answer, elapsed) = tokio::task::spawn_blocking(move || {
        let mut tcp = TcpStream::connect(addr).unwrap();
        let started = Instant::now();
        // 50 MB announced, 64 KiB sent: the answer must come without the rest.
        let head = format!(
            "POST /api/v1/contacts/import?tenant=etalon HTTP/1.1\r\nHost: x\r\n\
             Authorization: Bearer {token}\r\nContent-Type: text/csv\r\n\
             Content-Length: {}\r\n\r\n",
            50 * 1024 * 1024
        );
        tcp.write_all(head.as_bytes()).unwrap();
        tcp.write_all(&vec![b'x'; 64 * 1024]).unwrap();
        let (answer, _) = read_until_closed(&mut tcp, Duration::from_secs(5));
        (answer, started.elapsed())
    })
    .await
    .unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 403"),
        "refused at once, not after 50 MB: {answer:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    engine.shutdown(Duration::from_secs(1)).await;
}
