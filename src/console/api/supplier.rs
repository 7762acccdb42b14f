//! Hand-overs of tickets to resource suppliers (РСО): `POST /tickets/{id}/supplier-tickets`
//! hands a ticket over, `GET`/`PATCH /supplier-tickets/{id}` read and change one
//! (status, the supplier's number, the re-check time), `GET /supplier-tickets/due`
//! lists the open ones whose re-check time has come. A hand-over belongs to its
//! ticket's tenant; another tenant's is not found.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::ApiState;
use super::auth::Principal;
use super::error::ApiError;
use super::extract::{JsonBody, PathId, QueryParams};
use crate::store::{SupplierTicket, SupplierTicketId, SupplierUpdate, TicketId};

/// `POST /tickets/{id}/supplier-tickets` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HandOver {
    supplier: String,
    #[serde(default)]
    supplier_number: Option<String>,
    #[serde(default)]
    recheck_at: Option<DateTime<Utc>>,
}

/// `GET /supplier-tickets/due` query.
#[derive(Debug, Deserialize)]
pub(crate) struct DueQuery {
    #[serde(default)]
    limit: Option<i64>,
}

async fn visible(state: &ApiState, who: &Principal, id: i64) -> Result<SupplierTicket, ApiError> {
    state
        .store
        .supplier_ticket(SupplierTicketId(id))
        .await?
        .filter(|s| who.sees(&s.tenant))
        .ok_or_else(|| ApiError::not_found("supplier ticket"))
}

pub(crate) async fn hand_over(
    State(state): State<ApiState>,
    who: Principal,
    PathId(id): PathId,
    JsonBody(body): JsonBody<HandOver>,
) -> Result<(StatusCode, Json<SupplierTicket>), ApiError> {
    state
        .store
        .ticket(TicketId(id))
        .await?
        .filter(|t| who.sees(&t.ticket.tenant))
        .ok_or_else(|| ApiError::not_found("ticket"))?;
    let derived = state
        .store
        .derive_supplier_ticket(
            TicketId(id),
            &body.supplier,
            body.supplier_number.as_deref(),
            body.recheck_at,
            Utc::now(),
        )
        .await
        .map_err(ApiError::input)?;
    Ok((
        StatusCode::CREATED,
        Json(visible(&state, &who, derived.0).await?),
    ))
}

pub(crate) async fn get(
    State(state): State<ApiState>,
    who: Principal,
    PathId(id): PathId,
) -> Result<Json<SupplierTicket>, ApiError> {
    Ok(Json(visible(&state, &who, id).await?))
}

pub(crate) async fn update(
    State(state): State<ApiState>,
    who: Principal,
    PathId(id): PathId,
    JsonBody(body): JsonBody<SupplierUpdate>,
) -> Result<Json<SupplierTicket>, ApiError> {
    visible(&state, &who, id).await?;
    let changed = state
        .store
        .update_supplier_ticket(SupplierTicketId(id), &body, Utc::now())
        .await?;
    Ok(Json(changed))
}

pub(crate) async fn due(
    State(state): State<ApiState>,
    who: Principal,
    QueryParams(query): QueryParams<DueQuery>,
) -> Result<Json<Vec<SupplierTicket>>, ApiError> {
    let mut due = state
        .store
        .supplier_rechecks_due(Utc::now(), query.limit.unwrap_or(100))
        .await?;
    due.retain(|s| who.sees(&s.tenant));
    Ok(Json(due))
}
