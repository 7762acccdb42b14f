//! Starting a real engine on loopback with free ports.

use std::path::Path;
use std::time::Duration;

use dispatchline::config::Config;
use dispatchline::events::Event;
use dispatchline::server::Engine;

/// The configuration every test engine starts from: loopback, ephemeral ports, no
/// recordings on disk unless the test asks.
pub fn base_config() -> String {
    let dir = scratch_dir();
    format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\n# SIPp 3.6 only reads the first challenge and only does MD5.\ndigest_algorithms = [\"MD5\", \"SHA-256\"]\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n\
         [database]\nurl = \"sqlite://{0}/dispatchline.db\"\ndata_dir = \"{0}\"\n\n\
         [media]\nrecord_calls = false\n\n",
        dir.display()
    )
}

/// A fresh directory for one engine's database and recordings.
pub fn scratch_dir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "dispatchline-engine-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts an engine on `extra` (appended to [`base_config`]).
pub async fn start(extra: &str) -> Engine {
    start_with(extra, |_| {}).await
}

/// Starts an engine on `extra`, after `adjust` has changed the parsed configuration
/// (turn recording on, shorten timers, ...).
pub async fn start_with(extra: &str, adjust: impl FnOnce(&mut Config)) -> Engine {
    let text = format!("{}{extra}", base_config());
    let mut config = Config::parse(&text, Path::new("test.toml"))
        .unwrap_or_else(|e| panic!("test config: {e}\n{text}"));
    config.media.prompts_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-prompts");
    adjust(&mut config);
    Engine::start(config).await.expect("engine starts")
}

/// A port free for both UDP and TCP on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Waits until `count` events of type `kind` have been published, or panics after
/// `within`.
pub async fn wait_for_events(
    engine: &Engine,
    kind: &str,
    count: usize,
    within: Duration,
) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let found: Vec<Event> = engine
            .events
            .replay(0)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == kind)
            .map(|e| (*e).clone())
            .collect();
        if found.len() >= count {
            return found;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "expected {count} {kind} events within {within:?}, saw {}",
                found.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the engine holds no call state at all (every call ended and every
/// transaction of it finished), or panics.
pub async fn wait_no_calls(engine: &Engine, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let active = engine
            .calls
            .active
            .load(std::sync::atomic::Ordering::Relaxed);
        if active == 0 {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{active} calls still held after {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
