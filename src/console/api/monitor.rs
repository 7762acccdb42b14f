//! `GET /monitor`: open tickets by category, work type and executor, the
//! unassigned, those due soon and those overdue, in the reader's tenants. The
//! console keeps it live from `ticket.changed` events and turns a ticket red when
//! its deadline passes. Ticket reads are written to the access log.

use axum::Json;
use axum::extract::State;
use chrono::Utc;

use super::ApiState;
use super::auth::Principal;
use super::error::ApiError;
use super::extract::QueryParams;
use super::journal::log_reads;
use crate::store::monitor::{Monitor, MonitorFilter};

pub(crate) async fn monitor(
    State(state): State<ApiState>,
    who: Principal,
    QueryParams(filter): QueryParams<MonitorFilter>,
) -> Result<Json<Monitor>, ApiError> {
    who.require(filter.tenant.as_deref())?;
    let monitor = state
        .store
        .monitor(&who.scope(), &filter, Utc::now())
        .await?;
    log_reads(
        &state,
        &who,
        "GET /monitor",
        monitor
            .overdue_tickets
            .iter()
            .chain(&monitor.due_soon_tickets)
            .chain(&monitor.open_tickets)
            .map(|t| (Some(t.tenant.as_str()), "ticket", t.id.to_string())),
    )
    .await?;
    Ok(Json(monitor))
}
