//! RTCP (RFC 3550 §6): telling RTCP from RTP on a multiplexed port (RFC 5761 §4),
//! validating received compound packets (§6.1, §A.2) and building the Sender and
//! Receiver Reports (§6.4) the engine sends every few seconds, each followed by an
//! SDES CNAME (§6.5.1) as a compound packet requires, and the BYE (§6.6) a leg ends
//! with.
//!
//! Received RTCP is checked and summarised, never trusted: the engine uses it only for
//! statistics, so a malformed packet is an error the caller logs and drops.

use super::rtp::Ssrc;

/// RTCP packet types (RFC 3550 §12.1, RFC 4585 §6.1).
pub mod pt {
    /// Sender Report.
    pub const SR: u8 = 200;
    /// Receiver Report.
    pub const RR: u8 = 201;
    /// Source Description.
    pub const SDES: u8 = 202;
    /// Goodbye.
    pub const BYE: u8 = 203;
    /// Application-defined.
    pub const APP: u8 = 204;
}

/// Why an RTCP datagram was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtcpError {
    /// Shorter than one 4-byte RTCP header, or a length field runs past the end.
    #[error("RTCP packet truncated")]
    Truncated,
    /// The version field is not 2.
    #[error("RTCP version {0} is not 2")]
    Version(u8),
    /// A compound packet must start with SR or RR (RFC 3550 §A.2); we accept any
    /// RTCP type first but refuse types outside 192-223.
    #[error("payload type {0} is not RTCP")]
    NotRtcp(u8),
}

/// RFC 5761 §4: on a port shared by RTP and RTCP, a datagram whose second byte is
/// 192-223 (RTP payload types 64-95 with the marker bit) is RTCP.
pub fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 2 && (192..=223).contains(&datagram[1])
}

/// What one packet of a received compound said, as far as the engine cares.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RtcpSummary {
    /// A Sender Report.
    SenderReport {
        /// The sender.
        ssrc: Ssrc,
        /// Packets it says it sent.
        packets: u32,
        /// Octets it says it sent.
        octets: u32,
    },
    /// A Receiver Report.
    ReceiverReport {
        /// The reporter.
        ssrc: Ssrc,
    },
    /// A BYE: the source is leaving.
    Bye,
    /// Anything else (SDES, APP, feedback): accepted and ignored.
    Other(u8),
}

/// Validates a compound RTCP packet and summarises each part. Never panics.
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpSummary>, RtcpError> {
    let mut out = Vec::new();
    let mut rest = buf;
    if rest.is_empty() {
        return Err(RtcpError::Truncated);
    }
    while !rest.is_empty() {
        let [b0, ptype, l0, l1, ..] = *rest else {
            return Err(RtcpError::Truncated);
        };
        if b0 >> 6 != 2 {
            return Err(RtcpError::Version(b0 >> 6));
        }
        if !(192..=223).contains(&ptype) {
            return Err(RtcpError::NotRtcp(ptype));
        }
        let len = (usize::from(u16::from_be_bytes([l0, l1])) + 1) * 4;
        let (packet, tail) = rest.split_at_checked(len).ok_or(RtcpError::Truncated)?;
        let word = |i: usize| -> Option<u32> {
            packet
                .get(i..i + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes)
        };
        out.push(match ptype {
            pt::SR => SenderReport {
                ssrc: Ssrc(word(4).ok_or(RtcpError::Truncated)?),
                packets: word(20).ok_or(RtcpError::Truncated)?,
                octets: word(24).ok_or(RtcpError::Truncated)?,
            },
            pt::RR => ReceiverReport {
                ssrc: Ssrc(word(4).ok_or(RtcpError::Truncated)?),
            },
            pt::BYE => Bye,
            other => Other(other),
        });
        rest = tail;
    }
    use RtcpSummary::*;
    Ok(out)
}

/// One report block (RFC 3550 §6.4.1) about a source we receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source reported on.
    pub ssrc: Ssrc,
    /// Fraction lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24 bits, clamped).
    pub cumulative_lost: u32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the last SR's NTP timestamp (0 if none).
    pub last_sr: u32,
    /// Delay since that SR in 1/65536 s (0 if none).
    pub delay_since_last_sr: u32,
}

/// What we sent, for a Sender Report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// NTP timestamp (64-bit fixed point) of this report.
    pub ntp: u64,
    /// The RTP timestamp corresponding to `ntp`.
    pub rtp_ts: u32,
    /// Packets sent.
    pub packets: u32,
    /// Payload octets sent.
    pub octets: u32,
}

/// Builds a compound SR (when `sender` is set) or RR, plus SDES CNAME.
pub fn build_report(
    ssrc: Ssrc,
    sender: Option<SenderInfo>,
    block: Option<ReportBlock>,
    cname: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    let rc = u8::from(block.is_some());
    let words = 1 + if sender.is_some() { 5 } else { 0 } + 6 * usize::from(rc);
    out.push(0x80 | rc);
    out.push(if sender.is_some() { pt::SR } else { pt::RR });
    out.extend_from_slice(&(words as u16).to_be_bytes());
    out.extend_from_slice(&ssrc.0.to_be_bytes());
    if let Some(s) = sender {
        out.extend_from_slice(&s.ntp.to_be_bytes());
        out.extend_from_slice(&s.rtp_ts.to_be_bytes());
        out.extend_from_slice(&s.packets.to_be_bytes());
        out.extend_from_slice(&s.octets.to_be_bytes());
    }
    if let Some(b) = block {
        out.extend_from_slice(&b.ssrc.0.to_be_bytes());
        let lost = b.cumulative_lost.min(0x7F_FFFF);
        out.push(b.fraction_lost);
        out.extend_from_slice(&lost.to_be_bytes()[1..]);
        out.extend_from_slice(&b.highest_seq.to_be_bytes());
        out.extend_from_slice(&b.jitter.to_be_bytes());
        out.extend_from_slice(&b.last_sr.to_be_bytes());
        out.extend_from_slice(&b.delay_since_last_sr.to_be_bytes());
    }
    // SDES with one chunk: SSRC, CNAME item, end, padded to a word.
    let cname = &cname.as_bytes()[..cname.len().min(255)];
    let chunk_len = 4 + 2 + cname.len() + 1;
    let padded = chunk_len.div_ceil(4) * 4;
    out.push(0x81);
    out.push(pt::SDES);
    out.extend_from_slice(&((padded / 4) as u16).to_be_bytes());
    out.extend_from_slice(&ssrc.0.to_be_bytes());
    out.push(1);
    out.push(cname.len() as u8);
    out.extend_from_slice(cname);
    out.resize(out.len() + (padded - chunk_len) + 1, 0);
    out
}

/// Appends a BYE for `ssrc` (RFC 3550 §6.6) to a compound that starts with a report:
/// the last RTCP a leaving source sends.
pub fn append_bye(compound: &mut Vec<u8>, ssrc: Ssrc) {
    compound.extend_from_slice(&[0x81, pt::BYE, 0, 1]);
    compound.extend_from_slice(&ssrc.0.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_bye_ends_a_valid_compound() {
        let mut c = build_report(Ssrc(7), None, None, "x");
        append_bye(&mut c, Ssrc(7));
        let parts = parse_compound(&c).unwrap();
        assert_eq!(parts.last(), Some(&RtcpSummary::Bye));
        assert_eq!(parts.len(), 3);
    }

    #[test]
    fn demultiplexing_follows_rfc5761() {
        assert!(is_rtcp(&[0x80, 200, 0, 6]));
        assert!(is_rtcp(&[0x80, 223]));
        assert!(!is_rtcp(&[0x80, 8]));
        assert!(!is_rtcp(&[0x80, 0x80 | 8])); // PCMA with the marker bit
        assert!(!is_rtcp(&[0x80, 101]));
        assert!(!is_rtcp(&[0x80]));
    }

    #[test]
    fn reports_round_trip() {
        let sr = build_report(
            Ssrc(7),
            Some(SenderInfo {
                ntp: 1,
                rtp_ts: 2,
                packets: 3,
                octets: 480,
            }),
            Some(ReportBlock {
                ssrc: Ssrc(9),
                fraction_lost: 0,
                cumulative_lost: 1,
                highest_seq: 100,
                jitter: 4,
                last_sr: 0,
                delay_since_last_sr: 0,
            }),
            "leg-1@dispatchline",
        );
        assert_eq!(sr.len() % 4, 0);
        let parts = parse_compound(&sr).unwrap();
        assert_eq!(
            parts,
            vec![
                RtcpSummary::SenderReport {
                    ssrc: Ssrc(7),
                    packets: 3,
                    octets: 480
                },
                RtcpSummary::Other(pt::SDES)
            ]
        );
        let rr = build_report(Ssrc(7), None, None, "x");
        assert_eq!(
            parse_compound(&rr).unwrap()[0],
            RtcpSummary::ReceiverReport { ssrc: Ssrc(7) }
        );
    }

    #[test]
    fn malformed_compounds_are_refused() {
        assert_eq!(parse_compound(&[]), Err(RtcpError::Truncated));
        assert_eq!(
            parse_compound(&[0x80, 200, 0, 6]),
            Err(RtcpError::Truncated)
        );
        assert_eq!(
            parse_compound(&[0x40, 200, 0, 0]),
            Err(RtcpError::Version(1))
        );
        assert_eq!(parse_compound(&[0x80, 8, 0, 0]), Err(RtcpError::NotRtcp(8)));
        // An SR whose length says one word: too short for its fields.
        assert_eq!(
            parse_compound(&[0x80, 200, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::Truncated)
        );
    }

    proptest! {
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_compound(&bytes);
        }
    }
}
