//! Writes of the reference data operators work from: `POST`/`PUT` of `/employees`
//! (name, position, phones in dialling order, work types, weekly shifts, absences,
//! active flag), `/houses` and `/reasons`. Each write takes a supervisor of the record's
//! tenant; shared records (the common reasons catalogue, a resource supplier's
//! dispatchers) take a supervisor of every tenant. Tenant admins write their own
//! tenants' records. Every write is in the admin log. A bad field is a 4xx naming it
//! (`phones[1]`, `shifts[0]`, ...), and a write is one store transaction.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::ApiState;
use super::auth::Principal;
use super::error::ApiError;
use super::extract::{JsonBody, PathId};
use crate::phone::PhoneNumber;
use crate::store::assignment::{Absence, Shift};
use crate::store::directory::{NewEmployee, NewReason};
use crate::store::{Category, Employee, EmployeeId, House, HouseId, Reason, ReasonId};

/// A weekly shift as the API takes it: `{"weekday": 1, "starts": "08:00", "ends": "20:00"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShiftBody {
    weekday: u8,
    starts: String,
    ends: String,
}

/// `POST /employees` and `PUT /employees/{id}` body (tenant and supplier only on
/// create; `active` only on update).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmployeeBody {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    supplier: Option<String>,
    name: String,
    #[serde(default)]
    position: String,
    #[serde(default)]
    phones: Vec<String>,
    #[serde(default)]
    work_types: Vec<String>,
    #[serde(default)]
    shifts: Vec<ShiftBody>,
    #[serde(default)]
    absences: Vec<Absence>,
    #[serde(default)]
    active: Option<bool>,
}

/// `POST /houses` and `PUT /houses/{id}` body (tenant only on create).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HouseBody {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    house_group: Option<String>,
    address: String,
    #[serde(default)]
    floors: i64,
    #[serde(default)]
    lifts: i64,
}

/// `POST /reasons` and `PUT /reasons/{id}` body (tenant and code only on create;
/// `active` only on update).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReasonBody {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    code: Option<String>,
    category: Category,
    title: String,
    work_type: String,
    deadline_minutes: i64,
    #[serde(default)]
    operator_text: String,
    #[serde(default)]
    keywords: String,
    #[serde(default)]
    active: Option<bool>,
}

/// The principal may write reference data of `tenant` (`None`: shared data, which
/// takes a supervisor of every tenant).
fn check_writer(who: &Principal, tenant: Option<&str>) -> Result<(), ApiError> {
    if !who.role.administers() {
        return Err(ApiError::forbidden(
            None,
            "changing reference data takes a supervisor or a tenant admin",
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

/// A field that is only accepted on create (or only on update).
fn refuse(field: &str, present: bool, when: &str) -> Result<(), ApiError> {
    if present {
        return Err(ApiError::invalid(field, format!("cannot be given {when}")));
    }
    Ok(())
}

fn employee_input(body: EmployeeBody) -> Result<NewEmployee, ApiError> {
    let mut phones = Vec::with_capacity(body.phones.len());
    for (i, raw) in body.phones.iter().enumerate() {
        let phone = PhoneNumber::parse(raw)
            .map_err(|e| ApiError::invalid(&format!("phones[{i}]"), e.to_string()))?;
        phones.push(phone);
    }
    let mut shifts = Vec::with_capacity(body.shifts.len());
    for (i, s) in body.shifts.iter().enumerate() {
        let shift = Shift::on_weekday(s.weekday, &s.starts, &s.ends).map_err(|e| {
            let message = match e {
                crate::store::StoreError::Invalid { message, .. } => message,
                other => other.to_string(),
            };
            ApiError::invalid(&format!("shifts[{i}]"), message)
        })?;
        shifts.push(shift);
    }
    for (i, a) in body.absences.iter().enumerate() {
        if a.ends_on < a.starts_on {
            return Err(ApiError::invalid(
                &format!("absences[{i}]"),
                "ends before it starts",
            ));
        }
    }
    Ok(NewEmployee {
        tenant: body.tenant,
        supplier: body.supplier,
        name: body.name,
        position: body.position,
        phones,
        work_types: body.work_types,
        shifts,
        absences: body.absences,
    })
}

pub(crate) async fn create_employee(
    State(state): State<ApiState>,
    who: Principal,
    JsonBody(body): JsonBody<EmployeeBody>,
) -> Result<(StatusCode, Json<Employee>), ApiError> {
    refuse("active", body.active.is_some(), "on create")?;
    if body.tenant.is_some() == body.supplier.is_some() {
        return Err(ApiError::invalid(
            "tenant",
            "give exactly one of tenant and supplier",
        ));
    }
    check_writer(&who, body.tenant.as_deref())?;
    let new = employee_input(body)?;
    let id = state
        .store
        .acting_as(&who.extension)
        .create_employee(&new)
        .await
        .map_err(ApiError::input)?;
    let employee = state
        .store
        .employee(id)
        .await?
        .ok_or_else(|| ApiError::not_found("employee"))?;
    Ok((StatusCode::CREATED, Json(employee)))
}

pub(crate) async fn update_employee(
    State(state): State<ApiState>,
    who: Principal,
    PathId(id): PathId,
    JsonBody(body): JsonBody<EmployeeBody>,
) -> Result<Json<Employee>, ApiError> {
    refuse("tenant", body.tenant.is_some(), "on update")?;
    refuse("supplier", body.supplier.is_some(), "on update")?;
    let current = state
        .store
        .employee(EmployeeId(id))
        .await?
        .filter(|e| e.tenant.as_deref().is_none_or(|t| who.sees(t)))
        .ok_or_else(|| ApiError::not_found("employee"))?;
    check_writer(&who, current.tenant.as_deref())?;
    let active = body.active.unwrap_or(current.active);
    let new = employee_input(body)?;
    let employee = state
        .store
        .acting_as(&who.extension)
        .update_employee(EmployeeId(id), &new, active)
        .await
        .map_err(ApiError::input)?;
    Ok(Json(employee))
}

pub(crate) async fn create_house(
    State(state): State<ApiState>,
    who: Principal,
    JsonBody(body): JsonBody<HouseBody>,
) -> Result<(StatusCode, Json<House>), ApiError> {
    let tenant = body
        .tenant
        .ok_or_else(|| ApiError::invalid("tenant", "missing"))?;
    check_writer(&who, Some(&tenant))?;
    let id = state
        .store
        .acting_as(&who.extension)
        .create_house(
            &tenant,
            body.house_group.as_deref(),
            &body.address,
            body.floors,
            body.lifts,
        )
        .await
        .map_err(ApiError::input)?;
    let house = state
        .store
        .house(id)
        .await?
        .ok_or_else(|| ApiError::not_found("house"))?;
    Ok((StatusCode::CREATED, Json(house)))
}

pub(crate) async fn update_house(
    State(state): State<ApiState>,
    who: Principal,
    PathId(id): PathId,
    JsonBody(body): JsonBody<HouseBody>,
) -> Result<Json<House>, ApiError> {
    refuse("tenant", body.tenant.is_some(), "on update")?;
    let current = state
        .store
        .house(HouseId(id))
        .await?
        .filter(|h| who.sees(&h.tenant))
        .ok_or_else(|| ApiError::not_found("house"))?;
    check_writer(&who, Some(&current.tenant))?;
    let house = state
        .store
        .acting_as(&who.extension)
        .update_house(
            HouseId(id),
            body.house_group.as_deref(),
            &body.address,
            body.floors,
            body.lifts,
        )
        .await
        .map_err(ApiError::input)?;
    Ok(Json(house))
}

fn reason_input(body: ReasonBody, tenant: Option<String>, code: String) -> NewReason {
    NewReason {
        tenant,
        code,
        category: body.category,
        title: body.title,
        work_type: body.work_type,
        deadline_minutes: body.deadline_minutes,
        operator_text: body.operator_text,
        keywords: body.keywords,
    }
}

pub(crate) async fn create_reason(
    State(state): State<ApiState>,
    who: Principal,
    JsonBody(body): JsonBody<ReasonBody>,
) -> Result<(StatusCode, Json<Reason>), ApiError> {
    refuse("active", body.active.is_some(), "on create")?;
    check_writer(&who, body.tenant.as_deref())?;
    let code = body
        .code
        .clone()
        .ok_or_else(|| ApiError::invalid("code", "missing"))?;
    let tenant = body.tenant.clone();
    let reason = state
        .store
        .acting_as(&who.extension)
        .add_reason(&reason_input(body, tenant, code))
        .await
        .map_err(ApiError::input)?;
    Ok((StatusCode::CREATED, Json(reason)))
}

pub(crate) async fn update_reason(
    State(state): State<ApiState>,
    who: Principal,
    PathId(id): PathId,
    JsonBody(body): JsonBody<ReasonBody>,
) -> Result<Json<Reason>, ApiError> {
    refuse("tenant", body.tenant.is_some(), "on update")?;
    refuse("code", body.code.is_some(), "on update")?;
    let current = state
        .store
        .reason(ReasonId(id))
        .await?
        .filter(|r| r.tenant.as_deref().is_none_or(|t| who.sees(t)))
        .ok_or_else(|| ApiError::not_found("reason"))?;
    check_writer(&who, current.tenant.as_deref())?;
    let active = body.active.unwrap_or(current.active);
    let new = reason_input(body, current.tenant.clone(), current.code.clone());
    let reason = state
        .store
        .acting_as(&who.extension)
        .update_reason(ReasonId(id), &new, active)
        .await
        .map_err(ApiError::input)?;
    Ok(Json(reason))
}
