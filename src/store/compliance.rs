//! Compliance with Rules №416 §13 for the supervisors' board: how many residents'
//! calls were answered within 30 seconds and within 5 minutes, and how many of the
//! calls that were not answered in time were called back within 10 minutes, for one
//! local day of one city, in total and by local hour.
//!
//! The figures come from the call journal (`calls`: offered and answered times,
//! wait, disposition) and the callback dial jobs linked to a call (`dial_jobs` of
//! kind `callback` whose `call_id` is the call, and their `dial_attempts`). One query
//! fetches the day's inbound calls with the time of their first callback attempt;
//! the classification below is plain Rust, so both dialects agree by construction.
//!
//! # How a call counts
//!
//! - Only residents' inbound calls count: not those refused by policy (`rejected`:
//!   overload refusals, legacy numbers), and not staff members' calls to the dispatch
//!   line (`number_kind = 'dispatch'`), which have their own callback target.
//! - **Answered within T** (T = 30 s or 5 min): a call answered after waiting at most
//!   T meets it; one answered later, or still unanswered T after it was offered
//!   (ended or still waiting), misses it. A caller who hung up before T had passed
//!   is not counted for T at all (there was nothing to miss yet), and neither is a
//!   call still waiting for less than T.
//! - **Called back within 10 minutes**: a call with a callback job, or with the
//!   `callback-scheduled` disposition, is due a callback 10 minutes after it was
//!   offered. It meets the rule when the resident's phone was answered on a callback
//!   attempt by then (an attempt nobody answered has not called the resident back),
//!   misses it when that came later or has not come and the 10 minutes are over, and
//!   is not counted while the 10 minutes are still running.
//! - Calls whose tenant is unknown (a citywide call nobody claimed) belong to no city;
//!   they are counted only for readers who see every tenant and only when the store
//!   has a single city.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::backend::{dispatch, per_backend};
use super::directory::TenantScope;
use super::{Store, StoreError};

per_backend!("sql/compliance.rs");

/// The answer target for a tile of the first kind.
pub const ANSWER_FAST: Duration = Duration::seconds(30);
/// The legal answer limit (Rules №416 §13).
pub const ANSWER_LIMIT: Duration = Duration::minutes(5);
/// The legal callback limit, from when the call was offered.
pub const CALLBACK_LIMIT: Duration = Duration::minutes(10);

/// One compliance figure: how many calls met the target out of how many counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Tile {
    /// Calls that met the target.
    pub met: i64,
    /// Calls counted.
    pub total: i64,
    /// `met / total`, or `None` when nothing was counted.
    pub share: Option<f64>,
}

impl Tile {
    fn add(&mut self, met: bool) {
        self.total += 1;
        if met {
            self.met += 1;
        }
    }

    fn finish(&mut self) {
        self.share = (self.total > 0).then(|| self.met as f64 / self.total as f64);
    }
}

/// One local hour of the day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HourFigures {
    /// Local hour, 0..=23.
    pub hour: u32,
    /// Inbound calls offered in that hour (refused-by-policy calls excluded).
    pub offered: i64,
    /// Of those, answered within 30 seconds.
    pub answered_30s: i64,
    /// Of those, answered within 5 minutes (including the 30-second ones).
    pub answered_5m: i64,
    /// Of those, counted as missing the 5-minute limit.
    pub missed_5m: i64,
    /// Of those, due a callback and counted.
    pub callbacks_due: i64,
    /// Of those, called back within 10 minutes.
    pub callbacks_in_time: i64,
}

/// The compliance figures of one city's local day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComplianceDay {
    /// City code.
    pub city: String,
    /// The city's time zone.
    pub time_zone: Tz,
    /// The local date.
    pub date: NaiveDate,
    /// Start of that day (UTC).
    pub from: DateTime<Utc>,
    /// Start of the next day (UTC).
    pub to: DateTime<Utc>,
    /// When the figures were computed.
    pub as_of: DateTime<Utc>,
    /// Share answered within 30 seconds.
    pub answered_30s: Tile,
    /// Share answered within 5 minutes.
    pub answered_5m: Tile,
    /// Share of due callbacks made within 10 minutes of the call.
    pub callbacks_10m: Tile,
    /// The same by local hour, 24 entries.
    pub hourly: Vec<HourFigures>,
}

/// One inbound call as the compliance query reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplianceCall {
    /// When it was offered.
    pub offered_at: DateTime<Utc>,
    /// When it was answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Seconds waited before the answer (or the hang-up), as journalled.
    pub wait_seconds: Option<i64>,
    /// The disposition text.
    pub disposition: Option<String>,
    /// The kind of number it dialled (`tenant`, `citywide`, `dispatch`...).
    pub number_kind: Option<String>,
    /// Whether a callback job follows it up.
    pub has_callback: bool,
    /// When a callback attempt was first answered by the resident.
    pub first_callback_at: Option<DateTime<Utc>>,
}

/// The UTC bounds of `date` in `tz` (a day may be 23 or 25 hours long).
pub fn local_day(tz: Tz, date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = |d: NaiveDate| {
        let midnight = d.and_hms_opt(0, 0, 0).unwrap_or_default();
        tz.from_local_datetime(&midnight)
            .earliest()
            // A zone that skips midnight: the first instant after the gap.
            .unwrap_or_else(|| tz.from_utc_datetime(&midnight))
            .with_timezone(&Utc)
    };
    (start(date), start(date.succ_opt().unwrap_or(date)))
}

/// Classifies `calls` into the figures of the day `from..to` in `tz`, as of `now`.
pub fn tally(
    city: &str,
    tz: Tz,
    date: NaiveDate,
    calls: &[ComplianceCall],
    now: DateTime<Utc>,
) -> ComplianceDay {
    let (from, to) = local_day(tz, date);
    let mut day = ComplianceDay {
        city: city.to_owned(),
        time_zone: tz,
        date,
        from,
        to,
        as_of: now,
        answered_30s: Tile::default(),
        answered_5m: Tile::default(),
        callbacks_10m: Tile::default(),
        hourly: (0..24)
            .map(|hour| HourFigures {
                hour,
                ..HourFigures::default()
            })
            .collect(),
    };
    for call in calls {
        if call.disposition.as_deref() == Some("rejected")
            || call.number_kind.as_deref() == Some("dispatch")
        {
            continue;
        }
        let hour = call.offered_at.with_timezone(&tz).hour() as usize;
        let Some(figures) = day.hourly.get_mut(hour) else {
            continue;
        };
        figures.offered += 1;
        if let Some(met) = answered_within(call, ANSWER_FAST, now) {
            day.answered_30s.add(met);
            figures.answered_30s += i64::from(met);
        }
        if let Some(met) = answered_within(call, ANSWER_LIMIT, now) {
            day.answered_5m.add(met);
            figures.answered_5m += i64::from(met);
            figures.missed_5m += i64::from(!met);
        }
        if let Some(met) = called_back_in_time(call, now) {
            day.callbacks_10m.add(met);
            figures.callbacks_due += 1;
            figures.callbacks_in_time += i64::from(met);
        }
    }
    day.answered_30s.finish();
    day.answered_5m.finish();
    day.callbacks_10m.finish();
    day
}

/// `Some(met)` when the call counts for the target `limit`, `None` when it does not
/// (yet).
fn answered_within(call: &ComplianceCall, limit: Duration, now: DateTime<Utc>) -> Option<bool> {
    if let Some(answered) = call.answered_at {
        let waited = call
            .wait_seconds
            .map(Duration::seconds)
            .unwrap_or(answered - call.offered_at);
        return Some(waited <= limit);
    }
    let deadline = call.offered_at + limit;
    let gave_up = call.ended_at.or_else(|| {
        // Ended without an end time: the journalled wait says when.
        call.disposition
            .as_ref()
            .and(call.wait_seconds)
            .map(|w| call.offered_at + Duration::seconds(w))
    });
    match gave_up {
        Some(end) if end <= deadline => None,
        Some(_) => Some(false),
        None if now > deadline => Some(false),
        None => None,
    }
}

fn called_back_in_time(call: &ComplianceCall, now: DateTime<Utc>) -> Option<bool> {
    let due = call.has_callback || call.disposition.as_deref() == Some("callback-scheduled");
    if !due {
        return None;
    }
    let deadline = call.offered_at + CALLBACK_LIMIT;
    match call.first_callback_at {
        Some(at) => Some(at <= deadline),
        None if now > deadline => Some(false),
        None => None,
    }
}

impl Store {
    /// The compliance figures of `city` for the local day `date` (today in the
    /// city's zone when `None`), over the tenants in `scope`, as of `now`.
    pub async fn compliance_day(
        &self,
        scope: &TenantScope,
        city: &str,
        date: Option<NaiveDate>,
        now: DateTime<Utc>,
    ) -> Result<ComplianceDay, StoreError> {
        let (tz, single_city) = dispatch!(self, city_zone(city))?;
        let date = date.unwrap_or_else(|| now.with_timezone(&tz).date_naive());
        let (from, to) = local_day(tz, date);
        let tenantless = single_city && *scope == TenantScope::All;
        let calls = dispatch!(self, day_calls(scope, city, from, to, tenantless))?;
        Ok(tally(city, tz, date, &calls, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64, second: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-03-10T04:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
            + Duration::minutes(minute)
            + Duration::seconds(second)
    }

    fn call(offered: DateTime<Utc>) -> ComplianceCall {
        ComplianceCall {
            offered_at: offered,
            answered_at: None,
            ended_at: None,
            wait_seconds: None,
            disposition: None,
            number_kind: Some("tenant".into()),
            has_callback: false,
            first_callback_at: None,
        }
    }

    #[test]
    fn calls_are_classified_per_target() {
        let tz: Tz = "Asia/Yekaterinburg".parse().unwrap();
        let now = at(30, 0);
        let fast = ComplianceCall {
            answered_at: Some(at(0, 20)),
            ..call(at(0, 0))
        };
        let slow = ComplianceCall {
            answered_at: Some(at(3, 0)),
            ..call(at(0, 0))
        };
        let late = ComplianceCall {
            answered_at: Some(at(7, 0)),
            ..call(at(0, 0))
        };
        let short_abandon = ComplianceCall {
            ended_at: Some(at(0, 10)),
            disposition: Some("abandoned".into()),
            ..call(at(0, 0))
        };
        let long_abandon_called_back = ComplianceCall {
            ended_at: Some(at(6, 0)),
            disposition: Some("callback-scheduled".into()),
            has_callback: true,
            first_callback_at: Some(at(8, 0)),
            ..call(at(0, 0))
        };
        let called_back_too_late = ComplianceCall {
            ended_at: Some(at(5, 30)),
            disposition: Some("abandoned".into()),
            has_callback: true,
            first_callback_at: Some(at(12, 0)),
            ..call(at(0, 0))
        };
        let waiting_now = call(at(29, 50));
        let staff = ComplianceCall {
            disposition: Some("callback-scheduled".into()),
            number_kind: Some("dispatch".into()),
            has_callback: true,
            ended_at: Some(at(0, 1)),
            ..call(at(0, 0))
        };
        let day = tally(
            "ekb",
            tz,
            NaiveDate::from_ymd_opt(2025, 3, 10).unwrap(),
            &[
                fast,
                slow,
                late,
                short_abandon,
                long_abandon_called_back,
                called_back_too_late,
                waiting_now,
                staff,
            ],
            now,
        );
        // 30 s: fast met; slow, late and the two long waits missed; the short
        // abandon and the call waiting 10 s are not counted.
        assert_eq!((day.answered_30s.met, day.answered_30s.total), (1, 5));
        // 5 min: fast and slow met; late and both abandons after 5 min missed.
        assert_eq!((day.answered_5m.met, day.answered_5m.total), (2, 5));
        assert_eq!((day.callbacks_10m.met, day.callbacks_10m.total), (1, 2));
        assert_eq!(day.callbacks_10m.share, Some(0.5));
        // 04:00 UTC is 09:00 in Yekaterinburg; the waiting call is at 09:29.
        let nine = day.hourly[9];
        assert_eq!(
            (nine.offered, nine.answered_30s, nine.answered_5m),
            (7, 1, 2)
        );
        assert_eq!((nine.missed_5m, nine.callbacks_due), (3, 2));
        assert_eq!(day.hourly.iter().map(|h| h.offered).sum::<i64>(), 7);
    }

    #[test]
    fn a_pending_callback_counts_only_once_overdue() {
        let tz: Tz = "Asia/Yekaterinburg".parse().unwrap();
        let pending = ComplianceCall {
            ended_at: Some(at(6, 0)),
            disposition: Some("callback-scheduled".into()),
            ..call(at(0, 0))
        };
        let date = NaiveDate::from_ymd_opt(2025, 3, 10).unwrap();
        let early = tally("ekb", tz, date, std::slice::from_ref(&pending), at(9, 0));
        assert_eq!(early.callbacks_10m.total, 0);
        assert_eq!(early.callbacks_10m.share, None);
        let overdue = tally("ekb", tz, date, &[pending], at(10, 1));
        assert_eq!(
            (overdue.callbacks_10m.met, overdue.callbacks_10m.total),
            (0, 1)
        );
    }

    #[test]
    fn local_days_follow_the_zone() {
        let tz: Tz = "Asia/Yekaterinburg".parse().unwrap();
        let (from, to) = local_day(tz, NaiveDate::from_ymd_opt(2025, 3, 10).unwrap());
        assert_eq!(from.to_rfc3339(), "2025-03-09T19:00:00+00:00");
        assert_eq!(to - from, Duration::hours(24));
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let (from, to) = local_day(berlin, NaiveDate::from_ymd_opt(2025, 3, 30).unwrap());
        assert_eq!(to - from, Duration::hours(23), "the spring-forward day");
    }
}
