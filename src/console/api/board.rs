//! `GET /board`: the supervisors' live board in one answer: calls waiting for an
//! operator and for how long, operators by state, dial jobs in progress, the SIP
//! trunks (up or down since when, registered or not), the engine's nodes (alive,
//! or dead and taken over by whom), and the compliance figures of the day
//! (answered within 30 s and 5 min, callbacks within 10 min) for one city, in
//! total and by local hour. Operators get 403.
//!
//! Waiting callers and dial targets are personal data: each one is written to the
//! access log the first time a supervisor's board shows it ([`ShownOnce`]), not on
//! every refresh of the board.
//!
//! `?city=` picks the city (default: the first city, by code, of the tenants the
//! supervisor serves); `?date=YYYY-MM-DD` another local day than today.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::ApiState;
use super::auth::Principal;
use super::error::ApiError;
use super::extract::QueryParams;
use super::journal::log_reads;
use super::operators::{core, core_error, sees_operator};
use crate::call::OperatorView;
use crate::call::handle::WaitingCall;
use crate::call::trunks::TrunkView;
use crate::config::Role;
use crate::store::compliance::ComplianceDay;
use crate::store::dial_jobs::DialJobFilter;
use crate::store::nodes::NodeStatus;
use crate::store::{DialJob, DialJobState};

/// How many jobs in progress the board lists at most (per state).
const MAX_JOBS: i64 = 200;

/// Which (supervisor, record) pairs a board has already shown, so each is logged
/// once. Bounded: when full it starts over (a record is then logged again).
#[derive(Debug, Default)]
pub struct ShownOnce(std::sync::Mutex<std::collections::HashSet<(String, &'static str, String)>>);

impl ShownOnce {
    const MAX: usize = 50_000;

    /// Whether `who` is seeing `subject` `id` for the first time (and remembers it).
    fn first(&self, who: &str, subject: &'static str, id: &str) -> bool {
        // Each update is one insert: a poisoned set is still consistent.
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= Self::MAX {
            seen.clear();
        }
        seen.insert((who.to_owned(), subject, id.to_owned()))
    }
}

/// `GET /board` query.
#[derive(Debug, Deserialize)]
pub(crate) struct BoardQuery {
    city: Option<String>,
    date: Option<NaiveDate>,
}

/// A city the board can show.
#[derive(Debug, Serialize)]
pub(crate) struct BoardCity {
    code: String,
    name: String,
    time_zone: String,
}

/// A node on the board.
#[derive(Debug, Serialize)]
pub(crate) struct BoardNode {
    #[serde(flatten)]
    status: NodeStatus,
    /// The node answering this request.
    this: bool,
}

/// `GET /board` answer.
#[derive(Debug, Serialize)]
pub(crate) struct BoardView {
    /// When it was taken.
    now: DateTime<Utc>,
    /// Calls waiting for an operator, longest first.
    waiting: Vec<WaitingCall>,
    /// Calls in progress of any kind (all tenants).
    calls_active: usize,
    /// Operators the supervisor oversees.
    operators: Vec<OperatorView>,
    /// How many of them are in each state.
    operator_counts: BTreeMap<&'static str, usize>,
    /// Dial jobs pending or being dialled, soonest first.
    dial_jobs: Vec<DialJob>,
    /// Every SIP trunk, in configuration order: health (`unknown`, `up`, `down`)
    /// and since when, registration. Trunks carry every tenant's calls, so every
    /// supervisor sees them all.
    trunks: Vec<TrunkView>,
    /// The engine's nodes sharing this store (one, on SQLite): alive, or dead and
    /// taken over by whom, heard of within the last day.
    nodes: Vec<BoardNode>,
    /// The cities the supervisor can pick.
    cities: Vec<BoardCity>,
    /// The day's figures for the city shown (none when no city is visible).
    compliance: Option<ComplianceDay>,
}

pub(crate) async fn board(
    State(state): State<ApiState>,
    who: Principal,
    QueryParams(query): QueryParams<BoardQuery>,
) -> Result<Json<BoardView>, ApiError> {
    if who.role != Role::Supervisor {
        return Err(ApiError::forbidden(None, "the board is for supervisors"));
    }
    let live = core(&state)?.board().await.map_err(core_error)?;
    let scope = who.scope();

    let mut waiting = live.waiting;
    waiting.retain(|w| match &w.tenant {
        Some(t) => who.sees(t),
        None => true,
    });
    waiting.sort_by_key(|w| std::cmp::Reverse(w.waited_s));
    let mut operators = live.operators;
    operators.retain(|o| sees_operator(&who, o));
    let mut operator_counts = BTreeMap::new();
    for o in &operators {
        *operator_counts.entry(o.state.as_str()).or_insert(0) += 1;
    }

    let mut dial_jobs = Vec::new();
    for job_state in [DialJobState::Claimed, DialJobState::Pending] {
        let filter = DialJobFilter {
            state: Some(job_state),
            limit: Some(MAX_JOBS),
            ..DialJobFilter::default()
        };
        dial_jobs.extend(state.store.dial_jobs(&scope, &filter).await?.items);
    }
    dial_jobs.sort_by_key(|j| (j.state != DialJobState::Claimed, j.due_at, j.id.0));

    let tenants = state.store.tenants(&scope).await?;
    let mut cities: Vec<BoardCity> = Vec::new();
    for t in &tenants {
        if !cities.iter().any(|c| c.code == t.city.code) {
            cities.push(BoardCity {
                code: t.city.code.clone(),
                name: t.city.name.clone(),
                time_zone: t.city.time_zone.name().to_owned(),
            });
        }
    }
    cities.sort_by(|a, b| a.code.cmp(&b.code));
    let city = match &query.city {
        Some(c) if cities.iter().any(|x| &x.code == c) => Some(c.clone()),
        Some(c) => {
            return Err(ApiError::invalid(
                "city",
                format!("you serve no tenant in city `{c}`"),
            ));
        }
        None => cities.first().map(|c| c.code.clone()),
    };
    let compliance = match city {
        Some(city) => Some(
            state
                .store
                .compliance_day(&scope, &city, query.date, Utc::now())
                .await?,
        ),
        None => None,
    };

    let nodes = state
        .store
        .node_statuses(Utc::now())
        .await?
        .into_iter()
        .map(|status| BoardNode {
            this: state.node.as_deref() == Some(status.id.as_str()),
            status,
        })
        .collect();

    // Waiting callers' numbers and dial targets are personal data: logged the
    // first time this supervisor's board shows each.
    let shown = &state.board_shown;
    log_reads(
        &state,
        &who,
        "GET /board",
        waiting
            .iter()
            .filter(|w| shown.first(&who.extension, "call", &w.call))
            .map(|w| (w.tenant.as_deref(), "call", w.call.clone()))
            .chain(
                dial_jobs
                    .iter()
                    .filter(|j| shown.first(&who.extension, "dial_job", &j.id.to_string()))
                    .map(|j| (j.tenant.as_deref(), "dial_job", j.id.to_string())),
            ),
    )
    .await?;
    Ok(Json(BoardView {
        now: Utc::now(),
        waiting,
        calls_active: live.calls_active,
        operators,
        operator_counts,
        dial_jobs,
        trunks: live.trunks,
        nodes,
        cities,
        compliance,
    }))
}
