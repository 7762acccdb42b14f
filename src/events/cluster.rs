//! One node's view of the cluster's event stream: several engine nodes on one
//! PostgreSQL publish into, and read from, one sequence.
//!
//! Owns the two tasks that connect an [`EventBus`] to the database's event log
//! ([`crate::store::event_log`]):
//!
//! - the **writer** takes what this node publishes from a bounded queue and
//!   appends it, in batches of up to [`ClusterSettings::batch`] per statement, to
//!   the log, which gives each event its seq (one counter row, locked until
//!   commit: seq order is commit order across nodes) and announces the write
//!   with `pg_notify`;
//! - the **tail** reads the log after the last seq it has (`WHERE seq > last`) on
//!   every announcement (a `LISTEN` connection of its own, re-established when it
//!   breaks), after each of this node's own writes, and every
//!   [`ClusterSettings::poll`] as a safety net, and hands the events to the bus
//!   with their seqs ([`EventBus`] keeps its history and live channel exactly as
//!   on one node). It also prunes what is older than the retention.
//!
//! So every node's bus holds the same events under the same seqs in the same order,
//! and a console on any node sees every event of its tenants once. The bus's epoch
//! is the log's (chosen once, when migration 0012 created it): a `since` taken on
//! node A resumes on node B, and on A after a restart. A node that starts loads
//! the retention window from the log into its history, so a resume point of up to
//! [`ClusterSettings::retention`] ago is served after a restart too; a resume
//! point a node has not read yet (another node is a few milliseconds ahead) is
//! waited for briefly ([`EventBus::reach`]) before it counts as "in the future".
//! Replays are served from memory only, never from the log: the history loaded
//! at start and kept since covers the retention (within the same count and memory
//! bounds as on one node), so the log is read by the tail alone, always forward.
//!
//! **Why delivery waits for the write.** A node's own events reach its consoles
//! through the log like everyone else's, a millisecond or two later than a direct
//! send would. Delivering them locally first would give them seqs the log has not
//! given (or none), so the same event would arrive twice or out of order when the
//! log's copy came back, which breaks the contract. So while the database is
//! unreachable the live view waits: publishing still never blocks (the queue is
//! bounded; a full queue drops the event, counted and logged as an error), the
//! writer retries with backoff and writes what was held, in order, when the
//! database answers; a write whose answer was lost is looked up by its batch id
//! before it is tried again, so nothing is written twice.
//!
//! Events are published with the publisher's clock; order is the log's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::sync::{Notify, mpsc, watch};

use super::{Event, EventBus};
use crate::store::event_log::{CHANNEL, LoggedEvent, NewEvent};
use crate::store::{Store, StoreError};

/// How a node joins the cluster's stream.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// This node's id (events it wrote are marked [`Event::local`]).
    pub node: String,
    /// How long events are kept, in memory and in the log (DESIGN.md: a client
    /// may resume after ten minutes).
    pub retention: Duration,
    /// At most this many events in the in-memory history.
    pub max_held: usize,
    /// At most about this many bytes of history in memory.
    pub max_bytes: usize,
    /// Slack per live subscriber (see [`EventBus::new`]).
    pub live_capacity: usize,
    /// How many published events may wait for the writer.
    pub queue: usize,
    /// How many events one write (and one read) carries at most.
    pub batch: usize,
    /// How often the tail reads the log even without an announcement.
    pub poll: Duration,
    /// How often old events are pruned from the log.
    pub prune_every: Duration,
}

impl ClusterSettings {
    /// The defaults for node `node`: [`EventBus::default`]'s bounds, a queue of
    /// 64 Ki events, batches of 512, a 1 s poll and pruning every minute.
    pub fn new(node: &str) -> Self {
        Self {
            node: node.to_owned(),
            retention: Duration::from_secs(15 * 60),
            max_held: 500_000,
            max_bytes: super::DEFAULT_MAX_BYTES,
            live_capacity: 8192,
            queue: 64 * 1024,
            batch: 512,
            poll: Duration::from_secs(1),
            prune_every: Duration::from_secs(60),
        }
    }
}

/// What the writer has done so far.
#[derive(Debug, Clone, Copy, Default)]
struct Written {
    /// Events written, in the order they were queued.
    count: u64,
    /// The last seq given to one of them.
    last: u64,
}

/// The part of a clustered bus its publishers and the two tasks share.
pub(super) struct Link {
    sink: mpsc::Sender<NewEvent>,
    /// This node run's name in the log: `node/random`.
    writer: Arc<str>,
    queued: AtomicU64,
    dropped: AtomicU64,
    written: watch::Sender<Written>,
    /// The last seq handed to the bus.
    delivered: watch::Sender<u64>,
    retention: chrono::Duration,
}

/// Counters of a clustered bus, for /metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterStats {
    /// Events this node handed to the writer.
    pub queued: u64,
    /// Events this node wrote to the log.
    pub written: u64,
    /// Events dropped because the writer's queue was full.
    pub dropped: u64,
}

impl Link {
    /// Queues one event for the writer; never waits.
    pub(super) fn hand_over(
        &self,
        ts: DateTime<Utc>,
        kind: &str,
        tenant: Option<&str>,
        body: String,
    ) {
        let event = NewEvent {
            ts,
            kind: kind.to_owned(),
            tenant: tenant.map(str::to_owned),
            body,
        };
        match self.sink.try_send(event) {
            Ok(()) => {
                self.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed);
                if dropped % 1000 == 0 {
                    let reason = match e {
                        mpsc::error::TrySendError::Full(_) => "the writer's queue is full",
                        mpsc::error::TrySendError::Closed(_) => "the writer has stopped",
                    };
                    tracing::error!(
                        kind,
                        dropped = dropped + 1,
                        "an event was dropped: {reason} (is the database reachable?)"
                    );
                }
            }
        }
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("writer", &self.writer)
            .finish_non_exhaustive()
    }
}

/// Joins `store`'s event log (PostgreSQL): returns a bus whose epoch and seqs are
/// the cluster's, with the retention window already loaded from the log, and
/// starts its writer and tail on the current runtime. They stop when the bus is
/// [closed](EventBus::close).
pub async fn start(store: &Store, settings: ClusterSettings) -> Result<EventBus, StoreError> {
    let head = store.event_log_head().await?;
    let retention =
        chrono::Duration::from_std(settings.retention).unwrap_or(chrono::TimeDelta::MAX);
    let first = store
        .first_event_since(Utc::now() - retention)
        .await?
        .unwrap_or(head.last + 1)
        .max(1);
    let (sink, queue) = mpsc::channel(settings.queue.max(1));
    let link = Arc::new(Link {
        sink,
        writer: format!("{}/{:08x}", settings.node, rand::random::<u32>()).into(),
        queued: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        written: watch::channel(Written::default()).0,
        delivered: watch::channel(first - 1).0,
        retention,
    });
    let mut bus = EventBus::with_limits(
        settings.retention,
        settings.max_held,
        settings.max_bytes,
        settings.live_capacity,
    );
    bus.epoch = head.epoch.into();
    bus.cluster = Some(link);
    bus.lock().next_seq = first;
    let wake = Arc::new(Notify::new());
    // Listening before the first read: nothing written after it goes unnoticed.
    store.listen(CHANNEL, wake.clone());
    let loaded = catch_up(store, &bus).await?;
    tracing::info!(
        epoch = bus.epoch(),
        loaded,
        last_seq = bus.last_seq(),
        "joined the cluster's event stream"
    );
    tokio::spawn(tail(
        store.clone(),
        bus.clone(),
        wake.clone(),
        settings.clone(),
    ));
    tokio::spawn(write(
        store.clone(),
        bus.clone(),
        queue,
        wake,
        settings.batch,
    ));
    Ok(bus)
}

/// The bus an engine node on `store` publishes into, its history within
/// `max_bytes` of memory: the cluster's stream ([`start`]) on PostgreSQL, an
/// in-memory bus with [`EventBus::default`]'s other bounds on SQLite.
pub async fn bus_for(store: &Store, node: &str, max_bytes: usize) -> Result<EventBus, StoreError> {
    let settings = ClusterSettings {
        max_bytes,
        ..ClusterSettings::new(node)
    };
    if store.shares_events() {
        start(store, settings).await
    } else {
        Ok(EventBus::with_limits(
            settings.retention,
            settings.max_held,
            max_bytes,
            settings.live_capacity,
        ))
    }
}

impl EventBus {
    /// Whether this bus is one node's view of the cluster's stream.
    pub fn is_clustered(&self) -> bool {
        self.cluster.is_some()
    }

    /// The clustered bus's counters (`None` on one node).
    pub fn cluster_stats(&self) -> Option<ClusterStats> {
        self.cluster.as_ref().map(|link| ClusterStats {
            queued: link.queued.load(Ordering::Relaxed),
            written: link.written.borrow().count,
            dropped: link.dropped.load(Ordering::Relaxed),
        })
    }

    /// Waits (at most `within`) until the bus holds seq `seq`: another node may
    /// be a little ahead of this one. Returns at once on one node.
    pub async fn reach(&self, seq: u64, within: Duration) {
        let Some(link) = &self.cluster else { return };
        let mut delivered = link.delivered.subscribe();
        let _ = tokio::time::timeout(within, delivered.wait_for(|last| *last >= seq)).await;
    }

    /// Waits (at most `within`) until everything published here so far is written
    /// to the log and back in this bus, so it reaches this node's clients before
    /// they are closed. Returns whether it did; at once on one node.
    pub async fn settle(&self, within: Duration) -> bool {
        let Some(link) = &self.cluster else {
            return true;
        };
        let target = link.queued.load(Ordering::Relaxed);
        let mut written = link.written.subscribe();
        let mut delivered = link.delivered.subscribe();
        tokio::time::timeout(within, async move {
            let last = match written.wait_for(|w| w.count >= target).await {
                Ok(w) => w.last,
                Err(_) => return,
            };
            let _ = delivered.wait_for(|d| *d >= last).await;
        })
        .await
        .is_ok()
    }

    /// Adds events read from the log, in seq order. Events already held are
    /// skipped; after a gap (the log pruned events this node never read) the
    /// history starts again at the event after it.
    fn deliver(&self, link: &Link, logged: Vec<LoggedEvent>) {
        let events: Vec<Arc<Event>> = logged
            .into_iter()
            .filter_map(|row| {
                let seq = u64::try_from(row.seq).ok()?;
                Some(Arc::new(rebuild(
                    seq,
                    &row.body,
                    row.writer.as_str() == &*link.writer,
                )))
            })
            .collect();
        let Some(last) = events.last().map(|e| e.seq) else {
            return;
        };
        let mut history = self.lock();
        for event in events {
            if event.seq < history.next_seq {
                continue;
            }
            if event.seq > history.next_seq {
                tracing::warn!(
                    expected = history.next_seq,
                    got = event.seq,
                    "events are missing from the cluster's log (pruned before this node read them); resume points before the gap reload"
                );
                history.events.clear();
                history.bytes = 0;
            }
            history.next_seq = event.seq + 1;
            let horizon = event.ts - link.retention;
            self.append(&mut history, event, horizon);
        }
        drop(history);
        link.delivered.send_replace(last);
    }
}

/// An event's JSON without its seq, as the log holds it.
#[derive(Deserialize)]
struct Body {
    ts: DateTime<Utc>,
    #[serde(rename = "type")]
    kind: String,
    tenant: Option<String>,
    payload: serde_json::Value,
}

/// The event `seq` from its logged body: the JSON clients get is the body with the
/// seq put first, byte for byte what every other node sends. A body that does not
/// parse (written by something else) becomes an `event.unreadable` in its place,
/// so the seqs stay contiguous.
fn rebuild(seq: u64, body: &str, local: bool) -> Event {
    let rest = body.trim_start().strip_prefix('{');
    match (serde_json::from_str::<Body>(body), rest) {
        (Ok(parsed), Some(rest)) => Event {
            seq,
            ts: parsed.ts,
            kind: parsed.kind,
            tenant: parsed.tenant,
            payload: parsed.payload,
            json: format!("{{\"seq\":{seq},{rest}").into(),
            local,
        },
        (Err(_), _) | (_, None) => {
            tracing::error!(
                seq,
                "an event in the cluster's log is not readable; sent as event.unreadable"
            );
            let mut event = Event {
                seq,
                ts: Utc::now(),
                kind: "event.unreadable".to_owned(),
                tenant: None,
                payload: serde_json::Value::Null,
                json: Arc::from(""),
                local,
            };
            event.json = serde_json::to_string(&event).unwrap_or_default().into();
            event
        }
    }
}

/// How many events one read of the log carries.
const READ_BATCH: u32 = 1000;

/// Reads the log after the bus's last seq until it is read to its end; returns
/// how many events were read.
async fn catch_up(store: &Store, bus: &EventBus) -> Result<usize, StoreError> {
    let Some(link) = bus.cluster.clone() else {
        return Ok(0);
    };
    let mut total = 0;
    loop {
        let rows = store.events_after(bus.last_seq(), READ_BATCH).await?;
        let n = rows.len();
        total += n;
        bus.deliver(&link, rows);
        if n < READ_BATCH as usize {
            return Ok(total);
        }
    }
}

/// Reads the log into the bus when woken or polled, and prunes it.
async fn tail(store: Store, bus: EventBus, wake: Arc<Notify>, settings: ClusterSettings) {
    let mut poll = tokio::time::interval(settings.poll);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune = tokio::time::interval(settings.prune_every);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let retention =
        chrono::Duration::from_std(settings.retention).unwrap_or(chrono::TimeDelta::MAX);
    let mut failing = false;
    loop {
        let pruning = tokio::select! {
            () = wake.notified() => false,
            _ = poll.tick() => false,
            _ = prune.tick() => true,
            () = bus.closed() => return,
        };
        match catch_up(&store, &bus).await {
            Ok(_) if failing => {
                failing = false;
                tracing::info!(
                    last_seq = bus.last_seq(),
                    "reading the cluster's event log again"
                );
            }
            Ok(_) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::error!(error = %e, "cannot read the cluster's event log: consoles on this node get no events until it answers");
            }
            Err(_) => {}
        }
        if pruning {
            match store.prune_events(Utc::now() - retention).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(events = n, "old events pruned from the cluster's log"),
                Err(e) => tracing::debug!(error = %e, "cannot prune the cluster's event log"),
            }
        }
    }
}

/// Writes what this node publishes, in order, in batches.
async fn write(
    store: Store,
    bus: EventBus,
    mut queue: mpsc::Receiver<NewEvent>,
    wake: Arc<Notify>,
    batch: usize,
) {
    let Some(link) = bus.cluster.clone() else {
        return;
    };
    let mut events = Vec::with_capacity(batch.max(1));
    loop {
        let n = tokio::select! {
            n = queue.recv_many(&mut events, batch.max(1)) => n,
            () = bus.closed() => return,
        };
        if n == 0 {
            return;
        }
        let Some(last) = write_batch(&store, &bus, &link, &events, &queue).await else {
            return;
        };
        link.written.send_modify(|w| {
            w.count += n as u64;
            w.last = w.last.max(last);
        });
        // Read back at once, without waiting for our own announcement.
        wake.notify_one();
        events.clear();
    }
}

/// Writes one batch, trying until the database takes it; `None` if the bus was
/// closed first.
async fn write_batch(
    store: &Store,
    bus: &EventBus,
    link: &Link,
    events: &[NewEvent],
    queue: &mpsc::Receiver<NewEvent>,
) -> Option<u64> {
    let batch: i64 = rand::random();
    // The batch's seqs, once given, are after everything the bus holds now.
    let floor = bus.last_seq();
    let mut unsure = false;
    let mut pause = Duration::from_millis(50);
    let mut failing_since: Option<tokio::time::Instant> = None;
    let mut last_warned = tokio::time::Instant::now();
    loop {
        let attempt = if unsure {
            // The last attempt may have committed with its answer lost.
            match store.event_batch_written(floor, batch).await {
                Ok(Some(last)) => Ok(last),
                Ok(None) => store.append_events(&link.writer, batch, events).await,
                Err(e) => Err(e),
            }
        } else {
            store.append_events(&link.writer, batch, events).await
        };
        match attempt {
            Ok(last) => {
                if let Some(since) = failing_since {
                    tracing::info!(
                        after = ?since.elapsed(),
                        held = queue.len() + events.len(),
                        "the cluster's event log takes events again; the held ones are written in order"
                    );
                }
                return Some(last);
            }
            Err(e) => {
                unsure = true;
                let now = tokio::time::Instant::now();
                if failing_since.is_none() {
                    failing_since = Some(now);
                    last_warned = now;
                    tracing::error!(
                        error = %e,
                        "cannot write events to the cluster's log: they are held (live delivery on every node waits) and written when the database answers"
                    );
                } else if now.duration_since(last_warned) >= Duration::from_secs(30) {
                    last_warned = now;
                    tracing::error!(
                        error = %e,
                        held = queue.len() + events.len(),
                        "still cannot write events to the cluster's log"
                    );
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = bus.closed() => return None,
        }
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_logged_event_is_sent_byte_for_byte_as_its_publisher_would() {
        let one_node = EventBus::default();
        let ts = Utc::now();
        let payload = json!({"call": "c1", "caller": {"phone": "+79120000001"}});
        one_node.publish_at(ts, "call.offered", Some("etalon"), payload.clone());
        let sent = one_node.replay(0).unwrap()[0].json.to_string();
        // What the writer stores: the same serialisation without the seq.
        let body = serde_json::to_string(&super::super::Unsequenced {
            ts,
            kind: "call.offered",
            tenant: Some("etalon"),
            payload: &payload,
        })
        .unwrap();
        let rebuilt = rebuild(1, &body, false);
        assert_eq!(&*rebuilt.json, sent);
        assert_eq!((rebuilt.ts, rebuilt.payload), (ts, payload));
        assert_eq!(rebuilt.tenant.as_deref(), Some("etalon"));
        assert!(!rebuilt.local);
    }

    /// A clustered bus with no database behind it, and its writer's queue.
    fn offline() -> (EventBus, Arc<Link>, mpsc::Receiver<NewEvent>) {
        let (sink, queue) = mpsc::channel(2);
        let link = Arc::new(Link {
            sink,
            writer: "me/1".into(),
            queued: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            written: watch::channel(Written::default()).0,
            delivered: watch::channel(0).0,
            retention: chrono::Duration::minutes(15),
        });
        let bus = EventBus {
            cluster: Some(link.clone()),
            ..EventBus::default()
        };
        (bus, link, queue)
    }

    fn logged(seq: i64, writer: &str) -> LoggedEvent {
        LoggedEvent {
            seq,
            writer: writer.to_owned(),
            body: format!(
                r#"{{"ts":"2026-12-06T10:00:00Z","type":"x","tenant":null,"payload":{seq}}}"#
            ),
        }
    }

    #[test]
    fn publishing_queues_for_the_writer_and_never_waits() {
        let (bus, link, mut queue) = offline();
        for n in 0..5 {
            assert_eq!(bus.publish("x", None, json!(n)), 0);
        }
        // Nothing is delivered before it is written; a full queue drops and counts.
        assert_eq!(bus.last_seq(), 0);
        assert_eq!(
            bus.cluster_stats(),
            Some(ClusterStats {
                queued: 2,
                written: 0,
                dropped: 3
            })
        );
        let first = queue.try_recv().unwrap();
        assert_eq!(first.kind, "x");
        assert!(first.body.starts_with(r#"{"ts":"#), "{}", first.body);
        assert!(first.body.ends_with(r#""payload":0}"#), "{}", first.body);
        assert_eq!(*link.delivered.borrow(), 0);
    }

    #[test]
    fn delivery_skips_what_is_held_and_restarts_after_a_gap() {
        let (bus, link, _queue) = offline();
        bus.deliver(&link, vec![logged(1, "me/1"), logged(2, "other/9")]);
        bus.deliver(&link, vec![logged(2, "other/9"), logged(3, "other/9")]);
        let held = bus.replay(0).unwrap();
        assert_eq!(held.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(
            held.iter().map(|e| e.local).collect::<Vec<_>>(),
            [true, false, false]
        );
        assert_eq!(*link.delivered.borrow(), 3);
        // Seqs 4 and 5 were pruned before this node read them.
        bus.deliver(&link, vec![logged(6, "other/9")]);
        assert_eq!(bus.last_seq(), 6);
        assert_eq!(bus.replay(5).unwrap().len(), 1);
        assert!(
            bus.replay(2).is_err(),
            "a resume point before the gap reloads"
        );
    }

    #[test]
    fn an_unreadable_body_keeps_its_place() {
        let event = rebuild(7, "not json", true);
        assert_eq!((event.seq, event.kind.as_str()), (7, "event.unreadable"));
        let v: serde_json::Value = serde_json::from_str(&event.json).unwrap();
        assert_eq!(v["seq"], 7);
    }
}
