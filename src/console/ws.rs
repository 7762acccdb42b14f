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
//! - An operator or supervisor receives the events of their tenants (all, when
//!   their list is empty) and every event without a tenant.
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
use super::api::{ApiError, extract::QueryParams};
use crate::events::{Event, EventBus, ReplayError};
use crate::store::Store;

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
}

/// `GET /ws` query.
#[derive(Debug, Deserialize)]
pub(crate) struct WsQuery {
    token: Option<String>,
    since: Option<u64>,
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
    // Small buffers: a client sends only pongs, and every frame is flushed as it is
    // sent, so tungstenite's 128 KiB defaults would only cost memory per client.
    upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| serve(socket, state, who, token, since))
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

fn visible(who: &Principal, event: &Event) -> bool {
    event.tenant.as_deref().is_none_or(|t| who.sees(t))
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

    async fn send_event(&mut self, event: &Event, position: u64) -> Result<(), End> {
        match self.send(frame(event)).await {
            Ok(()) => {
                self.stats.events_sent_total.fetch_add(1, Ordering::Relaxed);
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
) {
    let _connected = Connected::new(state.stats.clone());
    let mut client = Client {
        socket,
        settings: state.settings,
        stats: state.stats.clone(),
    };
    let end = stream(&mut client, &state, &who, &token, since).await;
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
            tracing::debug!(extension = %who.extension, code, %reason, "closing a websocket");
            client.close(code, reason, error).await;
        }
    }
}

async fn stream(
    client: &mut Client,
    state: &WsState,
    who: &Principal,
    token: &str,
    since: Option<u64>,
) -> End {
    // Without `since` the stream starts now; subscribing from the last seq (rather
    // than from "now") makes that start exact.
    let start = since.unwrap_or_else(|| state.events.last_seq());
    let subscription = match state.events.subscribe(Some(start)) {
        Ok(s) => s,
        Err(e) => return replay_refused(e),
    };
    let mut live = subscription.live;
    let mut position = start;
    let hello = json!({
        "type": "hello",
        "position": start,
        "last_seq": state.events.last_seq(),
        "replay": subscription.backlog.len(),
        "extension": who.extension,
        "role": who.role,
        "tenants": who.tenants,
        "heartbeat_s": client.settings.ping_interval.as_secs(),
    });
    if client.send_json(&hello).await.is_err() {
        return End::Gone;
    }
    for event in &subscription.backlog {
        if visible(who, event) {
            if let Err(end) = client.send_event(event, position).await {
                return end;
            }
        }
        position = event.seq;
    }
    drop(subscription.backlog);

    let period = client.settings.ping_interval;
    let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut awaiting_pong = false;
    let mut next_auth = Instant::now() + client.settings.auth_recheck;
    let events = state.events.clone();
    let closing = events.closed();
    tokio::pin!(closing);
    loop {
        tokio::select! {
            () = &mut closing => {
                // What was published before the close still goes out.
                while let Ok(event) = live.try_recv() {
                    if event.seq > position && visible(who, &event) {
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
                    if visible(who, &event) {
                        if let Err(end) = client.send_event(&event, position).await {
                            return end;
                        }
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
                        return End::Close {
                            code: CLOSE_UNAUTHORIZED,
                            reason: "token expired or revoked: log in again".to_owned(),
                            error: Some(json!({
                                "type": "error",
                                "error": "unauthorized",
                                "message": "your token expired or was revoked; log in again",
                            })),
                        };
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
