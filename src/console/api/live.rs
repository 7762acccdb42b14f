//! What the console needs live, beside the event stream: `GET /calls/active` (the
//! calls in progress, so a reloaded or resynced console rebuilds its call cards)
//! and `GET /assignment` (the executor chain a ticket would get, shown in the
//! ticket form while the operator picks the house and the reason).
//!
//! Active calls follow the websocket's rules: a call of a tenant the principal
//! serves, or an untenanted call in a city of their tenants (all of them for a
//! principal of all tenants); the screen-pop in each is trimmed like `GET /caller`
//! and every caller shown is written to the access log.

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use serde::Deserialize;

use super::ApiState;
use super::auth::Principal;
use super::error::ApiError;
use super::extract::QueryParams;
use super::journal::{log_reads, trim_screen_pop};
use super::operators::{core, core_error};
use crate::call::handle::ActiveCall;
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
