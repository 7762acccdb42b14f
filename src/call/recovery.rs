//! What a node does at start about the calls a crash (a SIGKILL) cut off: its
//! unfinished journal rows are closed with their last known state, every caller
//! who was waiting in its queue gets the callback the 5-minute rule promises
//! (through the same dial plan as any callback: a number outside it is logged and
//! left), and the recordings the crash cut off, once their headers are repaired
//! ([`crate::media::recording::recover_unfinished`]), are linked to their calls
//! with `recording.ready`. See [`crate::store::recovery`].
//!
//! A node that dies and does not come back is recovered by a survivor instead, at
//! once: every live node asks every [`HEARTBEAT`](crate::store::nodes::HEARTBEAT)
//! ([`watch_peers`]) for the nodes whose heartbeat lapsed (once it has itself
//! reached the store for a while: [`Judge`]), exactly one takes each
//! ([`Store::claim_dead_nodes`]) and runs [`recover_calls`] for it. The journal
//! rows are closed under a row lock, so when the dead node restarts and runs its
//! own recovery as well, each waiting caller still gets one callback. (The dead
//! node's dial jobs and chains need no such step: they are due to the others as
//! soon as its heartbeat lapses.)

use chrono::Utc;

use serde_json::json;

use crate::config::Config;
use crate::events::EventBus;
use crate::phone::PhoneNumber;
use crate::store::nodes::SILENCE;
use crate::store::recovery::WaitingCaller;
use crate::store::{DialKind, NewDialJob, Store, StoreError};

/// Closes `node`'s unfinished calls and schedules, in the same transaction, the
/// callbacks of the callers who were waiting. Returns how many callbacks were
/// scheduled.
pub async fn recover_calls(
    store: &Store,
    config: &Config,
    node: &str,
) -> Result<usize, StoreError> {
    let now = Utc::now();
    let deadline = chrono::Duration::from_std(config.queue.callback_deadline).unwrap_or_default();
    let plan = |caller: &WaitingCaller| {
        let Ok(phone) = PhoneNumber::parse(&caller.from_number) else {
            tracing::warn!(number = %caller.from_number, call = %caller.call_id, "no callback after the crash: the caller's number is not a phone number");
            return None;
        };
        if !config.security.callback_plan.permits(phone.as_str()) {
            tracing::warn!(%phone, call = %caller.call_id, "no callback after the crash: the number is outside the callback dial plan");
            return None;
        }
        Some(NewDialJob {
            tenant: caller.tenant.clone(),
            call_id: Some(caller.call_id.clone()),
            deadline_at: Some(caller.offered_at + deadline),
            ..NewDialJob::new(DialKind::Callback, phone, now, config.dialer.attempts)
        })
    };
    let recovered = store.close_unfinished_calls(node, now, &plan).await?;
    if recovered.closed > 0 {
        tracing::warn!(%node, calls = recovered.closed, waiting = recovered.waiting.len(), callbacks = recovered.callbacks, "calls a crash cut off are closed in the journal");
    }
    Ok(recovered.callbacks)
}

/// Recovers the nodes found dead at `now` that no other node took: their
/// unfinished calls are closed and their waiting callers get callbacks. Returns the
/// nodes recovered, with how many callbacks each got.
pub async fn recover_dead_nodes(
    store: &Store,
    config: &Config,
    node: &str,
) -> Result<Vec<(String, usize)>, StoreError> {
    let dead = store.claim_dead_nodes(node, Utc::now()).await?;
    let mut recovered = Vec::with_capacity(dead.len());
    for peer in dead {
        tracing::warn!(%node, dead = %peer, "a node's heartbeat lapsed: recovering its calls here");
        let callbacks = recover_calls(store, config, &peer).await?;
        tracing::warn!(%node, dead = %peer, callbacks, "the dead node's calls are closed and its waiting callers will be called back");
        recovered.push((peer, callbacks));
    }
    Ok(recovered)
}

/// Runs [`recover_dead_nodes`] every [`HEARTBEAT`](crate::store::nodes::HEARTBEAT)
/// for as long as this node lives (a failure is logged and tried again at the
/// next tick; a node taken but not finished is left to its own restart). Only
/// while `judging` says so: this node's heartbeat has reached the store for a whole
/// [`SILENCE`] without a break ([`Judge`]); a lapse seen just after an outage may
/// be the outage's, not a death.
pub async fn watch_peers(
    store: Store,
    bus: EventBus,
    config: std::sync::Arc<Config>,
    node: String,
    judging: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(crate::store::nodes::HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !*judging.borrow() {
            continue;
        }
        match recover_dead_nodes(&store, &config, &node).await {
            Ok(recovered) => {
                for (peer, callbacks) in recovered {
                    // Supervisors' boards show the node down and who took over.
                    bus.publish(
                        "node.recovered",
                        None,
                        json!({ "node": peer, "by": node, "callbacks": callbacks }),
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, %node, "cannot recover a dead node's calls now");
            }
        }
    }
}

/// When this node may call another dead (sans-IO: the heartbeat says whether the
/// store took it, and when).
///
/// A node is dead when its heartbeat lapsed for [`SILENCE`]. But when the store
/// itself was away (PostgreSQL restarting), every node's heartbeat lapsed at once,
/// and the first node back would find the others "dead" and recover their live
/// calls. So a node judges others only after it has reached the store for a whole
/// [`SILENCE`] without a break: by then every node that is alive and reaches the
/// store has renewed its row (every [`HEARTBEAT`](crate::store::nodes::HEARTBEAT)).
/// A node cut off alone is still found dead by the others within seconds.
#[derive(Debug, Default)]
pub struct Judge {
    reaching_since: Option<std::time::Instant>,
}

impl Judge {
    /// Records whether the store answered at `now`; returns whether this node may
    /// now judge the others.
    pub fn may_judge(&mut self, reached: bool, now: std::time::Instant) -> bool {
        if !reached {
            self.reaching_since = None;
            return false;
        }
        let since = *self.reaching_since.get_or_insert(now);
        now.duration_since(since) >= SILENCE
    }
}

/// Links repaired recordings (`<call id>.wav`) to their calls and publishes
/// `recording.ready` for each; a file that cannot be read or stored is logged.
pub async fn link_repaired(store: &Store, bus: &EventBus, paths: &[std::path::PathBuf]) {
    for path in paths {
        let Some(call) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let measured = hound::WavReader::open(path)
            .map(|r| u64::from(r.duration()) * 1000 / u64::from(r.spec().sample_rate.max(1)));
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let duration_ms = match measured {
            Ok(ms) => ms,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "a repaired recording cannot be read");
                continue;
            }
        };
        let text = path.to_string_lossy();
        match store
            .insert_recording(call, &text, duration_ms as i64, bytes as i64)
            .await
        {
            Ok(id) => {
                let tenant = store
                    .get_call(call)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|c| c.tenant);
                tracing::warn!(%call, path = %text, "a recording the crash cut off is linked to its call");
                bus.publish(
                    "recording.ready",
                    tenant.as_deref(),
                    json!({ "call": call, "recording": id, "duration_ms": duration_ms, "bytes": bytes, "repaired": true }),
                );
            }
            Err(e) => {
                tracing::error!(%call, path = %text, error = %e, "a repaired recording cannot be linked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_node_judges_others_only_after_reaching_the_store_for_a_whole_silence() {
        let mut judge = Judge::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // Just started (or just back from an outage): the others' rows may all
        // have lapsed while nobody could write.
        assert!(!judge.may_judge(true, at(0)));
        assert!(!judge.may_judge(true, at(8)));
        assert!(judge.may_judge(true, at(10)), "ten seconds without a break");
        assert!(judge.may_judge(true, at(12)));
        // The store goes away: no judging, and the count starts again after.
        assert!(!judge.may_judge(false, at(14)));
        assert!(!judge.may_judge(true, at(30)));
        assert!(!judge.may_judge(true, at(38)));
        assert!(judge.may_judge(true, at(40)));
    }
}
