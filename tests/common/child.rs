//! The real binary as a child process (`dispatchline serve`), for tests that
//! SIGKILL it and start it again in the same data directory.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_dispatchline");

/// The engine as a child process; SIGKILLed when dropped.
pub struct Serve(pub Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `serve` on `config` and `data`, waiting until `/healthz` on port `http`
/// answers.
pub async fn serve(config: &Path, data: &Path, http: u16) -> Serve {
    let child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .env("DISPATCHLINE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let serve = Serve(child);
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if client
            .get(format!("http://127.0.0.1:{http}/healthz"))
            .send()
            .await
            .is_ok()
        {
            return serve;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("serve did not start");
}

/// Polls `check` every 100 ms for at most `within`.
pub async fn until<T, F: std::future::Future<Output = Option<T>>>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
