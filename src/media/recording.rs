//! Call recording: a stereo WAV (8 kHz, 16-bit) per recorded leg. LEFT is what the
//! caller said (audio received on the leg), RIGHT is what the caller heard (audio sent
//! to the leg: the bridged party's voice or prompts).
//!
//! Two halves:
//!
//! - [`StereoRecorder`] is sans-IO and lives inside the leg's session. It places each
//!   packet's samples on one timeline by RTP timestamp (RFC 3550 §5.1: timestamps,
//!   not arrival order, say where audio belongs), anchored to arrival time so the two
//!   channels stay aligned with each other; reordered packets land in their place,
//!   gaps stay silent, and a timestamp jump (new source, long silence, clock drift
//!   beyond [`RESYNC`]) re-anchors on arrival time. Audio is held back
//!   [`HOLD_BACK`] for late packets, then handed out in chunks of [`CHUNK_FRAMES`]
//!   (half a second).
//! - [`RecordingWriter`] is the IO half: one OS thread that owns every open file,
//!   creates it lazily on its first chunk (a call with no audio leaves no file) as
//!   `<name>.wav.part` with `create_new` (an existing file is never truncated: a
//!   colliding name gets a `-1`, `-2`, ... suffix), writes each chunk through hound and
//!   hands data and an updated header to the kernel at once. At stop it finalises the
//!   header, `fsync`s, and moves the file to its final name (the one given at start,
//!   or the one [`WriterCommand::Close`] names, e.g. the tenant's directory once a
//!   citywide call's tenant is known), never replacing a file, before reporting it
//!   ready with that path. A companion thread syncs the file system of every file
//!   written to since its last pass ([`SYNC_INTERVAL`]), one `syncfs` per file
//!   system, so a slow disk never holds up writing.
//!
//! # What a crash loses
//!
//! A sample reaches the writer at most [`CHUNK_FRAMES`] + [`HOLD_BACK`] (0.7 s) after
//! it arrived, and the kernel at once: a crash of the process loses at most that
//! (plus the writer's queue, empty unless the disk is behind). A crash of the machine
//! loses at most another [`SYNC_INTERVAL`] (0.25 s): 0.95 s in all, as long as the
//! disk keeps up. A file left unfinished (`.wav.part`) by a crash is repaired by
//! [`recover_unfinished`] at the next start: its header is rewritten from the file's
//! length and it gets its `.wav` name.
//!
//! # Back-pressure
//!
//! Memory for chunks on their way to the writer is bounded ([`WRITER_QUEUE_BYTES`] by
//! default): when the disk stalls and the bound is reached,
//! [`RecordingWriter::try_append`] refuses, the engine abandons that recording
//! (`RecordingFailed`; what reached the disk is kept, with a correct header) and the
//! call goes on. Commands other than appends are tiny and always queued.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::rtp::ts_diff;

/// Identifies one recording for the life of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordingId(pub u64);

/// Sample rate of recordings.
pub const RATE: u32 = 8000;
/// How long audio is held back for late (reordered) packets before it is written.
pub const HOLD_BACK: Duration = Duration::from_millis(200);
/// Audio is handed to the writer in chunks of this many frames (half a second).
pub const CHUNK_FRAMES: usize = RATE as usize / 2;
/// The file starts this long before the first audio arrived, so packets of the
/// first instants that arrive out of order still have a place.
pub const PRE_ROLL: Duration = Duration::from_millis(60);
/// [`PRE_ROLL`] in frames.
pub const PRE_ROLL_FRAMES: usize = 480;
/// A timestamp-derived position further than this from the arrival-derived one
/// re-anchors the channel (new talk spurt after a gap, sender clock drift, SSRC change).
pub const RESYNC: Duration = Duration::from_millis(200);

/// A recording channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Channel {
    /// What the caller said (received on the leg).
    Left,
    /// What the caller heard (sent to the leg).
    Right,
}

fn samples_of(d: Duration) -> i64 {
    (d.as_micros() as i64 * i64::from(RATE)) / 1_000_000
}

#[derive(Debug, Clone, Copy)]
struct Anchor {
    source: u32,
    ts: u32,
    pos: i64,
    /// End of the newest audio placed from this anchor.
    newest: i64,
}

/// Interleaved stereo samples (L, R, L, R, ...) ready for the file.
pub type StereoChunk = Vec<i16>;

/// Places both channels of one recording on a common timeline (sans-IO).
///
/// Call order: [`place`](Self::place) for every packet of audio (either channel),
/// [`handle_timeout`](Self::handle_timeout) when [`poll_timeout`](Self::poll_timeout)
/// says, draining [`poll_chunk`](Self::poll_chunk) after each; [`finish`](Self::finish)
/// at stop, then drain again.
#[derive(Debug)]
pub struct StereoRecorder {
    origin: Option<Instant>,
    /// Timeline position of `pending[0]`.
    committed: i64,
    pending: VecDeque<[i16; 2]>,
    anchors: [Option<Anchor>; 2],
    chunks: VecDeque<StereoChunk>,
    /// Frames in the next chunk (the first is shortened by the phase).
    next_chunk: usize,
    frames_out: u64,
    /// Samples that arrived after their place was already written (dropped).
    pub late_samples: u64,
}

impl Default for StereoRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl StereoRecorder {
    /// A recorder with nothing placed yet; its timeline starts at the first audio.
    pub fn new() -> Self {
        Self::with_phase(0)
    }

    /// A recorder whose chunk boundaries are shifted by `phase` frames, so that legs
    /// whose recordings started together do not all hand out their chunks in the
    /// same instant.
    pub fn with_phase(phase: usize) -> Self {
        Self {
            origin: None,
            committed: -(PRE_ROLL_FRAMES as i64),
            // A chunk, the hold-back and a little: the steady-state high-water mark.
            pending: VecDeque::with_capacity(CHUNK_FRAMES + 3 * PRE_ROLL_FRAMES + 400 * 8),
            anchors: [None, None],
            chunks: VecDeque::new(),
            next_chunk: CHUNK_FRAMES - phase % CHUNK_FRAMES,
            frames_out: 0,
            late_samples: 0,
        }
    }

    /// Whether any audio was placed.
    pub fn has_audio(&self) -> bool {
        self.origin.is_some()
    }

    /// Frames handed out so far (the file's length once finished).
    pub fn frames_out(&self) -> u64 {
        self.frames_out
    }

    /// Places `samples` of `channel`, from media source `source` (an SSRC) with RTP
    /// timestamp `ts` and marker bit `marker`, that arrived (or were sent) at `now`.
    ///
    /// The timestamp decides the place. Arrival time only re-anchors the channel when
    /// the timestamp cannot be right: a different source, a packet claiming to be more
    /// than [`RESYNC`] ahead of real time, or the *newest* packet lagging real time
    /// (a new talk spurt whose timestamps did not run through the silence, or a slow
    /// sender clock). An *older* packet that lags is a reordered or delayed one: it
    /// goes to its place, or is dropped as late once that place is written.
    pub fn place(
        &mut self,
        now: Instant,
        channel: Channel,
        source: u32,
        ts: u32,
        marker: bool,
        samples: &[i16],
    ) {
        let origin = *self.origin.get_or_insert(now);
        let arrival = samples_of(now.saturating_duration_since(origin));
        let idx = match channel {
            Channel::Left => 0,
            Channel::Right => 1,
        };
        let resync = samples_of(RESYNC);
        let hold_back = samples_of(HOLD_BACK);
        let pos = match self.anchors[idx] {
            Some(a) if a.source == source => {
                let p = a.pos + i64::from(ts_diff(ts, a.ts));
                let lag = arrival - p;
                let newest = p >= a.newest;
                let bad = lag < -resync
                    || (newest && marker && lag > resync)
                    || (newest && lag > hold_back);
                if bad { None } else { Some(p) }
            }
            _ => None,
        };
        let pos = pos.unwrap_or_else(|| {
            self.anchors[idx] = Some(Anchor {
                source,
                ts,
                pos: arrival,
                newest: arrival,
            });
            arrival
        });
        if let Some(a) = self.anchors[idx].as_mut() {
            a.newest = a.newest.max(pos + samples.len() as i64);
        }
        let mut start = pos;
        let mut samples = samples;
        if start < self.committed {
            let skip = usize::try_from(self.committed - start)
                .unwrap_or(usize::MAX)
                .min(samples.len());
            self.late_samples += skip as u64;
            samples = samples.get(skip..).unwrap_or_default();
            start = self.committed;
        }
        if samples.is_empty() {
            return;
        }
        let offset = usize::try_from(start - self.committed).unwrap_or(0);
        let end = offset + samples.len();
        if self.pending.len() < end {
            self.pending.resize(end, [0, 0]);
        }
        for (slot, s) in self.pending.range_mut(offset..end).zip(samples) {
            slot[idx] = *s;
        }
    }

    /// When audio is next due to be handed out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let origin = self.origin?;
        let due = self.committed + self.next_chunk as i64;
        Some(
            origin
                + Duration::from_micros((due.max(0) as u64) * 1_000_000 / u64::from(RATE))
                + HOLD_BACK,
        )
    }

    /// Hands out every whole chunk of audio older than the hold-back.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(origin) = self.origin else { return };
        let ready = samples_of(now.saturating_duration_since(origin)) - samples_of(HOLD_BACK);
        while ready - self.committed >= self.next_chunk as i64 {
            self.emit(self.next_chunk);
            self.next_chunk = CHUNK_FRAMES;
        }
    }

    /// Hands out everything placed so far (at stop).
    pub fn finish(&mut self) {
        while !self.pending.is_empty() {
            self.emit(self.pending.len().min(CHUNK_FRAMES));
        }
    }

    fn emit(&mut self, frames: usize) {
        if self.pending.len() < frames {
            self.pending.resize(frames, [0, 0]);
        }
        // Two memcpys (the ring's two halves), not a loop over frames: a shard may
        // emit many legs' chunks in one tick.
        let mut chunk = Vec::with_capacity(frames * 2);
        let (a, b) = self.pending.as_slices();
        let from_a = a.len().min(frames);
        chunk.extend_from_slice(a.get(..from_a).unwrap_or_default().as_flattened());
        chunk.extend_from_slice(b.get(..frames - from_a).unwrap_or_default().as_flattened());
        self.pending.drain(..frames);
        self.committed += frames as i64;
        self.frames_out += frames as u64;
        self.chunks.push_back(chunk);
    }

    /// The next chunk for the writer.
    pub fn poll_chunk(&mut self) -> Option<StereoChunk> {
        self.chunks.pop_front()
    }
}

/// Where a call's recording goes: `root/YYYY/MM/DD/<tenant>/<name>.wav`, by the call's
/// date (the caller decides the time zone: the city's) and tenant. `name` is the file
/// name with or without its `.wav` (a Call-ID); the extension is added once. Each
/// component is reduced to `[A-Za-z0-9._-]` with no leading dot, so a tenant code or a
/// Call-ID can never climb out of `root` or hide a file.
pub fn recording_path(
    root: &Path,
    date: chrono::NaiveDate,
    tenant: &str,
    name: &str,
) -> std::path::PathBuf {
    use chrono::Datelike;
    fn clean(part: &str) -> String {
        let mapped: String = part
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let trimmed = mapped.trim_start_matches('.');
        if trimmed.is_empty() {
            "_".to_owned()
        } else {
            trimmed.chars().take(100).collect()
        }
    }
    root.join(format!("{:04}", date.year()))
        .join(format!("{:02}", date.month()))
        .join(format!("{:02}", date.day()))
        .join(clean(tenant))
        .join(format!(
            "{}.wav",
            clean(name.strip_suffix(".wav").unwrap_or(name))
        ))
}

// ---------------------------------------------------------------------------------
// The IO half.

/// What the writer reports back.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WriterReport {
    /// The file is complete and on disk, under its final name.
    Ready {
        /// The recording.
        id: RecordingId,
        /// Its file.
        path: PathBuf,
        /// Its length.
        duration: Duration,
        /// Its size in bytes.
        bytes: u64,
    },
    /// Writing failed; whatever reached the disk stays there.
    Failed {
        /// The recording.
        id: RecordingId,
        /// Its file.
        path: PathBuf,
        /// Why.
        error: String,
    },
}

/// A command to the writer thread.
#[derive(Debug)]
#[non_exhaustive]
pub enum WriterCommand {
    /// Append interleaved stereo samples, creating the file on the first chunk.
    /// Send it with [`RecordingWriter::try_append`], which bounds the memory queued.
    Append {
        /// The recording.
        id: RecordingId,
        /// Where it goes (its final name; it is written as `<path>.part`).
        path: Arc<Path>,
        /// Interleaved samples.
        samples: StereoChunk,
    },
    /// Finalise the file, move it to `rename_to` when given (else to the name it was
    /// started with), and report it.
    Close {
        /// The recording.
        id: RecordingId,
        /// A final name other than the one given at start.
        rename_to: Option<PathBuf>,
    },
    /// The recording is abandoned (its chunks could not be queued): what reached the
    /// file is kept and finalised at `Close`, and nothing is reported (the engine
    /// already reported the failure).
    Abandon {
        /// The recording.
        id: RecordingId,
    },
    /// Finalise every open file and stop the thread.
    Shutdown,
}

/// How often the file systems of recordings written to are synced to disk
/// (`syncfs`), by the sync thread. With [`CHUNK_FRAMES`] and [`HOLD_BACK`] this
/// bounds what a crash of the machine loses to 0.95 s (module doc).
pub const SYNC_INTERVAL: Duration = Duration::from_millis(250);
/// Bytes of chunks that may wait for the writer before appends are refused: about
/// two seconds of a thousand recorded calls.
pub const WRITER_QUEUE_BYTES: usize = 64 << 20;
/// Samples per call into hound's sample writer: bounds its per-file buffer.
const WRITE_BATCH: usize = 2048;
/// Suffix of a file still being written.
pub const UNFINISHED: &str = ".part";

/// Open files the sync thread looks after: the file and whether it was written to
/// since the last sync.
type SyncSet = Arc<Mutex<HashMap<RecordingId, (Arc<File>, Arc<AtomicBool>)>>>;

struct OpenFile {
    wav: Wav,
    file: Arc<File>,
    dirty: Arc<AtomicBool>,
    /// Where it is being written (`<final>.part`).
    part: PathBuf,
    /// Its final name, as given at start.
    path: Arc<Path>,
    failed: Option<String>,
    abandoned: bool,
}

/// The writer thread's handle: cheap to clone, never blocks the caller.
#[derive(Debug, Clone)]
pub struct RecordingWriter {
    tx: Sender<WriterCommand>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

impl RecordingWriter {
    /// Starts the writer thread (and its sync thread) with the default queue bound
    /// ([`WRITER_QUEUE_BYTES`]); see [`spawn_with`](Self::spawn_with).
    pub fn spawn(
        report: impl FnMut(WriterReport) + Send + 'static,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        Self::spawn_with(WRITER_QUEUE_BYTES, report)
    }

    /// Starts the writer thread (and its sync thread); `report` is called (on the
    /// writer thread) for each finished recording. At most `limit` bytes of chunks
    /// wait for the writer. The writer stops when every handle is dropped or on
    /// `Shutdown`, finalising what is open.
    pub fn spawn_with(
        limit: usize,
        report: impl FnMut(WriterReport) + Send + 'static,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let (tx, rx) = std::sync::mpsc::channel();
        let syncing: SyncSet = Arc::default();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let sync_set = syncing.clone();
        std::thread::Builder::new()
            .name("media-sync".into())
            .spawn(move || run_sync(sync_set, stop_rx))?;
        let queued = Arc::new(AtomicUsize::new(0));
        let writer_queued = queued.clone();
        let handle = std::thread::Builder::new()
            .name("media-recorder".into())
            .spawn(move || {
                run_writer(rx, report, &syncing, &writer_queued);
                drop(stop_tx);
            })?;
        Ok((Self { tx, queued, limit }, handle))
    }

    /// Queues a chunk unless the chunks already waiting reach the bound (the disk is
    /// behind): `false` means it was not queued and the caller must give the
    /// recording up ([`WriterCommand::Abandon`]).
    pub fn try_append(&self, id: RecordingId, path: Arc<Path>, samples: StereoChunk) -> bool {
        let bytes = samples.len() * 2;
        let admitted = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q + bytes <= self.limit).then_some(q + bytes)
            })
            .is_ok();
        if !admitted {
            return false;
        }
        if self
            .tx
            .send(WriterCommand::Append { id, path, samples })
            .is_err()
        {
            self.queued.fetch_sub(bytes, Ordering::AcqRel);
            tracing::warn!("recording writer has stopped; dropping a chunk");
        }
        true
    }

    /// Bytes of chunks waiting for the writer now.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Queues a command other than an append (those go through
    /// [`try_append`](Self::try_append)); a stopped writer drops it (and logs).
    pub fn send(&self, cmd: WriterCommand) {
        if let WriterCommand::Append { id, path, samples } = cmd {
            self.try_append(id, path, samples);
            return;
        }
        if self.tx.send(cmd).is_err() {
            tracing::warn!("recording writer has stopped; dropping a command");
        }
    }
}

/// Syncs, about once per [`SYNC_INTERVAL`], the file system of every open file
/// written to since the last pass: one `syncfs` per file system however many files,
/// on its own thread so a slow disk never holds up writing (and the shards never
/// wait for either).
fn run_sync(files: SyncSet, stop: Receiver<()>) {
    use std::os::unix::fs::MetadataExt;
    loop {
        let pass = Instant::now();
        let dirty: Vec<(RecordingId, Arc<File>)> = files
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|(_, (_, d))| d.swap(false, Ordering::AcqRel))
                    .map(|(k, (f, _))| (*k, f.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let mut devices = std::collections::HashSet::new();
        for (id, f) in dirty {
            let dev = f.metadata().map(|m| m.dev()).unwrap_or(0);
            if !devices.insert(dev) {
                continue;
            }
            if let Err(e) = rustix::fs::syncfs(&*f) {
                tracing::warn!(?id, error = %e, "recording sync failed");
            }
        }
        let wait = SYNC_INTERVAL.saturating_sub(pass.elapsed());
        match stop.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

fn spec() -> hound::WavSpec {
    hound::WavSpec {
        channels: 2,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

/// `x.wav` → `x.wav.part`.
fn part_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(UNFINISHED);
    PathBuf::from(name)
}

/// `dir/x.wav` → `dir/x-n.wav` (n ≥ 1), for a name already taken.
fn numbered(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return path.to_owned();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{stem}-{n}.wav"))
}

/// Names tried before a create or a move gives up.
const NAME_TRIES: u32 = 100;

type Wav = hound::WavWriter<BufWriter<File>>;

/// Creates `<path>.part` (or a numbered name's) for a new recording: its writer,
/// a handle for syncing, and the name it is being written under.
fn open(path: &Path) -> Result<(Wav, Arc<File>, PathBuf), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // Never truncate: a name already taken (by a finished recording, or one still
    // being written) gets a suffix.
    let mut last = None;
    for n in 0..NAME_TRIES {
        let name = numbered(path, n);
        if name.exists() {
            continue;
        }
        let part = part_of(&name);
        match std::fs::OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .open(&part)
        {
            Ok(file) => {
                let sync_handle = file.try_clone().map_err(|e| e.to_string())?;
                let wav = hound::WavWriter::new(BufWriter::with_capacity(8 * 1024, file), spec())
                    .map_err(|e| e.to_string())?;
                return Ok((wav, Arc::new(sync_handle), part));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(format!("cannot create: {e}")),
        }
    }
    Err(format!(
        "cannot create: {NAME_TRIES} names taken{}",
        last.map(|e| format!(" ({e})")).unwrap_or_default()
    ))
}

/// Moves `from` to `to`, or to `to` with a `-n` suffix when that name is taken;
/// never replaces a file. Same file system: a hard link then an unlink, each atomic.
fn move_no_replace(from: &Path, to: &Path) -> Result<PathBuf, String> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    for n in 0..NAME_TRIES {
        let target = numbered(to, n);
        match std::fs::hard_link(from, &target) {
            Ok(()) => {
                std::fs::remove_file(from)
                    .map_err(|e| format!("cannot remove {}: {e}", from.display()))?;
                return Ok(target);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot move to {}: {e}", target.display())),
        }
    }
    Err(format!(
        "cannot move to {}: {NAME_TRIES} names taken",
        to.display()
    ))
}

/// Appends a chunk and hands data and an updated header to the kernel.
fn write_chunk(f: &mut OpenFile, samples: &[i16]) -> Result<(), String> {
    for batch in samples.chunks(WRITE_BATCH) {
        let mut w = f.wav.get_i16_writer(batch.len() as u32);
        for s in batch {
            w.write_sample(*s);
        }
        w.flush().map_err(|e| e.to_string())?;
    }
    f.wav.flush().map_err(|e| e.to_string())?;
    f.dirty.store(true, Ordering::Release);
    Ok(())
}

fn run_writer(
    rx: Receiver<WriterCommand>,
    mut report: impl FnMut(WriterReport),
    syncing: &SyncSet,
    queued: &AtomicUsize,
) {
    let mut files: HashMap<RecordingId, OpenFile> = HashMap::new();
    // Recordings whose file could not be created: reported once, chunks dropped.
    let mut failed: std::collections::HashSet<RecordingId> = Default::default();
    // Abandoned before their file was created: nothing to keep or report.
    let mut abandoned: std::collections::HashSet<RecordingId> = Default::default();
    let register = |id: RecordingId, file: Option<(Arc<File>, Arc<AtomicBool>)>| {
        if let Ok(mut set) = syncing.lock() {
            match file {
                Some(f) => set.insert(id, f),
                None => set.remove(&id),
            };
        }
    };
    loop {
        let cmd = rx.recv().unwrap_or(WriterCommand::Shutdown);
        match cmd {
            WriterCommand::Append { id, path, samples } => {
                let bytes = samples.len() * 2;
                if !failed.contains(&id) && !abandoned.contains(&id) {
                    append(
                        id,
                        &path,
                        &samples,
                        &mut files,
                        &mut failed,
                        &mut report,
                        &register,
                    );
                }
                // The memory is free once the chunk is written (or dropped).
                drop(samples);
                queued.fetch_sub(bytes, Ordering::AcqRel);
            }
            WriterCommand::Abandon { id } => match files.get_mut(&id) {
                Some(f) => f.abandoned = true,
                None => {
                    abandoned.insert(id);
                }
            },
            WriterCommand::Close { id, rename_to } => {
                failed.remove(&id);
                abandoned.remove(&id);
                register(id, None);
                if let Some(f) = files.remove(&id) {
                    let quiet = f.abandoned;
                    let outcome = close(id, f, rename_to);
                    if !quiet {
                        report(outcome);
                    }
                }
            }
            WriterCommand::Shutdown => {
                for (id, f) in files.drain() {
                    register(id, None);
                    let quiet = f.abandoned;
                    let outcome = close(id, f, None);
                    if !quiet {
                        report(outcome);
                    }
                }
                return;
            }
        }
    }
}

fn append(
    id: RecordingId,
    path: &Arc<Path>,
    samples: &[i16],
    files: &mut HashMap<RecordingId, OpenFile>,
    failed: &mut std::collections::HashSet<RecordingId>,
    report: &mut impl FnMut(WriterReport),
    register: &impl Fn(RecordingId, Option<(Arc<File>, Arc<AtomicBool>)>),
) {
    let entry = match files.entry(id) {
        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => match open(path) {
            Ok((wav, file, part)) => {
                let dirty = Arc::new(AtomicBool::new(true));
                register(id, Some((file.clone(), dirty.clone())));
                v.insert(OpenFile {
                    wav,
                    file,
                    dirty,
                    part,
                    path: path.clone(),
                    failed: None,
                    abandoned: false,
                })
            }
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "recording cannot be created");
                report(WriterReport::Failed {
                    id,
                    path: path.to_path_buf(),
                    error,
                });
                failed.insert(id);
                return;
            }
        },
    };
    if entry.failed.is_none() {
        if let Err(e) = write_chunk(entry, samples) {
            tracing::error!(path = %entry.part.display(), error = %e, "recording write failed");
            entry.failed = Some(e);
        }
    }
}

/// Finalises the header, syncs data and metadata to disk and moves the file to its
/// final name (the one given at start unless `rename_to` says otherwise; with a
/// suffix if it is taken). A failed recording keeps what reached the disk, under its
/// final name too.
fn close(id: RecordingId, mut f: OpenFile, rename_to: Option<PathBuf>) -> WriterReport {
    let target = rename_to.unwrap_or_else(|| f.path.to_path_buf());
    let frames = f.wav.duration();
    let written = f
        .wav
        .finalize()
        .map_err(|e| e.to_string())
        .and_then(|()| f.file.sync_all().map_err(|e| e.to_string()));
    let moved = move_no_replace(&f.part, &target);
    let path = moved.clone().unwrap_or_else(|_| f.part.clone());
    if let Some(dir) = path.parent() {
        // The new directory entry must survive a crash as well as the data.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    if f.abandoned {
        tracing::warn!(path = %path.display(), "abandoned recording closed with what reached the disk");
    }
    if let Some(error) = f.failed.take() {
        return WriterReport::Failed { id, path, error };
    }
    let result = written.and(moved.map(|_| ())).and_then(|()| {
        f.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(bytes) => WriterReport::Ready {
            id,
            path,
            duration: Duration::from_micros(u64::from(frames) * 1_000_000 / u64::from(RATE)),
            bytes,
        },
        Err(error) => WriterReport::Failed { id, path, error },
    }
}

/// Repairs recordings a crash left unfinished under `root`: every `*.wav.part` last
/// modified before `started` (so files of recordings running now are never
/// touched) gets its RIFF and data sizes rewritten from the file's length (cut to
/// whole frames) and is moved to its `.wav` name (with a suffix if taken). Returns
/// the repaired files; a file that cannot be repaired is logged and left as it is.
/// Meant to run once at start, on its own thread if the tree is large.
pub fn recover_unfinished(root: &Path, started: SystemTime) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let is_part = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".wav.part"));
            let old = meta.modified().is_ok_and(|m| m < started);
            if !is_part || !old {
                continue;
            }
            match repair_header(&path) {
                Ok(()) => {
                    let target = path.with_extension("");
                    match move_no_replace(&path, &target) {
                        Ok(done) => {
                            tracing::warn!(path = %done.display(), "unfinished recording repaired after a crash");
                            out.push(done);
                        }
                        Err(e) => {
                            tracing::error!(path = %path.display(), error = %e, "cannot name a repaired recording")
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "unfinished recording cannot be repaired")
                }
            }
        }
    }
    out
}

/// Rewrites the RIFF and `data` sizes of a WAV file from its length.
fn repair_header(path: &Path) -> Result<(), String> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    let mut head = vec![0u8; 4096.min(len as usize)];
    f.read_exact(&mut head).map_err(|e| e.to_string())?;
    if head.get(0..4) != Some(b"RIFF") || head.get(8..12) != Some(b"WAVE") {
        return Err("not a RIFF WAVE file".into());
    }
    let u32_at = |b: &[u8], i: usize| {
        b.get(i..i + 4)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .map(u32::from_le_bytes)
    };
    let mut pos = 12usize;
    let mut block_align = 4u64;
    loop {
        let id = head
            .get(pos..pos + 4)
            .ok_or("no data chunk in the header")?;
        let size = u32_at(&head, pos + 4).ok_or("truncated chunk header")?;
        if id == b"fmt " {
            if let Some(b) = head.get(pos + 20..pos + 22) {
                block_align = u64::from(u16::from_le_bytes([b[0], b[1]])).max(1);
            }
        }
        if id == b"data" {
            let data_start = (pos + 8) as u64;
            let data = len.saturating_sub(data_start) / block_align * block_align;
            let data32 = u32::try_from(data).map_err(|_| "longer than a WAV can be")?;
            let riff =
                u32::try_from(data_start + data - 8).map_err(|_| "longer than a WAV can be")?;
            f.seek(SeekFrom::Start(4)).map_err(|e| e.to_string())?;
            f.write_all(&riff.to_le_bytes())
                .map_err(|e| e.to_string())?;
            f.seek(SeekFrom::Start((pos + 4) as u64))
                .map_err(|e| e.to_string())?;
            f.write_all(&data32.to_le_bytes())
                .map_err(|e| e.to_string())?;
            f.set_len(data_start + data).map_err(|e| e.to_string())?;
            return f.sync_all().map_err(|e| e.to_string());
        }
        pos += 8 + size as usize + (size as usize & 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn tone(v: i16) -> Vec<i16> {
        vec![v; 160]
    }

    fn collect(r: &mut StereoRecorder) -> Vec<[i16; 2]> {
        let mut all = Vec::new();
        while let Some(c) = r.poll_chunk() {
            all.extend(c.chunks_exact(2).map(|p| [p[0], p[1]]));
        }
        all
    }

    #[test]
    fn reordering_and_loss_keep_audio_in_place() {
        let t0 = Instant::now();
        let mut r = StereoRecorder::new();
        // 50 packets of 20 ms on the left; packet 10 lost; 20 and 21 swapped.
        let mut order: Vec<u32> = (0..50).filter(|i| *i != 10).collect();
        order.swap(19, 20);
        // The right channel: our prompt, on the exact grid, starting 100 ms in, sent
        // as time goes by between the left's arrivals.
        let mut right = (0..40u32).peekable();
        let mut send_right = |r: &mut StereoRecorder, upto: Instant| {
            while let Some(i) = right.next_if(|i| t0 + MS * (100 + 20 * i) <= upto) {
                r.place(
                    t0 + MS * (100 + 20 * i),
                    Channel::Right,
                    2,
                    7 + i * 160,
                    i == 0,
                    &tone(-1),
                );
            }
        };
        for i in order {
            let now = t0 + MS * (20 * i + 5);
            send_right(&mut r, now);
            r.place(
                now,
                Channel::Left,
                1,
                1000 + i * 160,
                false,
                &tone(i as i16 + 1),
            );
            r.handle_timeout(now);
        }
        send_right(&mut r, t0 + Duration::from_secs(10));
        r.finish();
        let all = collect(&mut r);
        assert!(all[..PRE_ROLL_FRAMES].iter().all(|f| *f == [0, 0]));
        let frames = &all[PRE_ROLL_FRAMES..];
        assert_eq!(frames.len(), 50 * 160);
        for i in 0..50usize {
            let want = if i == 10 { 0 } else { i as i16 + 1 };
            assert!(
                frames[i * 160..(i + 1) * 160].iter().all(|f| f[0] == want),
                "packet {i}"
            );
        }
        // The right channel sits 95 ms after the left's origin (5 ms arrival offset).
        assert_eq!(frames[(95 * 8) - 1][1], 0);
        assert_eq!(frames[95 * 8][1], -1);
        assert_eq!(r.late_samples, 0);
    }

    #[test]
    fn chunks_come_out_each_half_second_after_the_hold_back() {
        let t0 = Instant::now();
        let mut r = StereoRecorder::new();
        r.place(t0, Channel::Left, 1, 0, true, &tone(5));
        let chunk = Duration::from_micros(CHUNK_FRAMES as u64 * 1_000_000 / u64::from(RATE));
        assert_eq!(chunk, Duration::from_millis(500));
        let first = t0 + chunk - PRE_ROLL + HOLD_BACK;
        assert_eq!(r.poll_timeout(), Some(first));
        // The budget of the module doc: a sample is handed out at most a chunk plus
        // the hold-back after it arrived.
        assert!(chunk + HOLD_BACK + SYNC_INTERVAL < Duration::from_secs(1));
        // Packet 20 (inside the first chunk) is held up in the network.
        let held = 20u32;
        assert!(held * 160 + 160 < (CHUNK_FRAMES - PRE_ROLL_FRAMES) as u32);
        for i in 1..=60u32 {
            if i != held {
                r.place(
                    t0 + MS * (20 * i),
                    Channel::Left,
                    1,
                    i * 160,
                    false,
                    &tone(5),
                );
            }
        }
        r.handle_timeout(first - MS);
        assert!(r.poll_chunk().is_none());
        r.handle_timeout(first);
        assert_eq!(r.poll_chunk().map(|c| c.len()), Some(CHUNK_FRAMES * 2));
        assert!(r.poll_chunk().is_none());
        // It arrives after its place was written: dropped, not misplaced.
        r.place(
            first + MS * 10,
            Channel::Left,
            1,
            held * 160,
            false,
            &tone(9),
        );
        assert_eq!(r.late_samples, 160);
        r.handle_timeout(first + chunk);
        assert_eq!(r.poll_chunk().map(|c| c.len()), Some(CHUNK_FRAMES * 2));
        r.finish();
        let rest: Vec<i16> = std::iter::from_fn(|| r.poll_chunk()).flatten().collect();
        assert!(rest.chunks_exact(2).all(|f| f[0] == 5 || f[0] == 0));
    }

    #[test]
    fn a_timestamp_jump_re_anchors_on_arrival() {
        let t0 = Instant::now();
        let mut r = StereoRecorder::new();
        r.place(t0, Channel::Left, 1, 0, true, &tone(1));
        // 1 s later the sender jumped its timestamps by an hour.
        r.place(
            t0 + Duration::from_secs(1),
            Channel::Left,
            1,
            8000 * 3600,
            false,
            &tone(2),
        );
        r.finish();
        let frames = collect(&mut r);
        assert_eq!(frames.len(), PRE_ROLL_FRAMES + 8000 + 160);
        assert_eq!(frames[PRE_ROLL_FRAMES + 8000][0], 2);
    }

    #[test]
    fn recording_paths_stay_under_the_root() {
        let root = Path::new("/data/recordings");
        let date = chrono::NaiveDate::from_ymd_opt(2026, 3, 7).unwrap();
        assert_eq!(
            recording_path(root, date, "etalon", "a84b4c76e66710@10.0.0.1"),
            Path::new("/data/recordings/2026/03/07/etalon/a84b4c76e66710_10.0.0.1.wav")
        );
        let evil = recording_path(root, date, "../../etc", "../passwd");
        assert!(
            evil.starts_with("/data/recordings/2026/03/07/"),
            "{}",
            evil.display()
        );
        assert!(
            !evil
                .components()
                .any(|c| c == std::path::Component::ParentDir)
        );
        assert_eq!(
            recording_path(root, date, "", "..."),
            Path::new("/data/recordings/2026/03/07/_/_.wav")
        );
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dl-rec-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn writer() -> (
        RecordingWriter,
        std::thread::JoinHandle<()>,
        Receiver<WriterReport>,
    ) {
        let (tx, rx) = std::sync::mpsc::channel();
        let (w, handle) = RecordingWriter::spawn(move |r| {
            let _ = tx.send(r);
        })
        .unwrap();
        (w, handle, rx)
    }

    fn ready(rx: &Receiver<WriterReport>) -> (PathBuf, Duration, u64) {
        match rx.recv_timeout(Duration::from_secs(5)).unwrap() {
            WriterReport::Ready {
                path,
                duration,
                bytes,
                ..
            } => (path, duration, bytes),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn writer_creates_lazily_and_finalises() {
        let dir = scratch("lazy");
        let path: Arc<Path> = Arc::from(dir.join("a/b/x.wav").as_path());
        let (w, handle, rx) = writer();
        assert!(!path.exists());
        assert!(w.try_append(RecordingId(1), path.clone(), vec![1; 16000]));
        w.send(WriterCommand::Close {
            id: RecordingId(1),
            rename_to: None,
        });
        let (done, duration, bytes) = ready(&rx);
        assert_eq!(done, path.to_path_buf());
        assert_eq!(duration, Duration::from_secs(1));
        assert_eq!(bytes, 44 + 32000);
        let reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.spec().channels, 2);
        assert_eq!(reader.duration(), 8000);
        assert!(!part_of(&path).exists());
        assert_eq!(w.queued_bytes(), 0);
        w.send(WriterCommand::Shutdown);
        handle.join().unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_taken_name_is_never_truncated_and_a_close_can_move_the_file() {
        let dir = scratch("names");
        let path: Arc<Path> = Arc::from(dir.join("2026/03/07/no-tenant/call.wav").as_path());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"an earlier recording").unwrap();
        let (w, handle, rx) = writer();
        w.try_append(RecordingId(1), path.clone(), vec![1; 800]);
        // Two at once under the same name (a Call-ID reused).
        w.try_append(RecordingId(2), path.clone(), vec![2; 800]);
        w.send(WriterCommand::Close {
            id: RecordingId(1),
            rename_to: None,
        });
        let (first, _, _) = ready(&rx);
        assert_eq!(first, dir.join("2026/03/07/no-tenant/call-1.wav"));
        // The tenant became known: the file moves to its directory at close.
        let tenant = dir.join("2026/03/07/etalon/call.wav");
        w.send(WriterCommand::Close {
            id: RecordingId(2),
            rename_to: Some(tenant.clone()),
        });
        let (second, _, _) = ready(&rx);
        assert_eq!(second, tenant);
        assert_eq!(std::fs::read(&path).unwrap(), b"an earlier recording");
        let all: Vec<i16> = hound::WavReader::open(&second)
            .unwrap()
            .samples::<i16>()
            .map(|s| s.unwrap())
            .collect();
        assert_eq!(all, vec![2; 800]);
        w.send(WriterCommand::Shutdown);
        handle.join().unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_full_queue_refuses_appends_and_an_abandoned_file_is_kept_quietly() {
        let dir = scratch("bounded");
        let path: Arc<Path> = Arc::from(dir.join("x.wav").as_path());
        let (tx, rx) = std::sync::mpsc::channel();
        // Room for two chunks of 1000 samples.
        let (w, handle) = RecordingWriter::spawn_with(4000, move |r| {
            let _ = tx.send(r);
        })
        .unwrap();
        // However far behind the thread is, the queue never holds more than 4000
        // bytes: a refused append is not queued.
        let mut admitted = 0;
        for _ in 0..1000 {
            if w.try_append(RecordingId(1), path.clone(), vec![3; 1000]) {
                admitted += 1;
            }
            assert!(w.queued_bytes() <= 4000);
        }
        assert!(admitted >= 2, "{admitted}");
        w.send(WriterCommand::Abandon { id: RecordingId(1) });
        w.send(WriterCommand::Close {
            id: RecordingId(1),
            rename_to: None,
        });
        w.send(WriterCommand::Shutdown);
        handle.join().unwrap();
        assert!(
            rx.try_recv().is_err(),
            "abandoned recordings are not reported"
        );
        let reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.duration() as usize, admitted * 500);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn unfinished_files_are_repaired_at_start() {
        use std::io::Write;
        let dir = scratch("repair");
        let day = dir.join("2026/03/07/etalon");
        std::fs::create_dir_all(&day).unwrap();
        // What a machine crash can leave: the data reached the disk, the header
        // still says 1000 frames and half a frame trails.
        let part = day.join("call.wav.part");
        {
            let mut wav = hound::WavWriter::create(&part, spec()).unwrap();
            for _ in 0..2000 {
                wav.write_sample(7i16).unwrap();
            }
            wav.finalize().unwrap();
            let mut f = std::fs::File::options().append(true).open(&part).unwrap();
            for _ in 0..6000 {
                f.write_all(&9i16.to_le_bytes()).unwrap();
            }
            f.write_all(&[1, 2]).unwrap();
            f.set_modified(SystemTime::now() - Duration::from_secs(60))
                .unwrap();
        }
        // A recording that started after this start is left alone.
        let running = day.join("now.wav.part");
        std::fs::write(&running, b"RIFF").unwrap();
        let started = SystemTime::now() - Duration::from_secs(30);
        let repaired = recover_unfinished(&dir, started);
        assert_eq!(repaired, vec![day.join("call.wav")]);
        let reader = hound::WavReader::open(day.join("call.wav")).unwrap();
        assert_eq!(reader.duration(), 4000);
        assert!(running.exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
