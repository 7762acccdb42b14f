//! Follow-up calls over HTTP: `POST /outages/{id}/broadcast` tells the residents
//! of an outage's houses by phone (body `{}`, or `{"urgent": true}` to ring
//! through quiet hours),
//! `GET /outages/{id}/broadcast` and `GET /broadcasts` report how broadcasts
//! stand, and `POST /dial-jobs/{id}/answer` records what an executor told the
//! operator on an operator-first status check (`{"answer": "done" | "in-progress" |
//! "cannot", "note": "..."}`): the ticket's history gets the line and the ticket
//! moves as the answer says.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ApiState;
use super::auth::Principal;
use super::error::ApiError;
use super::extract::{JsonBody, PathId};
use crate::config::Role;
use crate::dialer::follow_up::WorkStatus;
use crate::store::{BroadcastProgress, DialJob, DialJobId, DialKind, OutageId};

/// `POST /outages/{id}/broadcast` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BroadcastRequest {
    /// Ring through the city's quiet hours.
    #[serde(default)]
    urgent: bool,
}

/// A broadcast as `GET /broadcasts` lists it.
#[derive(Debug, Serialize)]
pub(crate) struct BroadcastView {
    #[serde(flatten)]
    progress: BroadcastProgress,
    tenant: String,
    text: String,
    kind: String,
}

async fn visible_outage(
    state: &ApiState,
    who: &Principal,
    id: i64,
) -> Result<crate::store::Outage, ApiError> {
    state
        .store
        .outage(OutageId(id))
        .await?
        .filter(|o| who.sees(&o.tenant))
        .ok_or_else(|| ApiError::not_found("outage"))
}

pub(crate) async fn start_broadcast(
    State(state): State<ApiState>,
    who: Principal,
    PathId(id): PathId,
    JsonBody(body): JsonBody<BroadcastRequest>,
) -> Result<(StatusCode, Json<BroadcastProgress>), ApiError> {
    if who.role == Role::Operator {
        return Err(ApiError::forbidden(
            None,
            "an outage broadcast is started by a supervisor or the company's admin",
        ));
    }
    let outage = visible_outage(&state, &who, id).await?;
    let urgent = body.urgent;
    let progress = crate::dialer::broadcast::start(
        &state.store,
        &state.events,
        &state.config.follow_ups,
        outage.id,
        urgent,
        Utc::now(),
    )
    .await
    .map_err(ApiError::input)?;
    tracing::info!(outage = %outage.id, by = %who.extension, urgent, numbers = progress.total, "outage broadcast requested");
    Ok((StatusCode::ACCEPTED, Json(progress)))
}

pub(crate) async fn broadcast(
    State(state): State<ApiState>,
    who: Principal,
    PathId(id): PathId,
) -> Result<Json<BroadcastProgress>, ApiError> {
    let outage = visible_outage(&state, &who, id).await?;
    Ok(Json(state.store.broadcast_progress(outage.id).await?))
}

pub(crate) async fn broadcasts(
    State(state): State<ApiState>,
    who: Principal,
) -> Result<Json<Vec<BroadcastView>>, ApiError> {
    let since = Utc::now() - chrono::Duration::hours(24);
    let mut out = Vec::new();
    for (progress, tenant) in state.store.broadcasts(&who.scope(), since).await? {
        let (text, kind) = match state.store.outage(progress.outage).await? {
            Some(o) => (o.text, o.kind),
            None => (String::new(), String::new()),
        };
        out.push(BroadcastView {
            progress,
            tenant,
            text,
            kind,
        });
    }
    Ok(Json(out))
}

/// `POST /dial-jobs/{id}/answer` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OperatorAnswer {
    answer: WorkStatus,
    #[serde(default)]
    note: Option<String>,
}

pub(crate) async fn answer(
    State(state): State<ApiState>,
    who: Principal,
    PathId(id): PathId,
    JsonBody(body): JsonBody<OperatorAnswer>,
) -> Result<Json<DialJob>, ApiError> {
    let job = state
        .store
        .dial_job(DialJobId(id))
        .await?
        .filter(|j| j.tenant.as_deref().is_none_or(|t| who.sees(t)))
        .ok_or_else(|| ApiError::not_found("dial job"))?;
    if job.kind != DialKind::StatusCheck {
        return Err(ApiError::invalid(
            "answer",
            format!("a {} call takes no status answer", job.kind),
        ));
    }
    let extra = body
        .note
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| n.chars().take(1000).collect::<String>());
    let mut note = body.answer.note("исполнитель");
    if let Some(extra) = &extra {
        note = format!("{note}: {extra}");
    }
    let (job, ticket) = state
        .store
        .answer_follow_up(
            job.id,
            body.answer.as_str(),
            body.answer.moves_to(),
            &who.extension,
            &note,
            Utc::now(),
        )
        .await
        .map_err(ApiError::input)?;
    state.events.publish(
        "status-check.answered",
        job.tenant.as_deref(),
        json!({
            "ticket": job.ticket_id,
            "job": job.id,
            "answer": body.answer.as_str(),
            "attention": body.answer == WorkStatus::Cannot,
            "by": who.extension,
            "status": ticket.as_ref().map(|t| t.status),
        }),
    );
    Ok(Json(job))
}
