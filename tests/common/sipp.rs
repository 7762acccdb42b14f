//! Running SIPp (`sip-tester`) as a real peer on loopback.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Where the project's scenarios live.
pub fn scenario(name: &str) -> String {
    format!("{}/tests/sipp/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory for one test's SIPp logs.
pub fn workdir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dispatchline-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// SIPp's arguments from string slices (`-sf`, a scenario path, `-p`, a port, ...).
pub fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| (*p).to_owned()).collect()
}

/// A SIPp process.
pub struct Sipp {
    child: Child,
    name: String,
    dir: PathBuf,
}

/// Starts SIPp with `args` plus the options every test run needs: no keyboard,
/// an overall timeout so it always stops, and error traces in `dir`.
pub fn spawn(name: &str, dir: &Path, args: &[String]) -> Sipp {
    spawn_for(name, dir, args, Duration::from_secs(60))
}

/// [`spawn`] with another overall timeout (a softphone on duty for a whole story).
pub fn spawn_for(name: &str, dir: &Path, args: &[String], timeout: Duration) -> Sipp {
    let mut cmd = Command::new("sipp");
    cmd.args(args)
        .args([
            "-nostdin",
            "-timeout",
            &format!("{}s", timeout.as_secs().max(1)),
            "-timeout_error",
            "-trace_err",
            "-max_socket",
            "1000",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().expect("sipp is installed (package sip-tester)");
    Sipp {
        child,
        name: name.to_owned(),
        dir: dir.to_owned(),
    }
}

/// The outcome of a SIPp run.
#[derive(Debug)]
pub struct Outcome {
    /// Process exit code (0: every call succeeded; 1: at least one failed).
    pub code: Option<i32>,
    /// Standard output (the final statistics screen).
    pub stdout: String,
    /// Standard error plus the error log.
    pub errors: String,
}

impl Sipp {
    /// Waits for SIPp to exit, at most `within`.
    pub async fn finish(self, within: Duration) -> Outcome {
        let name = self.name.clone();
        let dir = self.dir.clone();
        let output = tokio::time::timeout(within, self.child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("sipp {name} did not finish within {within:?}"))
            .expect("sipp ran");
        let mut errors = String::from_utf8_lossy(&output.stderr).into_owned();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().ends_with("_errors.log") {
                    errors.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
                }
            }
        }
        Outcome {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            errors,
        }
    }
}

impl Outcome {
    /// Panics with SIPp's own account unless every call succeeded.
    pub fn assert_success(&self, who: &str) {
        assert_eq!(
            self.code,
            Some(0),
            "{who}: SIPp reported failed calls\n--- errors ---\n{}\n--- screen ---\n{}",
            self.errors,
            tail(&self.stdout)
        );
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Waits until something holds UDP or TCP `port` (SIPp binds asynchronously).
pub async fn wait_bound(port: u16) {
    for _ in 0..100 {
        let udp_taken = std::net::UdpSocket::bind(("127.0.0.1", port)).is_err();
        let tcp_taken = std::net::TcpListener::bind(("127.0.0.1", port)).is_err();
        if udp_taken || tcp_taken {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("nothing bound port {port}");
}

/// Operator `ext`'s softphone taking `calls` calls with `scenario_file`, registered
/// and ready.
pub async fn operator_on_duty(
    engine: &dispatchline::server::Engine,
    dir: &Path,
    scenario_file: &str,
    talk_ms: u32,
    ext: &str,
    password: &str,
    calls: u32,
) -> Sipp {
    let port = super::engine::free_port();
    let answering = args(&[
        "-sf",
        &scenario(scenario_file),
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-m",
        &calls.to_string(),
        "-mp",
        &super::engine::free_port().to_string(),
        "-d",
        &talk_ms.to_string(),
    ]);
    let softphone = spawn(&format!("operator-{ext}"), dir, &answering);
    wait_bound(port).await;
    let register = args(&[
        "-sf",
        &scenario("operator_register.xml"),
        &engine.sip_addr.to_string(),
        "-i",
        "127.0.0.1",
        "-m",
        "1",
        "-key",
        "ext",
        ext,
        "-au",
        ext,
        "-ap",
        password,
        "-key",
        "contact_port",
        &port.to_string(),
        "-p",
        &super::engine::free_port().to_string(),
    ]);
    spawn("register", dir, &register)
        .finish(Duration::from_secs(30))
        .await
        .assert_success("softphone registration");
    let state = engine
        .call_handle
        .set_operator_state(ext, dispatchline::call::OperatorState::Ready, None)
        .await
        .unwrap();
    assert!(state.is_ok(), "{state:?}");
    softphone
}
