//! Media: SDP offer/answer (RFC 3264), RTP/RTCP (RFC 3550), G.711, RFC 4733 DTMF,
//! prompt playback and stereo call recording. Knows nothing of SIP or calls.
//!
//! # Layers
//!
//! Wire formats and arithmetic, all pure:
//! [`sdp`] (RFC 4566/3264), [`rtp`] (RFC 3550 packets, sequence and timestamp
//! arithmetic, receiver statistics), [`rtcp`] (RFC 3550 §6, RFC 5761 demultiplexing),
//! [`g711`] (PCMU/PCMA), [`dtmf`] (RFC 4733 events, SIP INFO bodies).
//!
//! Content: [`prompts`] (the WAV prompt library), [`playback`] (playlists),
//! [`speech`] (Russian numbers from fragments).
//!
//! Per-leg state, sans-IO: [`session::LegSession`] owns one leg's RTP state
//! (latching, sequence tracking, playback pacing grid, DTMF, relay mapping, the
//! [`recording::StereoRecorder`]) and is driven with `handle_*(now, ..)` /
//! `poll_*()`; [`relay`] holds the frame type that crosses between bridged legs.
//!
//! The driver: [`engine::MediaEngine`], a cheap cloneable handle whose methods never
//! block. Behind it, one event-loop thread per shard (per core) owns a set of legs and
//! their sockets, reads datagrams as they arrive and wakes once per 20 ms tick to pace
//! every playing leg (never a timer per leg); one writer thread owns every recording
//! file and a companion thread syncs them to disk.
//!
//! # Time
//!
//! Sessions receive `now` (`Instant`) from the driver and never read a clock. Media
//! time is RTP timestamps at 8 kHz (serial arithmetic, [`rtp::ts_diff`]). Wallclock
//! only appears in RTCP Sender Reports, from a reference the driver injects.

use std::fmt;
use std::net::IpAddr;

pub mod dtmf;
pub mod engine;
pub mod g711;
pub mod playback;
pub mod prompts;
pub mod recording;
pub mod relay;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod session;
pub mod speech;

pub use engine::{EngineOptions, MediaEngine, MediaStats};
pub use playback::Playlist;
pub use prompts::{PromptError, PromptLibrary};
pub use recording::RecordingId;
pub use sdp::{Codec, Direction, Negotiated, PayloadFormat, SdpError, SdpPreferences, SdpSession};

/// One media leg (an RTP/RTCP port pair) for the life of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u64);

impl fmt::Display for LegId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "leg-{}", self.0)
    }
}

/// One `play` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlaybackId(pub u64);

/// What the media engine tells the call layer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MediaEvent {
    /// A playlist played to its end (not sent when stopped or replaced).
    PlaybackFinished {
        /// The leg.
        leg: LegId,
        /// The playback.
        id: PlaybackId,
    },
    /// A DTMF key from the peer (RFC 4733), one per key press.
    Dtmf {
        /// The leg it came in on.
        leg: LegId,
        /// `0`-`9`, `*`, `#`, `A`-`D`.
        digit: char,
        /// How long it was held.
        duration: std::time::Duration,
        /// When its first packet arrived.
        at: std::time::Instant,
    },
    /// No RTP for the configured timeout while the peer should be sending.
    RtpTimeout {
        /// The leg.
        leg: LegId,
    },
    /// A recording is complete and on disk.
    RecordingReady {
        /// The recording.
        id: RecordingId,
        /// The file.
        path: std::path::PathBuf,
        /// Its length.
        duration: std::time::Duration,
        /// Its size.
        bytes: u64,
    },
    /// A recording ended with no audio at all: no file was created.
    RecordingDiscarded {
        /// The recording.
        id: RecordingId,
    },
    /// The leg could not be set up on its shard (its sockets could not be polled):
    /// no media will flow on it and it is gone; the call should end it.
    LegFailed {
        /// The leg.
        leg: LegId,
        /// Why.
        error: String,
    },
    /// A recording could not be written (disk full, permissions, or the writer too
    /// far behind a stalled disk); what reached the disk stays there.
    RecordingFailed {
        /// The recording.
        id: RecordingId,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        error: String,
    },
}

/// Why a media operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// Every RTP port pair in the configured range is in use or taken by another
    /// process.
    #[error("no free RTP port pair in {min}-{max}")]
    NoPorts {
        /// First port of the range.
        min: u16,
        /// Last port of the range.
        max: u16,
    },
    /// The leg does not exist (never opened, or closed).
    #[error("unknown media leg {0}")]
    UnknownLeg(LegId),
    /// The recording does not exist (never started, or already stopped).
    #[error("unknown recording {0:?}")]
    UnknownRecording(RecordingId),
    /// A prompt is missing or malformed.
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// A DTMF key that is not one, or DTMF not negotiated on the leg.
    #[error(transparent)]
    Dtmf(#[from] dtmf::DtmfError),
    /// An SDP body could not be used (the call layer answers 488 for
    /// [`SdpError::NoCommonCodec`]).
    #[error(transparent)]
    Sdp(#[from] SdpError),
    /// A number cannot be said with the prompt fragments.
    #[error(transparent)]
    Speech(#[from] speech::SpeechError),
    /// The leg has no negotiated telephone-event payload type.
    #[error("leg {0} has not negotiated telephone-event (RFC 4733)")]
    NoTelephoneEvent(LegId),
    /// An operating-system failure (threads, sockets).
    #[error("{context}: {source}")]
    Io {
        /// What the engine was doing.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The engine has shut down.
    #[error("the media engine has stopped")]
    Stopped,
    /// Legs would be advertised at an unspecified address (SDP `c=0.0.0.0` means
    /// hold): binding to every interface needs an address to advertise.
    #[error("media binds to {0} but has no address to advertise in SDP (0.0.0.0 means hold)")]
    Unadvertised(IpAddr),
}
