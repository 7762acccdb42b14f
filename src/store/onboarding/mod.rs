//! The questionnaire a management company fills to go live: one workbook (XLSX, or
//! the same sheets as CSV files) with its company and city, houses, apartments,
//! employees, their shifts and absences, its reasons catalogue, the responsibility
//! matrix, its resource suppliers and residents' contacts.
//!
//! - [`workbook`]: the sheets and columns, reading XLSX and CSV into text cells,
//!   writing the template;
//! - `cells`: one cell's value as people write it (codes, phones, days, times, dates);
//! - `questionnaire`: the cells read into typed rows, every bad cell a
//!   [`CellFault`] (`Дома!C12: ...`);
//! - `plan`: the rows compared with the store: what would be created, changed and
//!   left alone, and the references that do not resolve.
//!
//! [`Store::onboard`] does all three and, unless it is a dry run and only when no
//! cell is at fault, applies the plan in one transaction: all or nothing, logged in
//! the admin log as one `import`. Importing the same workbook again changes nothing.
//! On SQLite the apply holds the write lock for its duration (seconds for a large
//! company); the call journal's writer waits and retries meanwhile.

mod cells;
mod plan;
mod questionnaire;
pub mod workbook;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use plan::Counts;
pub use questionnaire::CellFault;
pub use workbook::{SheetKind, Workbook, WorkbookError, template};

use super::backend::{dispatch, per_backend};
use super::{Store, StoreError};

per_backend!("../sql/onboarding.rs");

/// What an import found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnboardingReport {
    /// The tenant.
    pub tenant: String,
    /// Whether this was only a dry run.
    pub dry_run: bool,
    /// Whether the changes were written (never on a dry run or with faults).
    pub applied: bool,
    /// Per sheet: records created, changed and left alone.
    pub sheets: BTreeMap<SheetKind, Counts>,
    /// Every bad cell; non-empty means nothing was (or would be) applied.
    pub faults: Vec<CellFault>,
    /// How long reading, comparing and writing took, in milliseconds.
    pub elapsed_ms: u64,
}

impl OnboardingReport {
    /// The faults as text, one per line: `sheet!A12: message`.
    pub fn fault_lines(&self) -> Vec<String> {
        self.faults.iter().map(ToString::to_string).collect()
    }

    /// Created plus changed records, over all sheets.
    pub fn changes(&self) -> usize {
        self.sheets.values().map(|c| c.created + c.changed).sum()
    }
}

/// A step of an import, for progress shown to people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// Reading the sheets into rows.
    Reading,
    /// Loading what the store holds for the tenant.
    Loading,
    /// Comparing.
    Comparing,
    /// Writing, in one transaction.
    Writing,
}

impl Store {
    /// Imports `book` for `tenant`: reads it, compares it with the store and, unless
    /// `dry_run` or some cell is at fault, writes the changes in one transaction.
    /// `progress` hears each stage as it starts.
    pub async fn onboard(
        &self,
        tenant: &str,
        book: Workbook,
        dry_run: bool,
        progress: impl Fn(Stage),
    ) -> Result<OnboardingReport, StoreError> {
        super::users::check_extension(tenant).map_err(|_| {
            StoreError::invalid("tenant", "a tenant code is letters, digits, - _ .")
        })?;
        let started = Instant::now();
        progress(Stage::Reading);
        let mut q = tokio::task::spawn_blocking(move || questionnaire::read(&book)).await?;
        progress(Stage::Loading);
        let city = q.company.as_ref().map(|c| c.city_code.clone());
        let keys: Vec<(String, String)> = q
            .contacts
            .iter()
            .map(|c| (c.phone.as_str().to_owned(), c.key.clone()))
            .collect();
        let current = dispatch!(self, load(tenant, city.as_deref(), &keys))?;
        progress(Stage::Comparing);
        let tenant_code = tenant.to_owned();
        let (q, plan) = tokio::task::spawn_blocking(move || {
            let plan = plan::plan(&mut q, &tenant_code, &current);
            q.sort_faults();
            (q, plan)
        })
        .await?;
        let mut report = OnboardingReport {
            tenant: tenant.to_owned(),
            dry_run,
            applied: false,
            sheets: plan.counts.clone(),
            faults: q.faults,
            elapsed_ms: 0,
        };
        if !dry_run && report.faults.is_empty() && plan.changes_anything() {
            progress(Stage::Writing);
            let detail = serde_json::json!({ "sheets": report.sheets });
            dispatch!(self, apply(self.actor().as_ref(), tenant, &plan, &detail))?;
            report.applied = true;
        }
        report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(report)
    }
}

/// Reads a questionnaire's cells as an import would and returns every bad cell,
/// without the store (references to the store are not checked).
pub fn check_workbook(book: &Workbook) -> Vec<CellFault> {
    let mut q = questionnaire::read(book);
    q.sort_faults();
    q.faults
}

/// How long an import of `rows` data rows may take, from the benchmark's pace (about
/// 20,000 rows a second to read, compare and write on the development machine),
/// for the command line's estimate.
pub fn estimate(rows: usize) -> Duration {
    Duration::from_millis(500 + rows as u64 / 20)
}
