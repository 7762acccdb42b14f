//! Reference data the dispatch service works from: cities (with their time zones),
//! tenants (management companies), resource suppliers, house groups and houses,
//! employees (phones in dialling order, work types, weekly shifts, absences), work
//! types, the reasons catalogue and the responsibility matrix.
//!
//! Also owns [`TenantScope`]: which tenants a reader may see.

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::assignment::{Absence, Shift};
use super::backend::{dispatch, per_backend};
use super::ids::{CityId, EmployeeId, HouseGroupId, HouseId, ReasonId, SupplierId, TenantId};
use super::tickets::Category;
use super::{Page, Store, StoreError, page_bounds};
use crate::phone::PhoneNumber;

per_backend!("sql/directory.rs");

/// Which tenants a reader may see: all, or only the listed codes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TenantScope {
    /// Every tenant (an operator configured with no tenant list).
    All,
    /// Only these tenant codes.
    Only(Vec<String>),
}

impl TenantScope {
    /// The scope of an operator's tenant list (empty means all).
    pub fn of(tenants: &[String]) -> Self {
        if tenants.is_empty() {
            Self::All
        } else {
            Self::Only(tenants.to_vec())
        }
    }

    /// Whether `tenant` is visible.
    pub fn allows(&self, tenant: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(codes) => codes.iter().any(|c| c == tenant),
        }
    }
}

/// A city or region; schedules of its houses are evaluated in its time zone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct City {
    /// Row id.
    pub id: CityId,
    /// Short code (`ekb`).
    pub code: String,
    /// Name (`Екатеринбург`).
    pub name: String,
    /// IANA time zone (`Asia/Yekaterinburg`).
    pub time_zone: Tz,
}

/// A management company (УК).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tenant {
    /// Row id.
    pub id: TenantId,
    /// Code used by the configuration and the API (`etalon`).
    pub code: String,
    /// Name residents hear (`УК «Эталон»`).
    pub name: String,
    /// The tenant's city.
    pub city: City,
}

/// A house served by a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct House {
    /// Row id.
    pub id: HouseId,
    /// Tenant code.
    pub tenant: String,
    /// City code.
    pub city: String,
    /// The house group (for the responsibility matrix), by code.
    pub house_group: Option<String>,
    /// Address as the tenant writes it.
    pub address: String,
    /// Number of floors.
    pub floors: i64,
    /// Number of lifts.
    pub lifts: i64,
}

/// Filter for listing houses.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HouseFilter {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Address contains this text (compared normalised).
    pub q: Option<String>,
    /// Rows to skip.
    pub offset: Option<i64>,
    /// Page size (1..=500, default 50).
    pub limit: Option<i64>,
}

/// An employee of a tenant or of a resource supplier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Employee {
    /// Row id.
    pub id: EmployeeId,
    /// Tenant code, for a tenant's employee.
    pub tenant: Option<String>,
    /// Supplier code, for a resource supplier's dispatcher.
    pub supplier: Option<String>,
    /// Name (employees' names are kept; residents' are not).
    pub name: String,
    /// Position (`слесарь-сантехник`).
    pub position: String,
    /// Phones in dialling order.
    pub phones: Vec<PhoneNumber>,
    /// Work types this person does.
    pub work_types: Vec<String>,
    /// Weekly shifts in the city's local time.
    pub shifts: Vec<Shift>,
    /// Vacations and sick leave.
    pub absences: Vec<Absence>,
    /// Whether the person is currently employed.
    pub active: bool,
}

/// Input for [`Store::create_employee`].
#[derive(Debug, Clone, Default)]
pub struct NewEmployee {
    /// Tenant code (exactly one of tenant and supplier).
    pub tenant: Option<String>,
    /// Supplier code.
    pub supplier: Option<String>,
    /// Name.
    pub name: String,
    /// Position.
    pub position: String,
    /// Phones in dialling order.
    pub phones: Vec<PhoneNumber>,
    /// Work type codes.
    pub work_types: Vec<String>,
    /// Weekly shifts.
    pub shifts: Vec<Shift>,
    /// Vacations and sick leave.
    pub absences: Vec<Absence>,
}

/// An entry of the reasons catalogue: what the resident reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// Row id.
    pub id: ReasonId,
    /// Tenant code for a tenant's own reason; `None` for the shared catalogue.
    pub tenant: Option<String>,
    /// Stable code (`lift-stuck`).
    pub code: String,
    /// Emergency, planned or paid.
    pub category: Category,
    /// Short title for the picker (`Застревание в лифте`).
    pub title: String,
    /// Work type that decides who is sent.
    pub work_type: String,
    /// Minutes from registration to the deadline.
    pub deadline_minutes: i64,
    /// What the operator reads to the resident.
    pub operator_text: String,
    /// Whether operators may pick it.
    pub active: bool,
}

/// Input for [`Store::create_reason`].
#[derive(Debug, Clone)]
pub struct NewReason {
    /// Tenant code, or `None` for the shared catalogue.
    pub tenant: Option<String>,
    /// Stable code.
    pub code: String,
    /// Category.
    pub category: Category,
    /// Title.
    pub title: String,
    /// Work type code.
    pub work_type: String,
    /// Minutes to the deadline.
    pub deadline_minutes: i64,
    /// What the operator reads to the resident.
    pub operator_text: String,
    /// Extra words the picker's search should find it by.
    pub keywords: String,
}

/// Input for [`Store::set_responsibility`]: one cell of the matrix.
#[derive(Debug, Clone, Default)]
pub struct Responsibility {
    /// Tenant code of the house group.
    pub tenant: String,
    /// House group code.
    pub house_group: String,
    /// Work type code.
    pub work_type: String,
    /// Executors by level: index 0 is level 1; each level in preference order.
    pub levels: [Vec<EmployeeId>; 3],
    /// Responsible person.
    pub responsible: Option<EmployeeId>,
    /// Responsible manager.
    pub manager: Option<EmployeeId>,
    /// Head of the company.
    pub head: Option<EmployeeId>,
}

/// A house's fields as its queries write them.
pub(crate) struct HouseFields<'a> {
    pub(crate) house_group: Option<&'a str>,
    pub(crate) address: &'a str,
    pub(crate) key: &'a str,
    pub(crate) floors: i64,
    pub(crate) lifts: i64,
}

/// Lower-cased search key for reason titles; SQLite's `lower()` only folds ASCII, so
/// the key is made here for both dialects.
pub(crate) fn search_key(text: &str) -> String {
    text.to_lowercase().replace('ё', "е")
}

/// The longest name, position or title accepted, in characters.
const MAX_NAME: usize = 200;

fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), StoreError> {
    if text.trim().is_empty() {
        return Err(StoreError::invalid(field, "empty"));
    }
    if text.chars().count() > max {
        return Err(StoreError::invalid(
            field,
            format!("longer than {max} characters"),
        ));
    }
    Ok(())
}

fn validate_employee(new: &NewEmployee) -> Result<(), StoreError> {
    check_text("name", &new.name, MAX_NAME)?;
    if new.position.chars().count() > MAX_NAME {
        return Err(StoreError::invalid(
            "position",
            format!("longer than {MAX_NAME} characters"),
        ));
    }
    if new.phones.len() > 5 {
        return Err(StoreError::invalid("phones", "at most 5 phones"));
    }
    for (i, phone) in new.phones.iter().enumerate() {
        if new.phones.iter().take(i).any(|p| p == phone) {
            return Err(StoreError::invalid(
                "phones",
                format!("{phone} is listed twice"),
            ));
        }
    }
    if new.shifts.len() > 7 * 4 {
        return Err(StoreError::invalid("shifts", "at most 28 weekly shifts"));
    }
    for shift in &new.shifts {
        shift.validate()?;
    }
    if new.absences.len() > 100 {
        return Err(StoreError::invalid("absences", "at most 100 absences"));
    }
    for absence in &new.absences {
        if absence.ends_on < absence.starts_on {
            return Err(StoreError::invalid("absences", "ends before it starts"));
        }
    }
    Ok(())
}

/// Checks a house's fields; returns its address key.
fn validate_house(address: &str, floors: i64, lifts: i64) -> Result<String, StoreError> {
    check_text("address", address, 300)?;
    let key = super::address::address_key(address);
    if key.is_empty() {
        return Err(StoreError::invalid("address", "empty address"));
    }
    if !(0..=200).contains(&floors) {
        return Err(StoreError::invalid("floors", "must be 0 to 200"));
    }
    if !(0..=100).contains(&lifts) {
        return Err(StoreError::invalid("lifts", "must be 0 to 100"));
    }
    Ok(key)
}

fn validate_reason(new: &NewReason) -> Result<(), StoreError> {
    check_text("code", &new.code, 64)?;
    check_text("title", &new.title, MAX_NAME)?;
    check_text("work_type", &new.work_type, 64)?;
    if new.deadline_minutes <= 0 {
        return Err(StoreError::invalid("deadline_minutes", "must be positive"));
    }
    if new.deadline_minutes > 366 * 24 * 60 {
        return Err(StoreError::invalid(
            "deadline_minutes",
            "longer than a year",
        ));
    }
    if new.operator_text.chars().count() > 4000 {
        return Err(StoreError::invalid(
            "operator_text",
            "longer than 4000 characters",
        ));
    }
    if new.keywords.chars().count() > 1000 {
        return Err(StoreError::invalid(
            "keywords",
            "longer than 1000 characters",
        ));
    }
    Ok(())
}

pub(crate) fn parse_tz(raw: &str) -> Result<Tz, StoreError> {
    raw.parse::<Tz>()
        .map_err(|_| StoreError::Corrupt(format!("unknown time zone `{raw}`")))
}

impl Store {
    /// Creates a city (or returns the existing one with that code).
    pub async fn create_city(
        &self,
        code: &str,
        name: &str,
        time_zone: &str,
    ) -> Result<CityId, StoreError> {
        if time_zone.parse::<Tz>().is_err() {
            return Err(StoreError::invalid(
                "time_zone",
                format!("`{time_zone}` is not an IANA time zone"),
            ));
        }
        dispatch!(self, create_city(code, name, time_zone))
    }

    /// Creates a tenant in a city (or returns the existing one with that code).
    pub async fn create_tenant(
        &self,
        code: &str,
        name: &str,
        city: &str,
    ) -> Result<TenantId, StoreError> {
        dispatch!(self, create_tenant(code, name, city))
    }

    /// Creates a resource supplier (or returns the existing one with that code).
    pub async fn create_supplier(
        &self,
        code: &str,
        name: &str,
        city: &str,
        dispatch_phone: Option<&PhoneNumber>,
    ) -> Result<SupplierId, StoreError> {
        dispatch!(self, create_supplier(code, name, city, dispatch_phone))
    }

    /// Creates a house group of a tenant (or returns the existing one).
    pub async fn create_house_group(
        &self,
        tenant: &str,
        code: &str,
        name: &str,
    ) -> Result<HouseGroupId, StoreError> {
        dispatch!(self, create_house_group(tenant, code, name))
    }

    /// Creates a house in the tenant's city. An address that compares equal to one
    /// of the tenant's houses (see [`address_key`](super::address::address_key)) is a
    /// conflict: the imports could not tell the two apart.
    pub async fn create_house(
        &self,
        tenant: &str,
        house_group: Option<&str>,
        address: &str,
        floors: i64,
        lifts: i64,
    ) -> Result<HouseId, StoreError> {
        let key = validate_house(address, floors, lifts)?;
        dispatch!(
            self,
            create_house(
                self.actor().as_ref(),
                tenant,
                &HouseFields {
                    house_group,
                    address: address.trim(),
                    key: &key,
                    floors,
                    lifts,
                }
            )
        )
    }

    /// Adds a work type to the catalogue (no-op when it exists).
    pub async fn create_work_type(&self, code: &str, name: &str) -> Result<(), StoreError> {
        dispatch!(self, create_work_type(code, name))
    }

    /// Creates an employee with phones, work types, shifts and absences.
    pub async fn create_employee(&self, new: &NewEmployee) -> Result<EmployeeId, StoreError> {
        if new.tenant.is_some() == new.supplier.is_some() {
            return Err(StoreError::invalid(
                "tenant",
                "an employee belongs to exactly one tenant or supplier",
            ));
        }
        validate_employee(new)?;
        dispatch!(self, create_employee(self.actor().as_ref(), new))
    }

    /// An employee by id.
    pub async fn employee(&self, id: EmployeeId) -> Result<Option<Employee>, StoreError> {
        Ok(
            dispatch!(self, employees(&TenantScope::All, None, Some(id)))?
                .into_iter()
                .next(),
        )
    }

    /// Replaces an employee's name, position, phones, work types, shifts, absences and
    /// active flag in one transaction (`new`'s tenant and supplier are ignored: an
    /// employee does not move). A person made inactive drops off every chain.
    pub async fn update_employee(
        &self,
        id: EmployeeId,
        new: &NewEmployee,
        active: bool,
    ) -> Result<Employee, StoreError> {
        validate_employee(new)?;
        dispatch!(
            self,
            update_employee(self.actor().as_ref(), id, new, active)
        )?;
        self.employee(id)
            .await?
            .ok_or_else(|| StoreError::not_found("employee", id))
    }

    /// Replaces a house's group, address, floors and lifts; an address that compares
    /// equal to another house of the tenant is a conflict.
    pub async fn update_house(
        &self,
        id: HouseId,
        house_group: Option<&str>,
        address: &str,
        floors: i64,
        lifts: i64,
    ) -> Result<House, StoreError> {
        let key = validate_house(address, floors, lifts)?;
        dispatch!(
            self,
            update_house(
                self.actor().as_ref(),
                id,
                &HouseFields {
                    house_group,
                    address: address.trim(),
                    key: &key,
                    floors,
                    lifts,
                }
            )
        )?;
        self.house(id)
            .await?
            .ok_or_else(|| StoreError::not_found("house", id))
    }

    /// Adds a reason to the catalogue; a code the catalogue (shared, or the tenant's
    /// own) already has is a conflict. Unlike [`create_reason`](Self::create_reason),
    /// which returns the existing one, for the API.
    pub async fn add_reason(&self, new: &NewReason) -> Result<Reason, StoreError> {
        validate_reason(new)?;
        if dispatch!(self, reason_code_taken(new.tenant.as_deref(), &new.code))? {
            return Err(StoreError::Conflict(format!(
                "the catalogue already has a reason `{}`",
                new.code
            )));
        }
        let id = self.create_reason(new).await?;
        self.reason(id)
            .await?
            .ok_or_else(|| StoreError::not_found("reason", id))
    }

    /// Replaces a reason's category, title, work type, deadline, operator text,
    /// keywords and active flag (an inactive reason is not offered to operators;
    /// tickets keep it). Its tenant and code stay.
    pub async fn update_reason(
        &self,
        id: ReasonId,
        new: &NewReason,
        active: bool,
    ) -> Result<Reason, StoreError> {
        validate_reason(new)?;
        let key = search_key(&format!("{} {} {}", new.title, new.code, new.keywords));
        dispatch!(
            self,
            update_reason(self.actor().as_ref(), id, new, &key, active)
        )?;
        self.reason(id)
            .await?
            .ok_or_else(|| StoreError::not_found("reason", id))
    }

    /// Adds an absence (vacation, sick leave) to an employee.
    pub async fn add_absence(
        &self,
        employee: EmployeeId,
        absence: &Absence,
    ) -> Result<(), StoreError> {
        if absence.ends_on < absence.starts_on {
            return Err(StoreError::invalid("ends_on", "ends before it starts"));
        }
        dispatch!(self, add_absence(self.actor().as_ref(), employee, absence))
    }

    /// Marks an employee as (no longer) employed.
    pub async fn set_employee_active(
        &self,
        employee: EmployeeId,
        active: bool,
    ) -> Result<(), StoreError> {
        dispatch!(self, set_employee_active(employee, active))
    }

    /// Adds a reason to the catalogue (or returns the existing one with that code).
    pub async fn create_reason(&self, new: &NewReason) -> Result<ReasonId, StoreError> {
        validate_reason(new)?;
        let key = search_key(&format!("{} {} {}", new.title, new.code, new.keywords));
        dispatch!(self, create_reason(self.actor().as_ref(), new, &key))
    }

    /// Sets one cell of the responsibility matrix, replacing what was there.
    pub async fn set_responsibility(&self, cell: &Responsibility) -> Result<(), StoreError> {
        dispatch!(self, set_responsibility(self.actor().as_ref(), cell))
    }

    /// A tenant by code, with its city and time zone.
    pub async fn tenant(&self, code: &str) -> Result<Option<Tenant>, StoreError> {
        dispatch!(self, tenant(code))
    }

    /// Every tenant visible in `scope`.
    pub async fn tenants(&self, scope: &TenantScope) -> Result<Vec<Tenant>, StoreError> {
        dispatch!(self, tenants(scope))
    }

    /// A house by id.
    pub async fn house(&self, id: HouseId) -> Result<Option<House>, StoreError> {
        dispatch!(self, house(id))
    }

    /// Houses visible in `scope`, filtered and paginated.
    pub async fn houses(
        &self,
        scope: &TenantScope,
        filter: &HouseFilter,
    ) -> Result<Page<House>, StoreError> {
        let (offset, limit) = page_bounds(filter.offset, filter.limit);
        let q = filter
            .q
            .as_deref()
            .map(super::address::address_key)
            .filter(|q| !q.is_empty());
        dispatch!(
            self,
            houses(scope, filter.tenant.as_deref(), q.as_deref(), offset, limit)
        )
    }

    /// Employees visible in `scope` (a supplier's dispatchers are visible to all).
    pub async fn employees(
        &self,
        scope: &TenantScope,
        tenant: Option<&str>,
    ) -> Result<Vec<Employee>, StoreError> {
        dispatch!(self, employees(scope, tenant, None))
    }

    /// The reasons a tenant's operator may pick: the shared catalogue plus the
    /// tenant's own, optionally matching `query` (case-insensitive, any part of the
    /// title or keywords) and a category.
    pub async fn reasons(
        &self,
        tenant: Option<&str>,
        query: Option<&str>,
        category: Option<Category>,
    ) -> Result<Vec<Reason>, StoreError> {
        let words: Vec<String> = query
            .map(search_key)
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        dispatch!(self, reasons(tenant, &words, category))
    }

    /// Recomputes every house's stored address key with the current
    /// [`address_key`](super::address::address_key) (run after migrations, so imports
    /// match houses stored under an older rule). A house whose new key another house
    /// of its tenant already has keeps its old one and is reported in the log.
    /// Returns how many keys changed.
    pub(crate) async fn rekey_houses(&self) -> Result<usize, StoreError> {
        let houses = dispatch!(self, house_addresses())?;
        let mut changed = 0;
        for (id, _tenant, address, stored) in houses {
            let key = super::address::address_key(&address);
            if key == stored || key.is_empty() {
                continue;
            }
            if dispatch!(self, set_house_key(id, &key))? {
                changed += 1;
            } else {
                tracing::warn!(house = id, %address, %key,
                    "another house of the tenant has this address key; kept the old one");
            }
        }
        Ok(changed)
    }

    /// The tenant's houses by [`address_key`](super::address::address_key), for
    /// matching imported rows.
    pub(crate) async fn house_keys(
        &self,
        tenant: &str,
    ) -> Result<std::collections::HashMap<String, HouseId>, StoreError> {
        dispatch!(self, house_keys(tenant))
    }

    /// A reason by id.
    pub async fn reason(&self, id: ReasonId) -> Result<Option<Reason>, StoreError> {
        dispatch!(self, reason(id))
    }
}
