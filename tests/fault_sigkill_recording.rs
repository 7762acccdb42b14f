//! The real binary SIGKILLed while a resident's call is being recorded: started
//! again in the same data directory, the engine repairs the cut-off file's header
//! (a playable WAV as long as what was written), links it to the call's journal
//! row, exactly once, and closes the row.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::child::{serve, until};
use common::engine::{free_port, scratch_dir};
use common::sipp;
use dispatchline::store::{CallFilter, Store, TenantScope};

const CALLER: &str = "+79120000002";

/// Files under `dir` whose names end with `suffix`, with their sizes.
fn files(dir: &Path, suffix: &str) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                out.push((p.clone(), e.metadata().map(|m| m.len()).unwrap_or(0)));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_cut_off_by_a_sigkill_is_repaired_and_linked_to_its_call() {
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
             [media]\nrecord_calls = true\nrecordings_min_free_mb = 0\nprompts_dir = \"{}\"\n\
             [[trunk]]\nname = \"p\"\nproxy = \"127.0.0.1:5999\"\noptions_interval_s = 0\n\n\
             [[number]]\nnumber = \"+73432000001\"\nkind = \"tenant\"\ntenant = \"etalon\"\ncity = \"ekb\"\ntrunk = \"p\"\n",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-prompts").display()
        ),
    )
    .unwrap();
    let recordings = data.join("recordings");

    let engine = serve(&config, &data, http).await;
    // A resident calls and talks (SIPp plays audio); nobody hangs up before the kill.
    let work = sipp::workdir("sigkill-recording");
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
    // A second of sound on disk (8 kHz, 16 bits) is being recorded.
    let (part, seen) = until(Duration::from_secs(30), "a recording in progress", || {
        let recordings = recordings.clone();
        async move {
            files(&recordings, ".wav.part")
                .into_iter()
                .find(|(_, len)| *len > 16_000)
        }
    })
    .await;
    let call_id = part
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".wav.part"))
        .unwrap()
        .to_owned();
    until(Duration::from_secs(10), "the call's journal row", || {
        let store = store.clone();
        let id = call_id.clone();
        async move { store.get_call(&id).await.ok().flatten() }
    })
    .await;

    drop(engine); // SIGKILL
    drop(resident);
    assert!(
        part.exists(),
        "the unfinished file is left as the crash left it"
    );
    let _engine = serve(&config, &data, http).await;

    let row = until(Duration::from_secs(20), "the recording linked", || {
        let store = store.clone();
        let id = call_id.clone();
        async move {
            store
                .get_call(&id)
                .await
                .ok()
                .flatten()
                .filter(|r| r.recording_id.is_some())
        }
    })
    .await;
    assert!(row.ended_at.is_some(), "the journal row is closed");
    let recording = store
        .recording(row.recording_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(recording.call_id, call_id);
    let wav = PathBuf::from(&recording.path);
    assert!(wav.to_string_lossy().ends_with(".wav"), "{wav:?}");
    assert!(!part.exists(), "the .part file was renamed");
    let reader = hound::WavReader::open(&wav).expect("a valid WAV header");
    let ms = u64::from(reader.duration()) * 1000 / u64::from(reader.spec().sample_rate);
    assert!(ms >= 500, "{ms} ms of sound kept");
    let size = std::fs::metadata(&wav).unwrap().len();
    assert!(
        size >= seen,
        "all that was written is kept: {size} < {seen}"
    );
    assert_eq!(recording.duration_ms as u64, ms);
    assert_eq!(
        recording.bytes as u64,
        std::fs::metadata(&wav).unwrap().len()
    );
    // Linked once: one recording row for the call, one `.wav` file.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let wavs: Vec<_> = files(&recordings, ".wav")
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains(&call_id))
        .collect();
    assert_eq!(wavs.len(), 1, "{wavs:?}");
    let calls = store
        .calls(&TenantScope::All, &CallFilter::default())
        .await
        .unwrap()
        .items;
    let linked = calls
        .iter()
        .filter(|c| c.recording_id == row.recording_id)
        .count();
    assert_eq!(linked, 1);
}
