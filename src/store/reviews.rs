//! Reviews of the dispatch line's calls by the management companies: a company's
//! staff (tenant viewers and admins) or a supervisor rate one call 1–5 with a
//! comment, judging how the dispatch centre's operator handled it. One review per
//! call and reviewer; reviewing again replaces it. Supervisors read them per
//! operator.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::backend::{dispatch, per_backend};
use super::directory::TenantScope;
use super::{Page, Store, StoreError, page_bounds};

per_backend!("sql/reviews.rs");

/// One review of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallReview {
    /// The engine's call id.
    pub call_id: String,
    /// The call's tenant.
    pub tenant: Option<String>,
    /// Who reviewed it (console login).
    pub reviewer: String,
    /// 1..5.
    pub score: i64,
    /// What they said.
    pub comment: String,
    /// When (last changed).
    pub created_at: DateTime<Utc>,
    /// The operator who took the call.
    pub operator: Option<String>,
    /// When the call was offered.
    pub offered_at: Option<DateTime<Utc>>,
    /// The ticket the call is attached to.
    pub ticket_id: Option<i64>,
}

/// Filter for [`Store::call_reviews`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReviewFilter {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only calls taken by this operator.
    pub operator: Option<String>,
    /// Only this call.
    pub call_id: Option<String>,
    /// Only these calls (none given: any).
    #[serde(skip)]
    pub calls: Vec<String>,
    /// Reviewed at or after.
    pub from: Option<DateTime<Utc>>,
    /// Reviewed before.
    pub to: Option<DateTime<Utc>>,
    /// Rows to skip.
    pub offset: Option<i64>,
    /// Page size (1..=500, default 50).
    pub limit: Option<i64>,
}

impl Store {
    /// Writes `reviewer`'s review of a call (replacing their earlier one).
    pub async fn review_call(
        &self,
        call_id: &str,
        reviewer: &str,
        score: i64,
        comment: &str,
        now: DateTime<Utc>,
    ) -> Result<CallReview, StoreError> {
        if !(1..=5).contains(&score) {
            return Err(StoreError::invalid("score", "must be 1 to 5"));
        }
        let comment = comment.trim();
        if comment.chars().count() > 2000 {
            return Err(StoreError::invalid(
                "comment",
                "longer than 2000 characters",
            ));
        }
        dispatch!(self, upsert(call_id, reviewer, score, comment, now))?;
        let filter = ReviewFilter {
            call_id: Some(call_id.to_owned()),
            ..ReviewFilter::default()
        };
        let page = self.call_reviews(&TenantScope::All, &filter).await?;
        page.items
            .into_iter()
            .find(|r| r.reviewer == reviewer)
            .ok_or_else(|| StoreError::not_found("call", call_id))
    }

    /// Reviews visible in `scope`, newest first.
    pub async fn call_reviews(
        &self,
        scope: &TenantScope,
        filter: &ReviewFilter,
    ) -> Result<Page<CallReview>, StoreError> {
        let (offset, limit) = page_bounds(filter.offset, filter.limit);
        dispatch!(self, list(scope, filter, offset, limit))
    }
}
