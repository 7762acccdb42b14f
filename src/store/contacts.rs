//! Contacts: which address a phone calls from, learnt from calls (an operator
//! confirms the address) and imported from tenants' lists. No names are kept: phone
//! plus address is personal data under 152-ФЗ already, so it is read per tenant and
//! every read through the API is written to the access log.
//!
//! A confirmed (learnt) address outranks an imported one in the screen-pop, and only
//! a confirmation moves `last_seen_at`: re-importing an old list records
//! `imported_at` and leaves the ranking alone.
//!
//! Imports are parsed completely (on a blocking thread) before the database is
//! touched. The rows then go into a temporary staging table on one connection, which
//! takes no lock on the shared tables, and one `INSERT ... SELECT` applies them in a
//! short write transaction: the file imports whole or not at all, and other writers
//! (the call journal) wait only for that one statement, not for the whole upload.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::backend::{dispatch, per_backend};
use super::directory::TenantScope;
use super::ids::{ContactId, HouseId};
use super::import::{self, ContactRow, ImportReport};
use super::tickets::{apartment_text, non_empty};
use super::{Page, Store, StoreError, page_bounds, text_enum};
use crate::phone::PhoneNumber;

per_backend!("sql/contacts.rs");

text_enum! {
    /// Where a contact came from.
    pub enum ContactSource {
        /// Confirmed by an operator during a call.
        Learnt = "learnt",
        /// From a tenant's CSV.
        Imported = "imported",
    }
}

/// A phone known at an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contact {
    /// Row id.
    pub id: ContactId,
    /// The phone.
    pub phone: String,
    /// Tenant code.
    pub tenant: String,
    /// The house.
    pub house_id: HouseId,
    /// The house's address.
    pub address: String,
    /// Apartment, if any.
    pub apartment: Option<String>,
    /// Learnt or imported.
    pub source: ContactSource,
    /// First recorded.
    pub created_at: DateTime<Utc>,
    /// Last confirmed by a call (for an imported contact never confirmed: when it
    /// was first imported).
    pub last_seen_at: DateTime<Utc>,
    /// When an import last listed it.
    pub imported_at: Option<DateTime<Utc>>,
}

/// Filter for listing contacts.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ContactFilter {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Phone contains these digits.
    pub phone: Option<String>,
    /// Only this house.
    pub house_id: Option<HouseId>,
    /// Rows to skip.
    pub offset: Option<i64>,
    /// Page size (1..=500, default 50).
    pub limit: Option<i64>,
}

impl Store {
    /// Records that `phone` called from this address (an operator confirmed it), or
    /// refreshes when it was last seen; an imported contact so confirmed becomes
    /// learnt.
    pub async fn learn_contact(
        &self,
        phone: &PhoneNumber,
        tenant: &str,
        house: HouseId,
        apartment: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<ContactId, StoreError> {
        let apartment = apartment_text(apartment)?;
        dispatch!(self, learn(phone, tenant, house, &apartment, now))
    }

    /// Contacts visible in `scope`, filtered, paginated.
    pub async fn contacts(
        &self,
        scope: &TenantScope,
        filter: &ContactFilter,
    ) -> Result<Page<Contact>, StoreError> {
        let (offset, limit) = page_bounds(filter.offset, filter.limit);
        let digits = filter
            .phone
            .as_deref()
            .map(|p| p.chars().filter(char::is_ascii_digit).collect::<String>())
            .filter(|d| !d.is_empty());
        dispatch!(self, list(scope, filter, digits.as_deref(), offset, limit))
    }

    /// Imports a tenant's contacts CSV (phone, address, apartment). A file with bad
    /// rows imports nothing unless `skip_bad_rows`; the report lists each bad row with
    /// its line number. Rows are applied in batches of 25,000, each its own write
    /// transaction, so calls are journalled and tickets registered during a
    /// million-row import; an import that fails part-way (the database gone) has
    /// applied whole batches only, and importing the same file again completes it.
    pub async fn import_contacts(
        &self,
        tenant: &str,
        csv: &[u8],
        skip_bad_rows: bool,
        now: DateTime<Utc>,
    ) -> Result<ImportReport, StoreError> {
        let t = self
            .tenant(tenant)
            .await?
            .ok_or_else(|| StoreError::not_found("tenant", tenant))?;
        let houses = self.house_keys(tenant).await?;
        let bytes = csv.to_vec();
        // Parsing a million rows takes seconds: off the async workers, and before
        // any lock is taken.
        let (resolved, report) = tokio::task::spawn_blocking(move || {
            let (rows, mut report) = import::parse_contacts(&bytes);
            let resolved = import::match_houses(rows, &houses, &mut report, |house, row| {
                (row.phone.clone(), house, row.apartment.clone())
            });
            report.finish(resolved.len(), skip_bad_rows)?;
            Ok::<_, StoreError>((resolved, report))
        })
        .await??;
        dispatch!(self, insert_imported(t.id.0, &resolved, now))?;
        Ok(report)
    }
}
