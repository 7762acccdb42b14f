//! The call core's view of the media engine: the few non-blocking operations a call
//! needs (open a leg, negotiate, play, bridge, record, send DTMF, close).
//!
//! It is a trait so the call core stays testable without sockets: the engine
//! implements it for [`MediaEngine`]; unit tests use [`FakeMedia`], which hands out
//! addresses and records what it was asked.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use crate::media::{LegId, MediaEngine, MediaError, Negotiated, PlaybackId, Playlist, RecordingId};

/// Media operations, all non-blocking.
pub trait MediaPort: Send {
    /// Opens a leg; returns it and its RTP address for the SDP.
    fn open_leg(&self) -> Result<(LegId, SocketAddr), MediaError>;
    /// Applies an offer/answer outcome.
    fn set_remote(&self, leg: LegId, negotiated: Negotiated) -> Result<(), MediaError>;
    /// Plays a playlist, replacing what plays.
    fn play(&self, leg: LegId, playlist: &Playlist) -> Result<PlaybackId, MediaError>;
    /// Stops playback.
    fn stop_playback(&self, leg: LegId) -> Result<(), MediaError>;
    /// Relays audio between two legs.
    fn bridge(&self, a: LegId, b: LegId) -> Result<(), MediaError>;
    /// Stops relaying.
    fn unbridge(&self, leg: LegId) -> Result<(), MediaError>;
    /// Records the caller's leg (left: what they said, right: what they heard).
    fn start_recording(&self, caller: LegId, path: &Path) -> Result<RecordingId, MediaError>;
    /// Finishes a recording; `final_path`, when given and different from the path
    /// it started with, is where the file goes (a tenant that became known, the
    /// city's date). `RecordingReady` carries the path the file ended up at.
    fn stop_recording(&self, id: RecordingId, final_path: Option<&Path>) -> Result<(), MediaError>;
    /// Sends a DTMF key on a leg as RFC 4733 events. Fails with
    /// [`MediaError::NoTelephoneEvent`] when the leg did not negotiate
    /// telephone-event: the call sends SIP INFO on that leg instead.
    fn send_dtmf(&self, leg: LegId, digit: char, duration: Duration) -> Result<(), MediaError>;
    /// Whether the leg negotiated telephone-event (RFC 4733 events reach it).
    fn telephone_event(&self, leg: LegId) -> bool;
    /// Closes a leg and frees its ports.
    fn close_leg(&self, leg: LegId) -> Result<(), MediaError>;
    /// Whether a prompt exists in the library.
    fn has_prompt(&self, name: &str) -> bool;
    /// How many more legs can be opened now (admission keeps a new call out when
    /// its two legs would not fit).
    fn free_legs(&self) -> usize;
}

impl MediaPort for MediaEngine {
    fn open_leg(&self) -> Result<(LegId, SocketAddr), MediaError> {
        MediaEngine::open_leg(self)
    }
    fn set_remote(&self, leg: LegId, negotiated: Negotiated) -> Result<(), MediaError> {
        MediaEngine::set_remote(self, leg, negotiated)
    }
    fn play(&self, leg: LegId, playlist: &Playlist) -> Result<PlaybackId, MediaError> {
        MediaEngine::play(self, leg, playlist)
    }
    fn stop_playback(&self, leg: LegId) -> Result<(), MediaError> {
        MediaEngine::stop_playback(self, leg)
    }
    fn bridge(&self, a: LegId, b: LegId) -> Result<(), MediaError> {
        MediaEngine::bridge(self, a, b)
    }
    fn unbridge(&self, leg: LegId) -> Result<(), MediaError> {
        MediaEngine::unbridge(self, leg)
    }
    fn start_recording(&self, caller: LegId, path: &Path) -> Result<RecordingId, MediaError> {
        MediaEngine::start_recording(self, caller, path)
    }
    fn stop_recording(&self, id: RecordingId, final_path: Option<&Path>) -> Result<(), MediaError> {
        MediaEngine::stop_recording_as(self, id, final_path.map(Path::to_path_buf))
    }
    fn send_dtmf(&self, leg: LegId, digit: char, duration: Duration) -> Result<(), MediaError> {
        MediaEngine::send_dtmf(self, leg, digit, duration)
    }
    fn telephone_event(&self, leg: LegId) -> bool {
        MediaEngine::telephone_event(self, leg)
    }
    fn close_leg(&self, leg: LegId) -> Result<(), MediaError> {
        MediaEngine::close_leg(self, leg)
    }
    fn has_prompt(&self, name: &str) -> bool {
        self.prompts().get(name).is_ok()
    }
    fn free_legs(&self) -> usize {
        MediaEngine::free_legs(self)
    }
}

/// A media port for tests: legs get consecutive loopback ports; every operation is
/// logged as a line of text. Legs have telephone-event unless listed in
/// `no_telephone_event`.
#[derive(Debug, Default)]
pub struct FakeMedia {
    next: Mutex<u64>,
    /// Legs that did not negotiate telephone-event.
    pub no_telephone_event: Mutex<Vec<LegId>>,
    /// What was asked, in order (`open leg-1`, `play leg-1 ru/x.wav`, ...).
    pub log: Mutex<Vec<String>>,
}

impl FakeMedia {
    fn note(&self, line: String) {
        if let Ok(mut log) = self.log.lock() {
            log.push(line);
        }
    }

    fn next(&self) -> u64 {
        let mut n = self.next.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        *n
    }
}

impl MediaPort for FakeMedia {
    fn open_leg(&self) -> Result<(LegId, SocketAddr), MediaError> {
        let n = self.next();
        self.note(format!("open leg-{n}"));
        Ok((
            LegId(n),
            SocketAddr::from(([127, 0, 0, 1], 20000 + 2 * n as u16)),
        ))
    }
    fn set_remote(&self, leg: LegId, n: Negotiated) -> Result<(), MediaError> {
        self.note(format!(
            "remote {leg} {:?} {}",
            n.remote_rtp,
            n.direction.as_str()
        ));
        Ok(())
    }
    fn play(&self, leg: LegId, playlist: &Playlist) -> Result<PlaybackId, MediaError> {
        self.note(format!("play {leg} {}", playlist.items.join(" ")));
        Ok(PlaybackId(self.next()))
    }
    fn stop_playback(&self, leg: LegId) -> Result<(), MediaError> {
        self.note(format!("stop {leg}"));
        Ok(())
    }
    fn bridge(&self, a: LegId, b: LegId) -> Result<(), MediaError> {
        self.note(format!("bridge {a} {b}"));
        Ok(())
    }
    fn unbridge(&self, leg: LegId) -> Result<(), MediaError> {
        self.note(format!("unbridge {leg}"));
        Ok(())
    }
    fn start_recording(&self, caller: LegId, path: &Path) -> Result<RecordingId, MediaError> {
        self.note(format!("record {caller} {}", path.display()));
        Ok(RecordingId(self.next()))
    }
    fn stop_recording(&self, id: RecordingId, final_path: Option<&Path>) -> Result<(), MediaError> {
        match final_path {
            Some(p) => self.note(format!("stop-recording {} {}", id.0, p.display())),
            None => self.note(format!("stop-recording {}", id.0)),
        }
        Ok(())
    }
    fn send_dtmf(&self, leg: LegId, digit: char, duration: Duration) -> Result<(), MediaError> {
        if !self.telephone_event(leg) {
            return Err(MediaError::NoTelephoneEvent(leg));
        }
        self.note(format!("dtmf {leg} {digit} {}", duration.as_millis()));
        Ok(())
    }
    fn telephone_event(&self, leg: LegId) -> bool {
        self.no_telephone_event
            .lock()
            .map(|l| !l.contains(&leg))
            .unwrap_or(true)
    }
    fn close_leg(&self, leg: LegId) -> Result<(), MediaError> {
        self.note(format!("close {leg}"));
        Ok(())
    }
    fn has_prompt(&self, _name: &str) -> bool {
        true
    }
    fn free_legs(&self) -> usize {
        usize::MAX
    }
}
