//! One media leg's state, sans-IO: everything about an RTP/RTCP port pair except the
//! sockets and the clock.
//!
//! [`LegSession`] owns:
//!
//! - symmetric RTP (latching onto the source of the first packet, for NAT; packets
//!   from anywhere else are dropped until the remote description changes);
//! - RTP/RTCP demultiplexing on the RTP port (RFC 5761 §4) and RTCP reception and
//!   periodic SR/RR (RFC 3550 §6.4);
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
    /// real time, so a peer's jitter buffer sees the true gap.
    fn spurt_base(&self, now: Instant, initial: u32) -> u32 {
        match (self.last_ts, self.last_at) {
            (Some(ts), Some(at)) => {
                let gap = now.saturating_duration_since(at).as_micros() as u64 * 8 / 1000;
                ts.wrapping_add(gap.max(u64::from(FRAME_TS)) as u32)
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
    latched: Option<SocketAddr>,
    latched_rtcp: Option<SocketAddr>,
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
}

impl LegSession {
    /// A new leg with nothing negotiated.
    pub fn new(cfg: LegConfig) -> Self {
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
            latched: None,
            latched_rtcp: None,
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
    /// A changed remote address re-opens latching.
    pub fn set_remote(&mut self, now: Instant, negotiated: Negotiated) {
        let old = self.remote.as_ref().and_then(|r| r.remote_rtp);
        if let (Some(new), Some(old)) = (negotiated.remote_rtp, old) {
            if new != old {
                self.latched = None;
                self.latched_rtcp = None;
            }
        }
        self.remote = Some(negotiated);
        self.armed_at = Some(now);
        self.timed_out = false;
        if self.next_rtcp.is_none() && !self.cfg.rtcp_interval.is_zero() {
            self.next_rtcp = Some(now + self.cfg.rtcp_interval);
        }
    }

    /// Whether received packets should be handed to the bridged leg.
    pub fn set_relay(&mut self, on: bool) {
        self.relay = on;
        if !on {
            self.relays.clear();
        }
    }

    /// Starts a playlist now, replacing any playing one (which gets no event).
    pub fn play(&mut self, now: Instant, id: PlaybackId, cursor: Cursor) {
        self.playback = Some(Playback {
            id,
            cursor,
            start: now,
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
        self.recording = Some(Recording {
            id,
            recorder: StereoRecorder::new(),
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

    /// Closes the leg: playback stops, the recording is finished; nothing is sent
    /// afterwards.
    pub fn close(&mut self) {
        self.playback = None;
        self.dtmf_out = None;
        self.dtmf_queue.clear();
        self.stop_recording();
        self.transmits.clear();
        self.relays.clear();
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
        match self.latched {
            Some(addr) if addr != from => {
                self.stats.foreign += 1;
                return;
            }
            Some(_) => {}
            None => {
                self.latched = Some(from);
                self.events.push_back(LegEvent::Latched(from));
            }
        }
        let h = packet.header;
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
            if let Some(d) = self.dtmf_in.handle(now, h.ts, packet.payload) {
                self.stats.dtmf_in += 1;
                self.events.push_back(LegEvent::Dtmf(d));
            }
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
            if h.pt != PT_CN {
                self.stats.unknown_pt += 1;
            }
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
                if !muxed && self.latched_rtcp.is_none() {
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
                let Some(dpt) = dtmf_pt else {
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
        });
        true
    }

    /// Runs whatever is due at `now`: playback frames, DTMF packets, the inactivity
    /// timeout, recording chunks, RTCP reports.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.run_dtmf(now);
        self.run_playback(now);
        if let Some(d) = self.dtmf_in.handle_timeout(now) {
            self.stats.dtmf_in += 1;
            self.events.push_back(LegEvent::Dtmf(d));
        }
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
                self.send_report(now);
                self.next_rtcp = Some(at + self.cfg.rtcp_interval);
                if self.next_rtcp.is_some_and(|n| n <= now) {
                    self.next_rtcp = Some(now + self.cfg.rtcp_interval);
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
                        self.send_rtp(due, pt, marker, ts, &block, ts.wrapping_add(dur));
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
        Some(since + self.cfg.rtp_timeout)
    }

    fn send_report(&mut self, now: Instant) {
        let Some(remote) = self.remote.as_ref() else {
            return;
        };
        let (socket, dest) = if remote.rtcp_mux {
            (SocketKind::Rtp, self.latched.or(remote.remote_rtp))
        } else {
            (
                SocketKind::Rtcp,
                self.latched_rtcp.or(remote.remote_rtcp).or(self
                    .latched
                    .map(|a| SocketAddr::new(a.ip(), a.port().wrapping_add(1)))),
            )
        };
        let Some(dest) = dest else { return };
        let sender = (self.tx.packets > 0).then(|| {
            let ntp = self
                .cfg
                .wallclock
                .map_or(0, |(at, wall)| ntp_of(wall, at, now));
            let rtp_ts = self.tx.spurt_base(now, self.cfg.initial_ts);
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
            let received = self.rx.seq.received;
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
        let payload = rtcp::build_report(self.tx.ssrc, sender, block, &self.cfg.cname);
        self.stats.rtcp_out += 1;
        self.transmits.push_back(Transmit {
            socket,
            dest,
            payload,
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
