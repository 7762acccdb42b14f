//! The floor the nodes of a cluster share: operators' states, who may offer each
//! operator a call, their softphones' bindings and what each node has waiting.
//!
//! Every node keeps its own sans-IO picture of the floor (the call core's
//! [`Operators`](crate::call::operators::Operators) and
//! [`Registrar`](crate::sip::registrar::Registrar)); this module is where those
//! pictures meet. A node writes what it changed (an operator's state, the bindings
//! its softphones registered through it, its demand) and reads everyone's rows a
//! few times a second ([`Store::floor_snapshot`]).
//!
//! The one decision that must never be made twice is who may offer an operator a
//! call: [`Store::floor_acquire`] grants ready operators to a node under a row lock
//! (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite's write lock serialises it), and
//! only to the node whose work has waited longest among the work the operator
//! serves, so the queue is one queue across nodes: the longest-waiting call gets the
//! next free operator whichever node holds its media. A node holds the grant until
//! the call ends (or gives it back unused at once); a node that dies (its `nodes`
//! row lapses) loses every grant it held.

use chrono::{DateTime, Utc};

use super::backend::{dispatch, per_backend};
use super::{Store, StoreError};

per_backend!("sql/floor.rs");

/// An operator's row as some node last wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloorOperator {
    /// Extension.
    pub extension: String,
    /// `ready`, `busy`, `wrap-up`, `paused` or `logged-out`.
    pub state: String,
    /// Why paused (or the pause to take after the call).
    pub reason: Option<String>,
    /// When the state last changed.
    pub since: DateTime<Utc>,
    /// The call they are on or being offered.
    pub call_id: Option<String>,
    /// The node that may offer them a call or holds their call.
    pub holder: Option<String>,
    /// Whether the holder is alive (a dead node's call and grant are gone).
    pub holder_alive: bool,
    /// The node that wrote the row.
    pub node: String,
}

/// The bindings one node registered for an operator (JSON, see
/// [`crate::call::floor`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloorBindings {
    /// Extension.
    pub extension: String,
    /// The node the REGISTERs reached.
    pub node: String,
    /// The bindings, as JSON.
    pub bindings: String,
}

/// Work a node has waiting for an operator of a tenant and city.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloorDemand {
    /// The tenant (`None`: any operator's).
    pub tenant: Option<String>,
    /// The city (`None`: any).
    pub city: Option<String>,
    /// Since when the longest-waiting of it has waited.
    pub since: DateTime<Utc>,
    /// How many calls and jobs wait.
    pub waiting: u32,
}

/// Everyone's rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FloorSnapshot {
    /// Every operator's row.
    pub operators: Vec<FloorOperator>,
    /// Every node's bindings.
    pub bindings: Vec<FloorBindings>,
}

/// An operator's state as a node writes it.
#[derive(Debug, Clone, Copy)]
pub struct OperatorWrite<'a> {
    /// Extension.
    pub extension: &'a str,
    /// State name.
    pub state: &'a str,
    /// Pause reason.
    pub reason: Option<&'a str>,
    /// When it changed.
    pub since: DateTime<Utc>,
    /// Their call, if on one here.
    pub call_id: Option<&'a str>,
    /// Whether the writing node keeps the grant (it holds their call, or may
    /// offer them one).
    pub held: bool,
}

/// Whether an operator serves work of a tenant and city (from the configuration,
/// the same on every node).
pub type Serves<'a> = &'a (dyn Fn(&str, Option<&str>, Option<&str>) -> bool + Sync);

impl Store {
    /// Everyone's floor rows at `now`.
    pub async fn floor_snapshot(&self, now: DateTime<Utc>) -> Result<FloorSnapshot, StoreError> {
        dispatch!(self, snapshot(now))
    }

    /// `node` changed an operator's state. A node that does not hold the call the
    /// operator is on elsewhere only sets the pause to take after it.
    pub async fn floor_put_operator(
        &self,
        node: &str,
        write: OperatorWrite<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self, put_operator(node, write, now))
    }

    /// The bindings `node` holds for `extension` (JSON; `None` or an empty list
    /// removes the row).
    pub async fn floor_put_bindings(
        &self,
        node: &str,
        extension: &str,
        bindings: Option<&str>,
    ) -> Result<(), StoreError> {
        dispatch!(self, put_bindings(node, extension, bindings))
    }

    /// Records `node`'s demand and grants it the ready operators whose
    /// longest-waiting work is this node's; returns their extensions (longest idle
    /// first). Grants held by dead nodes are free.
    pub async fn floor_acquire(
        &self,
        node: &str,
        demand: &[FloorDemand],
        serves: Serves<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        dispatch!(self, acquire(node, demand, serves, now))
    }
}
