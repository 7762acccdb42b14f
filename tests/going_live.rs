//! A new management company goes live, as a newcomer does it, with the binary and
//! the shipped configuration on a fresh store: `serve` refuses and lists the
//! tenants and cities the store lacks; `import` loads the two companies'
//! questionnaires (one an XLSX workbook, one the same sheets as CSV files); `user
//! add` creates a supervisor and an operator with a softphone; `serve` starts; a
//! resident's call to the company's number reaches the operator's SIPp softphone,
//! and the journal has the call with its recording.
//!
//! The one change to the shipped file: SIPp 3.6 reads only the first digest
//! challenge and only does MD5, so MD5 is offered first here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::engine::{free_port, scratch_dir};
use common::sipp::{self, scenario, spawn, wait_bound};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_dispatchline");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The binary with `args`, run in the checkout (prompts are found from there).
fn dispatchline(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(root()).args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env_remove("DISPATCHLINE_CONFIG")
        .env_remove("DISPATCHLINE_DATABASE");
    cmd.output().unwrap()
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The engine as a child process, killed when dropped.
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_company_goes_live_from_its_questionnaire_to_its_first_recorded_call() {
    let dir = scratch_dir();
    let shipped = std::fs::read_to_string(root().join("sip-config/dispatchline.toml")).unwrap();
    let config_text = shipped.replace(
        "digest_algorithms = [\"SHA-256\", \"MD5\"]",
        "digest_algorithms = [\"MD5\", \"SHA-256\"]",
    );
    assert_ne!(
        config_text, shipped,
        "the shipped file's digest order changed: adjust this test"
    );
    // A real centre deletes the example accounts (serve refuses their passwords).
    let examples = "# Operators' softphones and console logins.";
    let config_text = match config_text.find(examples) {
        Some(at) => config_text[..at].to_owned(),
        None => panic!("the shipped file's example accounts moved: adjust this test"),
    };
    let config: PathBuf = dir.join("dispatchline.toml");
    std::fs::write(&config, config_text).unwrap();
    let config = config.to_str().unwrap().to_owned();
    let database = format!("sqlite://{}/store.db", dir.display());
    let (sip_port, http_port) = (free_port(), free_port());
    let sip = format!("127.0.0.1:{sip_port}");
    let http = format!("127.0.0.1:{http_port}");
    let serve_args = [
        "serve",
        "--config",
        &config,
        "--sip-listen",
        &sip,
        "--http-listen",
        &http,
        "--database",
        &database,
        "--data-dir",
        dir.to_str().unwrap(),
    ];

    // A fresh store: serve refuses, naming every number whose company it lacks.
    let refused = dispatchline(&serve_args, &[]);
    assert!(!refused.status.success());
    let said = text(&refused);
    for expected in [
        "names tenant \"etalon\", which the store does not have; create it with `dispatchline import WORKBOOK --tenant etalon`",
        "names tenant \"uyut\", which the store does not have",
        "names city \"ekb\", which the store does not have",
    ] {
        assert!(said.contains(expected), "{said}");
    }
    assert!(
        said.contains(&format!("{config}:")),
        "faults carry file:line: {said}"
    );
    let check = dispatchline(&["check-config", &config, "--database", &database], &[]);
    assert!(!check.status.success(), "{}", text(&check));

    // The questionnaires: a dry run first, then for real.
    let uyut = root().join("examples/onboarding/uyut.xlsx");
    let etalon = root().join("examples/onboarding/etalon");
    let dry = dispatchline(
        &[
            "import",
            uyut.to_str().unwrap(),
            "--tenant",
            "uyut",
            "--dry-run",
            "--config",
            &config,
            "--database",
            &database,
        ],
        &[],
    );
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(
        text(&dry).contains("Дома: 8 created, 0 changed, 0 unchanged"),
        "{}",
        text(&dry)
    );
    assert!(
        text(&dry).contains("this takes about"),
        "an estimate: {}",
        text(&dry)
    );
    for (book, tenant) in [(&uyut, "uyut"), (&etalon, "etalon")] {
        let out = dispatchline(
            &[
                "import",
                book.to_str().unwrap(),
                "--tenant",
                tenant,
                "--config",
                &config,
                "--database",
                &database,
            ],
            &[],
        );
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            text(&out).contains(&format!("{tenant}: imported")),
            "{}",
            text(&out)
        );
    }
    let check = dispatchline(&["check-config", &config, "--database", &database], &[]);
    assert!(check.status.success(), "{}", text(&check));

    for (ext, role, console, softphone) in [
        ("2001", "supervisor", "supervisor-pass", ""),
        ("3001", "operator", "operator-pass", "softphone-pass"),
    ] {
        let out = dispatchline(
            &[
                "user",
                "add",
                ext,
                "--role",
                role,
                "--tenant",
                "uyut",
                "--config",
                &config,
                "--database",
                &database,
            ],
            &[
                ("DISPATCHLINE_USER_PASSWORD", console),
                ("DISPATCHLINE_SIP_PASSWORD", softphone),
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
    }

    // It starts.
    let child = Command::new(BIN)
        .current_dir(root())
        .args(serve_args)
        .env("DISPATCHLINE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _serve = Serve(child);
    let client = reqwest::Client::new();
    let base = format!("http://{http}/api/v1");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("http://{http}/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "serve did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let login = |ext: &str, password: &str| {
        let client = client.clone();
        let base = base.clone();
        let body = json!({"extension": ext, "password": password});
        async move {
            let r = client
                .post(format!("{base}/auth/token"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            v["token"].as_str().unwrap().to_owned()
        }
    };

    // The operator's softphone registers with its SIP password and goes ready.
    let sipp_dir = sipp::workdir("going-live");
    std::fs::copy(
        root().join("tests/data/sipp/g711a.pcap"),
        sipp_dir.join("g711a.pcap"),
    )
    .unwrap();
    let phone_port = free_port();
    let softphone = spawn(
        "operator-3001",
        &sipp_dir,
        &sipp::args(&[
            "-sf",
            &scenario("operator_answers.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            &phone_port.to_string(),
            "-m",
            "1",
            "-mp",
            &free_port().to_string(),
            "-d",
            "0",
        ]),
    );
    wait_bound(phone_port).await;
    spawn(
        "register",
        &sipp_dir,
        &sipp::args(&[
            "-sf",
            &scenario("operator_register.xml"),
            &sip,
            "-i",
            "127.0.0.1",
            "-m",
            "1",
            "-key",
            "ext",
            "3001",
            "-au",
            "3001",
            "-ap",
            "softphone-pass",
            "-key",
            "contact_port",
            &phone_port.to_string(),
            "-p",
            &free_port().to_string(),
        ]),
    )
    .finish(Duration::from_secs(30))
    .await
    .assert_success("the softphone registers");
    let operator = login("3001", "operator-pass").await;
    let r = client
        .post(format!("{base}/operators/3001/state"))
        .bearer_auth(&operator)
        .json(&json!({"state": "ready"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // A resident of УК «Уютный дом» calls its number and talks to the operator.
    spawn(
        "resident",
        &sipp_dir,
        &sipp::args(&[
            "-sf",
            &scenario("resident_calls.xml"),
            &sip,
            "-s",
            "+73432000002",
            "-key",
            "caller",
            "+79123000001",
            "-i",
            "127.0.0.1",
            "-m",
            "1",
            "-d",
            "20000",
            "-p",
            &free_port().to_string(),
            "-mp",
            &free_port().to_string(),
        ]),
    )
    .finish(Duration::from_secs(90))
    .await
    .assert_success("the resident's call");
    softphone
        .finish(Duration::from_secs(30))
        .await
        .assert_success("the operator answers");

    // The journal has it, with its recording.
    let supervisor = login("2001", "supervisor-pass").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let row = loop {
        let calls: Value = client
            .get(format!("{base}/calls?tenant=uyut"))
            .bearer_auth(&supervisor)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let done = calls["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["disposition"] == "answered" && !c["recording_id"].is_null())
            .cloned();
        if let Some(row) = done {
            break row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no journal row with a recording: {calls}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(row["tenant"], "uyut");
    assert_eq!(row["operator_extension"], "3001");
    assert_eq!(row["to_number"], "+73432000002");
    let wav = client
        .get(format!("{base}/recordings/{}", row["recording_id"]))
        .bearer_auth(&supervisor)
        .send()
        .await
        .unwrap();
    assert_eq!(wav.status(), 200);
    let bytes = wav.bytes().await.unwrap();
    assert!(
        bytes.starts_with(b"RIFF") && bytes.len() > 8000,
        "{} bytes",
        bytes.len()
    );
}
