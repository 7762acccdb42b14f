//! The engine's sequenced event bus.
//!
//! Owns the one ordered stream of everything the engine does that someone may want to
//! see: call steps, recordings, dial attempts, operator states and ticket changes. Each
//! event gets a `seq` that is strictly increasing for the life of the engine, a UTC
//! timestamp, a `type`, an optional tenant and a JSON payload, and is serialised to
//! JSON once, when published, so fan-out to many clients is a pointer copy.
//!
//! Every bus has an **epoch**: an id chosen when it is created (so, once per engine
//! start). Seqs start at 1 in every epoch, so a resume point is the pair (epoch, seq):
//! a client that resumes with another epoch's seq must reload instead.
//!
//! History is kept for `retention` (at least ten minutes, see DESIGN.md) so a client
//! that reconnects with `since=SEQ` gets exactly what it missed, bounded by a count
//! and by an estimate of the memory the held events take. Live delivery uses a
//! bounded broadcast channel: publishing never waits for a subscriber, and a subscriber
//! that falls behind by more than the channel holds is told it lagged (and is cut off
//! by its owner) instead of slowing anyone down.
//!
//! **Several nodes** (the store is PostgreSQL): the bus is [`cluster`]ed. A publish
//! is handed to a writer that appends it to the database's event log, where one
//! sequence orders the events of every node; each node tails the log into its own
//! bus with the log's seqs. The epoch is then the log's, so a resume point taken
//! on one node is valid on every other one and after restarts. See [`cluster`].
//!
//! The lock publishers and subscribers share is held only for O(1) work: the JSON
//! is serialised before it is taken (only the seq is written under it), a
//! subscription takes its start point and live receiver under it, and a replay reads
//! the history in short chunks ([`Backlog::next_chunk`]), each under its own brief
//! hold, located by index because seqs in the history are contiguous.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;

pub mod cluster;

/// One published event, immutable and shared.
///
/// The payload is kept both as a value (in-process readers and the websocket's
/// per-operator trimming of screen-pops read its fields) and as the JSON sent to
/// clients; the history's memory bound counts both.
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
    /// Whether this engine published it (always, unless the bus is
    /// [`cluster`]ed and another node did). In-process readers that act on an
    /// event (start a chain, plan a call) act on their own node's only.
    #[serde(skip)]
    pub local: bool,
}

impl Event {
    /// What holding this event costs: the struct and its slot, its strings, the
    /// JSON text and the payload's `Value` tree, each allocation with the
    /// allocator's overhead. An estimate, but from the shapes actually held, so the
    /// history's byte bound is what the process pays for it.
    fn weight(&self) -> usize {
        // The `Arc` it is held in (two counts and the struct) and its slot.
        allocation(16 + std::mem::size_of::<Self>())
            + std::mem::size_of::<Arc<Self>>()
            + allocation(16 + self.json.len())
            + allocation(self.kind.capacity())
            + self.tenant.as_ref().map_or(0, |t| allocation(t.capacity()))
            + value_heap(&self.payload)
    }
}

/// An allocation of `bytes` as the allocator gives it: rounded up to 16 with a
/// word of its own (nothing when empty).
fn allocation(bytes: usize) -> usize {
    if bytes == 0 {
        0
    } else {
        (bytes + 8).div_ceil(16) * 16
    }
}

/// The heap a `serde_json::Value` owns (not its own 32 bytes, which its parent
/// holds): strings, arrays' buffers, and a map's `BTreeMap` nodes (each node has
/// room for 11 keys and values whether or not they are used; nodes are taken as
/// about two-thirds full) with its keys and values.
fn value_heap(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    const VALUE: usize = std::mem::size_of::<Value>();
    const NODE: usize = 11 * (std::mem::size_of::<String>() + VALUE) + 16;
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        Value::String(s) => allocation(s.capacity()),
        Value::Array(items) => {
            allocation(items.capacity() * VALUE) + items.iter().map(value_heap).sum::<usize>()
        }
        Value::Object(map) if map.is_empty() => 0,
        Value::Object(map) => {
            allocation(NODE) * map.len().div_ceil(8)
                + map
                    .iter()
                    .map(|(k, v)| allocation(k.capacity()) + value_heap(v))
                    .sum::<usize>()
        }
    }
}

/// The event without its seq, serialised before the bus's lock is taken.
#[derive(Serialize)]
struct Unsequenced<'a> {
    ts: DateTime<Utc>,
    #[serde(rename = "type")]
    kind: &'a str,
    tenant: Option<&'a str>,
    payload: &'a serde_json::Value,
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
    /// Events after `since` up to the subscription's start, to read (in chunks)
    /// and send before anything from `live`.
    pub backlog: Backlog,
    /// Events published after the backlog's end.
    pub live: broadcast::Receiver<Arc<Event>>,
}

/// The part of the history a subscriber still has to replay: seqs `next..=last`.
/// Reading it takes the bus's lock once per chunk, so a long replay never holds
/// publishers up for long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    next: u64,
    last: u64,
}

impl Backlog {
    /// Events still to read.
    pub fn remaining(&self) -> u64 {
        (self.last + 1).saturating_sub(self.next)
    }

    /// The seq of the backlog's last event (its end: live events come after it).
    pub fn end(&self) -> u64 {
        self.last
    }

    /// The next (at most `max`) events, in order; empty once all are read. Fails
    /// when history it still had to read was dropped meanwhile (the reader was
    /// slower than the retention).
    pub fn next_chunk(
        &mut self,
        bus: &EventBus,
        max: usize,
    ) -> Result<Vec<Arc<Event>>, ReplayError> {
        if self.next > self.last {
            return Ok(Vec::new());
        }
        let history = bus.lock();
        let oldest = history.oldest();
        if self.next < oldest {
            return Err(ReplayError::TooOld {
                since: self.next - 1,
                oldest,
            });
        }
        // Seqs in the history are contiguous, so the index is a subtraction.
        let start = usize::try_from(self.next - oldest).unwrap_or(usize::MAX);
        let take = usize::try_from(self.remaining())
            .unwrap_or(usize::MAX)
            .min(max.max(1));
        let chunk: Vec<Arc<Event>> = history.events.range(start..).take(take).cloned().collect();
        drop(history);
        self.next += chunk.len() as u64;
        if chunk.is_empty() {
            // Nothing at an index that should hold events: treat as dropped.
            self.next = self.last + 1;
        }
        Ok(chunk)
    }
}

struct History {
    next_seq: u64,
    events: VecDeque<Arc<Event>>,
    /// The sum of the held events' [`Event::weight`].
    bytes: usize,
}

impl History {
    /// The oldest seq held (the next one to publish when nothing is held).
    fn oldest(&self) -> u64 {
        self.events.front().map_or(self.next_seq, |e| e.seq)
    }
}

/// The bus; cheap to clone, shared by every publisher and subscriber.
#[derive(Clone)]
pub struct EventBus {
    history: Arc<Mutex<History>>,
    live: broadcast::Sender<Arc<Event>>,
    /// Set when the engine stops: subscribers end their streams.
    closing: Arc<tokio::sync::watch::Sender<bool>>,
    epoch: Arc<str>,
    retention: Duration,
    max_held: usize,
    max_bytes: usize,
    /// Set when the bus is one node's view of the cluster's stream.
    cluster: Option<Arc<cluster::Link>>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("epoch", &self.epoch)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(Duration::from_secs(15 * 60), 500_000, 8192)
    }
}

/// The default bound on the memory the history takes (see [`Event`]).
pub const DEFAULT_MAX_BYTES: usize = 256 * 1024 * 1024;

/// A fresh epoch id: the creation time in milliseconds and a random suffix, in hex.
fn new_epoch() -> Arc<str> {
    let suffix: u32 = rand::random();
    format!("{:x}-{suffix:08x}", Utc::now().timestamp_millis().max(0)).into()
}

impl EventBus {
    /// A bus holding events for `retention` (but never more than `max_held`, nor
    /// more than [`DEFAULT_MAX_BYTES`]), with `live_capacity` events of slack per
    /// live subscriber.
    pub fn new(retention: Duration, max_held: usize, live_capacity: usize) -> Self {
        Self::with_limits(retention, max_held, DEFAULT_MAX_BYTES, live_capacity)
    }

    /// [`new`](Self::new) with an explicit memory bound for the history.
    pub fn with_limits(
        retention: Duration,
        max_held: usize,
        max_bytes: usize,
        live_capacity: usize,
    ) -> Self {
        let (live, _) = broadcast::channel(live_capacity.max(16));
        Self {
            history: Arc::new(Mutex::new(History {
                next_seq: 1,
                events: VecDeque::new(),
                bytes: 0,
            })),
            live,
            closing: Arc::new(tokio::sync::watch::channel(false).0),
            epoch: new_epoch(),
            retention,
            max_held: max_held.max(1),
            max_bytes: max_bytes.max(1),
            cluster: None,
        }
    }

    /// This bus's epoch: seqs are only comparable within one epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
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

    /// How many events the history holds, and the memory they weigh (bytes, as
    /// the bound counts them): what a memory figure owes to the retention.
    pub fn held(&self) -> (usize, usize) {
        let history = self.lock();
        (history.events.len(), history.bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, History> {
        // A panic while holding this lock cannot leave History inconsistent (every
        // mutation is a single push/pop), so a poisoned lock is still usable.
        self.history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publishes an event now; returns its seq (0 on a [`cluster`]ed bus, where
    /// the seq is given when the event is written to the cluster's log).
    pub fn publish(&self, kind: &str, tenant: Option<&str>, payload: serde_json::Value) -> u64 {
        self.publish_at(Utc::now(), kind, tenant, payload)
    }

    /// Publishes an event stamped `ts`; returns its seq (0 on a [`cluster`]ed bus).
    pub fn publish_at(
        &self,
        ts: DateTime<Utc>,
        kind: &str,
        tenant: Option<&str>,
        payload: serde_json::Value,
    ) -> u64 {
        // Serialising a struct of strings and a JSON value cannot fail.
        let rest = serde_json::to_string(&Unsequenced {
            ts,
            kind,
            tenant,
            payload: &payload,
        })
        .unwrap_or_else(|_| "{}".to_owned());
        // `{"ts":...}` becomes `{"seq":N,"ts":...}`: only the seq is written under
        // the lock, into a buffer allocated here.
        if let Some(link) = &self.cluster {
            link.hand_over(ts, kind, tenant, rest);
            return 0;
        }
        let body = rest.strip_prefix('{').unwrap_or(&rest);
        let mut text = String::with_capacity(body.len() + 32);
        let kind = kind.to_owned();
        let tenant = tenant.map(str::to_owned);
        let horizon =
            ts - chrono::Duration::from_std(self.retention).unwrap_or(chrono::TimeDelta::MAX);

        let mut history = self.lock();
        let seq = history.next_seq;
        history.next_seq += 1;
        let _ = write!(text, "{{\"seq\":{seq},");
        text.push_str(body);
        let event = Arc::new(Event {
            seq,
            ts,
            kind,
            tenant,
            payload,
            json: text.into(),
            local: true,
        });
        self.append(&mut history, event, horizon);
        seq
    }

    /// Adds `event` (whose seq is `history.next_seq - 1`) to the history, drops
    /// what is older than `horizon` or over the bounds, and sends it live.
    fn append(&self, history: &mut History, event: Arc<Event>, horizon: DateTime<Utc>) {
        history.bytes += event.weight();
        history.events.push_back(event.clone());
        while history.events.len() > self.max_held
            || history.bytes > self.max_bytes
            || history.events.front().is_some_and(|e| e.ts < horizon)
        {
            match history.events.pop_front() {
                Some(old) => history.bytes = history.bytes.saturating_sub(old.weight()),
                None => break,
            }
        }
        // Sent under the lock so live order equals seq order; an error only means
        // nobody is listening.
        let _ = self.live.send(event);
    }

    /// The seq of the last published event (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.lock().next_seq - 1
    }

    /// Subscribes from `since` (exclusive): the held events after it (as a
    /// [`Backlog`] to read in chunks), then live ones, with nothing missed and
    /// nothing twice. `None` means "from now".
    pub fn subscribe(&self, since: Option<u64>) -> Result<Subscription, ReplayError> {
        let history = self.lock();
        let last = history.next_seq - 1;
        let since = match since {
            None => last,
            Some(since) if since > last => return Err(ReplayError::Future { since, last }),
            Some(since) => {
                let oldest = history.oldest();
                if since + 1 < oldest {
                    return Err(ReplayError::TooOld { since, oldest });
                }
                since
            }
        };
        let live = self.live.subscribe();
        drop(history);
        Ok(Subscription {
            backlog: Backlog {
                next: since + 1,
                last,
            },
            live,
        })
    }

    /// Held events after `since`, for a REST poll.
    pub fn replay(&self, since: u64) -> Result<Vec<Arc<Event>>, ReplayError> {
        let mut backlog = self.subscribe(Some(since))?.backlog;
        let mut all = Vec::new();
        loop {
            let chunk = backlog.next_chunk(self, 4096)?;
            if chunk.is_empty() {
                return Ok(all);
            }
            all.extend(chunk);
        }
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
        let w: serde_json::Value = serde_json::from_str(&events[1].json).unwrap();
        assert_eq!(w["seq"], 2);
        assert_eq!(w["tenant"], serde_json::Value::Null);
    }

    #[test]
    fn every_bus_has_its_own_epoch() {
        let (a, b) = (EventBus::default(), EventBus::default());
        assert_ne!(a.epoch(), b.epoch());
        assert_eq!(a.epoch(), a.clone().epoch());
    }

    #[tokio::test]
    async fn subscribe_since_gives_backlog_then_live_without_gaps() {
        let bus = EventBus::default();
        for i in 0..5 {
            bus.publish("x", None, json!(i));
        }
        let mut sub = bus.subscribe(Some(2)).unwrap();
        assert_eq!(sub.backlog.remaining(), 3);
        // Published after subscribing: live, not backlog.
        bus.publish("x", None, json!(5));
        let mut seen = Vec::new();
        loop {
            let chunk = sub.backlog.next_chunk(&bus, 2).unwrap();
            if chunk.is_empty() {
                break;
            }
            assert!(chunk.len() <= 2);
            seen.extend(chunk.iter().map(|e| e.seq));
        }
        assert_eq!(seen, vec![3, 4, 5]);
        assert_eq!(sub.live.recv().await.unwrap().seq, 6);
    }

    #[test]
    fn a_replay_slower_than_the_history_is_told_so() {
        let bus = EventBus::new(Duration::from_secs(600), 4, 16);
        for i in 0..4 {
            bus.publish("x", None, json!(i));
        }
        let mut backlog = bus.subscribe(Some(0)).unwrap().backlog;
        assert_eq!(backlog.next_chunk(&bus, 1).unwrap()[0].seq, 1);
        for i in 0..3 {
            bus.publish("x", None, json!(i));
        }
        assert_eq!(
            backlog.next_chunk(&bus, 1).unwrap_err(),
            ReplayError::TooOld {
                since: 1,
                oldest: 4
            }
        );
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
    fn history_is_bounded_by_memory_too() {
        let big = "x".repeat(1000);
        let bus = EventBus::with_limits(Duration::from_secs(600), 1000, 10_000, 16);
        for _ in 0..20 {
            bus.publish("x", None, json!(big));
        }
        let oldest = bus.lock().oldest();
        let held = bus.replay(oldest - 1).unwrap();
        assert!(held.len() < 5, "{} held", held.len());
        assert_eq!(held.last().unwrap().seq, 20);
        assert!(bus.lock().bytes <= 10_000);
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
