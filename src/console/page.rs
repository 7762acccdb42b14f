//! `GET /`: the operators' console, a static page built into the binary.
//!
//! Plain HTML, CSS and JavaScript from `src/console/static/`, embedded with
//! `include_str!`: no build step, nothing fetched from the network at run time (the
//! content security policy forbids it, so a stray external reference fails loudly in
//! the browser tests). The page talks to `/api/v1` and `/ws` on the same origin.

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName};
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX: &str = include_str!("static/index.html");
const CSS: &str = include_str!("static/console.css");
const JS: &str = include_str!("static/console.js");
const SETTINGS_JS: &str = include_str!("static/settings.js");
const CHAINS_JS: &str = include_str!("static/chains.js");
const FOLLOW_UPS_JS: &str = include_str!("static/followups.js");
const TICKET_JS: &str = include_str!("static/ticket.js");
const MONITOR_JS: &str = include_str!("static/monitor.js");
const ANALYTICS_JS: &str = include_str!("static/analytics.js");
const JOURNAL_CSS: &str = include_str!("static/journal.css");
const ICON: &str = include_str!("static/favicon.svg");

/// Only this origin: scripts, styles, images, audio, fetches and the websocket.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'; form-action 'self'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            // Small and served locally: always revalidate, so an upgrade shows at once.
            (CACHE_CONTROL, "no-cache"),
            (HeaderName::from_static("content-security-policy"), CSP),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
            // Recording URLs carry the token; never send them elsewhere.
            (HeaderName::from_static("referrer-policy"), "no-referrer"),
        ],
        body,
    )
}

/// The page's routes.
pub fn router() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/static/console.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/static/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", JS) }),
        )
        .route(
            "/static/settings.js",
            get(|| async { asset("text/javascript; charset=utf-8", SETTINGS_JS) }),
        )
        .route(
            "/static/chains.js",
            get(|| async { asset("text/javascript; charset=utf-8", CHAINS_JS) }),
        )
        .route(
            "/static/followups.js",
            get(|| async { asset("text/javascript; charset=utf-8", FOLLOW_UPS_JS) }),
        )
        .route(
            "/static/ticket.js",
            get(|| async { asset("text/javascript; charset=utf-8", TICKET_JS) }),
        )
        .route(
            "/static/monitor.js",
            get(|| async { asset("text/javascript; charset=utf-8", MONITOR_JS) }),
        )
        .route(
            "/static/analytics.js",
            get(|| async { asset("text/javascript; charset=utf-8", ANALYTICS_JS) }),
        )
        .route(
            "/static/journal.css",
            get(|| async { asset("text/css; charset=utf-8", JOURNAL_CSS) }),
        )
        .route(
            "/favicon.svg",
            get(|| async { asset("image/svg+xml", ICON) }),
        )
}
