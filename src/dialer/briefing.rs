//! The briefing of a follow-up call: what the operator's card says (why the engine
//! is calling, the ticket, what to ask) and what the robot says, gathered from the
//! store when a job is claimed, before the call core starts it.
//!
//! Also decides, at claim, whether a job may ring now: one that waits out quiet
//! hours and comes due at night (a retry, a job planned before the window moved)
//! goes back to the store, due at the end of the night in its tenant's city.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::card::ticket_card;
use super::order::TicketCard;
use super::quiet_hours::QuietHours;
use crate::store::{
    DialJob, DialKind, OutageId, Store, StoreError, SupplierStatus, SupplierTicketId,
};

/// A supplier hand-over as the operator's card shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SupplierBrief {
    /// The hand-over (the card's form writes to it).
    pub id: SupplierTicketId,
    /// The supplier's name.
    pub name: String,
    /// Where it stands.
    pub status: SupplierStatus,
    /// The supplier's own reference, once given.
    pub reference: Option<String>,
    /// When the supplier is to be asked again.
    pub recheck_at: Option<DateTime<Utc>>,
}

/// An outage as a broadcast reads it out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutageBrief {
    /// The outage.
    pub id: OutageId,
    /// Its kind (`hot_water`, ...): the prompt that names it.
    pub kind: String,
    /// Its text, for the journal and the board.
    pub text: String,
    /// Until when.
    pub ends_at: DateTime<Utc>,
    /// The tenant's city zone, for saying the time.
    #[serde(skip)]
    pub zone: Tz,
}

/// What is known about a follow-up call before it is made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Briefing {
    /// The ticket, for calls about one.
    pub ticket: Option<Arc<TicketCard>>,
    /// Whom the engine calls, in words (the executor, the supplier, "the resident").
    pub party: String,
    /// Why, in words, for the operator's card.
    pub why: String,
    /// What the operator asks, line by line.
    pub ask: Vec<String>,
    /// The supplier hand-over, for supplier calls.
    pub supplier: Option<SupplierBrief>,
    /// The outage, for broadcasts.
    pub outage: Option<OutageBrief>,
}

/// What to do with a claimed job.
#[derive(Debug, Clone)]
pub enum Claimed {
    /// Call now, with this briefing.
    Call(Box<DialJob>, Option<Arc<Briefing>>),
    /// It is night in its city: handed back, due then.
    Postponed(Box<DialJob>, DateTime<Utc>),
    /// Nothing left to call about (the outage was withdrawn, the ticket vanished):
    /// the job is cancelled.
    Void(Box<DialJob>, String),
}

/// Briefs `job` (claimed by `node`) as of `now`: postpones it when it waits out
/// quiet hours and it is night in its tenant's city; reads the ticket, the supplier
/// hand-over or the outage it is about.
pub async fn brief(
    store: &Store,
    node: &str,
    language: &str,
    has: &(dyn Fn(&str) -> bool + Send + Sync),
    quiet: &QuietHours,
    job: DialJob,
    now: DateTime<Utc>,
) -> Result<Claimed, StoreError> {
    if matches!(job.kind, DialKind::Callback | DialKind::StaffCallback) {
        return Ok(Claimed::Call(Box::new(job), None));
    }
    let tenant = match &job.tenant {
        Some(code) => store.tenant(code).await?,
        None => None,
    };
    let zone = tenant
        .as_ref()
        .map(|t| t.city.time_zone)
        .unwrap_or(chrono_tz::UTC);
    if job.quiet_hours && quiet.is_quiet(now, zone) {
        let until = quiet.next_allowed(now, zone);
        if store.postpone_dial_job(job.id, node, until, now).await? {
            return Ok(Claimed::Postponed(Box::new(job), until));
        }
    }
    let ticket = match job.ticket_id {
        Some(id) => match ticket_card(store, language, has, id, now).await {
            Ok(card) => Some(Arc::new(card)),
            Err(StoreError::NotFound { .. }) => {
                return Ok(Claimed::Void(Box::new(job), "the ticket is gone".into()));
            }
            Err(e) => return Err(e),
        },
        None => None,
    };
    let mut briefing = Briefing {
        ticket,
        party: String::new(),
        why: String::new(),
        ask: Vec::new(),
        supplier: None,
        outage: None,
    };
    match job.kind {
        DialKind::StatusCheck => {
            briefing.party = "исполнитель".into();
            briefing.why = "Проверка выполнения заявки".into();
            briefing.ask = vec![
                "Спросите, как идут работы по заявке.".into(),
                "Отметьте ответ: выполнено, ведутся или выполнить невозможно.".into(),
            ];
        }
        DialKind::Survey => {
            briefing.party = "житель".into();
            briefing.why = "Оценка выполненной заявки".into();
        }
        DialKind::SupplierHandoff | DialKind::SupplierQuery => {
            let rows = match job.ticket_id {
                Some(t) => store.supplier_follow_ups(Some(&[t]), 50).await?,
                None => Vec::new(),
            };
            let Some(row) = rows
                .into_iter()
                .find(|r| Some(r.supplier_ticket) == job.supplier_ticket_id)
            else {
                return Ok(Claimed::Void(
                    Box::new(job),
                    "the supplier hand-over is no longer open".into(),
                ));
            };
            let reference = match job.supplier_ticket_id {
                Some(id) => store
                    .supplier_ticket(id)
                    .await?
                    .and_then(|s| s.supplier_number),
                None => None,
            };
            briefing.party = format!("диспетчер РСО «{}»", row.supplier_name);
            if job.kind == DialKind::SupplierHandoff {
                briefing.why = format!("Передача заявки в РСО «{}»", row.supplier_name);
                briefing.ask = vec![
                    "Прочитайте диспетчеру РСО заявку: адрес, что случилось, срок.".into(),
                    "Запишите номер, который РСО присвоила заявке, и когда перезвонить.".into(),
                ];
            } else {
                briefing.why = format!("Запрос статуса заявки в РСО «{}»", row.supplier_name);
                briefing.ask = vec![
                    "Назовите номер заявки РСО и спросите, как идут работы.".into(),
                    "Отметьте: выполнено, или когда перезвонить.".into(),
                ];
            }
            briefing.supplier = Some(SupplierBrief {
                id: row.supplier_ticket,
                name: row.supplier_name,
                status: row.status,
                reference,
                recheck_at: row.recheck_at,
            });
        }
        DialKind::Broadcast => {
            let outage = match job.outage_id {
                Some(id) => store.outage(id).await?,
                None => None,
            };
            let Some(outage) = outage else {
                return Ok(Claimed::Void(
                    Box::new(job),
                    "the outage was withdrawn".into(),
                ));
            };
            briefing.party = "житель".into();
            briefing.why = "Оповещение об отключении".into();
            briefing.outage = Some(OutageBrief {
                id: outage.id,
                kind: outage.kind,
                text: outage.text,
                ends_at: outage.ends_at,
                zone,
            });
        }
        DialKind::Callback | DialKind::StaffCallback => {}
    }
    Ok(Claimed::Call(Box::new(job), Some(Arc::new(briefing))))
}
