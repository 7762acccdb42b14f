//! The engine nodes that share this store, and until when each is known alive.
//!
//! A node renews its row every [`HEARTBEAT`] to [`SILENCE`] ahead. A node whose row
//! lapsed is dead (killed, its machine gone, cut off from the database): the dial
//! jobs and hand-off chains it held are due to the others at once, instead of when
//! their leases run out (10 minutes for jobs, 60 s for chains). A node that was only
//! slow and comes back finds its leases taken and its writes refused, as with any
//! lapsed lease. A node that never wrote a row (an older engine) keeps the plain
//! lease rule.
//!
//! A dead node's calls are recovered by one survivor ([`Store::claim_dead_nodes`]
//! marks the row `recovered_by` in one conditional UPDATE; see
//! [`crate::call::recovery`]), at once rather than when it restarts.

use chrono::{DateTime, Utc};

use super::backend::{dispatch, per_backend};
use super::{Store, StoreError};

per_backend!("sql/nodes.rs");

/// How often a running node renews its row.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long after its last renewal a node counts as dead.
pub const SILENCE: std::time::Duration = std::time::Duration::from_secs(10);

fn silence() -> chrono::Duration {
    chrono::Duration::from_std(SILENCE).unwrap_or_default()
}

/// A node as the others see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeStatus {
    /// The node's id (`serve --node-id`).
    pub id: String,
    /// When it last started.
    pub started_at: DateTime<Utc>,
    /// Until when it is known alive (its last heartbeat plus [`SILENCE`]).
    pub alive_until: DateTime<Utc>,
    /// Whether that is still ahead.
    pub alive: bool,
    /// Who took over its calls after it died (itself: it stopped cleanly).
    pub recovered_by: Option<String>,
    /// When.
    pub recovered_at: Option<DateTime<Utc>>,
}

impl Store {
    /// `node` started at `now`: known alive for [`SILENCE`].
    pub async fn node_started(&self, node: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        dispatch!(self, upsert(node, Some(now), now + silence(), false))
    }

    /// `node` is alive at `now`: known alive for another [`SILENCE`].
    pub async fn node_alive(&self, node: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        dispatch!(self, upsert(node, None, now + silence(), false))
    }

    /// `node` stopped at `now` (what it held is free at once; a clean stop leaves
    /// no calls for the others to recover).
    pub async fn node_stopped(&self, node: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        dispatch!(self, upsert(node, None, now, true))
    }

    /// Takes on the recovery of every node dead at `now` that nobody has recovered
    /// yet, for `node` (a live one), and returns their ids. Of several nodes asking
    /// at once, each dead node goes to exactly one.
    pub async fn claim_dead_nodes(
        &self,
        node: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        dispatch!(self, claim_dead(node, now))
    }

    /// Which node recovered `node` since it last lived, if one did.
    pub async fn node_recovered_by(&self, node: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self, recovered_by(node))
    }

    /// Every node alive at `now` or heard of within the last day, by id.
    pub async fn node_statuses(&self, now: DateTime<Utc>) -> Result<Vec<NodeStatus>, StoreError> {
        dispatch!(self, statuses(now))
    }

    /// The nodes known alive at `now`, by id.
    pub async fn live_nodes(&self, now: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        dispatch!(self, live(now))
    }
}
