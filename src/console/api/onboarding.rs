//! `/onboarding`: the questionnaire. `GET /onboarding/template.xlsx` downloads the
//! empty workbook; `POST /onboarding?tenant=CODE&dry_run=true` with the workbook as
//! the body (XLSX) answers what would be created, changed and left alone, and every
//! bad cell as `sheet!A12: message`; without `dry_run` it applies all or nothing
//! (422 with the same report when any cell is at fault). Takes a supervisor or a
//! tenant admin of the tenant; a tenant not yet in the store takes a supervisor of
//! every tenant (it creates the company).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ApiState;
use super::admin::check_admin;
use super::auth::Principal;
use super::error::ApiError;
use super::extract::{CsvBody, QueryParams};
use crate::store::onboarding::{Workbook, template as workbook_template};

/// `POST /onboarding` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OnboardingQuery {
    tenant: String,
    #[serde(default)]
    dry_run: bool,
}

pub(crate) async fn template(_who: Principal) -> Result<Response, ApiError> {
    let bytes = tokio::task::spawn_blocking(workbook_template)
        .await
        .map_err(|e| ApiError::from(crate::store::StoreError::Background(e)))?
        .map_err(|e| {
            tracing::error!(error = %e, "writing the onboarding template");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        })?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"onboarding-template.xlsx\"",
            ),
        ],
        bytes,
    )
        .into_response())
}

pub(crate) async fn import(
    State(state): State<ApiState>,
    who: Principal,
    QueryParams(query): QueryParams<OnboardingQuery>,
    body: CsvBody,
) -> Result<Response, ApiError> {
    let tenant = query.tenant.trim().to_owned();
    let exists = state.store.tenant(&tenant).await?.is_some();
    check_admin(&who, if exists { Some(tenant.as_str()) } else { None })?;
    let body = body.read().await?;
    let book = tokio::task::spawn_blocking(move || Workbook::from_xlsx(&body))
        .await
        .map_err(|e| ApiError::from(crate::store::StoreError::Background(e)))?
        .map_err(|e| ApiError::invalid("file", e.to_string()))?;
    let report = state
        .store
        .acting_as(&who.extension)
        .onboard(&tenant, book, query.dry_run, |_| {})
        .await
        .map_err(ApiError::input)?;
    let status = if report.faults.is_empty() || report.dry_run {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(report)).into_response())
}
