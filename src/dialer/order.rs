//! What the dialer and the call layer say to each other about the calls of a
//! hand-off chain.
//!
//! The dialer decides who is called (`chain`), writes each attempt to the store and
//! then sends a [`ToCalls::Place`]; the call layer places the call (operator-first
//! or by the informer), reports every step of it back as a [`ChainReport`], and
//! obeys [`ToCalls::Stop`] and [`ToCalls::Decided`]. The types live here, below the
//! call layer, so the dialer never needs to know how a call is made.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::chain::{Stage, StopWhy};
use crate::config::Reach;
use crate::phone::PhoneNumber;
use crate::store::{AttemptOutcome, Category, DialChainId, EmployeeId, TicketId};

/// An attempt of a chain, as both sides name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct AttemptRef {
    /// The chain.
    pub chain: DialChainId,
    /// The attempt's number within it.
    pub seq: u32,
}

impl std::fmt::Display for AttemptRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "chain {} attempt {}", self.chain, self.seq)
    }
}

/// What an operator's card and the informer's message say about a ticket: built
/// once per chain by the dialer, shared by all its calls.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TicketCard {
    /// The ticket.
    pub ticket: TicketId,
    /// Its registration number.
    pub number: String,
    /// Its tenant's code.
    pub tenant: String,
    /// The tenant's name (`УК «Эталон»`).
    pub tenant_name: String,
    /// The tenant's city code.
    pub city: String,
    /// Emergency, planned, paid (the card's colour).
    pub category: Category,
    /// The house's address.
    pub address: String,
    /// The apartment, if any.
    pub apartment: Option<String>,
    /// The reason's title.
    pub reason: String,
    /// What the resident said.
    pub description: String,
    /// When it must be done by.
    pub deadline: DateTime<Utc>,
    /// The resident's phone, if known.
    pub caller_phone: Option<String>,
    /// What the informer says, as prompt names (company, "emergency ticket", the
    /// number, work type, address, deadline), without the keypad menu.
    #[serde(skip)]
    pub message: Vec<String>,
    /// The message could not say the address (no prompt for the street, a house
    /// number it cannot read): the informer stresses the dispatcher option.
    #[serde(skip)]
    pub address_unsaid: bool,
}

/// One call the dialer wants placed, already stored.
#[derive(Debug, Clone, PartialEq)]
pub struct HandoffOrder {
    /// The attempt.
    pub attempt: AttemptRef,
    /// Its stage.
    pub stage: Stage,
    /// The ticket.
    pub card: Arc<TicketCard>,
    /// Who is called.
    pub person: EmployeeId,
    /// Their name.
    pub person_name: String,
    /// The number dialled.
    pub phone: PhoneNumber,
    /// Which try of this number.
    pub try_no: u32,
    /// Tries allowed per number.
    pub tries: u32,
    /// How the person is reached first.
    pub reach: Reach,
    /// How long an operator-first call waits for a free operator before the
    /// informer calls instead.
    pub operator_wait: Duration,
    /// How often the informer's message is repeated when no key is pressed.
    pub repeats: u32,
}

/// What the dialer tells the call layer.
#[derive(Debug, Clone, PartialEq)]
pub enum ToCalls {
    /// Place this call.
    Place(Box<HandoffOrder>),
    /// Stop the call of this attempt: CANCEL if it rings, a last prompt and BYE if
    /// answered; forget it if it waits for an operator.
    Stop {
        /// The attempt.
        attempt: AttemptRef,
        /// Why.
        why: StopWhy,
    },
    /// The answer to [`ChainEvent::AcceptPressed`]: whether this person's
    /// acceptance won (the informer thanks them) or somebody else's came first.
    Decided {
        /// The attempt.
        attempt: AttemptRef,
        /// `true` when the ticket is theirs.
        won: bool,
    },
}

/// A step of one call of a chain, as the call layer reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainEvent {
    /// The call exists (its journal id), reached this way, with this operator.
    Started {
        /// The engine's call id.
        call: String,
        /// How the person is reached (informer once the operator wait ran out).
        reach: Reach,
        /// The operator, for an operator-first call.
        operator: Option<String>,
    },
    /// The person's phone rings.
    Ringing,
    /// The person answered.
    Answered,
    /// An operator took the person who pressed 0 (the informer put them through).
    OperatorJoined {
        /// The operator's extension.
        operator: String,
    },
    /// The person pressed 1: the dialer tries to accept the ticket for them and
    /// answers with [`ToCalls::Decided`].
    AcceptPressed,
    /// The person pressed 2.
    Declined,
    /// The person pressed nothing while the message was repeated.
    NoInput,
    /// The call is over.
    Ended {
        /// How it ended.
        outcome: AttemptOutcome,
        /// The SIP status that ended it (0 when none).
        sip_status: u16,
    },
}

/// A [`ChainEvent`] of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// The attempt.
    pub attempt: AttemptRef,
    /// What happened.
    pub event: ChainEvent,
}
