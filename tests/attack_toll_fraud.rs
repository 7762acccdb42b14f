//! Toll fraud through the callback machinery: a caller whose From header names a
//! premium or international number, or who calls again and again, must not make
//! the engine dial out through the paid trunk. The calls arrive on the dispatch
//! line (refused at once, then called back) from the trunk's address, as a
//! provider would deliver them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly by design

mod common;

use std::time::Duration;

use common::engine::{self, free_port, wait_for_events};
use dispatchline::store::{DialJobFilter, DialKind, TenantScope};

fn config() -> String {
    format!(
        "[[trunk]]\nname = \"provider-x\"\nproxy = \"127.0.0.1:{}\"\nregister = false\n\n\
         [[number]]\nnumber = \"+73432000900\"\nkind = \"dispatch\"\ntenant = \"etalon\"\ntrunk = \"provider-x\"\n",
        free_port()
    )
}

/// One call to the dispatch line from `caller`, as the provider sends it; the
/// final status it gets (ACKed).
async fn call_dispatch_line(engine: &dispatchline::server::Engine, caller: &str, n: u32) -> u16 {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = socket.local_addr().unwrap();
    let branch = format!("z9hG4bKtoll{n}x{}", local.port());
    let call_id = format!("toll-{n}-{}@127.0.0.1", local.port());
    let invite = format!(
        "INVITE sip:+73432000900@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{caller}@127.0.0.1>;tag=t{n}\r\nTo: <sip:+73432000900@{sip}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:{caller}@{local}>\r\nContent-Length: 0\r\n\r\n",
        sip = engine.sip_addr,
    );
    socket
        .send_to(invite.as_bytes(), engine.sip_addr)
        .await
        .unwrap();
    let mut buf = vec![0u8; 8192];
    loop {
        let (len, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..len]).into_owned();
        let status: u16 = text[8..11].parse().unwrap();
        if status < 200 {
            continue;
        }
        let to = text
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("to:"))
            .unwrap()
            .to_owned();
        let ack = format!(
            "ACK sip:+73432000900@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{caller}@127.0.0.1>;tag=t{n}\r\n{to}\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            sip = engine.sip_addr,
        );
        socket
            .send_to(ack.as_bytes(), engine.sip_addr)
            .await
            .unwrap();
        return status;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_go_only_to_the_dial_plan_once_per_number_and_staff_only_to_employees() {
    let engine = engine::start(&config()).await;
    dispatchline::store::demo::seed(&engine.store)
        .await
        .unwrap();
    let employee = engine
        .store
        .employees(&TenantScope::All, Some("etalon"))
        .await
        .unwrap()
        .into_iter()
        .find_map(|e| e.phones.into_iter().next())
        .expect("the demo has employees with phones");

    let callers = [
        "+441632960961",   // international: refused
        "+78091234567",    // premium 809: refused
        "+78031234567",    // premium 803: refused
        "+79120000002",    // a resident on the dispatch line: called back as a resident
        "+79120000002",    // again: one callback is already pending
        employee.as_str(), // an employee: a staff callback
        "+7912000000",     // too short for a Russian number: refused
    ];
    for (n, caller) in callers.iter().enumerate() {
        assert_eq!(
            call_dispatch_line(&engine, caller, n as u32).await,
            486,
            "{caller}"
        );
    }
    let refused = wait_for_events(&engine, "callback.refused", 5, Duration::from_secs(5)).await;
    let reasons: Vec<(String, String)> = refused
        .iter()
        .map(|e| {
            (
                e.payload["phone"].as_str().unwrap().to_owned(),
                e.payload["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (phone, reason) in [
        ("+441632960961", "outside the callback dial plan"),
        ("+78091234567", "outside the callback dial plan"),
        ("+78031234567", "outside the callback dial plan"),
        ("+79120000002", "already pending"),
        ("+7912000000", "outside the callback dial plan"),
    ] {
        assert!(
            reasons
                .iter()
                .any(|(p, r)| p == phone && r.contains(reason)),
            "{phone}: {reason} in {reasons:?}"
        );
    }

    // The store holds exactly the two allowed jobs, each of the right kind.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let jobs = loop {
        let jobs = engine
            .store
            .dial_jobs(&TenantScope::All, &DialJobFilter::default())
            .await
            .unwrap()
            .items;
        if jobs.len() >= 2 || tokio::time::Instant::now() > deadline {
            break jobs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut kinds: Vec<(String, DialKind)> = jobs
        .iter()
        .map(|j| (j.target.as_str().to_owned(), j.kind))
        .collect();
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = vec![
        ("+79120000002".to_owned(), DialKind::Callback),
        (employee.as_str().to_owned(), DialKind::StaffCallback),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(kinds, expected);

    let metrics = reqwest::get(format!("http://{}/metrics", engine.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("dispatchline_callbacks_refused_total 5"),
        "{metrics}"
    );
    engine.shutdown(Duration::from_secs(1)).await;
}
