//! The engine's sequenced event bus.
//!
//! Owns the one ordered stream of everything the engine does that someone may want to
//! see: call steps, recordings, dial attempts, operator states and ticket changes. Each
//! event gets a `seq` that is strictly increasing for the life of the engine, a UTC
//! timestamp, a `type`, an optional tenant and a JSON payload, and is serialised to
//! JSON once, when published, so fan-out to many clients is a pointer copy.
//!
//! History is kept for `retention` (at least ten minutes, see DESIGN.md) so a client
//! that reconnects with `since=SEQ` gets exactly what it missed. Live delivery uses a
//! bounded broadcast channel: publishing never waits for a subscriber, and a subscriber
//! that falls behind by more than the channel holds is told it lagged (and is cut off
//! by its owner) instead of slowing anyone down.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;

/// One published event, immutable and shared.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Position in the engine's stream; strictly increasing.
    pub seq: u64,
    /// When it was published (RFC 3339, UTC, on the wire).
    pub ts: DateTime<Utc>,
    /// `call.offered`, `ticket.changed`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The tenant it concerns, when it concerns one.
    pub tenant: Option<String>,
    /// Type-specific body.
    pub payload: serde_json::Value,
    /// The JSON text sent to clients (this struct, serialised once).
    #[serde(skip)]
    pub json: Arc<str>,
}

/// Why a replay cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The client asked for events older than the history holds.
    #[error("events after seq {since} are no longer held (oldest held is {oldest}); reload")]
    TooOld {
        /// What the client asked for.
        since: u64,
        /// The oldest seq still held.
        oldest: u64,
    },
    /// The client claims to have seen events that were never published.
    #[error("seq {since} is in the future (last published is {last})")]
    Future {
        /// What the client asked for.
        since: u64,
        /// The last seq published.
        last: u64,
    },
}

/// A live subscription: what was missed, then the live stream.
#[derive(Debug)]
pub struct Subscription {
    /// Events after `since`, in order, to send before anything from `live`.
    pub backlog: Vec<Arc<Event>>,
    /// Events published after the backlog was taken.
    pub live: broadcast::Receiver<Arc<Event>>,
}

struct History {
    next_seq: u64,
    events: VecDeque<Arc<Event>>,
}

/// The bus; cheap to clone, shared by every publisher and subscriber.
#[derive(Clone)]
pub struct EventBus {
    history: Arc<Mutex<History>>,
    live: broadcast::Sender<Arc<Event>>,
    /// Set when the engine stops: subscribers end their streams.
    closing: Arc<tokio::sync::watch::Sender<bool>>,
    retention: Duration,
    max_held: usize,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(Duration::from_secs(15 * 60), 500_000, 8192)
    }
}

impl EventBus {
    /// A bus holding events for `retention` (but never more than `max_held`), with
    /// `live_capacity` events of slack per live subscriber.
    pub fn new(retention: Duration, max_held: usize, live_capacity: usize) -> Self {
        let (live, _) = broadcast::channel(live_capacity.max(16));
        Self {
            history: Arc::new(Mutex::new(History {
                next_seq: 1,
                events: VecDeque::new(),
            })),
            live,
            closing: Arc::new(tokio::sync::watch::channel(false).0),
            retention,
            max_held: max_held.max(1),
        }
    }

    /// Announces that the engine is stopping: [`closed`](Self::closed) resolves for
    /// every subscriber, so streams can be ended cleanly rather than cut.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once [`close`](Self::close) has been called (at once if it has).
    pub async fn closed(&self) {
        let mut rx = self.closing.subscribe();
        let _ = rx.wait_for(|closing| *closing).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, History> {
        // A panic while holding this lock cannot leave History inconsistent (every
        // mutation is a single push/pop), so a poisoned lock is still usable.
        self.history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publishes an event now; returns its seq.
    pub fn publish(&self, kind: &str, tenant: Option<&str>, payload: serde_json::Value) -> u64 {
        self.publish_at(Utc::now(), kind, tenant, payload)
    }

    /// Publishes an event stamped `ts`; returns its seq.
    pub fn publish_at(
        &self,
        ts: DateTime<Utc>,
        kind: &str,
        tenant: Option<&str>,
        payload: serde_json::Value,
    ) -> u64 {
        let mut history = self.lock();
        let seq = history.next_seq;
        history.next_seq += 1;
        let mut event = Event {
            seq,
            ts,
            kind: kind.to_owned(),
            tenant: tenant.map(str::to_owned),
            payload,
            json: Arc::from(""),
        };
        // Serialising a struct of strings and a JSON value cannot fail.
        event.json = serde_json::to_string(&event).unwrap_or_default().into();
        let event = Arc::new(event);
        history.events.push_back(event.clone());
        let horizon =
            ts - chrono::Duration::from_std(self.retention).unwrap_or(chrono::TimeDelta::MAX);
        while history.events.len() > self.max_held
            || history.events.front().is_some_and(|e| e.ts < horizon)
        {
            history.events.pop_front();
        }
        // Sent under the lock so live order equals seq order; an error only means
        // nobody is listening.
        let _ = self.live.send(event);
        seq
    }

    /// The seq of the last published event (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.lock().next_seq - 1
    }

    /// Subscribes from `since` (exclusive): the held events after it, then live ones,
    /// with nothing missed and nothing twice. `None` means "from now".
    pub fn subscribe(&self, since: Option<u64>) -> Result<Subscription, ReplayError> {
        let history = self.lock();
        let last = history.next_seq - 1;
        let backlog = match since {
            None => Vec::new(),
            Some(since) if since > last => return Err(ReplayError::Future { since, last }),
            Some(since) => {
                let oldest = history.events.front().map_or(last + 1, |e| e.seq);
                if since + 1 < oldest {
                    return Err(ReplayError::TooOld { since, oldest });
                }
                let skip = (since + 1 - oldest) as usize;
                history.events.iter().skip(skip).cloned().collect()
            }
        };
        let live = self.live.subscribe();
        Ok(Subscription { backlog, live })
    }

    /// Held events after `since`, for a REST poll.
    pub fn replay(&self, since: u64) -> Result<Vec<Arc<Event>>, ReplayError> {
        self.subscribe(Some(since)).map(|s| s.backlog)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seq_is_strictly_increasing_and_json_is_the_contract() {
        let bus = EventBus::default();
        let a = bus.publish("call.offered", Some("etalon"), json!({"call": "c1"}));
        let b = bus.publish("operator.state", None, json!({}));
        assert_eq!((a, b), (1, 2));
        let events = bus.replay(0).unwrap();
        let v: serde_json::Value = serde_json::from_str(&events[0].json).unwrap();
        assert_eq!(v["seq"], 1);
        assert_eq!(v["type"], "call.offered");
        assert_eq!(v["tenant"], "etalon");
        assert_eq!(v["payload"]["call"], "c1");
        assert!(v["ts"].as_str().unwrap().ends_with('Z'));
    }

    #[tokio::test]
    async fn subscribe_since_gives_backlog_then_live_without_gaps() {
        let bus = EventBus::default();
        for i in 0..5 {
            bus.publish("x", None, json!(i));
        }
        let mut sub = bus.subscribe(Some(2)).unwrap();
        assert_eq!(
            sub.backlog.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        bus.publish("x", None, json!(5));
        assert_eq!(sub.live.recv().await.unwrap().seq, 6);
    }

    #[test]
    fn old_history_is_dropped_and_reported() {
        let bus = EventBus::new(Duration::from_secs(600), 3, 16);
        for i in 0..10 {
            bus.publish("x", None, json!(i));
        }
        assert_eq!(bus.replay(7).unwrap().len(), 3);
        assert_eq!(
            bus.replay(1).unwrap_err(),
            ReplayError::TooOld {
                since: 1,
                oldest: 8
            }
        );
        assert_eq!(
            bus.replay(11).unwrap_err(),
            ReplayError::Future {
                since: 11,
                last: 10
            }
        );
        assert!(bus.replay(10).unwrap().is_empty());
    }

    #[test]
    fn retention_is_by_time() {
        let bus = EventBus::new(Duration::from_secs(600), 1000, 16);
        let t0 = Utc::now();
        bus.publish_at(t0, "x", None, json!(1));
        bus.publish_at(t0 + chrono::Duration::seconds(300), "x", None, json!(2));
        bus.publish_at(t0 + chrono::Duration::seconds(700), "x", None, json!(3));
        assert_eq!(bus.replay(1).unwrap().len(), 2);
        assert!(bus.replay(0).is_err());
    }
}
