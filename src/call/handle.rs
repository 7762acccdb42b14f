//! How the rest of the engine (the console's API, the demo, tests) talks to the call
//! core: a cheap cloneable [`CallHandle`] that sends [`Query`]s over a channel and
//! awaits the [`Answer`]: operators' states, the live board (waiting calls,
//! operators, trunks), and orders such as setting a live call's tenant. The core answers between two SIP messages, so a query
//! never blocks a call.

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::operators::{OperatorError, OperatorState, OperatorView};

/// A question or an order for the call core.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Query {
    /// Every operator and their state.
    Operators,
    /// Change an operator's state from the console.
    SetOperatorState {
        /// The operator.
        extension: String,
        /// Ready, paused or logged out.
        state: OperatorState,
        /// Why (required for a pause).
        reason: Option<String>,
    },
    /// The supervisors' live board.
    Board,
    /// Every resident's call and callback in progress, for consoles rebuilding
    /// their call cards after a reload.
    ActiveCalls,
    /// Sets the tenant of a live call (a citywide caller whose address is not
    /// known: the operator chooses the management company).
    SetCallTenant {
        /// The engine's call id.
        call: String,
        /// The tenant code (the API checks it exists).
        tenant: String,
        /// The tenants the asker may act for (empty: all); a call already tagged
        /// with a tenant outside them is not changed.
        scope: Vec<String>,
    },
    /// Replaces the operators' roster and softphone credentials (the accounts of
    /// the store changed): new operators start logged out, removed ones leave the
    /// queue and lose their registrations.
    SetOperators(Vec<crate::config::Operator>),
}

/// A call in progress, for the console's cards.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActiveCall {
    /// The call.
    pub call: String,
    /// The tenant, once known.
    pub tenant: Option<String>,
    /// The city.
    pub city: Option<String>,
    /// Where it is: `lookingup`, `announcing`, `menu`, `queued`, `ringing`,
    /// `connected`, `leaving`, `setup`.
    pub stage: String,
    /// The operator ringing or talking, if any.
    pub operator: Option<String>,
    /// The `call.offered` payload as it would be published now.
    pub screen_pop: serde_json::Value,
}

/// Why a live call could not be changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No call in progress has this id.
    #[error("no call {0} in progress")]
    Unknown(String),
    /// The call already belongs to a tenant the asker does not serve.
    #[error("call {0} belongs to another tenant")]
    OtherTenant(String),
}

/// A live call's tenant as set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallTenant {
    /// The call.
    pub call: String,
    /// Its tenant now.
    pub tenant: String,
    /// Its tenant before, if any.
    pub previous: Option<String>,
}

/// A call waiting for an operator, for the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaitingCall {
    /// The call.
    pub call: String,
    /// The tenant, once known.
    pub tenant: Option<String>,
    /// The city.
    pub city: Option<String>,
    /// The number's kind.
    pub number_kind: String,
    /// The caller's number.
    pub caller: String,
    /// Seconds waited so far.
    pub waited_s: u64,
}

/// The live board.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Board {
    /// Calls waiting for an operator, longest first.
    pub waiting: Vec<WaitingCall>,
    /// Every operator.
    pub operators: Vec<OperatorView>,
    /// Calls in progress of any kind.
    pub calls_active: usize,
    /// Every trunk: its health and registration.
    pub trunks: Vec<super::trunks::TrunkView>,
}

/// The core's answer to a [`Query`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Answer {
    /// For [`Query::Operators`].
    Operators(Vec<OperatorView>),
    /// For [`Query::SetOperatorState`].
    OperatorState(Result<OperatorView, OperatorError>),
    /// For [`Query::Board`].
    Board(Board),
    /// For [`Query::ActiveCalls`].
    ActiveCalls(Vec<ActiveCall>),
    /// For [`Query::SetCallTenant`].
    CallTenant(Result<CallTenant, CallError>),
    /// For [`Query::SetOperators`]: the extensions that are no longer operators.
    OperatorsSet(Vec<String>),
}

/// Why a query could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandleError {
    /// The call core has stopped (the engine is shutting down).
    #[error("the call core is not running")]
    Stopped,
    /// The core answered something else (a bug).
    #[error("unexpected answer from the call core")]
    Unexpected,
}

/// A query in flight.
pub type Envelope = (Query, oneshot::Sender<Answer>);

/// The handle.
#[derive(Debug, Clone)]
pub struct CallHandle {
    tx: mpsc::Sender<Envelope>,
}

impl CallHandle {
    /// A handle and the receiving end the core's driver reads.
    pub fn channel() -> (Self, mpsc::Receiver<Envelope>) {
        let (tx, rx) = mpsc::channel(256);
        (Self { tx }, rx)
    }

    async fn ask(&self, query: Query) -> Result<Answer, HandleError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((query, reply))
            .await
            .map_err(|_| HandleError::Stopped)?;
        answer.await.map_err(|_| HandleError::Stopped)
    }

    /// Every operator and their state.
    pub async fn operators(&self) -> Result<Vec<OperatorView>, HandleError> {
        match self.ask(Query::Operators).await? {
            Answer::Operators(v) => Ok(v),
            _ => Err(HandleError::Unexpected),
        }
    }

    /// Changes an operator's state; the outer error is the engine's, the inner the
    /// request's.
    pub async fn set_operator_state(
        &self,
        extension: &str,
        state: OperatorState,
        reason: Option<String>,
    ) -> Result<Result<OperatorView, OperatorError>, HandleError> {
        let query = Query::SetOperatorState {
            extension: extension.to_owned(),
            state,
            reason,
        };
        match self.ask(query).await? {
            Answer::OperatorState(r) => Ok(r),
            _ => Err(HandleError::Unexpected),
        }
    }

    /// Sets the tenant of a live call; the outer error is the engine's, the inner
    /// the request's.
    pub async fn set_call_tenant(
        &self,
        call: &str,
        tenant: &str,
        scope: Vec<String>,
    ) -> Result<Result<CallTenant, CallError>, HandleError> {
        let query = Query::SetCallTenant {
            call: call.to_owned(),
            tenant: tenant.to_owned(),
            scope,
        };
        match self.ask(query).await? {
            Answer::CallTenant(r) => Ok(r),
            _ => Err(HandleError::Unexpected),
        }
    }

    /// Replaces the roster; returns the extensions removed from it.
    pub async fn set_operators(
        &self,
        roster: Vec<crate::config::Operator>,
    ) -> Result<Vec<String>, HandleError> {
        match self.ask(Query::SetOperators(roster)).await? {
            Answer::OperatorsSet(removed) => Ok(removed),
            _ => Err(HandleError::Unexpected),
        }
    }

    /// The live board.
    pub async fn board(&self) -> Result<Board, HandleError> {
        match self.ask(Query::Board).await? {
            Answer::Board(b) => Ok(b),
            _ => Err(HandleError::Unexpected),
        }
    }

    /// The resident calls and callbacks in progress.
    pub async fn active_calls(&self) -> Result<Vec<ActiveCall>, HandleError> {
        match self.ask(Query::ActiveCalls).await? {
            Answer::ActiveCalls(v) => Ok(v),
            _ => Err(HandleError::Unexpected),
        }
    }
}
