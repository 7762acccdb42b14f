//! The call core's view of the media engine: the few non-blocking operations a call
//! needs (open a leg, negotiate, play, bridge, record, send DTMF, close).
//!
//! It is a trait so the call core stays testable without sockets: the engine
//! implements it for [`MediaEngine`]; the call layer's unit tests all use one
//! scripted port, `fake::FakeMedia`, which hands out addresses, lets prompts play
//! until the test ends them, and records what it was asked.

use std::net::SocketAddr;
use std::path::Path;
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

/// The one media port of the call layer's unit tests.
#[cfg(test)]
pub(crate) mod fake {
    use std::collections::{HashMap, HashSet};
    use std::net::SocketAddr;
    use std::path::Path;
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
    use std::time::Duration;

    use super::MediaPort;
    use crate::media::{LegId, MediaError, Negotiated, PlaybackId, Playlist, RecordingId};

    /// What a [`FakeMedia`] was asked, and how it is scripted to answer.
    #[derive(Debug, Default)]
    pub(crate) struct FakeMediaState {
        next: u64,
        /// Legs open now.
        pub(crate) open: HashSet<LegId>,
        /// Every leg ever opened, in order.
        pub(crate) opened: Vec<LegId>,
        /// What plays on each leg now.
        pub(crate) playing: HashMap<LegId, (PlaybackId, Vec<String>)>,
        /// Every playlist started, in order.
        pub(crate) played: Vec<(LegId, Vec<String>)>,
        /// Every bridge made, in order.
        pub(crate) bridges: Vec<(LegId, LegId)>,
        /// Every recording started, with its file, in order.
        pub(crate) recordings: Vec<(RecordingId, std::path::PathBuf)>,
        /// DTMF keys sent as RFC 4733 events, in order.
        pub(crate) dtmf: Vec<(LegId, char)>,
        /// Legs that negotiated telephone-event (none unless a test adds them: keys
        /// to the others go as SIP INFO).
        pub(crate) telephone_event: HashSet<LegId>,
        /// Opening a leg fails (RTP ports exhausted).
        pub(crate) no_ports: bool,
        /// At most this many legs open at once.
        pub(crate) limit: Option<usize>,
        /// No prompt exists.
        pub(crate) no_prompts: bool,
    }

    /// A scripted media port: legs get consecutive loopback ports, prompts "play"
    /// until a test says they finished, and every request is remembered. Clones
    /// share their state, so a test keeps one and gives the core another.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct FakeMedia(Arc<Mutex<FakeMediaState>>);

    impl FakeMedia {
        /// The state, to read or to script.
        pub(crate) fn state(&self) -> MutexGuard<'_, FakeMediaState> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    impl MediaPort for FakeMedia {
        fn open_leg(&self) -> Result<(LegId, SocketAddr), MediaError> {
            let mut s = self.state();
            let full = s.limit.is_some_and(|l| s.open.len() >= l);
            if s.no_ports || full {
                return Err(MediaError::NoPorts {
                    min: 20000,
                    max: 20003,
                });
            }
            s.next += 1;
            let leg = LegId(s.next);
            s.open.insert(leg);
            s.opened.push(leg);
            Ok((
                leg,
                SocketAddr::from(([127, 0, 0, 1], 30000 + 2 * s.next as u16)),
            ))
        }
        fn set_remote(&self, _leg: LegId, _n: Negotiated) -> Result<(), MediaError> {
            Ok(())
        }
        fn play(&self, leg: LegId, playlist: &Playlist) -> Result<PlaybackId, MediaError> {
            let mut s = self.state();
            s.next += 1;
            let id = PlaybackId(s.next);
            s.playing.insert(leg, (id, playlist.items.clone()));
            s.played.push((leg, playlist.items.clone()));
            Ok(id)
        }
        fn stop_playback(&self, leg: LegId) -> Result<(), MediaError> {
            self.state().playing.remove(&leg);
            Ok(())
        }
        fn bridge(&self, a: LegId, b: LegId) -> Result<(), MediaError> {
            let mut s = self.state();
            s.playing.remove(&a);
            s.bridges.push((a, b));
            Ok(())
        }
        fn unbridge(&self, _leg: LegId) -> Result<(), MediaError> {
            Ok(())
        }
        fn start_recording(&self, _caller: LegId, path: &Path) -> Result<RecordingId, MediaError> {
            let mut s = self.state();
            s.next += 1;
            let id = RecordingId(s.next);
            s.recordings.push((id, path.to_path_buf()));
            Ok(id)
        }
        fn stop_recording(&self, _id: RecordingId, _to: Option<&Path>) -> Result<(), MediaError> {
            Ok(())
        }
        fn send_dtmf(&self, leg: LegId, digit: char, _d: Duration) -> Result<(), MediaError> {
            let mut s = self.state();
            if !s.telephone_event.contains(&leg) {
                return Err(MediaError::NoTelephoneEvent(leg));
            }
            s.dtmf.push((leg, digit));
            Ok(())
        }
        fn telephone_event(&self, leg: LegId) -> bool {
            self.state().telephone_event.contains(&leg)
        }
        fn close_leg(&self, leg: LegId) -> Result<(), MediaError> {
            let mut s = self.state();
            s.open.remove(&leg);
            s.playing.remove(&leg);
            Ok(())
        }
        fn has_prompt(&self, _name: &str) -> bool {
            !self.state().no_prompts
        }
        fn free_legs(&self) -> usize {
            let s = self.state();
            if s.no_ports {
                return 0;
            }
            s.limit
                .map_or(1000, |l| l.saturating_sub(s.open.len()).max(2))
        }
    }
}
