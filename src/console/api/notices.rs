//! `/outages` (create, read, replace, delete) and `/debtors` (list, CSV import).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use serde::Deserialize;

use super::ApiState;
use super::auth::Principal;
use super::directory::{ImportQuery, check_import};
use super::error::ApiError;
use super::extract::{CsvBody, JsonBody, PathId, QueryParams};
use super::journal::log_reads;
use crate::store::{Debtor, DebtorImportMode, ImportReport, NewOutage, Outage, OutageId, Page};

/// `GET /outages` query.
#[derive(Debug, Deserialize)]
pub(crate) struct OutageQuery {
    /// Only outages running now.
    #[serde(default)]
    active: bool,
}

async fn visible(state: &ApiState, who: &Principal, id: i64) -> Result<Outage, ApiError> {
    state
        .store
        .outage(OutageId(id))
        .await?
        .filter(|o| who.sees(&o.tenant))
        .ok_or_else(|| ApiError::not_found("outage"))
}

pub(crate) async fn outages(
    State(state): State<ApiState>,
    who: Principal,
    QueryParams(query): QueryParams<OutageQuery>,
) -> Result<Json<Vec<Outage>>, ApiError> {
    let active_at = query.active.then(Utc::now);
    Ok(Json(state.store.outages(&who.scope(), active_at).await?))
}

pub(crate) async fn outage(
    State(state): State<ApiState>,
    who: Principal,
    PathId(id): PathId,
) -> Result<Json<Outage>, ApiError> {
    Ok(Json(visible(&state, &who, id).await?))
}

pub(crate) async fn create_outage(
    State(state): State<ApiState>,
    who: Principal,
    JsonBody(new): JsonBody<NewOutage>,
) -> Result<(StatusCode, Json<Outage>), ApiError> {
    who.require(Some(&new.tenant))?;
    let outage = state
        .store
        .create_outage(&new, Utc::now())
        .await
        .map_err(ApiError::input)?;
    Ok((StatusCode::CREATED, Json(outage)))
}

pub(crate) async fn update_outage(
    State(state): State<ApiState>,
    who: Principal,
    PathId(id): PathId,
    JsonBody(new): JsonBody<NewOutage>,
) -> Result<Json<Outage>, ApiError> {
    let current = visible(&state, &who, id).await?;
    who.require(Some(&new.tenant))?;
    if current.tenant != new.tenant {
        return Err(ApiError::invalid(
            "tenant",
            "an outage cannot move to another tenant",
        ));
    }
    let outage = state
        .store
        .update_outage(OutageId(id), &new, Utc::now())
        .await
        .map_err(ApiError::input)?;
    Ok(Json(outage))
}

pub(crate) async fn delete_outage(
    State(state): State<ApiState>,
    who: Principal,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    visible(&state, &who, id).await?;
    state.store.delete_outage(OutageId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /debtors` query.
#[derive(Debug, Deserialize)]
pub(crate) struct DebtorQuery {
    tenant: Option<String>,
    offset: Option<i64>,
    limit: Option<i64>,
}

pub(crate) async fn debtors(
    State(state): State<ApiState>,
    who: Principal,
    QueryParams(query): QueryParams<DebtorQuery>,
) -> Result<Json<Page<Debtor>>, ApiError> {
    who.require(query.tenant.as_deref())?;
    let page = state
        .store
        .debtors(
            &who.scope(),
            query.tenant.as_deref(),
            query.offset,
            query.limit,
        )
        .await?;
    log_reads(
        &state,
        &who,
        "GET /debtors",
        page.items
            .iter()
            .map(|d| (Some(d.tenant.as_str()), "debtor", d.id.to_string())),
    )
    .await?;
    Ok(Json(page))
}

pub(crate) async fn import_debtors(
    State(state): State<ApiState>,
    who: Principal,
    QueryParams(query): QueryParams<ImportQuery>,
    body: CsvBody,
) -> Result<Json<ImportReport>, ApiError> {
    check_import(&who, &query)?;
    let body = body.read().await?;
    let report = state
        .store
        .import_debtors(
            &query.tenant,
            &body,
            query.skip_bad_rows,
            query.mode.unwrap_or(DebtorImportMode::Upsert),
            Utc::now(),
        )
        .await
        .map_err(ApiError::input)?;
    Ok(Json(report))
}
