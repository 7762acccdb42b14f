//! `/tenants`, `/houses`, `/employees`, `/reasons` and `/contacts`: the reference data
//! operators work from. Contacts (phone plus address) are personal data: reads are
//! logged, and importing them takes a supervisor.

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use serde::Deserialize;

use super::ApiState;
use super::auth::Principal;
use super::error::ApiError;
use super::extract::{CsvBody, QueryParams};
use super::journal::log_reads;
use crate::store::directory::HouseFilter;
use crate::store::{
    Category, Contact, ContactFilter, Employee, House, ImportReport, Page, Reason, Tenant,
};

/// `?tenant=&skip_bad_rows=` of the CSV imports (and `mode=` of the debtors').
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportQuery {
    pub(crate) tenant: String,
    #[serde(default)]
    pub(crate) skip_bad_rows: bool,
    #[serde(default)]
    pub(crate) mode: Option<crate::store::DebtorImportMode>,
}

/// An import target the principal may write to.
pub(crate) fn check_import(who: &Principal, query: &ImportQuery) -> Result<(), ApiError> {
    if !who.role.administers() {
        return Err(ApiError::forbidden(
            None,
            "imports take a supervisor or a tenant admin",
        ));
    }
    who.require(Some(&query.tenant))
}

pub(crate) async fn tenants(
    State(state): State<ApiState>,
    who: Principal,
) -> Result<Json<Vec<Tenant>>, ApiError> {
    Ok(Json(state.store.tenants(&who.scope()).await?))
}

pub(crate) async fn houses(
    State(state): State<ApiState>,
    who: Principal,
    QueryParams(filter): QueryParams<HouseFilter>,
) -> Result<Json<Page<House>>, ApiError> {
    who.require(filter.tenant.as_deref())?;
    Ok(Json(state.store.houses(&who.scope(), &filter).await?))
}

/// `GET /employees` query.
#[derive(Debug, Deserialize)]
pub(crate) struct EmployeeQuery {
    tenant: Option<String>,
}

pub(crate) async fn employees(
    State(state): State<ApiState>,
    who: Principal,
    QueryParams(query): QueryParams<EmployeeQuery>,
) -> Result<Json<Vec<Employee>>, ApiError> {
    who.require(query.tenant.as_deref())?;
    Ok(Json(
        state
            .store
            .employees(&who.scope(), query.tenant.as_deref())
            .await?,
    ))
}

/// `GET /reasons` query: the operator's reason picker.
#[derive(Debug, Deserialize)]
pub(crate) struct ReasonQuery {
    tenant: Option<String>,
    q: Option<String>,
    category: Option<Category>,
}

pub(crate) async fn reasons(
    State(state): State<ApiState>,
    who: Principal,
    QueryParams(query): QueryParams<ReasonQuery>,
) -> Result<Json<Vec<Reason>>, ApiError> {
    who.require(query.tenant.as_deref())?;
    if query.q.as_ref().is_some_and(|q| q.chars().count() > 100) {
        return Err(ApiError::invalid("q", "longer than 100 characters"));
    }
    let mut reasons = state
        .store
        .reasons(query.tenant.as_deref(), query.q.as_deref(), query.category)
        .await?;
    reasons.retain(|r| r.tenant.as_deref().is_none_or(|t| who.sees(t)));
    Ok(Json(reasons))
}

pub(crate) async fn contacts(
    State(state): State<ApiState>,
    who: Principal,
    QueryParams(filter): QueryParams<ContactFilter>,
) -> Result<Json<Page<Contact>>, ApiError> {
    who.require(filter.tenant.as_deref())?;
    let page = state.store.contacts(&who.scope(), &filter).await?;
    log_reads(
        &state,
        &who,
        "GET /contacts",
        page.items
            .iter()
            .map(|c| (Some(c.tenant.as_str()), "contact", c.id.to_string())),
    )
    .await?;
    Ok(Json(page))
}

pub(crate) async fn import_contacts(
    State(state): State<ApiState>,
    who: Principal,
    QueryParams(query): QueryParams<ImportQuery>,
    body: CsvBody,
) -> Result<Json<ImportReport>, ApiError> {
    check_import(&who, &query)?;
    let body = body.read().await?;
    if query.mode.is_some() {
        return Err(ApiError::bad_request(
            Some("mode"),
            "contacts imports add and update; there is no mode",
        ));
    }
    let report = state
        .store
        .import_contacts(&query.tenant, &body, query.skip_bad_rows, Utc::now())
        .await
        .map_err(ApiError::input)?;
    Ok(Json(report))
}
