//! `/calls`, `/recordings/{id}`, `/caller` and `/dial-jobs`: what the engine did on the
//! phone. Calls carry phone numbers and recordings carry voices, so every read is
//! written to the access log, and so is every screen-pop lookup.

use std::path::{Component, Path, PathBuf};

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use chrono::Utc;
use serde::Deserialize;
use tower_http::services::ServeFile;

use super::ApiState;
use super::auth::{AuthError, Principal, authenticate, bearer};
use super::error::ApiError;
use super::extract::{PathId, QueryParams};
use crate::phone::PhoneNumber;
use crate::store::dial_jobs::DialJobFilter;
use crate::store::{AccessEntry, CallFilter, CallRecord, CallerInfo, DialJob, Page, RecordingId};

/// Writes reads of personal data to the access log: (tenant, subject, id) each.
pub(crate) async fn log_reads<'a>(
    state: &ApiState,
    who: &Principal,
    purpose: &str,
    reads: impl IntoIterator<Item = (Option<&'a str>, &'a str, String)>,
) -> Result<(), ApiError> {
    let at = Utc::now();
    let entries: Vec<AccessEntry> = reads
        .into_iter()
        .map(|(tenant, subject, subject_id)| AccessEntry {
            at,
            principal: who.extension.clone(),
            tenant: tenant.map(str::to_owned),
            subject: subject.to_owned(),
            subject_id,
            purpose: purpose.to_owned(),
        })
        .collect();
    state.store.log_access(&entries).await?;
    Ok(())
}

/// Whether a record of `tenant` (`None`: not attributed to any) is visible.
fn sees_record(who: &Principal, tenant: Option<&str>) -> bool {
    match tenant {
        Some(t) => who.sees(t),
        None => who.tenants.is_empty(),
    }
}

pub(crate) async fn calls(
    State(state): State<ApiState>,
    who: Principal,
    QueryParams(filter): QueryParams<CallFilter>,
) -> Result<Json<Page<CallRecord>>, ApiError> {
    who.require(filter.tenant.as_deref())?;
    let page = state.store.calls(&who.scope(), &filter).await?;
    log_reads(
        &state,
        &who,
        "GET /calls",
        page.items
            .iter()
            .map(|c| (c.tenant.as_deref(), "call", c.id.clone())),
    )
    .await?;
    Ok(Json(page))
}

pub(crate) async fn call(
    State(state): State<ApiState>,
    who: Principal,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<CallRecord>, ApiError> {
    let call = state
        .store
        .get_call(&id)
        .await?
        .filter(|c| sees_record(&who, c.tenant.as_deref()))
        .ok_or_else(|| ApiError::not_found("call"))?;
    log_reads(
        &state,
        &who,
        "GET /calls/{id}",
        [(call.tenant.as_deref(), "call", id)],
    )
    .await?;
    Ok(Json(call))
}

/// `?token=` for the recording download.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenQuery {
    token: Option<String>,
}

/// A stored recording path, resolved under the recordings directory; `..` is refused.
fn recording_file(dir: &Path, stored: &str) -> Option<PathBuf> {
    let path = Path::new(stored);
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return None;
    }
    Some(if path.is_absolute() {
        path.to_owned()
    } else {
        dir.join(path)
    })
}

pub(crate) async fn recording(
    State(state): State<ApiState>,
    PathId(id): PathId,
    QueryParams(query): QueryParams<TokenQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let token = bearer(&parts)
        .map(str::to_owned)
        .or(query.token)
        .ok_or(AuthError::Missing)?;
    let who = authenticate(&state.store, &token).await?;
    let recording = state
        .store
        .recording(RecordingId(id))
        .await?
        .filter(|r| sees_record(&who, r.tenant.as_deref()))
        .ok_or_else(|| ApiError::not_found("recording"))?;
    let file = recording_file(&state.recordings_dir, &recording.path)
        .filter(|f| f.is_file())
        .ok_or_else(|| ApiError::not_found("recording file"))?;
    log_reads(
        &state,
        &who,
        "GET /recordings/{id}",
        [(recording.tenant.as_deref(), "recording", id.to_string())],
    )
    .await?;
    let request = Request::from_parts(parts, body);
    let mut response = ServeFile::new(&file).try_call(request).await.map_err(|e| {
        tracing::error!(error = %e, file = %file.display(), "cannot serve a recording");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    })?;
    if response.status().is_success() {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    }
    Ok(response.map(Body::new))
}

/// Trims a screen-pop payload (`call.offered`, `call.ringing`, an active call) to
/// what `who` may see, with the rules of `GET /caller`: the caller's address, its
/// open tickets, debtor flag and outages only when the address is of a tenant
/// they serve, and only such other addresses. Returns whether anything was hidden.
pub(crate) fn trim_screen_pop(who: &Principal, payload: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    if who.tenants.is_empty() {
        return false;
    }
    let Some(caller) = payload.get_mut("caller").and_then(Value::as_object_mut) else {
        return false;
    };
    let foreign = |a: &Value| {
        a.get("tenant")
            .and_then(Value::as_str)
            .is_none_or(|t| !who.sees(t))
    };
    let address_hidden = caller
        .get("address")
        .is_some_and(|a| !a.is_null() && foreign(a));
    let mut others_hidden = false;
    if let Some(Value::Array(others)) = caller.get_mut("other_addresses") {
        let before = others.len();
        others.retain(|a| !foreign(a));
        others_hidden = others.len() != before;
    }
    if address_hidden {
        caller.insert("address".into(), Value::Null);
        caller.insert("open_tickets".into(), Value::Array(Vec::new()));
        caller.insert("debtor".into(), Value::Null);
        caller.insert("outages".into(), Value::Array(Vec::new()));
        if payload.get("tenant").is_none_or(Value::is_null) {
            // The tenant's name came from the hidden address.
            if let Some(name) = payload.get_mut("tenant_name") {
                *name = Value::Null;
            }
        }
    }
    address_hidden || others_hidden
}

/// `GET /caller` query.
#[derive(Debug, Deserialize)]
pub(crate) struct CallerQuery {
    phone: String,
    tenant: Option<String>,
    city: Option<String>,
}

pub(crate) async fn caller(
    State(state): State<ApiState>,
    who: Principal,
    QueryParams(query): QueryParams<CallerQuery>,
) -> Result<Json<CallerInfo>, ApiError> {
    who.require(query.tenant.as_deref())?;
    let phone =
        PhoneNumber::parse(&query.phone).map_err(|e| ApiError::invalid("phone", e.to_string()))?;
    // Only the operator's tenants' addresses are read at all: another tenant's
    // address can neither be shown nor decide the tenant, city, tickets or debt.
    let info = state
        .store
        .caller_lookup_in(
            &who.scope(),
            &phone,
            query.tenant.as_deref(),
            query.city.as_deref(),
            Utc::now(),
        )
        .await?;
    let tenant = info.tenant.as_ref().map(|t| t.code.clone());
    // The screen-pop must not fail because the access log could not be written (a
    // busy database): the lookup is served and the miss is logged loudly.
    if let Err(e) = log_reads(
        &state,
        &who,
        "GET /caller",
        [(tenant.as_deref(), "caller", phone.to_string())],
    )
    .await
    {
        tracing::error!(%phone, principal = %who.extension, error = %e.error,
            "personal-data access log not written for a screen-pop");
    }
    Ok(Json(info))
}

pub(crate) async fn dial_jobs(
    State(state): State<ApiState>,
    who: Principal,
    QueryParams(filter): QueryParams<DialJobFilter>,
) -> Result<Json<Page<DialJob>>, ApiError> {
    let page = state.store.dial_jobs(&who.scope(), &filter).await?;
    log_reads(
        &state,
        &who,
        "GET /dial-jobs",
        page.items
            .iter()
            .map(|j| (j.tenant.as_deref(), "dial_job", j.id.to_string())),
    )
    .await?;
    Ok(Json(page))
}
