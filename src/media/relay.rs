//! Relay between bridged legs: the frame that crosses from the leg a packet arrived on
//! to the leg it is sent out of, and the rules for re-stamping it.
//!
//! The B2BUA anchors media (each leg negotiates with the engine on its own), so a
//! relayed packet is re-originated, not forwarded (RFC 3550 §7.1 translators aside):
//! the outgoing leg keeps its own SSRC, sequence numbers and timestamp line, mapping
//! the source's timestamps onto it so the source's timing survives ([`TsMap`]). Audio
//! is transcoded between PCMU and PCMA when the legs' codecs differ (one table lookup
//! per byte, [`super::g711::transcode_in_place`]); telephone-events are re-typed to
//! the outgoing leg's payload type (RFC 4733 §2.1 types are per-session).

use super::g711::Law;
use super::rtp::{Ssrc, ts_diff};

/// What a relayed packet carries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayPayload {
    /// G.711 audio in `law`.
    Audio {
        /// The law the bytes are in.
        law: Law,
        /// Code words, one per sample.
        data: Vec<u8>,
    },
    /// One RFC 4733 event block (4 bytes), to be sent with the outgoing leg's
    /// telephone-event payload type.
    Event([u8; 4]),
}

/// A packet on its way from one leg to its bridged peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayFrame {
    /// The source it came from (its timestamps are in that source's line).
    pub source: Ssrc,
    /// Its RTP timestamp in the source's line.
    pub ts: u32,
    /// Its marker bit.
    pub marker: bool,
    /// The payload.
    pub payload: RelayPayload,
}

/// Maps one source's timestamps onto the outgoing leg's line: `out = out_base +
/// (ts - src_base)` in serial arithmetic, re-based when the source changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsMap {
    /// The source being mapped.
    pub source: Ssrc,
    /// A source timestamp ...
    pub src_base: u32,
    /// ... and where it lands in our line.
    pub out_base: u32,
}

impl TsMap {
    /// The outgoing timestamp for a source timestamp.
    pub fn map(&self, ts: u32) -> u32 {
        self.out_base
            .wrapping_add(ts_diff(ts, self.src_base) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_survives_both_wraps() {
        let m = TsMap {
            source: Ssrc(1),
            src_base: u32::MAX - 80,
            out_base: 1000,
        };
        assert_eq!(m.map(u32::MAX - 80), 1000);
        assert_eq!(m.map(79), 1160);
        assert_eq!(m.map(u32::MAX - 240), 840);
        let n = TsMap {
            out_base: u32::MAX - 10,
            ..m
        };
        assert_eq!(n.map(79), 149);
    }
}
