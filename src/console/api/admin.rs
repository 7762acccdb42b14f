//! The administration API: cities, tenants, house groups, resource suppliers, tags,
//! the responsibility matrix, employees' absences, the admin log and the go-live
//! check. Writes take a supervisor or a tenant admin of the record's tenant; shared
//! records (cities, suppliers, shared tags, new tenants) take a supervisor of every
//! tenant. Each write is validated, runs as one store transaction and is written to
//! the admin log in it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::ApiState;
use super::auth::Principal;
use super::error::ApiError;
use super::extract::{JsonBody, PathId, QueryParams};
use crate::store::admin::{CityEntry, HouseGroup, MatrixCell, Supplier, SupplierInput, Tag};
use crate::store::assignment::Absence;
use crate::store::directory::Responsibility;
use crate::store::{AdminEntry, AdminLogFilter, Employee, EmployeeId, TagId};

/// The principal may administer `tenant` (`None`: shared records, which take a
/// supervisor of every tenant).
pub(crate) fn check_admin(who: &Principal, tenant: Option<&str>) -> Result<(), ApiError> {
    if !who.role.administers() {
        return Err(ApiError::forbidden(
            None,
            "administration takes a supervisor or a tenant admin",
        ));
    }
    match tenant {
        Some(t) => who.require(Some(t)),
        None if who.tenants.is_empty() => Ok(()),
        None => Err(ApiError::forbidden(
            Some("tenant"),
            "shared records take a supervisor of every tenant",
        )),
    }
}

pub(crate) async fn cities(
    State(state): State<ApiState>,
    _who: Principal,
) -> Result<Json<Vec<CityEntry>>, ApiError> {
    Ok(Json(state.store.cities().await?))
}

/// `POST /cities` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CityBody {
    code: String,
    name: String,
    time_zone: String,
}

pub(crate) async fn create_city(
    State(state): State<ApiState>,
    who: Principal,
    JsonBody(body): JsonBody<CityBody>,
) -> Result<(StatusCode, Json<CityEntry>), ApiError> {
    check_admin(&who, None)?;
    let city = state
        .store
        .acting_as(&who.extension)
        .add_city(body.code.trim(), &body.name, body.time_zone.trim())
        .await?;
    Ok((StatusCode::CREATED, Json(city)))
}

/// `POST /tenants` and `PUT /tenants/{code}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantBody {
    #[serde(default)]
    code: Option<String>,
    name: String,
    #[serde(default)]
    city: Option<String>,
}

pub(crate) async fn create_tenant(
    State(state): State<ApiState>,
    who: Principal,
    JsonBody(body): JsonBody<TenantBody>,
) -> Result<(StatusCode, Json<crate::store::Tenant>), ApiError> {
    check_admin(&who, None)?;
    let code = body
        .code
        .ok_or_else(|| ApiError::invalid("code", "missing"))?;
    let city = body
        .city
        .ok_or_else(|| ApiError::invalid("city", "missing"))?;
    state
        .store
        .acting_as(&who.extension)
        .add_tenant(code.trim(), &body.name, city.trim())
        .await
        .map_err(ApiError::input)?;
    let tenant = state
        .store
        .tenant(code.trim())
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    Ok((StatusCode::CREATED, Json(tenant)))
}

pub(crate) async fn update_tenant(
    State(state): State<ApiState>,
    who: Principal,
    Path(code): Path<String>,
    JsonBody(body): JsonBody<TenantBody>,
) -> Result<Json<crate::store::Tenant>, ApiError> {
    if !who.sees(&code) {
        return Err(ApiError::not_found("tenant"));
    }
    check_admin(&who, Some(&code))?;
    if body.code.is_some() || body.city.is_some() {
        return Err(ApiError::invalid(
            "code",
            "a tenant's code and city do not change (numbers and history name them)",
        ));
    }
    state
        .store
        .acting_as(&who.extension)
        .rename_tenant(&code, &body.name)
        .await?;
    let tenant = state
        .store
        .tenant(&code)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    Ok(Json(tenant))
}

/// `?tenant=` of the lists.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantQuery {
    #[serde(default)]
    tenant: Option<String>,
}

pub(crate) async fn house_groups(
    State(state): State<ApiState>,
    who: Principal,
    QueryParams(query): QueryParams<TenantQuery>,
) -> Result<Json<Vec<HouseGroup>>, ApiError> {
    who.require(query.tenant.as_deref())?;
    Ok(Json(
        state
            .store
            .house_groups(&who.scope(), query.tenant.as_deref())
            .await?,
    ))
}

/// `PUT /house-groups` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupBody {
    tenant: String,
    code: String,
    name: String,
}

pub(crate) async fn put_house_group(
    State(state): State<ApiState>,
    who: Principal,
    JsonBody(body): JsonBody<GroupBody>,
) -> Result<Json<Vec<HouseGroup>>, ApiError> {
    check_admin(&who, Some(&body.tenant))?;
    state
        .store
        .acting_as(&who.extension)
        .put_house_group(&body.tenant, body.code.trim(), &body.name)
        .await
        .map_err(ApiError::input)?;
    Ok(Json(
        state
            .store
            .house_groups(&who.scope(), Some(&body.tenant))
            .await?,
    ))
}

pub(crate) async fn suppliers(
    State(state): State<ApiState>,
    _who: Principal,
) -> Result<Json<Vec<Supplier>>, ApiError> {
    Ok(Json(state.store.suppliers().await?))
}

pub(crate) async fn put_supplier(
    State(state): State<ApiState>,
    who: Principal,
    JsonBody(body): JsonBody<SupplierInput>,
) -> Result<Json<Supplier>, ApiError> {
    check_admin(&who, None)?;
    let code = body
        .code
        .clone()
        .ok_or_else(|| ApiError::invalid("code", "missing"))?;
    Ok(Json(
        state
            .store
            .acting_as(&who.extension)
            .put_supplier(code.trim(), &body)
            .await
            .map_err(ApiError::input)?,
    ))
}

pub(crate) async fn tags(
    State(state): State<ApiState>,
    who: Principal,
) -> Result<Json<Vec<Tag>>, ApiError> {
    Ok(Json(state.store.tags(&who.scope()).await?))
}

/// `POST /tags` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TagBody {
    #[serde(default)]
    tenant: Option<String>,
    code: String,
    name: String,
}

pub(crate) async fn create_tag(
    State(state): State<ApiState>,
    who: Principal,
    JsonBody(body): JsonBody<TagBody>,
) -> Result<(StatusCode, Json<Tag>), ApiError> {
    check_admin(&who, body.tenant.as_deref())?;
    let tag = state
        .store
        .acting_as(&who.extension)
        .add_tag(body.tenant.as_deref(), body.code.trim(), &body.name)
        .await
        .map_err(ApiError::input)?;
    Ok((StatusCode::CREATED, Json(tag)))
}

pub(crate) async fn delete_tag(
    State(state): State<ApiState>,
    who: Principal,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    let tag = state
        .store
        .tag(TagId(id))
        .await?
        .filter(|t| t.tenant.as_deref().is_none_or(|c| who.sees(c)))
        .ok_or_else(|| ApiError::not_found("tag"))?;
    check_admin(&who, tag.tenant.as_deref())?;
    state
        .store
        .acting_as(&who.extension)
        .remove_tag(TagId(id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /responsibility` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MatrixQuery {
    tenant: String,
}

pub(crate) async fn matrix(
    State(state): State<ApiState>,
    who: Principal,
    QueryParams(query): QueryParams<MatrixQuery>,
) -> Result<Json<Vec<MatrixCell>>, ApiError> {
    who.require(Some(&query.tenant))?;
    Ok(Json(state.store.matrix(&query.tenant).await?))
}

/// `PUT /responsibility` body: one cell.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CellBody {
    tenant: String,
    house_group: String,
    work_type: String,
    levels: [Vec<EmployeeId>; 3],
    #[serde(default)]
    responsible: Option<EmployeeId>,
    #[serde(default)]
    manager: Option<EmployeeId>,
    #[serde(default)]
    head: Option<EmployeeId>,
}

pub(crate) async fn put_cell(
    State(state): State<ApiState>,
    who: Principal,
    JsonBody(body): JsonBody<CellBody>,
) -> Result<Json<Vec<MatrixCell>>, ApiError> {
    check_admin(&who, Some(&body.tenant))?;
    if body.levels[0].is_empty() {
        return Err(ApiError::invalid("levels[0]", "level 1 needs someone"));
    }
    // Everyone named must be an employee of this tenant (or a supplier's).
    let people: Vec<EmployeeId> = body
        .levels
        .iter()
        .flatten()
        .copied()
        .chain(
            [body.responsible, body.manager, body.head]
                .into_iter()
                .flatten(),
        )
        .collect();
    for id in people {
        let ok = state
            .store
            .employee(id)
            .await?
            .is_some_and(|e| e.tenant.as_deref().is_none_or(|t| t == body.tenant));
        if !ok {
            return Err(ApiError::invalid(
                "levels",
                format!("employee {id} is not this tenant's"),
            ));
        }
    }
    state
        .store
        .acting_as(&who.extension)
        .set_responsibility(&Responsibility {
            tenant: body.tenant.clone(),
            house_group: body.house_group,
            work_type: body.work_type,
            levels: body.levels,
            responsible: body.responsible,
            manager: body.manager,
            head: body.head,
        })
        .await
        .map_err(ApiError::input)?;
    Ok(Json(state.store.matrix(&body.tenant).await?))
}

pub(crate) async fn add_absence(
    State(state): State<ApiState>,
    who: Principal,
    PathId(id): PathId,
    JsonBody(absence): JsonBody<Absence>,
) -> Result<(StatusCode, Json<Employee>), ApiError> {
    let employee = state
        .store
        .employee(EmployeeId(id))
        .await?
        .filter(|e| e.tenant.as_deref().is_none_or(|t| who.sees(t)))
        .ok_or_else(|| ApiError::not_found("employee"))?;
    check_admin(&who, employee.tenant.as_deref())?;
    if absence.ends_on < absence.starts_on {
        return Err(ApiError::invalid("ends_on", "ends before it starts"));
    }
    state
        .store
        .acting_as(&who.extension)
        .add_absence(EmployeeId(id), &absence)
        .await?;
    let employee = state
        .store
        .employee(EmployeeId(id))
        .await?
        .ok_or_else(|| ApiError::not_found("employee"))?;
    Ok((StatusCode::CREATED, Json(employee)))
}

pub(crate) async fn admin_log(
    State(state): State<ApiState>,
    who: Principal,
    QueryParams(filter): QueryParams<AdminLogFilter>,
) -> Result<Json<Vec<AdminEntry>>, ApiError> {
    if !who.role.administers() {
        return Err(ApiError::forbidden(
            None,
            "the admin log is for supervisors and tenant admins",
        ));
    }
    who.require(filter.tenant.as_deref())?;
    Ok(Json(state.store.admin_log(&who.scope(), &filter).await?))
}

/// One thing the go-live check looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What (`numbers`, `houses`, `matrix`, `duty`, `greeting`).
    pub check: &'static str,
    /// Whether it is in order.
    pub ok: bool,
    /// What is missing, in words (empty when in order).
    pub missing: Vec<String>,
}

/// `GET /tenants/{code}/readiness` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// The tenant.
    pub tenant: String,
    /// Whether every check passed.
    pub ready: bool,
    /// Each check.
    pub checks: Vec<Check>,
}

pub(crate) async fn readiness(
    State(state): State<ApiState>,
    who: Principal,
    Path(code): Path<String>,
) -> Result<Json<Readiness>, ApiError> {
    if !who.sees(&code) {
        return Err(ApiError::not_found("tenant"));
    }
    state
        .store
        .tenant(&code)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    let facts = state.store.tenant_facts(&code).await?;
    Ok(Json(super::readiness::check_tenant(
        &state.config,
        &code,
        &facts,
    )))
}
