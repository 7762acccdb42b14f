//! One media leg's state, sans-IO: everything about an RTP/RTCP port pair except the
//! sockets and the clock.
//!
//! [`LegSession`] owns:
//!
//! - symmetric RTP (latching onto the source of the first packet, for NAT; packets
//!   from anywhere else are dropped until the remote description changes, compared
//!   with the last address the peer gave, so a resume from `c=0.0.0.0` hold to a new
//!   address re-opens the latch). Only a negotiated payload type can latch, and the
//!   SDP-negotiated address always wins the latch back, so a stranger racing the
//!   peer's first packet cannot keep the stream (the "RTP bleed" attack,
//!   CVE-2017-14099 in Asterisk). A NAT that rebinds mid-call moves the latch after
//!   [`RELATCH_PACKETS`] consecutive packets from the new address that continue the
//!   latched stream (same SSRC, next sequence numbers), as Asterisk's `strictrtp`
//!   learning does; a stranger who does not know SSRC and sequence cannot;
//! - RTP/RTCP demultiplexing on the RTP port (RFC 5761 §4) and RTCP reception and
//!   periodic SR/RR (RFC 3550 §6.4), a BYE when the leg closes (§6.6), nothing at
//!   all while the peer holds with `c=0.0.0.0` (RFC 3264 §8.4). The RTCP source
//!   latched on the RTCP port must share the RTP latch's IP address;
//! - receive statistics per source (extended sequence numbers, loss, lateness,
//!   duplicates, jitter; RFC 3550 §A.1, §A.3, §A.8);
//! - the outgoing stream: one SSRC, sequence numbers, a timestamp line that keeps
//!   running in real time across talk spurts, the marker bit on each spurt's first
//!   packet (RFC 3551 §4.1);
//! - playback pacing on an absolute grid: frame *n* of a playlist is due at
//!   `start + n·20 ms` and carries timestamp `base + n·160`, so nothing drifts however
//!   late the driver wakes;
//! - RFC 4733 DTMF detection and sending;
//! - the relay mapping for audio and events arriving from the bridged leg;
//! - the leg's recording ([`StereoRecorder`]): LEFT what arrived, RIGHT what was sent;
//! - the RTP inactivity timeout (not while the peer is not supposed to send).
//!
//! # Call order
//!
//! Feed input with [`handle_rtp`](LegSession::handle_rtp),
//! [`handle_rtcp`](LegSession::handle_rtcp), the command methods and
//! [`send_relayed`](LegSession::send_relayed); when the time returned by
//! [`poll_timeout`](LegSession::poll_timeout) has come, call
//! [`handle_timeout`](LegSession::handle_timeout). After each of these, drain
//! [`poll_transmit`](LegSession::poll_transmit), [`poll_event`](LegSession::poll_event)
//! and [`poll_relay`](LegSession::poll_relay). `now` must not go backwards.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::PlaybackId;
use super::dtmf::{DetectedDigit, DtmfDetector, DtmfError, DtmfSender};
use super::g711::{self, Law};
use super::playback::Cursor;
use super::recording::{Channel, RecordingId, StereoChunk, StereoRecorder};
use super::relay::{RelayFrame, RelayPayload, TsMap};
use super::rtcp::{self, ReportBlock, SenderInfo};
use super::rtp::{self, JitterEstimator, RtpHeader, SeqStatus, SeqTracker, Ssrc};
use super::sdp::Negotiated;

/// One packetisation interval.
pub const PTIME: Duration = Duration::from_millis(20);
/// Samples per packet at 8 kHz and 20 ms.
pub const FRAME_TS: u32 = 160;
/// When the driver wakes later than this many frames behind, the frames in between
/// are skipped rather than sent in a burst (the timestamps still advance).
pub const MAX_CATCH_UP: u32 = 5;
/// Comfort noise (RFC 3389): accepted and ignored.
const PT_CN: u8 = 13;
/// Consecutive packets continuing the latched stream from one new address that move
/// the latch there (a NAT rebinding mid-call).
pub const RELATCH_PACKETS: u32 = 5;

/// Per-leg settings, with the randomness the session must not draw itself.
#[derive(Debug, Clone)]
pub struct LegConfig {
    /// Our SSRC (random, RFC 3550 §8.1).
    pub ssrc: Ssrc,
    /// First sequence number (random, §5.1).
    pub initial_seq: u16,
    /// First timestamp (random, §5.1).
    pub initial_ts: u32,
    /// RTP inactivity timeout; zero disables it.
    pub rtp_timeout: Duration,
    /// RTCP report interval; zero disables sending reports.
    pub rtcp_interval: Duration,
    /// SDES CNAME.
    pub cname: String,
    /// A wallclock reading and the `Instant` it was taken at, for Sender Report NTP
    /// timestamps; `None` sends zero.
    pub wallclock: Option<(Instant, SystemTime)>,
    /// Seed for the session's own randomness: the RTCP interval's RFC 3550 §6.2
    /// randomisation and the phase of recording chunks, both there so that many legs
    /// started together do not do their periodic work in the same instant.
    pub seed: u64,
}

/// Which of the leg's two sockets a datagram leaves from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SocketKind {
    /// The RTP port (also RTCP when muxed).
    Rtp,
    /// The RTCP port (RTP + 1).
    Rtcp,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Which socket.
    pub socket: SocketKind,
    /// Where to.
    pub dest: SocketAddr,
    /// The bytes.
    pub payload: Vec<u8>,
    /// For a paced packet (playback from its second frame on, DTMF), the grid
    /// instant it belongs to: a driver may measure how far from it it really left.
    pub paced: Option<Instant>,
}

/// Something the leg wants its owner to know or do.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LegEvent {
    /// A playlist ended by itself.
    PlaybackFinished(PlaybackId),
    /// A DTMF key was detected.
    Dtmf(DetectedDigit),
    /// No RTP for the configured timeout.
    RtpTimeout,
    /// The leg latched onto this address (first packet, or after a remote change).
    Latched(SocketAddr),
    /// Recorded audio for the writer.
    RecordingChunk {
        /// The recording.
        id: RecordingId,
        /// Interleaved stereo samples.
        samples: StereoChunk,
    },
    /// A recording stopped; all its chunks came before this.
    RecordingFinished {
        /// The recording.
        id: RecordingId,
        /// Whether it got any audio (if not, there is no file).
        had_audio: bool,
        /// Its length in frames.
        frames: u64,
    },
}

/// Counters of one leg.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegStats {
    /// RTP packets accepted.
    pub packets_in: u64,
    /// RTP packets sent.
    pub packets_out: u64,
    /// Payload octets sent.
    pub octets_out: u64,
    /// Packets the peer sent that never arrived (all sources so far).
    pub lost: u64,
    /// Packets that arrived after a newer one.
    pub late: u64,
    /// Packets received twice.
    pub duplicates: u64,
    /// Datagrams that were not valid RTP/RTCP.
    pub malformed: u64,
    /// Packets from an address other than the latched one.
    pub foreign: u64,
    /// RTP packets with a payload type we did not negotiate.
    pub unknown_pt: u64,
    /// RTCP compounds received.
    pub rtcp_in: u64,
    /// RTCP compounds sent.
    pub rtcp_out: u64,
    /// Playback frames skipped because the driver woke too late.
    pub frames_skipped: u64,
    /// Relayed packets dropped (playback or DTMF had the leg, or no codec yet).
    pub relay_dropped: u64,
    /// DTMF keys detected.
    pub dtmf_in: u64,
}

#[derive(Debug)]
struct Playback {
    id: PlaybackId,
    cursor: Cursor,
    start: Instant,
    frame: u32,
    base_ts: Option<u32>,
}

impl Playback {
    fn due(&self) -> Instant {
        self.start + PTIME * self.frame
    }
}

#[derive(Debug)]
struct DtmfOut {
    sender: DtmfSender,
    ts: u32,
    start: Instant,
    packet: u32,
    duration_ts: u32,
}

impl DtmfOut {
    fn due(&self) -> Instant {
        self.start + PTIME * self.packet
    }
}

#[derive(Debug)]
struct Recording {
    id: RecordingId,
    recorder: StereoRecorder,
}

#[derive(Debug, Default)]
struct Rx {
    ssrc: Option<Ssrc>,
    seq: SeqTracker,
    jitter: JitterEstimator,
    lost_before: u64,
    expected_prior: u64,
    received_prior: u64,
    last_sr: Option<(u32, Instant)>,
}

#[derive(Debug)]
struct Tx {
    ssrc: Ssrc,
    seq: u16,
    /// The timestamp line: where it was at `last_at`.
    last_ts: Option<u32>,
    last_at: Option<Instant>,
    packets: u64,
    octets: u64,
    relay_map: Option<TsMap>,
}

impl Tx {
    /// The timestamp for a new spurt starting at `now`: the line keeps running in
    /// real time, so a peer's jitter buffer sees the true gap (and a new spurt is
    /// at least a frame after the last packet's timestamp).
    fn spurt_base(&self, now: Instant, initial: u32) -> u32 {
        match (self.last_ts, self.last_at) {
            (Some(ts), Some(at)) => {
                let gap = now.saturating_duration_since(at).as_micros() as u64 * 8 / 1000;
                ts.wrapping_add(gap.max(u64::from(FRAME_TS)) as u32)
            }
            _ => initial,
        }
    }

    /// Where the timestamp line stands at `now`, for Sender Reports (RFC 3550
    /// §6.4.1): the last packet's end plus the real time since, with no frame
    /// minimum, so the SR's NTP/RTP pair is not biased by up to 20 ms.
    fn line_at(&self, now: Instant, initial: u32) -> u32 {
        match (self.last_ts, self.last_at) {
            (Some(ts), Some(at)) => {
                let gap = now.saturating_duration_since(at).as_micros() as u64 * 8 / 1000;
                ts.wrapping_add(gap as u32)
            }
            _ => initial,
        }
    }
}

/// One leg's media state. See the module doc for the call order.
#[derive(Debug)]
pub struct LegSession {
    cfg: LegConfig,
    remote: Option<Negotiated>,
    /// The last RTP address the peer gave (not `c=0.0.0.0`).
    last_remote_rtp: Option<SocketAddr>,
    latched: Option<SocketAddr>,
    latched_rtcp: Option<SocketAddr>,
    /// A new source continuing the latched stream: address, last sequence, count.
    relatch: Option<(SocketAddr, u16, u32)>,
    rx: Rx,
    epoch: Option<Instant>,
    last_rx: Option<Instant>,
    armed_at: Option<Instant>,
    timed_out: bool,
    tx: Tx,
    playback: Option<Playback>,
    dtmf_in: DtmfDetector,
    dtmf_queue: VecDeque<(char, Duration)>,
    dtmf_out: Option<DtmfOut>,
    recording: Option<Recording>,
    relay: bool,
    next_rtcp: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<LegEvent>,
    relays: VecDeque<RelayFrame>,
    pcm: Vec<i16>,
    stats: LegStats,
    closed: bool,
    rng: u64,
}

impl LegSession {
    /// xorshift64*: deterministic given the seed, as sans-IO code must be.
    fn random(&mut self) -> u64 {
        let mut x = self.rng.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The RTCP interval randomised to [0.5, 1.5] × the configured one (§6.2).
    fn rtcp_delay(&mut self) -> Duration {
        let r = (self.random() >> 11) as f64 / (1u64 << 53) as f64;
        self.cfg.rtcp_interval.mul_f64(0.5 + r)
    }

    /// A new leg with nothing negotiated.
    pub fn new(cfg: LegConfig) -> Self {
        let seed = cfg.seed;
        let tx = Tx {
            ssrc: cfg.ssrc,
            seq: cfg.initial_seq,
            last_ts: None,
            last_at: None,
            packets: 0,
            octets: 0,
            relay_map: None,
        };
        Self {
            cfg,
            remote: None,
            last_remote_rtp: None,
            latched: None,
            latched_rtcp: None,
            relatch: None,
            rx: Rx::default(),
            epoch: None,
            last_rx: None,
            armed_at: None,
            timed_out: false,
            tx,
            playback: None,
            dtmf_in: DtmfDetector::default(),
            dtmf_queue: VecDeque::new(),
            dtmf_out: None,
            recording: None,
            relay: false,
            next_rtcp: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            relays: VecDeque::new(),
            pcm: Vec::with_capacity(480),
            stats: LegStats::default(),
            closed: false,
            rng: seed | 1,
        }
    }

    /// The leg's counters.
    pub fn stats(&self) -> LegStats {
        let mut s = self.stats;
        s.lost = self.rx.lost_before + self.rx.seq.lost();
        s.late = self.rx.seq.late;
        s.duplicates = self.rx.seq.duplicates;
        s
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> Ssrc {
        self.cfg.ssrc
    }

    /// The address RTP goes to now (latched, else negotiated), if we may send.
    pub fn destination(&self) -> Option<SocketAddr> {
        let remote = self.remote.as_ref()?;
        if !remote.direction.sends() {
            return None;
        }
        // A peer on RFC 2543 hold (c=0.0.0.0) gets nothing, latched or not.
        remote.remote_rtp?;
        self.latched.or(remote.remote_rtp)
    }

    /// Whether a playlist is playing.
    pub fn is_playing(&self) -> bool {
        self.playback.is_some()
    }

    /// Whether a recording is running.
    pub fn is_recording(&self) -> bool {
        self.recording.is_some()
    }

    /// Applies the result of offer/answer: codec, destination, direction (hold).
    /// A remote address other than the last one the peer gave re-opens latching
    /// (compared across a `c=0.0.0.0` hold, which gives none).
    pub fn set_remote(&mut self, now: Instant, negotiated: Negotiated) {
        if let Some(new) = negotiated.remote_rtp {
            if self.last_remote_rtp.is_some_and(|old| old != new) {
                self.latched = None;
                self.latched_rtcp = None;
                self.relatch = None;
            }
            self.last_remote_rtp = Some(new);
        }
        self.remote = Some(negotiated);
        self.armed_at = Some(now);
        self.timed_out = false;
        if self.next_rtcp.is_none() && !self.cfg.rtcp_interval.is_zero() {
            self.next_rtcp = Some(now + self.rtcp_delay());
        }
    }

    /// Whether received packets should be handed to the bridged leg.
    pub fn set_relay(&mut self, on: bool) {
        self.relay = on;
        if !on {
            self.relays.clear();
        }
    }

    /// Starts a playlist whose first frame is due at `start`, replacing any playing
    /// one (which gets no event). `start` is normally now; a driver that wakes on a
    /// fixed tick passes its next tick, so every leg's grid coincides with its ticks
    /// and no leg sits on the edge between two of them.
    pub fn play(&mut self, start: Instant, id: PlaybackId, cursor: Cursor) {
        self.playback = Some(Playback {
            id,
            cursor,
            start,
            frame: 0,
            base_ts: None,
        });
    }

    /// Stops playback without an event.
    pub fn stop_playback(&mut self) {
        self.playback = None;
    }

    /// Queues a DTMF key to send as RFC 4733 events.
    pub fn send_dtmf(
        &mut self,
        now: Instant,
        key: char,
        duration: Duration,
    ) -> Result<(), DtmfError> {
        super::dtmf::char_to_event(key)?;
        self.dtmf_queue.push_back((key, duration));
        if self.dtmf_out.is_none() {
            self.start_next_dtmf(now);
        }
        Ok(())
    }

    fn start_next_dtmf(&mut self, now: Instant) {
        while let Some((key, duration)) = self.dtmf_queue.pop_front() {
            if let Ok(sender) = DtmfSender::new(key, duration) {
                self.dtmf_out = Some(DtmfOut {
                    sender,
                    ts: self.tx.spurt_base(now, self.cfg.initial_ts),
                    start: now,
                    packet: 0,
                    duration_ts: 0,
                });
                self.tx.relay_map = None;
                return;
            }
        }
    }

    /// Starts recording this leg (LEFT received, RIGHT sent). A running recording is
    /// finished first.
    pub fn start_recording(&mut self, id: RecordingId) {
        self.stop_recording();
        // A chunk phase on the 20 ms grid, different for every recording.
        let frames = super::recording::CHUNK_FRAMES as u64 / 160;
        let phase = (self.random() % frames) as usize * 160;
        self.recording = Some(Recording {
            id,
            recorder: StereoRecorder::with_phase(phase),
        });
    }

    /// Finishes the recording: its remaining audio and a `RecordingFinished` event.
    pub fn stop_recording(&mut self) {
        if let Some(mut r) = self.recording.take() {
            r.recorder.finish();
            while let Some(samples) = r.recorder.poll_chunk() {
                self.events
                    .push_back(LegEvent::RecordingChunk { id: r.id, samples });
            }
            self.events.push_back(LegEvent::RecordingFinished {
                id: r.id,
                had_audio: r.recorder.has_audio(),
                frames: r.recorder.frames_out(),
            });
        }
    }

    /// Closes the leg: playback stops, the recording is finished, an RTCP BYE
    /// (RFC 3550 §6.6) is the last datagram; nothing is sent afterwards.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.playback = None;
        self.dtmf_out = None;
        self.dtmf_queue.clear();
        self.stop_recording();
        self.transmits.clear();
        self.relays.clear();
        if let Some(now) = self.tx.last_at {
            if self.tx.packets > 0 {
                self.send_report(now, true);
            }
        }
        self.closed = true;
    }

    /// A datagram that arrived on the RTP port from `from` at `now`.
    pub fn handle_rtp(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        if self.closed {
            return;
        }
        if rtcp::is_rtcp(datagram) {
            self.handle_rtcp_inner(now, from, datagram, true);
            return;
        }
        let packet = match rtp::parse(datagram) {
            Ok(p) => p,
            Err(e) => {
                self.stats.malformed += 1;
                tracing::trace!(%from, error = %e, "dropping malformed RTP");
                return;
            }
        };
        let h = packet.header;
        // Only media we negotiated may latch or count as the peer's: a stray or
        // hostile datagram with any other payload type is dropped before it can steer
        // where we send (the "RTP bleed" class of attack).
        let negotiated_pt = match self.remote.as_ref() {
            Some(r) => {
                h.pt == r.codec.pt || Some(h.pt) == r.dtmf_pt || matches!(h.pt, 0 | 8 | PT_CN)
            }
            None => matches!(h.pt, 0 | 8 | PT_CN) || (96..=127).contains(&h.pt),
        };
        if !negotiated_pt {
            self.stats.unknown_pt += 1;
            return;
        }
        let sdp_addr = self.remote.as_ref().and_then(|r| r.remote_rtp);
        match self.latched {
            Some(addr) if addr == from => self.relatch = None,
            // The address the peer itself gave in SDP always wins the latch back, so
            // a stranger who raced the peer's first packet cannot keep the stream.
            Some(_) if Some(from) == sdp_addr => self.latch(from),
            Some(_) => {
                if !self.continues_stream(from, h.ssrc, h.seq) {
                    self.stats.foreign += 1;
                    return;
                }
                self.latch(from);
            }
            None => self.latch(from),
        }
        if self.rx.ssrc != Some(h.ssrc) {
            // A new source (the peer restarted its stream): fold the old statistics.
            let old = std::mem::take(&mut self.rx.seq);
            self.rx.lost_before += old.lost();
            self.rx.ssrc = Some(h.ssrc);
            self.rx.jitter = JitterEstimator::default();
            self.rx.expected_prior = 0;
            self.rx.received_prior = 0;
        }
        match self.rx.seq.update(h.seq) {
            SeqStatus::Duplicate | SeqStatus::Jump => return,
            SeqStatus::Restarted(_) => {
                // Report intervals start over with the new numbering.
                self.rx.expected_prior = 0;
                self.rx.received_prior = 0;
            }
            _ => {}
        }
        self.stats.packets_in += 1;
        self.last_rx = Some(now);
        self.timed_out = false;
        let epoch = *self.epoch.get_or_insert(now);
        let arrival = now.saturating_duration_since(epoch).as_micros() as u64 * 8 / 1000;
        self.rx.jitter.update(arrival, h.ts);

        let remote = self.remote.as_ref();
        if remote.and_then(|r| r.dtmf_pt) == Some(h.pt) {
            self.dtmf_in.handle(now, h.ts, packet.payload);
            self.take_digits();
            if self.relay {
                if let Some(block) = packet
                    .payload
                    .get(..4)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                {
                    self.relays.push_back(RelayFrame {
                        source: h.ssrc,
                        ts: h.ts,
                        marker: h.marker,
                        payload: RelayPayload::Event(block),
                    });
                }
            }
            return;
        }
        let law = match remote {
            Some(r) if r.codec.pt == h.pt => Some(r.codec.codec.law()),
            _ => match h.pt {
                0 => Some(Law::Mu),
                8 => Some(Law::A),
                _ => None,
            },
        };
        let Some(law) = law else {
            // Comfort noise (or a dynamic type before negotiation): nothing to play.
            return;
        };
        if let Some(rec) = self.recording.as_mut() {
            self.pcm.clear();
            g711::decode_into(law, packet.payload, &mut self.pcm);
            rec.recorder
                .place(now, Channel::Left, h.ssrc.0, h.ts, h.marker, &self.pcm);
        }
        if self.relay {
            self.relays.push_back(RelayFrame {
                source: h.ssrc,
                ts: h.ts,
                marker: h.marker,
                payload: RelayPayload::Audio {
                    law,
                    data: packet.payload.to_vec(),
                },
            });
        }
    }

    fn latch(&mut self, from: SocketAddr) {
        self.latched = Some(from);
        self.relatch = None;
        if self.latched_rtcp.is_some_and(|r| r.ip() != from.ip()) {
            self.latched_rtcp = None;
        }
        self.events.push_back(LegEvent::Latched(from));
    }

    /// Whether a packet from `from` (not the latched address) is the
    /// [`RELATCH_PACKETS`]th in a row that continues the latched stream: the same
    /// SSRC and each the next sequence number. A NAT that rebinds mid-call moves the
    /// stream like that; a stranger cannot without knowing SSRC and sequence.
    fn continues_stream(&mut self, from: SocketAddr, ssrc: Ssrc, seq: u16) -> bool {
        if self.rx.ssrc != Some(ssrc) {
            self.relatch = None;
            return false;
        }
        let count = match self.relatch {
            Some((addr, last, n)) if addr == from && seq == last.wrapping_add(1) => n + 1,
            _ => {
                // The first one must follow the newest packet of the latched stream.
                let max = self.rx.seq.max_ext().map(|m| m as u16);
                let ahead = max.map(|m| super::rtp::seq_diff(seq, m));
                if !ahead.is_some_and(|d| (1..=50).contains(&d)) {
                    self.relatch = None;
                    return false;
                }
                1
            }
        };
        self.relatch = Some((from, seq, count));
        count >= RELATCH_PACKETS
    }

    /// A datagram that arrived on the RTCP port.
    pub fn handle_rtcp(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        if !self.closed {
            self.handle_rtcp_inner(now, from, datagram, false);
        }
    }

    fn handle_rtcp_inner(&mut self, now: Instant, from: SocketAddr, datagram: &[u8], muxed: bool) {
        match rtcp::parse_compound(datagram) {
            Ok(parts) => {
                self.stats.rtcp_in += 1;
                // Only from the peer's host: the RTP latch's IP, else the SDP's.
                let peer_ip = self
                    .latched
                    .or(self.remote.as_ref().and_then(|r| r.remote_rtp))
                    .map(|a| a.ip());
                if !muxed && self.latched_rtcp.is_none() && peer_ip == Some(from.ip()) {
                    self.latched_rtcp = Some(from);
                }
                for p in parts {
                    if let rtcp::RtcpSummary::SenderReport { .. } = p {
                        // LSR: the middle 32 bits of the NTP timestamp (bytes 10..14).
                        if let Some(b) = datagram
                            .get(10..14)
                            .and_then(|b| <[u8; 4]>::try_from(b).ok())
                        {
                            self.rx.last_sr = Some((u32::from_be_bytes(b), now));
                        }
                    }
                }
            }
            Err(e) => {
                self.stats.malformed += 1;
                tracing::trace!(%from, error = %e, "dropping malformed RTCP");
            }
        }
    }

    /// Audio or an event from the bridged leg, to be sent out of this one.
    pub fn send_relayed(&mut self, now: Instant, frame: RelayFrame) {
        if self.closed {
            return;
        }
        if self.playback.is_some() || self.dtmf_out.is_some() {
            self.stats.relay_dropped += 1;
            return;
        }
        let Some(remote) = self.remote.as_ref() else {
            self.stats.relay_dropped += 1;
            return;
        };
        let (pt, law) = (remote.codec.pt, remote.codec.codec.law());
        let dtmf_pt = remote.dtmf_pt;
        let dtmf_events = remote.dtmf_events;
        let (map, fresh) = match self.tx.relay_map {
            Some(m) if m.source == frame.source => (m, false),
            _ => {
                let m = TsMap {
                    source: frame.source,
                    src_base: frame.ts,
                    out_base: self.tx.spurt_base(now, self.cfg.initial_ts),
                };
                self.tx.relay_map = Some(m);
                (m, true)
            }
        };
        let ts = map.map(frame.ts);
        match frame.payload {
            RelayPayload::Audio {
                law: from,
                mut data,
            } => {
                g711::transcode_in_place(from, law, &mut data);
                // A new source is a new talk spurt in our stream.
                let marker = frame.marker || fresh;
                let samples = data.len() as u32;
                if self.send_rtp(now, pt, marker, ts, &data, ts.wrapping_add(samples)) {
                    self.record_sent(now, ts, marker, law, &data);
                }
            }
            RelayPayload::Event(block) => {
                // Only events this peer listed (RFC 4733 §2.4.1).
                let listed = block[0] < 32 && dtmf_events & (1 << block[0]) != 0;
                let Some(dpt) = dtmf_pt.filter(|_| listed) else {
                    self.stats.relay_dropped += 1;
                    return;
                };
                let duration = u32::from(u16::from_be_bytes([block[2], block[3]]));
                self.send_rtp(
                    now,
                    dpt,
                    frame.marker,
                    ts,
                    &block,
                    ts.wrapping_add(duration),
                );
            }
        }
    }

    fn take_digits(&mut self) {
        while let Some(d) = self.dtmf_in.poll_digit() {
            self.stats.dtmf_in += 1;
            self.events.push_back(LegEvent::Dtmf(d));
        }
    }

    fn record_sent(&mut self, at: Instant, ts: u32, marker: bool, law: Law, data: &[u8]) {
        if let Some(rec) = self.recording.as_mut() {
            self.pcm.clear();
            g711::decode_into(law, data, &mut self.pcm);
            rec.recorder
                .place(at, Channel::Right, self.tx.ssrc.0, ts, marker, &self.pcm);
        }
    }

    /// Builds and queues one RTP packet; `line_ts` is where our timestamp line stands
    /// after it. Returns whether it was queued (there is a destination and we may
    /// send).
    fn send_rtp(
        &mut self,
        now: Instant,
        pt: u8,
        marker: bool,
        ts: u32,
        payload: &[u8],
        line_ts: u32,
    ) -> bool {
        let Some(dest) = self.destination() else {
            return false;
        };
        let header = RtpHeader {
            pt,
            marker,
            seq: self.tx.seq,
            ts,
            ssrc: self.tx.ssrc,
        };
        let mut out = Vec::with_capacity(12 + payload.len());
        if let Err(e) = rtp::build_into(&header, payload, &mut out) {
            tracing::warn!(error = %e, "cannot build RTP packet");
            return false;
        }
        self.tx.seq = self.tx.seq.wrapping_add(1);
        self.tx.last_ts = Some(line_ts);
        self.tx.last_at = Some(now);
        self.tx.packets += 1;
        self.tx.octets += payload.len() as u64;
        self.stats.packets_out += 1;
        self.stats.octets_out += payload.len() as u64;
        self.transmits.push_back(Transmit {
            socket: SocketKind::Rtp,
            dest,
            payload: out,
            paced: None,
        });
        true
    }

    /// Marks the packet just queued as paced on `due`.
    fn mark_paced(&mut self, due: Instant) {
        if let Some(t) = self.transmits.back_mut() {
            t.paced = Some(due);
        }
    }

    /// Runs whatever is due at `now`: playback frames, DTMF packets, the inactivity
    /// timeout, recording chunks, RTCP reports.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.run_dtmf(now);
        self.run_playback(now);
        self.dtmf_in.handle_timeout(now);
        self.take_digits();
        if let Some(deadline) = self.rtp_deadline() {
            if deadline <= now {
                self.timed_out = true;
                self.events.push_back(LegEvent::RtpTimeout);
            }
        }
        if let Some(rec) = self.recording.as_mut() {
            rec.recorder.handle_timeout(now);
            while let Some(samples) = rec.recorder.poll_chunk() {
                self.events.push_back(LegEvent::RecordingChunk {
                    id: rec.id,
                    samples,
                });
            }
        }
        if let Some(at) = self.next_rtcp {
            if at <= now {
                self.send_report(now, false);
                let next = at + self.rtcp_delay();
                self.next_rtcp = Some(next);
                if next <= now {
                    self.next_rtcp = Some(now + self.rtcp_delay());
                }
            }
        }
    }

    fn run_playback(&mut self, now: Instant) {
        let law = self.remote.as_ref().map_or(Law::A, |r| r.codec.codec.law());
        let pt = self.remote.as_ref().map_or(8, |r| r.codec.pt);
        while let Some(pb) = self.playback.as_mut() {
            let due = pb.due();
            if due > now {
                break;
            }
            let behind = (now.duration_since(due).as_micros() / PTIME.as_micros()) as u32;
            if behind > MAX_CATCH_UP {
                // Woken far too late: skip to the current frame instead of bursting.
                pb.cursor.skip(law, behind as usize);
                pb.frame += behind;
                self.stats.frames_skipped += u64::from(behind);
                continue;
            }
            let mut frame = [0u8; 160];
            let has_frame = match pb.cursor.next_frame(law) {
                Some(f) if f.len() == frame.len() => {
                    frame.copy_from_slice(f);
                    true
                }
                _ => false,
            };
            if !has_frame {
                let id = pb.id;
                self.playback = None;
                self.events.push_back(LegEvent::PlaybackFinished(id));
                break;
            }
            let initial = self.cfg.initial_ts;
            let base = *pb
                .base_ts
                .get_or_insert_with(|| self.tx.spurt_base(due, initial));
            let n = pb.frame;
            pb.frame += 1;
            let ts = base.wrapping_add(n.wrapping_mul(FRAME_TS));
            let marker = n == 0;
            if self.dtmf_out.is_some() {
                continue;
            }
            self.tx.relay_map = None;
            if self.send_rtp(due, pt, marker, ts, &frame, ts.wrapping_add(FRAME_TS)) {
                // Frame 0 leaves at once, on purpose off the grid (see `play`).
                if n > 0 {
                    self.mark_paced(due);
                }
                self.record_sent(due, ts, marker, law, &frame);
            }
        }
    }

    fn run_dtmf(&mut self, now: Instant) {
        loop {
            let Some(out) = self.dtmf_out.as_mut() else {
                return;
            };
            let due = out.due();
            if due > now {
                return;
            }
            match out.sender.next_packet() {
                Some((marker, block)) => {
                    out.packet += 1;
                    let ts = out.ts;
                    let dur = u32::from(u16::from_be_bytes([block[2], block[3]]));
                    out.duration_ts = dur;
                    if let Some(pt) = self.remote.as_ref().and_then(|r| r.dtmf_pt) {
                        if self.send_rtp(due, pt, marker, ts, &block, ts.wrapping_add(dur)) {
                            self.mark_paced(due);
                        }
                    }
                }
                None => {
                    self.dtmf_out = None;
                    self.start_next_dtmf(due);
                }
            }
        }
    }

    fn rtp_deadline(&self) -> Option<Instant> {
        if self.cfg.rtp_timeout.is_zero() || self.timed_out {
            return None;
        }
        let remote = self.remote.as_ref()?;
        // Only while the stream is sendrecv: any hold (theirs with sendonly, which
        // many phones follow with silence; ours; inactive; RFC 2543 c=0.0.0.0)
        // suspends it, as a held call may legitimately carry no RTP.
        if remote.direction != super::sdp::Direction::SendRecv || remote.remote_rtp.is_none() {
            return None;
        }
        let since = match (self.last_rx, self.armed_at) {
            (Some(a), Some(b)) => a.max(b),
            (a, b) => a.or(b)?,
        };
        // A timeout too large for the clock never fires (configuration bounds it).
        since.checked_add(self.cfg.rtp_timeout)
    }

    /// Queues a compound SR/RR (and a BYE when the leg `leaving`).
    fn send_report(&mut self, now: Instant, leaving: bool) {
        let Some(remote) = self.remote.as_ref() else {
            return;
        };
        // RFC 3264 §8.4: a peer holding with c=0.0.0.0 gets neither RTP nor RTCP.
        if remote.remote_rtp.is_none() {
            return;
        }
        let (socket, dest) = if remote.rtcp_mux {
            (SocketKind::Rtp, self.latched.or(remote.remote_rtp))
        } else {
            (
                SocketKind::Rtcp,
                self.latched_rtcp.or(remote.remote_rtcp).or(self
                    .latched
                    .and_then(|a| a.port().checked_add(1).map(|p| SocketAddr::new(a.ip(), p)))),
            )
        };
        let Some(dest) = dest else { return };
        let sender = (self.tx.packets > 0).then(|| {
            let ntp = self
                .cfg
                .wallclock
                .map_or(0, |(at, wall)| ntp_of(wall, at, now));
            let rtp_ts = self.tx.line_at(now, self.cfg.initial_ts);
            SenderInfo {
                ntp,
                rtp_ts,
                packets: self.tx.packets as u32,
                octets: self.tx.octets as u32,
            }
        });
        let block = self.rx.ssrc.and_then(|ssrc| {
            let max = self.rx.seq.max_ext()?;
            let expected = self.rx.seq.expected();
            let received = self.rx.seq.received_since_restart();
            let exp_int = expected.saturating_sub(self.rx.expected_prior);
            let rec_int = received.saturating_sub(self.rx.received_prior);
            self.rx.expected_prior = expected;
            self.rx.received_prior = received;
            let lost_int = exp_int.saturating_sub(rec_int);
            let fraction = (lost_int * 256)
                .checked_div(exp_int)
                .map_or(0, |f| f.min(255) as u8);
            let (lsr, dlsr) = match self.rx.last_sr {
                Some((lsr, at)) => {
                    let d = now.saturating_duration_since(at);
                    (lsr, (d.as_micros() as u64 * 65536 / 1_000_000) as u32)
                }
                None => (0, 0),
            };
            Some(ReportBlock {
                ssrc,
                fraction_lost: fraction,
                cumulative_lost: self.rx.seq.lost() as u32,
                // The extended number minus our 2^16 start offset.
                highest_seq: max.saturating_sub(1 << 16) as u32,
                jitter: self.rx.jitter.jitter(),
                last_sr: lsr,
                delay_since_last_sr: dlsr,
            })
        });
        let mut payload = rtcp::build_report(self.tx.ssrc, sender, block, &self.cfg.cname);
        if leaving {
            rtcp::append_bye(&mut payload, self.tx.ssrc);
        }
        self.stats.rtcp_out += 1;
        self.transmits.push_back(Transmit {
            socket,
            dest,
            payload,
            paced: None,
        });
    }

    /// The next time [`handle_timeout`](Self::handle_timeout) must run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        [
            self.playback.as_ref().map(Playback::due),
            self.dtmf_out.as_ref().map(DtmfOut::due),
            self.dtmf_in.poll_timeout(),
            self.rtp_deadline(),
            self.recording
                .as_ref()
                .and_then(|r| r.recorder.poll_timeout()),
            self.next_rtcp,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<LegEvent> {
        self.events.pop_front()
    }

    /// The next frame for the bridged leg.
    pub fn poll_relay(&mut self) -> Option<RelayFrame> {
        self.relays.pop_front()
    }
}

/// NTP timestamp (RFC 3550 §4) of `now`, given that `at` was wallclock `wall`.
fn ntp_of(wall: SystemTime, at: Instant, now: Instant) -> u64 {
    const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
    let t = wall.duration_since(UNIX_EPOCH).unwrap_or_default() + now.saturating_duration_since(at);
    let secs = t.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u64::from(t.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::dtmf::EventPayload;
    use crate::media::playback::Playlist;
    use crate::media::prompts::{Prompt, PromptLibrary};
    use crate::media::sdp::{Codec, Direction, PayloadFormat};
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    fn cfg() -> LegConfig {
        LegConfig {
            ssrc: Ssrc(0x1234),
            initial_seq: 65530,
            initial_ts: u32::MAX - 1000,
            rtp_timeout: Duration::from_secs(60),
            rtcp_interval: Duration::ZERO,
            cname: "test".into(),
            wallclock: None,
            seed: 42,
        }
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    fn negotiated(codec: Codec, direction: Direction) -> Negotiated {
        Negotiated {
            remote_rtp: Some(peer()),
            remote_rtcp: Some("127.0.0.1:40001".parse().unwrap()),
            rtcp_mux: false,
            codec: PayloadFormat::at_static(codec),
            dtmf_pt: Some(101),
            dtmf_events: 0x1_FFFF,
            direction,
            ptime: 20,
        }
    }

    fn packet(pt: u8, marker: bool, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        rtp::build_into(
            &RtpHeader {
                pt,
                marker,
                seq,
                ts,
                ssrc: Ssrc(0xABCD),
            },
            payload,
            &mut out,
        )
        .unwrap();
        out
    }

    fn cursor(seconds: usize, looped: bool) -> Cursor {
        let mut lib = PromptLibrary::empty();
        let samples: Vec<i16> = (0..seconds * 8000)
            .map(|i| ((i % 64) as i16 - 32) * 100)
            .collect();
        lib.insert(Prompt::from_samples("p", &samples));
        let mut pl = Playlist::one("p");
        pl.looped = looped;
        Cursor::new(&pl, &lib).unwrap()
    }

    fn drain(s: &mut LegSession) -> Vec<Transmit> {
        std::iter::from_fn(|| s.poll_transmit()).collect()
    }

    fn events(s: &mut LegSession) -> Vec<LegEvent> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    /// Ten minutes of playback with a driver that wakes up to 15 ms late on every
    /// tick: every frame goes out, none early, with timestamps exactly 160 apart
    /// across the 32-bit wrap and the marker only on the first.
    #[test]
    fn playback_keeps_the_grid_for_ten_minutes() {
        let t0 = Instant::now();
        let mut s = LegSession::new(cfg());
        s.set_remote(t0, negotiated(Codec::Pcma, Direction::SendRecv));
        s.play(t0, PlaybackId(1), cursor(60, true));
        let mut sent: Vec<(Instant, RtpHeader)> = Vec::new();
        let mut lateness = 7u64;
        let frames = 10 * 60 * 50;
        for k in 0..frames {
            lateness = (lateness * 1103515245 + 12345) % 16;
            let now = t0 + PTIME * k + MS * lateness as u32;
            assert!(s.poll_timeout().unwrap() <= now);
            s.handle_timeout(now);
            for t in drain(&mut s) {
                assert_eq!(t.dest, peer());
                let p = rtp::parse(&t.payload).unwrap();
                assert_eq!(p.payload.len(), 160);
                sent.push((now, p.header));
            }
            // Never ahead of the grid, never behind by a frame.
            assert_eq!(sent.len() as u32, k + 1, "after tick {k}");
        }
        let first = sent[0].1;
        assert!(first.marker);
        assert_eq!(first.pt, 8);
        assert_eq!(first.ts, u32::MAX - 1000);
        for (i, w) in sent.windows(2).enumerate() {
            let (a, b) = (w[0].1, w[1].1);
            assert_eq!(b.ts.wrapping_sub(a.ts), FRAME_TS, "frame {i}");
            assert_eq!(b.seq, a.seq.wrapping_add(1));
            assert!(!b.marker);
        }
        assert_eq!(s.stats().frames_skipped, 0);
    }

    #[test]
    fn a_very_late_driver_skips_instead_of_bursting() {
        let t0 = Instant::now();
        let mut s = LegSession::new(cfg());
        s.set_remote(t0, negotiated(Codec::Pcmu, Direction::SendRecv));
        s.play(t0, PlaybackId(1), cursor(10, false));
        s.handle_timeout(t0);
        assert_eq!(drain(&mut s).len(), 1);
        // The driver stalls for a second.
        s.handle_timeout(t0 + Duration::from_secs(1));
        let burst = drain(&mut s);
        assert!(burst.len() <= MAX_CATCH_UP as usize + 1, "{}", burst.len());
        let last = rtp::parse(&burst.last().unwrap().payload).unwrap().header;
        // Timestamps still say where on the grid the frame belongs.
        assert_eq!(last.ts.wrapping_sub(u32::MAX - 1000), 50 * FRAME_TS);
        assert!(s.stats().frames_skipped > 0);
    }

    #[test]
    fn playback_finishes_with_an_event_and_stopping_gives_none() {
        let t0 = Instant::now();
        let mut s = LegSession::new(cfg());
        s.set_remote(t0, negotiated(Codec::Pcma, Direction::SendRecv));
        s.play(t0, PlaybackId(7), cursor(1, false));
        let mut t = t0;
        while let Some(next) = s.poll_timeout() {
            if next > t0 + Duration::from_secs(2) {
                break;
            }
            t = next;
            s.handle_timeout(t);
        }
        assert_eq!(drain(&mut s).len(), 50);
        assert_eq!(
            events(&mut s),
            vec![LegEvent::PlaybackFinished(PlaybackId(7))]
        );
        assert_eq!(t, t0 + PTIME * 50);
        s.play(t, PlaybackId(8), cursor(1, false));
        s.stop_playback();
        s.handle_timeout(t + Duration::from_secs(5));
        assert!(events(&mut s).is_empty());
    }

    #[test]
    fn inactivity_timeout_fires_but_not_on_hold() {
        let t0 = Instant::now();
        let mut s = LegSession::new(cfg());
        assert_eq!(
            s.poll_timeout(),
            None,
            "nothing negotiated, nothing to time out"
        );
        s.set_remote(t0, negotiated(Codec::Pcma, Direction::SendRecv));
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(60)));
        s.handle_rtp(
            t0 + Duration::from_secs(10),
            peer(),
            &packet(8, true, 1, 0, &[0xD5; 160]),
        );
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(70)));
        s.handle_timeout(t0 + Duration::from_secs(69));
        assert!(!events(&mut s).contains(&LegEvent::RtpTimeout));
        s.handle_timeout(t0 + Duration::from_secs(70));
        assert!(events(&mut s).contains(&LegEvent::RtpTimeout));
        // Reported once, not on every later wake-up.
        assert_eq!(s.poll_timeout(), None);

        for hold in [
            Direction::RecvOnly,
            Direction::SendOnly,
            Direction::Inactive,
        ] {
            let mut s = LegSession::new(cfg());
            s.set_remote(t0, negotiated(Codec::Pcma, hold));
            assert_eq!(s.poll_timeout(), None, "{hold:?}");
            s.handle_timeout(t0 + Duration::from_secs(3600));
            assert!(events(&mut s).is_empty());
        }
        // RFC 2543 hold: c=0.0.0.0.
        let mut s = LegSession::new(cfg());
        let mut n = negotiated(Codec::Pcma, Direction::SendRecv);
        n.remote_rtp = None;
        s.set_remote(t0, n);
        assert_eq!(s.poll_timeout(), None);
        // Resume: the timer starts again from the re-INVITE.
        let t1 = t0 + Duration::from_secs(600);
        s.set_remote(t1, negotiated(Codec::Pcma, Direction::SendRecv));
        assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_secs(60)));
    }

    fn from_ssrc(ssrc: u32, seq: u16) -> Vec<u8> {
        let mut out = Vec::new();
        rtp::build_into(
            &RtpHeader {
                pt: 8,
                marker: false,
                seq,
                ts: u32::from(seq) * 160,
                ssrc: Ssrc(ssrc),
            },
            &[0xD5; 160],
            &mut out,
        )
        .unwrap();
        out
    }

    fn rtcp_sent(t: &[Transmit]) -> Vec<&Transmit> {
        t.iter().filter(|x| rtcp::is_rtcp(&x.payload)).collect()
    }

    #[test]
    fn a_resume_from_zero_address_hold_to_a_new_address_reopens_the_latch() {
        let t0 = Instant::now();
        let nat: SocketAddr = "127.0.0.9:5555".parse().unwrap();
        let moved: SocketAddr = "127.0.0.11:7000".parse().unwrap();
        let held = || {
            let mut n = negotiated(Codec::Pcma, Direction::SendRecv);
            n.remote_rtp = None;
            n.remote_rtcp = None;
            n
        };
        let mut s = LegSession::new(cfg());
        s.set_remote(t0, negotiated(Codec::Pcma, Direction::SendRecv));
        s.handle_rtp(t0, nat, &packet(8, true, 1, 0, &[0xD5; 160]));
        assert_eq!(s.destination(), Some(nat));
        s.set_remote(t0 + Duration::from_secs(1), held());
        assert_eq!(s.destination(), None);
        let mut resumed = negotiated(Codec::Pcma, Direction::SendRecv);
        resumed.remote_rtp = Some(moved);
        s.set_remote(t0 + Duration::from_secs(2), resumed);
        // Before the fix the stale NAT latch kept the stream.
        assert_eq!(s.destination(), Some(moved));
        let newer: SocketAddr = "127.0.0.12:7002".parse().unwrap();
        s.handle_rtp(
            t0 + Duration::from_secs(2),
            newer,
            &packet(8, false, 2, 160, &[0xD5; 160]),
        );
        assert_eq!(s.destination(), Some(newer));

        // A resume to the address given before the hold keeps the latch.
        let mut s = LegSession::new(cfg());
        s.set_remote(t0, negotiated(Codec::Pcma, Direction::SendRecv));
        s.handle_rtp(t0, nat, &packet(8, true, 1, 0, &[0xD5; 160]));
        s.set_remote(t0 + Duration::from_secs(1), held());
        s.set_remote(
            t0 + Duration::from_secs(2),
            negotiated(Codec::Pcma, Direction::SendRecv),
        );
        assert_eq!(s.destination(), Some(nat));
    }

    #[test]
    fn no_rtcp_while_the_peer_holds_with_the_zero_address() {
        let t0 = Instant::now();
        let mut s = LegSession::new(LegConfig {
            rtcp_interval: Duration::from_secs(1),
            ..cfg()
        });
        s.set_remote(t0, negotiated(Codec::Pcma, Direction::SendRecv));
        let run = |s: &mut LegSession, from: Duration, to: Duration| {
            let mut sent = Vec::new();
            let mut t = t0 + from;
            while t < t0 + to {
                s.handle_timeout(t);
                sent.extend(drain(s));
                t += PTIME;
            }
            sent
        };
        assert!(!rtcp_sent(&run(&mut s, Duration::ZERO, Duration::from_secs(5))).is_empty());
        let mut held = negotiated(Codec::Pcma, Direction::SendRecv);
        held.remote_rtp = None;
        held.remote_rtcp = None;
        s.set_remote(t0 + Duration::from_secs(5), held);
        let during = run(&mut s, Duration::from_secs(5), Duration::from_secs(15));
        assert!(during.is_empty(), "{} datagrams during hold", during.len());
        s.set_remote(
            t0 + Duration::from_secs(15),
            negotiated(Codec::Pcma, Direction::SendRecv),
        );
        let after = run(&mut s, Duration::from_secs(15), Duration::from_secs(20));
        assert!(!rtcp_sent(&after).is_empty());
        // An inactive (a=inactive) peer still gets RTCP (RFC 3264 §5.1).
        s.set_remote(
            t0 + Duration::from_secs(20),
            negotiated(Codec::Pcma, Direction::Inactive),
        );
        let inactive = run(&mut s, Duration::from_secs(20), Duration::from_secs(25));
        assert!(!rtcp_sent(&inactive).is_empty());
    }

    #[test]
    fn a_nat_rebinding_moves_the_latch_but_a_stranger_cannot() {
        let t0 = Instant::now();
        let a: SocketAddr = "127.0.0.9:5555".parse().unwrap();
        let b: SocketAddr = "127.0.0.9:6000".parse().unwrap();
        let stranger: SocketAddr = "127.0.0.66:6666".parse().unwrap();
        let mut s = LegSession::new(cfg());
        s.set_remote(t0, negotiated(Codec::Pcma, Direction::SendRecv));
        for seq in 1..=10 {
            s.handle_rtp(t0 + PTIME * u32::from(seq), a, &from_ssrc(0xABCD, seq));
        }
        assert_eq!(s.destination(), Some(a));
        // A stranger: another SSRC, or the right SSRC with sequence numbers that do
        // not continue the stream.
        for seq in 11..40 {
            s.handle_rtp(t0, stranger, &from_ssrc(0x5151, seq));
            s.handle_rtp(t0, stranger, &from_ssrc(0xABCD, seq.wrapping_mul(977)));
        }
        assert_eq!(s.destination(), Some(a));
        // The NAT moves the stream to a new port: it follows after RELATCH_PACKETS.
        let foreign = s.stats().foreign;
        for seq in 11..11 + RELATCH_PACKETS as u16 - 1 {
            s.handle_rtp(t0, b, &from_ssrc(0xABCD, seq));
            assert_eq!(s.destination(), Some(a), "seq {seq}");
        }
        s.handle_rtp(t0, b, &from_ssrc(0xABCD, 10 + RELATCH_PACKETS as u16));
        assert_eq!(s.destination(), Some(b));
        assert_eq!(s.stats().foreign, foreign + u64::from(RELATCH_PACKETS) - 1);
        // A packet from the old address in between starts the count over.
        let c: SocketAddr = "127.0.0.9:7000".parse().unwrap();
        let mut seq = 20;
        for _ in 0..RELATCH_PACKETS - 1 {
            seq += 1;
            s.handle_rtp(t0, c, &from_ssrc(0xABCD, seq));
        }
        seq += 1;
        s.handle_rtp(t0, b, &from_ssrc(0xABCD, seq));
        seq += 1;
        s.handle_rtp(t0, c, &from_ssrc(0xABCD, seq));
        assert_eq!(s.destination(), Some(b));
    }

    #[test]
    fn closing_sends_an_rtcp_bye_to_the_rtcp_port() {
        let t0 = Instant::now();
        let mut s = LegSession::new(cfg());
        s.set_remote(t0, negotiated(Codec::Pcma, Direction::SendRecv));
        s.play(t0, PlaybackId(1), cursor(1, false));
        s.handle_timeout(t0);
        drain(&mut s);
        s.close();
        let out = drain(&mut s);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].socket, SocketKind::Rtcp);
        assert_eq!(out[0].dest, "127.0.0.1:40001".parse().unwrap());
        let parts = rtcp::parse_compound(&out[0].payload).unwrap();
        assert_eq!(parts.last(), Some(&rtcp::RtcpSummary::Bye));
        // Nothing after that, and a leg that never sent says nothing.
        s.close();
        assert!(drain(&mut s).is_empty());
        let mut quiet = LegSession::new(cfg());
        quiet.set_remote(t0, negotiated(Codec::Pcma, Direction::SendRecv));
        quiet.close();
        assert!(drain(&mut quiet).is_empty());
    }

    #[test]
    fn rtcp_latches_only_on_the_peers_host_and_the_sr_timestamp_is_unbiased() {
        let t0 = Instant::now();
        let mut s = LegSession::new(LegConfig {
            rtcp_interval: Duration::from_secs(5),
            ..cfg()
        });
        s.set_remote(t0, negotiated(Codec::Pcma, Direction::SendRecv));
        let rr = rtcp::build_report(Ssrc(0xABCD), None, None, "peer");
        s.handle_rtcp(t0, "127.0.0.66:9999".parse().unwrap(), &rr);
        s.handle_rtcp(t0, "127.0.0.1:41001".parse().unwrap(), &rr);
        s.play(t0, PlaybackId(1), cursor(1, false));
        s.handle_timeout(t0);
        let mut last_rtp_ts = 0;
        let mut last_rtp_at = t0;
        let mut t = t0;
        let mut report = None;
        while report.is_none() && t < t0 + Duration::from_secs(10) {
            t = s.poll_timeout().unwrap();
            s.handle_timeout(t);
            for x in drain(&mut s) {
                if rtcp::is_rtcp(&x.payload) {
                    report = Some((t, x));
                } else {
                    last_rtp_ts = rtp::parse(&x.payload).unwrap().header.ts;
                    last_rtp_at = t;
                }
            }
        }
        let (at, report) = report.unwrap();
        assert_eq!(report.dest, "127.0.0.1:41001".parse().unwrap());
        let sr_ts = u32::from_be_bytes(report.payload[16..20].try_into().unwrap());
        // The report's timestamp is the last frame's end plus the real time since.
        let since = (at - last_rtp_at).as_micros() as u32 * 8 / 1000;
        assert_eq!(
            sr_ts,
            last_rtp_ts.wrapping_add(FRAME_TS).wrapping_add(since)
        );
    }

    #[test]
    fn relayed_events_the_peer_did_not_list_are_dropped() {
        let t0 = Instant::now();
        let mut b = LegSession::new(cfg());
        let mut n = negotiated(Codec::Pcma, Direction::SendRecv);
        n.dtmf_events = 0x0FFF; // 0-11: no A-D, no flash
        b.set_remote(t0, n);
        let event = |e: u8| RelayFrame {
            source: Ssrc(1),
            ts: 0,
            marker: true,
            payload: RelayPayload::Event(
                EventPayload {
                    event: e,
                    end: false,
                    volume: 10,
                    duration: 160,
                }
                .to_bytes(),
            ),
        };
        b.send_relayed(t0, event(16));
        b.send_relayed(t0, event(200));
        assert!(drain(&mut b).is_empty());
        assert_eq!(b.stats().relay_dropped, 2);
        b.send_relayed(t0, event(5));
        assert_eq!(drain(&mut b).len(), 1);
    }

    #[test]
    fn symmetric_rtp_latches_on_the_first_source() {
        let t0 = Instant::now();
        let mut s = LegSession::new(cfg());
        s.set_remote(t0, negotiated(Codec::Pcma, Direction::SendRecv));
        let nat: SocketAddr = "127.0.0.9:5555".parse().unwrap();
        let other: SocketAddr = "127.0.0.10:6666".parse().unwrap();
        s.handle_rtp(t0, nat, &packet(8, true, 1, 0, &[0xD5; 160]));
        s.handle_rtp(t0, other, &packet(8, false, 2, 160, &[0xD5; 160]));
        assert_eq!(events(&mut s), vec![LegEvent::Latched(nat)]);
        assert_eq!(s.stats().foreign, 1);
        assert_eq!(s.stats().packets_in, 1);
        assert_eq!(s.destination(), Some(nat));
        // A re-INVITE with the same address keeps the latch; a new address re-opens it.
        s.set_remote(t0, negotiated(Codec::Pcma, Direction::SendRecv));
        assert_eq!(s.destination(), Some(nat));
        // A packet with a payload type we never negotiated cannot latch or count.
        let mut fresh = LegSession::new(cfg());
        fresh.set_remote(t0, negotiated(Codec::Pcma, Direction::SendRecv));
        fresh.handle_rtp(t0, other, &packet(18, true, 1, 0, &[0; 20]));
        assert_eq!(fresh.destination(), Some(peer()));
        assert_eq!(fresh.stats().unknown_pt, 1);
        // A stranger who got in first loses the latch to the negotiated address.
        fresh.handle_rtp(t0, other, &packet(8, true, 1, 0, &[0xD5; 160]));
        assert_eq!(fresh.destination(), Some(other));
        fresh.handle_rtp(t0, peer(), &packet(8, true, 1, 0, &[0xD5; 160]));
        assert_eq!(fresh.destination(), Some(peer()));
        fresh.handle_rtp(t0, other, &packet(8, false, 2, 160, &[0xD5; 160]));
        assert_eq!(fresh.destination(), Some(peer()));
        assert_eq!(fresh.stats().foreign, 1);

        let mut moved = negotiated(Codec::Pcma, Direction::SendRecv);
        moved.remote_rtp = Some("127.0.0.11:7000".parse().unwrap());
        s.set_remote(t0, moved);
        assert_eq!(s.destination(), Some("127.0.0.11:7000".parse().unwrap()));
        s.handle_rtp(t0, other, &packet(8, false, 3, 320, &[0xD5; 160]));
        assert_eq!(s.destination(), Some(other));
    }

    #[test]
    fn dtmf_is_detected_once_and_muxed_rtcp_is_not_media() {
        let t0 = Instant::now();
        let mut s = LegSession::new(cfg());
        s.set_remote(t0, negotiated(Codec::Pcma, Direction::SendRecv));
        for (i, (end, dur)) in [
            (false, 0),
            (false, 320),
            (false, 640),
            (true, 800),
            (true, 800),
            (true, 800),
        ]
        .into_iter()
        .enumerate()
        {
            let block = EventPayload {
                event: 11,
                end,
                volume: 10,
                duration: dur,
            }
            .to_bytes();
            s.handle_rtp(
                t0 + MS * (20 * i as u32),
                peer(),
                &packet(101, i == 0, 100 + i as u16, 5000, &block),
            );
        }
        let rr = rtcp::build_report(Ssrc(0xABCD), None, None, "peer");
        s.handle_rtp(t0, peer(), &rr);
        let digits: Vec<_> = events(&mut s)
            .into_iter()
            .filter_map(|e| match e {
                LegEvent::Dtmf(d) => Some(d),
                _ => None,
            })
            .collect();
        assert_eq!(digits.len(), 1);
        assert_eq!(digits[0].digit, '#');
        assert_eq!(digits[0].duration, Duration::from_millis(100));
        assert_eq!(s.stats().rtcp_in, 1);
        assert_eq!(s.stats().malformed, 0);
    }

    #[test]
    fn relay_transcodes_and_restamps() {
        let t0 = Instant::now();
        let mut a = LegSession::new(cfg());
        a.set_remote(t0, negotiated(Codec::Pcmu, Direction::SendRecv));
        a.set_relay(true);
        let mut b = LegSession::new(LegConfig {
            ssrc: Ssrc(77),
            initial_ts: 5,
            ..cfg()
        });
        b.set_remote(t0, negotiated(Codec::Pcma, Direction::SendRecv));
        let tone: Vec<i16> = (0..160).map(|i| ((i as i16) - 80) * 200).collect();
        let mut ulaw = Vec::new();
        g711::encode_into(Law::Mu, &tone, &mut ulaw);
        for i in 0..3u32 {
            let now = t0 + PTIME * i;
            a.handle_rtp(
                now,
                peer(),
                &packet(0, i == 0, 10 + i as u16, 90_000 + 160 * i, &ulaw),
            );
            while let Some(f) = a.poll_relay() {
                b.send_relayed(now, f);
            }
        }
        let out: Vec<_> = drain(&mut b)
            .iter()
            .map(|t| {
                let p = rtp::parse(&t.payload).unwrap();
                (p.header, p.payload.to_vec())
            })
            .collect();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].0.pt, 8);
        assert!(out[0].0.marker && !out[1].0.marker);
        assert_eq!(out[0].0.ssrc, Ssrc(77));
        assert_eq!(out[0].0.ts, 5);
        assert_eq!(out[2].0.ts, 5 + 320);
        let mut back = Vec::new();
        g711::decode_into(Law::A, &out[1].1, &mut back);
        for (x, y) in back.iter().zip(&tone) {
            assert!((i32::from(*x) - i32::from(*y)).abs() < 600, "{x} vs {y}");
        }
        // A telephone-event crosses with the outgoing leg's payload type.
        let block = EventPayload {
            event: 3,
            end: false,
            volume: 10,
            duration: 160,
        }
        .to_bytes();
        a.handle_rtp(
            t0 + PTIME * 3,
            peer(),
            &packet(101, true, 13, 90_000 + 480, &block),
        );
        let mut nb = negotiated(Codec::Pcma, Direction::SendRecv);
        nb.dtmf_pt = Some(96);
        b.set_remote(t0, nb);
        while let Some(f) = a.poll_relay() {
            b.send_relayed(t0 + PTIME * 3, f);
        }
        let ev = drain(&mut b);
        let p = rtp::parse(&ev[0].payload).unwrap();
        assert_eq!(p.header.pt, 96);
        assert_eq!(p.header.ts, 5 + 480);
        assert_eq!(p.payload, &block);
    }

    #[test]
    fn sent_dtmf_interrupts_playback_and_the_line_keeps_running() {
        let t0 = Instant::now();
        let mut s = LegSession::new(cfg());
        s.set_remote(t0, negotiated(Codec::Pcma, Direction::SendRecv));
        s.play(t0, PlaybackId(1), cursor(5, false));
        s.handle_timeout(t0);
        s.send_dtmf(t0 + MS * 10, '7', Duration::from_millis(100))
            .unwrap();
        let mut t = t0 + MS * 10;
        s.handle_timeout(t);
        for _ in 0..12 {
            t += PTIME;
            s.handle_timeout(t);
        }
        let pkts: Vec<RtpHeader> = drain(&mut s)
            .iter()
            .map(|x| rtp::parse(&x.payload).unwrap().header)
            .collect();
        let events: Vec<&RtpHeader> = pkts.iter().filter(|h| h.pt == 101).collect();
        assert_eq!(events.len(), 7);
        assert!(events[0].marker);
        assert!(events.iter().all(|h| h.ts == events[0].ts));
        let after = pkts.iter().rev().find(|h| h.pt == 8).unwrap();
        assert!(rtp::ts_diff(after.ts, events[0].ts) >= 800);
        assert!(s.send_dtmf(t, 'x', MS).is_err());
    }

    #[test]
    fn recording_survives_loss_and_reordering() {
        let t0 = Instant::now();
        let mut s = LegSession::new(cfg());
        s.set_remote(t0, negotiated(Codec::Pcma, Direction::SendRecv));
        s.start_recording(RecordingId(1));
        // 100 packets, every 7th lost, neighbours swapped every 10.
        let mut order: Vec<u32> = (0..100).filter(|i| i % 7 != 3).collect();
        for k in (0..order.len() - 1).step_by(10) {
            order.swap(k, k + 1);
        }
        for (n, i) in order.iter().enumerate() {
            let level = g711::linear_to_alaw(((*i as i16) + 1) * 100);
            // Sent every 20 ms; a swapped pair arrives together.
            let now = t0 + PTIME * (*i).max(n as u32) + MS * 3;
            s.handle_rtp(
                now,
                peer(),
                &packet(8, *i == 0, 500 + *i as u16, 1000 + 160 * i, &[level; 160]),
            );
            s.handle_timeout(now);
        }
        s.stop_recording();
        let mut samples = Vec::new();
        let mut finished = None;
        for e in events(&mut s) {
            match e {
                LegEvent::RecordingChunk { samples: c, .. } => samples.extend(c),
                LegEvent::RecordingFinished {
                    had_audio, frames, ..
                } => finished = Some((had_audio, frames)),
                _ => {}
            }
        }
        let all: Vec<i16> = samples.chunks_exact(2).map(|f| f[0]).collect();
        assert_eq!(finished, Some((true, all.len() as u64)));
        // The first packet to arrive (packet 1, swapped with 0) anchors the timeline
        // after the pre-roll: packet 0 still lands before it.
        let start = crate::media::recording::PRE_ROLL_FRAMES - 160;
        assert!(all[..start].iter().all(|v| *v == 0));
        let left = &all[start..];
        for i in 0..100usize {
            let Some(frame) = left.get(i * 160..(i + 1) * 160) else {
                break;
            };
            let want = if i % 7 == 3 {
                0
            } else {
                g711::alaw_to_linear(g711::linear_to_alaw((i as i16 + 1) * 100))
            };
            assert!(
                frame.iter().all(|v| *v == want),
                "packet {i}: {:?}",
                &frame[..4]
            );
        }
        assert_eq!(s.stats().lost, 14);
        assert!(s.stats().late >= 9);
    }

    #[test]
    fn a_recording_without_audio_says_so() {
        let t0 = Instant::now();
        let mut s = LegSession::new(cfg());
        s.start_recording(RecordingId(9));
        s.close();
        assert_eq!(
            events(&mut s),
            vec![LegEvent::RecordingFinished {
                id: RecordingId(9),
                had_audio: false,
                frames: 0
            }]
        );
        s.handle_rtp(t0, peer(), &packet(8, false, 1, 1, &[0; 160]));
        assert_eq!(s.poll_timeout(), None);
    }

    proptest! {
        #[test]
        fn peer_input_never_panics(datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..40)) {
            let t0 = Instant::now();
            let mut s = LegSession::new(LegConfig { rtcp_interval: Duration::from_secs(1), ..cfg() });
            s.set_remote(t0, negotiated(Codec::Pcma, Direction::SendRecv));
            s.set_relay(true);
            s.start_recording(RecordingId(1));
            for (i, d) in datagrams.iter().enumerate() {
                let now = t0 + MS * (i as u32 * 37);
                s.handle_rtp(now, peer(), d);
                s.handle_rtcp(now, peer(), d);
                s.handle_timeout(now);
            }
            s.close();
        }
    }
}
