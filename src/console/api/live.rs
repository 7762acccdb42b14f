//! What the console needs live, beside the event stream: `GET /calls/active` (the
//! calls in progress, so a reloaded or resynced console rebuilds its call cards),
//! `POST /calls/{id}/tenant` (the operator chooses the management company of a
//! citywide caller whose address is not known; from then on the journal row, the
//! recording and every event of the call carry it) and `GET /assignment` (the
//! executor chain a ticket would get, shown in the ticket form while the operator
//! picks the house and the reason). Live calls belong to the call core; these
//! handlers check the request and ask the core through its [`CallHandle`].
//!
//! Active calls follow the websocket's rules: a call of a tenant the principal
//! serves, or an untenanted call in a city of their tenants (all of them for a
//! principal of all tenants); the screen-pop in each is trimmed like `GET /caller`
//! and every caller shown is written to the access log. A call's tenant can be
//! set to one the principal serves, unless the call already belongs to a tenant
//! the principal does not serve.
//!
//! [`CallHandle`]: crate::call::CallHandle

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Path, State};
use chrono::Utc;
use serde::Deserialize;

use super::ApiState;
use super::auth::Principal;
use super::error::ApiError;
use super::extract::{JsonBody, QueryParams};
use super::journal::{log_reads, trim_screen_pop};
use super::operators::{core, core_error};
use crate::call::handle::{ActiveCall, CallError, CallTenant};
use crate::store::{ExecutorChain, HouseId, ReasonId};

pub(crate) async fn active_calls(
    State(state): State<ApiState>,
    who: Principal,
) -> Result<Json<Vec<ActiveCall>>, ApiError> {
    let mut calls = core(&state)?.active_calls().await.map_err(core_error)?;
    let cities: HashSet<String> = if who.tenants.is_empty() {
        HashSet::new()
    } else {
        state
            .store
            .tenants(&who.scope())
            .await?
            .into_iter()
            .map(|t| t.city.code)
            .collect()
    };
    calls.retain(|c| match &c.tenant {
        Some(t) => who.sees(t),
        None => who.tenants.is_empty() || c.city.as_ref().is_some_and(|city| cities.contains(city)),
    });
    for call in &mut calls {
        trim_screen_pop(&who, &mut call.screen_pop);
    }
    let phones: Vec<(Option<String>, String)> = calls
        .iter()
        .filter_map(|c| {
            let phone = c.screen_pop.get("caller")?.get("phone")?.as_str()?;
            Some((c.tenant.clone(), phone.to_owned()))
        })
        .collect();
    log_reads(
        &state,
        &who,
        "GET /calls/active",
        phones
            .iter()
            .map(|(tenant, phone)| (tenant.as_deref(), "caller", phone.clone())),
    )
    .await?;
    calls.sort_by(|a, b| a.call.cmp(&b.call));
    Ok(Json(calls))
}

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

/// `GET /assignment` query.
#[derive(Debug, Deserialize)]
pub(crate) struct AssignmentQuery {
    tenant: String,
    house: i64,
    reason: i64,
}

pub(crate) async fn assignment(
    State(state): State<ApiState>,
    who: Principal,
    QueryParams(query): QueryParams<AssignmentQuery>,
) -> Result<Json<ExecutorChain>, ApiError> {
    who.require(Some(&query.tenant))?;
    let house = state
        .store
        .house(HouseId(query.house))
        .await?
        .filter(|h| h.tenant == query.tenant)
        .ok_or_else(|| ApiError::not_found("house").with_field("house"))?;
    let chain = state
        .store
        .executor_chain(&query.tenant, house.id, ReasonId(query.reason), Utc::now())
        .await?;
    Ok(Json(chain))
}
