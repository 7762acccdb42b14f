//! `GET /analytics` (the summary over a date range) and `GET /analytics/tickets`
//! (the tickets behind a figure), scoped to the reader's tenants. Supervisors and
//! the companies' staff read them; operators do not.

use axum::Json;
use axum::extract::State;

use super::ApiState;
use super::auth::Principal;
use super::error::ApiError;
use super::extract::QueryParams;
use super::journal::log_reads;
use crate::config::Role;
use crate::store::analytics::{Analytics, AnalyticsQuery, DrillFilter};
use crate::store::{Page, Ticket};

fn not_operator(who: &Principal) -> Result<(), ApiError> {
    if who.role == Role::Operator {
        return Err(ApiError::forbidden(
            None,
            "analytics are for supervisors and the companies",
        ));
    }
    Ok(())
}

pub(crate) async fn summary(
    State(state): State<ApiState>,
    who: Principal,
    QueryParams(query): QueryParams<AnalyticsQuery>,
) -> Result<Json<Analytics>, ApiError> {
    not_operator(&who)?;
    who.require(query.tenant.as_deref())?;
    let summary = state
        .store
        .analytics(&who.scope(), &query)
        .await
        .map_err(ApiError::input)?;
    Ok(Json(summary))
}

pub(crate) async fn tickets(
    State(state): State<ApiState>,
    who: Principal,
    QueryParams(filter): QueryParams<DrillFilter>,
) -> Result<Json<Page<Ticket>>, ApiError> {
    not_operator(&who)?;
    who.require(filter.tenant.as_deref())?;
    let page = state
        .store
        .analytics_tickets(&who.scope(), &filter)
        .await
        .map_err(ApiError::input)?;
    log_reads(
        &state,
        &who,
        "GET /analytics/tickets",
        page.items
            .iter()
            .map(|t| (Some(t.tenant.as_str()), "ticket", t.id.to_string())),
    )
    .await?;
    Ok(Json(page))
}
