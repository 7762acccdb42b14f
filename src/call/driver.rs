//! The tokio task that runs [`CallControl`]: it feeds arrivals, media events,
//! store answers, claimed dial jobs, queries and deadlines in, sends what comes out,
//! publishes events on the bus and hands store work to helpers so the call path
//! never waits on the database.
//!
//! Caller lookups run concurrently (each answers its own call, within the
//! lookup timeout). The leases of the dial jobs the core holds are renewed every
//! [`crate::dialer::RENEW`]. Journal rows,
//! recordings and dial-job updates go through one writer task in the order the
//! core produced them, so a call's row is never overwritten by an older version of
//! itself. Time comes from tokio's clock, so tests can pause it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::control::{Action, CallControl, CallEvent, CallerContext};
use super::handle::Envelope;
use crate::events::EventBus;
use crate::media::MediaEvent;
use crate::sip::transport::driver::{CoreLoad, Inbound, Transports};
use crate::store::Store;

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
    /// Calls waiting for an operator now.
    pub waiting: AtomicU64,
    /// INVITEs refused with 403 since start: neither a trunk nor an operator.
    pub refused_source: AtomicU64,
    /// Refused INVITEs beyond the journal's per-second budget (counted only).
    pub rejected_unjournaled: AtomicU64,
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
    /// What the media engine reports.
    pub media: mpsc::UnboundedReceiver<MediaEvent>,
    /// Queries from the console and API.
    pub queries: mpsc::Receiver<Envelope>,
    /// The ticket store.
    pub store: Store,
    /// This node's name, for dial-job claims.
    pub node: String,
    /// Where events are published.
    pub events: EventBus,
    /// Counters for /metrics.
    pub stats: Arc<CallStats>,
    /// Where the engine is in its life.
    pub shutdown: watch::Receiver<Shutdown>,
}

/// The engine's phases of shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Taking calls.
    Running,
    /// SIGTERM: no new calls; calls in progress go on.
    Draining,
    /// The drain ran out of time: end every call cleanly now.
    HangUp,
}

/// Runs the call core until `shutdown` turns true and every call has ended.
pub async fn run(core: Core) {
    let Core {
        mut control,
        transports,
        load,
        mut inbound,
        mut media,
        mut queries,
        store,
        node,
        events,
        stats,
        mut shutdown,
    } = core;
    let (lookup_tx, mut lookups) = mpsc::unbounded_channel::<(u64, Option<CallerContext>)>();
    let (jobs_tx, mut jobs) = mpsc::unbounded_channel();
    let (writer, writer_task) = spawn_writer(store.clone(), events.clone(), node.clone());
    let mut job_poll = tokio::time::interval(crate::dialer::POLL);
    job_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lease_renewal = tokio::time::interval(crate::dialer::RENEW);
    lease_renewal.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut draining = false;
    loop {
        flush(
            &mut control,
            &transports,
            &events,
            &stats,
            &store,
            &lookup_tx,
            &writer,
        );
        if draining && control.active_calls() == 0 && control.pending_recordings() == 0 {
            tracing::info!("all calls ended and recordings closed; call core stopping");
            drop(writer);
            // Every journal row and recording reaches the store before we go.
            let _ = writer_task.await;
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
            Some(event) = media.recv() => control.handle_media(now(), event),
            Some((call, context)) = lookups.recv() => control.handle_lookup(now(), call, context),
            Some(job) = jobs.recv() => control.handle_dial_job(now(), job),
            _ = sleep_until(deadline) => control.handle_timeout(now()),
            query = queries.recv() => {
                if let Some((query, reply)) = query {
                    let answer = control.handle_query(now(), query);
                    let _ = reply.send(answer);
                }
            }
            _ = job_poll.tick(), if !draining => claim_jobs(&store, &node, &jobs_tx),
            _ = lease_renewal.tick() => renew_leases(&store, &node, control.held_jobs()),
                        changed = shutdown.changed() => {
                let phase = if changed.is_err() { Shutdown::HangUp } else { *shutdown.borrow() };
                if phase != Shutdown::Running && !draining {
                    draining = true;
                    control.set_draining(true);
                    tracing::info!(calls = control.active_calls(), "draining: refusing new calls");
                }
                if phase == Shutdown::HangUp {
                    tracing::warn!(calls = control.active_calls(), "drain time is up: ending the remaining calls");
                    control.hang_up_all(now());
                }
                if changed.is_err() {
                    // The engine handle is gone; nobody will ask again.
                    shutdown = watch::channel(Shutdown::HangUp).1;
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

/// Renews the leases of the jobs the core holds, in the background.
fn renew_leases(store: &Store, node: &str, held: Vec<crate::store::DialJobId>) {
    if held.is_empty() {
        return;
    }
    let (store, node) = (store.clone(), node.to_owned());
    tokio::spawn(async move {
        if let Err(e) = crate::dialer::renew(&store, &node, &held, Utc::now()).await {
            tracing::warn!(error = %e, jobs = held.len(), "cannot renew dial-job leases");
        }
    });
}

/// Claims due callback jobs in the background; they arrive on `jobs`.
fn claim_jobs(store: &Store, node: &str, jobs: &mpsc::UnboundedSender<crate::store::DialJob>) {
    let (store, node, jobs) = (store.clone(), node.to_owned(), jobs.clone());
    tokio::spawn(async move {
        match crate::dialer::claim(&store, &node, Utc::now(), 16).await {
            Ok(claimed) => {
                for job in claimed {
                    let _ = jobs.send(job);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot claim dial jobs"),
        }
    });
}

fn flush(
    control: &mut CallControl,
    transports: &Transports,
    bus: &EventBus,
    stats: &CallStats,
    store: &Store,
    lookups: &mpsc::UnboundedSender<(u64, Option<CallerContext>)>,
    writer: &mpsc::UnboundedSender<Action>,
) {
    while let Some(t) = control.poll_transmit() {
        transports.send(t);
    }
    while let Some(event) = control.poll_event() {
        publish(bus, stats, event);
    }
    while let Some(action) = control.poll_action() {
        match action {
            Action::Lookup {
                call,
                phone,
                tenant,
                city,
            } => {
                let (store, lookups) = (store.clone(), lookups.clone());
                tokio::spawn(async move {
                    // Bounded: a slow store never keeps a caller waiting (the core
                    // goes on without the lookup after the same time).
                    let context = tokio::time::timeout(
                        super::inbound::LOOKUP_TIMEOUT,
                        lookup(&store, &phone, tenant.as_deref(), city.as_deref()),
                    )
                    .await
                    .unwrap_or_else(|_| {
                        tracing::warn!(%phone, "caller lookup timed out");
                        None
                    });
                    let _ = lookups.send((call, context));
                });
            }
            other => {
                let _ = writer.send(other);
            }
        }
    }
    stats
        .active
        .store(control.active_calls() as u64, Ordering::Relaxed);
    stats
        .refused_overload
        .store(control.refused_overload(), Ordering::Relaxed);
    stats
        .waiting
        .store(control.waiting_calls() as u64, Ordering::Relaxed);
    stats
        .refused_source
        .store(control.refused_source(), Ordering::Relaxed);
    stats
        .rejected_unjournaled
        .store(control.rejected_unjournaled(), Ordering::Relaxed);
}

async fn lookup(
    store: &Store,
    phone: &crate::phone::PhoneNumber,
    tenant: Option<&str>,
    city: Option<&str>,
) -> Option<CallerContext> {
    let info = match store.caller_lookup(phone, tenant, city).await {
        Ok(info) => info,
        Err(e) => {
            tracing::warn!(%phone, error = %e, "caller lookup failed; the call goes on without it");
            return None;
        }
    };
    let code = info
        .tenant
        .as_ref()
        .map(|t| t.code.clone())
        .or(tenant.map(str::to_owned));
    let zone = match code {
        Some(code) => store
            .tenant(&code)
            .await
            .ok()
            .flatten()
            .map(|t| t.city.time_zone),
        None => None,
    };
    Some(CallerContext { info, zone })
}

fn publish(bus: &EventBus, stats: &CallStats, event: CallEvent) {
    match event.kind {
        "call.offered" => stats.offered.fetch_add(1, Ordering::Relaxed),
        "call.answered" => stats.answered.fetch_add(1, Ordering::Relaxed),
        "call.ended" => stats.ended.fetch_add(1, Ordering::Relaxed),
        _ => 0,
    };
    bus.publish(event.kind, event.tenant.as_deref(), event.payload);
}

/// The store writer: performs journal, recording and dial-job work in order.
fn spawn_writer(
    store: Store,
    bus: EventBus,
    node: String,
) -> (mpsc::UnboundedSender<Action>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Action>();
    let task = tokio::spawn(async move {
        let mut batch = Vec::new();
        while let Some(first) = rx.recv().await {
            // Take what queued up while the last batch was written: at thousands
            // of calls a second, one transaction per row would never catch up.
            batch.push(first);
            while batch.len() < WRITE_BATCH {
                match rx.try_recv() {
                    Ok(a) => batch.push(a),
                    Err(_) => break,
                }
            }
            write_batch(&store, &bus, &node, std::mem::take(&mut batch)).await;
        }
    });
    (tx, task)
}

/// The most actions one store transaction takes.
const WRITE_BATCH: usize = 512;

/// Writes a batch: the journal rows first (each call once, in its latest state:
/// every row is the call's whole state so far), in one transaction, then the
/// other actions in order (they may refer to those rows).
async fn write_batch(store: &Store, bus: &EventBus, node: &str, batch: Vec<Action>) {
    let mut rows: Vec<crate::store::CallRecord> = Vec::new();
    let mut rest = Vec::new();
    for action in batch {
        match action {
            Action::Journal(record) => match rows.iter_mut().find(|r| r.id == record.id) {
                Some(row) => *row = *record,
                None => rows.push(*record),
            },
            other => rest.push(other),
        }
    }
    if let Err(e) = store.upsert_calls(&rows).await {
        tracing::error!(error = %e, rows = rows.len(), "journal write failed; writing row by row");
        for row in &rows {
            if let Err(e) = store.upsert_call(row).await {
                tracing::error!(error = %e, call = %row.id, "journal row not written");
            }
        }
    }
    for action in rest {
        if let Err(e) = write(store, bus, node, action).await {
            tracing::error!(error = %e, "store write failed");
        }
    }
}

async fn write(
    store: &Store,
    bus: &EventBus,
    node: &str,
    action: Action,
) -> Result<(), crate::store::StoreError> {
    match action {
        Action::Journal(record) => store.upsert_call(&record).await,
        Action::Recording {
            call,
            tenant,
            path,
            duration,
            bytes,
        } => {
            let path_text = path.to_string_lossy().into_owned();
            let id = store
                .insert_recording(
                    &call.0,
                    &path_text,
                    duration.as_millis() as i64,
                    bytes as i64,
                )
                .await?;
            bus.publish(
                "recording.ready",
                tenant.as_deref(),
                json!({ "call": call, "recording": id, "duration_ms": duration.as_millis() as u64, "bytes": bytes }),
            );
            Ok(())
        }
        Action::ScheduleJob { job, origin } => store
            .create_dial_job_from(&job, origin.as_ref(), Utc::now())
            .await
            .map(|_| ()),
        Action::ReleaseJobs(jobs) => crate::dialer::release(store, node, &jobs, Utc::now()).await,
        Action::JobAttempt {
            job,
            outcome,
            call,
            retry_in,
        } => {
            let call = call.as_ref().map(|c| c.0.as_str());
            crate::dialer::record(store, node, job, outcome, call, retry_in, Utc::now()).await
        }
        Action::CancelJobs { call } => {
            crate::dialer::cancel_callbacks_of(store, &call.0, Utc::now()).await
        }
        Action::Lookup { .. } => Ok(()),
    }
}
