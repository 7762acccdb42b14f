//! Crash recovery of the journal: which node owns each unfinished call, and what
//! a node that crashed does with its own when it starts again.
//!
//! The writer marks the rows it writes with its node's stable id
//! ([`Store::own_calls`]). On start, [`Store::close_unfinished_calls`] closes this
//! node's rows that never ended, with their last known state (ended when last
//! written; answered ones keep their talk time, callers who were waiting become
//! `callback-scheduled`), in one transaction, and returns the callers who were
//! waiting for an operator so that the engine schedules their callbacks. Other
//! nodes' live calls are never touched.

use chrono::{DateTime, Utc};

use super::backend::{dispatch, per_backend};
use super::{Store, StoreError};

per_backend!("sql/recovery.rs");

/// A call a crash left unfinished whose caller was waiting for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingCaller {
    /// The call (the journal's id).
    pub call_id: String,
    /// Who called.
    pub from_number: String,
    /// The number they dialled.
    pub to_number: String,
    /// The tenant, when known.
    pub tenant: Option<String>,
    /// When the call arrived.
    pub offered_at: DateTime<Utc>,
}

impl Store {
    /// Marks the journal rows `ids` as owned by `node` (rows already owned are
    /// left alone).
    pub async fn own_calls(&self, node: &str, ids: &[&str]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        dispatch!(self, own_calls(node, ids))
    }

    /// Closes the unfinished journal rows `node` owns (see the module doc) and
    /// returns the callers who were waiting in its queue. Returns how many rows
    /// were closed in all, too.
    pub async fn close_unfinished_calls(
        &self,
        node: &str,
        now: DateTime<Utc>,
    ) -> Result<(u64, Vec<WaitingCaller>), StoreError> {
        dispatch!(self, close_unfinished(node, now))
    }
}
