//! The driver of the shared floor: carries the call core's [`FloorWrite`]s to the
//! store in order, reads everyone's rows a few times a second (at once when
//! PostgreSQL notifies that a node wrote), and asks the store for operators while
//! calls or jobs wait here ([`crate::store::floor`]).
//!
//! It never blocks the core: the core's writes queue on a channel, and what comes
//! back (snapshots, grants) is fed to the core as inputs. A store that cannot be
//! reached only delays the floor: writes are retried in order, and meanwhile the
//! node keeps the operators it holds and is granted no others.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;

use super::floor::FloorWrite;
use crate::store::floor::{FloorDemand, FloorSnapshot, OperatorWrite};
use crate::store::{Store, StoreError};

/// How often everyone's rows are read when nothing is notified.
pub const REFRESH: Duration = Duration::from_millis(250);

/// How often a node with work waiting asks for operators again.
pub const ACQUIRE_EVERY: Duration = Duration::from_millis(200);

/// The PostgreSQL channel a node notifies after writing the floor.
pub const CHANNEL: &str = "dispatchline_floor";

/// What the floor driver hands the core.
#[derive(Debug)]
pub enum FromFloor {
    /// Everyone's rows (`first`: the first read since this node started).
    Snapshot(Box<FloorSnapshot>, bool),
    /// Operators granted to this node.
    Granted(Vec<String>),
}

/// Starts the floor driver for `node`; returns where the core's writes go and
/// where its inputs come from.
pub fn spawn(
    store: Store,
    node: String,
) -> (
    mpsc::UnboundedSender<FloorWrite>,
    mpsc::UnboundedReceiver<FromFloor>,
) {
    let (writes_tx, writes) = mpsc::unbounded_channel();
    let (to_core, from_floor) = mpsc::unbounded_channel();
    tokio::spawn(run(store, node, writes, to_core));
    (writes_tx, from_floor)
}

struct Demand {
    waiting: Vec<FloorDemand>,
    roster: Arc<Vec<crate::config::Operator>>,
}

async fn run(
    store: Store,
    node: String,
    mut writes: mpsc::UnboundedReceiver<FloorWrite>,
    to_core: mpsc::UnboundedSender<FromFloor>,
) {
    // Another node wrote the floor (PostgreSQL's NOTIFY; never on SQLite).
    let notified = Arc::new(tokio::sync::Notify::new());
    store.listen(CHANNEL, notified.clone());
    let mut refresh = tokio::time::interval(REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut acquire = tokio::time::interval(ACQUIRE_EVERY);
    acquire.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut demand = Demand {
        waiting: Vec::new(),
        roster: Arc::new(Vec::new()),
    };
    let mut first = true;
    // Demand written but not yet acted on (a new demand asks at once).
    let mut ask_now = false;
    loop {
        tokio::select! {
            write = writes.recv() => {
                let Some(write) = write else { return };
                let mut batch = vec![write];
                while let Ok(more) = writes.try_recv() {
                    batch.push(more);
                }
                for write in batch {
                    match write {
                        FloorWrite::Demand { demand: waiting, roster } => {
                            demand = Demand { waiting, roster };
                            ask_now = true;
                        }
                        other => write_until_done(&store, &node, &other).await,
                    }
                }
                notify(&store, &node).await;
                if ask_now {
                    ask_now = false;
                    if !grant(&store, &node, &demand, &to_core).await {
                        return;
                    }
                }
            }
            _ = refresh.tick() => {
                if !read(&store, &node, &to_core, &mut first).await {
                    return;
                }
            }
            () = notified.notified() => {
                if !read(&store, &node, &to_core, &mut first).await {
                    return;
                }
            }
            _ = acquire.tick(), if !demand.waiting.is_empty() => {
                if !grant(&store, &node, &demand, &to_core).await {
                    return;
                }
            }
        }
    }
}

/// Reads everyone's rows into the core; `false` when the core is gone.
async fn read(
    store: &Store,
    node: &str,
    to_core: &mpsc::UnboundedSender<FromFloor>,
    first: &mut bool,
) -> bool {
    match store.floor_snapshot(Utc::now()).await {
        Ok(snapshot) => {
            let sent = to_core.send(FromFloor::Snapshot(Box::new(snapshot), *first));
            *first = false;
            sent.is_ok()
        }
        Err(e) => {
            tracing::warn!(%node, error = %e, "cannot read the shared floor");
            true
        }
    }
}

/// Records the demand and passes on what the store granted; `false` when the
/// core is gone.
async fn grant(
    store: &Store,
    node: &str,
    demand: &Demand,
    to_core: &mpsc::UnboundedSender<FromFloor>,
) -> bool {
    let roster = demand.roster.clone();
    let serves = move |ext: &str, tenant: Option<&str>, city: Option<&str>| {
        roster
            .iter()
            .any(|o| o.extension == ext && o.serves(tenant, city))
    };
    match store
        .floor_acquire(node, &demand.waiting, &serves, Utc::now())
        .await
    {
        Ok(granted) if granted.is_empty() => true,
        Ok(granted) => {
            tracing::debug!(%node, operators = ?granted, "operators granted to this node");
            notify(store, node).await;
            to_core.send(FromFloor::Granted(granted)).is_ok()
        }
        Err(e) => {
            tracing::warn!(%node, error = %e, "cannot ask the shared floor for operators");
            true
        }
    }
}

/// Writes one change, retrying while the store is unreachable (in order: the
/// writes after it wait).
async fn write_until_done(store: &Store, node: &str, write: &FloorWrite) {
    let mut pause = Duration::from_millis(50);
    loop {
        match write_once(store, node, write).await {
            Ok(()) => return,
            Err(e) if e.is_transient() => {
                tracing::warn!(%node, error = %e, "shared floor unreachable; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                tracing::error!(%node, error = %e, "shared floor write refused; dropped");
                return;
            }
        }
    }
}

async fn write_once(store: &Store, node: &str, write: &FloorWrite) -> Result<(), StoreError> {
    let now = Utc::now();
    match write {
        FloorWrite::Operator(view) => {
            let held = view.held;
            let w = OperatorWrite {
                extension: &view.extension,
                state: view.state.as_str(),
                reason: view.reason.as_deref(),
                since: view.since,
                call_id: if held { view.call.as_deref() } else { None },
                held,
            };
            store.floor_put_operator(node, w, now).await
        }
        FloorWrite::Bindings {
            extension,
            bindings,
        } => {
            store
                .floor_put_bindings(node, extension, Some(bindings))
                .await
        }
        FloorWrite::Demand { .. } => Ok(()),
    }
}

/// Tells the other nodes this one wrote the floor (PostgreSQL only).
async fn notify(store: &Store, node: &str) {
    if let Err(e) = store.notify(CHANNEL, node).await {
        tracing::debug!(error = %e, "cannot notify the floor's channel");
    }
}
