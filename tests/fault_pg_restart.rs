//! The database goes away under load: the real binary on a PostgreSQL cluster of
//! the test's own, residents calling at a steady rate (SIPp), PostgreSQL stopped
//! (`pg_ctl stop -m fast`) for 10 s mid-run and started again. Every call SIPp
//! completed is in the journal exactly once, in its final state: nothing is lost
//! and nothing is written twice. A second case SIGKILLs the engine while the
//! database is down: the rows wait in the write-ahead spool and the restarted
//! engine replays them.
//!
//! Skipped (with a message) when PostgreSQL's server binaries are not installed.
//! Real time, bounded: about 40 s and 25 s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::child::serve;
use common::engine::{free_port, scratch_dir};
use common::pg_cluster::PgCluster;
use common::sipp;
use dispatchline::store::{CallDirection, CallFilter, CallRecord, Store, TenantScope};

const CALLER: &str = "+79120000002";

/// One engine and one cluster at a time: the machine is small.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A cluster, its seeded store and an engine's configuration on it.
struct Setup {
    cluster: PgCluster,
    store: Store,
    config: std::path::PathBuf,
    data: std::path::PathBuf,
    sip: u16,
    http: u16,
}

async fn setup(name: &str) -> Option<Setup> {
    let cluster = PgCluster::start(name)?;
    let store = Store::connect(&cluster.url()).await.unwrap();
    store.migrate().await.unwrap();
    dispatchline::store::demo::seed(&store).await.unwrap();
    let dir = scratch_dir();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (sip, http) = (free_port(), free_port());
    let config = dir.join("engine.toml");
    std::fs::write(
        &config,
        format!(
            "[sip]\nlisten = \"127.0.0.1:{sip}\"\ndigest_algorithms = [\"MD5\"]\n\
             [http]\nlisten = \"127.0.0.1:{http}\"\n\
             [database]\nurl = \"{}\"\n\
             [media]\nrecord_calls = false\nprompts_dir = \"{}\"\n\
             [[trunk]]\nname = \"p\"\nproxy = \"127.0.0.1:5999\"\noptions_interval_s = 0\n\n\
             [[number]]\nnumber = \"+73432000001\"\nkind = \"tenant\"\ntenant = \"etalon\"\ncity = \"ekb\"\ntrunk = \"p\"\n",
            cluster.url(),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-prompts").display()
        ),
    )
    .unwrap();
    Some(Setup {
        cluster,
        store,
        config,
        data,
        sip,
        http,
    })
}

/// SIPp residents calling the tenant's number: `calls` calls at `rate` a second,
/// each talking `talk_ms`.
fn residents(name: &str, sip: u16, calls: u32, rate: u32, talk_ms: u32) -> sipp::Sipp {
    let work = sipp::workdir(name);
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sipp/g711a.pcap"),
        work.join("g711a.pcap"),
    )
    .unwrap();
    sipp::spawn(
        name,
        &work,
        &sipp::args(&[
            "-sf",
            &sipp::scenario("resident_calls.xml"),
            &format!("127.0.0.1:{sip}"),
            "-s",
            "+73432000001",
            "-key",
            "caller",
            CALLER,
            "-i",
            "127.0.0.1",
            "-p",
            &free_port().to_string(),
            "-mp",
            &free_port().to_string(),
            "-d",
            &talk_ms.to_string(),
            "-r",
            &rate.to_string(),
            "-m",
            &calls.to_string(),
        ]),
    )
}

/// SIPp's own count of successful calls, from its final statistics screen.
fn successful(outcome: &sipp::Outcome) -> u64 {
    outcome
        .stdout
        .lines()
        .rfind(|l| l.contains("Successful call"))
        .and_then(|l| l.rsplit('|').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count of successful calls:\n{}", outcome.stdout))
}

/// The residents' calls in the journal.
async fn journal(store: &Store) -> Option<Vec<CallRecord>> {
    let filter = CallFilter {
        direction: Some(CallDirection::Inbound),
        limit: Some(500),
        ..CallFilter::default()
    };
    let rows = store.calls(&TenantScope::All, &filter).await.ok()?.items;
    Some(
        rows.into_iter()
            .filter(|r| r.from_number == CALLER)
            .collect(),
    )
}

/// Waits (at most `within`) until the journal holds `n` finished calls of the
/// residents, then checks that it still holds exactly those a moment later.
async fn assert_journal_holds(store: &Store, n: u64, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    while tokio::time::Instant::now() < deadline {
        if let Some(rows) = journal(store).await {
            let done = rows.iter().filter(|r| r.ended_at.is_some()).count() as u64;
            if done >= n {
                break;
            }
            seen = rows;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rows = journal(store).await.expect("the store answers");
    let mut ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), rows.len(), "a call is in the journal twice");
    assert_eq!(
        rows.len() as u64,
        n,
        "the journal holds {} of SIPp's {n} successful calls (earlier {})",
        rows.len(),
        seen.len()
    );
    let open: Vec<&CallRecord> = rows.iter().filter(|r| r.ended_at.is_none()).collect();
    assert!(open.is_empty(), "calls not in their final state: {open:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_restart_mid_run_loses_and_duplicates_no_journal_row() {
    let _serial = SERIAL.lock().await;
    let Some(s) = setup("restart").await else {
        return;
    };
    let _engine = serve(&s.config, &s.data, s.http).await;
    // 100 calls at 4 a second: 25 s of calls, the database gone from 6 s to 16 s.
    let calls = residents("pg-restart", s.sip, 100, 4, 1000);
    tokio::time::sleep(Duration::from_secs(6)).await;
    s.cluster.stop();
    tokio::time::sleep(Duration::from_secs(10)).await;
    s.cluster.resume();
    let outcome = calls.finish(Duration::from_secs(90)).await;
    let ok = successful(&outcome);
    assert_eq!(
        ok, 100,
        "calls go on while the database is down\n{}",
        outcome.errors
    );
    assert_journal_holds(&s.store, ok, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_spooled_while_the_database_is_down_survive_a_sigkill() {
    let _serial = SERIAL.lock().await;
    let Some(s) = setup("sigkill").await else {
        return;
    };
    let engine = serve(&s.config, &s.data, s.http).await;
    s.cluster.stop();
    // Every call is made while the database is down.
    let outcome = residents("pg-sigkill", s.sip, 10, 2, 500)
        .finish(Duration::from_secs(60))
        .await;
    let ok = successful(&outcome);
    assert_eq!(ok, 10, "{}", outcome.errors);
    // The writer has taken the last rows in (and spooled them) well within this.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let spool = s.data.join("spool/writes.spool");
    let spooled = std::fs::metadata(&spool).map(|m| m.len()).unwrap_or(0);
    assert!(spooled > 0, "nothing in {}", spool.display());
    drop(engine); // SIGKILL
    s.cluster.resume();
    let mut before = None;
    for _ in 0..50 {
        before = journal(&s.store).await;
        if before.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        before.expect("the store answers again").len(),
        0,
        "nothing reached the database before the kill"
    );
    let _engine = serve(&s.config, &s.data, s.http).await;
    assert_journal_holds(&s.store, ok, Duration::from_secs(30)).await;
    let left = std::fs::metadata(&spool).map(|m| m.len()).unwrap_or(0);
    assert_eq!(left, 0, "the replayed spool is emptied");
}
