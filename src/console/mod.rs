//! The HTTP surface: health and metrics, the REST API, the websocket event stream and
//! the operators' console page, on one listener.
//!
//! ```text
//! GET /             the console page (static, built into the binary; see `page`)
//! GET /healthz      200 ok
//! GET /metrics      Prometheus text
//! GET /ws           the event stream (see `ws`)
//! /api/v1/...       the REST API (see `api`)
//! ```

pub mod api;
pub mod health;
pub mod listener;
pub mod page;
pub mod report;
pub mod ws;

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::call::driver::CallStats;
use crate::events::EventBus;
use crate::sip::transport::driver::TransportStats;
use ws::{WsSettings, WsState, WsStats};

/// What the HTTP handlers of this module need.
#[derive(Clone)]
pub struct ConsoleState {
    /// The event bus.
    pub events: EventBus,
    /// Call counters.
    pub calls: Arc<CallStats>,
    /// SIP transport counters.
    pub sip: Arc<TransportStats>,
    /// Timing of the websocket stream.
    pub ws: WsSettings,
    /// Websocket counters.
    pub ws_stats: Arc<WsStats>,
    /// The hand-off chains' figures, when the dialer runs.
    pub chains: Option<Arc<crate::dialer::runner::ChainStats>>,
    /// What `/healthz` and `/readyz` check (without it they always say ok).
    pub health: Option<health::Health>,
    /// The bearer token `/metrics` asks for (`[security] metrics_token`); `None`:
    /// open.
    pub metrics_token: Option<String>,
}

impl ConsoleState {
    /// State over the engine's bus and counters, with the default websocket timing.
    pub fn new(events: EventBus, calls: Arc<CallStats>, sip: Arc<TransportStats>) -> Self {
        Self {
            events,
            calls,
            sip,
            ws: WsSettings::default(),
            ws_stats: Arc::new(WsStats::default()),
            chains: None,
            health: None,
            metrics_token: None,
        }
    }

    /// This state with `/metrics` behind a bearer token (empty: open).
    pub fn with_metrics_token(mut self, token: &str) -> Self {
        self.metrics_token = (!token.is_empty()).then(|| token.to_owned());
        self
    }

    /// This state with the parts `/healthz` and `/readyz` check.
    pub fn with_health(mut self, health: health::Health) -> Self {
        self.health = Some(health);
        self
    }

    /// This state with the hand-off chains' figures.
    pub fn with_chains(mut self, chains: Arc<crate::dialer::runner::ChainStats>) -> Self {
        self.chains = Some(chains);
        self
    }
}

/// The engine's HTTP routes: the console page, health, metrics, the websocket and
/// the REST API.
pub fn router(state: ConsoleState, api: api::ApiState) -> Router {
    let ws = WsState {
        store: api.store.clone(),
        events: state.events.clone(),
        settings: state.ws,
        stats: state.ws_stats.clone(),
        access: ws::AccessLogger::start(api.store.clone()),
        revocations: api.revocations.clone(),
    };
    let health = state.health.clone();
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(health)
        .route("/metrics", get(metrics))
        .with_state(state)
        .route("/ws", get(ws::upgrade).with_state(ws))
        .merge(page::router())
        .nest("/api/v1", api::router(api))
}

async fn metrics(
    State(state): State<ConsoleState>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    if let Some(token) = &state.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let same = given.is_some_and(|g| {
            g.len() == token.len()
                && g.bytes()
                    .zip(token.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        });
        if !same {
            return (
                axum::http::StatusCode::UNAUTHORIZED,
                "metrics need Authorization: Bearer <[security] metrics_token>\n",
            )
                .into_response();
        }
    }
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP dispatchline_{name} {help}\n# TYPE dispatchline_{name} {kind}\ndispatchline_{name} {value}"
        );
    };
    let c = &state.calls;
    metric(
        "calls_active",
        "gauge",
        "Calls in progress.",
        c.active.load(Ordering::Relaxed),
    );
    metric(
        "calls_waiting",
        "gauge",
        "Calls in the queue waiting for an operator.",
        c.waiting.load(Ordering::Relaxed),
    );
    metric(
        "calls_offered_total",
        "counter",
        "Calls offered since start.",
        c.offered.load(Ordering::Relaxed),
    );
    metric(
        "calls_answered_total",
        "counter",
        "Calls answered since start.",
        c.answered.load(Ordering::Relaxed),
    );
    metric(
        "calls_ended_total",
        "counter",
        "Calls ended since start.",
        c.ended.load(Ordering::Relaxed),
    );
    metric(
        "calls_refused_overload_total",
        "counter",
        "New calls refused with 503 by admission control.",
        c.refused_overload.load(Ordering::Relaxed),
    );
    metric(
        "calls_refused_source_total",
        "counter",
        "INVITEs refused with 403: from neither a trunk, [sip] inbound_from nor a registered operator.",
        c.refused_source.load(Ordering::Relaxed),
    );
    metric(
        "calls_rejected_unjournaled_total",
        "counter",
        "Rejected INVITEs given no journal row (beyond the per-second budget of rejection rows).",
        c.rejected_unjournaled.load(Ordering::Relaxed),
    );
    metric(
        "store_spool_bytes",
        "gauge",
        "Bytes of store work in the write-ahead spool (waiting for the database).",
        c.spool_bytes.load(Ordering::Relaxed),
    );
    metric(
        "store_spool_full_total",
        "counter",
        "Store work the full write-ahead spool could not take (kept in memory only).",
        c.spool_full.load(Ordering::Relaxed),
    );
    let g = c.screening.lock().map(|g| *g).unwrap_or_default();
    metric(
        "sip_auth_failures_total",
        "counter",
        "SIP digest failures: wrong passwords, unknown users, tries made during back-off, INVITEs from strangers.",
        g.auth_failures,
    );
    metric(
        "sip_bans_total",
        "counter",
        "SIP sources banned for failed authentication since start.",
        g.bans,
    );
    metric(
        "sip_banned_sources",
        "gauge",
        "SIP sources banned now.",
        g.banned_now,
    );
    metric(
        "sip_dropped_banned_total",
        "counter",
        "SIP messages dropped unanswered because their source is banned.",
        g.dropped_banned,
    );
    metric(
        "sip_refused_stateless_total",
        "counter",
        "INVITEs from addresses that may not call in, answered 403 statelessly.",
        g.refused_stateless,
    );
    metric(
        "sip_dropped_options_total",
        "counter",
        "OPTIONS from addresses that are neither trunks nor registered softphones, dropped.",
        g.dropped_options,
    );
    metric(
        "callbacks_refused_total",
        "counter",
        "Callbacks refused: outside the dial plan, one already pending, or over a rate limit.",
        g.callbacks_refused,
    );
    if let Some(h) = &state.chains {
        metric(
            "chains_running",
            "gauge",
            "Hand-off chains this node runs now.",
            h.running.load(Ordering::Relaxed),
        );
        metric(
            "chain_attempts_total",
            "counter",
            "Calls of hand-off chains written and placed since start.",
            h.placed.load(Ordering::Relaxed),
        );
        metric(
            "chains_accepted_total",
            "counter",
            "Hand-off chains that ended with the ticket accepted, since start.",
            h.accepted.load(Ordering::Relaxed),
        );
        metric(
            "chains_exhausted_total",
            "counter",
            "Hand-off chains that tried everybody without an acceptance, since start.",
            h.exhausted.load(Ordering::Relaxed),
        );
        for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
            metric(
                &format!("chain_step_lateness_{name}_ms"),
                "gauge",
                "How late chain steps were placed after they became due (recent steps).",
                h.lateness(q).map_or(0, |d| d.as_millis() as u64),
            );
        }
    }
    let s = &state.sip;
    metric(
        "sip_received_total",
        "counter",
        "SIP messages received.",
        s.received.load(Ordering::Relaxed),
    );
    metric(
        "sip_edge_dropped_total",
        "counter",
        "Requests from untrusted sources dropped at the transport's edge over their per-source or total rate.",
        s.edge_dropped.load(Ordering::Relaxed),
    );
    metric(
        "sip_sent_total",
        "counter",
        "SIP messages sent.",
        s.sent.load(Ordering::Relaxed),
    );
    metric(
        "sip_malformed_total",
        "counter",
        "SIP messages that failed to parse.",
        s.malformed.load(Ordering::Relaxed),
    );
    metric(
        "sip_udp_send_drops_total",
        "counter",
        "UDP sends dropped on a full socket buffer.",
        s.send_drops.load(Ordering::Relaxed),
    );
    metric(
        "sip_shed_total",
        "counter",
        "New INVITEs refused at the edge because the core was behind.",
        s.shed.load(Ordering::Relaxed),
    );
    metric(
        "sip_tcp_connections",
        "gauge",
        "Open SIP TCP connections.",
        s.tcp_connections.load(Ordering::Relaxed),
    );
    metric(
        "events_last_seq",
        "counter",
        "Sequence number of the last published event.",
        state.events.last_seq(),
    );
    if let Some(cluster) = state.events.cluster_stats() {
        metric(
            "events_cluster_written_total",
            "counter",
            "Events this node wrote to the cluster's event log.",
            cluster.written,
        );
        metric(
            "events_cluster_held",
            "gauge",
            "Events published on this node and not yet written to the cluster's log.",
            cluster.queued.saturating_sub(cluster.written),
        );
        metric(
            "events_cluster_dropped_total",
            "counter",
            "Events dropped because the writer's queue was full (the database was unreachable for long).",
            cluster.dropped,
        );
    }
    let w = &state.ws_stats;
    metric(
        "ws_clients",
        "gauge",
        "Websocket clients connected.",
        w.clients.load(Ordering::Relaxed),
    );
    metric(
        "ws_connections_total",
        "counter",
        "Websocket connections accepted since start.",
        w.connected_total.load(Ordering::Relaxed),
    );
    metric(
        "ws_dropped_slow_total",
        "counter",
        "Websocket clients cut off for not keeping up.",
        w.dropped_slow_total.load(Ordering::Relaxed),
    );
    metric(
        "ws_dropped_heartbeat_total",
        "counter",
        "Websocket clients closed for not answering pings.",
        w.dropped_heartbeat_total.load(Ordering::Relaxed),
    );
    metric(
        "ws_events_sent_total",
        "counter",
        "Events sent over websockets, all clients together.",
        w.events_sent_total.load(Ordering::Relaxed),
    );
    metric(
        "ws_access_log_dropped_total",
        "counter",
        "Screen-pop deliveries not written to the access log (queue full).",
        w.access_log_dropped_total.load(Ordering::Relaxed),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
