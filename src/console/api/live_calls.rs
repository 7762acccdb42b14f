//! `/calls/{id}/tenant`: orders for a call in progress. A citywide caller whose
//! address is not known reaches an operator with no management company; the
//! operator chooses it, and from then on the journal row, the recording and every
//! event of the call carry it. The call lives in the call core; this handler only
//! checks the request and asks the core through the [`CallHandle`].
//!
//! The tenant must exist and be one the principal serves; a call already tagged
//! with a tenant the principal does not serve is not theirs to change.
//!
//! [`CallHandle`]: crate::call::CallHandle

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::ApiState;
use super::auth::Principal;
use super::error::ApiError;
use super::extract::JsonBody;
use super::operators::{core, core_error};
use crate::call::handle::{CallError, CallTenant};

/// `POST /calls/{id}/tenant` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetTenant {
    tenant: String,
}

pub(crate) async fn set_tenant(
    State(state): State<ApiState>,
    who: Principal,
    Path(call): Path<String>,
    JsonBody(body): JsonBody<SetTenant>,
) -> Result<Json<CallTenant>, ApiError> {
    let handle = core(&state)?;
    let tenant = body.tenant.trim().to_owned();
    if tenant.is_empty() {
        return Err(ApiError::invalid("tenant", "a tenant code is required"));
    }
    who.require(Some(&tenant))?;
    if state.store.tenant(&tenant).await?.is_none() {
        return Err(ApiError::invalid(
            "tenant",
            format!("unknown tenant `{tenant}`"),
        ));
    }
    let set = handle
        .set_call_tenant(&call, &tenant, who.tenants.clone())
        .await
        .map_err(core_error)?
        .map_err(|e| match e {
            CallError::Unknown(_) => ApiError::not_found("call in progress"),
            CallError::OtherTenant(_) => ApiError::forbidden(Some("tenant"), e.to_string()),
        })?;
    Ok(Json(set))
}
