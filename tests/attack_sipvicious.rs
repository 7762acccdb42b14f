//! The attackers' own tools against a running engine: SIPVicious (PyPI package
//! `sipvicious`, installed into a virtual environment: `scripts/test` makes one
//! and names it in `DISPATCHLINE_SIPVICIOUS`; otherwise this test makes its own
//! under the target directory, and skips, saying why, only if it cannot).
//!
//! svcrack and svwar cannot be told where to send from (their `-b` is ignored),
//! so they attack from 127.0.0.1, where the engine listens; its trunk is at
//! 127.0.0.10 and the real operator's softphone at 127.0.0.20. Bounded: each tool stops on its
//! own after a few seconds without answers, and is killed after a minute.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly by design

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use common::engine::{self, free_port};
use common::sipp::{self, scenario, spawn};

const PASSWORD: &str = "Vrk8-correct-horse-battery";

/// The directory of the sipvicious scripts, or why there is none.
fn sipvicious() -> Result<PathBuf, String> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(dir) = std::env::var("DISPATCHLINE_SIPVICIOUS") {
            let dir = PathBuf::from(dir);
            if dir.join("sipvicious_svcrack").exists() {
                return Ok(dir);
            }
            return Err(format!(
                "DISPATCHLINE_SIPVICIOUS={} has no sipvicious_svcrack",
                dir.display()
            ));
        }
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sipvicious-venv");
        let bin = venv.join("bin");
        if bin.join("sipvicious_svcrack").exists() {
            return Ok(bin);
        }
        let run = |cmd: &mut std::process::Command| {
            cmd.stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .map_err(|e| e.to_string())
                .and_then(|o| {
                    if o.status.success() {
                        Ok(())
                    } else {
                        Err(String::from_utf8_lossy(&o.stderr).into_owned())
                    }
                })
        };
        run(std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv))
        .map_err(|e| format!("cannot make a virtual environment: {e}"))?;
        run(std::process::Command::new(bin.join("pip")).args(["install", "-q", "sipvicious"]))
            .map_err(|e| format!("cannot pip install sipvicious: {e}"))?;
        Ok(bin)
    })
    .clone()
}

macro_rules! tools_or_skip {
    () => {
        match sipvicious() {
            Ok(bin) => bin,
            Err(why) => {
                eprintln!("SKIPPED: sipvicious is not available ({why})");
                return;
            }
        }
    };
}

/// Runs a sipvicious tool to its end (killed after a minute); its exit code and
/// everything it printed.
async fn attack(bin: &Path, tool: &str, args: &[String]) -> (Option<i32>, String) {
    let child = tokio::process::Command::new(bin.join(tool))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{tool} ran over a minute"))
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// The engine's figure `name` from `/metrics`.
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
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

fn config() -> String {
    format!(
        "[[trunk]]\nname = \"provider-x\"\nproxy = \"127.0.0.10:{}\"\nregister = false\n\n\
         [[number]]\nnumber = \"+73432000001\"\nkind = \"tenant\"\ntenant = \"etalon\"\ncity = \"ekb\"\ntrunk = \"provider-x\"\n\n\
         [[operator]]\nextension = \"1001\"\nname = \"Анна\"\npassword = \"{PASSWORD}\"\n\n\
         [[operator]]\nextension = \"1002\"\nname = \"Игорь\"\npassword = \"another-long-passphrase\"\n",
        free_port()
    )
}

/// The real operator's softphone registers (SIPp from 127.0.0.20).
async fn operator_registers(engine: &dispatchline::server::Engine, test: &str) {
    let dir = sipp::workdir(test);
    let mut args: Vec<String> = vec![
        "-sf".into(),
        scenario("operator_register.xml"),
        engine.sip_addr.to_string(),
    ];
    args.extend(
        [
            "-i",
            "127.0.0.20",
            "-m",
            "1",
            "-key",
            "ext",
            "1001",
            "-au",
            "1001",
            "-ap",
            PASSWORD,
        ]
        .map(String::from),
    );
    args.extend([
        "-key".into(),
        "contact_port".into(),
        free_port().to_string(),
    ]);
    args.extend(["-p".into(), free_port().to_string()]);
    spawn("softphone", &dir, &args)
        .finish(Duration::from_secs(30))
        .await
        .assert_success("softphone");
}

/// Whether anything answers a REGISTER sent from `from` within half a second.
async fn answered_from(engine: &dispatchline::server::Engine, from: &str) -> bool {
    let socket = tokio::net::UdpSocket::bind(format!("{from}:0"))
        .await
        .unwrap();
    let local = socket.local_addr().unwrap();
    let register = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKprobe{}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1002@127.0.0.1>;tag=p1\r\nTo: <sip:1002@127.0.0.1>\r\n\
         Call-ID: probe-{}@x\r\nCSeq: 1 REGISTER\r\nContact: <sip:1002@{local}>\r\nContent-Length: 0\r\n\r\n",
        local.port(),
        local.port()
    );
    socket
        .send_to(register.as_bytes(), engine.sip_addr)
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_millis(500), socket.recv_from(&mut buf))
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn svcrack_finds_no_password_in_2000_guesses_and_the_guesser_is_banned() {
    let bin = tools_or_skip!();
    let engine = engine::start(&config()).await;
    // The operator's softphone is registered before the attack starts.
    operator_registers(&engine, "attack-svcrack-before").await;

    // 2,000 guesses, the right one among the first ten and again at the end.
    let dir = sipp::workdir("attack-svcrack");
    let mut words: Vec<String> = (0..2000).map(|i| format!("guess-{i:04}")).collect();
    words[6] = PASSWORD.into();
    words[1999] = PASSWORD.into();
    let dictionary = dir.join("dictionary.txt");
    std::fs::write(&dictionary, words.join("\n") + "\n").unwrap();
    let (code, said) = attack(
        &bin,
        "sipvicious_svcrack",
        &[
            "-u".into(),
            "1001".into(),
            "-d".into(),
            dictionary.display().to_string(),
            "-P".into(),
            free_port().to_string(),
            "-p".into(),
            engine.sip_addr.port().to_string(),
            "--maximumtime".into(),
            "3".into(),
            "127.0.0.1".into(),
        ],
    )
    .await;
    assert!(
        !said.contains(PASSWORD),
        "svcrack found the password:\n{said}"
    );
    assert!(
        !said.contains("The password for"),
        "svcrack found a password:\n{said}"
    );
    assert_ne!(
        code,
        Some(40),
        "svcrack's exit code for a cracked password:\n{said}"
    );
    assert!(
        said.contains("since we last received a response"),
        "svcrack stopped because nothing answers any more:\n{said}"
    );

    // The guesser is banned: nothing from its address is answered.
    assert_eq!(metric(&engine, "sip_bans_total").await, 1);
    assert_eq!(metric(&engine, "sip_banned_sources").await, 1);
    assert!(metric(&engine, "sip_dropped_banned_total").await > 0);
    let failures = metric(&engine, "sip_auth_failures_total").await;
    assert!(failures <= 10, "the ban came after {failures} failures");
    assert!(
        !answered_from(&engine, "127.0.0.1").await,
        "a banned source is dropped"
    );
    assert!(
        answered_from(&engine, "127.0.0.9").await,
        "others are still answered"
    );

    // The real operator's softphone refreshes its registration from its own
    // address while its extension is being guessed.
    operator_registers(&engine, "attack-svcrack-after").await;
    engine.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn svwar_finds_no_extension_and_svmap_sees_no_product() {
    let bin = tools_or_skip!();
    let engine = engine::start(&config()).await;
    let port = engine.sip_addr.port().to_string();
    for method in ["REGISTER", "INVITE", "OPTIONS"] {
        let (_, said) = attack(
            &bin,
            "sipvicious_svwar",
            &[
                "-e".into(),
                "1000-1010,2000-2002".into(),
                "-m".into(),
                method.into(),
                "--force".into(),
                "-P".into(),
                free_port().to_string(),
                "-p".into(),
                port.clone(),
                "--maximumtime".into(),
                "3".into(),
                "127.0.0.1".into(),
            ],
        )
        .await;
        for ext in ["1001", "1002"] {
            assert!(
                !said.lines().any(|l| l.contains(&format!("| {ext} "))),
                "svwar -m {method} found extension {ext}:\n{said}"
            );
        }
    }
    let (_, said) = attack(
        &bin,
        "sipvicious_svmap",
        &[
            "-b".into(),
            "127.0.0.6".into(),
            "-P".into(),
            free_port().to_string(),
            "-p".into(),
            port.clone(),
            "127.0.0.1".into(),
        ],
    )
    .await;
    assert!(
        !said.to_lowercase().contains("dispatchline"),
        "svmap learnt the product's name:\n{said}"
    );
    engine.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn serve_refuses_the_shipped_example_passwords() {
    let dir = engine::scratch_dir();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_dispatchline"))
        .args(["serve", "--config"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("sip-config/dispatchline.toml"))
        .args([
            "--sip-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(&dir)
        .env("DISPATCHLINE_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("shipped example password"), "{said}");
    assert!(said.contains("[[operator]] 1001"), "{said}");
    assert!(said.contains("--demo"), "{said}");
}
