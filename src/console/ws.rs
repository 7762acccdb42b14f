//! `GET /ws`: the websocket event stream the console (and anyone with a token) reads.
//!
//! Owns the per-client side of the event bus: authentication before the upgrade,
//! tenant scoping, replay from `since`, heartbeats, and cutting off clients that do
//! not keep up. `docs/events.md` is the protocol reference; in short:
//!
//! - `GET /ws?token=T[&since=SEQ]` (or `Authorization: Bearer T`). A missing, unknown
//!   or expired token is refused with 401 and a JSON error before the upgrade.
//! - Text frames carry either an event, exactly as the bus serialised it (`seq`,
//!   `ts`, `type`, `tenant`, `payload`), or a control message, which has a `type`
//!   but never a `seq`: `hello` first, `heartbeat` every ping interval, `error`
//!   just before a close. Control messages carry `position`: every event up to that
//!   seq has been sent or was not for this client, so `since=position` resumes
//!   exactly, even when the client's tenants were quiet for longer than the history.
//! - `hello` carries the bus's `epoch`. A client resumes with `since=SEQ&epoch=E`;
//!   when E is not this engine's epoch (it restarted, and seqs started again) the
//!   client is told to reload (`error` `epoch-changed`, close 4003).
//! - An operator or supervisor receives the events of their tenants (all, when
//!   their list is empty). Events without a tenant: call events (`call.*`,
//!   `recording.*`, `callback.*`, `dial.*`, `chain.*`) go to principals of all
//!   tenants, to operators serving a tenant in the call's city (when the payload
//!   names one), and, for the rest of that call, to whoever was shown its earlier
//!   events; any other untenanted event (operator states, trunks) goes to everyone.
//! - Screen-pops are trimmed per principal with the rules of `GET /caller`: the
//!   caller's address (with its open tickets, debtor flag and outages) only when it
//!   is of a tenant they serve, and only such `other_addresses`. Each screen-pop
//!   delivered is written to the personal-data access log, in batches, off the
//!   stream's path ([`AccessLogger`]).
//! - `since=SEQ` sends the held events after SEQ, then live ones, nothing missed and
//!   nothing twice. Too old or in the future: an `error` message, then close 4002 or
//!   4003 (the client reloads its state and connects without `since`).
//! - A ping every `ping_interval`; a client whose pong has not come by the next one
//!   is closed (4001).
//! - A client that falls behind by more than the bus holds for live delivery, or
//!   whose send does not complete within `send_timeout`, is closed with 4000
//!   `slow consumer: resume with since=N`. Publishing never waits for any client
//!   (the bus is a broadcast channel), and each client has its own task, so a slow
//!   client delays nobody else.
//! - The token is checked again every `auth_recheck`; once it is expired or gone the
//!   socket is closed with 4401.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::ws::{
    CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade,
    rejection::WebSocketUpgradeRejection,
};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, MissedTickBehavior};

use super::api::auth::{AuthError, Principal, authenticate};
use super::api::journal::trim_screen_pop;
use super::api::{ApiError, extract::QueryParams};
use crate::events::{Event, EventBus, ReplayError};
use crate::store::{AccessEntry, Store};

/// Close code: the client fell behind; resume with `since`.
pub const CLOSE_SLOW: u16 = 4000;
/// Close code: no pong to the last ping.
pub const CLOSE_HEARTBEAT: u16 = 4001;
/// Close code: `since` is older than the history held; reload.
pub const CLOSE_TOO_OLD: u16 = 4002;
/// Close code: `since` is in the future; reload.
pub const CLOSE_FUTURE: u16 = 4003;
/// Close code: the token expired or was revoked; log in again.
pub const CLOSE_UNAUTHORIZED: u16 = 4401;

/// Timing of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsSettings {
    /// How often a ping (and a JSON heartbeat) is sent; a client must answer the
    /// ping before the next one.
    pub ping_interval: Duration,
    /// How long one send may take before the client counts as stuck.
    pub send_timeout: Duration,
    /// How often the token is checked again.
    pub auth_recheck: Duration,
}

impl Default for WsSettings {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(15),
            send_timeout: Duration::from_secs(5),
            auth_recheck: Duration::from_secs(60),
        }
    }
}

/// Counters for /metrics.
#[derive(Debug, Default)]
pub struct WsStats {
    /// Clients connected now.
    pub clients: AtomicU64,
    /// Connections accepted since start.
    pub connected_total: AtomicU64,
    /// Clients cut off for not keeping up.
    pub dropped_slow_total: AtomicU64,
    /// Clients closed for not answering pings.
    pub dropped_heartbeat_total: AtomicU64,
    /// Events sent, all clients together.
    pub events_sent_total: AtomicU64,
    /// Screen-pop deliveries not written to the access log (its queue was full).
    pub access_log_dropped_total: AtomicU64,
}

/// Writes screen-pop deliveries to the personal-data access log without making any
/// stream wait for the database: entries go into a bounded queue that one task
/// drains in batches. Should the queue ever be full, the entry is counted in
/// [`WsStats::access_log_dropped_total`] and a warning is logged.
#[derive(Debug, Clone)]
pub struct AccessLogger {
    tx: Option<tokio::sync::mpsc::Sender<AccessEntry>>,
}

impl AccessLogger {
    /// How many entries may wait for the writer.
    const QUEUE: usize = 16 * 1024;
    /// How many entries one store call writes at most.
    const BATCH: usize = 512;

    /// Starts the writer task on the current tokio runtime (without one, nothing
    /// is logged and a warning says so).
    pub fn start(store: Store) -> Self {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("no tokio runtime: websocket screen-pops are not access-logged");
            return Self { tx: None };
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<AccessEntry>(Self::QUEUE);
        runtime.spawn(async move {
            let mut batch = Vec::with_capacity(Self::BATCH);
            while rx.recv_many(&mut batch, Self::BATCH).await > 0 {
                if let Err(e) = store.log_access(&batch).await {
                    tracing::error!(error = %e, entries = batch.len(), "cannot write the access log");
                }
                batch.clear();
            }
        });
        Self { tx: Some(tx) }
    }

    fn log(&self, entry: AccessEntry, stats: &WsStats) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(entry).is_err() {
            stats
                .access_log_dropped_total
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!("access-log queue full: a screen-pop delivery was not logged");
        }
    }
}

/// What the `/ws` handler needs.
#[derive(Debug, Clone)]
pub struct WsState {
    /// Where tokens are checked.
    pub store: Store,
    /// The bus streamed.
    pub events: EventBus,
    /// Timing.
    pub settings: WsSettings,
    /// Counters.
    pub stats: Arc<WsStats>,
    /// Where screen-pop deliveries are logged.
    pub access: AccessLogger,
    /// Accounts whose tokens were just revoked: their sockets close at once.
    pub revocations: super::api::auth::Revocations,
}

/// `GET /ws` query.
#[derive(Debug, Deserialize)]
pub(crate) struct WsQuery {
    token: Option<String>,
    since: Option<u64>,
    epoch: Option<String>,
}

/// Authenticates, then upgrades.
pub(crate) async fn upgrade(
    State(state): State<WsState>,
    QueryParams(query): QueryParams<WsQuery>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let header_token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.to_owned());
    let token = query.token.or(header_token);
    let Some(token) = token else {
        return ApiError::from(AuthError::Missing).into_response();
    };
    let who = match authenticate(&state.store, &token).await {
        Ok(who) => who,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(e) => {
            return ApiError::new(
                StatusCode::UPGRADE_REQUIRED,
                format!("this is a websocket endpoint: {e}"),
            )
            .into_response();
        }
    };
    let since = query.since;
    let epoch = query.epoch;
    // Small buffers: a client sends only pongs, and every frame is flushed as it is
    // sent, so tungstenite's 128 KiB defaults would only cost memory per client.
    upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| serve(socket, state, who, token, since, epoch))
}

/// Owns the `clients` count of one connection.
struct Connected(Arc<WsStats>);

impl Connected {
    fn new(stats: Arc<WsStats>) -> Self {
        stats.clients.fetch_add(1, Ordering::Relaxed);
        stats.connected_total.fetch_add(1, Ordering::Relaxed);
        Self(stats)
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a connection ended.
enum End {
    /// The client closed or the connection broke.
    Gone,
    /// We close with this code and reason (after an optional JSON error).
    Close {
        code: u16,
        reason: String,
        error: Option<serde_json::Value>,
    },
}

/// The event's JSON as a frame, without copying it.
fn frame(event: &Event) -> Message {
    struct Shared(Arc<str>);
    impl AsRef<[u8]> for Shared {
        fn as_ref(&self) -> &[u8] {
            self.0.as_bytes()
        }
    }
    let bytes = Bytes::from_owner(Shared(event.json.clone()));
    match Utf8Bytes::try_from(bytes) {
        Ok(text) => Message::Text(text),
        // An `Arc<str>` is UTF-8; this arm is never taken.
        Err(_) => Message::Text(Utf8Bytes::from(&*event.json)),
    }
}

/// Whether an event is about a call (and so may carry personal data).
fn is_call_event(kind: &str) -> bool {
    ["call.", "recording.", "callback.", "dial.", "chain."]
        .iter()
        .any(|p| kind.starts_with(p))
}

/// Who one connection is for, and what it has been shown.
struct Audience {
    who: Principal,
    /// Cities of the tenants the principal serves.
    cities: HashSet<String>,
    /// Untenanted calls whose events this client was shown (their later events,
    /// which may not name the city, follow them).
    shown: HashSet<String>,
}

impl Audience {
    /// At most this many untenanted calls are remembered (then the set starts over).
    const MAX_SHOWN: usize = 4096;

    fn new(who: Principal, cities: HashSet<String>) -> Self {
        Self {
            who,
            cities,
            shown: HashSet::new(),
        }
    }

    /// Whether the event is for this client; remembers untenanted calls shown.
    fn admits(&mut self, event: &Event) -> bool {
        if let Some(t) = &event.tenant {
            return self.who.sees(t);
        }
        // A management company's own staff see their company's events only: no
        // untenanted calls (they may be another company's), operators or trunks.
        if self.who.role.is_tenant_staff() {
            return false;
        }
        if !is_call_event(&event.kind) || self.who.tenants.is_empty() {
            return true;
        }
        let call = event.payload.get("call").and_then(|c| c.as_str());
        let in_my_city = event
            .payload
            .get("city")
            .and_then(|c| c.as_str())
            .is_some_and(|c| self.cities.contains(c));
        let shown = call.is_some_and(|c| self.shown.contains(c));
        if let Some(call) = call {
            if event.kind == "call.ended" {
                self.shown.remove(call);
            } else if in_my_city && !shown {
                if self.shown.len() >= Self::MAX_SHOWN {
                    self.shown.clear();
                }
                self.shown.insert(call.to_owned());
            }
        }
        in_my_city || shown
    }
}

/// The screen-pop of `event` as `who` may see it: `None` when it needs no change
/// (not a screen-pop, or nothing in it is hidden from them); otherwise the
/// trimmed event's JSON. The rules are `GET /caller`'s ([`trim_screen_pop`]).
fn trimmed(who: &Principal, event: &Event) -> Option<String> {
    if who.tenants.is_empty() || !event.payload.get("caller")?.is_object() {
        return None;
    }
    let mut payload = event.payload.clone();
    if !trim_screen_pop(who, &mut payload) {
        return None;
    }
    let mut event = event.clone();
    event.payload = payload;
    serde_json::to_string(&event).ok()
}

/// The access-log entry for delivering a screen-pop, if `event` is one with a
/// caller's data.
fn screen_pop_read(who: &Principal, event: &Event) -> Option<AccessEntry> {
    if event.kind != "call.offered" && event.kind != "call.ringing" {
        return None;
    }
    let caller = event.payload.get("caller")?.as_object()?;
    let phone = caller.get("phone")?.as_str()?;
    Some(AccessEntry {
        at: chrono::Utc::now(),
        principal: who.extension.clone(),
        tenant: event.tenant.clone(),
        subject: "caller".to_owned(),
        subject_id: phone.to_owned(),
        purpose: format!("GET /ws {}", event.kind),
    })
}

fn slow(position: u64) -> End {
    End::Close {
        code: CLOSE_SLOW,
        reason: format!("slow consumer: resume with since={position}"),
        error: Some(json!({
            "type": "error",
            "error": "slow-consumer",
            "message": format!("you fell behind the event stream; resume with since={position}"),
            "position": position,
        })),
    }
}

struct Client {
    socket: WebSocket,
    settings: WsSettings,
    stats: Arc<WsStats>,
    audience: Audience,
    access: AccessLogger,
}

impl Client {
    /// Sends one message within the send timeout; `false` when the client is stuck
    /// or gone.
    async fn send(&mut self, message: Message) -> Result<(), SendFailed> {
        match tokio::time::timeout(self.settings.send_timeout, self.socket.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(SendFailed::Gone),
            Err(_) => Err(SendFailed::Stuck),
        }
    }

    async fn send_json(&mut self, value: &serde_json::Value) -> Result<(), SendFailed> {
        self.send(Message::Text(Utf8Bytes::from(value.to_string())))
            .await
    }

    /// Sends `event` if it is for this client (trimmed for them), logging the
    /// screen-pops delivered.
    async fn send_event(&mut self, event: &Event, position: u64) -> Result<(), End> {
        if !self.audience.admits(event) {
            return Ok(());
        }
        let message = match trimmed(&self.audience.who, event) {
            Some(text) => Message::Text(Utf8Bytes::from(text)),
            None => frame(event),
        };
        match self.send(message).await {
            Ok(()) => {
                self.stats.events_sent_total.fetch_add(1, Ordering::Relaxed);
                if let Some(entry) = screen_pop_read(&self.audience.who, event) {
                    self.access.log(entry, &self.stats);
                }
                Ok(())
            }
            Err(SendFailed::Gone) => Err(End::Gone),
            // The event was not delivered: resume from the one before it.
            Err(SendFailed::Stuck) => Err(slow(position)),
        }
    }

    /// Sends the error (if any) and the close frame, briefly: a stuck client gets
    /// no more of our time.
    async fn close(&mut self, code: u16, reason: String, error: Option<serde_json::Value>) {
        let brief = Duration::from_millis(500);
        if let Some(error) = error {
            let text = Message::Text(Utf8Bytes::from(error.to_string()));
            if !matches!(
                tokio::time::timeout(brief, self.socket.send(text)).await,
                Ok(Ok(()))
            ) {
                return;
            }
        }
        let mut reason = reason;
        // A close reason is at most 123 bytes.
        while reason.len() > 123 {
            reason.pop();
        }
        let close = Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from(reason),
        }));
        let _ = tokio::time::timeout(brief, self.socket.send(close)).await;
    }
}

/// Why a send failed.
enum SendFailed {
    /// The connection is closed.
    Gone,
    /// The send did not complete in time.
    Stuck,
}

async fn serve(
    socket: WebSocket,
    state: WsState,
    who: Principal,
    token: String,
    since: Option<u64>,
    epoch: Option<String>,
) {
    let _connected = Connected::new(state.stats.clone());
    // The cities of the principal's tenants decide which untenanted calls they see.
    let cities = if who.tenants.is_empty() {
        HashSet::new()
    } else {
        match state.store.tenants(&who.scope()).await {
            Ok(tenants) => tenants.into_iter().map(|t| t.city.code).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the tenants' cities for a websocket");
                HashSet::new()
            }
        }
    };
    let extension = who.extension.clone();
    let mut client = Client {
        socket,
        settings: state.settings,
        stats: state.stats.clone(),
        audience: Audience::new(who, cities),
        access: state.access.clone(),
    };
    let end = stream(&mut client, &state, &token, since, epoch.as_deref()).await;
    match end {
        End::Gone => {}
        End::Close {
            code,
            reason,
            error,
        } => {
            match code {
                CLOSE_SLOW => {
                    state
                        .stats
                        .dropped_slow_total
                        .fetch_add(1, Ordering::Relaxed);
                }
                CLOSE_HEARTBEAT => {
                    state
                        .stats
                        .dropped_heartbeat_total
                        .fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
            tracing::debug!(%extension, code, %reason, "closing a websocket");
            client.close(code, reason, error).await;
        }
    }
}

/// The close of a socket whose token expired or was revoked.
fn unauthorized() -> End {
    End::Close {
        code: CLOSE_UNAUTHORIZED,
        reason: "token expired or revoked: log in again".to_owned(),
        error: Some(json!({
            "type": "error",
            "error": "unauthorized",
            "message": "your token expired or was revoked; log in again",
        })),
    }
}

/// How long a resume point this node has not read yet is waited for (another
/// node of the cluster is ahead) before it counts as in the future.
const RESUME_WAIT: Duration = Duration::from_secs(2);

/// How many held events a replay reads per hold of the bus's lock.
const REPLAY_CHUNK: usize = 256;

async fn stream(
    client: &mut Client,
    state: &WsState,
    token: &str,
    since: Option<u64>,
    epoch: Option<&str>,
) -> End {
    if let (Some(_), Some(theirs)) = (since, epoch) {
        if theirs != state.events.epoch() {
            return epoch_changed(theirs, state.events.epoch());
        }
    }
    if let Some(since) = since {
        // On several nodes, the node that gave this resume point may be a few
        // milliseconds ahead of this one.
        state.events.reach(since, RESUME_WAIT).await;
    }
    // Without `since` the stream starts now.
    let subscription = match state.events.subscribe(since) {
        Ok(s) => s,
        Err(e) => return replay_refused(e),
    };
    let mut live = subscription.live;
    let mut backlog = subscription.backlog;
    let start = backlog.end() - backlog.remaining();
    let mut position = start;
    let hello = json!({
        "type": "hello",
        "epoch": state.events.epoch(),
        "position": start,
        "last_seq": backlog.end(),
        "replay": backlog.remaining(),
        "extension": client.audience.who.extension,
        "role": client.audience.who.role,
        "tenants": client.audience.who.tenants,
        "heartbeat_s": client.settings.ping_interval.as_secs(),
    });
    if client.send_json(&hello).await.is_err() {
        return End::Gone;
    }
    loop {
        let chunk = match backlog.next_chunk(&state.events, REPLAY_CHUNK) {
            Ok(chunk) if chunk.is_empty() => break,
            Ok(chunk) => chunk,
            Err(e) => return replay_refused(e),
        };
        for event in &chunk {
            if let Err(end) = client.send_event(event, position).await {
                return end;
            }
            position = event.seq;
        }
    }

    let period = client.settings.ping_interval;
    let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut awaiting_pong = false;
    let mut next_auth = Instant::now() + client.settings.auth_recheck;
    let mut revoked = state.revocations.subscribe();
    let events = state.events.clone();
    let closing = events.closed();
    tokio::pin!(closing);
    loop {
        tokio::select! {
            () = &mut closing => {
                // What was published before the close still goes out.
                while let Ok(event) = live.try_recv() {
                    if event.seq > position {
                        if let Err(end) = client.send_event(&event, position).await {
                            return end;
                        }
                    }
                    position = position.max(event.seq);
                }
                return End::Close {
                    code: 1001,
                    reason: "the engine is shutting down".to_owned(),
                    error: None,
                };
            }
            gone = revoked.recv() => {
                let this_account = match gone {
                    Ok(extension) => extension == client.audience.who.extension,
                    // Missed some: check the token itself.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => matches!(
                        authenticate(&state.store, token).await,
                        Err(AuthError::Invalid | AuthError::Missing)
                    ),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => false,
                };
                if this_account {
                    return unauthorized();
                }
            }
            incoming = client.socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return End::Gone,
                Some(Ok(Message::Pong(_))) => awaiting_pong = false,
                // Pings are answered by the library; text from the client is ignored.
                Some(Ok(_)) => {}
            },
            received = live.recv() => match received {
                Ok(event) => {
                    if event.seq <= position {
                        continue;
                    }
                    if let Err(end) = client.send_event(&event, position).await {
                        return end;
                    }
                    position = event.seq;
                }
                Err(RecvError::Lagged(_)) => return slow(position),
                Err(RecvError::Closed) => {
                    return End::Close {
                        code: 1001,
                        reason: "the engine is shutting down".to_owned(),
                        error: None,
                    };
                }
            },
            _ = ticker.tick() => {
                if awaiting_pong {
                    return End::Close {
                        code: CLOSE_HEARTBEAT,
                        reason: format!("no pong within {}s", period.as_secs()),
                        error: None,
                    };
                }
                if Instant::now() >= next_auth {
                    next_auth = Instant::now() + client.settings.auth_recheck;
                    if let Err(AuthError::Invalid | AuthError::Missing) =
                        authenticate(&state.store, token).await
                    {
                        return unauthorized();
                    }
                }
                let heartbeat = json!({
                    "type": "heartbeat",
                    "ts": chrono::Utc::now(),
                    "position": position,
                });
                match client.send_json(&heartbeat).await {
                    Ok(()) => {}
                    Err(SendFailed::Gone) => return End::Gone,
                    Err(SendFailed::Stuck) => return slow(position),
                }
                match client.send(Message::Ping(Bytes::from_static(b"dl"))).await {
                    Ok(()) => awaiting_pong = true,
                    Err(SendFailed::Gone) => return End::Gone,
                    Err(SendFailed::Stuck) => return slow(position),
                }
            }
        }
    }
}

/// The client resumes from another engine run: its seq means nothing here.
fn epoch_changed(theirs: &str, ours: &str) -> End {
    End::Close {
        code: CLOSE_FUTURE,
        reason: "the engine restarted: reload".to_owned(),
        error: Some(json!({
            "type": "error",
            "error": "epoch-changed",
            "message": format!("the engine restarted (epoch {ours}, you resumed from {theirs}); reload"),
            "epoch": ours,
        })),
    }
}

fn replay_refused(error: ReplayError) -> End {
    let (code, kind, extra) = match error {
        ReplayError::TooOld { oldest, .. } => (CLOSE_TOO_OLD, "since-too-old", json!(oldest)),
        ReplayError::Future { last, .. } => (CLOSE_FUTURE, "since-in-future", json!(last)),
    };
    let message = error.to_string();
    End::Close {
        code,
        reason: match code {
            CLOSE_FUTURE => "since is in the future: reload".to_owned(),
            _ => "since is older than the history held: reload".to_owned(),
        },
        error: Some(json!({
            "type": "error",
            "error": kind,
            "message": message,
            "oldest": if code == CLOSE_TOO_OLD { extra.clone() } else { serde_json::Value::Null },
            "last_seq": if code == CLOSE_FUTURE { extra } else { serde_json::Value::Null },
        })),
    }
}
