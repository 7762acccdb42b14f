//! Recording under a full disk: below the free-space watermark
//! (`[media] recordings_min_free_mb`) on the recordings' file system, no new
//! recording starts; each call that would have been recorded gets
//! `recording.failed` with the reason, and supervisors get `recording.paused`
//! (then `recording.resumed` when space returns). Calls go on unrecorded, and
//! the database's disk (often the same one) does not fill.
//!
//! The core only keeps the state; the driver measures the free space
//! ([`free_mb`]) and tells it with [`CallControl::set_recordings_paused`].

use std::path::Path;
use std::time::Instant;

use serde_json::json;

use super::control::{Call, CallControl};

impl CallControl {
    /// Whether new recordings are held back for want of disk space.
    pub fn recordings_paused(&self) -> bool {
        self.recordings_paused
    }

    /// The driver's measure: below the watermark (`true`) or not.
    pub fn set_recordings_paused(&mut self, _now: Instant, paused: bool, free_mb: u64) {
        if paused == self.recordings_paused {
            return;
        }
        self.recordings_paused = paused;
        let min = self.config.media.recordings_min_free_mb;
        if paused {
            tracing::error!(
                free_mb,
                min_free_mb = min,
                "recordings' disk below the watermark: new calls are not recorded"
            );
            self.emit(
                "recording.paused",
                None,
                json!({ "reason": "disk space below the watermark", "free_mb": free_mb, "min_free_mb": min }),
            );
        } else {
            tracing::warn!(
                free_mb,
                "recordings' disk has space again: recording resumes"
            );
            self.emit(
                "recording.resumed",
                None,
                json!({ "free_mb": free_mb, "min_free_mb": min }),
            );
        }
    }

    /// Called instead of starting a recording while paused.
    pub(crate) fn recording_refused(&mut self, call: &Call) {
        self.emit(
            "recording.failed",
            call.tenant.clone(),
            json!({ "call": call.id, "error": "disk space below the watermark", "reason": "disk-full" }),
        );
    }
}

/// Free space (MiB) of the file system holding `dir` (or its nearest existing
/// ancestor); `None` when it cannot be measured.
pub fn free_mb(dir: &Path) -> Option<u64> {
    let mut at = Some(dir);
    while let Some(p) = at {
        if p.exists() {
            let s = rustix::fs::statvfs(p).ok()?;
            return Some(s.f_bavail.saturating_mul(s.f_frsize) / (1024 * 1024));
        }
        at = p.parent();
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::test_harness::*;

    #[test]
    fn below_the_watermark_calls_go_on_unrecorded_and_supervisors_are_told() {
        let mut h = Harness::new("");
        let now = h.now;
        h.cc.set_recordings_paused(now, true, 10);
        h.drain();
        assert_eq!(h.events_of("recording.paused").len(), 1);
        let recorded_before = h.media.state().recordings.len();
        h.queued(addr(RESIDENT), "+79120000001", TENANT);
        assert_eq!(
            h.media.state().recordings.len(),
            recorded_before,
            "nothing recorded"
        );
        let failed = h.events_of("recording.failed");
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].payload["reason"], "disk-full");
        assert!(h.events_of("call.ended").is_empty(), "the call goes on");
        // Space returns: supervisors hear so, and the next call is recorded.
        let now = h.now;
        h.cc.set_recordings_paused(now, false, 5000);
        h.drain();
        assert_eq!(h.events_of("recording.resumed").len(), 1);
        h.queued(addr(RESIDENT_2), "+79120000002", TENANT);
        assert_eq!(h.media.state().recordings.len(), recorded_before + 1);
    }

    #[test]
    fn free_space_is_measured_on_the_nearest_existing_directory() {
        let free = super::free_mb(std::path::Path::new("/tmp/no/such/dir/yet"));
        assert!(free.is_some());
    }
}
