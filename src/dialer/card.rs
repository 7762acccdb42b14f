//! The card of a ticket: what an operator's screen shows and the robot says about
//! a ticket the engine calls someone about (a hand-off, a status check, a supplier
//! hand-over), read from the store once per chain or job.

use chrono::{DateTime, Utc};

use super::message;
use super::order::TicketCard;
use crate::store::{Store, StoreError, TicketId};

/// Reads `ticket` and builds its card as of `wall`; `has` says whether a prompt
/// exists (the message leaves out what it cannot say).
pub async fn ticket_card(
    store: &Store,
    language: &str,
    has: &(dyn Fn(&str) -> bool + Send + Sync),
    ticket: TicketId,
    wall: DateTime<Utc>,
) -> Result<TicketCard, StoreError> {
    let detail = store
        .ticket(ticket)
        .await?
        .ok_or_else(|| StoreError::not_found("ticket", ticket))?;
    let t = detail.ticket;
    let tenant = store.tenant(&t.tenant).await?;
    let reason = store.reason(t.reason_id).await?;
    let (tenant_name, city, zone) = match &tenant {
        Some(tn) => (tn.name.clone(), tn.city.code.clone(), tn.city.time_zone),
        None => (t.tenant.clone(), String::new(), chrono_tz::UTC),
    };
    let work_type = reason.map(|r| r.work_type).unwrap_or_default();
    let spoken = message::informer(
        language,
        &message::Ticket {
            tenant: &t.tenant,
            number: &t.number,
            category: t.category,
            work_type: &work_type,
            address: &t.address,
            deadline: t.deadline_at,
            zone,
        },
        wall,
        has,
    );
    Ok(TicketCard {
        ticket,
        number: t.number,
        tenant: t.tenant,
        tenant_name,
        city,
        category: t.category,
        address: t.address,
        apartment: t.apartment,
        reason: t.reason,
        description: t.description,
        deadline: t.deadline_at,
        caller_phone: None,
        message: spoken.items,
        address_unsaid: spoken.address_unsaid,
    })
}
