//! The ticket journal and the call journal read for export: rows of a period in
//! batches ordered by time and id, each batch starting after the last row of the
//! one before (keyset paging), so an export of a year never holds more than one
//! batch and never slows down as it goes.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::backend::{dispatch, per_backend};
use super::directory::TenantScope;
use super::journal::CallRecord;
use super::tickets::{TICKET_SELECT, Ticket, TicketRow};
use super::{Store, StoreError};

per_backend!("sql/export.rs");

/// Largest batch read at once.
pub const MAX_BATCH: i64 = 5000;

/// What to export.
#[derive(Debug, Clone, Deserialize)]
pub struct ExportQuery {
    /// Period start (inclusive): registration time of tickets, offer time of calls.
    pub from: DateTime<Utc>,
    /// Period end (exclusive).
    pub to: DateTime<Utc>,
    /// Only this tenant.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// One line of the ticket journal.
#[derive(Debug, Clone)]
pub struct JournalTicket {
    /// The ticket.
    pub ticket: Ticket,
    /// When it was first accepted.
    pub accepted_at: Option<DateTime<Utc>>,
    /// When it was first reported done.
    pub done_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Up to `limit` tickets of the period after `after` (registration time, id),
    /// oldest first.
    pub async fn journal_tickets(
        &self,
        scope: &TenantScope,
        query: &ExportQuery,
        after: Option<(DateTime<Utc>, i64)>,
        limit: i64,
    ) -> Result<Vec<JournalTicket>, StoreError> {
        dispatch!(
            self,
            tickets(scope, query, after, limit.clamp(1, MAX_BATCH))
        )
    }

    /// Up to `limit` calls of the period after `after` (offer time, call id),
    /// oldest first.
    pub async fn journal_calls(
        &self,
        scope: &TenantScope,
        query: &ExportQuery,
        after: Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> Result<Vec<CallRecord>, StoreError> {
        dispatch!(self, calls(scope, query, after, limit.clamp(1, MAX_BATCH)))
    }
}
