//! Quiet hours: the part of a city's night when no call that is not an emergency
//! rings (surveys, broadcasts that are not urgent, status checks and supplier calls
//! of planned and paid tickets).
//!
//! Owns the window (`21:00-09:00` by default, read in each city's own time zone) and
//! the two questions the dialer asks of it: is this instant quiet in that zone, and
//! when is the first instant after it that is not. A window may wrap midnight or
//! not (`13:00-14:00` is a lunch break); an empty window (`start == end`) is never
//! quiet. Daylight-saving gaps and folds are handled by asking the zone for the
//! local wall time of each candidate instant, never by adding hours to a local
//! time.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A daily window of local wall-clock time, `start` inclusive, `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// When the quiet begins (local).
    pub start: NaiveTime,
    /// When calls may ring again (local).
    pub end: NaiveTime,
}

impl QuietHours {
    /// No quiet hours at all (an empty window).
    pub fn never() -> Self {
        Self {
            start: NaiveTime::MIN,
            end: NaiveTime::MIN,
        }
    }

    /// The default window, 21:00 to 09:00.
    pub fn night() -> Self {
        Self {
            start: NaiveTime::from_hms_opt(21, 0, 0).unwrap_or_default(),
            end: NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default(),
        }
    }

    /// Whether the local time `t` falls in the window.
    fn contains_local(&self, t: NaiveTime) -> bool {
        if self.start == self.end {
            false
        } else if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }

    /// Whether `at` is quiet in `zone`.
    pub fn is_quiet(&self, at: DateTime<Utc>, zone: Tz) -> bool {
        self.contains_local(at.with_timezone(&zone).time())
    }

    /// `at` itself when it is not quiet in `zone`, else the first instant after it
    /// when the window has ended (the local `end` of the right day; on a day whose
    /// `end` falls into a daylight-saving gap, the first instant after the gap).
    pub fn next_allowed(&self, at: DateTime<Utc>, zone: Tz) -> DateTime<Utc> {
        if !self.is_quiet(at, zone) {
            return at;
        }
        let local = at.with_timezone(&zone);
        // The window ends today (before `end` on its morning side) or tomorrow.
        let day = if local.time() < self.end {
            local.date_naive()
        } else {
            local.date_naive().succ_opt().unwrap_or(local.date_naive())
        };
        let wanted = day.and_time(self.end);
        match zone.from_local_datetime(&wanted).earliest() {
            Some(t) => t.with_timezone(&Utc),
            // `end` does not exist that day (clocks jumped over it): step minute by
            // minute (a gap is at most a few hours) to the first local time that does.
            None => (1..=24 * 60)
                .map(|m| wanted + Duration::minutes(m))
                .find_map(|w| zone.from_local_datetime(&w).earliest())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(at + Duration::hours(12)),
        }
    }
}

impl Default for QuietHours {
    fn default() -> Self {
        Self::night()
    }
}

impl fmt::Display for QuietHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

impl FromStr for QuietHours {
    type Err = String;

    /// `HH:MM-HH:MM`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (a, b) = text
            .trim()
            .split_once('-')
            .ok_or_else(|| format!("`{text}` is not HH:MM-HH:MM"))?;
        let time = |s: &str| {
            NaiveTime::parse_from_str(s.trim(), "%H:%M")
                .map_err(|_| format!("`{}` is not a time of day HH:MM", s.trim()))
        };
        Ok(Self {
            start: time(a)?,
            end: time(b)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_night_is_read_in_the_citys_own_zone() {
        let q = QuietHours::night();
        let ekb: Tz = "Asia/Yekaterinburg".parse().unwrap(); // UTC+5
        let msk: Tz = "Europe/Moscow".parse().unwrap(); // UTC+3
        // 17:30 UTC: 22:30 in Yekaterinburg (quiet), 20:30 in Moscow (not).
        let at = utc("2026-12-06T17:30:00Z");
        assert!(q.is_quiet(at, ekb));
        assert!(!q.is_quiet(at, msk));
        assert_eq!(q.next_allowed(at, msk), at);
        // Yekaterinburg may be called from 09:00 local the next morning.
        assert_eq!(q.next_allowed(at, ekb), utc("2026-12-07T04:00:00Z"));
        // Just after midnight local: the same morning.
        assert_eq!(
            q.next_allowed(utc("2026-12-06T19:30:00Z"), ekb),
            utc("2026-12-07T04:00:00Z")
        );
        // 09:00 sharp is allowed, 08:59 is not.
        assert!(!q.is_quiet(utc("2026-12-07T04:00:00Z"), ekb));
        assert!(q.is_quiet(utc("2026-12-07T03:59:00Z"), ekb));
    }

    #[test]
    fn windows_that_do_not_wrap_and_empty_ones() {
        let lunch: QuietHours = "13:00-14:00".parse().unwrap();
        let z: Tz = "UTC".parse().unwrap();
        assert!(lunch.is_quiet(utc("2026-12-06T13:30:00Z"), z));
        assert!(!lunch.is_quiet(utc("2026-12-06T12:59:00Z"), z));
        assert_eq!(
            lunch.next_allowed(utc("2026-12-06T13:30:00Z"), z),
            utc("2026-12-06T14:00:00Z")
        );
        let never: QuietHours = "10:00-10:00".parse().unwrap();
        assert!(!never.is_quiet(utc("2026-12-06T10:00:00Z"), z));
        assert_eq!(lunch.to_string(), "13:00-14:00");
        assert!("9-21".parse::<QuietHours>().is_err());
        assert!("25:00-09:00".parse::<QuietHours>().is_err());
    }

    #[test]
    fn an_end_inside_a_daylight_saving_gap_moves_past_the_gap() {
        // New York skips 02:00-03:00 on 2026-03-08.
        let ny: Tz = "America/New_York".parse().unwrap();
        let q: QuietHours = "23:00-02:30".parse().unwrap();
        // 23:30 local on March 7th (EST, UTC-5) = 04:30 UTC on the 8th.
        let next = q.next_allowed(utc("2026-03-08T04:30:00Z"), ny);
        // 03:00 EDT (UTC-4) = 07:00 UTC.
        assert_eq!(next, utc("2026-03-08T07:00:00Z"));
        assert!(!q.is_quiet(next, ny));
    }
}
