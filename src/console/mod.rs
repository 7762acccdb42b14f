//! The HTTP surface: health and metrics, the REST API, the websocket event stream and
//! the operators' console page, on one listener.

pub mod api;

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

/// What the HTTP handlers of this module need.
#[derive(Clone)]
pub struct ConsoleState {
    /// The event bus.
    pub events: EventBus,
    /// Call counters.
    pub calls: Arc<CallStats>,
    /// SIP transport counters.
    pub sip: Arc<TransportStats>,
}

/// The engine's HTTP routes.
pub fn router(state: ConsoleState, api: api::ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .with_state(state)
        .nest("/api/v1", api::router(api))
}

async fn metrics(State(state): State<ConsoleState>) -> impl IntoResponse {
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
    let s = &state.sip;
    metric(
        "sip_received_total",
        "counter",
        "SIP messages received.",
        s.received.load(Ordering::Relaxed),
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
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
