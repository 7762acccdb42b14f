//! The tokio task that runs [`CallControl`]: it feeds arrivals and deadlines in,
//! sends what comes out, and publishes call events on the bus.
//!
//! Time comes from tokio's clock (`tokio::time::Instant`), so tests can run the
//! whole engine on a paused clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::control::{CallControl, CallEvent};
use super::handle::Envelope;
use crate::events::EventBus;
use crate::sip::transport::driver::{CoreLoad, Inbound, Transports};

/// Live figures for /metrics.
#[derive(Debug, Default)]
pub struct CallStats {
    /// Calls in progress.
    pub active: AtomicU64,
    /// Calls offered since start.
    pub offered: AtomicU64,
    /// Calls answered since start.
    pub answered: AtomicU64,
    /// Calls ended since start.
    pub ended: AtomicU64,
    /// New calls refused with 503 by admission control (limits or draining).
    pub refused_overload: AtomicU64,
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Everything the call core's task owns.
pub struct Core {
    /// The sans-IO core.
    pub control: CallControl,
    /// Where its messages go.
    pub transports: Transports,
    /// The lag gauge the receive tasks shed by.
    pub load: Arc<CoreLoad>,
    /// What the transports deliver.
    pub inbound: mpsc::Receiver<Inbound>,
    /// Queries from the console and API.
    pub queries: mpsc::Receiver<Envelope>,
    /// Where events are published.
    pub events: EventBus,
    /// Counters for /metrics.
    pub stats: Arc<CallStats>,
    /// Turns true on SIGTERM.
    pub shutdown: watch::Receiver<bool>,
}

/// Runs the call core until `shutdown` turns true and every call has ended.
pub async fn run(core: Core) {
    let Core {
        mut control,
        transports,
        load,
        mut inbound,
        mut queries,
        events,
        stats,
        mut shutdown,
    } = core;
    let mut draining = false;
    loop {
        flush(&mut control, &transports, &events, &stats);
        if draining && control.active_calls() == 0 {
            tracing::info!("all calls ended; call core stopping");
            return;
        }
        let deadline = control.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            biased;
            message = inbound.recv() => {
                let Some(message) = message else { return };
                handle(&mut control, &load, message);
                // Take what else is already queued before sending, in one batch.
                for _ in 0..256 {
                    match inbound.try_recv() {
                        Ok(m) => handle(&mut control, &load, m),
                        Err(_) => break,
                    }
                }
            }
                        _ = sleep_until(deadline) => control.handle_timeout(now()),
            query = queries.recv() => {
                if let Some((query, reply)) = query {
                    let answer = control.handle_query(now(), query);
                    let _ = reply.send(answer);
                }
            }
            changed = shutdown.changed(), if !draining => {
                if changed.is_err() || *shutdown.borrow() {
                    draining = true;
                    control.set_draining(true);
                    tracing::info!(calls = control.active_calls(), "draining: refusing new calls");
                }
            }
        }
    }
}

fn handle(control: &mut CallControl, load: &CoreLoad, message: Inbound) {
    let now = now();
    if let Inbound::Message { received, .. } = &message {
        load.record(now.saturating_duration_since(*received));
    }
    control.handle_inbound(now, message);
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => tokio::time::sleep(Duration::from_secs(3600)).await,
    }
}

fn flush(control: &mut CallControl, transports: &Transports, events: &EventBus, stats: &CallStats) {
    while let Some(t) = control.poll_transmit() {
        transports.send(t);
    }
    while let Some(event) = control.poll_event() {
        publish(events, stats, event);
    }
    stats
        .active
        .store(control.active_calls() as u64, Ordering::Relaxed);
}

fn publish(bus: &EventBus, stats: &CallStats, event: CallEvent) {
    match event {
        CallEvent::Offered {
            call,
            from,
            to,
            kind,
            tenant,
        } => {
            stats.offered.fetch_add(1, Ordering::Relaxed);
            bus.publish(
                "call.offered",
                tenant.as_deref(),
                json!({ "call": call, "from": from, "to": to, "number_kind": kind.as_str() }),
            );
        }
        CallEvent::Answered { call, wait } => {
            stats.answered.fetch_add(1, Ordering::Relaxed);
            bus.publish(
                "call.answered",
                None,
                json!({ "call": call, "wait_ms": wait.as_millis() as u64 }),
            );
        }
        CallEvent::OperatorState(view) => {
            let payload = serde_json::to_value(&view).unwrap_or_default();
            bus.publish("operator.state", None, payload);
        }
        CallEvent::TrunkHealth {
            trunk,
            health,
            reason,
        } => {
            bus.publish(
                "trunk.health",
                None,
                json!({ "trunk": trunk, "health": health, "reason": reason }),
            );
        }
        CallEvent::Registration { extension, online } => {
            bus.publish(
                "operator.registration",
                None,
                json!({ "extension": extension, "online": online }),
            );
        }
        CallEvent::Ended {
            call,
            disposition,
            status,
            wait,
            talk,
            tenant,
        } => {
            stats.ended.fetch_add(1, Ordering::Relaxed);
            bus.publish(
                "call.ended",
                tenant.as_deref(),
                json!({
                    "call": call,
                    "disposition": disposition,
                    "sip_status": status,
                    "wait_ms": wait.as_millis() as u64,
                    "talk_ms": talk.as_millis() as u64,
                }),
            );
        }
    }
}
