//! The REST API under `/api/v1`: tickets, the call journal, recordings, contacts,
//! houses, employees, reasons, outages, debtors and dial jobs, as JSON.
//!
//! Owns the HTTP contract of the ticket store: request parsing (a malformed or invalid
//! request is a 4xx `{"error": "...", "field": "..."}` naming the field), tenant
//! scoping (a principal sees only the tenants of its operator entry; an empty list
//! means all; another tenant's record is reported as not found), the personal-data
//! access log (reads of contacts, callers' phones and addresses), and bearer-token
//! authentication ([`auth`]). Each request that writes runs as one store transaction,
//! so a failed request changes nothing.
//!
//! Request bodies are limited to 32 MiB, CSV imports to 256 MiB; a larger one is a
//! JSON 413.
//!
//! Routes (all but `POST /auth/token` need `Authorization: Bearer <token>`; the
//! recording download also takes `?token=` so an `<audio>` element can play it):
//!
//! ```text
//! POST   /auth/token                      {"extension","password"} -> token (429 while failures back off; 4 KiB body at most)
//! DELETE /auth/token                      log out: the token is revoked
//! POST   /auth/token/renew                the token's expiry moves to token_ttl from now
//! GET    /calls/active                    calls in progress, for the console's cards
//! GET    /assignment                      ?tenant&house&reason: the executor chain a ticket would get
//! GET    /tickets                         ?status&open&category&tenant&house_id&executor_id&from&to&number&offset&limit
//! POST   /tickets                         register with automatic assignment
//! POST   /tickets/status                  bulk status change {"ids","status","note"}
//! GET    /tickets/{id}                    the card: hand-off chain (every attempt), history, time in each
//!                                         status, deadline_left_s, comments, calls with recordings and
//!                                         reviews, ratings, supplier tickets
//! POST   /tickets/{id}/status             {"status","note","version"?}
//! POST   /tickets/{id}/comments           {"text","internal"?}
//! POST   /tickets/{id}/supplier-tickets   {"supplier","supplier_number"?,"recheck_at"?}: hand over to a РСО
//! POST   /tickets/{id}/chain/restart      a new hand-off chain for a ticket whose chain ended (supervisors)
//! GET    /chains                          running chains and exhausted ones not yet acted on
//! POST   /chains/{id}/attempts/{seq}/result  {"result": accepted|declined|not-reached}: the operator's record
//! POST   /chains/{id}/acknowledge         a supervisor acted on an exhausted chain
//! GET    /supplier-tickets/due            ?limit: open hand-overs whose re-check time has come
//! GET    /supplier-tickets/{id}
//! PATCH  /supplier-tickets/{id}           {"status"?,"supplier_number"?,"recheck_at"?}
//! GET    /calls                           ?tenant&direction&disposition&operator&ticket_id&from&to&offset&limit
//! GET    /calls/{id}
//! POST   /calls/{id}/tenant               {"tenant"}: a live call's tenant, chosen by the operator
//! POST   /calls/{id}/review               {"score": 1..5, "comment"}: the company rates a call of the line
//! GET    /reviews                         ?tenant&operator&call_id&from&to&offset&limit
//! GET    /monitor                         ?tenant&category&work_type&reason_id&house_id&executor_id&from&to&soon_minutes:
//!                                         open, unassigned, due soon, overdue; by category, work type, executor
//! GET    /analytics                       ?from&to&bucket=day|week|month&tenant&city: tickets by bucket, category and
//!                                         work type; time to accept/complete (median, p90); calls vs Rules 416;
//!                                         CSI/CES; per-executor ratings
//! GET    /analytics/tickets               ?from&to&tenant&city&category&work_type&executor_id&csi&offset&limit: drill-down
//! GET    /export/{file}                   tickets.csv|tickets.xlsx|tickets.pdf|calls.csv|calls.xlsx ?from&to&tenant
//! GET    /tickets/{id}/attachments        the ticket's files; POST one: raw body, Content-Type JPEG/PNG/WebP/PDF,
//!                                         ?name=, at most 10 MiB and 20 per ticket
//! GET    /tickets/{id}/attachments/{file} the file, with its stored type
//! GET    /recordings/{id}                 audio/wav, Range requests
//! GET    /caller                          ?phone&tenant&city: the screen-pop
//! GET    /contacts                        ?tenant&phone&house_id&offset&limit
//! POST   /contacts/import                 ?tenant&skip_bad_rows, body: CSV
//! GET    /tenants
//! GET    /houses                          ?tenant&q&offset&limit
//! POST   /houses                          {"tenant","house_group"?,"address","floors","lifts"} (supervisor)
//! PUT    /houses/{id}                     {"house_group"?,"address","floors","lifts"} (supervisor)
//! GET    /employees                       ?tenant
//! POST   /employees                       {"tenant"|"supplier","name","position","phones","work_types","shifts","absences"} (supervisor)
//! PUT    /employees/{id}                  the same without tenant/supplier, plus "active" (supervisor)
//! GET    /reasons                         ?tenant&q&category
//! POST   /reasons                         {"tenant"?,"code","category","title","work_type","deadline_minutes","operator_text","keywords"} (supervisor)
//! PUT    /reasons/{id}                    the same without tenant/code, plus "active" (supervisor)
//! GET    /outages                         ?active
//! POST   /outages
//! GET    /outages/{id}
//! PUT    /outages/{id}
//! DELETE /outages/{id}
//! POST   /outages/{id}/broadcast          {} or {"urgent": true}: call every contact of its houses
//! GET    /outages/{id}/broadcast          called, answered, busy, no answer, failed, waiting
//! GET    /broadcasts                      broadcasts running or finished in the last 24 hours
//! GET    /debtors                         ?tenant&offset&limit
//! POST   /debtors/import                  ?tenant&skip_bad_rows&mode=upsert|replace, body: CSV
//! GET    /dial-jobs                       ?state&kind&ticket_id&offset&limit
//! POST   /dial-jobs/{id}/answer           {"answer": done|in-progress|cannot, "note"}: a status check's answer
//! GET    /operators                       every operator and their state
//! POST   /operators/{ext}/state           {"state","reason"}: ready, paused, logged-out
//! GET    /board                           supervisors' live board and compliance
//! GET    /cities                          POST {"code","name","time_zone"} (supervisor of all)
//! POST   /tenants                         {"code","name","city"} (supervisor of all)
//! PUT    /tenants/{code}                  {"name"}
//! GET    /tenants/{code}/readiness        the go-live check: numbers, houses, matrix, duty, greeting
//! GET    /house-groups                    ?tenant; PUT {"tenant","code","name"}
//! GET    /suppliers                       PUT {"code","name","city"?,"phones"} (supervisor of all)
//! GET    /tags                            POST {"tenant"?,"code","name"}; DELETE /tags/{id}
//! GET    /responsibility                  ?tenant; PUT one cell {"tenant","house_group","work_type","levels",...}
//! POST   /employees/{id}/absences         {"kind","starts_on","ends_on"}
//! GET    /admin-log                       ?tenant&subject&before&limit
//! GET    /users                           POST {"extension","name","role","tenants","password","sip_password"?}
//! PUT    /users/{ext}                     what changes; DELETE removes (tokens revoked, consoles closed)
//! GET    /onboarding/template.xlsx        the empty questionnaire
//! POST   /onboarding                      ?tenant&dry_run, body: the workbook (XLSX)
//! ```
//!
//! Writes of reference data take a supervisor or a tenant admin of the record's
//! tenant (shared records: a supervisor of every tenant) and are written to the
//! admin log. Tenant viewers reach `GET` of tickets, calls, recordings and tenants
//! only; tenant admins everything but the floor ([`auth::role_allows`]).

pub mod admin;
mod analytics;
mod attachments;
pub mod auth;
pub mod board;
mod chains;
mod directory;
mod error;
mod export;
pub(crate) mod extract;
mod follow_ups;
pub(crate) mod journal;
mod live;
mod monitor;
mod notices;
mod onboarding;
mod operators;
mod readiness;
mod reference;
mod reviews;
mod supplier;
mod ticket_card;
mod tickets;
mod users;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use auth::{AuthError, Principal, Revocations, authenticate};
pub use error::ApiError;

use crate::call::CallHandle;
use crate::config::Config;
use crate::events::EventBus;
use crate::store::Store;

/// Largest request body accepted, but for the imports.
const MAX_BODY: usize = 32 * 1024 * 1024;
/// The body of a login or a token renewal at most: a guesser cannot make the
/// engine read megabytes per try.
const MAX_AUTH_BODY: usize = 4 * 1024;

/// Largest CSV import accepted: a million-row contacts file is about 60 MiB.
const MAX_IMPORT: usize = 256 * 1024 * 1024;

/// What the API handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The ticket store ([`router`] makes it publish into `events`).
    pub store: Store,
    /// The engine's event bus.
    pub events: EventBus,
    /// The configuration: operators and their passwords.
    pub config: Arc<Config>,
    /// Where recordings live; recording paths are resolved against it.
    pub recordings_dir: PathBuf,
    /// Where files attached to tickets are written (`<data dir>/attachments`).
    pub attachments_dir: PathBuf,
    /// How long a console token is valid.
    pub token_ttl: chrono::Duration,
    /// The call core, for operators' states and the board; `None` when the API runs
    /// without an engine (those routes then answer 503).
    pub calls: Option<CallHandle>,
    /// This node's id (`serve --node-id`); `None` when the API runs without a
    /// node of its own (tests of the API alone).
    pub node: Option<String>,
    /// The hand-off chains of this node; `None` when the API runs without an
    /// engine (those routes then answer 503).
    pub chains: Option<crate::dialer::driver::ChainHandle>,
    /// Failed logins per client address.
    pub login_limiter: Arc<auth::LoginLimiter>,
    /// What supervisors' boards have shown (each logged once).
    pub board_shown: Arc<board::ShownOnce>,
    /// Announces revoked accounts to the open websockets.
    pub revocations: auth::Revocations,
    /// Woken when accounts change, so the call core's roster follows at once.
    pub accounts_changed: Arc<tokio::sync::Notify>,
}

impl ApiState {
    /// State over `store` and `events`, with the recordings directory and operators
    /// from `config` and 12-hour tokens.
    pub fn new(store: Store, events: EventBus, config: Arc<Config>) -> Self {
        let recordings_dir = config.recordings_dir();
        let login_limiter = Arc::new(auth::LoginLimiter::new(config.security.console_auth));
        let attachments_dir = config.database.data_dir.join("attachments");
        Self {
            store,
            events,
            config,
            recordings_dir,
            attachments_dir,
            token_ttl: chrono::Duration::hours(12),
            calls: None,
            node: None,
            chains: None,
            login_limiter,
            board_shown: Arc::default(),
            revocations: auth::Revocations::default(),
            accounts_changed: Arc::default(),
        }
    }

    /// This state with the call core's handle.
    pub fn with_calls(mut self, calls: CallHandle) -> Self {
        self.calls = Some(calls);
        self
    }

    /// This state naming this node.
    pub fn with_node(mut self, node: &str) -> Self {
        self.node = Some(node.to_owned());
        self
    }

    /// This state with the dialer's handle.
    pub fn with_chains(mut self, chains: crate::dialer::driver::ChainHandle) -> Self {
        self.chains = Some(chains);
        self
    }
}

/// The `/api/v1` router; nest it at `/api/v1`.
pub fn router(state: ApiState) -> Router {
    // Ticket changes must reach the bus the websocket reads, whatever store was given.
    let state = ApiState {
        store: state.store.clone().with_events(state.events.clone()),
        ..state
    };
    Router::new()
        .route(
            "/auth/token",
            post(auth::issue_token)
                .delete(auth::revoke_token)
                .layer(DefaultBodyLimit::max(MAX_AUTH_BODY)),
        )
        .route(
            "/auth/token/renew",
            post(auth::renew_token).layer(DefaultBodyLimit::max(MAX_AUTH_BODY)),
        )
        .route("/calls/active", get(live::active_calls))
        .route("/assignment", get(live::assignment))
        .route("/tickets", get(tickets::list).post(tickets::create))
        .route("/tickets/status", post(tickets::change_status_bulk))
        .route("/tickets/{id}", get(tickets::get))
        .route("/tickets/{id}/status", post(tickets::change_status))
        .route("/tickets/{id}/comments", post(tickets::comment))
        .route("/tickets/{id}/supplier-tickets", post(supplier::hand_over))
        .route("/tickets/{id}/chain/restart", post(chains::restart))
        .route("/chains", get(chains::open))
        .route("/chains/{id}/acknowledge", post(chains::acknowledge))
        .route(
            "/chains/{id}/attempts/{seq}/result",
            post(chains::record_result),
        )
        .route("/supplier-tickets/due", get(supplier::due))
        .route(
            "/supplier-tickets/{id}",
            get(supplier::get).patch(supplier::update),
        )
        .route("/calls", get(journal::calls))
        .route("/calls/{id}", get(journal::call))
        .route("/calls/{id}/tenant", post(live::set_tenant))
        .route("/calls/{id}/review", post(reviews::review))
        .route("/reviews", get(reviews::list))
        .route("/monitor", get(monitor::monitor))
        .route("/analytics", get(analytics::summary))
        .route("/analytics/tickets", get(analytics::tickets))
        .route("/export/{file}", get(export::export))
        .route(
            "/tickets/{id}/attachments",
            get(attachments::list)
                .post(attachments::upload)
                .layer(DefaultBodyLimit::max(attachments::MAX_FILE)),
        )
        .route(
            "/tickets/{id}/attachments/{file}",
            get(attachments::download),
        )
        .route("/recordings/{id}", get(journal::recording))
        .route("/caller", get(journal::caller))
        .route("/contacts", get(directory::contacts))
        .route(
            "/contacts/import",
            post(directory::import_contacts).layer(DefaultBodyLimit::max(MAX_IMPORT)),
        )
        .route(
            "/tenants",
            get(directory::tenants).post(admin::create_tenant),
        )
        .route(
            "/houses",
            get(directory::houses).post(reference::create_house),
        )
        .route("/houses/{id}", axum::routing::put(reference::update_house))
        .route(
            "/employees",
            get(directory::employees).post(reference::create_employee),
        )
        .route(
            "/employees/{id}",
            axum::routing::put(reference::update_employee),
        )
        .route(
            "/reasons",
            get(directory::reasons).post(reference::create_reason),
        )
        .route(
            "/reasons/{id}",
            axum::routing::put(reference::update_reason),
        )
        .route(
            "/outages",
            get(notices::outages).post(notices::create_outage),
        )
        .route(
            "/outages/{id}",
            get(notices::outage)
                .put(notices::update_outage)
                .delete(notices::delete_outage),
        )
        .route("/debtors", get(notices::debtors))
        .route(
            "/debtors/import",
            post(notices::import_debtors).layer(DefaultBodyLimit::max(MAX_IMPORT)),
        )
        .route("/dial-jobs", get(journal::dial_jobs))
        .route("/dial-jobs/{id}/answer", post(follow_ups::answer))
        .route(
            "/outages/{id}/broadcast",
            get(follow_ups::broadcast).post(follow_ups::start_broadcast),
        )
        .route("/broadcasts", get(follow_ups::broadcasts))
        .route("/operators", get(operators::list))
        .route("/operators/{extension}/state", post(operators::set_state))
        .route("/board", get(board::board))
        .route("/cities", get(admin::cities).post(admin::create_city))
        .route("/tenants/{code}", axum::routing::put(admin::update_tenant))
        .route("/tenants/{code}/readiness", get(admin::readiness))
        .route(
            "/house-groups",
            get(admin::house_groups).put(admin::put_house_group),
        )
        .route("/suppliers", get(admin::suppliers).put(admin::put_supplier))
        .route("/tags", get(admin::tags).post(admin::create_tag))
        .route("/tags/{id}", axum::routing::delete(admin::delete_tag))
        .route("/responsibility", get(admin::matrix).put(admin::put_cell))
        .route("/employees/{id}/absences", post(admin::add_absence))
        .route("/admin-log", get(admin::admin_log))
        .route("/users", get(users::list).post(users::create))
        .route(
            "/users/{extension}",
            axum::routing::put(users::update).delete(users::remove),
        )
        .route("/onboarding/template.xlsx", get(onboarding::template))
        .route(
            "/onboarding",
            post(onboarding::import).layer(DefaultBodyLimit::max(MAX_IMPORT)),
        )
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}
