//! `/operators`: who is on the floor and in what state, and the console's own
//! ready / pause / log-out buttons. The state lives in the call core (it decides who
//! gets the next call); these handlers only ask it through the [`CallHandle`].
//!
//! An operator may change only their own state; a supervisor may change the state
//! of any operator who serves one of the supervisor's tenants.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::ApiState;
use super::auth::Principal;
use super::error::ApiError;
use super::extract::JsonBody;
use crate::call::handle::HandleError;
use crate::call::operators::OperatorError;
use crate::call::{CallHandle, OperatorState, OperatorView};
use crate::config::Role;

/// `POST /operators/{ext}/state` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetState {
    state: OperatorState,
    #[serde(default)]
    reason: Option<String>,
}

/// The call core's handle, or 503 when the API runs without one.
pub(crate) fn core(state: &ApiState) -> Result<&CallHandle, ApiError> {
    state.calls.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the call core is not attached to this API",
        )
    })
}

/// The call core stopped answering (shutdown): 503.
pub(crate) fn core_error(error: HandleError) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
}

/// Whether `who` may see `operator`: themselves, or an operator sharing a tenant
/// (someone serving all tenants shares every tenant).
pub(crate) fn sees_operator(who: &Principal, operator: &OperatorView) -> bool {
    operator.extension == who.extension
        || who.tenants.is_empty()
        || operator.tenants.is_empty()
        || operator.tenants.iter().any(|t| who.sees(t))
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    who: Principal,
) -> Result<Json<Vec<OperatorView>>, ApiError> {
    let mut operators = core(&state)?.operators().await.map_err(core_error)?;
    operators.retain(|o| sees_operator(&who, o));
    Ok(Json(operators))
}

pub(crate) async fn set_state(
    State(state): State<ApiState>,
    who: Principal,
    Path(extension): Path<String>,
    JsonBody(body): JsonBody<SetState>,
) -> Result<Json<OperatorView>, ApiError> {
    let handle = core(&state)?;
    if !matches!(
        body.state,
        OperatorState::Ready | OperatorState::Paused | OperatorState::LoggedOut
    ) {
        return Err(ApiError::invalid(
            "state",
            format!(
                "`{}` is set by the engine; choose ready, paused or logged-out",
                body.state.as_str()
            ),
        ));
    }
    let reason = body
        .reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if reason.as_ref().is_some_and(|r| r.chars().count() > 200) {
        return Err(ApiError::invalid("reason", "longer than 200 characters"));
    }
    if body.state == OperatorState::Paused && reason.is_none() {
        return Err(ApiError::invalid("reason", "a pause needs a reason"));
    }
    if extension != who.extension {
        if who.role != Role::Supervisor {
            return Err(ApiError::forbidden(
                Some("extension"),
                "an operator may change only their own state",
            ));
        }
        let operators = handle.operators().await.map_err(core_error)?;
        let target = operators
            .iter()
            .find(|o| o.extension == extension)
            .ok_or_else(|| ApiError::not_found("operator").with_field("extension"))?;
        if !sees_operator(&who, target) {
            return Err(ApiError::forbidden(
                Some("extension"),
                format!("operator {extension} serves none of your tenants"),
            ));
        }
    }
    let view = handle
        .set_operator_state(&extension, body.state, reason)
        .await
        .map_err(core_error)?
        .map_err(|e| match e {
            OperatorError::Unknown(_) => ApiError::not_found("operator").with_field("extension"),
            OperatorError::NotManual(_) => ApiError::invalid("state", e.to_string()),
            OperatorError::PauseNeedsReason => ApiError::invalid("reason", e.to_string()),
            OperatorError::OnCall(_) => {
                ApiError::new(StatusCode::CONFLICT, e.to_string()).with_field("state")
            }
        })?;
    Ok(Json(view))
}
