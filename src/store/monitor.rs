//! The monitor of open tickets: what is open (by category, work type, executor),
//! what is unassigned, what is due soon and what is overdue, filtered by period
//! (registration time), category, work type, reason, house and executor, scoped to
//! the reader's tenants. Counts are aggregated in SQL; the lists are capped.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::backend::{dispatch, per_backend};
use super::directory::TenantScope;
use super::ids::{EmployeeId, HouseId, ReasonId};
use super::tickets::{Category, TICKET_SELECT, Ticket, TicketRow};
use super::{Store, StoreError};

per_backend!("sql/monitor.rs");

/// Most tickets in each of the monitor's lists.
pub const LIST_LIMIT: i64 = 200;

/// Filter for [`Store::monitor`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MonitorFilter {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only this category.
    pub category: Option<Category>,
    /// Only this work type (code).
    pub work_type: Option<String>,
    /// Only this reason.
    pub reason_id: Option<ReasonId>,
    /// Only this house.
    pub house_id: Option<HouseId>,
    /// Only this executor.
    pub executor_id: Option<EmployeeId>,
    /// Registered at or after.
    pub from: Option<DateTime<Utc>>,
    /// Registered before.
    pub to: Option<DateTime<Utc>>,
    /// "Due soon" means within this many minutes (default 60, 1..=1440).
    pub soon_minutes: Option<i64>,
}

/// Open and overdue tickets in one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupCount {
    /// The group's key (category, work type code).
    pub key: String,
    /// Open tickets.
    pub open: i64,
    /// Of those, past their deadline.
    pub overdue: i64,
}

/// One executor's open tickets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecutorLoad {
    /// The executor.
    pub executor_id: EmployeeId,
    /// Their name.
    pub name: String,
    /// Open tickets.
    pub open: i64,
    /// Of those, past their deadline.
    pub overdue: i64,
    /// Of those, not yet accepted.
    pub not_accepted: i64,
}

/// What the monitor shows.
#[derive(Debug, Clone, Serialize)]
pub struct Monitor {
    /// When it was read (the lists are split at this instant).
    pub now: DateTime<Utc>,
    /// The "due soon" horizon used, in minutes.
    pub soon_minutes: i64,
    /// Open tickets.
    pub open: i64,
    /// Open tickets with no executor.
    pub unassigned: i64,
    /// Open tickets past their deadline.
    pub overdue: i64,
    /// Open tickets whose deadline comes within the horizon.
    pub due_soon: i64,
    /// By category.
    pub by_category: Vec<GroupCount>,
    /// By work type.
    pub by_work_type: Vec<GroupCount>,
    /// By executor, most open first.
    pub by_executor: Vec<ExecutorLoad>,
    /// Overdue tickets, longest overdue first (at most [`LIST_LIMIT`]).
    pub overdue_tickets: Vec<Ticket>,
    /// Tickets due soon, nearest deadline first (at most [`LIST_LIMIT`]).
    pub due_soon_tickets: Vec<Ticket>,
    /// The other open tickets, nearest deadline first (at most [`LIST_LIMIT`]).
    pub open_tickets: Vec<Ticket>,
}

impl Store {
    /// The monitor of open tickets visible in `scope`, at `now`.
    pub async fn monitor(
        &self,
        scope: &TenantScope,
        filter: &MonitorFilter,
        now: DateTime<Utc>,
    ) -> Result<Monitor, StoreError> {
        let soon_minutes = filter.soon_minutes.unwrap_or(60).clamp(1, 1440);
        let soon = now + Duration::minutes(soon_minutes);
        dispatch!(self, monitor(scope, filter, now, soon, soon_minutes))
    }
}
