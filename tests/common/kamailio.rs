//! Kamailio with the shipped `cluster/kamailio.cfg` in front of engine nodes, on
//! loopback: the SIP edge of a cluster, for the tests of several nodes.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Kamailio and the workers it forks, in their own process group: stopped
/// together when dropped (a SIGKILL of the main process alone leaves the workers).
pub struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, killpg};
        use nix::unistd::Pid;
        let group = Pid::from_raw(self.0.id() as i32);
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// Kamailio listening on `127.0.0.1:port` (UDP), dispatching to `nodes`, once
/// the nodes have answered its first probes. Panics when Kamailio is missing.
pub async fn start(dir: &Path, port: u16, nodes: &[SocketAddr]) -> Proxy {
    if Command::new("kamailio").arg("-v").output().is_err() {
        panic!("kamailio is not installed (apt-get install kamailio; scripts/test does)");
    }
    let list = dir.join("dispatcher.list");
    let lines: String = nodes.iter().map(|n| format!("1 sip:{n} 0 0\n")).collect();
    std::fs::write(&list, lines).unwrap();
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster/kamailio.cfg");
    let proxy = Proxy(
        Command::new("kamailio")
            .args([
                "-DD",
                "-E",
                "-f",
                &cfg.display().to_string(),
                "-A",
                &format!("LISTEN=udp:127.0.0.1:{port}"),
                "-A",
                &format!("DISPATCHER_LIST=\"{}\"", list.display()),
            ])
            .current_dir(dir)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    super::sipp::wait_bound(port).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy
}
