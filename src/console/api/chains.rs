//! Hand-off chains over HTTP: the chains supervisors must see, the result an
//! operator records for a hand-off call, a supervisor restarting a ticket's chain
//! or acting on an exhausted one.
//!
//! - `GET /chains`: running chains and exhausted ones nobody has acted on, in the
//!   caller's tenants, oldest first, each with its attempts and when its phase ends.
//! - `POST /chains/{id}/attempts/{seq}/result` `{"result": "accepted" | "declined"
//!   | "not-reached"}`: the operator of that call (or a supervisor) records what the
//!   person said. "accepted" accepts the ticket in one transaction guarded by its
//!   version: 409 when somebody else accepted first.
//! - `POST /chains/{id}/acknowledge`: a supervisor has acted on an exhausted chain;
//!   it leaves the board.
//! - `POST /tickets/{id}/chain/restart`: a supervisor starts a new chain for a
//!   registered ticket whose chain ended (re-opening a ticket does not restart it).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ApiState;
use super::auth::Principal;
use super::error::ApiError;
use super::extract::{JsonBody, PathId};
use crate::config::Role;
use crate::dialer::driver::ChainHandle;
use crate::dialer::order::AttemptRef;
use crate::dialer::runner::{OperatorResult, RunnerError};
use crate::store::chains::Chain;
use crate::store::{DialChainId, TicketId};

/// A chain as the API shows it: as stored, with when its phase ends.
#[derive(Debug, Serialize)]
pub(crate) struct ChainView {
    #[serde(flatten)]
    chain: Chain,
    /// When the current level (or the informer's window) hands over at the latest.
    phase_ends_at: Option<DateTime<Utc>>,
    /// In the final round, when the escalation moves to the next person up.
    escalation_ends_at: Option<DateTime<Utc>>,
}

impl ChainView {
    pub(crate) fn of(chain: Chain) -> Self {
        let secs = |key: &str| {
            chain
                .policy
                .get(key)
                .and_then(serde_json::Value::as_i64)
                .map(chrono::Duration::seconds)
        };
        let running = chain.state == crate::store::ChainState::Running;
        let window = if chain.phase == "final" {
            secs("broadcast_window")
        } else {
            secs("level_timeout")
        };
        let phase_ends_at = running
            .then(|| Some(chain.phase_started_at? + window?))
            .flatten();
        let escalation_ends_at = (running && chain.phase == "final")
            .then(|| Some(chain.escalation_started_at? + secs("escalation_step")?))
            .flatten();
        Self {
            chain,
            phase_ends_at,
            escalation_ends_at,
        }
    }
}

/// `POST /chains/{id}/attempts/{seq}/result` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResultBody {
    result: OperatorResult,
}

fn handle(state: &ApiState) -> Result<&ChainHandle, ApiError> {
    state.chains.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the dialer is not attached to this API",
        )
    })
}

fn runner_error(e: RunnerError) -> ApiError {
    match e {
        RunnerError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m),
        RunnerError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
        RunnerError::Forbidden(m) => ApiError::forbidden(None, m),
        RunnerError::Store(e) => e.into(),
    }
}

fn stopped() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the dialer is not running")
}

async fn visible_chain(state: &ApiState, who: &Principal, id: i64) -> Result<Chain, ApiError> {
    state
        .store
        .chain(DialChainId(id))
        .await?
        .filter(|c| who.sees(&c.tenant))
        .ok_or_else(|| ApiError::not_found("chain"))
}

fn supervisor(who: &Principal) -> Result<(), ApiError> {
    if who.role == Role::Supervisor {
        Ok(())
    } else {
        Err(ApiError::forbidden(None, "only supervisors may do this"))
    }
}

pub(crate) async fn open(
    State(state): State<ApiState>,
    who: Principal,
) -> Result<Json<Vec<ChainView>>, ApiError> {
    let chains = state.store.open_chains(&who.scope()).await?;
    Ok(Json(chains.into_iter().map(ChainView::of).collect()))
}

pub(crate) async fn record_result(
    State(state): State<ApiState>,
    who: Principal,
    Path((id, seq)): Path<(String, String)>,
    JsonBody(body): JsonBody<ResultBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(Some("id"), format!("`{id}` is not an id")))?;
    let seq: u32 = seq
        .parse()
        .map_err(|_| ApiError::bad_request(Some("seq"), format!("`{seq}` is not an attempt")))?;
    let chain = visible_chain(&state, &who, id).await?;
    let attempt = AttemptRef {
        chain: chain.id,
        seq,
    };
    handle(&state)?
        .operator_result(
            attempt,
            body.result,
            &who.extension,
            who.role == Role::Supervisor,
        )
        .await
        .map_err(|_| stopped())?
        .map_err(runner_error)?;
    Ok(Json(
        json!({ "chain": chain.id, "seq": seq, "result": body.result }),
    ))
}

pub(crate) async fn acknowledge(
    State(state): State<ApiState>,
    who: Principal,
    PathId(id): PathId,
) -> Result<Json<ChainView>, ApiError> {
    supervisor(&who)?;
    let chain = visible_chain(&state, &who, id).await?;
    let chain = state
        .store
        .acknowledge_chain(chain.id, &who.extension, Utc::now())
        .await?;
    state.events.publish(
        "chain.acknowledged",
        Some(&chain.tenant),
        json!({ "ticket": chain.ticket_id, "chain": chain.id, "by": who.extension }),
    );
    Ok(Json(ChainView::of(chain)))
}

pub(crate) async fn restart(
    State(state): State<ApiState>,
    who: Principal,
    PathId(id): PathId,
) -> Result<(StatusCode, Json<ChainView>), ApiError> {
    supervisor(&who)?;
    let ticket = state
        .store
        .ticket(TicketId(id))
        .await?
        .filter(|t| who.sees(&t.ticket.tenant))
        .ok_or_else(|| ApiError::not_found("ticket"))?;
    let started = handle(&state)?
        .restart(ticket.ticket.id)
        .await
        .map_err(|_| stopped())?
        .map_err(runner_error)?;
    let Some(chain) = started else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the ticket is not registered any more, or its chain is still running",
        ));
    };
    tracing::info!(ticket = %ticket.ticket.number, %chain, by = %who.extension, "chain restarted by a supervisor");
    let chain = state
        .store
        .chain(chain)
        .await?
        .ok_or_else(|| ApiError::not_found("chain"))?;
    Ok((StatusCode::CREATED, Json(ChainView::of(chain))))
}
