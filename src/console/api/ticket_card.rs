//! The parts of `GET /tickets/{id}` that make the ticket's card: the time spent in
//! each status, the deadline as seconds left (negative: overdue by), every call
//! about the ticket with its recording and the reviews the company gave it, the
//! ratings of the work, and the files attached to it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::ApiState;
use super::error::ApiError;
use crate::store::attachments::Attachment;
use crate::store::directory::TenantScope;
use crate::store::reviews::{CallReview, ReviewFilter};
use crate::store::ticket_card::{StatusTime, TicketCall, TicketRating, status_times};
use crate::store::tickets::TicketDetail;

/// What the card adds to a ticket.
#[derive(Debug, Serialize)]
pub(crate) struct CardExtras {
    /// The server's clock when the card was read (countdowns start from it).
    now: DateTime<Utc>,
    /// Seconds until the deadline; negative once it has passed (while open).
    deadline_left_s: Option<i64>,
    /// Time in each status, in the order first entered.
    status_times: Vec<StatusTime>,
    /// Every call about the ticket, oldest first.
    calls: Vec<TicketCall>,
    /// Ratings of the work (CSI/CES), attributed to the executor.
    ratings: Vec<TicketRating>,
    /// The company's reviews of the calls above.
    reviews: Vec<CallReview>,
    /// Files attached to the ticket.
    attachments: Vec<Attachment>,
}

/// The card's extras for `detail`, read now.
pub(crate) async fn extras(
    state: &ApiState,
    detail: &TicketDetail,
) -> Result<CardExtras, ApiError> {
    let now = Utc::now();
    let id = detail.ticket.id;
    let calls = state.store.ticket_calls(id).await?;
    let ratings = state.store.ticket_ratings(id).await?;
    let reviews = if calls.is_empty() {
        Vec::new()
    } else {
        let filter = ReviewFilter {
            calls: calls.iter().map(|c| c.call.id.clone()).collect(),
            limit: Some(500),
            ..ReviewFilter::default()
        };
        state
            .store
            .call_reviews(&TenantScope::All, &filter)
            .await?
            .items
    };
    let deadline_left_s = detail
        .ticket
        .status
        .is_open()
        .then(|| (detail.ticket.deadline_at - now).num_seconds());
    Ok(CardExtras {
        now,
        deadline_left_s,
        status_times: status_times(&detail.history, now),
        calls,
        ratings,
        reviews,
        attachments: state.store.attachments(id).await?,
    })
}
