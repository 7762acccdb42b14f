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
//!   [`HOLD_BACK`] for late packets, then handed out in chunks of about a second.
//! - [`RecordingWriter`] is the IO half: one OS thread that owns every open file,
//!   creates a file lazily on its first chunk (a call with no audio leaves no file),
//!   writes each one-second chunk through hound and hands data and an updated header
//!   to the kernel at once (a crash of the process loses at most the second being
//!   filled), and finalises header and data to disk (`fsync`) at stop before
//!   reporting the recording ready. A companion thread `fdatasync`s every open file
//!   about once a second, so a slow disk never holds up writing.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::rtp::ts_diff;

/// Identifies one recording for the life of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordingId(pub u64);

/// Sample rate of recordings.
pub const RATE: u32 = 8000;
/// How long audio is held back for late (reordered) packets before it is written.
pub const HOLD_BACK: Duration = Duration::from_millis(300);
/// Audio is handed to the writer in chunks of this many frames (one second).
pub const CHUNK_FRAMES: usize = RATE as usize;
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

    /// Hands out every whole second of audio older than the hold-back.
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
/// date (the caller decides the time zone) and tenant. Each component is reduced to
/// `[A-Za-z0-9._-]` with no leading dot, so a tenant code or a Call-ID can never climb
/// out of `root` or hide a file.
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
        .join(format!("{}.wav", clean(name)))
}

// ---------------------------------------------------------------------------------
// The IO half.

/// What the writer reports back.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WriterReport {
    /// The file is complete and on disk.
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
    Append {
        /// The recording.
        id: RecordingId,
        /// Where it goes.
        path: Arc<Path>,
        /// Interleaved samples.
        samples: StereoChunk,
    },
    /// Finalise the file and report it.
    Close {
        /// The recording.
        id: RecordingId,
    },
    /// Finalise every open file and stop the thread.
    Shutdown,
}

/// How often every open file's data is synced to disk (`fdatasync`), by the sync
/// thread. Data and header reach the kernel with every chunk (once a second), so a
/// crash of the process loses at most the chunk being filled; this bounds what a crash
/// of the machine loses.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Samples per call into hound's sample writer: bounds its per-file buffer.
const WRITE_BATCH: usize = 2048;

type SyncSet = Arc<Mutex<HashMap<RecordingId, Arc<File>>>>;

struct OpenFile {
    wav: hound::WavWriter<BufWriter<File>>,
    file: Arc<File>,
    path: Arc<Path>,
    failed: Option<String>,
}

/// The writer thread's handle: cheap to clone, never blocks the caller.
#[derive(Debug, Clone)]
pub struct RecordingWriter {
    tx: Sender<WriterCommand>,
}

impl RecordingWriter {
    /// Starts the writer thread (and its sync thread); `report` is called (on the
    /// writer thread) for each finished recording. The writer stops when every
    /// handle is dropped or on `Shutdown`, finalising what is open.
    pub fn spawn(
        report: impl FnMut(WriterReport) + Send + 'static,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let (tx, rx) = std::sync::mpsc::channel();
        let syncing: SyncSet = Arc::default();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let sync_set = syncing.clone();
        std::thread::Builder::new()
            .name("media-sync".into())
            .spawn(move || run_sync(sync_set, stop_rx))?;
        let handle = std::thread::Builder::new()
            .name("media-recorder".into())
            .spawn(move || {
                run_writer(rx, report, &syncing);
                drop(stop_tx);
            })?;
        Ok((Self { tx }, handle))
    }

    /// Queues a command; a stopped writer drops it (and logs).
    pub fn send(&self, cmd: WriterCommand) {
        if self.tx.send(cmd).is_err() {
            tracing::warn!("recording writer has stopped; dropping a command");
        }
    }
}

/// Syncs every open file about once per [`SYNC_INTERVAL`], on its own thread so a
/// slow disk never holds up writing (and the shards never wait for either).
fn run_sync(files: SyncSet, stop: Receiver<()>) {
    loop {
        let pass = Instant::now();
        let snapshot: Vec<(RecordingId, Arc<File>)> = files
            .lock()
            .map(|m| m.iter().map(|(k, v)| (*k, v.clone())).collect())
            .unwrap_or_default();
        for (id, f) in snapshot {
            if let Err(e) = f.sync_data() {
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

fn open(path: &Path) -> Result<(hound::WavWriter<BufWriter<File>>, Arc<File>), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let file = File::create(path).map_err(|e| format!("cannot create: {e}"))?;
    let sync_handle = file.try_clone().map_err(|e| e.to_string())?;
    let wav = hound::WavWriter::new(BufWriter::with_capacity(8 * 1024, file), spec())
        .map_err(|e| e.to_string())?;
    Ok((wav, Arc::new(sync_handle)))
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
    f.wav.flush().map_err(|e| e.to_string())
}

fn run_writer(
    rx: Receiver<WriterCommand>,
    mut report: impl FnMut(WriterReport),
    syncing: &SyncSet,
) {
    let mut files: HashMap<RecordingId, OpenFile> = HashMap::new();
    // Recordings whose file could not be created: reported once, chunks dropped.
    let mut failed: std::collections::HashSet<RecordingId> = Default::default();
    let register = |id: RecordingId, file: Option<Arc<File>>| {
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
                if failed.contains(&id) {
                    continue;
                }
                let entry = match files.entry(id) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => match open(&path) {
                        Ok((wav, file)) => {
                            register(id, Some(file.clone()));
                            v.insert(OpenFile {
                                wav,
                                file,
                                path: path.clone(),
                                failed: None,
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
                            continue;
                        }
                    },
                };
                if entry.failed.is_none() {
                    if let Err(e) = write_chunk(entry, &samples) {
                        tracing::error!(path = %entry.path.display(), error = %e, "recording write failed");
                        entry.failed = Some(e);
                    }
                }
            }
            WriterCommand::Close { id } => {
                failed.remove(&id);
                register(id, None);
                if let Some(f) = files.remove(&id) {
                    report(close(id, f));
                }
            }
            WriterCommand::Shutdown => {
                for (id, f) in files.drain() {
                    register(id, None);
                    report(close(id, f));
                }
                return;
            }
        }
    }
}

/// Finalises the header and syncs data and metadata to disk.
fn close(id: RecordingId, mut f: OpenFile) -> WriterReport {
    let path = f.path.to_path_buf();
    if let Some(error) = f.failed.take() {
        return WriterReport::Failed { id, path, error };
    }
    let frames = f.wav.duration();
    let result = f
        .wav
        .finalize()
        .map_err(|e| e.to_string())
        .and_then(|()| f.file.sync_all().map_err(|e| e.to_string()))
        .and_then(|()| {
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
        for i in order {
            let now = t0 + MS * (20 * i + 5);
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
        // The right channel: our prompt, on the exact grid, starting 100 ms in.
        for i in 0..40u32 {
            r.place(
                t0 + MS * (100 + 20 * i),
                Channel::Right,
                2,
                7 + i * 160,
                i == 0,
                &tone(-1),
            );
        }
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
    fn chunks_come_out_each_second_after_the_hold_back() {
        let t0 = Instant::now();
        let mut r = StereoRecorder::new();
        r.place(t0, Channel::Left, 1, 0, true, &tone(5));
        assert_eq!(
            r.poll_timeout(),
            Some(t0 + Duration::from_secs(1) - PRE_ROLL + HOLD_BACK)
        );
        for i in 1..=60u32 {
            // Packet 46 is held up in the network.
            if i != 46 {
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
        r.handle_timeout(t0 + Duration::from_millis(1200 - 60));
        assert!(r.poll_chunk().is_none());
        r.handle_timeout(t0 + Duration::from_millis(1300 - 60));
        assert_eq!(r.poll_chunk().map(|c| c.len()), Some(CHUNK_FRAMES * 2));
        // It arrives after its place was written: dropped, not misplaced.
        r.place(
            t0 + Duration::from_millis(1310),
            Channel::Left,
            1,
            46 * 160,
            false,
            &tone(9),
        );
        assert_eq!(r.late_samples, 160);
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

    #[test]
    fn writer_creates_lazily_and_finalises() {
        let dir = std::env::temp_dir().join(format!("dl-rec-{}", std::process::id()));
        let path: Arc<Path> = Arc::from(dir.join("a/b/x.wav").as_path());
        let (tx, rx) = std::sync::mpsc::channel();
        let (w, handle) = RecordingWriter::spawn(move |r| {
            let _ = tx.send(r);
        })
        .unwrap();
        assert!(!path.exists());
        w.send(WriterCommand::Append {
            id: RecordingId(1),
            path: path.clone(),
            samples: vec![1; 16000],
        });
        w.send(WriterCommand::Close { id: RecordingId(1) });
        let report = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        match report {
            WriterReport::Ready {
                duration, bytes, ..
            } => {
                assert_eq!(duration, Duration::from_secs(1));
                assert_eq!(bytes, 44 + 32000);
            }
            other => panic!("{other:?}"),
        }
        let reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.spec().channels, 2);
        assert_eq!(reader.duration(), 8000);
        w.send(WriterCommand::Shutdown);
        handle.join().unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }
}
