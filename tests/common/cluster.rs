//! Engine nodes as child processes behind Kamailio with the shipped
//! `cluster/kamailio.cfg`, on loopback: what the cluster stories share.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The engine binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_dispatchline");

/// An engine node: the binary as a child process, SIGKILLed when dropped.
pub struct Node {
    pub name: String,
    pub sip: u16,
    pub http: u16,
    pub data: PathBuf,
    child: Child,
}

impl Node {
    /// SIGKILL: no drain, no release, nothing written on the way out.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The node's HTTP address.
    pub fn http_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.http))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts node `name` in `dir/name` with `config` (TOML; its `[sip]`, `[http]` and
/// `[database]` tables are added here) on free ports and waits for `/healthz`.
pub async fn start_node(dir: &Path, name: &str, database: &str, config: &str) -> Node {
    let ports = (super::engine::free_port(), super::engine::free_port());
    start_node_on(dir, name, database, config, ports).await
}

/// [`start_node`] on the given SIP and HTTP ports (a node restarting where it was).
pub async fn start_node_on(
    dir: &Path,
    name: &str,
    database: &str,
    config: &str,
    (sip, http): (u16, u16),
) -> Node {
    let data = dir.join(name);
    std::fs::create_dir_all(&data).unwrap();
    let file = data.join("dispatchline.toml");
    std::fs::write(
        &file,
        format!(
            "{config}\n[sip]\nlisten = \"127.0.0.1:{sip}\"\n\
             # SIPp 3.6 only reads the first challenge and only does MD5.\n\
             digest_algorithms = [\"MD5\", \"SHA-256\"]\n\n[http]\nlisten = \"127.0.0.1:{http}\"\n\n\
             [database]\nurl = \"{database}\"\ndata_dir = \"{}\"\n",
            data.display()
        ),
    )
    .unwrap();
    let child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&file)
        .args(["--node-id", name])
        .env("DISPATCHLINE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut node = Node {
        name: name.to_owned(),
        sip,
        http,
        data,
        child,
    };
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(Some(status)) = node.child.try_wait() {
            panic!("node {name} exited at start ({status}); its error is above");
        }
        if client
            .get(format!("http://127.0.0.1:{http}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return node;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("node {name} did not start");
}

/// Kamailio and the workers it forks, in their own process group: stopped
/// together when dropped (a SIGKILL of the main process alone leaves the workers).
pub struct Edge {
    pub port: u16,
    child: Child,
}

impl Drop for Edge {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, killpg};
        use nix::unistd::Pid;
        let group = Pid::from_raw(self.child.id() as i32);
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Starts Kamailio with the shipped configuration on a free port, spreading over
/// `nodes`, and waits until both probes could have been answered.
pub async fn start_edge(dir: &Path, nodes: &[&Node]) -> Edge {
    let ports: Vec<u16> = nodes.iter().map(|n| n.sip).collect();
    start_edge_at(dir, &ports).await
}

/// Starts Kamailio with the shipped configuration on a free port, spreading over
/// the nodes listening on `127.0.0.1:` each of `sip_ports`.
pub async fn start_edge_at(dir: &Path, sip_ports: &[u16]) -> Edge {
    start_edge_on(dir, super::engine::free_port(), sip_ports).await
}

/// Starts Kamailio with the shipped configuration on `127.0.0.1:port`, spreading
/// over the nodes listening on `127.0.0.1:` each of `sip_ports`.
pub async fn start_edge_on(dir: &Path, port: u16, sip_ports: &[u16]) -> Edge {
    assert!(
        Command::new("kamailio").arg("-v").output().is_ok(),
        "kamailio is not installed (apt-get install kamailio; scripts/test does)"
    );
    let list = dir.join("dispatcher.list");
    let lines: String = sip_ports
        .iter()
        .map(|port| format!("1 sip:127.0.0.1:{port} 0 0\n"))
        .collect();
    std::fs::write(&list, lines).unwrap();
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster/kamailio.cfg");
    let child = Command::new("kamailio")
        .args(["-DD", "-E", "-f"])
        .arg(&cfg)
        .args(["-A", &format!("LISTEN=udp:127.0.0.1:{port}")])
        .args(["-A", &format!("DISPATCHER_LIST=\"{}\"", list.display())])
        .current_dir(dir)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let edge = Edge { port, child };
    super::sipp::wait_bound(port).await;
    // The nodes answer the proxy's first probes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    edge
}

/// Writes a SIPp injection file: `count` residents' phones from `first` on.
pub fn residents_file(path: &Path, first: u64, count: u64) {
    let mut text = String::from("SEQUENTIAL\n");
    for i in 0..count {
        text.push_str(&format!("+7912{:07};\n", first + i));
    }
    std::fs::write(path, text).unwrap();
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
