//! The tokio task that runs this node's hand-off chains ([`ChainRunner`]) on the
//! real clock, and the [`ChainHandle`] the API reaches it through.
//!
//! At start it takes back the chains this node held before (its node id is stable,
//! so after a crash they return at once, not after their lease) and starts chains
//! for registered tickets that have none. Then it feeds the runner what the call
//! layer reports, the `ticket.changed` events of the bus (a new emergency ticket
//! starts its chain at once; an accepted, cancelled or closed one stops it) and
//! its deadlines. Every few seconds it also takes chains whose node died, starts
//! chains an event was missed for, and stops chains whose tickets moved on; it
//! renews its leases well inside their length. When the engine stops, it hands
//! its chains back once the call core has ended its calls.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::order::ChainReport;
use super::runner::{ChainRunner, OperatorResult, RunnerError};
use crate::events::EventBus;
use crate::store::{DialChainId, TicketId};

use super::order::AttemptRef;

/// How often chains of dead nodes, missed tickets and moved tickets are looked
/// for.
pub const POLL: Duration = Duration::from_secs(5);

/// A request from the API.
#[derive(Debug)]
#[non_exhaustive]
pub enum Command {
    /// The operator records the result of a hand-off call.
    OperatorResult {
        /// The attempt.
        attempt: AttemptRef,
        /// What they record.
        result: OperatorResult,
        /// Their extension.
        by: String,
        /// Whether they are a supervisor (who may record any call's result).
        supervisor: bool,
        /// The answer.
        reply: oneshot::Sender<Result<bool, RunnerError>>,
    },
    /// A supervisor restarts the chain of a ticket whose chain ended.
    Restart {
        /// The ticket.
        ticket: TicketId,
        /// The answer: the new chain, or `None` when the ticket cannot have one
        /// (it already runs one, or is no longer registered).
        reply: oneshot::Sender<Result<Option<DialChainId>, RunnerError>>,
    },
}

/// Why the chains could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandleError {
    /// The dialer has stopped (the engine is shutting down).
    #[error("the dialer is not running")]
    Stopped,
}

/// How the API reaches the chains of this node; cheap to clone.
#[derive(Debug, Clone)]
pub struct ChainHandle {
    tx: mpsc::Sender<Command>,
}

impl ChainHandle {
    /// A handle and the receiving end the task reads.
    pub fn channel() -> (Self, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(64);
        (Self { tx }, rx)
    }

    /// Records an operator's result for a hand-off call.
    pub async fn operator_result(
        &self,
        attempt: AttemptRef,
        result: OperatorResult,
        by: &str,
        supervisor: bool,
    ) -> Result<Result<bool, RunnerError>, HandleError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::OperatorResult {
                attempt,
                result,
                by: by.to_owned(),
                supervisor,
                reply,
            })
            .await
            .map_err(|_| HandleError::Stopped)?;
        answer.await.map_err(|_| HandleError::Stopped)
    }

    /// Restarts the chain of `ticket`.
    pub async fn restart(
        &self,
        ticket: TicketId,
    ) -> Result<Result<Option<DialChainId>, RunnerError>, HandleError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::Restart { ticket, reply })
            .await
            .map_err(|_| HandleError::Stopped)?;
        answer.await.map_err(|_| HandleError::Stopped)
    }
}

/// Everything the task owns.
#[derive(Debug)]
pub struct Task {
    /// The chains.
    pub runner: ChainRunner,
    /// What the call layer reports; closed when the call core has stopped.
    pub reports: mpsc::UnboundedReceiver<ChainReport>,
    /// Requests from the API.
    pub commands: mpsc::Receiver<Command>,
    /// The bus (`ticket.changed`).
    pub bus: EventBus,
    /// Turns true when the engine starts draining: no new calls are placed.
    pub stopping: watch::Receiver<bool>,
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Runs the chains until the call core has stopped.
pub async fn run(task: Task) {
    let Task {
        mut runner,
        mut reports,
        mut commands,
        bus,
        mut stopping,
    } = task;
    match runner.resume(true, now()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(chains = n, "hand-off chains taken back after a restart"),
        Err(e) => {
            tracing::error!(error = %e, "cannot take this node's chains back; the poll tries again")
        }
    }
    if let Err(e) = runner.start_unchained(now()).await {
        tracing::warn!(error = %e, "cannot look for tickets without a chain");
    }
    let mut events = bus.subscribe(None).ok().map(|s| s.live);
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut renew = tokio::time::interval(Duration::from_secs(20));
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut draining = *stopping.borrow();
    loop {
        let deadline = if draining {
            None
        } else {
            let retry = runner.has_backlog().then(|| now() + Duration::from_secs(1));
            [runner.poll_timeout(), retry].into_iter().flatten().min()
        };
        tokio::select! {
            biased;
            report = reports.recv() => match report {
                Some(r) => runner.handle_report(r, now()).await,
                None => {
                    // The call core has ended its calls and stopped: hand the
                    // chains back so whoever runs next takes them at once.
                    runner.release(now()).await;
                    tracing::info!("hand-off chains handed back; dialer stopping");
                    return;
                }
            },
            command = commands.recv(), if !draining => {
                if let Some(command) = command {
                    handle(&mut runner, command).await;
                }
            }
            event = recv_event(&mut events) => match event {
                // A ticket registered on another node starts its chain there;
                // any node's status change stops this node's chains of it.
                Ok(e) if e.kind == "ticket.changed"
                    && !draining
                    && (e.local || e.payload.get("change").and_then(|c| c.as_str()) != Some("created")) => {
                    runner.handle_ticket_event(&e.payload, e.tenant.as_deref(), now()).await;
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "the dialer missed bus events; checking the store");
                    runner.reconcile(now()).await;
                    let _ = runner.start_unchained(now()).await;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => events = None,
            },
            _ = sleep_until(deadline) => {
                runner.retry_attempts(now()).await;
                runner.handle_timeout(now()).await;
            }
            _ = poll.tick(), if !draining => {
                if let Err(e) = runner.resume(false, now()).await {
                    tracing::warn!(error = %e, "cannot look for chains of stopped nodes");
                }
                if let Err(e) = runner.start_unchained(now()).await {
                    tracing::warn!(error = %e, "cannot look for tickets without a chain");
                }
                runner.reconcile(now()).await;
            }
            _ = renew.tick() => runner.renew(now()).await,
            changed = stopping.changed(), if !draining => {
                if changed.is_err() || *stopping.borrow() {
                    draining = true;
                    runner.stop_placing();
                    tracing::info!(chains = runner.running(), "engine stopping: no new chain calls");
                }
            }
        }
    }
}

async fn recv_event(
    events: &mut Option<tokio::sync::broadcast::Receiver<std::sync::Arc<crate::events::Event>>>,
) -> Result<std::sync::Arc<crate::events::Event>, tokio::sync::broadcast::error::RecvError> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

async fn handle(runner: &mut ChainRunner, command: Command) {
    match command {
        Command::OperatorResult {
            attempt,
            result,
            by,
            supervisor,
            reply,
        } => {
            let r = runner
                .operator_result(attempt, result, &by, supervisor, now())
                .await;
            let _ = reply.send(r);
        }
        Command::Restart { ticket, reply } => {
            let r = runner
                .start(ticket, true, now())
                .await
                .map_err(RunnerError::from);
            let _ = reply.send(r);
        }
    }
}
