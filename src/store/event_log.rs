//! The cluster's event log: every event any engine node publishes, under one
//! sequence, in PostgreSQL (migration 0012). [`crate::events::cluster`] writes and
//! tails it; this module only holds the queries.
//!
//! Seqs are taken from the one-row `event_counter` by the statement that inserts
//! the events (`UPDATE ... RETURNING` in a data-modifying `WITH`), so the row lock
//! orders writers by commit: a second writer's update waits for the first one's
//! commit, hence a reader that sees seq N+1 also sees N, and a rolled-back write
//! gives its seqs back (no gaps). The same statement calls `pg_notify` on
//! [`CHANNEL`] with the last seq, delivered to listeners when it commits.
//!
//! On SQLite (one node, events in memory only) every query here is refused.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::backend::Backend;
use super::{Store, StoreError};

/// The `LISTEN`/`NOTIFY` channel a write is announced on.
pub const CHANNEL: &str = "dispatchline_events";

/// An event to append: its time, type, tenant and its JSON without the seq
/// (`{"ts":..,"type":..,"tenant":..,"payload":..}`, exactly as clients get it).
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// When it was published.
    pub ts: DateTime<Utc>,
    /// `call.offered`, `ticket.changed`, ...
    pub kind: String,
    /// The tenant it concerns, if any.
    pub tenant: Option<String>,
    /// The event's JSON without its seq.
    pub body: String,
}

/// An event read back from the log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LoggedEvent {
    /// Its place in the cluster's stream.
    pub seq: i64,
    /// Which node run wrote it.
    pub writer: String,
    /// The event's JSON without its seq.
    pub body: String,
}

/// Where the log stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogHead {
    /// The stream's epoch, chosen once when the log was created: resume points are
    /// comparable across nodes and restarts while it stays.
    pub epoch: String,
    /// The last seq given (0 before the first event).
    pub last: u64,
}

fn seq(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn bound(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Store {
    /// Whether this store can hold the cluster's event log (PostgreSQL).
    pub fn shares_events(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// The PostgreSQL pool, if this store is one.
    fn event_pool(&self) -> Result<&PgPool, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => Ok(pool),
            Backend::Sqlite(_) => Err(StoreError::invalid(
                "database",
                "the cluster's event log needs PostgreSQL",
            )),
        }
    }

    /// The log's epoch and last seq.
    pub async fn event_log_head(&self) -> Result<LogHead, StoreError> {
        let (epoch, last): (String, i64) =
            sqlx::query_as("SELECT epoch, last FROM event_counter WHERE id = 1")
                .fetch_one(self.event_pool()?)
                .await?;
        Ok(LogHead {
            epoch,
            last: seq(last),
        })
    }

    /// Appends `events` in order under the next seqs, as written by `writer` in
    /// `batch`, and announces them; returns the last seq given (0 for nothing).
    pub async fn append_events(
        &self,
        writer: &str,
        batch: i64,
        events: &[NewEvent],
    ) -> Result<u64, StoreError> {
        if events.is_empty() {
            return Ok(0);
        }
        let n = i64::try_from(events.len()).unwrap_or(i64::MAX);
        let ts: Vec<DateTime<Utc>> = events.iter().map(|e| e.ts).collect();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        let tenants: Vec<Option<&str>> = events.iter().map(|e| e.tenant.as_deref()).collect();
        let bodies: Vec<&str> = events.iter().map(|e| e.body.as_str()).collect();
        let last: i64 = sqlx::query_scalar(
            "WITH counter AS ( \
                 UPDATE event_counter SET last = last + $1 WHERE id = 1 RETURNING last \
             ), written AS ( \
                 INSERT INTO events (seq, ts, type, tenant, writer, batch, body) \
                 SELECT (SELECT last FROM counter) - $1 + e.n, e.ts, e.kind, e.tenant, $2, $3, e.body \
                 FROM unnest($4::timestamptz[], $5::text[], $6::text[], $7::text[]) \
                      WITH ORDINALITY AS e(ts, kind, tenant, body, n) \
             ) \
             SELECT last FROM counter, \
                 LATERAL (SELECT pg_notify('dispatchline_events', last::text)) AS announced",
        )
        .bind(n)
        .bind(writer)
        .bind(batch)
        .bind(ts)
        .bind(kinds)
        .bind(tenants)
        .bind(bodies)
        .fetch_one(self.event_pool()?)
        .await?;
        Ok(seq(last))
    }

    /// The last seq of `batch` if it was written after seq `after` (a writer whose
    /// commit's answer was lost asks before writing the batch again).
    pub async fn event_batch_written(
        &self,
        after: u64,
        batch: i64,
    ) -> Result<Option<u64>, StoreError> {
        let last: Option<i64> =
            sqlx::query_scalar("SELECT max(seq) FROM events WHERE seq > $1 AND batch = $2")
                .bind(bound(after))
                .bind(batch)
                .fetch_one(self.event_pool()?)
                .await?;
        Ok(last.map(seq))
    }

    /// At most `limit` events after seq `after`, in order.
    pub async fn events_after(
        &self,
        after: u64,
        limit: u32,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT seq, writer, body FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(bound(after))
        .bind(i64::from(limit))
        .fetch_all(self.event_pool()?)
        .await?)
    }

    /// The first seq held that was published at or after `since`.
    pub async fn first_event_since(&self, since: DateTime<Utc>) -> Result<Option<u64>, StoreError> {
        let first: Option<i64> = sqlx::query_scalar("SELECT min(seq) FROM events WHERE ts >= $1")
            .bind(since)
            .fetch_one(self.event_pool()?)
            .await?;
        Ok(first.map(seq))
    }

    /// Removes the events published before `before`; returns how many.
    pub async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM events WHERE ts < $1")
            .bind(before)
            .execute(self.event_pool()?)
            .await?
            .rows_affected())
    }
}
