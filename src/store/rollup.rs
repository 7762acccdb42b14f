//! The journal's daily roll-up: per company and UTC day, the figures
//! [`analytics`](super::analytics) reports, so a month over every company reads a
//! few thousand summed rows instead of half a million calls.
//!
//! # What is kept
//!
//! Keyed by the UTC day of a call's offer or a ticket's registration, and by the
//! company (and the city the figure is filtered by: a ticket's house's, a call's
//! company's):
//!
//! - the line's calls against Rules №416 (counts that add up);
//! - tickets per local day (the house's city's), category and reason;
//! - time to accept and to complete as a histogram in fixed bins, each bin with the
//!   smallest and largest value it holds;
//! - CSI/CES answer counts and sums; per executor the count of each CSI score, the
//!   tickets rated and the tickets completed.
//!
//! The tickets and the time histograms are also kept summed over companies, per UTC
//! day and city (migration 0017): per company a day's histogram holds about one row
//! per ticket, so analytics over every company (all cities or one) read those
//! instead. The refresh rebuilds a day's city rows from its company rows each time
//! it recomputes the day.
//!
//! # How it stays right
//!
//! Triggers (migration 0013) mark a (company, UTC day) dirty whenever a call, ticket,
//! history line, survey answer, callback job or attempt that feeds it is written, and
//! when a house's or company's city or a city's time zone changes. Before an
//! analytics query reads the roll-up, [`Store::refresh_journal_rollup`] recomputes the
//! dirty days from the raw rows and only those, in one transaction. A query's range
//! rarely falls on UTC midnights: the whole UTC days inside it come from the roll-up;
//! a partial day at its ends is aggregated from the raw rows the same way when it is
//! at most half a day, else it is the day's roll-up less the rest of the day, read
//! raw (a month ending now subtracts the empty rest of today).
//!
//! # Percentiles
//!
//! Sums are exact. A median cannot be summed, so over several companies it is read
//! from the histogram: below 64 s a bin is one second; above, bin `k` holds
//! `[64·1.05^(k−64), 64·1.05^(k−63))`. The value of a rank is interpolated between
//! the smallest and largest value of the bin it falls in, so it is exact when that
//! bin holds at most two values or one distinct value, and otherwise off by less than
//! the bin's width: under 5 % of the true value. Queries for one company read the raw
//! rows and stay exact.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};

use super::analytics::{
    Analytics, AnalyticsQuery, Bucket, CallCompliance, ExecutorRatings, MetricAverage, Percentiles,
    TicketCount, executor_table,
};
use super::backend::{dispatch, per_backend};
use super::directory::TenantScope;
use super::ids::EmployeeId;
use super::{Store, StoreError};

per_backend!("sql/rollup.rs");

/// Bins below this many seconds hold one second each.
const EXACT_BELOW: i64 = 64;
/// The ratio between a bin's bounds above [`EXACT_BELOW`].
const BIN_RATIO: f64 = 1.05;

/// The histogram bin of a duration in seconds.
pub(crate) fn bin(seconds: i64) -> i64 {
    if seconds < EXACT_BELOW {
        return seconds;
    }
    let k = ((seconds as f64 / EXACT_BELOW as f64).ln() / BIN_RATIO.ln()).floor();
    // At most a few hundred for any duration an i64 holds.
    EXACT_BELOW + k as i64
}

/// What differs between the dialects for the roll-up.
pub(crate) trait RollupSql {
    /// Taken at the start of a refresh so two refreshes never recompute one day at
    /// once (SQLite's write transaction already excludes them).
    const LOCK: Option<&'static str>;
    /// The size in bytes of the dirty marks' table, and the statement that gives
    /// back the pages of the marks a refresh deleted. PostgreSQL keeps deleted rows
    /// until a vacuum, and the refresh's "anything dirty?" check reads every page
    /// of them (after the bulk load of the benchmark, 7 million dead marks in 360
    /// MB: 85 ms on every query). SQLite frees the pages of deleted rows at once.
    const SHRINK: Option<(&'static str, &'static str)>;
}

impl RollupSql for sqlx::Sqlite {
    const LOCK: Option<&'static str> = None;
    const SHRINK: Option<(&'static str, &'static str)> = None;
}

impl RollupSql for sqlx::Postgres {
    const LOCK: Option<&'static str> = Some("SELECT pg_advisory_xact_lock(7514001)");
    const SHRINK: Option<(&'static str, &'static str)> = Some((
        "SELECT CAST(pg_relation_size('journal_dirty_days') AS BIGINT)",
        "VACUUM (SKIP_LOCKED) journal_dirty_days",
    ));
}

/// A refresh that leaves the dirty marks' table larger than this vacuums it.
pub(crate) const SHRINK_ABOVE_BYTES: i64 = 1 << 20;

/// Which rows an aggregation reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Filter<'a> {
    /// These company ids (0: calls no company claimed), for the roll-up itself.
    Tenants(&'a [i64]),
    /// A reader's scope and the query's city, for the partial days of a range.
    Query(&'a TenantScope, &'a AnalyticsQuery),
}

/// Calls of one company and day: calls, answered, judged for 30 s, met 30 s,
/// judged for 5 min, met 5 min, callbacks due, called back within 10 min.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CallDay {
    pub(crate) tenant: i64,
    pub(crate) city: Option<i64>,
    pub(crate) counts: [i64; 8],
}

/// Tickets of one local day, category and reason.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TicketDay {
    pub(crate) tenant: i64,
    pub(crate) city: i64,
    pub(crate) local_day: String,
    pub(crate) category: String,
    pub(crate) reason: i64,
    pub(crate) tickets: i64,
}

/// One histogram bin of time to accept (`accepted`) or complete (`done`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BinDay {
    pub(crate) tenant: i64,
    pub(crate) city: i64,
    pub(crate) category: String,
    pub(crate) kind: String,
    pub(crate) bin: i64,
    pub(crate) n: i64,
    pub(crate) min_s: i64,
    pub(crate) max_s: i64,
}

/// CSI or CES answers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RatingDay {
    pub(crate) tenant: i64,
    pub(crate) city: i64,
    pub(crate) metric: String,
    pub(crate) answers: i64,
    pub(crate) sum: i64,
}

/// One executor's figures.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ExecutorDay {
    pub(crate) tenant: i64,
    pub(crate) city: i64,
    pub(crate) executor: i64,
    pub(crate) scores: [i64; 5],
    pub(crate) answers: i64,
    pub(crate) sum: i64,
    pub(crate) rated: i64,
    pub(crate) completed: i64,
}

/// Everything kept for a set of days (or summed over them).
#[derive(Debug, Clone, Default)]
pub(crate) struct Figures {
    pub(crate) calls: Vec<CallDay>,
    pub(crate) tickets: Vec<TicketDay>,
    pub(crate) durations: Vec<BinDay>,
    pub(crate) ratings: Vec<RatingDay>,
    pub(crate) executors: Vec<ExecutorDay>,
}

impl Figures {
    /// Counts to subtract (the smallest and largest values of a bin are kept: the
    /// bin's bounds still hold every value left in it).
    fn negate(&mut self) {
        for c in &mut self.calls {
            c.counts.iter_mut().for_each(|n| *n = -*n);
        }
        for t in &mut self.tickets {
            t.tickets = -t.tickets;
        }
        for d in &mut self.durations {
            d.n = -d.n;
        }
        for r in &mut self.ratings {
            r.answers = -r.answers;
            r.sum = -r.sum;
        }
        for e in &mut self.executors {
            e.scores.iter_mut().for_each(|n| *n = -*n);
            e.answers = -e.answers;
            e.sum = -e.sum;
            e.rated = -e.rated;
            e.completed = -e.completed;
        }
    }

    fn extend(&mut self, other: Figures) {
        self.calls.extend(other.calls);
        self.tickets.extend(other.tickets);
        self.durations.extend(other.durations);
        self.ratings.extend(other.ratings);
        self.executors.extend(other.executors);
    }
}

/// One ticket's time to accept and to complete, in seconds.
#[derive(Debug, Clone)]
pub(crate) struct TicketTimes {
    pub(crate) tenant: i64,
    pub(crate) city: i64,
    pub(crate) category: String,
    pub(crate) accept: Option<i64>,
    pub(crate) done: Option<i64>,
}

/// A bin's count, smallest and largest value.
type BinFill = (i64, i64, i64);

/// Company, city, category, kind and bin.
type BinKey = (i64, i64, String, &'static str, i64);

/// A range's start and end.
type Window = (DateTime<Utc>, DateTime<Utc>);

/// Per-ticket durations of a window, binned per company, city, category and kind.
pub(crate) fn bin_durations(rows: Vec<TicketTimes>) -> Vec<BinDay> {
    let mut bins: BTreeMap<BinKey, BinFill> = BTreeMap::new();
    for TicketTimes {
        tenant,
        city,
        category,
        accept,
        done,
    } in rows
    {
        for (kind, value) in [("accepted", accept), ("done", done)] {
            let Some(s) = value else { continue };
            let e = bins
                .entry((tenant, city, category.clone(), kind, bin(s)))
                .or_insert((0, s, s));
            e.0 += 1;
            e.1 = e.1.min(s);
            e.2 = e.2.max(s);
        }
    }
    bins.into_iter()
        .map(
            |((tenant, city, category, kind, bin), (n, min_s, max_s))| BinDay {
                tenant,
                city,
                category,
                kind: kind.to_owned(),
                bin,
                n,
                min_s,
                max_s,
            },
        )
        .collect()
}

/// Nearest-rank median and 90th percentile from bins sorted by bin.
fn percentiles_of(key: String, bins: &[BinFill]) -> Percentiles {
    let n: i64 = bins.iter().map(|b| b.0).sum();
    let at = |rank: i64| -> Option<i64> {
        let mut seen = 0;
        for &(count, min_s, max_s) in bins {
            if rank <= seen + count {
                let k = rank - seen; // 1..=count
                if count <= 1 {
                    return Some(min_s);
                }
                return Some(min_s + ((max_s - min_s) * (k - 1) + (count - 1) / 2) / (count - 1));
            }
            seen += count;
        }
        None
    };
    Percentiles {
        key,
        count: n,
        median_s: at((n + 1) / 2),
        p90_s: at((9 * n + 9) / 10),
    }
}

/// `all` first, then each category, as the raw query orders them.
fn percentile_table(durations: &[BinDay], kind: &str) -> Vec<Percentiles> {
    let mut all: BTreeMap<i64, BinFill> = BTreeMap::new();
    let mut per: BTreeMap<&str, BTreeMap<i64, BinFill>> = BTreeMap::new();
    for d in durations.iter().filter(|d| d.kind == kind) {
        for map in [&mut all, per.entry(d.category.as_str()).or_default()] {
            let e = map.entry(d.bin).or_insert((0, i64::MAX, i64::MIN));
            e.0 += d.n;
            if d.n > 0 {
                e.1 = e.1.min(d.min_s);
                e.2 = e.2.max(d.max_s);
            }
        }
    }
    let keep = |m: BTreeMap<i64, BinFill>| -> Vec<BinFill> {
        m.into_values().filter(|b| b.0 > 0 && b.1 <= b.2).collect()
    };
    let all = keep(all);
    let per: Vec<(&str, Vec<BinFill>)> = per
        .into_iter()
        .map(|(k, m)| (k, keep(m)))
        .filter(|(_, bins)| !bins.is_empty())
        .collect();
    let mut out = Vec::new();
    if !all.is_empty() {
        out.push(percentiles_of("all".into(), &all));
    }
    for (category, bins) in per {
        out.push(percentiles_of(category.to_owned(), &bins));
    }
    out
}

/// The bucket a local day falls in.
fn bucket_of(local_day: &str, bucket: Bucket) -> String {
    let Ok(d) = NaiveDate::parse_from_str(local_day, "%Y-%m-%d") else {
        return local_day.to_owned();
    };
    let first = match bucket {
        Bucket::Day => d,
        Bucket::Week => d - Duration::days(i64::from(d.weekday().num_days_from_monday())),
        Bucket::Month => d.with_day(1).unwrap_or(d),
    };
    first.format("%Y-%m-%d").to_string()
}

/// Names the roll-up's ids for the report.
#[derive(Debug, Default)]
pub(crate) struct Labels {
    pub(crate) tenants: HashMap<i64, String>,
    pub(crate) cities: HashMap<i64, String>,
    pub(crate) work_types: HashMap<i64, String>,
    pub(crate) employees: HashMap<i64, String>,
}

/// The report from summed figures.
fn assemble(f: Figures, labels: &Labels, bucket: Bucket) -> Analytics {
    let mut tickets: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    for t in &f.tickets {
        let Some(work_type) = labels.work_types.get(&t.reason) else {
            continue;
        };
        *tickets
            .entry((
                bucket_of(&t.local_day, bucket),
                t.category.clone(),
                work_type.clone(),
            ))
            .or_default() += t.tickets;
    }
    let mut calls: BTreeMap<(Option<String>, Option<String>), [i64; 8]> = BTreeMap::new();
    for c in &f.calls {
        let tenant = labels.tenants.get(&c.tenant).cloned();
        let city = c.city.and_then(|id| labels.cities.get(&id).cloned());
        let e = calls.entry((tenant, city)).or_default();
        for (sum, n) in e.iter_mut().zip(c.counts) {
            *sum += n;
        }
    }
    let mut ratings: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for r in &f.ratings {
        let e = ratings.entry(r.metric.as_str()).or_default();
        e.0 += r.answers;
        e.1 += r.sum;
    }
    let mut per_executor: BTreeMap<i64, ExecutorDay> = BTreeMap::new();
    for e in &f.executors {
        let sum = per_executor.entry(e.executor).or_default();
        for (s, n) in sum.scores.iter_mut().zip(e.scores) {
            *s += n;
        }
        sum.answers += e.answers;
        sum.sum += e.sum;
        sum.rated += e.rated;
        sum.completed += e.completed;
    }
    let mut rated = Vec::new();
    let mut completed = HashMap::new();
    for (id, e) in per_executor {
        let Some(name) = labels.employees.get(&id) else {
            continue;
        };
        if e.answers > 0 {
            rated.push(ExecutorRatings {
                executor_id: EmployeeId(id),
                name: name.clone(),
                scores: e.scores,
                average: Some(e.sum as f64 / e.answers as f64),
                completed: 0,
                rated: e.rated,
                share_rated: None,
            });
        }
        if e.completed > 0 {
            completed.insert(id, (name.clone(), e.completed));
        }
    }
    Analytics {
        tickets: tickets
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|((bucket, category, work_type), n)| TicketCount {
                bucket,
                category,
                work_type,
                tickets: n,
            })
            .collect(),
        time_to_accept: percentile_table(&f.durations, "accepted"),
        time_to_complete: percentile_table(&f.durations, "done"),
        calls: calls
            .into_iter()
            .filter(|(_, n)| n[0] > 0)
            .map(|((tenant, city), n)| CallCompliance {
                tenant,
                city,
                calls: n[0],
                answered: n[1],
                within_30s_of: n[2],
                within_30s: n[3],
                within_5min_of: n[4],
                within_5min: n[5],
                callbacks_due: n[6],
                callbacks_within_10min: n[7],
            })
            .collect(),
        ratings: ratings
            .into_iter()
            .filter(|(_, (n, _))| *n > 0)
            .map(|(metric, (n, sum))| MetricAverage {
                metric: metric.to_owned(),
                answers: n,
                average: Some(sum as f64 / n as f64),
            })
            .collect(),
        executors: executor_table(rated, completed),
    }
}

/// `YYYY-MM-DD` of a UTC day.
fn day_name(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// Midnight UTC of `t`'s day.
fn day_start(t: DateTime<Utc>) -> DateTime<Utc> {
    t.date_naive().and_time(NaiveTime::MIN).and_utc()
}

/// How a range splits: the partial-day windows read raw, and the whole UTC days
/// `[first, end)` read from the roll-up (none when `first >= end`).
fn split(from: DateTime<Utc>, to: DateTime<Utc>) -> (Vec<Window>, String, String) {
    let first = if day_start(from) == from {
        from
    } else {
        day_start(from) + Duration::days(1)
    };
    let end = day_start(to);
    let day = |t: DateTime<Utc>| t.format("%Y-%m-%d").to_string();
    if first > end {
        return (vec![(from, to)], day(first), day(first));
    }
    let edges = [(from, first), (end, to)]
        .into_iter()
        .filter(|(a, b)| a < b)
        .collect();
    (edges, day(first), day(end))
}

impl Store {
    /// Recomputes the roll-up's dirty days from the raw rows; returns how many
    /// (company, day) pairs it recomputed. Analytics over several companies call it
    /// before reading; it may also be run ahead (after a bulk load, say).
    pub async fn refresh_journal_rollup(&self) -> Result<u64, StoreError> {
        dispatch!(self, refresh())
    }

    /// The summary over several companies, read from the roll-up (see the module
    /// doc); [`Store::analytics`] decides when.
    pub(crate) async fn rolled_up_analytics(
        &self,
        scope: &TenantScope,
        query: &AnalyticsQuery,
    ) -> Result<Analytics, StoreError> {
        self.refresh_journal_rollup().await?;
        let (edges, first, end) = split(query.from, query.to);
        let mut figures: Figures = if first < end {
            dispatch!(self, read(scope, query, &first, &end))?
        } else {
            Figures::default()
        };
        for (a, b) in edges {
            let day = day_start(a);
            let next = day + Duration::days(1);
            if b - a > Duration::hours(12) {
                // Most of a day: the day's roll-up less the rest of it, read raw.
                figures.extend(dispatch!(
                    self,
                    read(scope, query, &day_name(day), &day_name(next))
                )?);
                for (x, y) in [(day, a), (b, next)] {
                    if x < y {
                        let rest = AnalyticsQuery {
                            from: x,
                            to: y,
                            ..query.clone()
                        };
                        let mut f: Figures = dispatch!(
                            self,
                            aggregate_window(&rest, Filter::Query(scope, &rest), query.from)
                        )?;
                        f.negate();
                        figures.extend(f);
                    }
                }
            } else {
                let edge = AnalyticsQuery {
                    from: a,
                    to: b,
                    ..query.clone()
                };
                figures.extend(dispatch!(
                    self,
                    aggregate_window(&edge, Filter::Query(scope, &edge), query.from)
                )?);
            }
        }
        let labels: Labels = dispatch!(self, labels(&figures))?;
        Ok(assemble(
            figures,
            &labels,
            query.bucket.unwrap_or(Bucket::Day),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_exact_below_a_minute_and_within_five_per_cent_above() {
        assert_eq!(bin(0), 0);
        assert_eq!(bin(63), 63);
        assert_eq!(bin(64), 64);
        let mut last = bin(64);
        for s in 64..2_000_000i64 {
            let b = bin(s);
            assert!(b == last || b == last + 1, "bins are consecutive at {s}");
            last = b;
        }
        // Every value of a bin is within 5 % of the bin's smallest.
        let lo = (64.0 * BIN_RATIO.powi(100)).ceil() as i64;
        assert_eq!(bin(lo), 164);
        assert_eq!(bin((lo as f64 * 1.049) as i64), 164);
    }

    #[test]
    fn a_rank_is_interpolated_within_its_bin() {
        // Two values in one bin are both exact.
        let p = percentiles_of("all".into(), &[(1, 10, 10), (2, 600, 620)]);
        assert_eq!((p.count, p.median_s, p.p90_s), (3, Some(600), Some(620)));
        let p = percentiles_of("all".into(), &[(5, 1000, 1040)]);
        assert_eq!((p.median_s, p.p90_s), (Some(1020), Some(1040)));
    }

    #[test]
    fn ranges_split_into_whole_utc_days_and_raw_edges() {
        let t = |d: u32, h: u32| {
            chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, d, h, 0, 0).unwrap()
        };
        let (edges, first, end) = split(t(16, 0), t(23, 0));
        assert!(edges.is_empty());
        assert_eq!((first.as_str(), end.as_str()), ("2026-11-16", "2026-11-23"));
        let (edges, first, end) = split(t(16, 10), t(18, 5));
        assert_eq!(edges, vec![(t(16, 10), t(17, 0)), (t(18, 0), t(18, 5))]);
        assert_eq!((first.as_str(), end.as_str()), ("2026-11-17", "2026-11-18"));
        let (edges, first, end) = split(t(16, 10), t(16, 20));
        assert_eq!(edges, vec![(t(16, 10), t(16, 20))]);
        assert!(first >= end);
        assert_eq!(bucket_of("2026-11-22", Bucket::Week), "2026-11-16");
        assert_eq!(bucket_of("2026-11-22", Bucket::Month), "2026-11-01");
    }
}
