//! The call journal and recordings.
//!
//! The engine writes one journal row per call, keyed by the engine's own call id, and
//! updates it as the call moves (offered, queued, answered, ended): every write is an
//! idempotent upsert in which a field left empty keeps what an earlier write stored,
//! so a repeated or reordered write never erases anything. Recordings are files under
//! the recordings directory; the store keeps their path, duration and size and links
//! them to the call. Survey answers (CSI, CES, NPS) collected by keypad are kept here
//! too.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::backend::{dispatch, per_backend};
use super::directory::TenantScope;
use super::ids::{RecordingId, TicketId};
use super::{Page, Store, StoreError, page_bounds, text_enum};

per_backend!("sql/journal.rs");

text_enum! {
    /// Which way a call went.
    pub enum CallDirection {
        /// A resident or staff member called the engine.
        Inbound = "inbound",
        /// The engine called out (callback, hand-off, informer, ...).
        Outbound = "outbound",
    }
}

text_enum! {
    /// How a call ended. Busy, no answer, rejected, unreachable and failed are
    /// different outcomes and are recorded as such.
    pub enum Disposition {
        /// Talked to an operator (or the called party answered).
        Answered = "answered",
        /// The caller hung up before being answered.
        Abandoned = "abandoned",
        /// The caller was promised a callback and a job was created.
        CallbackScheduled = "callback-scheduled",
        /// Refused by policy (a staff member's call, overload).
        Rejected = "rejected",
        /// A technical failure (5xx, timeout, media).
        Failed = "failed",
        /// 486 Busy Here / 600 Busy Everywhere.
        Busy = "busy",
        /// Rang out without an answer.
        NoAnswer = "no-answer",
        /// 480 / unreachable subscriber.
        Unreachable = "unreachable",
        /// The engine gave up on the call before it was answered (the ticket it
        /// was about was accepted by somebody else, or closed).
        Cancelled = "cancelled",
    }
}

/// One journal row, as the engine writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The engine's call id.
    pub id: String,
    /// Inbound or outbound.
    pub direction: CallDirection,
    /// Calling number as received (may be anonymous).
    pub from_number: String,
    /// Called number.
    pub to_number: String,
    /// Tenant code, when known.
    pub tenant: Option<String>,
    /// The called number's kind (`tenant`, `citywide`, ...).
    pub number_kind: Option<String>,
    /// When the call was offered to the engine.
    pub offered_at: DateTime<Utc>,
    /// When it joined the operators' queue.
    pub queued_at: Option<DateTime<Utc>>,
    /// When an operator (or the called party) answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Seconds waited before being answered (or abandoning).
    pub wait_seconds: Option<i64>,
    /// Seconds of conversation.
    pub talk_seconds: Option<i64>,
    /// How it ended.
    pub disposition: Option<Disposition>,
    /// The operator's extension.
    pub operator_extension: Option<String>,
    /// The recording.
    pub recording_id: Option<RecordingId>,
    /// The ticket it is attached to.
    pub ticket_id: Option<TicketId>,
    /// The caller's rating (CSI 1..5), when given.
    pub rating: Option<i64>,
}

impl CallRecord {
    /// A new inbound or outbound call offered at `offered_at`.
    pub fn offered(
        id: impl Into<String>,
        direction: CallDirection,
        from_number: impl Into<String>,
        to_number: impl Into<String>,
        offered_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: id.into(),
            direction,
            from_number: from_number.into(),
            to_number: to_number.into(),
            tenant: None,
            number_kind: None,
            offered_at,
            queued_at: None,
            answered_at: None,
            ended_at: None,
            wait_seconds: None,
            talk_seconds: None,
            disposition: None,
            operator_extension: None,
            recording_id: None,
            ticket_id: None,
            rating: None,
        }
    }

    fn validate(&self) -> Result<(), StoreError> {
        if self.id.is_empty() || self.id.len() > 128 {
            return Err(StoreError::invalid("id", "empty or longer than 128 bytes"));
        }
        if self.rating.is_some_and(|r| !(1..=5).contains(&r)) {
            return Err(StoreError::invalid("rating", "must be 1 to 5"));
        }
        Ok(())
    }
}

/// Filter for listing the journal.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallFilter {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only this direction.
    pub direction: Option<CallDirection>,
    /// Only this disposition.
    pub disposition: Option<Disposition>,
    /// Only this operator.
    pub operator: Option<String>,
    /// Only calls attached to this ticket.
    pub ticket_id: Option<TicketId>,
    /// Offered at or after.
    pub from: Option<DateTime<Utc>>,
    /// Offered before.
    pub to: Option<DateTime<Utc>>,
    /// Rows to skip.
    pub offset: Option<i64>,
    /// Page size (1..=500, default 50).
    pub limit: Option<i64>,
}

/// A call recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recording {
    /// Row id.
    pub id: RecordingId,
    /// The engine call id.
    pub call_id: String,
    /// File path (relative to the recordings directory, or absolute).
    pub path: String,
    /// Length in milliseconds.
    pub duration_ms: i64,
    /// File size in bytes.
    pub bytes: i64,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// The tenant of its call, when known.
    pub tenant: Option<String>,
}

text_enum! {
    /// A survey metric.
    pub enum SurveyMetric {
        /// Customer satisfaction, 1..5.
        Csi = "csi",
        /// Customer effort, 1..5.
        Ces = "ces",
        /// Net promoter score, 0..10.
        Nps = "nps",
    }
}

impl Store {
    /// Inserts or updates a journal row by the engine's call id (idempotent; empty
    /// fields keep what was stored).
    pub async fn upsert_call(&self, call: &CallRecord) -> Result<(), StoreError> {
        self.upsert_calls(std::slice::from_ref(call)).await
    }

    /// [`upsert_call`](Self::upsert_call) for many rows in one transaction (the
    /// engine's journal writer batches what queued up while it wrote): all or
    /// nothing.
    pub async fn upsert_calls(&self, calls: &[CallRecord]) -> Result<(), StoreError> {
        for call in calls {
            call.validate()?;
        }
        if calls.is_empty() {
            return Ok(());
        }
        dispatch!(self, upsert_calls(calls, Utc::now()))
    }

    /// A journal row by call id.
    pub async fn get_call(&self, id: &str) -> Result<Option<CallRecord>, StoreError> {
        dispatch!(self, get_call(id))
    }

    /// Journal rows visible in `scope` (calls with no tenant are visible to operators
    /// who see all tenants only), newest first.
    pub async fn calls(
        &self,
        scope: &TenantScope,
        filter: &CallFilter,
    ) -> Result<Page<CallRecord>, StoreError> {
        let (offset, limit) = page_bounds(filter.offset, filter.limit);
        dispatch!(self, calls(scope, filter, offset, limit))
    }

    /// Stores a recording of `call_id` and links it to the call's journal row.
    pub async fn insert_recording(
        &self,
        call_id: &str,
        path: &str,
        duration_ms: i64,
        bytes: i64,
    ) -> Result<RecordingId, StoreError> {
        if duration_ms < 0 || bytes < 0 {
            return Err(StoreError::invalid("duration_ms", "negative length"));
        }
        dispatch!(
            self,
            insert_recording(call_id, path, duration_ms, bytes, Utc::now())
        )
    }

    /// A recording by id.
    pub async fn recording(&self, id: RecordingId) -> Result<Option<Recording>, StoreError> {
        dispatch!(self, recording(id))
    }

    /// Records one survey answer for a ticket and/or call.
    pub async fn record_survey_answer(
        &self,
        ticket: Option<TicketId>,
        call_id: Option<&str>,
        metric: SurveyMetric,
        score: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let range = match metric {
            SurveyMetric::Csi | SurveyMetric::Ces => 1..=5,
            SurveyMetric::Nps => 0..=10,
        };
        if !range.contains(&score) {
            return Err(StoreError::invalid(
                "score",
                format!("{metric} takes {range:?}"),
            ));
        }
        dispatch!(self, insert_survey(ticket, call_id, metric, score, now))
    }
}
