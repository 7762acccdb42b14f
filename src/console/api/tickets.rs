//! `/tickets`: registration with automatic assignment, listing, status changes (one
//! or many at once, all or nothing) and comments. Ticket reads include addresses and
//! are written to the access log.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use serde::Deserialize;

use super::ApiState;
use super::auth::Principal;
use super::error::ApiError;
use super::extract::{JsonBody, PathId, QueryParams};
use super::journal::log_reads;
use crate::store::tickets::{Channel, StatusUpdate, TicketDetail};
use crate::store::{
    Comment, HouseId, NewTicket, Page, ReasonId, RegisteredTicket, Ticket, TicketFilter, TicketId,
    TicketStatus,
};

/// `POST /tickets` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTicket {
    tenant: String,
    house_id: HouseId,
    #[serde(default)]
    apartment: Option<String>,
    reason_id: ReasonId,
    #[serde(default)]
    description: String,
    #[serde(default)]
    source: Option<Channel>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    caller_phone: Option<String>,
    #[serde(default)]
    call_id: Option<String>,
}

/// `POST /tickets/{id}/status` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangeStatus {
    status: TicketStatus,
    #[serde(default)]
    note: String,
    /// The version the operator last saw; a newer one is a conflict.
    #[serde(default)]
    version: Option<i64>,
}

/// `POST /tickets/status` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangeStatusBulk {
    ids: Vec<TicketId>,
    status: TicketStatus,
    #[serde(default)]
    note: String,
}

/// `POST /tickets/{id}/comments` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddComment {
    text: String,
    /// Internal: never read or shown to residents.
    #[serde(default)]
    internal: bool,
}

fn check_note(note: &str) -> Result<(), ApiError> {
    if note.chars().count() > 1000 {
        return Err(ApiError::invalid("note", "longer than 1000 characters"));
    }
    Ok(())
}

/// The ticket, if the principal may see it; another tenant's is "not found".
async fn visible(state: &ApiState, who: &Principal, id: i64) -> Result<TicketDetail, ApiError> {
    state
        .store
        .ticket(TicketId(id))
        .await?
        .filter(|t| who.sees(&t.ticket.tenant))
        .ok_or_else(|| ApiError::not_found("ticket"))
}

pub(crate) async fn create(
    State(state): State<ApiState>,
    who: Principal,
    JsonBody(body): JsonBody<CreateTicket>,
) -> Result<(StatusCode, Json<RegisteredTicket>), ApiError> {
    who.require(Some(&body.tenant))?;
    let caller_phone = body
        .caller_phone
        .as_deref()
        .filter(|p| !p.trim().is_empty())
        .map(crate::phone::PhoneNumber::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("caller_phone", e.to_string()))?;
    let new = NewTicket {
        tenant: body.tenant,
        house_id: body.house_id,
        apartment: body.apartment.filter(|a| !a.trim().is_empty()),
        reason_id: body.reason_id,
        description: body.description,
        source: body.source.unwrap_or(Channel::Phone),
        labels: body.labels,
        caller_phone,
        call_id: body.call_id,
        actor: who.extension.clone(),
    };
    let now = Utc::now();
    let registered = state
        .store
        .create_ticket(&new, now)
        .await
        .map_err(ApiError::input)?;
    // Registering a ticket for a caller is the operator confirming the caller's
    // address with them: the phone is learnt (or refreshed) in the contacts. The
    // ticket stands even if this fails.
    if let Some(phone) = &new.caller_phone {
        let ticket = &registered.ticket;
        if let Err(e) = state
            .store
            .learn_contact(
                phone,
                &ticket.tenant,
                ticket.house_id,
                ticket.apartment.as_deref(),
                now,
            )
            .await
        {
            tracing::warn!(%phone, ticket = %ticket.number, error = %e, "could not learn the caller's contact");
        }
    }
    Ok((StatusCode::CREATED, Json(registered)))
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    who: Principal,
    QueryParams(filter): QueryParams<TicketFilter>,
) -> Result<Json<Page<Ticket>>, ApiError> {
    who.require(filter.tenant.as_deref())?;
    let page = state.store.tickets(&who.scope(), &filter).await?;
    log_reads(
        &state,
        &who,
        "GET /tickets",
        page.items
            .iter()
            .map(|t| (Some(t.tenant.as_str()), "ticket", t.id.to_string())),
    )
    .await?;
    Ok(Json(page))
}

/// A ticket with its hand-off chains.
#[derive(Debug, serde::Serialize)]
pub(crate) struct TicketView {
    #[serde(flatten)]
    detail: TicketDetail,
    /// The latest hand-off chain, with every attempt.
    handoff: Option<super::chains::ChainView>,
    /// Earlier chains (a supervisor restarted it), newest first.
    earlier_chains: Vec<super::chains::ChainView>,
    /// The card: time in each status, every call with its recording, ratings.
    #[serde(flatten)]
    card: super::ticket_card::CardExtras,
}

pub(crate) async fn get(
    State(state): State<ApiState>,
    who: Principal,
    PathId(id): PathId,
) -> Result<Json<TicketView>, ApiError> {
    let detail = visible(&state, &who, id).await?;
    let mut chains = state
        .store
        .chains_of_ticket(TicketId(id))
        .await?
        .into_iter()
        .map(super::chains::ChainView::of);
    let handoff = chains.next();
    let earlier_chains = chains.collect();
    let card = super::ticket_card::extras(&state, &detail).await?;
    log_reads(
        &state,
        &who,
        "GET /tickets/{id}",
        [(
            Some(detail.ticket.tenant.as_str()),
            "ticket",
            id.to_string(),
        )],
    )
    .await?;
    Ok(Json(TicketView {
        detail,
        handoff,
        earlier_chains,
        card,
    }))
}

pub(crate) async fn change_status(
    State(state): State<ApiState>,
    who: Principal,
    PathId(id): PathId,
    JsonBody(body): JsonBody<ChangeStatus>,
) -> Result<Json<Ticket>, ApiError> {
    check_note(&body.note)?;
    visible(&state, &who, id).await?;
    let update = StatusUpdate {
        to: body.status,
        actor: who.extension.clone(),
        note: body.note,
        expected_version: body.version,
    };
    let ticket = state
        .store
        .change_status(TicketId(id), &update, Utc::now())
        .await?;
    Ok(Json(ticket))
}

pub(crate) async fn change_status_bulk(
    State(state): State<ApiState>,
    who: Principal,
    JsonBody(body): JsonBody<ChangeStatusBulk>,
) -> Result<Json<Vec<Ticket>>, ApiError> {
    check_note(&body.note)?;
    if body.ids.is_empty() || body.ids.len() > 500 {
        return Err(ApiError::invalid("ids", "give 1 to 500 ticket ids"));
    }
    // One query for every ticket's tenant; a missing or foreign one is not found.
    let tenants = state.store.ticket_tenants(&body.ids).await?;
    for id in &body.ids {
        if !tenants.get(id).is_some_and(|t| who.sees(t)) {
            return Err(ApiError::not_found("ticket").with_field("ids"));
        }
    }
    let update = StatusUpdate {
        to: body.status,
        actor: who.extension.clone(),
        note: body.note,
        expected_version: None,
    };
    let tickets = state
        .store
        .change_status_bulk(&body.ids, &update, Utc::now())
        .await?;
    Ok(Json(tickets))
}

pub(crate) async fn comment(
    State(state): State<ApiState>,
    who: Principal,
    PathId(id): PathId,
    JsonBody(body): JsonBody<AddComment>,
) -> Result<(StatusCode, Json<Comment>), ApiError> {
    visible(&state, &who, id).await?;
    let comment = state
        .store
        .comment_with(
            TicketId(id),
            &who.extension,
            &body.text,
            body.internal,
            Utc::now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(comment)))
}
