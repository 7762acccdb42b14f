//! RTP (RFC 3550) on the wire and its arithmetic: packet parsing and building (through
//! `rtp-rs`), serial-number comparison of 16-bit sequence numbers and 32-bit
//! timestamps (RFC 1982 as used by RFC 3550 §A.1), extended sequence numbers, and the
//! receiver statistics of RFC 3550 §6.4.1 and §A.3 (expected, lost, late, duplicate)
//! and §A.8 (interarrival jitter).
//!
//! Nothing here owns a socket or a clock: arrival times come in as arguments.

use std::fmt;

use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};

/// An RTP synchronisation source identifier (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ssrc(pub u32);

impl fmt::Display for Ssrc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

/// Why a datagram is not an RTP packet we can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    /// Shorter than the 12-byte fixed header.
    #[error("datagram of {0} bytes is shorter than an RTP header")]
    TooShort(usize),
    /// The version field is not 2.
    #[error("RTP version {0} is not 2")]
    Version(u8),
    /// CSRC list, header extension or padding run past the end of the datagram.
    #[error("RTP header or padding runs past the end of the datagram")]
    Truncated,
    /// The packet could not be built (payload type above 127, buffer too small).
    #[error("cannot build RTP packet: {0}")]
    Build(String),
}

/// The fields of an RTP header the media layer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Payload type (7 bits).
    pub pt: u8,
    /// Marker bit: first packet of a talk spurt for audio (RFC 3551 §4.1).
    pub marker: bool,
    /// Sequence number.
    pub seq: u16,
    /// Media timestamp (8 kHz units for G.711 and telephone-event).
    pub ts: u32,
    /// Synchronisation source.
    pub ssrc: Ssrc,
}

/// A parsed RTP packet borrowing its payload from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The header.
    pub header: RtpHeader,
    /// The payload, without CSRCs, header extension and padding.
    pub payload: &'a [u8],
}

/// Parses an RTP packet; never panics, whatever the bytes.
pub fn parse(buf: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    use rtp_rs::RtpReaderError as E;
    let reader = RtpReader::new(buf).map_err(|e| match e {
        E::BufferTooShort(n) => RtpError::TooShort(n),
        E::UnsupportedVersion(v) => RtpError::Version(v),
        E::HeadersTruncated { .. } | E::PaddingLengthInvalid(_) => RtpError::Truncated,
    })?;
    Ok(RtpPacket {
        header: RtpHeader {
            pt: reader.payload_type(),
            marker: reader.mark(),
            seq: u16::from(reader.sequence_number()),
            ts: reader.timestamp(),
            ssrc: Ssrc(reader.ssrc()),
        },
        payload: reader.payload(),
    })
}

/// Serialises a packet (no CSRCs, no extension, no padding) into `out`, replacing its
/// contents.
pub fn build_into(header: &RtpHeader, payload: &[u8], out: &mut Vec<u8>) -> Result<(), RtpError> {
    let builder = RtpPacketBuilder::new()
        .payload_type(header.pt)
        .marked(header.marker)
        .sequence(Seq::from(header.seq))
        .timestamp(header.ts)
        .ssrc(header.ssrc.0)
        .payload(payload);
    out.clear();
    out.resize(builder.target_length(), 0);
    let n = builder
        .build_into(out)
        .map_err(|e| RtpError::Build(format!("{e:?}")))?;
    out.truncate(n);
    Ok(())
}

/// `a - b` for 16-bit sequence numbers in serial arithmetic: positive when `a` is
/// newer, in `-32768..=32767`.
pub fn seq_diff(a: u16, b: u16) -> i16 {
    a.wrapping_sub(b) as i16
}

/// `a - b` for 32-bit RTP timestamps in serial arithmetic: positive when `a` is later.
pub fn ts_diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// Largest forward jump accepted as loss rather than a restart (RFC 3550 §A.1).
pub const MAX_DROPOUT: i32 = 3000;
/// Largest backward step accepted as reordering (RFC 3550 §A.1).
pub const MAX_MISORDER: i32 = 100;

/// What a received sequence number means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SeqStatus {
    /// The newest packet so far (possibly after a gap): its extended sequence number.
    InOrder(u64),
    /// Older than the newest, not seen before: reordered or late.
    Late(u64),
    /// Seen before.
    Duplicate,
    /// A jump too large to be loss; dropped until the next packet confirms a restart.
    Jump,
    /// The sender restarted its sequence (two packets confirmed the jump): counting
    /// starts over from this packet.
    Restarted(u64),
}

/// Extended sequence numbers and loss accounting for one source (RFC 3550 §A.1, §A.3).
///
/// Extended numbers count sequence cycles, so they grow monotonically across the
/// 16-bit wrap; they start at 2^16 so a reordered packet from before the first one
/// still has a non-negative number.
#[derive(Debug, Clone, Default)]
pub struct SeqTracker {
    state: Option<SeqState>,
    /// Packets accepted (in order or late, excluding duplicates).
    pub received: u64,
    /// Packets that arrived after a newer one.
    pub late: u64,
    /// Packets seen twice.
    pub duplicates: u64,
    /// `received` when counting last started over (a confirmed restart).
    received_at_restart: u64,
    /// Packets lost before the last restart.
    lost_before: u64,
}

#[derive(Debug, Clone)]
struct SeqState {
    base: u64,
    max: u64,
    /// Bit i set: extended number `max - i` was received (i < 128).
    window: u128,
    bad_seq: Option<u16>,
}

impl SeqTracker {
    /// Accounts for one packet's sequence number.
    pub fn update(&mut self, seq: u16) -> SeqStatus {
        let Some(st) = self.state.as_mut() else {
            self.restart(seq);
            return SeqStatus::InOrder(1 << 16 | u64::from(seq));
        };
        let delta = i32::from(seq_diff(seq, st.max as u16));
        if delta > 0 && delta < MAX_DROPOUT {
            st.max += delta as u64;
            st.window = if delta >= 128 {
                1
            } else {
                (st.window << delta) | 1
            };
            st.bad_seq = None;
            self.received += 1;
            SeqStatus::InOrder(st.max)
        } else if delta <= 0 && -delta < MAX_MISORDER {
            let back = (-delta) as u32;
            let ext = st.max - u64::from(back);
            if back < 128 && st.window & (1u128 << back) != 0 {
                self.duplicates += 1;
                return SeqStatus::Duplicate;
            }
            if back < 128 {
                st.window |= 1u128 << back;
            }
            if ext < st.base {
                st.base = ext;
            }
            self.received += 1;
            self.late += 1;
            SeqStatus::Late(ext)
        } else if st.bad_seq == Some(seq) {
            self.restart(seq);
            SeqStatus::Restarted(1 << 16 | u64::from(seq))
        } else {
            st.bad_seq = Some(seq.wrapping_add(1));
            SeqStatus::Jump
        }
    }

    fn restart(&mut self, seq: u16) {
        // What was lost before the sender restarted stays lost; the count of what
        // arrived starts over with the new numbering.
        if self.state.is_some() {
            self.lost_before += self.lost_since_restart();
            self.received_at_restart = self.received;
        }
        let ext = 1 << 16 | u64::from(seq);
        self.state = Some(SeqState {
            base: ext,
            max: ext,
            window: 1,
            bad_seq: None,
        });
        self.received += 1;
    }

    /// The highest extended sequence number received, if any.
    pub fn max_ext(&self) -> Option<u64> {
        self.state.as_ref().map(|s| s.max)
    }

    /// Packets expected since the first (or since the last restart): RFC 3550 §A.3.
    pub fn expected(&self) -> u64 {
        self.state.as_ref().map_or(0, |s| s.max - s.base + 1)
    }

    /// Packets received since the first (or since the last restart).
    pub fn received_since_restart(&self) -> u64 {
        self.received - self.received_at_restart
    }

    fn lost_since_restart(&self) -> u64 {
        self.expected()
            .saturating_sub(self.received_since_restart())
    }

    /// Packets lost, across restarts: expected minus received, never negative.
    pub fn lost(&self) -> u64 {
        self.lost_before + self.lost_since_restart()
    }
}

/// RFC 3550 §A.8 interarrival jitter, in timestamp units.
#[derive(Debug, Clone, Default)]
pub struct JitterEstimator {
    last_transit: Option<i64>,
    jitter: f64,
}

impl JitterEstimator {
    /// Feeds one packet: `arrival` is the arrival time in timestamp units (any origin).
    pub fn update(&mut self, arrival: u64, ts: u32) {
        let transit = arrival as i64 - i64::from(ts);
        if let Some(last) = self.last_transit {
            // Transit differences are compared modulo 2^32, like the timestamps.
            let d = i64::from((transit - last) as i32).abs();
            self.jitter += (d as f64 - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    /// The current estimate, in timestamp units.
    pub fn jitter(&self) -> u32 {
        self.jitter as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_and_build_round_trip() {
        let h = RtpHeader {
            pt: 8,
            marker: true,
            seq: 65535,
            ts: 0xFFFF_FF00,
            ssrc: Ssrc(0xdee0ee8f),
        };
        let mut buf = Vec::new();
        build_into(&h, &[1, 2, 3], &mut buf).unwrap();
        assert_eq!(buf.len(), 15);
        let p = parse(&buf).unwrap();
        assert_eq!(p.header, h);
        assert_eq!(p.payload, &[1, 2, 3]);
    }

    #[test]
    fn malformed_packets_are_errors() {
        assert_eq!(parse(&[0x80; 5]), Err(RtpError::TooShort(5)));
        assert_eq!(parse(&[0x40; 12]), Err(RtpError::Version(1)));
        // Four CSRCs announced, none present.
        let mut b = vec![0x84, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(parse(&b), Err(RtpError::Truncated));
        // Padding longer than the packet.
        b[0] = 0xA0;
        b.push(200);
        assert_eq!(parse(&b), Err(RtpError::Truncated));
    }

    #[test]
    fn sequence_wraps_and_counts_loss_and_reordering() {
        let mut t = SeqTracker::default();
        assert_eq!(t.update(65534), SeqStatus::InOrder(65536 + 65534));
        assert_eq!(t.update(65535), SeqStatus::InOrder(65536 + 65535));
        assert_eq!(t.update(1), SeqStatus::InOrder(131072 + 1));
        assert_eq!(t.update(0), SeqStatus::Late(131072));
        assert_eq!(t.update(0), SeqStatus::Duplicate);
        assert_eq!(t.update(4), SeqStatus::InOrder(131072 + 4));
        assert_eq!(t.expected(), 7);
        assert_eq!(t.received, 5);
        assert_eq!(t.lost(), 2);
        assert_eq!(t.late, 1);
        assert_eq!(t.duplicates, 1);
    }

    #[test]
    fn a_restart_needs_two_packets() {
        let mut t = SeqTracker::default();
        t.update(100);
        assert_eq!(t.update(30000), SeqStatus::Jump);
        assert_eq!(t.update(30001), SeqStatus::Restarted(65536 + 30001));
        assert_eq!(t.update(30002), SeqStatus::InOrder(65536 + 30002));
    }

    #[test]
    fn a_restart_keeps_earlier_loss_and_counts_afresh() {
        let mut t = SeqTracker::default();
        for seq in [1, 2, 4, 5] {
            t.update(seq);
        }
        assert_eq!(t.lost(), 1);
        t.update(40000);
        t.update(40001);
        for seq in 40002..40010 {
            t.update(seq);
        }
        // Before: the four old packets counted against the new numbering hid loss.
        t.update(40012);
        assert_eq!(t.expected(), 12);
        assert_eq!(t.received_since_restart(), 10);
        assert_eq!(t.lost(), 1 + 2);
    }

    proptest! {
        #[test]
        fn serial_differences_are_antisymmetric(a in any::<u16>(), d in -32767i16..=32767) {
            let b = a.wrapping_add(d as u16);
            prop_assert_eq!(seq_diff(b, a), d);
            prop_assert_eq!(seq_diff(a, b), -d);
        }

        #[test]
        fn ts_differences_survive_the_wrap(a in any::<u32>(), d in -(1i32 << 30)..(1i32 << 30)) {
            let b = a.wrapping_add(d as u32);
            prop_assert_eq!(ts_diff(b, a), d);
        }

        /// Any in-order run with small forward gaps, starting anywhere (including just
        /// before the wrap), gives strictly increasing extended numbers whose
        /// differences equal the gaps.
        #[test]
        fn extended_numbers_are_monotonic(start in any::<u16>(), gaps in proptest::collection::vec(1u16..50, 1..400)) {
            let mut t = SeqTracker::default();
            let mut seq = start;
            let mut last = match t.update(seq) { SeqStatus::InOrder(e) => e, s => panic!("{s:?}") };
            for g in gaps {
                seq = seq.wrapping_add(g);
                match t.update(seq) {
                    SeqStatus::InOrder(e) => { prop_assert_eq!(e - last, u64::from(g)); last = e; }
                    s => prop_assert!(false, "unexpected {:?}", s),
                }
            }
            prop_assert_eq!(t.received + t.lost(), t.expected());
        }

        /// Shuffling packets within the misorder window never loses or double-counts one.
        #[test]
        fn reordering_is_counted_once(start in any::<u16>(), n in 2usize..200, swaps in proptest::collection::vec((0usize..200, 1usize..5), 0..50)) {
            let mut order: Vec<u16> = (0..n as u16).map(|i| start.wrapping_add(i)).collect();
            for (i, k) in swaps {
                let i = i % n;
                let j = (i + k).min(n - 1);
                order.swap(i, j);
            }
            let mut t = SeqTracker::default();
            for s in &order { t.update(*s); }
            // Anything that arrived before the first packet counts as late too; the
            // tracker extends its base backwards, so nothing is lost.
            prop_assert_eq!(t.received, n as u64);
            prop_assert_eq!(t.lost(), 0);
            prop_assert_eq!(t.duplicates, 0);
        }
    }
}
