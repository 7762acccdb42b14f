//! The media engine: the driver that gives [`LegSession`]s sockets, a clock and a
//! disk, behind a cheap, cloneable, never-blocking handle ([`MediaEngine`]).
//!
//! # Threads and tasks
//!
//! - **Shards.** Legs are spread over `EngineOptions::shards` OS threads (one per
//!   core by default). A shard is an event loop (`mio`, i.e. epoll) that owns its
//!   legs' sessions and sockets: it reads every datagram itself, the moment it
//!   arrives, and it wakes on an absolute 20 ms grid (`origin + k·20 ms`, never
//!   `sleep(20ms)` in a loop). At each tick it runs every leg whose deadline has
//!   come, in a stable order, so each leg's packets leave at the same offset within
//!   every tick and a long prompt never drifts. One wake-up per tick serves a
//!   thousand legs; there is no timer per leg and no task per socket, and a packet
//!   never changes threads between the wire and its session. Sessions are only ever
//!   touched by their shard: no locks on the media path.
//! - **Commands** from the handle reach a shard over a channel and an `eventfd`
//!   waker (only written when the shard is asleep).
//! - **Writer.** One thread ([`RecordingWriter`]) owns every recording file; shards
//!   hand it half-second chunks, so no disk IO happens on a shard. The chunks waiting
//!   for it are bounded in bytes ([`EngineOptions::recording_queue_bytes`]): when the
//!   disk stalls, the recordings whose chunks do not fit are abandoned
//!   (`RecordingFailed`, what reached the disk is kept) and their calls go on.
//!
//! Relayed packets between legs on different shards cross as a message to the other
//! shard, at most [`RELAY_QUEUE`] in flight to one shard (more are dropped and
//! counted in [`MediaStats::relays_dropped`]); legs on the same shard are relayed
//! inline.
//!
//! Why not tokio tasks: a task per socket costs two thread hand-offs per datagram and
//! tokio's timer has 1 ms granularity; at 50,000 packets a second each way on two
//! cores, the pacing threads must not compete with a pool of reader threads. The
//! handle is still made for tokio callers: its methods never block and events arrive
//! on a tokio channel.
//!
//! # Events
//!
//! [`MediaEvent`]s go out on an unbounded channel: they are few (a handful per call)
//! and the media path must never wait for the call layer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use mio::net::UdpSocket as MioUdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::playback::{Cursor, Playlist};
use super::prompts::PromptLibrary;
use super::recording::{RecordingId, RecordingWriter, WriterCommand, WriterReport};
use super::relay::RelayFrame;
use super::rtp::Ssrc;
use super::sdp::Negotiated;
use super::session::{LegConfig, LegEvent, LegSession, SocketKind, Transmit};
use super::{LegId, MediaError, MediaEvent, PlaybackId};
use crate::config::MediaSettings;

/// The pacing interval of every shard.
pub const TICK: Duration = Duration::from_millis(20);
/// Upper bounds (ms) of the tick-lateness histogram buckets; one more bucket counts
/// everything above the last.
pub const LATENESS_BUCKETS_MS: [f64; LATENESS_BUCKETS - 1] = [0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0];
/// Number of tick-lateness buckets.
pub const LATENESS_BUCKETS: usize = 8;
/// Width of one bucket of the send-time histograms ([`SendTiming`]).
pub const SEND_BUCKET: Duration = Duration::from_micros(50);
/// Buckets of the send-time histograms: 0-20 ms in [`SEND_BUCKET`] steps, and one
/// for everything later.
pub const SEND_BUCKETS: usize = 401;

/// How paced RTP really left, from the engine's own send timestamps (taken right
/// after each `send_to`): histograms in [`SEND_BUCKET`] steps. Playback frames from
/// the second on and DTMF packets are counted; a playback's first frame leaves at
/// once, off the grid on purpose, and relayed audio follows its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendTiming {
    /// Time from the packet's 20 ms grid instant to its send: wake-up delay plus the
    /// leg's place in its shard's burst.
    pub lateness: Vec<u64>,
    /// For consecutive frames of a leg, how much the lateness changed: the deviation
    /// of the interval between the two sends from 20 ms (the jitter a receiver
    /// would see if the network added none).
    pub interdeparture: Vec<u64>,
}

impl Default for SendTiming {
    fn default() -> Self {
        Self {
            lateness: vec![0; SEND_BUCKETS],
            interdeparture: vec![0; SEND_BUCKETS],
        }
    }
}

impl SendTiming {
    fn add(&mut self, other: &SendTiming) {
        for (a, b) in self.lateness.iter_mut().zip(&other.lateness) {
            *a += b;
        }
        for (a, b) in self.interdeparture.iter_mut().zip(&other.interdeparture) {
            *a += b;
        }
    }

    /// `self - earlier`, for a measurement window.
    pub fn since(&self, earlier: &SendTiming) -> SendTiming {
        let sub =
            |a: &[u64], b: &[u64]| a.iter().zip(b).map(|(x, y)| x.saturating_sub(*y)).collect();
        SendTiming {
            lateness: sub(&self.lateness, &earlier.lateness),
            interdeparture: sub(&self.interdeparture, &earlier.interdeparture),
        }
    }

    /// The `p` quantile (0..1) of a histogram, as the upper bound of its bucket;
    /// `None` when it is empty.
    pub fn quantile(hist: &[u64], p: f64) -> Option<Duration> {
        let total: u64 = hist.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in hist.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(SEND_BUCKET * (i as u32 + 1));
            }
        }
        Some(SEND_BUCKET * hist.len() as u32)
    }

    fn record(hist: &mut [u64], d: Duration) {
        let i = ((d.as_micros() / SEND_BUCKET.as_micros()) as usize).min(SEND_BUCKETS - 1);
        if let Some(c) = hist.get_mut(i) {
            *c += 1;
        }
    }
}

/// Relayed frames in flight to one shard before more are dropped: about a third of
/// a second of a thousand bridged legs. A shard that far behind has lost those
/// frames' timing anyway.
pub const RELAY_QUEUE: usize = 16 * 1024;

/// Tuning the configuration file does not carry.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Pacing threads; each owns a share of the legs. Default: one per core, at most 4.
    pub shards: usize,
    /// RTCP report interval (RFC 3550 §6.2 suggests 5 s); zero disables reports.
    pub rtcp_interval: Duration,
    /// Nice value for the shard threads (Linux: -20 highest .. 19 lowest). Pacing is
    /// latency work, so by default shards run at -10, as media servers do (Asterisk
    /// `-p`, FreeSWITCH `-rp`); without the privilege to raise it the engine logs
    /// that and runs at the normal priority. `0` leaves the priority alone.
    pub shard_nice: i32,
    /// The address legs are advertised at (what [`MediaEngine::open_leg`] returns
    /// for the SDP `c=` line) when it differs from the one they bind to: behind 1:1
    /// NAT, or when binding to every interface. `None`: the bind address, which
    /// then must not be unspecified.
    pub advertised_ip: Option<IpAddr>,
    /// Bytes of recorded audio that may wait for the recording writer (a stalled
    /// disk) before recordings are abandoned.
    pub recording_queue_bytes: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            shards: cores.clamp(1, 4),
            rtcp_interval: Duration::from_secs(5),
            shard_nice: -10,
            advertised_ip: None,
            recording_queue_bytes: super::recording::WRITER_QUEUE_BYTES,
        }
    }
}

/// Counts a shard thread out when it ends (dropped on return and on unwind).
struct Running(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A snapshot of the engine's counters, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MediaStats {
    /// Legs open now.
    pub legs_active: u64,
    /// Datagrams received (RTP and RTCP).
    pub packets_in: u64,
    /// Datagrams sent.
    pub packets_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Datagrams the engine failed to send (lost by the engine).
    pub send_errors: u64,
    /// Packets lost by the network on the way to us (RFC 3550 §A.3, all legs).
    pub lost: u64,
    /// Packets that arrived after a newer one.
    pub late: u64,
    /// Datagrams that were not valid RTP/RTCP, or came from an unlatched address.
    pub dropped: u64,
    /// Playback frames skipped because a shard woke too late.
    pub frames_skipped: u64,
    /// Ticks a shard missed entirely (it was busy past the next tick).
    pub ticks_missed: u64,
    /// How late shards ran their ticks (wake-up delay plus the time to reach the
    /// last leg), as counts per bucket of [`LATENESS_BUCKETS_MS`] (the last bucket
    /// counts everything above the last bound). Prometheus-style histogram input.
    pub tick_lateness: [u64; LATENESS_BUCKETS],
    /// Recordings running now.
    pub recordings_active: u64,
    /// Recordings completed and on disk.
    pub recordings_ready: u64,
    /// Recordings ended with no audio (no file).
    pub recordings_discarded: u64,
    /// Recordings that failed to write (including those abandoned because the
    /// writer was too far behind).
    pub recordings_failed: u64,
    /// DTMF keys detected.
    pub dtmf_detected: u64,
    /// Relayed frames dropped because the other leg's shard had [`RELAY_QUEUE`]
    /// frames waiting already (lost by the engine).
    pub relays_dropped: u64,
    /// Recorded audio waiting for the writer now, in bytes.
    pub recording_queue_bytes: u64,
    /// Legs whose sockets a shard could not take (the call layer was told with
    /// [`MediaEvent::LegFailed`]).
    pub legs_failed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    legs_active: AtomicU64,
    packets_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    send_errors: AtomicU64,
    ticks_missed: AtomicU64,
    tick_lateness: [AtomicU64; LATENESS_BUCKETS],
    recordings_active: AtomicU64,
    recordings_ready: AtomicU64,
    recordings_discarded: AtomicU64,
    recordings_failed: AtomicU64,
    dtmf_detected: AtomicU64,
    relays_dropped: AtomicU64,
    legs_failed: AtomicU64,
    /// Per shard, refreshed about once a second.
    per_shard: Mutex<Vec<ShardTotals>>,
    /// Send-time histograms, added to by each shard about once a second.
    send_timing: Mutex<SendTiming>,
}

/// Counters a shard sums over its sessions.
#[derive(Debug, Clone, Copy, Default)]
struct ShardTotals {
    lost: u64,
    late: u64,
    dropped: u64,
    skipped: u64,
}

impl ShardTotals {
    fn add(&mut self, s: &super::session::LegStats) {
        self.lost += s.lost;
        self.late += s.late;
        self.dropped += s.malformed + s.foreign;
        self.skipped += s.frames_skipped;
    }
}

fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn dec(c: &AtomicU64) {
    // Saturating: a counter never wraps below zero even if events are duplicated.
    let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these short locks leaves consistent data
    // (plain inserts/removes), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Even/odd port pairs from the configured range, handed out round-robin so a port
/// just closed is not reused at once (stale packets of the old call would land in
/// the new one).
#[derive(Debug)]
struct PortPool {
    first: u16,
    last_pair: u16,
    next: u16,
    in_use: HashSet<u16>,
}

impl PortPool {
    fn new(min: u16, max: u16) -> Self {
        let first = min.saturating_add(min % 2);
        let last_pair = if max % 2 == 1 {
            max - 1
        } else {
            max.saturating_sub(2)
        };
        Self {
            first,
            last_pair,
            next: first,
            in_use: HashSet::new(),
        }
    }

    fn pairs(&self) -> usize {
        if self.last_pair < self.first {
            0
        } else {
            usize::from((self.last_pair - self.first) / 2) + 1
        }
    }

    fn allocate(&mut self, ip: IpAddr) -> Option<(u16, UdpSocket, UdpSocket)> {
        for _ in 0..self.pairs() {
            let port = self.next;
            self.next = if port >= self.last_pair {
                self.first
            } else {
                port + 2
            };
            if self.in_use.contains(&port) {
                continue;
            }
            let Ok(rtp) = UdpSocket::bind(SocketAddr::new(ip, port)) else {
                continue;
            };
            let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(ip, port + 1)) else {
                continue;
            };
            self.in_use.insert(port);
            return Some((port, rtp, rtcp));
        }
        None
    }

    fn release(&mut self, port: u16) {
        self.in_use.remove(&port);
    }

    fn free(&self) -> usize {
        self.pairs().saturating_sub(self.in_use.len())
    }
}

#[derive(Debug, Clone, Copy)]
struct LegInfo {
    peer: Option<LegId>,
    dtmf: bool,
}

enum ShardMsg {
    Open {
        leg: LegId,
        port: u16,
        rtp: UdpSocket,
        rtcp: UdpSocket,
        cfg: LegConfig,
    },
    SetRemote(LegId, Negotiated),
    Play(LegId, PlaybackId, Cursor),
    StopPlayback(LegId),
    Bridge(LegId, Option<LegId>),
    Relay(LegId, RelayFrame),
    StartRecording(LegId, RecordingId, Arc<Path>),
    StopRecording(LegId, RecordingId, Option<PathBuf>),
    SendDtmf(LegId, char, Duration),
    Close(LegId),
    Shutdown,
}

/// How the handle (and other shards) reach a shard.
#[derive(Clone)]
struct ShardLink {
    tx: Sender<ShardMsg>,
    waker: Arc<Waker>,
    /// Set by the shard just before it blocks in `poll`; only then is the waker
    /// worth a system call.
    asleep: Arc<AtomicBool>,
    /// Relayed frames sent to the shard and not yet taken.
    relays: Arc<std::sync::atomic::AtomicUsize>,
}

impl ShardLink {
    /// Hands a relayed frame to the shard unless [`RELAY_QUEUE`] are waiting
    /// already; `false`: dropped.
    fn relay(&self, leg: LegId, frame: RelayFrame) -> bool {
        let room = self
            .relays
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < RELAY_QUEUE).then_some(n + 1)
            })
            .is_ok();
        if room && self.send(ShardMsg::Relay(leg, frame)).is_err() {
            self.relays.fetch_sub(1, Ordering::AcqRel);
        }
        room
    }

    fn send(&self, msg: ShardMsg) -> Result<(), MediaError> {
        self.tx.send(msg).map_err(|_| MediaError::Stopped)?;
        // SeqCst pairs with the shard's store-then-try_recv: either the shard sees the
        // message before sleeping, or we see it asleep and wake it.
        if self.asleep.load(Ordering::SeqCst) {
            let _ = self.waker.wake();
        }
        Ok(())
    }
}

struct Inner {
    bind_ip: IpAddr,
    advertised_ip: IpAddr,
    settings: MediaSettings,
    options: EngineOptions,
    prompts: Arc<PromptLibrary>,
    ports: Arc<Mutex<PortPool>>,
    shards: Vec<ShardLink>,
    legs: Mutex<HashMap<LegId, LegInfo>>,
    recordings: Mutex<HashMap<RecordingId, LegId>>,
    ids: AtomicU64,
    random: Mutex<u64>,
    counters: Arc<Counters>,
    stopped: AtomicBool,
    /// Shard threads running now (each counts itself out when it ends, panic or not).
    running: Arc<std::sync::atomic::AtomicUsize>,
    /// For the queue's size in the statistics only.
    recording_queue: RecordingWriter,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for s in &self.shards {
            let _ = s.send(ShardMsg::Shutdown);
        }
    }
}

const WAKER: Token = Token(usize::MAX);

/// Sets the calling thread's nice value (on Linux `setpriority(PRIO_PROCESS, tid)`
/// applies to one thread). Best effort.
fn raise_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    let tid = rustix::thread::gettid();
    match rustix::process::setpriority_process(Some(tid), nice) {
        Ok(()) => tracing::debug!(nice, "media shard priority raised"),
        Err(e) => {
            tracing::info!(nice, error = %e, "cannot raise media shard priority; running at normal priority")
        }
    }
}

/// The media engine handle. Cheap to clone; every method returns at once (commands
/// are queued to the shard that owns the leg), so the call layer's driver can call
/// it inline.
#[derive(Clone)]
pub struct MediaEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MediaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaEngine")
            .field("bind_ip", &self.inner.bind_ip)
            .field("advertised_ip", &self.inner.advertised_ip)
            .field("shards", &self.inner.shards.len())
            .finish()
    }
}

impl MediaEngine {
    /// Starts the engine with default [`EngineOptions`]: its shard threads, the
    /// recording writer, and the event channel. Legs bind to `bind_ip` and are
    /// advertised at it too. Needs no runtime; the handle may be used from any thread
    /// or task.
    pub fn start(
        settings: &MediaSettings,
        prompts: Arc<PromptLibrary>,
        bind_ip: IpAddr,
    ) -> Result<(Self, UnboundedReceiver<MediaEvent>), MediaError> {
        Self::start_with(settings, prompts, bind_ip, EngineOptions::default())
    }

    /// Starts the engine with explicit options: legs bind to `bind_ip` (an address
    /// of this host, or unspecified for every interface) and are advertised at
    /// `options.advertised_ip`, else at `bind_ip`. Fails with
    /// [`MediaError::Unadvertised`] when that would be an unspecified address.
    pub fn start_with(
        settings: &MediaSettings,
        prompts: Arc<PromptLibrary>,
        bind_ip: IpAddr,
        options: EngineOptions,
    ) -> Result<(Self, UnboundedReceiver<MediaEvent>), MediaError> {
        let advertised_ip = options.advertised_ip.unwrap_or(bind_ip);
        if advertised_ip.is_unspecified() {
            return Err(MediaError::Unadvertised(bind_ip));
        }
        let (events_tx, events_rx) = unbounded_channel();
        let counters = Arc::new(Counters::default());
        let writer_events = events_tx.clone();
        let writer_counters = counters.clone();
        let (writer, _writer_thread) =
            RecordingWriter::spawn_with(options.recording_queue_bytes, move |report| {
                let event = match report {
                    WriterReport::Ready {
                        id,
                        path,
                        duration,
                        bytes,
                    } => {
                        inc(&writer_counters.recordings_ready, 1);
                        MediaEvent::RecordingReady {
                            id,
                            path,
                            duration,
                            bytes,
                        }
                    }
                    WriterReport::Failed { id, path, error } => {
                        inc(&writer_counters.recordings_failed, 1);
                        MediaEvent::RecordingFailed { id, path, error }
                    }
                };
                let _ = writer_events.send(event);
            })
            .map_err(|source| MediaError::Io {
                context: "starting the recording writer".into(),
                source,
            })?;
        let nshards = options.shards.max(1);
        *lock(&counters.per_shard) = vec![ShardTotals::default(); nshards];
        let ports = Arc::new(Mutex::new(PortPool::new(
            settings.rtp_port_min,
            settings.rtp_port_max,
        )));
        let io = |context: &str| {
            let context = context.to_owned();
            move |source| MediaError::Io { context, source }
        };
        let mut links = Vec::with_capacity(nshards);
        let mut parts = Vec::with_capacity(nshards);
        for _ in 0..nshards {
            let (tx, rx) = std::sync::mpsc::channel();
            let poll = Poll::new().map_err(io("creating a media shard's poller"))?;
            let waker = Arc::new(
                Waker::new(poll.registry(), WAKER).map_err(io("creating a media shard's waker"))?,
            );
            let asleep = Arc::new(AtomicBool::new(false));
            links.push(ShardLink {
                tx,
                waker,
                asleep: asleep.clone(),
                relays: Arc::default(),
            });
            parts.push((rx, poll, asleep));
        }
        let nice = options.shard_nice;
        let origin = Instant::now();
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for (index, (rx, poll, asleep)) in parts.into_iter().enumerate() {
            // Shards tick in turn (shard i at +i·20/n ms), so their bursts of sends
            // do not compete for the cores at the same instant.
            let phase = TICK.mul_f64(index as f64 / nshards as f64);
            let shard = Shard {
                index,
                rx,
                poll,
                asleep,
                peers: links.clone(),
                legs: BTreeMap::new(),
                tokens: HashMap::new(),
                next_token: 0,
                local: LocalCounters::default(),
                events: events_tx.clone(),
                writer: writer.clone(),
                counters: counters.clone(),
                ports: ports.clone(),
                last_now: Instant::now(),
                retired: ShardTotals::default(),
                next_tick: origin + TICK + phase,
            };
            running.fetch_add(1, Ordering::Relaxed);
            let alive = Running(running.clone());
            std::thread::Builder::new()
                .name(format!("media-shard-{index}"))
                .spawn(move || {
                    let _alive = alive;
                    raise_priority(nice);
                    shard.run()
                })
                .map_err(|source| MediaError::Io {
                    context: "starting a media shard".into(),
                    source,
                })?;
        }
        let recording_queue = writer.clone();
        drop(writer);
        let seed = {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos(),
            );
            h.finish()
        };
        let inner = Inner {
            bind_ip,
            advertised_ip,
            settings: settings.clone(),
            options,
            prompts,
            ports,
            shards: links,
            legs: Mutex::new(HashMap::new()),
            recordings: Mutex::new(HashMap::new()),
            ids: AtomicU64::new(1),
            random: Mutex::new(seed),
            counters,
            stopped: AtomicBool::new(false),
            running,
            recording_queue,
        };
        Ok((
            Self {
                inner: Arc::new(inner),
            },
            events_rx,
        ))
    }

    /// The prompt library the engine plays from.
    pub fn prompts(&self) -> &Arc<PromptLibrary> {
        &self.inner.prompts
    }

    fn next_id(&self) -> u64 {
        self.inner.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// SplitMix64 over a seed from the OS: SSRCs and initial sequence numbers and
    /// timestamps need to be unpredictable enough to tell streams apart, not secret.
    fn random(&self) -> u64 {
        let mut state = lock(&self.inner.random);
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn shard_of(&self, leg: LegId) -> &ShardLink {
        let n = self.inner.shards.len() as u64;
        // `shards` is never empty (start_with makes at least one).
        &self.inner.shards[(leg.0 % n) as usize]
    }

    fn send(&self, leg: LegId, msg: ShardMsg) -> Result<(), MediaError> {
        self.shard_of(leg).send(msg)
    }

    fn known(&self, leg: LegId) -> Result<LegInfo, MediaError> {
        lock(&self.inner.legs)
            .get(&leg)
            .copied()
            .ok_or(MediaError::UnknownLeg(leg))
    }

    /// How many more legs the port range can hold now (ports taken by other
    /// programs are found only when binding, so this is an upper bound).
    pub fn free_legs(&self) -> usize {
        lock(&self.inner.ports).free()
    }

    /// Binds an RTP/RTCP port pair (even/odd) from the configured range and opens a
    /// leg on it. Returns the leg and its RTP address as advertised (for the SDP).
    pub fn open_leg(&self) -> Result<(LegId, SocketAddr), MediaError> {
        if self.inner.stopped.load(Ordering::Relaxed) {
            return Err(MediaError::Stopped);
        }
        let (port, rtp, rtcp) =
            lock(&self.inner.ports)
                .allocate(self.inner.bind_ip)
                .ok_or(MediaError::NoPorts {
                    min: self.inner.settings.rtp_port_min,
                    max: self.inner.settings.rtp_port_max,
                })?;
        if let Err(e) = rtp
            .set_nonblocking(true)
            .and_then(|()| rtcp.set_nonblocking(true))
        {
            lock(&self.inner.ports).release(port);
            return Err(MediaError::Io {
                context: "setting RTP sockets non-blocking".into(),
                source: e,
            });
        }
        let leg = LegId(self.next_id());
        let local = SocketAddr::new(self.inner.advertised_ip, port);
        let r = self.random();
        let cfg = LegConfig {
            ssrc: Ssrc(r as u32),
            initial_seq: (r >> 32) as u16,
            initial_ts: (self.random() >> 16) as u32,
            rtp_timeout: self.inner.settings.rtp_timeout,
            rtcp_interval: self.inner.options.rtcp_interval,
            cname: format!("{leg}@dispatchline"),
            wallclock: Some((Instant::now(), SystemTime::now())),
            seed: self.random(),
        };
        lock(&self.inner.legs).insert(
            leg,
            LegInfo {
                peer: None,
                dtmf: false,
            },
        );
        let opened = self.send(
            leg,
            ShardMsg::Open {
                leg,
                port,
                rtp,
                rtcp,
                cfg,
            },
        );
        if let Err(e) = opened {
            lock(&self.inner.legs).remove(&leg);
            lock(&self.inner.ports).release(port);
            return Err(e);
        }
        Ok((leg, local))
    }

    /// Applies offer/answer: where to send, which codec, which telephone-event type,
    /// hold direction.
    pub fn set_remote(&self, leg: LegId, negotiated: Negotiated) -> Result<(), MediaError> {
        {
            let mut legs = lock(&self.inner.legs);
            let info = legs.get_mut(&leg).ok_or(MediaError::UnknownLeg(leg))?;
            info.dtmf = negotiated.dtmf_pt.is_some();
        }
        self.send(leg, ShardMsg::SetRemote(leg, negotiated))
    }

    /// Plays a playlist on the leg, replacing whatever was playing. Every prompt
    /// name is checked now; `PlaybackFinished` follows when it ends by itself. The
    /// first frame leaves on the shard's next tick (within 20 ms). While a playlist
    /// plays on a bridged leg it takes precedence: audio relayed from the peer is
    /// dropped on this leg until it ends (announcements over a call). Frames are
    /// paced even when there is nowhere to send them yet (no `set_remote`, or the
    /// peer holds us), so timing and `PlaybackFinished` do not depend on it.
    pub fn play(&self, leg: LegId, playlist: &Playlist) -> Result<PlaybackId, MediaError> {
        self.known(leg)?;
        let cursor = Cursor::new(playlist, &self.inner.prompts)?;
        let id = PlaybackId(self.next_id());
        self.send(leg, ShardMsg::Play(leg, id, cursor))?;
        Ok(id)
    }

    /// Stops playback on the leg (no `PlaybackFinished`).
    pub fn stop_playback(&self, leg: LegId) -> Result<(), MediaError> {
        self.known(leg)?;
        self.send(leg, ShardMsg::StopPlayback(leg))
    }

    /// Relays media between two legs (both ways), transcoding PCMU↔PCMA when their
    /// codecs differ and re-typing telephone-events. Either leg's previous bridge is
    /// undone.
    pub fn bridge(&self, a: LegId, b: LegId) -> Result<(), MediaError> {
        self.known(a)?;
        self.known(b)?;
        self.unbridge(a)?;
        self.unbridge(b)?;
        {
            let mut legs = lock(&self.inner.legs);
            for (x, y) in [(a, b), (b, a)] {
                if let Some(info) = legs.get_mut(&x) {
                    info.peer = Some(y);
                }
            }
        }
        self.send(a, ShardMsg::Bridge(a, Some(b)))?;
        self.send(b, ShardMsg::Bridge(b, Some(a)))
    }

    /// Stops relaying between `leg` and its bridged peer (if any).
    pub fn unbridge(&self, leg: LegId) -> Result<(), MediaError> {
        let peer = {
            let mut legs = lock(&self.inner.legs);
            let info = legs.get_mut(&leg).ok_or(MediaError::UnknownLeg(leg))?;
            let peer = info.peer.take();
            if let Some(p) = peer {
                if let Some(pi) = legs.get_mut(&p) {
                    pi.peer = None;
                }
            }
            peer
        };
        if let Some(p) = peer {
            self.send(leg, ShardMsg::Bridge(leg, None))?;
            self.send(p, ShardMsg::Bridge(p, None))?;
        }
        Ok(())
    }

    /// Records the caller's leg as a stereo WAV at `path` (LEFT what the caller said,
    /// RIGHT what the caller heard). The file appears with the first audio.
    pub fn start_recording(
        &self,
        caller_leg: LegId,
        path: impl Into<PathBuf>,
    ) -> Result<RecordingId, MediaError> {
        self.known(caller_leg)?;
        let id = RecordingId(self.next_id());
        let path: Arc<Path> = Arc::from(path.into().as_path());
        lock(&self.inner.recordings).insert(id, caller_leg);
        self.send(caller_leg, ShardMsg::StartRecording(caller_leg, id, path))?;
        Ok(id)
    }

    /// Stops a recording: `RecordingReady` (or `RecordingDiscarded`) follows.
    pub fn stop_recording(&self, id: RecordingId) -> Result<(), MediaError> {
        self.stop_recording_as(id, None)
    }

    /// Stops a recording and gives its file a final name other than the one it was
    /// started with (a citywide call whose tenant became known moves into the
    /// tenant's directory; same file system, so the move is atomic). An existing
    /// file is never replaced: a taken name gets a `-1` suffix. `RecordingReady`
    /// carries the name the file ended up with.
    pub fn stop_recording_as(
        &self,
        id: RecordingId,
        final_path: Option<PathBuf>,
    ) -> Result<(), MediaError> {
        let leg = lock(&self.inner.recordings)
            .remove(&id)
            .ok_or(MediaError::UnknownRecording(id))?;
        self.send(leg, ShardMsg::StopRecording(leg, id, final_path))
    }

    /// Whether the leg negotiated telephone-event (RFC 4733) in its last
    /// offer/answer: [`send_dtmf`](Self::send_dtmf) works on it, and events relayed
    /// from a bridged leg reach it. Otherwise DTMF for it needs SIP INFO.
    pub fn telephone_event(&self, leg: LegId) -> bool {
        self.known(leg).is_ok_and(|i| i.dtmf)
    }

    /// Sends a DTMF key as RFC 4733 events (queued behind keys still being sent).
    pub fn send_dtmf(&self, leg: LegId, digit: char, duration: Duration) -> Result<(), MediaError> {
        let info = self.known(leg)?;
        super::dtmf::char_to_event(digit)?;
        if !info.dtmf {
            return Err(MediaError::NoTelephoneEvent(leg));
        }
        self.send(leg, ShardMsg::SendDtmf(leg, digit, duration))
    }

    /// Closes a leg: playback stops, a bridge is undone, a running recording is
    /// finished and reported, the ports go back to the pool.
    pub fn close_leg(&self, leg: LegId) -> Result<(), MediaError> {
        self.unbridge(leg)?;
        lock(&self.inner.legs).remove(&leg);
        lock(&self.inner.recordings).retain(|_, l| *l != leg);
        self.send(leg, ShardMsg::Close(leg))
    }

    /// Closes every leg (recordings are finished and reported) and stops the shards.
    /// Returns at once; `RecordingReady` events follow as files are finalised.
    pub fn shutdown(&self) {
        self.inner.stopped.store(true, Ordering::Relaxed);
        lock(&self.inner.legs).clear();
        lock(&self.inner.recordings).clear();
        for s in &self.inner.shards {
            let _ = s.send(ShardMsg::Shutdown);
        }
    }

    /// Whether every shard thread is running (for `/healthz`).
    pub fn alive(&self) -> bool {
        !self.inner.stopped.load(Ordering::Relaxed)
            && self.inner.running.load(Ordering::Relaxed) == self.inner.shards.len()
    }

    /// The send-time histograms so far (refreshed by each shard about once a
    /// second).
    pub fn send_timing(&self) -> SendTiming {
        lock(&self.inner.counters.send_timing).clone()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> MediaStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let totals = lock(&c.per_shard)
            .iter()
            .fold(ShardTotals::default(), |mut acc, s| {
                acc.lost += s.lost;
                acc.late += s.late;
                acc.dropped += s.dropped;
                acc.skipped += s.skipped;
                acc
            });
        MediaStats {
            legs_active: get(&c.legs_active),
            packets_in: get(&c.packets_in),
            packets_out: get(&c.packets_out),
            bytes_in: get(&c.bytes_in),
            bytes_out: get(&c.bytes_out),
            send_errors: get(&c.send_errors),
            lost: totals.lost,
            late: totals.late,
            dropped: totals.dropped,
            frames_skipped: totals.skipped,
            ticks_missed: get(&c.ticks_missed),
            tick_lateness: std::array::from_fn(|i| get(&c.tick_lateness[i])),
            recordings_active: get(&c.recordings_active),
            recordings_ready: get(&c.recordings_ready),
            recordings_discarded: get(&c.recordings_discarded),
            recordings_failed: get(&c.recordings_failed),
            dtmf_detected: get(&c.dtmf_detected),
            relays_dropped: get(&c.relays_dropped),
            recording_queue_bytes: self.inner.recording_queue.queued_bytes() as u64,
            legs_failed: get(&c.legs_failed),
        }
    }
}

struct Slot {
    session: LegSession,
    port: u16,
    rtp: MioUdpSocket,
    rtcp: MioUdpSocket,
    tokens: [usize; 2],
    peer: Option<LegId>,
    next: Option<Instant>,
    recordings: HashMap<RecordingId, RecordingSlot>,
    /// The last paced packet's grid instant and lateness.
    last_paced: Option<(Instant, Duration)>,
}

/// A running recording as the shard knows it.
struct RecordingSlot {
    path: Arc<Path>,
    /// Set at stop when the file gets another final name.
    rename_to: Option<PathBuf>,
    /// The writer could not take a chunk: the rest is dropped.
    abandoned: bool,
}

/// Counters a shard keeps to itself and adds to the shared ones once per tick, so the
/// hot path never writes a cache line another core reads.
#[derive(Debug, Default)]
struct LocalCounters {
    packets_in: u64,
    bytes_in: u64,
    packets_out: u64,
    bytes_out: u64,
    send_errors: u64,
    /// Published about once a second (not every tick: 800 buckets).
    send_timing: SendTiming,
}

struct Shard {
    index: usize,
    rx: Receiver<ShardMsg>,
    poll: Poll,
    asleep: Arc<AtomicBool>,
    peers: Vec<ShardLink>,
    legs: BTreeMap<LegId, Slot>,
    /// Socket token → (leg, which socket).
    tokens: HashMap<usize, (LegId, SocketKind)>,
    next_token: usize,
    local: LocalCounters,
    events: UnboundedSender<MediaEvent>,
    writer: RecordingWriter,
    counters: Arc<Counters>,
    ports: Arc<Mutex<PortPool>>,
    last_now: Instant,
    retired: ShardTotals,
    /// The next instant on this shard's 20 ms grid.
    next_tick: Instant,
}

/// Datagrams read from one socket before the others (and the tick) get a turn.
const READ_BATCH: usize = 8;
/// The poller sleeps in whole milliseconds (epoll); the last part of a wait is slept
/// precisely so ticks do not wobble by up to a millisecond.
const FINE_SLEEP: Duration = Duration::from_millis(2);

impl Shard {
    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; 2048];
        let mut last_stats = Instant::now();
        'outer: loop {
            // Commands first (they are rare and may open the legs packets are for).
            loop {
                match self.rx.try_recv() {
                    Ok(m) => {
                        if !self.handle(m) {
                            break 'outer;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => break 'outer,
                }
            }
            let now = Instant::now();
            if now >= self.next_tick {
                self.run_tick(now, &mut last_stats);
                continue;
            }
            // Sleep until the tick or a datagram or a command.
            let timeout = if self.legs.is_empty() {
                None
            } else {
                let left = self.next_tick.saturating_duration_since(now);
                if left <= FINE_SLEEP {
                    // Too close for epoll's millisecond timeout: sleep precisely,
                    // then tick; anything that arrived meanwhile is read right after.
                    std::thread::sleep(left);
                    continue;
                }
                Some(left - FINE_SLEEP)
            };
            self.asleep.store(true, Ordering::SeqCst);
            match self.rx.try_recv() {
                Ok(m) => {
                    self.asleep.store(false, Ordering::SeqCst);
                    if !self.handle(m) {
                        break;
                    }
                    continue;
                }
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {}
            }
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    tracing::error!(error = %e, "media shard poll failed");
                }
            }
            self.asleep.store(false, Ordering::SeqCst);
            let mut ready: Vec<usize> = events
                .iter()
                .map(|e| e.token())
                .filter(|t| *t != WAKER)
                .map(|t| t.0)
                .collect();
            // Round-robin over ready sockets, a bounded batch each, so a flooded
            // socket can neither starve the others nor hold up a tick.
            while !ready.is_empty() {
                let mut again = Vec::new();
                for token in ready {
                    if self.read(token, &mut buf) {
                        again.push(token);
                    }
                    // After every socket: a tick waits for one batch at most (an
                    // `Instant::now()` is ~25 ns, a batch tens of microseconds).
                    let now = Instant::now();
                    if now >= self.next_tick {
                        self.run_tick(now, &mut last_stats);
                    }
                }
                let now = Instant::now();
                if now >= self.next_tick {
                    self.run_tick(now, &mut last_stats);
                }
                ready = again;
            }
        }
        self.close_all();
    }

    fn run_tick(&mut self, now: Instant, last_stats: &mut Instant) {
        let scheduled = self.next_tick;
        self.tick(now);
        if !self.legs.is_empty() {
            // From the grid instant to the end of the tick: what the last leg saw.
            let late = Instant::now()
                .saturating_duration_since(scheduled)
                .as_secs_f64()
                * 1000.0;
            let bucket = LATENESS_BUCKETS_MS
                .iter()
                .position(|b| late <= *b)
                .unwrap_or(LATENESS_BUCKETS - 1);
            if let Some(c) = self.counters.tick_lateness.get(bucket) {
                inc(c, 1);
            }
        }
        // Stay on the absolute grid; count ticks slept through.
        self.next_tick += TICK;
        while self.next_tick <= now {
            self.next_tick += TICK;
            if !self.legs.is_empty() {
                inc(&self.counters.ticks_missed, 1);
            }
        }
        self.flush_counters();
        if now.duration_since(*last_stats) >= Duration::from_secs(1) {
            self.publish_stats();
            *last_stats = now;
        }
    }

    /// Reads up to [`READ_BATCH`] datagrams from one socket. Readiness is
    /// edge-triggered, so a socket must be read until it would block: `true` means
    /// the batch ran out first and the socket must be read again.
    fn read(&mut self, token: usize, buf: &mut [u8]) -> bool {
        let Some(&(leg, kind)) = self.tokens.get(&token) else {
            return false;
        };
        for _ in 0..READ_BATCH {
            let Some(slot) = self.legs.get_mut(&leg) else {
                return false;
            };
            let socket = match kind {
                SocketKind::Rtp => &slot.rtp,
                SocketKind::Rtcp => &slot.rtcp,
            };
            match socket.recv_from(buf) {
                Ok((n, from)) => {
                    self.local.packets_in += 1;
                    self.local.bytes_in += n as u64;
                    // Sessions require monotonic time.
                    self.last_now = self.last_now.max(Instant::now());
                    let now = self.last_now;
                    let data = buf.get(..n).unwrap_or_default();
                    match kind {
                        SocketKind::Rtp => slot.session.handle_rtp(now, from, data),
                        SocketKind::Rtcp => slot.session.handle_rtcp(now, from, data),
                    }
                    self.after(leg, now);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // ICMP errors surface here on some systems; the socket stays
                    // usable. Not read again now (an error that persists must not
                    // spin the shard): the next datagram re-arms it.
                    tracing::debug!(%leg, error = %e, "RTP receive error");
                    return false;
                }
            }
        }
        true
    }

    fn now(&mut self, at: Instant) -> Instant {
        // Sessions require monotonic time.
        self.last_now = self.last_now.max(at);
        self.last_now
    }

    fn register(
        &mut self,
        leg: LegId,
        kind: SocketKind,
        socket: &mut MioUdpSocket,
    ) -> Option<usize> {
        let token = self.next_token;
        self.next_token += 1;
        match self
            .poll
            .registry()
            .register(socket, Token(token), Interest::READABLE)
        {
            Ok(()) => {
                self.tokens.insert(token, (leg, kind));
                Some(token)
            }
            Err(e) => {
                tracing::error!(%leg, error = %e, "cannot register an RTP socket");
                None
            }
        }
    }

    /// Handles one message; `false` means stop.
    fn handle(&mut self, msg: ShardMsg) -> bool {
        let now = self.now(Instant::now());
        match msg {
            ShardMsg::Open {
                leg,
                port,
                rtp,
                rtcp,
                cfg,
            } => {
                let mut rtp = MioUdpSocket::from_std(rtp);
                let mut rtcp = MioUdpSocket::from_std(rtcp);
                let t1 = self.register(leg, SocketKind::Rtp, &mut rtp);
                let t2 = self.register(leg, SocketKind::Rtcp, &mut rtcp);
                let (Some(t1), Some(t2)) = (t1, t2) else {
                    // The leg stays unknown to this shard; its commands are ignored,
                    // and the call layer is told so it does not wait for media that
                    // will never flow.
                    for (t, socket) in [(t1, &mut rtp), (t2, &mut rtcp)] {
                        if let Some(t) = t {
                            self.tokens.remove(&t);
                            let _ = self.poll.registry().deregister(socket);
                        }
                    }
                    lock(&self.ports).release(port);
                    inc(&self.counters.legs_failed, 1);
                    let _ = self.events.send(MediaEvent::LegFailed {
                        leg,
                        error: "cannot register the leg's sockets with the shard's poller".into(),
                    });
                    return true;
                };
                inc(&self.counters.legs_active, 1);
                self.legs.insert(
                    leg,
                    Slot {
                        session: LegSession::new(cfg),
                        port,
                        rtp,
                        rtcp,
                        tokens: [t1, t2],
                        peer: None,
                        next: None,
                        recordings: HashMap::new(),
                        last_paced: None,
                    },
                );
            }
            ShardMsg::SetRemote(leg, neg) => self.with(leg, now, |s| s.set_remote(now, neg)),
            ShardMsg::Play(leg, id, cursor) => {
                // Frame 0 goes out at once (a caller hears the greeting the moment the
                // call is answered, not up to a tick later); frame n is due at the
                // previous tick + n·20 ms, so from frame 1 on the leg's 20 ms grid is
                // the shard's, never a hair's breadth off it.
                let start = self.next_tick.checked_sub(TICK).map_or(now, |t| t.min(now));
                self.with(leg, now, |s| {
                    s.play(start, id, cursor);
                    s.handle_timeout(now);
                });
            }
            ShardMsg::StopPlayback(leg) => self.with(leg, now, |s| s.stop_playback()),
            ShardMsg::Bridge(leg, peer) => {
                if let Some(slot) = self.legs.get_mut(&leg) {
                    slot.peer = peer;
                    slot.session.set_relay(peer.is_some());
                }
            }
            ShardMsg::Relay(leg, frame) => {
                if let Some(me) = self.peers.get(self.index) {
                    me.relays.fetch_sub(1, Ordering::AcqRel);
                }
                self.with(leg, now, |s| s.send_relayed(now, frame))
            }
            ShardMsg::StartRecording(leg, id, path) => {
                if let Some(slot) = self.legs.get_mut(&leg) {
                    slot.recordings.insert(
                        id,
                        RecordingSlot {
                            path,
                            rename_to: None,
                            abandoned: false,
                        },
                    );
                    inc(&self.counters.recordings_active, 1);
                }
                self.with(leg, now, |s| s.start_recording(id));
            }
            ShardMsg::StopRecording(leg, id, rename_to) => {
                let current = match self
                    .legs
                    .get_mut(&leg)
                    .and_then(|s| s.recordings.get_mut(&id))
                {
                    Some(r) => {
                        r.rename_to = rename_to;
                        true
                    }
                    None => false,
                };
                if current {
                    self.with(leg, now, |s| s.stop_recording());
                }
            }
            ShardMsg::SendDtmf(leg, key, duration) => {
                let start = now.max(self.next_tick);
                self.with(leg, now, |s| {
                    if let Err(e) = s.send_dtmf(start, key, duration) {
                        tracing::warn!(error = %e, "cannot send DTMF");
                    }
                })
            }
            ShardMsg::Close(leg) => self.close(leg, now),
            ShardMsg::Shutdown => return false,
        }
        true
    }

    fn with(&mut self, leg: LegId, now: Instant, f: impl FnOnce(&mut LegSession)) {
        if let Some(slot) = self.legs.get_mut(&leg) {
            f(&mut slot.session);
            self.after(leg, now);
        }
    }

    fn tick(&mut self, now: Instant) {
        let now = self.now(now);
        let due: Vec<LegId> = self
            .legs
            .iter()
            .filter(|(_, s)| s.next.is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        // First the burst: every due leg's packets out, in leg order, so a leg's
        // place in the burst (its constant offset from the grid) does not depend on
        // how much bookkeeping the legs before it had this tick.
        for leg in &due {
            if let Some(slot) = self.legs.get_mut(leg) {
                slot.session.handle_timeout(now);
                while let Some(t) = slot.session.poll_transmit() {
                    send(slot, &t, &mut self.local);
                }
            }
        }
        // Then events, relays and next deadlines.
        for leg in due {
            self.after(leg, now);
        }
    }

    /// Drains a session's output: sends datagrams, forwards events, routes relays.
    fn after(&mut self, leg: LegId, now: Instant) {
        let Some(slot) = self.legs.get_mut(&leg) else {
            return;
        };
        while let Some(t) = slot.session.poll_transmit() {
            send(slot, &t, &mut self.local);
        }
        while let Some(e) = slot.session.poll_event() {
            forward_event(leg, slot, e, &self.events, &self.writer, &self.counters);
        }
        let peer = slot.peer;
        let mut relays = Vec::new();
        while let Some(f) = slot.session.poll_relay() {
            relays.push(f);
        }
        slot.next = slot.session.poll_timeout();
        let Some(peer) = peer else { return };
        if relays.is_empty() {
            return;
        }
        let shard = (peer.0 % self.peers.len() as u64) as usize;
        if shard == self.index {
            if let Some(p) = self.legs.get_mut(&peer) {
                for f in relays {
                    p.session.send_relayed(now, f);
                }
                // Relayed input never produces relays, so this does not recurse further.
                self.after(peer, now);
            }
        } else if let Some(link) = self.peers.get(shard) {
            for f in relays {
                if !link.relay(peer, f) {
                    inc(&self.counters.relays_dropped, 1);
                }
            }
        }
    }

    fn close(&mut self, leg: LegId, now: Instant) {
        if let Some(slot) = self.legs.get_mut(&leg) {
            slot.session.close();
        }
        self.after(leg, now);
        if let Some(mut slot) = self.legs.remove(&leg) {
            for (t, socket) in slot.tokens.iter().zip([&mut slot.rtp, &mut slot.rtcp]) {
                self.tokens.remove(t);
                let _ = self.poll.registry().deregister(socket);
            }
            // Closed legs' counters live on in the shard's totals.
            self.retired.add(&slot.session.stats());
            let port = slot.port;
            drop(slot);
            lock(&self.ports).release(port);
            dec(&self.counters.legs_active);
        }
    }

    fn close_all(&mut self) {
        let now = self.now(Instant::now());
        let legs: Vec<LegId> = self.legs.keys().copied().collect();
        for leg in legs {
            self.close(leg, now);
        }
        self.flush_counters();
        self.publish_stats();
    }

    fn flush_counters(&mut self) {
        let timing = std::mem::take(&mut self.local.send_timing);
        let l = std::mem::replace(
            &mut self.local,
            LocalCounters {
                send_timing: timing,
                ..LocalCounters::default()
            },
        );
        let c = &self.counters;
        for (counter, n) in [
            (&c.packets_in, l.packets_in),
            (&c.bytes_in, l.bytes_in),
            (&c.packets_out, l.packets_out),
            (&c.bytes_out, l.bytes_out),
            (&c.send_errors, l.send_errors),
        ] {
            if n > 0 {
                inc(counter, n);
            }
        }
    }

    fn publish_stats(&mut self) {
        let timing = std::mem::take(&mut self.local.send_timing);
        lock(&self.counters.send_timing).add(&timing);
        let mut t = self.retired;
        for slot in self.legs.values() {
            t.add(&slot.session.stats());
        }
        if let Some(mine) = lock(&self.counters.per_shard).get_mut(self.index) {
            *mine = t;
        }
    }
}

fn send(slot: &mut Slot, t: &Transmit, counters: &mut LocalCounters) {
    let socket = match t.socket {
        SocketKind::Rtp => &slot.rtp,
        SocketKind::Rtcp => &slot.rtcp,
    };
    match socket.send_to(&t.payload, t.dest) {
        Ok(n) => {
            counters.packets_out += 1;
            counters.bytes_out += n as u64;
            if let Some(due) = t.paced {
                // The engine's own send timestamp, against the packet's grid instant.
                let late = Instant::now().saturating_duration_since(due);
                SendTiming::record(&mut counters.send_timing.lateness, late);
                if let Some((prev_due, prev_late)) = slot.last_paced {
                    if due.saturating_duration_since(prev_due) == TICK {
                        let change = late.abs_diff(prev_late);
                        SendTiming::record(&mut counters.send_timing.interdeparture, change);
                    }
                }
                slot.last_paced = Some((due, late));
            }
        }
        Err(e) => {
            counters.send_errors += 1;
            tracing::debug!(dest = %t.dest, error = %e, "RTP send failed");
        }
    }
}

fn forward_event(
    leg: LegId,
    slot: &mut Slot,
    event: LegEvent,
    events: &UnboundedSender<MediaEvent>,
    writer: &RecordingWriter,
    counters: &Counters,
) {
    let out = match event {
        LegEvent::PlaybackFinished(id) => Some(MediaEvent::PlaybackFinished { leg, id }),
        LegEvent::Dtmf(d) => {
            inc(&counters.dtmf_detected, 1);
            Some(MediaEvent::Dtmf {
                leg,
                digit: d.digit,
                duration: d.duration,
                at: d.at,
            })
        }
        LegEvent::RtpTimeout => Some(MediaEvent::RtpTimeout { leg }),
        LegEvent::Latched(addr) => {
            tracing::debug!(%leg, %addr, "RTP latched");
            None
        }
        LegEvent::RecordingChunk { id, samples } => match slot.recordings.get_mut(&id) {
            Some(r) if !r.abandoned => {
                if writer.try_append(id, r.path.clone(), samples) {
                    None
                } else {
                    // The disk is behind by the whole queue: this recording gives up
                    // (what reached the file stays, with a correct header), the
                    // call goes on, the memory stays bounded.
                    r.abandoned = true;
                    writer.send(WriterCommand::Abandon { id });
                    inc(&counters.recordings_failed, 1);
                    let error = format!(
                        "the recording writer is {} MiB behind (disk stalled?); recording abandoned",
                        writer.queued_bytes() >> 20
                    );
                    tracing::error!(%leg, path = %r.path.display(), %error, "recording failed");
                    Some(MediaEvent::RecordingFailed {
                        id,
                        path: r.path.to_path_buf(),
                        error,
                    })
                }
            }
            _ => None,
        },
        LegEvent::RecordingFinished { id, had_audio, .. } => {
            let r = slot.recordings.remove(&id);
            dec(&counters.recordings_active);
            if had_audio {
                writer.send(WriterCommand::Close {
                    id,
                    rename_to: r.and_then(|r| r.rename_to),
                });
                None
            } else {
                inc(&counters.recordings_discarded, 1);
                Some(MediaEvent::RecordingDiscarded { id })
            }
        }
    };
    if let Some(e) = out {
        let _ = events.send(e);
    }
}
