//! The screen-pop: what the store knows about a calling phone.
//!
//! One lookup answers everything the operator (and the IVR) needs when a call is
//! offered: the caller's known address and so the tenant (on a citywide number the
//! tenant comes from here), open tickets at that house, the debtor flag, outages
//! running at the house, and whether the phone is a staff member's (staff calls are
//! not answered but called back). It runs a handful of indexed point queries on one
//! connection; see `examples/store_bench.rs` for its latency.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::backend::{dispatch, per_backend};
use super::directory::TenantScope;
use super::ids::{EmployeeId, HouseId, OutageId, TicketId};
use super::notices::DebtorFlag;
use super::tickets::{Category, TicketStatus, non_empty};
use super::{Store, StoreError};
use crate::phone::PhoneNumber;

per_backend!("sql/caller.rs");

/// How many known addresses and open tickets a lookup returns at most.
const MAX_ROWS: i64 = 10;

/// An address a phone is known at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KnownAddress {
    /// Tenant code.
    pub tenant: String,
    /// Tenant name (what the operator says when answering a citywide call).
    pub tenant_name: String,
    /// City code.
    pub city: String,
    /// The house.
    pub house_id: HouseId,
    /// The house's address.
    pub address: String,
    /// Apartment, if known.
    pub apartment: Option<String>,
}

/// An open ticket at the caller's house.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenTicket {
    /// Row id.
    pub id: TicketId,
    /// Registration number.
    pub number: String,
    /// Category.
    pub category: Category,
    /// Status.
    pub status: TicketStatus,
    /// The reason's title.
    pub reason: String,
    /// Apartment, when the ticket is about one.
    pub apartment: Option<String>,
    /// Whether it is the caller's own apartment (or house-wide, when `apartment` is
    /// `None`).
    pub same_apartment: bool,
    /// Registered at.
    pub created_at: DateTime<Utc>,
}

/// An outage running at the caller's house.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveOutage {
    /// Row id.
    pub id: OutageId,
    /// Kind (`hot_water`, `heating`, ...).
    pub kind: String,
    /// The notice text.
    pub text: String,
    /// Until when.
    pub until: DateTime<Utc>,
}

/// The employee a phone belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffMember {
    /// Employee id.
    pub id: EmployeeId,
    /// Name (kept for employees; never for residents).
    pub name: String,
    /// Tenant code, for a tenant's employee.
    pub tenant: Option<String>,
    /// Supplier code, for a resource supplier's dispatcher.
    pub supplier: Option<String>,
}

/// A tenant as the screen-pop names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantRef {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
}

/// Everything known about a calling phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallerInfo {
    /// The phone looked up.
    pub phone: PhoneNumber,
    /// The tenant: as given, or from the caller's most recent known address.
    pub tenant: Option<TenantRef>,
    /// City code, as given or from the address.
    pub city: Option<String>,
    /// The caller's best known address (within the tenant or city asked for): one an
    /// operator confirmed before an imported one, then the most recently seen.
    pub address: Option<KnownAddress>,
    /// Other known addresses, in the same order.
    pub other_addresses: Vec<KnownAddress>,
    /// Open tickets at that house, the caller's apartment and house-wide ones first.
    pub open_tickets: Vec<OpenTicket>,
    /// The debt at that address, when one is listed and valid today.
    pub debtor: Option<DebtorFlag>,
    /// Outages running at that house now.
    pub outages: Vec<ActiveOutage>,
    /// Set when the phone is an active employee's.
    pub staff: Option<StaffMember>,
}

impl Store {
    /// Looks up a calling phone now. `tenant` is the called tenant number's tenant;
    /// `city` the citywide number's city (either narrows the known addresses).
    pub async fn caller_lookup(
        &self,
        phone: &PhoneNumber,
        tenant: Option<&str>,
        city: Option<&str>,
    ) -> Result<CallerInfo, StoreError> {
        self.caller_lookup_at(phone, tenant, city, Utc::now()).await
    }

    /// [`caller_lookup`](Self::caller_lookup) as of `now`.
    pub async fn caller_lookup_at(
        &self,
        phone: &PhoneNumber,
        tenant: Option<&str>,
        city: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<CallerInfo, StoreError> {
        self.caller_lookup_in(&TenantScope::All, phone, tenant, city, now)
            .await
    }

    /// [`caller_lookup_at`](Self::caller_lookup_at) seeing only the addresses of
    /// tenants in `scope` (an operator's tenants): another tenant's address is never
    /// read, so it cannot be the one the screen-pop is built on.
    pub async fn caller_lookup_in(
        &self,
        scope: &TenantScope,
        phone: &PhoneNumber,
        tenant: Option<&str>,
        city: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<CallerInfo, StoreError> {
        dispatch!(self, lookup(scope, phone, tenant, city, now))
    }
}
