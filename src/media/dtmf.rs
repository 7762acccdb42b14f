//! DTMF: RFC 4733 telephone-events in RTP (§2.3 payload format, §2.5 sender and
//! receiver rules) and the SIP INFO bodies `application/dtmf-relay` and
//! `application/dtmf` that some peers send instead (read both, write the first).
//!
//! Owns the event payload codec, the receiver's detector (one digit per event: every
//! packet of an event carries the same RTP timestamp, and the end packet is sent three
//! times, §2.5.1.4, so digits are deduplicated by timestamp; digits are queued, so an
//! event whose end packets were all lost and the next one, of which only an end
//! packet arrived, both come out, in order) and the sender's packet
//! schedule (one packet per 20 ms with a growing duration, marker on the first, three
//! end packets).

use std::time::{Duration, Instant};

/// Why a telephone-event payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DtmfError {
    /// Shorter than the 4-byte event block.
    #[error("telephone-event payload of {0} bytes is shorter than 4")]
    TooShort(usize),
    /// The character is not a DTMF key.
    #[error("`{0}` is not a DTMF key (0-9, *, #, A-D)")]
    NotAKey(char),
}

/// One RFC 4733 §2.3 event block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPayload {
    /// Event code (0-9 digits, 10 `*`, 11 `#`, 12-15 A-D, 16 flash).
    pub event: u8,
    /// E bit: the event has ended.
    pub end: bool,
    /// Power level in -dBm0 (0-63).
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl EventPayload {
    /// Parses the first event block of a payload.
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        let [event, flags, d0, d1, ..] = *payload else {
            return Err(DtmfError::TooShort(payload.len()));
        };
        Ok(Self {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// Serialises the block.
    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }
}

/// The key for an event code (RFC 4733 §3.2), if it is a DTMF key.
pub fn event_to_char(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// The event code for a key.
pub fn char_to_event(key: char) -> Result<u8, DtmfError> {
    match key.to_ascii_uppercase() {
        c @ '0'..='9' => Ok(c as u8 - b'0'),
        '*' => Ok(10),
        '#' => Ok(11),
        c @ 'A'..='D' => Ok(c as u8 - b'A' + 12),
        _ => Err(DtmfError::NotAKey(key)),
    }
}

/// A digit the detector recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectedDigit {
    /// The key.
    pub digit: char,
    /// How long it was held (from the event's duration field).
    pub duration: Duration,
    /// When its first packet arrived.
    pub at: Instant,
}

/// How long an event may go without packets before it is reported without an end
/// packet (all three end packets lost).
pub const EVENT_STALE: Duration = Duration::from_millis(800);

#[derive(Debug, Clone)]
struct Current {
    ts: u32,
    event: u8,
    duration: u16,
    first_at: Instant,
    last_at: Instant,
    reported: bool,
}

/// RFC 4733 §2.5.2 receiver: turns telephone-event packets into digits, one per event.
///
/// Call order: [`handle`](Self::handle) for each telephone-event packet and
/// [`handle_timeout`](Self::handle_timeout) when [`poll_timeout`](Self::poll_timeout)
/// says; after each, drain [`poll_digit`](Self::poll_digit).
#[derive(Debug, Clone, Default)]
pub struct DtmfDetector {
    current: Option<Current>,
    /// Timestamps of the last few reported events, so a straggling end packet of an
    /// older event is not reported again.
    recent: [Option<u32>; 4],
    /// Digits complete and not yet taken, oldest first.
    ready: std::collections::VecDeque<DetectedDigit>,
}

impl DtmfDetector {
    /// Feeds one telephone-event packet (RTP timestamp and payload). A digit is
    /// complete at its event's first end packet, or when a new event starts before
    /// the previous one ended; one packet can complete two (the previous event and
    /// a new one seen only by its end packet).
    pub fn handle(&mut self, now: Instant, ts: u32, payload: &[u8]) {
        let Ok(ev) = EventPayload::parse(payload) else {
            return;
        };
        if self.recent.contains(&Some(ts)) {
            return;
        }
        match &mut self.current {
            Some(c) if c.ts == ts => {
                c.duration = c.duration.max(ev.duration);
                c.last_at = now;
            }
            _ => {
                self.report();
                self.current = Some(Current {
                    ts,
                    event: ev.event,
                    duration: ev.duration,
                    first_at: now,
                    last_at: now,
                    reported: false,
                });
            }
        }
        if ev.end {
            self.report();
        }
    }

    /// The next complete digit.
    pub fn poll_digit(&mut self) -> Option<DetectedDigit> {
        self.ready.pop_front()
    }

    /// Queues the current event's digit unless it was already reported.
    fn report(&mut self) {
        let Some(c) = self.current.as_mut() else {
            return;
        };
        if c.reported {
            return;
        }
        c.reported = true;
        self.recent.rotate_right(1);
        self.recent[0] = Some(c.ts);
        if let Some(digit) = event_to_char(c.event) {
            self.ready.push_back(DetectedDigit {
                digit,
                duration: Duration::from_micros(u64::from(c.duration) * 125),
                at: c.first_at,
            });
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current
            .as_ref()
            .filter(|c| !c.reported)
            .map(|c| c.last_at + EVENT_STALE)
    }

    /// Reports an event whose end packets never came.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|t| t <= now) {
            self.report();
        }
    }
}

/// Packets sent for one digit: every 20 ms with the duration so far, then the final
/// duration three times with the end bit (RFC 4733 §2.5.1).
#[derive(Debug, Clone)]
pub struct DtmfSender {
    event: u8,
    total: u16,
    sent_duration: u16,
    ends_left: u8,
    first: bool,
}

/// Packet interval of the sender, in timestamp units (20 ms).
pub const SEND_STEP: u16 = 160;

impl DtmfSender {
    /// A sender for `key` held for `duration` (clamped to 40 ms .. 5 s).
    pub fn new(key: char, duration: Duration) -> Result<Self, DtmfError> {
        let event = char_to_event(key)?;
        let ms = duration.as_millis().clamp(40, 5000) as u16;
        Ok(Self {
            event,
            total: ms * 8,
            sent_duration: 0,
            ends_left: 3,
            first: true,
        })
    }

    /// The next packet: (marker, payload), or `None` when the digit is done.
    pub fn next_packet(&mut self) -> Option<(bool, [u8; 4])> {
        if self.ends_left == 0 {
            return None;
        }
        let marker = std::mem::take(&mut self.first);
        let end = self.sent_duration.saturating_add(SEND_STEP) >= self.total;
        let payload = if end {
            self.ends_left -= 1;
            EventPayload {
                event: self.event,
                end: true,
                volume: 10,
                duration: self.total,
            }
        } else {
            self.sent_duration += SEND_STEP;
            EventPayload {
                event: self.event,
                end: false,
                volume: 10,
                duration: self.sent_duration,
            }
        };
        Some((marker, payload.to_bytes()))
    }
}

/// Reads a SIP INFO body carrying one key: `application/dtmf-relay`
/// (`Signal=5` / `Duration=160`, duration in ms) or `application/dtmf` (the key
/// alone). Returns the key and its duration (250 ms when the body gives none).
pub fn parse_info_body(content_type: &str, body: &[u8]) -> Option<(char, Duration)> {
    const DEFAULT: Duration = Duration::from_millis(250);
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let text = std::str::from_utf8(body).ok()?;
    let key_of = |s: &str| -> Option<char> {
        let s = s.trim();
        match s {
            "10" => Some('*'),
            "11" => Some('#'),
            _ => {
                let mut chars = s.chars();
                let c = chars.next()?;
                if chars.next().is_some() {
                    return None;
                }
                char_to_event(c).ok()?;
                Some(c.to_ascii_uppercase())
            }
        }
    };
    match mime.as_str() {
        "application/dtmf-relay" => {
            let mut key = None;
            let mut duration = DEFAULT;
            for line in text.lines() {
                let Some((name, value)) = line.split_once('=') else {
                    continue;
                };
                match name.trim().to_ascii_lowercase().as_str() {
                    "signal" => key = key_of(value),
                    "duration" => {
                        if let Ok(ms) = value.trim().parse::<u64>() {
                            duration = Duration::from_millis(ms.min(60_000));
                        }
                    }
                    _ => {}
                }
            }
            key.map(|k| (k, duration))
        }
        "application/dtmf" => key_of(text).map(|k| (k, DEFAULT)),
        _ => None,
    }
}

/// The `application/dtmf-relay` body (the de-facto format of Cisco and most PBXes)
/// for one key held `duration`: `Signal=5\r\nDuration=160\r\n`, duration in ms.
pub fn info_body(key: char, duration: Duration) -> Result<String, DtmfError> {
    char_to_event(key)?;
    let ms = duration.as_millis().clamp(40, 60_000);
    Ok(format!(
        "Signal={}\r\nDuration={ms}\r\n",
        key.to_ascii_uppercase()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pkt(event: u8, end: bool, duration: u16) -> [u8; 4] {
        EventPayload {
            event,
            end,
            volume: 10,
            duration,
        }
        .to_bytes()
    }

    fn feed(d: &mut DtmfDetector, now: Instant, ts: u32, p: &[u8]) -> Vec<DetectedDigit> {
        d.handle(now, ts, p);
        std::iter::from_fn(|| d.poll_digit()).collect()
    }

    #[test]
    fn one_digit_per_event_however_many_end_packets() {
        let t0 = Instant::now();
        let mut d = DtmfDetector::default();
        let mut digits = Vec::new();
        for (i, dur) in [0u16, 320, 640, 960].into_iter().enumerate() {
            let now = t0 + Duration::from_millis(20 * i as u64);
            digits.extend(feed(&mut d, now, 1000, &pkt(5, false, dur)));
        }
        for i in 0..3 {
            let now = t0 + Duration::from_millis(100 + 20 * i);
            digits.extend(feed(&mut d, now, 1000, &pkt(5, true, 1120)));
        }
        assert_eq!(digits.len(), 1);
        assert_eq!(digits[0].digit, '5');
        assert_eq!(digits[0].duration, Duration::from_millis(140));
        assert_eq!(digits[0].at, t0);
        // A late end packet of the same event after another event started.
        assert!(feed(&mut d, t0, 5000, &pkt(6, false, 0)).is_empty());
        assert!(feed(&mut d, t0, 1000, &pkt(5, true, 1120)).is_empty());
    }

    #[test]
    fn lost_end_packets_still_give_the_digit() {
        let t0 = Instant::now();
        let mut d = DtmfDetector::default();
        assert!(feed(&mut d, t0, 10, &pkt(11, false, 160)).is_empty());
        // Next event starts: the previous one is reported.
        let got = feed(
            &mut d,
            t0 + Duration::from_millis(300),
            900,
            &pkt(1, false, 160),
        );
        assert_eq!(got.iter().map(|g| g.digit).collect::<String>(), "#");
        // And the new one after silence.
        let at = d.poll_timeout().unwrap();
        d.handle_timeout(at);
        assert_eq!(d.poll_digit().map(|g| g.digit), Some('1'));
        assert_eq!(d.poll_timeout(), None);
    }

    #[test]
    fn an_event_seen_only_by_its_end_after_one_that_lost_its_ends() {
        let t0 = Instant::now();
        let mut d = DtmfDetector::default();
        // '4' without its end packets, then '7' of which only an end packet arrives:
        // before the queue, '7' was marked reported and lost.
        assert!(feed(&mut d, t0, 100, &pkt(4, false, 160)).is_empty());
        let got = feed(
            &mut d,
            t0 + Duration::from_millis(200),
            2000,
            &pkt(7, true, 800),
        );
        assert_eq!(got.iter().map(|g| g.digit).collect::<String>(), "47");
        assert_eq!(got[1].duration, Duration::from_millis(100));
        assert!(feed(&mut d, t0, 2000, &pkt(7, true, 800)).is_empty());
    }

    #[test]
    fn sender_schedule() {
        let mut s = DtmfSender::new('#', Duration::from_millis(100)).unwrap();
        let mut packets = Vec::new();
        while let Some(p) = s.next_packet() {
            packets.push(p);
        }
        // 160, 320, 480, 640 then three ends at 800.
        assert_eq!(packets.len(), 7);
        assert!(packets[0].0 && !packets[1].0);
        let parsed: Vec<_> = packets
            .iter()
            .map(|(_, b)| EventPayload::parse(b).unwrap())
            .collect();
        assert_eq!(parsed[0].duration, 160);
        assert!(
            parsed[4..]
                .iter()
                .all(|p| p.end && p.duration == 800 && p.event == 11)
        );
        assert!(DtmfSender::new('x', Duration::from_millis(100)).is_err());
    }

    #[test]
    fn info_bodies() {
        assert_eq!(
            parse_info_body("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n"),
            Some(('5', Duration::from_millis(160)))
        );
        assert_eq!(
            parse_info_body(
                "Application/DTMF-Relay; charset=x",
                b"Signal= #\nDuration= 250\n"
            ),
            Some(('#', Duration::from_millis(250)))
        );
        assert_eq!(
            parse_info_body("application/dtmf-relay", b"Signal=11\r\n"),
            Some(('#', Duration::from_millis(250)))
        );
        assert_eq!(
            parse_info_body("application/dtmf", b"7\r\n"),
            Some(('7', Duration::from_millis(250)))
        );
        assert_eq!(
            parse_info_body("application/dtmf-relay", b"Signal=Z\r\n"),
            None
        );
        assert_eq!(parse_info_body("text/plain", b"5"), None);
        for key in "0123456789*#ABCD".chars() {
            let body = info_body(key, Duration::from_millis(120)).unwrap();
            assert_eq!(
                parse_info_body("application/dtmf-relay", body.as_bytes()),
                Some((key, Duration::from_millis(120)))
            );
        }
        assert!(info_body('x', Duration::from_millis(100)).is_err());
        assert_eq!(parse_info_body("application/dtmf", &[0xFF, 0xFE]), None);
    }

    proptest! {
        #[test]
        fn detector_never_panics(packets in proptest::collection::vec((any::<u32>(), proptest::collection::vec(any::<u8>(), 0..8)), 0..50)) {
            let t0 = Instant::now();
            let mut d = DtmfDetector::default();
            for (i, (ts, p)) in packets.iter().enumerate() {
                d.handle(t0 + Duration::from_millis(i as u64), *ts % 4, p);
                while d.poll_digit().is_some() {}
            }
        }

        /// Whatever packets of a run of key presses are lost (each press keeps at
        /// least one), every press gives exactly one digit, in order.
        #[test]
        fn one_digit_per_press_under_any_loss(
            presses in proptest::collection::vec((0u8..16, 2usize..12, any::<u16>()), 1..12),
        ) {
            let t0 = Instant::now();
            let mut d = DtmfDetector::default();
            let mut got = String::new();
            let mut want = String::new();
            let mut now = t0;
            for (i, (event, len, lost)) in presses.iter().enumerate() {
                want.push(event_to_char(*event).unwrap());
                let ts = 1000 + i as u32 * 4000;
                // `len` packets: len-3 growing ones then three ends; bit k of `lost`
                // drops packet k, but never all of them.
                let mut kept = 0;
                for k in 0..*len {
                    now += Duration::from_millis(20);
                    let end = k + 3 >= *len;
                    let dropped = lost & (1 << (k % 16)) != 0 && !(k + 1 == *len && kept == 0);
                    if dropped {
                        continue;
                    }
                    kept += 1;
                    d.handle(now, ts, &pkt(*event, end, (k as u16 + 1) * 160));
                    got.extend(std::iter::from_fn(|| d.poll_digit()).map(|g| g.digit));
                }
                now += Duration::from_millis(60);
                d.handle_timeout(now);
                got.extend(std::iter::from_fn(|| d.poll_digit()).map(|g| g.digit));
            }
            now += EVENT_STALE;
            d.handle_timeout(now);
            got.extend(std::iter::from_fn(|| d.poll_digit()).map(|g| g.digit));
            prop_assert_eq!(got, want);
        }

        #[test]
        fn info_parser_never_panics(ct in "\\PC{0,30}", body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_info_body(&ct, &body);
        }
    }
}
