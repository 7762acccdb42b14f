//! An engine killed with SIGKILL in the middle of a hand-off chain, on SQLite and
//! on PostgreSQL: the real binary runs as a child process, SIPp behind the trunk
//! plays the people, and the engine is killed while level 1's phone rings. Started
//! again in the same data directory (so under the same node id), it takes its
//! chain back at once: the call that was ringing counts as made (outcome unknown),
//! the next try comes when it was due, each number is tried exactly five times and
//! SIPp never sees one attempt's INVITE twice; the chain goes on to the person who
//! presses 1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/store_db.rs"]
mod store_db;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::chains::{self, LEVEL2, LEVEL3, MANAGER};
use common::engine::free_port;
use common::sipp;
use dispatchline::store::directory::Responsibility;
use dispatchline::store::{AttemptOutcome, AttemptState, ChainState, Store, TicketId};

const BIN: &str = env!("CARGO_BIN_EXE_dispatchline");

/// The engine as a child process; SIGKILLed when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve(config: &Path, database: &str, data: &Path, http: u16) -> Serve {
    let child = Command::new(BIN)
        .args([
            "serve",
            "--config",
            &config.display().to_string(),
            "--database",
            database,
            "--data-dir",
            &data.display().to_string(),
        ])
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

async fn story(store: Store, url: String) {
    let dir = sipp::workdir(&format!("chain-crash-{}", store.dialect()));
    let port = free_port();
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sipp/dtmf_2833_1.pcap");
    std::fs::copy(capture, dir.join("dtmf_2833_1.pcap")).unwrap();
    let _people = {
        let args = sipp::args(&[
            "-sf",
            &sipp::scenario("chain_people.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-mp",
            &free_port().to_string(),
            "-d",
            "1000",
            "-trace_msg",
            "-message_file",
            "people.log",
        ]);
        let s = sipp::spawn("people", &dir, &args);
        sipp::wait_bound(port).await;
        s
    };
    // Level 1 rings and never answers, level 2 is busy, level 3 presses 1.
    let p = chains::seed(&store).await;
    store
        .set_responsibility(&Responsibility {
            tenant: "etalon".into(),
            house_group: "center".into(),
            work_type: "plumbing".into(),
            levels: [vec![p.level3], vec![p.level2], vec![p.manager]],
            responsible: None,
            manager: None,
            head: None,
        })
        .await
        .unwrap();
    let (sip, http) = (free_port(), free_port());
    let config = dir.join("engine.toml");
    let text = chains::config(
        port,
        "level_modes = [\"informer\"]",
        &format!(
            "[sip]\nlisten = \"127.0.0.1:{sip}\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n[media]\nrecord_calls = false\nprompts_dir = \"{}\"\n",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-prompts").display()
        ),
    )
    // Level 1's phone rings for 3 s each try, a second apart.
    .replace("ring_timeout_s = 1", "ring_timeout_s = 3");
    std::fs::write(&config, text).unwrap();
    let data = dir.join("data");

    let engine = serve(&config, &url, &data, http).await;
    let id = chains::register_ticket(
        format!("127.0.0.1:{http}").parse().unwrap(),
        "2001",
        "sup2001pass-long",
        &p,
    )
    .await;
    // Kill it while level 1's second try rings.
    let mut killed_at_ringing = false;
    for _ in 0..200 {
        let c = store.chains_of_ticket(TicketId(id)).await.unwrap();
        if c.first().is_some_and(|c| {
            c.attempts
                .iter()
                .any(|a| a.try_no == 2 && a.state == AttemptState::Ringing)
        }) {
            killed_at_ringing = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(killed_at_ringing, "level 1's second try rang");
    drop(engine); // SIGKILL: no drain, no release, no outcome for the ringing call

    let before = store
        .chains_of_ticket(TicketId(id))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(before.attempts.len(), 2);
    assert_eq!(
        before.attempts[1].outcome, None,
        "the ringing call never reported"
    );

    // Back in the same data directory: the same node id takes its chain at once.
    let _engine = serve(&config, &url, &data, http).await;
    let mut chain = before;
    for _ in 0..600 {
        chain = store
            .chains_of_ticket(TicketId(id))
            .await
            .unwrap()
            .remove(0);
        if chain.state != ChainState::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        chain.state,
        ChainState::Accepted,
        "the chain went on to the one who presses 1"
    );
    let level1: Vec<_> = chain
        .attempts
        .iter()
        .filter(|a| a.stage == "level-1")
        .collect();
    assert_eq!(level1.len(), 5, "exactly five tries of level 1");
    assert_eq!(level1[1].outcome, Some(AttemptOutcome::Unknown));
    assert!(
        level1
            .iter()
            .enumerate()
            .all(|(i, a)| a.try_no == i as i64 + 1)
    );
    let level2 = chain
        .attempts
        .iter()
        .filter(|a| a.stage == "level-2")
        .count();
    assert_eq!(level2, 5);
    // SIPp saw each attempt's INVITE once.
    drop(_engine);
    let invites = chains::invites_by_number(&dir.join("people.log"));
    assert_eq!(invites.get(LEVEL3).copied(), Some(5), "{invites:?}");
    assert_eq!(invites.get(LEVEL2).copied(), Some(5), "{invites:?}");
    assert_eq!(invites.get(MANAGER).copied(), Some(1), "{invites:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let db = store_db::TestDb::sqlite().await;
    story(db.store.clone(), db.url.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let Some(db) = store_db::TestDb::postgres().await else {
        return;
    };
    story(db.store.clone(), db.url.clone()).await;
}
