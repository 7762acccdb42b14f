//! Summary analytics over a date range, aggregated in SQL on both dialects: tickets
//! by local day, week or month and by category and work type; the time to accept
//! and to complete a ticket (median and 90th percentile); the line's calls against
//! Rules №416 per tenant and city; CSI and CES averages; and the per-executor table
//! of CSI ratings.
//!
//! # Definitions
//!
//! - A ticket belongs to the range and to a bucket by its registration time, read in
//!   its house's city's time zone (a ticket registered at 00:30 in Екатеринбург is
//!   that local day's, though it is still the previous day in UTC). Each city's UTC
//!   offset is taken at the start of the range (Russian zones keep no summer time).
//!   Weeks start on Monday; buckets are named by their first local day.
//! - Time to accept: from registration to the first history line that made it
//!   `accepted`; time to complete: to the first that made it `done`. Percentiles are
//!   nearest-rank: the median is the ⌈n/2⌉-th smallest value, the 90th percentile the
//!   ⌈0.9·n⌉-th.
//! - Calls: the inbound calls offered in the range, not refused by policy. "Within
//!   T" (30 s, 5 min) counts the answered calls that waited at most T among the
//!   calls answered or abandoned after waiting at least T (a caller who hung up
//!   sooner had nothing to miss). A call with a callback job or the
//!   `callback-scheduled` disposition is due a callback; it meets the rule when the
//!   first callback attempt came within 10 minutes of the call.
//! - Ratings: CSI/CES answers of tickets registered in the range. An answer counts
//!   for the executor it names (the ticket's executor when it was written), else the
//!   ticket's executor; an executor's share of tickets rated is the part of their
//!   done or closed tickets with at least one CSI answer.

use std::collections::HashMap;

use chrono::{DateTime, Offset, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::backend::{dispatch, per_backend};
use super::directory::TenantScope;
use super::ids::EmployeeId;
use super::tickets::{TICKET_SELECT, Ticket, TicketRow};
use super::{Page, Store, StoreError, page_bounds, text_enum};

per_backend!("sql/analytics.rs");

text_enum! {
    /// How the range is cut.
    pub enum Bucket {
        /// Local days.
        Day = "day",
        /// Local weeks, Monday first.
        Week = "week",
        /// Local months.
        Month = "month",
    }
}

/// What to aggregate.
#[derive(Debug, Clone, Deserialize)]
pub struct AnalyticsQuery {
    /// Range start (inclusive).
    pub from: DateTime<Utc>,
    /// Range end (exclusive).
    pub to: DateTime<Utc>,
    /// Bucket size (default day).
    #[serde(default)]
    pub bucket: Option<Bucket>,
    /// Only this tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Only this city (code).
    #[serde(default)]
    pub city: Option<String>,
}

/// Tickets of one bucket, category and work type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TicketCount {
    /// The bucket's first local day, `YYYY-MM-DD`.
    pub bucket: String,
    /// Category.
    pub category: String,
    /// Work type code.
    pub work_type: String,
    /// Tickets registered.
    pub tickets: i64,
}

/// Median and 90th percentile of a duration, in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    /// `all` or a category.
    pub key: String,
    /// How many tickets had it.
    pub count: i64,
    /// Median.
    pub median_s: Option<i64>,
    /// 90th percentile.
    pub p90_s: Option<i64>,
}

/// The line's calls of one tenant against Rules №416.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallCompliance {
    /// Tenant code (none: a citywide call nobody claimed).
    pub tenant: Option<String>,
    /// City code.
    pub city: Option<String>,
    /// Inbound calls counted.
    pub calls: i64,
    /// Answered.
    pub answered: i64,
    /// Calls judged for 30 s / met it.
    pub within_30s_of: i64,
    /// Met 30 s.
    pub within_30s: i64,
    /// Calls judged for 5 minutes.
    pub within_5min_of: i64,
    /// Met 5 minutes.
    pub within_5min: i64,
    /// Calls due a callback.
    pub callbacks_due: i64,
    /// Called back within 10 minutes.
    pub callbacks_within_10min: i64,
}

/// Average of one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricAverage {
    /// `csi`, `ces`.
    pub metric: String,
    /// Answers.
    pub answers: i64,
    /// Their average.
    pub average: Option<f64>,
}

/// One executor's CSI ratings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutorRatings {
    /// The executor.
    pub executor_id: EmployeeId,
    /// Their name.
    pub name: String,
    /// Count of each score, 1 to 5.
    pub scores: [i64; 5],
    /// Average CSI.
    pub average: Option<f64>,
    /// Their done or closed tickets.
    pub completed: i64,
    /// Of those, rated at least once.
    pub rated: i64,
    /// `rated / completed` (none without completed tickets).
    pub share_rated: Option<f64>,
}

/// The whole summary.
#[derive(Debug, Clone, Serialize)]
pub struct Analytics {
    /// Tickets by bucket, category and work type.
    pub tickets: Vec<TicketCount>,
    /// Time to accept, overall (`all`) and per category.
    pub time_to_accept: Vec<Percentiles>,
    /// Time to complete, overall and per category.
    pub time_to_complete: Vec<Percentiles>,
    /// Calls per tenant and city.
    pub calls: Vec<CallCompliance>,
    /// CSI and CES averages.
    pub ratings: Vec<MetricAverage>,
    /// Per executor, worst average first.
    pub executors: Vec<ExecutorRatings>,
}

/// Which tickets a figure was made of, for the drill-down.
#[derive(Debug, Clone, Deserialize)]
pub struct DrillFilter {
    /// Range start (inclusive).
    pub from: DateTime<Utc>,
    /// Range end (exclusive).
    pub to: DateTime<Utc>,
    /// Only this tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Only this city (code).
    #[serde(default)]
    pub city: Option<String>,
    /// Only this category.
    #[serde(default)]
    pub category: Option<String>,
    /// Only this work type.
    #[serde(default)]
    pub work_type: Option<String>,
    /// Only tickets of this executor.
    #[serde(default)]
    pub executor_id: Option<EmployeeId>,
    /// Only tickets rated (CSI) with this score.
    #[serde(default)]
    pub csi: Option<i64>,
    /// Rows to skip.
    #[serde(default)]
    pub offset: Option<i64>,
    /// Page size (1..=500, default 50).
    #[serde(default)]
    pub limit: Option<i64>,
}

/// SQL that differs between the dialects.
pub(crate) trait AnalyticsSql {
    /// Whole seconds from `a` to `b` (both timestamps).
    fn seconds(a: &str, b: &str) -> String;
    /// `YYYY-MM-DD` of the bucket holding `ts` shifted by `offset_min` minutes.
    fn bucket(ts: &str, offset_min: &str, bucket: Bucket) -> String;
}

impl AnalyticsSql for sqlx::Sqlite {
    fn seconds(a: &str, b: &str) -> String {
        format!("CAST(ROUND((julianday({b}) - julianday({a})) * 86400.0) AS INTEGER)")
    }
    fn bucket(ts: &str, offset_min: &str, bucket: Bucket) -> String {
        let shift = format!("(CAST({offset_min} AS TEXT) || ' minutes')");
        match bucket {
            Bucket::Day => format!("date({ts}, {shift})"),
            Bucket::Week => format!("date({ts}, {shift}, '-6 days', 'weekday 1')"),
            Bucket::Month => format!("strftime('%Y-%m-01', {ts}, {shift})"),
        }
    }
}

impl AnalyticsSql for sqlx::Postgres {
    fn seconds(a: &str, b: &str) -> String {
        format!("CAST(ROUND(EXTRACT(EPOCH FROM ({b} - {a}))) AS BIGINT)")
    }
    fn bucket(ts: &str, offset_min: &str, bucket: Bucket) -> String {
        let unit = match bucket {
            Bucket::Day => "day",
            Bucket::Week => "week",
            Bucket::Month => "month",
        };
        format!(
            "to_char(date_trunc('{unit}', ({ts} AT TIME ZONE 'UTC') + ({offset_min}) * interval '1 minute'), 'YYYY-MM-DD')"
        )
    }
}

/// `CASE <column> WHEN <city> THEN <minutes> ... ELSE 0 END` for the cities'
/// offsets at `at`. Only integers from the store go into it.
pub(crate) fn offset_case(column: &str, zones: &[(i64, String)], at: DateTime<Utc>) -> String {
    let mut sql = format!("(CASE {column}");
    for (id, zone) in zones {
        let minutes = zone
            .parse::<chrono_tz::Tz>()
            .map(|tz| {
                i64::from(
                    tz.offset_from_utc_datetime(&at.naive_utc())
                        .fix()
                        .local_minus_utc(),
                ) / 60
            })
            .unwrap_or(0);
        sql.push_str(&format!(" WHEN {id} THEN {minutes}"));
    }
    sql.push_str(" ELSE 0 END)");
    sql
}

impl Store {
    /// The summary for `query`, over the tenants of `scope`.
    pub async fn analytics(
        &self,
        scope: &TenantScope,
        query: &AnalyticsQuery,
    ) -> Result<Analytics, StoreError> {
        if query.to <= query.from {
            return Err(StoreError::invalid("to", "must be after `from`"));
        }
        if query.to - query.from > chrono::Duration::days(400) {
            return Err(StoreError::invalid("to", "at most 400 days"));
        }
        let one_tenant =
            query.tenant.is_some() || matches!(scope, TenantScope::Only(codes) if codes.len() == 1);
        let mut out: Analytics = if one_tenant {
            dispatch!(self, analytics(scope, query))?
        } else {
            self.rolled_up_analytics(scope, query).await?
        };
        // Completed tickets per executor were read beside the ratings; join them.
        for e in &mut out.executors {
            e.share_rated = (e.completed > 0).then(|| e.rated as f64 / e.completed as f64);
        }
        Ok(out)
    }
}

impl Store {
    /// [`Store::analytics`] read from the raw rows whatever the scope: exact
    /// percentiles, but over many companies it reads every call of the range (the
    /// check the roll-up is compared with).
    pub async fn analytics_from_raw_rows(
        &self,
        scope: &TenantScope,
        query: &AnalyticsQuery,
    ) -> Result<Analytics, StoreError> {
        if query.to <= query.from {
            return Err(StoreError::invalid("to", "must be after `from`"));
        }
        let mut out: Analytics = dispatch!(self, analytics(scope, query))?;
        for e in &mut out.executors {
            e.share_rated = (e.completed > 0).then(|| e.rated as f64 / e.completed as f64);
        }
        Ok(out)
    }

    /// The tickets behind an analytics figure, newest first.
    pub async fn analytics_tickets(
        &self,
        scope: &TenantScope,
        filter: &DrillFilter,
    ) -> Result<Page<Ticket>, StoreError> {
        let (offset, limit) = page_bounds(filter.offset, filter.limit);
        dispatch!(self, drill(scope, filter, offset, limit))
    }
}

/// Merges per-executor CSI rows and completed counts.
pub(crate) fn executor_table(
    rated: Vec<ExecutorRatings>,
    completed: HashMap<i64, (String, i64)>,
) -> Vec<ExecutorRatings> {
    let mut out = rated;
    for e in &mut out {
        if let Some((_, n)) = completed.get(&e.executor_id.0) {
            e.completed = *n;
        }
    }
    for (id, (name, n)) in completed {
        if !out.iter().any(|e| e.executor_id.0 == id) {
            out.push(ExecutorRatings {
                executor_id: EmployeeId(id),
                name,
                scores: [0; 5],
                average: None,
                completed: n,
                rated: 0,
                share_rated: None,
            });
        }
    }
    out.sort_by(|a, b| {
        let key = |e: &ExecutorRatings| e.average.unwrap_or(f64::INFINITY);
        key(a).total_cmp(&key(b)).then_with(|| a.name.cmp(&b.name))
    });
    out
}
