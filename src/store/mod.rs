//! The ticket store: tenants, houses, employees, reasons, tickets, contacts, the call
//! journal, recordings, dial jobs, outages and debtors, on SQLite or PostgreSQL.
//!
//! [`Store`] is the one handle to it: cheap to clone, safe to share between tasks and
//! between engine nodes (on PostgreSQL several nodes share one database; dial jobs are
//! claimed with `FOR UPDATE SKIP LOCKED`). Timestamps are stored in UTC; schedules,
//! absences and debt validity are evaluated in the city's time zone.
//!
//! One module per concept:
//!
//! - [`directory`]: cities, tenants, houses, employees, the reasons catalogue;
//! - [`admin`]: cities, tenants, house groups, suppliers, tags and the matrix as the
//!   administration API writes them;
//! - [`assignment`]: who is on shift, and the executor chain for a ticket;
//! - [`tickets`]: registration, status changes, comments, resource-supplier tickets;
//! - [`attachments`]: files attached to tickets (executors' photos);
//! - [`ticket_card`]: a ticket's time in each status, every call about it, its ratings;
//! - [`caller`]: the screen-pop lookup of a calling phone;
//! - [`contacts`]: phone → address, learnt from calls and imported;
//! - [`journal`]: the call journal and recordings;
//! - [`dial_jobs`]: persistent outbound dial jobs (callbacks and every follow-up);
//! - [`chains`]: hand-off chains and every call they placed;
//! - [`nodes`]: the engine nodes sharing the store, and which of them are alive;
//! - [`event_log`]: the cluster's event stream, shared by the nodes (PostgreSQL);
//! - [`follow_ups`]: status checks, feedback surveys, supplier calls and outage
//!   broadcasts: what the planner reads and what their calls write;
//! - [`export`]: the ticket and call journals of a period, read in batches for export;
//! - [`compliance`]: answer and callback times against Rules №416 for the board;
//! - [`monitor`]: open, due-soon and overdue tickets, per executor;
//! - [`notices`]: outages and debtors;
//! - [`reviews`]: the management companies' reviews of the dispatch line's calls;
//! - [`import`]: the contacts and debtors CSV formats tenants send;
//! - [`onboarding`]: the questionnaire workbook a company fills to go live;
//! - [`address`]: how addresses are compared;
//! - [`access`]: the personal-data access log and console tokens;
//! - [`users`]: accounts, roles, console passwords and softphone credentials;
//! - [`audit`]: the admin log of changes to reference data and accounts;
//! - [`agreement`]: whether the store knows every tenant and city the
//!   configuration's numbers name;
//! - [`analytics`]: summary analytics by period, category, work type and executor;
//! - [`demo`]: the demo data set.
//!
//! Every ticket change is published as `ticket.changed` on the [`EventBus`] given to
//! [`Store::with_events`], after its transaction commits.

pub mod access;
pub mod address;
pub mod admin;
pub mod agreement;
pub mod analytics;
pub mod assignment;
pub mod attachments;
pub mod audit;
pub(crate) mod backend;
pub mod caller;
pub mod chains;
pub mod compliance;
pub mod contacts;
pub mod demo;
pub mod dial_jobs;
pub mod directory;
pub mod event_log;
pub mod export;
pub mod floor;
pub mod follow_ups;
pub mod ids;
pub mod import;
pub mod journal;
pub mod monitor;
pub mod nodes;
pub mod notices;
mod notify;
pub mod onboarding;
pub mod recovery;
pub mod reviews;
pub mod rollup;
pub mod spool;
pub mod ticket_card;
pub mod tickets;
pub mod users;

use std::path::PathBuf;

pub use access::{AccessEntry, StoredToken};
pub use assignment::{
    ChainExecutor, EscalationRole, ExecutorChain, PassedOver, Person, Unavailability,
};
pub use audit::{AdminEntry, AdminLogFilter};
pub use caller::{ActiveOutage, CallerInfo, KnownAddress, OpenTicket, StaffMember};
pub use chains::{
    AttemptDecision, AttemptOutcome, AttemptState, AttemptUpdate, Chain, ChainAttempt,
    ChainProgress, ChainStart, ChainState, NewAttempt, UnchainedTicket,
};
pub use contacts::{Contact, ContactFilter, ContactSource};
pub use dial_jobs::{
    AfterAttempt, ClaimFor, Crew, DialAttemptOutcome, DialJob, DialJobFilter, DialJobState,
    DialKind, NewDialJob,
};
pub use directory::{City, Employee, House, HouseFilter, Reason, Tenant, TenantScope};
pub use follow_ups::{
    BroadcastProgress, FollowUpRecorded, FollowUpResult, NewBroadcast, SupplierFollowUp,
    TicketFollowUp, UnclaimedAtRisk,
};
pub use ids::*;
pub use import::{BadRow, ImportReport};
pub use journal::{CallDirection, CallFilter, CallRecord, Disposition, Recording, SurveyMetric};
pub use notices::{Debtor, DebtorFlag, DebtorImportMode, NewOutage, Outage};
pub use tickets::{
    Acceptance, Category, ChainAcceptance, Channel, Comment, NewTicket, RegisteredTicket,
    StatusChange, StatusUpdate, SupplierStatus, SupplierTicket, SupplierUpdate, Ticket,
    TicketDetail, TicketFilter, TicketStatus,
};
pub use users::{NewUser, Role, SipCredentials, SoftphoneAccount, User, UserChange};

use crate::events::EventBus;
use backend::Backend;

/// A page of a listing: the rows and the total number matching the filter.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// How many rows match the filter in all.
    pub total: i64,
    /// The offset this page starts at.
    pub offset: i64,
    /// The page size asked for.
    pub limit: i64,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database URL is neither `sqlite:` nor `postgres:`.
    #[error("unsupported database URL `{0}` (expected sqlite://... or postgres://...)")]
    UnsupportedUrl(String),
    /// The database refused a statement or could not be reached.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The embedded migrations could not be applied.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The SQLite file's directory could not be created.
    #[error("{}: {source}", path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Something the caller named does not exist (or is not visible to them).
    #[error("{what} {key} not found")]
    NotFound {
        /// What was looked for: `tenant`, `house`, `ticket`, ...
        what: &'static str,
        /// The key it was looked for by.
        key: String,
    },
    /// The caller's input is not acceptable; `field` names the offending field.
    #[error("{field}: {message}")]
    Invalid {
        /// The input field at fault.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The change conflicts with the current state (e.g. someone else changed the
    /// ticket since the caller read it, or the status cannot move that way).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A CSV import has bad rows and skipping them was not asked for; nothing was
    /// imported.
    #[error("{} bad rows; nothing imported", .0.bad_rows.len())]
    Import(ImportReport),
    /// A stored value breaks the schema's promise (an unknown status text, ...).
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// The configuration names tenants or cities the store does not have (each
    /// line `file:line: message`).
    #[error("the configuration and the ticket store disagree:\n{}", .0.join("\n"))]
    Disagreement(Vec<String>),
    /// A background task (parsing a large import) panicked or was cancelled.
    #[error("background task: {0}")]
    Background(#[from] tokio::task::JoinError),
}

impl StoreError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }

    pub(crate) fn not_found(what: &'static str, key: impl ToString) -> Self {
        Self::NotFound {
            what,
            key: key.to_string(),
        }
    }

    /// Whether the database was only too busy to take the statement, so that the
    /// same work may succeed when tried again later: SQLite's lock was held past
    /// the busy timeout (`SQLITE_BUSY` "database is locked", `SQLITE_LOCKED`),
    /// PostgreSQL gave up on a lock (serialization failure, deadlock, lock not
    /// available), or no pooled connection came free in time. A failed statement
    /// rolled its transaction back, so trying again writes nothing twice.
    pub fn is_busy(&self) -> bool {
        let Self::Database(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::PoolTimedOut => true,
            sqlx::Error::Database(db) => {
                if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    // The extended result code; its low byte is the primary code.
                    let code = db
                        .code()
                        .and_then(|c| c.parse::<i32>().ok())
                        .unwrap_or_default();
                    matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED)
                } else if db
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some()
                {
                    db.code()
                        .is_some_and(|c| PG_BUSY_STATES.contains(&c.as_ref()))
                } else {
                    false
                }
            }
            _ => false,
        }
    }
}

impl StoreError {
    /// Whether the same work may succeed when tried again later: the database was
    /// busy ([`is_busy`](Self::is_busy)), or could not be reached or was restarting
    /// (connection refused or reset, PostgreSQL shutting down or not yet accepting
    /// connections, too many connections), or ran out of room (disk full). A
    /// statement that failed so wrote nothing that a retry would write twice (its
    /// transaction rolled back), except that a commit whose answer was lost may
    /// have happened: the writes retried so are upserts or guarded by state.
    pub fn is_transient(&self) -> bool {
        if self.is_busy() {
            return true;
        }
        let Self::Database(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed | sqlx::Error::Protocol(_) => true,
            sqlx::Error::Database(db) => {
                if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    let code = db
                        .code()
                        .and_then(|c| c.parse::<i32>().ok())
                        .unwrap_or_default();
                    matches!(code & 0xff, SQLITE_IOERR | SQLITE_FULL)
                } else {
                    db.code().is_some_and(|c| {
                        c.starts_with("08") || c.starts_with("53") || c.starts_with("57P")
                    })
                }
            }
            _ => false,
        }
    }
}

/// SQLite's primary result code `SQLITE_IOERR`.
const SQLITE_IOERR: i32 = 10;
/// SQLite's primary result code `SQLITE_FULL` (the disk is full).
const SQLITE_FULL: i32 = 13;
/// SQLite's primary result code `SQLITE_BUSY`.
const SQLITE_BUSY: i32 = 5;
/// SQLite's primary result code `SQLITE_LOCKED`.
const SQLITE_LOCKED: i32 = 6;
/// PostgreSQL SQLSTATEs that only say a lock was in the way: serialization_failure,
/// deadlock_detected, lock_not_available.
const PG_BUSY_STATES: [&str; 3] = ["40001", "40P01", "55P03"];

/// The ticket store; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    events: EventBus,
    /// Who administrative writes are logged as ([`Store::acting_as`]).
    actor: Option<std::sync::Arc<str>>,
    /// The URL it was connected with.
    url: std::sync::Arc<str>,
}

impl Store {
    /// Connects to `url`: `sqlite://path/to/file.db` (the file and its directory are
    /// created), `sqlite::memory:` or `postgres://...`. Does not migrate.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Ok(Self {
            backend: Backend::connect(url).await?,
            events: EventBus::default(),
            actor: None,
            url: url.into(),
        })
    }

    /// This store, publishing ticket changes into `events` (the engine's bus).
    pub fn with_events(mut self, events: EventBus) -> Self {
        self.events = events;
        self
    }

    /// The bus ticket changes are published into.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// Applies pending migrations (idempotent), then brings stored house address
    /// keys up to the current comparison rule.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.backend.migrate().await?;
        let rekeyed = self.rekey_houses().await?;
        if rekeyed > 0 {
            tracing::info!(houses = rekeyed, "house address keys recomputed");
        }
        Ok(())
    }

    /// The URL this store was connected with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `sqlite` or `postgres`.
    pub fn dialect(&self) -> &'static str {
        self.backend.name()
    }

    /// Closes the pool; waits for connections in use to be returned.
    pub async fn close(&self) {
        self.backend.close().await
    }
}

/// A closed set of names stored as text: `as_str`, `FromStr` and serde agree.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The stored and wire name.
            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $text, )* }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::store::StoreError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $text => Ok($name::$variant), )*
                    other => Err($crate::store::StoreError::Corrupt(format!(
                        "unknown {} `{other}`", stringify!($name)
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use text_enum;

/// Parses a stored phone; a bad one breaks the schema's promise.
pub(crate) fn stored_phone(raw: &str) -> Result<crate::phone::PhoneNumber, StoreError> {
    crate::phone::PhoneNumber::parse(raw)
        .map_err(|e| StoreError::Corrupt(format!("stored phone `{raw}`: {e}")))
}

/// Parses a stored JSON list of strings (labels, token tenants).
pub(crate) fn stored_list(raw: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("stored list `{raw}`: {e}")))
}

/// Serialises a list of strings for storage.
pub(crate) fn list_text(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

/// Clamps a caller-supplied page to sane bounds.
pub(crate) fn page_bounds(offset: Option<i64>, limit: Option<i64>) -> (i64, i64) {
    (
        offset.unwrap_or(0).max(0),
        limit.unwrap_or(50).clamp(1, 500),
    )
}
