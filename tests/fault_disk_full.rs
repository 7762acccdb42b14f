//! The recordings' file system fills up (a small tmpfs): supervisors are told
//! (`recording.paused`) before the disk is full, and again when space returns
//! (`recording.resumed`); what calls do meanwhile (they go on, unrecorded, with
//! `recording.failed`) is tested in `src/call/disk.rs`. Needs permission to mount
//! a tmpfs; skips, saying so, without it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly by design

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::engine::{self, wait_for_events};

/// A mounted tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_recordings_disk_pauses_recording_and_space_resumes_it() {
    let mnt = engine::scratch_dir().join("recordings");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    }
    let _tmpfs = Tmpfs(mnt.clone());
    let engine = engine::start_with("", |c| {
        c.media.record_calls = true;
        c.media.recordings_dir = mnt.clone();
        c.media.recordings_min_free_mb = 4;
    })
    .await;
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![0u8; 6 * 1024 * 1024]).unwrap();
    let paused = wait_for_events(&engine, "recording.paused", 1, Duration::from_secs(15)).await;
    assert!(paused[0].payload["free_mb"].as_u64().unwrap() < 4);
    assert_eq!(paused[0].tenant, None, "for supervisors");
    std::fs::remove_file(&filler).unwrap();
    wait_for_events(&engine, "recording.resumed", 1, Duration::from_secs(15)).await;
    engine.shutdown(Duration::from_secs(1)).await;
}
