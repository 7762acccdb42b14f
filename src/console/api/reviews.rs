//! `/calls/{id}/review` and `/reviews`: a management company rates a call of the
//! dispatch line 1–5 with a comment (tenant viewers, tenant admins and supervisors
//! of the call's tenant; operators do not rate their own floor), and supervisors and
//! the company read the reviews, per operator.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use serde::Deserialize;

use super::ApiState;
use super::auth::Principal;
use super::error::ApiError;
use super::extract::{JsonBody, QueryParams};
use crate::config::Role;
use crate::store::Page;
use crate::store::reviews::{CallReview, ReviewFilter};

/// `POST /calls/{id}/review` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviewBody {
    score: i64,
    #[serde(default)]
    comment: String,
}

pub(crate) async fn review(
    State(state): State<ApiState>,
    who: Principal,
    axum::extract::Path(id): axum::extract::Path<String>,
    JsonBody(body): JsonBody<ReviewBody>,
) -> Result<(StatusCode, Json<CallReview>), ApiError> {
    if who.role == Role::Operator {
        return Err(ApiError::forbidden(
            None,
            "operators do not review calls".to_owned(),
        ));
    }
    let call = state
        .store
        .get_call(&id)
        .await?
        .filter(|c| match c.tenant.as_deref() {
            Some(t) => who.sees(t),
            None => who.tenants.is_empty(),
        })
        .ok_or_else(|| ApiError::not_found("call"))?;
    let review = state
        .store
        .review_call(
            &call.id,
            &who.extension,
            body.score,
            &body.comment,
            Utc::now(),
        )
        .await
        .map_err(ApiError::input)?;
    Ok((StatusCode::CREATED, Json(review)))
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    who: Principal,
    QueryParams(filter): QueryParams<ReviewFilter>,
) -> Result<Json<Page<CallReview>>, ApiError> {
    if who.role == Role::Operator {
        return Err(ApiError::forbidden(
            None,
            "reviews are for supervisors and the companies".to_owned(),
        ));
    }
    who.require(filter.tenant.as_deref())?;
    Ok(Json(state.store.call_reviews(&who.scope(), &filter).await?))
}
