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

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::claimer::{Claimer, MAX_HELD_JOBS};
use super::control::{Action, CallControl, CallEvent, CallerContext};
use super::floor_sync::FromFloor;
use super::handle::Envelope;
use super::spooled::WriterSpool;
use crate::dialer::order::{ChainReport, ToCalls};
use crate::events::EventBus;
use crate::media::MediaEvent;
use crate::sip::transport::driver::{CoreLoad, Inbound, Transports};
use crate::store::{CallRecord, Store, StoreError};

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
    /// The SIP guard's figures ([`super::screening`]).
    pub screening: std::sync::Mutex<super::screening::ScreeningStats>,
    /// Bytes in the write-ahead spool now ([`super::spooled`]).
    pub spool_bytes: AtomicU64,
    /// Store work the full spool could not take (kept in memory only).
    pub spool_full: AtomicU64,
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
    /// The dialer's orders for the calls of hand-off chains.
    pub chain_orders: mpsc::UnboundedReceiver<ToCalls>,
    /// Where what happens to those calls is reported.
    pub chain_reports: mpsc::UnboundedSender<ChainReport>,
    /// Jobs the follow-up planner cancelled: dropped if held.
    pub dropped_jobs: mpsc::UnboundedReceiver<Vec<crate::store::DialJobId>>,
    /// Whether a prompt exists (the robot's and the cards' messages leave out what
    /// has none).
    pub prompts: crate::dialer::runner::PromptCheck,
    /// The write-ahead spool and the work replayed from it at start that the
    /// database did not take yet ([`replay_spool`]).
    pub spool: Replayed,
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
        mut chain_orders,
        chain_reports,
        mut dropped_jobs,
        prompts,
        spool,
    } = core;
    let config = control.config.clone();
    let (lookup_tx, mut lookups) = mpsc::unbounded_channel::<(u64, Option<CallerContext>)>();
    let (jobs_tx, mut jobs) = mpsc::unbounded_channel();
    let (writer, writer_task) = spawn_writer(
        store.clone(),
        events.clone(),
        node.clone(),
        config.clone(),
        spool,
    );
    let claimer = Claimer::new(
        store.clone(),
        node.clone(),
        config.clone(),
        prompts,
        jobs_tx.clone(),
    );
    let claim_more = claimer.more();
    let mut job_poll = tokio::time::interval(crate::dialer::POLL);
    job_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lease_renewal = tokio::time::interval(crate::dialer::RENEW);
    lease_renewal.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (floor_writes, mut from_floor) = if control.floor_shared() {
        let (writes, inputs) = super::floor_sync::spawn(store.clone(), node.clone());
        (Some(writes), Some(inputs))
    } else {
        (None, None)
    };
    let mut draining = false;
    let disk = watch_disk(&config);
    loop {
        let (low, free) = (
            disk.0.load(Ordering::Relaxed),
            disk.1.load(Ordering::Relaxed),
        );
        if low != control.recordings_paused() {
            control.set_recordings_paused(now(), low, free);
        }
        flush(
            &mut control,
            &transports,
            &events,
            &stats,
            &Outlets {
                store: &store,
                lookups: &lookup_tx,
                writer: &writer,
                chain_reports: &chain_reports,
                floor: floor_writes.as_ref(),
            },
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
            Some((job, briefing)) = jobs.recv() => control.handle_claimed_job(now(), job, briefing),
            Some(ids) = dropped_jobs.recv() => control.drop_jobs(now(), &ids),
            Some(order) = chain_orders.recv() => control.handle_chain(now(), order),
            Some(input) = from_floor_next(&mut from_floor) => match input {
                FromFloor::Snapshot(rows, first) => control.apply_floor(now(), &rows, &node, first),
                FromFloor::Granted(operators) => control.floor_granted(now(), &operators),
            },
            _ = sleep_until(deadline) => control.handle_timeout(now()),
            query = queries.recv() => {
                if let Some((query, reply)) = query {
                    let answer = control.handle_query(now(), query);
                    let _ = reply.send(answer);
                }
            }
            // Only what this node can serve: operators' jobs up to its free
            // operators, robot calls up to its free channels (`call::room`).
            _ = job_poll.tick(), if !draining => {
                claimer.claim(control.claim_room(MAX_HELD_JOBS));
                sweep_unclaimed_deadlines(&store, &events, &config, control.operators.any_ready(None, None));
            }
            // A full batch came back: more are due now (a broadcast faster than a
            // batch a poll), so claim again without waiting for the poll.
            _ = claim_more.notified(), if !draining => claimer.claim(control.claim_room(MAX_HELD_JOBS)),
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

/// The shared floor's next input (never, without a shared floor).
async fn from_floor_next(
    inputs: &mut Option<mpsc::UnboundedReceiver<FromFloor>>,
) -> Option<FromFloor> {
    match inputs {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => tokio::time::sleep(Duration::from_secs(3600)).await,
    }
}

/// Tells supervisors, once across the nodes, about jobs whose deadline is at risk
/// while they wait unclaimed in the store (a node claims only what it has someone
/// free for, so these are the ones nobody could take): the same
/// `dial.deadline-at-risk` the core raises for the jobs it holds.
fn sweep_unclaimed_deadlines(
    store: &Store,
    bus: &EventBus,
    config: &crate::config::Config,
    operator_ready: bool,
) {
    let (store, bus, share) = (store.clone(), bus.clone(), config.follow_ups.at_risk_share);
    tokio::spawn(async move {
        let flagged = match store.mark_unclaimed_at_risk(share, Utc::now()).await {
            Ok(flagged) => flagged,
            Err(e) => {
                tracing::warn!(error = %e, "cannot sweep unclaimed dial jobs' deadlines");
                return;
            }
        };
        for job in flagged {
            tracing::warn!(job = %job.job, kind = %job.kind, target = %job.target, deadline = %job.deadline, "a dial job's deadline is at risk: no node has anyone free to make it");
            bus.publish(
                "dial.deadline-at-risk",
                job.tenant.as_deref(),
                json!({
                    "job": job.job,
                    "purpose": job.kind,
                    "target": job.target,
                    "deadline": job.deadline,
                    "call": job.call_id,
                    "operator_ready": operator_ready,
                    "unclaimed": true,
                }),
            );
        }
    });
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

/// Measures the recordings' free space every two seconds: (below the watermark,
/// free MiB). The task ends with the process.
fn watch_disk(config: &crate::config::Config) -> Arc<(AtomicBool, AtomicU64)> {
    let state = Arc::new((AtomicBool::new(false), AtomicU64::new(u64::MAX)));
    let min = config.media.recordings_min_free_mb;
    if !config.media.record_calls || min == 0 {
        return state;
    }
    let dir = config.recordings_dir();
    let shared = state.clone();
    tokio::spawn(async move {
        loop {
            let probe = dir.clone();
            let free = tokio::task::spawn_blocking(move || super::disk::free_mb(&probe))
                .await
                .ok()
                .flatten();
            if let Some(free) = free {
                shared.1.store(free, Ordering::Relaxed);
                shared.0.store(free < min, Ordering::Relaxed);
            }
            tokio::time::sleep(DISK_CHECK).await;
        }
    });
    state
}

/// How often the recordings' free space is measured.
const DISK_CHECK: Duration = Duration::from_secs(2);

/// Where the core's output goes besides the sockets and the bus.
struct Outlets<'a> {
    store: &'a Store,
    lookups: &'a mpsc::UnboundedSender<(u64, Option<CallerContext>)>,
    writer: &'a mpsc::UnboundedSender<Action>,
    chain_reports: &'a mpsc::UnboundedSender<ChainReport>,
    floor: Option<&'a mpsc::UnboundedSender<super::floor::FloorWrite>>,
}

fn flush(
    control: &mut CallControl,
    transports: &Transports,
    bus: &EventBus,
    stats: &CallStats,
    out: &Outlets<'_>,
) {
    let Outlets {
        store,
        lookups,
        writer,
        chain_reports,
        floor,
    } = *out;
    while let Some(t) = control.poll_transmit() {
        transports.send(t);
    }
    if let Some(flows) = control.take_trusted_flows(now()) {
        transports.set_trusted_flows(flows);
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
            Action::Floor(write) => {
                if let Some(floor) = floor {
                    let _ = floor.send(write);
                }
            }
            Action::Chain(report) => {
                // The dialer writes it; nothing is lost if it has stopped (the
                // attempt then counts as made, outcome unknown, on restart).
                let _ = chain_reports.send(report);
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
    let screening = control.screening_stats(now());
    if let Ok(mut s) = stats.screening.lock() {
        *s = screening;
    }
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

/// The write-ahead spool as [`replay_spool`] leaves it for the store writer.
#[derive(Debug)]
pub struct Replayed {
    spool: WriterSpool,
    unwritten: Vec<Action>,
}

/// Opens the write-ahead spool ([`super::spooled`]) under the data directory and
/// writes the store work a crash left in it, in order, before the node's
/// recovery closes its unfinished calls (the rows must be there to be closed). A
/// callback whose call already has one is not created again. What the database
/// does not take now is handed to the store writer with the spool.
pub async fn replay_spool(
    store: &Store,
    bus: &EventBus,
    node: &str,
    config: &crate::config::Config,
    stats: Arc<CallStats>,
) -> Replayed {
    let (mut spool, actions) = WriterSpool::open(
        &config.database.data_dir,
        crate::store::spool::DEFAULT_CAP,
        stats,
    );
    let mut pending = Pending::default();
    for action in actions {
        if let Action::ScheduleJob { job, .. } = &action
            && let Some(call) = &job.call_id
        {
            match store.dial_jobs_of_call(call, job.kind).await {
                Ok(0) => {}
                Ok(_) => {
                    tracing::info!(%call, kind = %job.kind, "a spooled job already in the store is not created again");
                    continue;
                }
                Err(e) => tracing::warn!(error = %e, %call, "cannot check a spooled job"),
            }
        }
        pending.push(action);
    }
    let sink = StoreSink {
        store,
        bus,
        node,
        config,
    };
    if pending.len() == 0 || write_round(&sink, &mut pending).await {
        spool.clear();
    }
    Replayed {
        spool,
        unwritten: pending.into_actions(),
    }
}

/// The store writer: performs journal, recording and dial-job work in order.
///
/// When the database is busy (SQLite's write lock held past its busy timeout by a
/// big import, say) or down (PostgreSQL restarting) nothing is dropped: each write
/// is tried again after pauses growing from [`BUSY_RETRY_FIRST`] for
/// [`BUSY_RETRY_BUDGET`] in all; work the database still refuses is kept, in
/// order, and tried again with the next round.
///
/// Everything the writer takes in goes to the write-ahead spool first (appended;
/// emptied again when a round leaves nothing behind), so a SIGKILL loses none of
/// it; once a round has taken [`SPOOL_SYNC_AFTER`] (the database is slow or
/// gone) the spool is `fsync`ed, and so is whatever comes in until the database
/// has taken it all, so not even a power cut loses it. The next start replays it
/// ([`replay_spool`]).
fn spawn_writer(
    store: Store,
    bus: EventBus,
    node: String,
    config: Arc<crate::config::Config>,
    replayed: Replayed,
) -> (mpsc::UnboundedSender<Action>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Action>();
    let task = tokio::spawn(async move {
        let sink = StoreSink {
            store: &store,
            bus: &bus,
            node: &node,
            config: &config,
        };
        let Replayed {
            mut spool,
            unwritten,
        } = replayed;
        let mut pending = Pending::default();
        // Taken in (and spooled) but not yet in a round.
        let mut queue: VecDeque<Action> = unwritten.into();
        // The last round kept work because the database was busy.
        let mut held = !queue.is_empty();
        let mut final_rounds = 0;
        let mut closed = false;
        loop {
            if held {
                if closed || rx.is_closed() {
                    // The core has stopped: nothing more comes, and the engine waits
                    // for us.
                    final_rounds += 1;
                    if final_rounds > FINAL_ROUNDS {
                        tracing::error!(
                            rows = pending.rows.len(),
                            actions = pending.rest.len() + queue.len(),
                            spooled = spool.active(),
                            "the database stayed down while the engine stopped: the store work waits in the spool for the next start"
                        );
                        return;
                    }
                }
                tokio::time::sleep(BUSY_HOLD_PAUSE).await;
            } else if queue.is_empty() && pending.len() == 0 {
                // Nothing is held, so nothing is pending: wait for work.
                match rx.recv().await {
                    Some(first) => {
                        spool.append(&first);
                        queue.push_back(first);
                    }
                    None => return,
                }
            }
            // Take in what queued up while the last batch was written: at
            // thousands of calls a second, one transaction per row would never
            // catch up.
            while let Ok(a) = rx.try_recv() {
                spool.append(&a);
                queue.push_back(a);
            }
            if held {
                spool.sync();
            }
            while held || pending.len() < WRITE_BATCH {
                let Some(a) = queue.pop_front() else { break };
                pending.push(a);
            }
            let ok = {
                let round = write_round(&sink, &mut pending);
                tokio::pin!(round);
                let slow = tokio::time::sleep(SPOOL_SYNC_AFTER);
                tokio::pin!(slow);
                let mut synced = false;
                loop {
                    tokio::select! {
                        ok = &mut round => break ok,
                        () = &mut slow, if !synced => {
                            synced = true;
                            spool.sync();
                        }
                        a = rx.recv(), if !closed => match a {
                            Some(a) => {
                                spool.append(&a);
                                queue.push_back(a);
                                while let Ok(a) = rx.try_recv() {
                                    spool.append(&a);
                                    queue.push_back(a);
                                }
                                if synced {
                                    spool.sync();
                                }
                            }
                            None => closed = true,
                        },
                    }
                }
            };
            held = !ok;
            if ok && queue.is_empty() {
                // The database has taken everything the spool holds.
                spool.clear();
            }
            if held {
                spool.sync();
                tracing::warn!(
                    rows = pending.rows.len(),
                    actions = pending.rest.len(),
                    queued = queue.len() + rx.len(),
                    "database busy or down: journal rows and store work wait (spooled) for the next round"
                );
            }
        }
    });
    (tx, task)
}

/// How long a round of the store writer may take before the spool is `fsync`ed
/// (the database is slow or gone).
pub const SPOOL_SYNC_AFTER: Duration = Duration::from_millis(200);

/// The most actions one store transaction takes.
const WRITE_BATCH: usize = 512;

/// The first pause before a write the database was too busy for is tried again;
/// each further pause doubles.
pub const BUSY_RETRY_FIRST: Duration = Duration::from_millis(10);

/// How long one write keeps being tried, in pauses, while the database is busy,
/// before the writer falls back (the journal row by row, then keeping what is
/// left for the next round). Each try may also wait the database's own busy
/// timeout.
pub const BUSY_RETRY_BUDGET: Duration = Duration::from_secs(2);

/// The pause before work kept because the database was busy is tried again.
pub const BUSY_HOLD_PAUSE: Duration = Duration::from_secs(1);

/// How many more rounds kept work gets once the core has stopped and nothing
/// more will come.
const FINAL_ROUNDS: u32 = 5;

/// The pauses between tries of a busy database: from `first`, doubling, until
/// `budget` is spent (the last pause is cut to fit). Sans-IO: the caller sleeps.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
    left: Duration,
}

impl Backoff {
    /// Pauses from `first`, `budget` in all.
    pub(crate) fn new(first: Duration, budget: Duration) -> Self {
        Self {
            next: first.max(Duration::from_millis(1)),
            left: budget,
        }
    }

    /// The pause before the next try, or `None` once the budget is spent.
    pub(crate) fn next_pause(&mut self) -> Option<Duration> {
        if self.left.is_zero() {
            return None;
        }
        let pause = self.next.min(self.left);
        self.left -= pause;
        self.next = self.next.saturating_mul(2);
        Some(pause)
    }
}

/// Runs `op` until it succeeds, fails for another reason than a busy or
/// unreachable database ([`StoreError::is_transient`]: PostgreSQL restarting, a
/// connection refused or reset, SQLite busy, a full disk), or the [`Backoff`] is
/// spent (the last error is returned); `sink` pauses in
/// between. `rows` is how many journal rows wait on it, for the log.
async fn retry_busy<T, F, Fut>(
    sink: &impl Sink,
    what: &str,
    rows: usize,
    mut op: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut backoff = Backoff::new(BUSY_RETRY_FIRST, BUSY_RETRY_BUDGET);
    let mut tries = 0u32;
    loop {
        match op().await {
            Err(e) if e.is_transient() => {
                let Some(pause) = backoff.next_pause() else {
                    tracing::warn!(error = %e, what, rows, tries, "database still busy; giving up for now");
                    return Err(e);
                };
                tries += 1;
                if tries == 1 {
                    tracing::warn!(error = %e, what, rows, "database busy; trying again");
                }
                sink.pause(pause).await;
            }
            other => return other,
        }
    }
}

/// Store work waiting for the writer: journal rows (each call once, in its latest
/// state: every row is the call's whole state so far), then the other actions in
/// the order the core produced them (they may refer to those rows).
#[derive(Debug, Default)]
struct Pending {
    rows: Vec<CallRecord>,
    /// Where each call's row is in `rows`.
    index: HashMap<String, usize>,
    rest: VecDeque<Action>,
}

impl Pending {
    fn push(&mut self, action: Action) {
        match action {
            Action::Journal(record) => match self.index.get(&record.id) {
                Some(&i) => self.rows[i] = *record,
                None => {
                    self.index.insert(record.id.clone(), self.rows.len());
                    self.rows.push(*record);
                }
            },
            other => self.rest.push_back(other),
        }
    }

    fn len(&self) -> usize {
        self.rows.len() + self.rest.len()
    }

    fn take_rows(&mut self) -> Vec<CallRecord> {
        self.index.clear();
        std::mem::take(&mut self.rows)
    }

    /// Everything pending, rows first, in the order it would be written.
    fn into_actions(self) -> Vec<Action> {
        let mut out: Vec<Action> = self
            .rows
            .into_iter()
            .map(|r| Action::Journal(Box::new(r)))
            .collect();
        out.extend(self.rest);
        out
    }

    /// Puts back rows taken out (none are pending meanwhile).
    fn keep_rows(&mut self, rows: Vec<CallRecord>) {
        debug_assert!(self.rows.is_empty());
        for row in rows {
            self.push(Action::Journal(Box::new(row)));
        }
    }
}

/// Where the writer's work goes: the store (a fake in tests).
trait Sink {
    /// Writes journal rows in one transaction, all or nothing.
    async fn upsert_calls(&self, rows: &[CallRecord]) -> Result<(), StoreError>;
    /// Performs one action other than a journal row.
    async fn apply(&self, action: &Action) -> Result<(), StoreError>;
    /// Waits before the next try.
    async fn pause(&self, pause: Duration);
}

/// A staff callback goes only to a number the store knows as an employee's: any
/// other caller of the dispatch line is called back as a resident (the 5-minute
/// rule's callback, its deadline counted from now).
async fn staff_or_resident(
    store: &Store,
    config: &crate::config::Config,
    job: &crate::store::NewDialJob,
) -> Result<crate::store::NewDialJob, StoreError> {
    let mut job = job.clone();
    if job.kind != crate::store::DialKind::StaffCallback {
        return Ok(job);
    }
    let info = store
        .caller_lookup(&job.target, job.tenant.as_deref(), None)
        .await?;
    if info.staff.is_none() {
        tracing::info!(phone = %job.target, "a caller of the dispatch line who is no employee is called back as a resident");
        job.kind = crate::store::DialKind::Callback;
        job.deadline_at = Some(
            Utc::now()
                + chrono::Duration::from_std(config.queue.callback_deadline).unwrap_or_default(),
        );
    }
    Ok(job)
}

/// The engine's store, with the bus `recording.ready` goes on.
struct StoreSink<'a> {
    store: &'a Store,
    bus: &'a EventBus,
    node: &'a str,
    config: &'a crate::config::Config,
}

impl Sink for StoreSink<'_> {
    async fn upsert_calls(&self, rows: &[CallRecord]) -> Result<(), StoreError> {
        self.store.upsert_calls(rows).await?;
        // The rows are this node's: after a crash it closes the unfinished ones.
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        self.store.own_calls(self.node, &ids).await
    }

    async fn apply(&self, action: &Action) -> Result<(), StoreError> {
        write(self.store, self.bus, self.node, self.config, action).await
    }

    async fn pause(&self, pause: Duration) {
        tokio::time::sleep(pause).await;
    }
}

/// One round of the writer: the journal rows first, in one transaction (row by
/// row should that fail), then the other actions in order. Returns false when the
/// database was still busy or unreachable after [`retry_busy`] (a PostgreSQL
/// restart, a refused connection, a full disk): what was not written stays in
/// `pending`, in order, for the next round. Work the database refuses for any
/// other reason is logged and dropped (trying again would not help).
async fn write_round(sink: &impl Sink, pending: &mut Pending) -> bool {
    if !pending.rows.is_empty() {
        let rows = pending.take_rows();
        match retry_busy(sink, "journal", rows.len(), || sink.upsert_calls(&rows)).await {
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(error = %e, rows = rows.len(), "journal batch not written; writing row by row");
                let mut kept = Vec::new();
                for row in rows {
                    if !kept.is_empty() {
                        // The database is busy: the rest waits with the first one kept.
                        kept.push(row);
                        continue;
                    }
                    let one = std::slice::from_ref(&row);
                    match retry_busy(sink, "journal row", 1, || sink.upsert_calls(one)).await {
                        Ok(()) => {}
                        Err(e) if e.is_transient() => kept.push(row),
                        Err(e) => {
                            tracing::error!(error = %e, call = %row.id, "journal row not written")
                        }
                    }
                }
                if !kept.is_empty() {
                    pending.keep_rows(kept);
                    return false;
                }
            }
        }
    }
    while let Some(action) = pending.rest.pop_front() {
        match retry_busy(sink, "store", 0, || sink.apply(&action)).await {
            Ok(()) => {}
            Err(e) if e.is_transient() => {
                pending.rest.push_front(action);
                return false;
            }
            Err(e) => tracing::error!(error = %e, "store write failed"),
        }
    }
    true
}

async fn write(
    store: &Store,
    bus: &EventBus,
    node: &str,
    config: &crate::config::Config,
    action: &Action,
) -> Result<(), StoreError> {
    match action {
        Action::Journal(record) => {
            store.upsert_call(record).await?;
            store.own_calls(node, &[record.id.as_str()]).await
        }
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
                    *bytes as i64,
                )
                .await?;
            bus.publish(
                "recording.ready",
                tenant.as_deref(),
                json!({ "call": call, "recording": id, "duration_ms": duration.as_millis() as u64, "bytes": bytes }),
            );
            Ok(())
        }
        Action::ScheduleJob { job, origin } => {
            let job = staff_or_resident(store, config, job).await?;
            match store
                .create_dial_job_from(&job, origin.as_ref(), Utc::now())
                .await
            {
                // Already planned (a staff member who called twice is called back
                // once): nothing more to write.
                Err(StoreError::Conflict(why)) => {
                    tracing::info!(kind = %job.kind, "{why}");
                    Ok(())
                }
                other => other.map(|_| ()),
            }
        }
        Action::ReleaseJobs(jobs) => crate::dialer::release(store, node, jobs, Utc::now()).await,
        // The floor driver writes these (flush never hands them to the writer).
        Action::Floor(_) => Ok(()),
        Action::JobAttempt {
            job,
            outcome,
            call,
            retry_in,
        } => {
            let call = call.as_ref().map(|c| c.0.as_str());
            crate::dialer::record(store, node, *job, *outcome, call, *retry_in, Utc::now()).await
        }
        Action::CancelJobs { call } => {
            crate::dialer::cancel_callbacks_of(store, &call.0, Utc::now()).await
        }
        Action::FollowUp {
            job,
            outcome,
            call,
            answer,
        } => crate::dialer::answers::record(
            store,
            bus,
            &config.follow_ups,
            config.dialer.attempt_interval,
            node,
            crate::dialer::answers::Attempt {
                job: (**job).clone(),
                outcome: *outcome,
                call_id: call.as_ref().map(|c| c.0.clone()),
                answer: answer.clone(),
            },
            Utc::now(),
        )
        .await
        .map(|_| ()),
        Action::MarkAtRisk(jobs) => store.mark_at_risk(jobs, Utc::now()).await,
        Action::Lookup { .. } | Action::Chain(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::call::control::CallId;
    use crate::store::CallDirection;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn busy() -> StoreError {
        StoreError::Database(sqlx::Error::PoolTimedOut)
    }

    #[test]
    fn the_backoff_doubles_from_its_first_pause_and_ends_with_its_budget() {
        let mut b = Backoff::new(ms(10), Duration::from_secs(2));
        let pauses: Vec<Duration> = std::iter::from_fn(|| b.next_pause()).collect();
        assert_eq!(
            pauses,
            [10, 20, 40, 80, 160, 320, 640, 730].map(ms),
            "the last pause is cut to the budget"
        );
        assert_eq!(pauses.iter().sum::<Duration>(), Duration::from_secs(2));
        assert_eq!(b.next_pause(), None);
        // A zero first pause still moves on, and a zero budget allows no pause.
        assert_eq!(Backoff::new(ms(0), ms(3)).next_pause(), Some(ms(1)));
        assert_eq!(Backoff::new(ms(10), ms(0)).next_pause(), None);
    }

    #[test]
    fn only_a_busy_database_is_worth_another_try() {
        assert!(busy().is_busy());
        assert!(!StoreError::invalid("id", "empty").is_busy());
        assert!(!StoreError::Database(sqlx::Error::RowNotFound).is_busy());
    }

    #[tokio::test]
    async fn a_busy_write_is_tried_again_after_growing_pauses_until_it_goes_through() {
        let sink = FakeSink::default();
        let tries = Mutex::new(0u32);
        let result = retry_busy(&sink, "test", 1, || {
            let n = {
                let mut t = tries.lock().unwrap();
                *t += 1;
                *t
            };
            async move { if n <= 3 { Err(busy()) } else { Ok(n) } }
        })
        .await;
        assert_eq!(result.unwrap(), 4);
        assert_eq!(*sink.paused.lock().unwrap(), [10, 20, 40].map(ms));
    }

    #[tokio::test]
    async fn a_write_stays_busy_past_the_budget_or_fails_otherwise_and_is_given_up() {
        let sink = FakeSink::default();
        let tries = Mutex::new(0u32);
        let result: Result<(), _> = retry_busy(&sink, "test", 1, || {
            *tries.lock().unwrap() += 1;
            async { Err(busy()) }
        })
        .await;
        assert!(result.unwrap_err().is_busy());
        assert_eq!(
            *tries.lock().unwrap(),
            9,
            "the first try and one after each pause"
        );
        let paused = std::mem::take(&mut *sink.paused.lock().unwrap());
        assert_eq!(paused.iter().sum::<Duration>(), BUSY_RETRY_BUDGET);

        *tries.lock().unwrap() = 0;
        let result: Result<(), _> = retry_busy(&sink, "test", 1, || {
            *tries.lock().unwrap() += 1;
            async { Err(StoreError::invalid("id", "empty")) }
        })
        .await;
        assert!(!result.unwrap_err().is_busy());
        assert_eq!(*tries.lock().unwrap(), 1, "no second try for a refusal");
        assert!(sink.paused.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_unreachable_database_is_waited_for_like_a_busy_one() {
        let refused = || {
            StoreError::Database(sqlx::Error::Io(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused,
            )))
        };
        assert!(refused().is_transient());
        assert!(!refused().is_busy());
        assert!(!StoreError::invalid("id", "empty").is_transient());
        let sink = FakeSink::default();
        let tries = Mutex::new(0u32);
        let result = retry_busy(&sink, "test", 1, || {
            let n = {
                let mut t = tries.lock().unwrap();
                *t += 1;
                *t
            };
            async move { if n <= 2 { Err(refused()) } else { Ok(n) } }
        })
        .await;
        assert_eq!(result.unwrap(), 3, "retried, not dropped");
    }

    /// A store that is busy for the next `busy` statements, refuses rows whose id
    /// is in `bad`, and remembers what it wrote and the pauses it was asked for.
    #[derive(Default)]
    struct FakeSink {
        busy: Mutex<u32>,
        bad: Vec<String>,
        rows: Mutex<Vec<CallRecord>>,
        actions: Mutex<Vec<String>>,
        /// The pauses asked for (nothing waits: the test's clock is this list).
        paused: Mutex<Vec<Duration>>,
    }

    impl FakeSink {
        fn busy_now(&self) -> bool {
            let mut busy = self.busy.lock().unwrap();
            if *busy == 0 {
                return false;
            }
            *busy -= 1;
            true
        }

        fn written(&self) -> Vec<(String, String)> {
            let rows = self.rows.lock().unwrap();
            rows.iter()
                .map(|r| (r.id.clone(), r.to_number.clone()))
                .collect()
        }
    }

    impl Sink for FakeSink {
        async fn upsert_calls(&self, rows: &[CallRecord]) -> Result<(), StoreError> {
            if self.busy_now() {
                return Err(busy());
            }
            if rows.iter().any(|r| self.bad.contains(&r.id)) {
                return Err(StoreError::invalid("id", "refused"));
            }
            self.rows.lock().unwrap().extend_from_slice(rows);
            Ok(())
        }

        async fn apply(&self, action: &Action) -> Result<(), StoreError> {
            if self.busy_now() {
                return Err(busy());
            }
            if let Action::CancelJobs { call } = action {
                self.actions.lock().unwrap().push(call.0.clone());
            }
            Ok(())
        }

        async fn pause(&self, pause: Duration) {
            self.paused.lock().unwrap().push(pause);
        }
    }

    fn row(id: &str, to: &str) -> Action {
        Action::Journal(Box::new(CallRecord::offered(
            id,
            CallDirection::Inbound,
            "+79120000001",
            to,
            Utc::now(),
        )))
    }

    fn cancel(call: &str) -> Action {
        Action::CancelJobs {
            call: CallId(call.into()),
        }
    }

    #[tokio::test]
    async fn a_journal_batch_the_database_was_briefly_busy_for_is_written_whole() {
        let sink = FakeSink {
            busy: Mutex::new(3),
            ..FakeSink::default()
        };
        let mut pending = Pending::default();
        for a in [row("a", "1"), row("b", "1"), row("a", "2"), cancel("a")] {
            pending.push(a);
        }
        assert!(write_round(&sink, &mut pending).await);
        assert_eq!(pending.len(), 0);
        assert_eq!(
            sink.written(),
            [("a".into(), "2".into()), ("b".into(), "1".into())],
            "one transaction, each call in its latest state"
        );
        assert_eq!(*sink.actions.lock().unwrap(), ["a"]);
    }

    #[tokio::test]
    async fn rows_the_database_stays_busy_for_wait_in_order_for_the_next_round() {
        // Busy through the batch's retries and the first row's: nothing is written,
        // nothing is lost.
        let sink = FakeSink {
            busy: Mutex::new(18),
            ..FakeSink::default()
        };
        let mut pending = Pending::default();
        for a in [row("a", "1"), cancel("a"), row("b", "1")] {
            pending.push(a);
        }
        assert!(!write_round(&sink, &mut pending).await);
        assert!(sink.written().is_empty());
        assert_eq!(pending.len(), 3, "{pending:?}");
        // Meanwhile call a moved on; the next round writes its latest row.
        pending.push(row("a", "2"));
        pending.push(cancel("b"));
        assert!(write_round(&sink, &mut pending).await);
        assert_eq!(
            sink.written(),
            [("a".into(), "2".into()), ("b".into(), "1".into())]
        );
        assert_eq!(*sink.actions.lock().unwrap(), ["a", "b"], "in order");
    }

    #[tokio::test]
    async fn an_action_the_database_stays_busy_for_keeps_its_place() {
        let sink = FakeSink::default();
        let mut pending = Pending::default();
        pending.push(cancel("a"));
        assert!(write_round(&sink, &mut pending).await);
        pending.push(cancel("b"));
        pending.push(cancel("c"));
        // Busy past the budget for "b": "c" must not overtake it.
        *sink.busy.lock().unwrap() = 9;
        assert!(!write_round(&sink, &mut pending).await);
        assert_eq!(pending.len(), 2);
        assert_eq!(*sink.actions.lock().unwrap(), ["a"]);
        assert!(write_round(&sink, &mut pending).await);
        assert_eq!(*sink.actions.lock().unwrap(), ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn a_row_the_database_refuses_is_isolated_and_the_others_are_written() {
        let sink = FakeSink {
            bad: vec!["b".into()],
            ..FakeSink::default()
        };
        let mut pending = Pending::default();
        for a in [row("a", "1"), row("b", "1"), row("c", "1")] {
            pending.push(a);
        }
        assert!(write_round(&sink, &mut pending).await);
        let ids: Vec<String> = sink.written().into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, ["a", "c"]);
    }
}
