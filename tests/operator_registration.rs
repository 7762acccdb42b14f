//! Operators' softphones register with the engine: the right password binds the
//! extension and the operator shows as registered; a wrong one is challenged again
//! and nothing is bound.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly by design

mod common;

use std::time::Duration;

use common::engine::{self, free_port, wait_for_events};
use common::sipp::{self, scenario, spawn};

const OPERATORS: &str =
    "[[operator]]\nextension = \"1001\"\nname = \"Анна\"\npassword = \"op1001pass\"\n";

fn register_args(engine: &dispatchline::server::Engine, file: &str, password: &str) -> Vec<String> {
    let mut args: Vec<String> = vec!["-sf".into(), scenario(file), engine.sip_addr.to_string()];
    args.extend(
        [
            "-i",
            "127.0.0.1",
            "-m",
            "1",
            "-key",
            "ext",
            "1001",
            "-au",
            "1001",
            "-ap",
        ]
        .map(String::from),
    );
    args.push(password.into());
    args.extend([
        "-key".into(),
        "contact_port".into(),
        free_port().to_string(),
    ]);
    args.extend(["-p".into(), free_port().to_string()]);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_softphone_registers_with_its_password() {
    let engine = engine::start(OPERATORS).await;
    let dir = sipp::workdir("register-ok");
    let run = spawn(
        "softphone",
        &dir,
        &register_args(&engine, "operator_register.xml", "op1001pass"),
    );
    run.finish(Duration::from_secs(30))
        .await
        .assert_success("softphone");
    let online = wait_for_events(&engine, "operator.registration", 1, Duration::from_secs(5)).await;
    assert_eq!(online[0].payload["extension"], "1001");
    assert_eq!(online[0].payload["online"], true);
    let ops = engine.call_handle.operators().await.unwrap();
    assert!(ops.iter().any(|o| o.extension == "1001" && o.registered));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_challenged_again_and_binds_nothing() {
    let engine = engine::start(OPERATORS).await;
    let dir = sipp::workdir("register-wrong");
    let run = spawn(
        "softphone",
        &dir,
        &register_args(&engine, "operator_register_wrong.xml", "not-the-password"),
    );
    run.finish(Duration::from_secs(30))
        .await
        .assert_success("softphone");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ops = engine.call_handle.operators().await.unwrap();
    assert!(ops.iter().all(|o| !o.registered));
    assert!(
        engine
            .events
            .replay(0)
            .unwrap()
            .iter()
            .all(|e| e.kind != "operator.registration")
    );
}
