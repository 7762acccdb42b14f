//! A flood that leaves real calls unharmed: while SIPp floods the engine with
//! INVITEs and OPTIONS from other loopback addresses (25 times the legitimate
//! rate), the trunk's SIPp places 100 calls at 20 calls/s through a `forward`
//! number, and every one completes. The flood is held at the transport's edge
//! (per-source rates) and its sources are banned. Bounded: 5 s of flood.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly by design

mod common;

use std::time::Duration;

use common::engine::{self, free_port, wait_for_events};
use common::sipp::{self, scenario, spawn, wait_bound};

async fn metric(engine: &dispatchline::server::Engine, name: &str) -> u64 {
    let text = reqwest::get(format!("http://{}/metrics", engine.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("dispatchline_{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trunk_calls_all_complete_while_other_addresses_flood() {
    const CALLS: u32 = 100;
    let dir = sipp::workdir("attack-flood");
    let callee_port = free_port();
    let engine = engine::start(&format!(
        "[[trunk]]\nname = \"sipp\"\nproxy = \"127.0.0.1:5999\"\noptions_interval_s = 0\n\n\
         [[number]]\nnumber = \"100\"\nkind = \"forward\"\ntarget = \"sip:127.0.0.1:{callee_port}\"\n"
    ))
    .await;
    let target = engine.sip_addr.to_string();

    let mut callee = vec!["-sn".to_owned(), "uas".to_owned()];
    callee.extend(["-i", "127.0.0.1", "-m"].map(String::from));
    callee.push(CALLS.to_string());
    callee.extend(["-p".to_owned(), callee_port.to_string()]);
    let uas = spawn("callee", &dir, &callee);
    wait_bound(callee_port).await;

    // The floods: 500 INVITEs/s and 500 OPTIONS/s for 5 s, from two addresses
    // that are neither the trunk nor a registered softphone.
    let flood = |file: &str, from: &str| {
        let mut args = vec!["-sf".to_owned(), scenario(file), target.clone()];
        args.extend(["-i", from, "-r", "500", "-m", "2500", "-l", "2500"].map(String::from));
        args.extend(["-p".to_owned(), free_port().to_string()]);
        args
    };
    let invites = spawn(
        "flood-invite",
        &dir,
        &flood("flood_invite.xml", "127.0.0.2"),
    );
    let options = spawn(
        "flood-options",
        &dir,
        &flood("flood_options.xml", "127.0.0.3"),
    );

    let mut caller = vec!["-sn".to_owned(), "uac".to_owned(), target.clone()];
    caller.extend(
        [
            "-s",
            "100",
            "-i",
            "127.0.0.1",
            "-r",
            "20",
            "-l",
            "40",
            "-d",
            "200",
            "-m",
        ]
        .map(String::from),
    );
    caller.push(CALLS.to_string());
    caller.extend(["-p".to_owned(), free_port().to_string()]);
    let uac = spawn("caller", &dir, &caller);

    uac.finish(Duration::from_secs(60))
        .await
        .assert_success("caller");
    uas.finish(Duration::from_secs(30))
        .await
        .assert_success("callee");
    let _ = invites.finish(Duration::from_secs(30)).await;
    let _ = options.finish(Duration::from_secs(30)).await;

    let answered = wait_for_events(
        &engine,
        "call.answered",
        CALLS as usize,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(answered.len(), CALLS as usize);
    let dropped = metric(&engine, "sip_edge_dropped_total").await;
    assert!(
        dropped > 1000,
        "the edge dropped only {dropped} of 5000 flood requests"
    );
    assert!(
        metric(&engine, "sip_bans_total").await >= 1,
        "the INVITE flooder is banned"
    );
    assert!(metric(&engine, "sip_dropped_options_total").await > 0);
    engine.shutdown(Duration::from_secs(1)).await;
}
