//! The admin log: who changed which reference record or account, when, and what it
//! became.
//!
//! A write made through a store handle that acts for someone
//! ([`Store::acting_as`]) writes its log row in the same transaction as the change,
//! so a change is never without its row and a row never without its change. Writes
//! through a plain handle (the demo's seeding, the engine's own bookkeeping) are not
//! logged.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::backend::{dispatch, per_backend};
use super::directory::TenantScope;
use super::{Store, StoreError};

per_backend!("sql/audit.rs");

/// One entry of the admin log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdminEntry {
    /// Row id (entries are listed newest first).
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who (a console extension, or `cli` for the command line).
    pub principal: String,
    /// The tenant the record belongs to; `None` for shared records.
    pub tenant: Option<String>,
    /// `create`, `update`, `remove` or `import`.
    pub action: String,
    /// What kind of record: `tenant`, `house`, `employee`, `user`, ...
    pub subject: String,
    /// Which record (its id or code).
    pub subject_id: String,
    /// What it became (or, for an import, what it did).
    pub detail: serde_json::Value,
}

/// Filter for [`Store::admin_log`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AdminLogFilter {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only this kind of record.
    pub subject: Option<String>,
    /// Entries older than this id (paging back).
    pub before: Option<i64>,
    /// At most this many (1..=500, default 100).
    pub limit: Option<i64>,
}

/// Who a write is made for, and when: what a logged write needs.
#[derive(Debug, Clone)]
pub(crate) struct Actor<'a> {
    pub(crate) principal: &'a str,
    pub(crate) at: DateTime<Utc>,
}

/// One admin-log row as a write hands it over.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Logged<'a> {
    /// The record's tenant (row id), if it has one.
    pub(crate) tenant_id: Option<i64>,
    /// `create`, `update`, `remove`, `import`.
    pub(crate) action: &'a str,
    /// The kind of record.
    pub(crate) subject: &'a str,
    /// Which record.
    pub(crate) subject_id: &'a str,
    /// What it became.
    pub(crate) detail: &'a serde_json::Value,
}

/// Writes admin-log rows inside the caller's transaction; implemented for both
/// dialects, so the queries of every concept can log through `Db::record`.
pub(crate) trait Audited: sqlx::Database {
    /// Writes `entry` as done by `actor`; nothing when no one is acting.
    async fn record(
        conn: &mut Self::Connection,
        actor: Option<&Actor<'_>>,
        entry: Logged<'_>,
    ) -> Result<(), StoreError>;
}

impl Store {
    /// This store, logging every administrative write it makes to the admin log as
    /// done by `principal`.
    pub fn acting_as(&self, principal: &str) -> Store {
        let mut store = self.clone();
        store.actor = Some(principal.into());
        store
    }

    /// Who this handle's writes are logged as, if anyone.
    pub(crate) fn actor(&self) -> Option<Actor<'_>> {
        self.actor.as_deref().map(|principal| Actor {
            principal,
            at: Utc::now(),
        })
    }

    /// The admin log, newest first, limited to `scope` (shared records' entries are
    /// shown to principals of every tenant only).
    pub async fn admin_log(
        &self,
        scope: &TenantScope,
        filter: &AdminLogFilter,
    ) -> Result<Vec<AdminEntry>, StoreError> {
        let limit = filter.limit.unwrap_or(100).clamp(1, 500);
        dispatch!(self, admin_log(scope, filter, limit))
    }
}
