//! The follow-up planner: turns what happens to tickets into the dial jobs that
//! follow them up.
//!
//! A `ticket.changed` event (a status change, a supplier hand-over) plans what that
//! ticket needs at once ([`follow_up::plan_ticket`], [`follow_up::plan_supplier`]);
//! every [`RECONCILE`] the planner also looks over the tickets that moved in the
//! last [`LOOKBACK`] and every open supplier hand-over, so an event lost in a crash
//! or a lagging bus costs at most that long. Jobs no longer needed (the ticket was
//! done or closed, the hand-over answered) are cancelled in the store, and the call
//! core is told to drop those it holds. Planning twice is harmless: the store keeps
//! one open status check per ticket, one survey per ticket and one open call per
//! hand-over whoever plans them.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::follow_up;
use crate::config::FollowUpSettings;
use crate::events::EventBus;
use crate::store::{DialJob, DialJobId, Store, StoreError, TicketId};

/// How often the store is looked over for what events may have missed.
pub const RECONCILE: Duration = Duration::from_secs(30);

/// How far back a reconcile looks for tickets that moved.
pub const LOOKBACK: chrono::Duration = chrono::Duration::days(2);

/// How long ticket events are gathered before they are planned together.
pub const GATHER: Duration = Duration::from_millis(200);

/// Plans follow-up jobs (see the module doc).
#[derive(Debug, Clone)]
pub struct Planner {
    store: Store,
    bus: EventBus,
    settings: FollowUpSettings,
    attempts: u32,
}

/// What one planning pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Planned {
    /// Jobs made.
    pub made: Vec<DialJobId>,
    /// Jobs cancelled as no longer needed.
    pub cancelled: Vec<DialJobId>,
}

impl Planner {
    /// A planner over `store`; `attempts` is `[dialer] attempts`.
    pub fn new(store: Store, bus: EventBus, settings: FollowUpSettings, attempts: u32) -> Self {
        Self {
            store,
            bus,
            settings,
            attempts,
        }
    }

    /// Plans what `tickets` need (every ticket that moved lately when `None`) and
    /// cancels what is no longer needed, as of `now`.
    pub async fn plan(
        &self,
        tickets: Option<&[TicketId]>,
        now: DateTime<Utc>,
    ) -> Result<Planned, StoreError> {
        let rows = self
            .store
            .ticket_follow_ups(now - LOOKBACK, tickets, 1000)
            .await?;
        let mut jobs = Vec::new();
        for row in &rows {
            jobs.extend(follow_up::plan_ticket(
                row,
                &self.settings,
                self.attempts,
                now,
            ));
        }
        let cancelled = self.store.cancel_stale_follow_ups(now).await?;
        for supplier in self.store.supplier_follow_ups(tickets, 1000).await? {
            jobs.extend(follow_up::plan_supplier(
                &supplier,
                &self.settings,
                self.attempts,
                now,
            ));
        }
        let made = self.store.plan_dial_jobs(&jobs, now).await?;
        for job in &made {
            self.announce(job);
        }
        Ok(Planned {
            made: made.iter().map(|j| j.id).collect(),
            cancelled,
        })
    }

    /// `dial.planned`: the board shows what the engine will call about, and when.
    fn announce(&self, job: &DialJob) {
        tracing::info!(job = %job.id, kind = %job.kind, ticket = ?job.ticket_id, due = %job.due_at, "follow-up call planned");
        self.bus.publish(
            "dial.planned",
            job.tenant.as_deref(),
            json!({
                "job": job.id,
                "kind": job.kind,
                "ticket": job.ticket_id,
                "supplier_ticket": job.supplier_ticket_id,
                "due": job.due_at,
                "reach": job.reach.map(|r| r.as_str()),
            }),
        );
    }
}

/// Runs the planner until the engine stops: events as they come, a reconcile
/// every [`RECONCILE`]. Cancelled jobs are sent to `dropped` for the call core.
pub async fn run(
    planner: Planner,
    dropped: mpsc::UnboundedSender<Vec<DialJobId>>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut events = planner.bus.subscribe(None).ok().map(|s| s.live);
    let mut reconcile = tokio::time::interval(RECONCILE);
    reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut waiting: BTreeSet<TicketId> = BTreeSet::new();
    let mut gather: Option<tokio::time::Instant> = None;
    let finish = |planned: Result<Planned, StoreError>| match planned {
        Ok(p) => {
            if !p.cancelled.is_empty() {
                tracing::info!(jobs = ?p.cancelled, "follow-up calls no longer needed: cancelled");
                let _ = dropped.send(p.cancelled);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot plan follow-up calls; the next pass tries again")
        }
    };
    loop {
        if *stopping.borrow() {
            return;
        }
        tokio::select! {
            _ = reconcile.tick() => finish(planner.plan(None, Utc::now()).await),
            event = recv(&mut events) => match event {
                // Each node plans for the changes made through it (the
                // reconcile looks over everything).
                Ok(e) if e.kind == "ticket.changed" && e.local => {
                    let change = e.payload.get("change").and_then(|c| c.as_str());
                    if matches!(change, Some("status" | "supplier")) {
                        if let Some(id) = e.payload.get("ticket").and_then(|t| t.as_i64()) {
                            waiting.insert(TicketId(id));
                            gather.get_or_insert_with(|| tokio::time::Instant::now() + GATHER);
                        }
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "the follow-up planner missed bus events; looking over the store");
                    finish(planner.plan(None, Utc::now()).await);
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => events = None,
            },
            _ = until(gather) => {
                gather = None;
                let ids: Vec<TicketId> = std::mem::take(&mut waiting).into_iter().collect();
                finish(planner.plan(Some(&ids), Utc::now()).await);
            }
            changed = stopping.changed() => if changed.is_err() {
                return;
            },
        }
    }
}

async fn recv(
    events: &mut Option<tokio::sync::broadcast::Receiver<std::sync::Arc<crate::events::Event>>>,
) -> Result<std::sync::Arc<crate::events::Event>, tokio::sync::broadcast::error::RecvError> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
