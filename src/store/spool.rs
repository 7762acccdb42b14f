//! The write-ahead spool: store work the database could not take, kept on local
//! disk until it can.
//!
//! While the database is down (PostgreSQL restarting, a refused or reset
//! connection, SQLite busy, a full disk) the writers keep their work in memory and
//! try again with back-off; this file is what makes that work survive a crash or a
//! SIGKILL in the meantime. It is one append-only file (`<data dir>/spool/writes.spool`)
//! of records, each framed as
//!
//! ```text
//! u32 little-endian payload length | u32 little-endian CRC-32 (IEEE) of the payload | payload
//! ```
//!
//! and every batch of appends is `fsync`ed before the writer goes on. A record
//! whose frame or checksum does not hold (the tail a crash tore while it was being
//! written) ends the file: it and anything after it are cut off, with a log line,
//! and the records before it are replayed. The payloads are opaque here (the call
//! core writes JSON); replaying them must be idempotent, since a crash after the
//! database took a record but before the spool was emptied replays it again.
//!
//! The spool is bounded ([`Spool::cap`]): an append past the cap is refused with
//! [`SpoolError::Full`], which the writer logs loudly and counts; the work then
//! stays in memory only, as without a spool.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The default most bytes the spool holds (256 MiB: hours of a busy line's
/// journal rows).
pub const DEFAULT_CAP: u64 = 256 * 1024 * 1024;

/// The largest one record may be; a longer length in a frame means the frame is
/// torn or garbage.
pub const MAX_RECORD: u32 = 16 * 1024 * 1024;

/// Bytes of a record's frame before its payload.
const FRAME: u64 = 8;

/// Why the spool could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// Reading, writing or syncing the file failed.
    #[error("spool {path}: {source}")]
    Io {
        /// The spool file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The record would take the spool past its cap.
    #[error("spool full: {bytes} bytes of at most {cap}")]
    Full {
        /// Bytes held now.
        bytes: u64,
        /// The cap.
        cap: u64,
    },
    /// One record is larger than [`MAX_RECORD`].
    #[error("a spool record of {0} bytes is too large")]
    TooLarge(usize),
}

/// The spool file, open for appending.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    file: File,
    bytes: u64,
    records: usize,
    cap: u64,
    unsynced: bool,
}

impl Spool {
    /// Opens (or creates) the spool under `dir` with at most `cap` bytes, and
    /// returns it with the payloads it holds, in the order they were appended. A
    /// torn tail is cut off and logged.
    pub fn open(dir: &Path, cap: u64) -> Result<(Self, Vec<Vec<u8>>), SpoolError> {
        let path = dir.join("writes.spool");
        let io = |source| SpoolError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(io)?;
        let (payloads, good) = decode(&data);
        if good < data.len() {
            tracing::warn!(
                spool = %path.display(),
                records = payloads.len(),
                torn_bytes = data.len() - good,
                "the spool's last record was torn by a crash: it is ignored"
            );
            file.set_len(good as u64).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        file.seek(SeekFrom::Start(good as u64)).map_err(io)?;
        let spool = Self {
            records: payloads.len(),
            bytes: good as u64,
            path,
            file,
            cap,
            unsynced: false,
        };
        Ok((spool, payloads))
    }

    /// Appends one record (not yet synced: see [`sync`](Self::sync)).
    pub fn append(&mut self, payload: &[u8]) -> Result<(), SpoolError> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&l| l <= MAX_RECORD)
            .ok_or(SpoolError::TooLarge(payload.len()))?;
        let size = FRAME + u64::from(len);
        if self.bytes + size > self.cap {
            return Err(SpoolError::Full {
                bytes: self.bytes,
                cap: self.cap,
            });
        }
        let mut frame = Vec::with_capacity(size as usize);
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&crc32(payload).to_le_bytes());
        frame.extend_from_slice(payload);
        if let Err(source) = self.file.write_all(&frame) {
            // Whatever part was written is a torn record: cut it off again.
            let _ = self.file.set_len(self.bytes);
            let _ = self.file.seek(SeekFrom::Start(self.bytes));
            return Err(SpoolError::Io {
                path: self.path.clone(),
                source,
            });
        }
        self.bytes += size;
        self.records += 1;
        self.unsynced = true;
        Ok(())
    }

    /// Makes every record appended so far durable (`fsync`).
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if !self.unsynced {
            return Ok(());
        }
        self.file.sync_data().map_err(|source| SpoolError::Io {
            path: self.path.clone(),
            source,
        })?;
        self.unsynced = false;
        Ok(())
    }

    /// Empties the spool once the database has taken everything in it. Not
    /// `fsync`ed (the writer empties it after every round): records a power cut
    /// brings back are replayed, and replays are idempotent.
    pub fn clear(&mut self) -> Result<(), SpoolError> {
        if self.bytes == 0 {
            return Ok(());
        }
        let io = |source| SpoolError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.set_len(0).map_err(io)?;
        self.file.seek(SeekFrom::Start(0)).map_err(io)?;
        self.bytes = 0;
        self.records = 0;
        self.unsynced = false;
        Ok(())
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Records held.
    pub fn records(&self) -> usize {
        self.records
    }

    /// The most bytes it holds.
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The whole records at the start of `data` and how many bytes they take; decoding
/// stops at the first frame that is short, too long or fails its checksum.
fn decode(data: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some(head) = data.get(at..at + FRAME as usize) {
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let sum = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len > MAX_RECORD {
            break;
        }
        let start = at + FRAME as usize;
        let Some(payload) = data.get(start..start + len as usize) else {
            break;
        };
        if crc32(payload) != sum {
            break;
        }
        out.push(payload.to_vec());
        at = start + len as usize;
    }
    (out, at)
}

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("spool-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn crc32_is_zlibs() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn records_come_back_in_order_after_reopening_and_clear_empties() {
        let d = dir("order");
        let (mut s, old) = Spool::open(&d, DEFAULT_CAP).unwrap();
        assert!(old.is_empty() && s.is_empty());
        s.append(b"one").unwrap();
        s.append(b"").unwrap();
        s.append(b"three").unwrap();
        s.sync().unwrap();
        drop(s);
        let (mut s, got) = Spool::open(&d, DEFAULT_CAP).unwrap();
        assert_eq!(got, [b"one".to_vec(), vec![], b"three".to_vec()]);
        assert_eq!(s.records(), 3);
        s.append(b"four").unwrap();
        drop(s);
        let (mut s, got) = Spool::open(&d, DEFAULT_CAP).unwrap();
        assert_eq!(got.len(), 4);
        s.clear().unwrap();
        drop(s);
        let (_, got) = Spool::open(&d, DEFAULT_CAP).unwrap();
        assert!(got.is_empty());
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_the_records_before_it_kept() {
        let d = dir("torn");
        let (mut s, _) = Spool::open(&d, DEFAULT_CAP).unwrap();
        s.append(b"whole").unwrap();
        s.append(b"torn by the crash").unwrap();
        s.sync().unwrap();
        let path = s.path().to_owned();
        drop(s);
        // Cut into the second record, as a crash mid-write would.
        let len = std::fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 3).unwrap();
        drop(f);
        let (mut s, got) = Spool::open(&d, DEFAULT_CAP).unwrap();
        assert_eq!(got, [b"whole".to_vec()]);
        // Appending goes on after the last whole record.
        s.append(b"next").unwrap();
        drop(s);
        let (_, got) = Spool::open(&d, DEFAULT_CAP).unwrap();
        assert_eq!(got, [b"whole".to_vec(), b"next".to_vec()]);

        // A flipped byte fails the checksum the same way.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (_, got) = Spool::open(&d, DEFAULT_CAP).unwrap();
        assert_eq!(got, [b"whole".to_vec()]);
    }

    #[test]
    fn the_cap_refuses_what_does_not_fit() {
        let d = dir("cap");
        let (mut s, _) = Spool::open(&d, 30).unwrap();
        s.append(b"0123456789").unwrap(); // 18 bytes with its frame
        assert!(matches!(
            s.append(b"0123456789"),
            Err(SpoolError::Full { bytes: 18, cap: 30 })
        ));
        s.append(b"0123").unwrap(); // exactly 30
        assert_eq!(s.bytes(), 30);
    }
}
