//! The real binary SIGKILLed while a resident waits in the queue: started again in
//! the same data directory (so under the same node id), the engine closes the call
//! in the journal with its last known state and schedules the resident's callback
//! at once, exactly one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::engine::{free_port, scratch_dir};
use common::sipp;
use dispatchline::store::{CallFilter, DialJobFilter, DialKind, Disposition, Store, TenantScope};

const BIN: &str = env!("CARGO_BIN_EXE_dispatchline");
const CALLER: &str = "+79120000002";

/// The engine as a child process; SIGKILLed when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve(config: &Path, data: &Path, http: u16) -> Serve {
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
async fn until<T, F: std::future::Future<Output = Option<T>>>(
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_waiting_when_the_engine_is_killed_is_called_back_after_restart() {
    let dir = scratch_dir();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let url = format!("sqlite://{}/dispatchline.db", data.display());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    dispatchline::store::demo::seed(&store).await.unwrap();

    let (sip, http) = (free_port(), free_port());
    let config = dir.join("engine.toml");
    std::fs::write(
        &config,
        format!(
            "[sip]\nlisten = \"127.0.0.1:{sip}\"\ndigest_algorithms = [\"MD5\"]\n\
             [http]\nlisten = \"127.0.0.1:{http}\"\n\
             [database]\nurl = \"{url}\"\n\
             [media]\nrecord_calls = false\nprompts_dir = \"{}\"\n\
             [[trunk]]\nname = \"p\"\nproxy = \"127.0.0.1:5999\"\noptions_interval_s = 0\n\n\
             [[number]]\nnumber = \"+73432000001\"\nkind = \"tenant\"\ntenant = \"etalon\"\ncity = \"ekb\"\ntrunk = \"p\"\n",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-prompts").display()
        ),
    )
    .unwrap();

    let engine = serve(&config, &data, http).await;
    // A resident calls; no operator is on duty, so they wait in the queue.
    let work = sipp::workdir("sigkill-queue");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sipp/g711a.pcap"),
        work.join("g711a.pcap"),
    )
    .unwrap();
    let resident = sipp::spawn(
        "resident",
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
            "60000",
            "-m",
            "1",
        ]),
    );
    let all = CallFilter::default();
    let call = until(Duration::from_secs(30), "the resident queued", || {
        let store = store.clone();
        let all = all.clone();
        async move {
            let rows = store.calls(&TenantScope::All, &all).await.ok()?.items;
            rows.into_iter()
                .find(|r| r.from_number == CALLER && r.queued_at.is_some())
        }
    })
    .await;
    assert!(call.ended_at.is_none());

    drop(engine); // SIGKILL
    drop(resident);
    let _engine = serve(&config, &data, http).await;

    let job = until(Duration::from_secs(10), "the callback job", || {
        let store = store.clone();
        async move {
            let jobs = store
                .dial_jobs(&TenantScope::All, &DialJobFilter::default())
                .await
                .ok()?
                .items;
            (!jobs.is_empty()).then_some(jobs)
        }
    })
    .await;
    assert_eq!(job.len(), 1, "exactly one callback: {job:?}");
    assert_eq!(job[0].kind, DialKind::Callback);
    assert_eq!(job[0].target.as_str(), CALLER);
    assert_eq!(job[0].call_id.as_deref(), Some(call.id.as_str()));
    let row = store.get_call(&call.id).await.unwrap().unwrap();
    assert!(row.ended_at.is_some(), "the journal row is closed");
    assert_eq!(row.disposition, Some(Disposition::CallbackScheduled));
}
