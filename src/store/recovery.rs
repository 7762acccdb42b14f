//! Crash recovery of the journal: which node owns each unfinished call, and what
//! a node that crashed does with its own when it starts again.
//!
//! The writer marks the rows it writes with its node's stable id
//! ([`Store::own_calls`]). On start, [`Store::close_unfinished_calls`] closes this
//! node's rows that never ended, with their last known state (ended when last
//! written; answered ones keep their talk time, callers who were waiting become
//! `callback-scheduled`), and writes the callbacks the engine plans for the
//! callers who were waiting for an operator, all in one transaction: a crash in
//! the middle of a recovery leaves the rows open for the next one, never closed
//! without their callbacks. Other nodes' live calls are never touched.

use chrono::{DateTime, Utc};

use super::backend::{dispatch, per_backend};
use super::{NewDialJob, Store, StoreError};

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

/// The callback recovery writes for a caller who was waiting (its origin is the
/// number they dialled), or `None` to leave them without one (the planner logs
/// why).
pub type PlanCallback<'a> = &'a (dyn Fn(&WaitingCaller) -> Option<NewDialJob> + Sync);

/// What a recovery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Journal rows closed.
    pub closed: u64,
    /// The callers who were waiting for an operator (and had no callback yet).
    pub waiting: Vec<WaitingCaller>,
    /// Callback jobs written for them (one already planned for the same number
    /// counts for nothing: that caller is called back by it).
    pub callbacks: usize,
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

    /// Closes the unfinished journal rows `node` owns and writes the callbacks
    /// `plan` gives the callers who were waiting in its queue, in one transaction
    /// (see the module doc).
    pub async fn close_unfinished_calls(
        &self,
        node: &str,
        now: DateTime<Utc>,
        plan: PlanCallback<'_>,
    ) -> Result<Recovered, StoreError> {
        dispatch!(self, close_unfinished(node, now, plan))
    }
}
