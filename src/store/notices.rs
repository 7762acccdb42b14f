//! What callers from a house hear before an operator: outages (one notice for many
//! houses, valid for a period) and debts (an imported list of addresses with an amount
//! and a validity window; amounts are integer kopecks, dates are the city's local
//! dates, both ends inclusive).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::backend::{dispatch, per_backend};
use super::directory::TenantScope;
use super::ids::{DebtorId, HouseId, OutageId};
use super::import::{self, DebtorRow, ImportReport};
use super::text_enum;
use super::{Page, Store, StoreError, page_bounds};

per_backend!("sql/notices.rs");

text_enum! {
    /// What a debtors import does with the tenant's entries the file does not list.
    pub enum DebtorImportMode {
        /// Keep them: the file adds and updates entries.
        Upsert = "upsert",
        /// Delete them: the file is the tenant's whole current list.
        Replace = "replace",
    }
}

/// An outage notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outage {
    /// Row id.
    pub id: OutageId,
    /// Tenant code.
    pub tenant: String,
    /// Kind: `hot_water`, `cold_water`, `heating`, `electricity`, `gas`, `lift`, `other`.
    pub kind: String,
    /// What callers hear and operators read.
    pub text: String,
    /// From when.
    pub starts_at: DateTime<Utc>,
    /// Until when.
    pub ends_at: DateTime<Utc>,
    /// The houses affected.
    pub house_ids: Vec<HouseId>,
}

/// Input to create or replace an outage.
#[derive(Debug, Clone, Deserialize)]
pub struct NewOutage {
    /// Tenant code.
    pub tenant: String,
    /// Kind (see [`Outage::kind`]).
    pub kind: String,
    /// Notice text.
    pub text: String,
    /// From when.
    pub starts_at: DateTime<Utc>,
    /// Until when.
    pub ends_at: DateTime<Utc>,
    /// Houses affected (each must be the tenant's).
    pub house_ids: Vec<HouseId>,
}

/// The kinds an outage may have.
pub const OUTAGE_KINDS: &[&str] = &[
    "hot_water",
    "cold_water",
    "heating",
    "electricity",
    "gas",
    "lift",
    "other",
];

impl NewOutage {
    fn validate(&self) -> Result<(), StoreError> {
        if !OUTAGE_KINDS.contains(&self.kind.as_str()) {
            return Err(StoreError::invalid(
                "kind",
                format!("must be one of {}", OUTAGE_KINDS.join(", ")),
            ));
        }
        if self.text.trim().is_empty() {
            return Err(StoreError::invalid("text", "empty notice"));
        }
        if self.text.chars().count() > 1000 {
            return Err(StoreError::invalid("text", "longer than 1000 characters"));
        }
        if self.ends_at <= self.starts_at {
            return Err(StoreError::invalid("ends_at", "must be after starts_at"));
        }
        if self.house_ids.is_empty() {
            return Err(StoreError::invalid("house_ids", "no houses given"));
        }
        Ok(())
    }
}

/// The debtor flag the screen-pop shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DebtorFlag {
    /// The debt, in kopecks.
    pub amount_kopecks: i64,
    /// The last day the entry is valid.
    pub valid_until: NaiveDate,
}

/// A debtor entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Debtor {
    /// Row id.
    pub id: DebtorId,
    /// Tenant code.
    pub tenant: String,
    /// The house.
    pub house_id: HouseId,
    /// The house's address.
    pub address: String,
    /// Apartment, if any.
    pub apartment: Option<String>,
    /// The debt, in kopecks.
    pub amount_kopecks: i64,
    /// First valid day.
    pub valid_from: NaiveDate,
    /// Last valid day.
    pub valid_until: NaiveDate,
}

impl Store {
    /// Creates an outage.
    pub async fn create_outage(
        &self,
        new: &NewOutage,
        now: DateTime<Utc>,
    ) -> Result<Outage, StoreError> {
        new.validate()?;
        let id = dispatch!(self, save_outage(None, new, now))?;
        self.outage(id)
            .await?
            .ok_or_else(|| StoreError::not_found("outage", id))
    }

    /// Replaces an outage's kind, text, period and houses.
    pub async fn update_outage(
        &self,
        id: OutageId,
        new: &NewOutage,
        now: DateTime<Utc>,
    ) -> Result<Outage, StoreError> {
        new.validate()?;
        dispatch!(self, save_outage(Some(id), new, now))?;
        self.outage(id)
            .await?
            .ok_or_else(|| StoreError::not_found("outage", id))
    }

    /// Deletes an outage.
    pub async fn delete_outage(&self, id: OutageId) -> Result<(), StoreError> {
        dispatch!(self, delete_outage(id))
    }

    /// An outage by id.
    pub async fn outage(&self, id: OutageId) -> Result<Option<Outage>, StoreError> {
        dispatch!(self, outage(id))
    }

    /// Outages visible in `scope`; with `active_at`, only those running then.
    pub async fn outages(
        &self,
        scope: &TenantScope,
        active_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Outage>, StoreError> {
        dispatch!(self, outages(scope, active_at))
    }

    /// Debtors visible in `scope`, paginated.
    pub async fn debtors(
        &self,
        scope: &TenantScope,
        tenant: Option<&str>,
        offset: Option<i64>,
        limit: Option<i64>,
    ) -> Result<Page<Debtor>, StoreError> {
        let (offset, limit) = page_bounds(offset, limit);
        dispatch!(self, debtors(scope, tenant, offset, limit))
    }

    /// Imports a tenant's debtors CSV (address, apartment, amount, valid until).
    /// Entries are valid from the import day (in the tenant's city) and replace earlier
    /// entries for the same address; with [`DebtorImportMode::Replace`] the tenant's
    /// entries the file does not list are deleted in the same transaction (an entry
    /// whose row was skipped as bad is among them). A row whose validity already
    /// ended is a bad row. A file with bad rows imports nothing unless
    /// `skip_bad_rows`; the report lists each bad row with its line number.
    pub async fn import_debtors(
        &self,
        tenant: &str,
        csv: &[u8],
        skip_bad_rows: bool,
        mode: DebtorImportMode,
        now: DateTime<Utc>,
    ) -> Result<ImportReport, StoreError> {
        let t = self
            .tenant(tenant)
            .await?
            .ok_or_else(|| StoreError::not_found("tenant", tenant))?;
        let today = now.with_timezone(&t.city.time_zone).date_naive();
        let houses = self.house_keys(tenant).await?;
        let bytes = csv.to_vec();
        let (resolved, report) = tokio::task::spawn_blocking(move || {
            let (rows, mut report) = import::parse_debtors(&bytes);
            let rows = import::drop_expired(rows, today, &mut report);
            // A later row for the same address replaces an earlier one.
            let resolved = import::match_houses(rows, &houses, &mut report, |house, row| {
                (house, row.apartment.clone())
            });
            report.finish(resolved.len(), skip_bad_rows)?;
            Ok::<_, StoreError>((resolved, report))
        })
        .await??;
        let replace = mode == DebtorImportMode::Replace;
        let deleted = dispatch!(self, insert_debtors(t.id.0, &resolved, replace, today, now))?;
        Ok(ImportReport { deleted, ..report })
    }
}
