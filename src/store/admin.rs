//! Administration of the reference data beyond houses, employees and reasons
//! (which [`directory`](super::directory) owns): cities, tenants, house groups,
//! resource suppliers with their dispatch phones, ticket tags, the responsibility
//! matrix as a list, and what a tenant still lacks to go live.
//!
//! Every write here is validated, runs as one transaction and, through a handle
//! from [`Store::acting_as`], is written to the admin log in that transaction.

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::backend::{dispatch, per_backend};
use super::directory::TenantScope;
use super::ids::{EmployeeId, TagId};
use super::{Store, StoreError};
use crate::phone::PhoneNumber;

per_backend!("sql/admin.rs");

/// A city with its time zone, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CityEntry {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// IANA time zone.
    pub time_zone: String,
}

/// A house group of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HouseGroup {
    /// Row id.
    pub id: i64,
    /// Tenant code.
    pub tenant: String,
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Houses in it.
    pub houses: i64,
}

/// A resource supplier (РСО).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Supplier {
    /// Row id.
    pub id: i64,
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// City code.
    pub city: String,
    /// Dispatch phones in dialling order.
    pub phones: Vec<String>,
}

/// A ticket tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tag {
    /// Row id.
    pub id: TagId,
    /// Tenant code; `None`: offered to every tenant.
    pub tenant: Option<String>,
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
}

/// One cell of the responsibility matrix, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatrixCell {
    /// House group code.
    pub house_group: String,
    /// Work type code.
    pub work_type: String,
    /// Employees by level (index 0 is level 1), in preference order.
    pub levels: [Vec<EmployeeId>; 3],
    /// Responsible person.
    pub responsible: Option<EmployeeId>,
    /// Manager.
    pub manager: Option<EmployeeId>,
    /// Head.
    pub head: Option<EmployeeId>,
}

/// What the go-live check reads from the store for one tenant.
#[derive(Debug, Clone, Default)]
pub struct TenantFacts {
    /// Houses.
    pub houses: i64,
    /// House group codes.
    pub groups: Vec<String>,
    /// Work types of the active emergency reasons the tenant's operators may pick.
    pub emergency_work_types: Vec<String>,
    /// The matrix.
    pub cells: Vec<MatrixCell>,
    /// The weekly shifts of every active employee.
    pub shifts: Vec<crate::store::assignment::Shift>,
}

/// Input for a supplier.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupplierInput {
    /// Code (on create).
    #[serde(default)]
    pub code: Option<String>,
    /// Name.
    pub name: String,
    /// City code (on create).
    #[serde(default)]
    pub city: Option<String>,
    /// Dispatch phones in dialling order.
    pub phones: Vec<String>,
}

pub(crate) fn check_code(field: &'static str, code: &str) -> Result<(), StoreError> {
    let ok = !code.is_empty()
        && code.chars().count() <= 64
        && code
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            field,
            "a code is 1 to 64 letters, digits, - _ .",
        ))
    }
}

pub(crate) fn check_name(field: &'static str, name: &str) -> Result<(), StoreError> {
    if name.trim().is_empty() {
        return Err(StoreError::invalid(field, "empty"));
    }
    if name.chars().count() > 200 {
        return Err(StoreError::invalid(field, "longer than 200 characters"));
    }
    Ok(())
}

fn check_phones(raw: &[String]) -> Result<Vec<String>, StoreError> {
    if raw.is_empty() || raw.len() > 5 {
        return Err(StoreError::invalid("phones", "one to five phones"));
    }
    let mut out: Vec<String> = Vec::new();
    for p in raw {
        let phone = PhoneNumber::parse(p)
            .map_err(|e| StoreError::invalid("phones", format!("`{p}`: {e}")))?;
        if out.iter().any(|x| x == phone.as_str()) {
            return Err(StoreError::invalid(
                "phones",
                format!("{phone} is listed twice"),
            ));
        }
        out.push(phone.as_str().to_owned());
    }
    Ok(out)
}

impl Store {
    /// Every city.
    pub async fn cities(&self) -> Result<Vec<CityEntry>, StoreError> {
        dispatch!(self, cities())
    }

    /// Adds a city; a code that exists is a conflict.
    pub async fn add_city(
        &self,
        code: &str,
        name: &str,
        time_zone: &str,
    ) -> Result<CityEntry, StoreError> {
        check_code("code", code)?;
        check_name("name", name)?;
        if time_zone.parse::<Tz>().is_err() {
            return Err(StoreError::invalid(
                "time_zone",
                format!("`{time_zone}` is not an IANA time zone"),
            ));
        }
        dispatch!(
            self,
            add_city(self.actor().as_ref(), code, name.trim(), time_zone)
        )
    }

    /// Adds a tenant in a city; a code that exists is a conflict.
    pub async fn add_tenant(&self, code: &str, name: &str, city: &str) -> Result<(), StoreError> {
        check_code("code", code)?;
        check_name("name", name)?;
        dispatch!(
            self,
            add_tenant(self.actor().as_ref(), code, name.trim(), city)
        )
    }

    /// Renames a tenant (its code and city stay: numbers and history name them).
    pub async fn rename_tenant(&self, code: &str, name: &str) -> Result<(), StoreError> {
        check_name("name", name)?;
        dispatch!(
            self,
            rename_tenant(self.actor().as_ref(), code, name.trim())
        )
    }

    /// House groups visible in `scope`, optionally of one tenant.
    pub async fn house_groups(
        &self,
        scope: &TenantScope,
        tenant: Option<&str>,
    ) -> Result<Vec<HouseGroup>, StoreError> {
        dispatch!(self, house_groups(scope, tenant))
    }

    /// Adds a house group to a tenant, or renames the one with that code.
    pub async fn put_house_group(
        &self,
        tenant: &str,
        code: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        check_code("code", code)?;
        check_name("name", name)?;
        dispatch!(
            self,
            put_house_group(self.actor().as_ref(), tenant, code, name.trim())
        )
    }

    /// Every resource supplier.
    pub async fn suppliers(&self) -> Result<Vec<Supplier>, StoreError> {
        dispatch!(self, suppliers(None))
    }

    /// Adds a supplier (code and city given) or changes one's name and phones.
    pub async fn put_supplier(
        &self,
        code: &str,
        input: &SupplierInput,
    ) -> Result<Supplier, StoreError> {
        check_code("code", code)?;
        check_name("name", &input.name)?;
        let phones = check_phones(&input.phones)?;
        dispatch!(
            self,
            put_supplier(
                self.actor().as_ref(),
                code,
                input.name.trim(),
                input.city.as_deref(),
                &phones
            )
        )?;
        dispatch!(self, suppliers(Some(code)))?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::not_found("supplier", code))
    }

    /// Tags offered to a tenant's operators (its own and the shared ones), or all
    /// visible in `scope`.
    pub async fn tags(&self, scope: &TenantScope) -> Result<Vec<Tag>, StoreError> {
        dispatch!(self, tags(scope))
    }

    /// Adds a tag; a code the tenant (or the shared list) has is a conflict.
    pub async fn add_tag(
        &self,
        tenant: Option<&str>,
        code: &str,
        name: &str,
    ) -> Result<Tag, StoreError> {
        check_code("code", code)?;
        check_name("name", name)?;
        dispatch!(
            self,
            add_tag(self.actor().as_ref(), tenant, code, name.trim())
        )
    }

    /// Removes a tag (tickets keep the label they were given).
    pub async fn remove_tag(&self, id: TagId) -> Result<Tag, StoreError> {
        dispatch!(self, remove_tag(self.actor().as_ref(), id))
    }

    /// A tag by id.
    pub async fn tag(&self, id: TagId) -> Result<Option<Tag>, StoreError> {
        Ok(dispatch!(self, tags(&TenantScope::All))?
            .into_iter()
            .find(|t| t.id == id))
    }

    /// The tenant's responsibility matrix.
    pub async fn matrix(&self, tenant: &str) -> Result<Vec<MatrixCell>, StoreError> {
        dispatch!(self, matrix(tenant))
    }

    /// What the go-live check needs to know about a tenant.
    pub async fn tenant_facts(&self, tenant: &str) -> Result<TenantFacts, StoreError> {
        let mut facts = dispatch!(self, tenant_facts(tenant))?;
        facts.cells = self.matrix(tenant).await?;
        Ok(facts)
    }
}
