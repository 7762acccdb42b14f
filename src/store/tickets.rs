//! Tickets (заявки): registration with automatic assignment, the status machine,
//! status history, comments and tickets handed over to resource suppliers.
//!
//! A ticket gets a **registration number** residents are told on the phone: the
//! tenant's running number starting at 1001, plain digits that are easy to say and to
//! write down (unique per tenant; the counter row serialises registrations of one
//! tenant across engine nodes). The executor chain is chosen when the ticket is
//! registered ([`assignment`](super::assignment)) and stored with it, so the dialer
//! hands the ticket to the same people even after a restart.
//!
//! A ticket's `version` counts changes of the ticket itself: registration is 1 and
//! every status change bumps it. A status change may carry the version the caller last
//! saw; if the ticket moved on since, the change is refused as a conflict instead of
//! overwriting. Comments and supplier hand-overs are added beside the ticket and do
//! not bump it: a resident's comment must not make an executor's concurrent "accepted"
//! fail. Every change (registration, status, comment, hand-over) is kept in the
//! ticket's history or comments and, after its transaction commits, is published as
//! `ticket.changed` on the event bus.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::assignment::{ExecutorChain, deadline};
use super::backend::{dispatch, per_backend};
use super::directory::TenantScope;
use super::ids::{DialChainId, EmployeeId, HouseId, ReasonId, SupplierTicketId, TicketId};
use super::{Page, Store, StoreError, list_text, page_bounds, stored_list, text_enum};
use crate::phone::PhoneNumber;

per_backend!("sql/tickets.rs");

/// The first registration number of every tenant.
const FIRST_NUMBER: i64 = 1001;

text_enum! {
    /// How urgent a ticket is; the console colours them red, yellow and green.
    pub enum Category {
        /// Аварийная: handed to the executor chain at once.
        Emergency = "emergency",
        /// Плановая.
        Planned = "planned",
        /// Платная.
        Paid = "paid",
    }
}

text_enum! {
    /// Where a ticket stands.
    pub enum TicketStatus {
        /// Registered and assigned; the executor has not accepted it yet.
        Registered = "registered",
        /// The executor accepted it (the hand-off chain stops).
        Accepted = "accepted",
        /// Work has started.
        InProgress = "in_progress",
        /// The executor reports it done; the resident is asked for feedback.
        Done = "done",
        /// Confirmed and closed.
        Closed = "closed",
        /// Withdrawn (a duplicate, the resident's mistake).
        Cancelled = "cancelled",
    }
}

impl TicketStatus {
    /// The statuses a resident's call should still see.
    pub const OPEN: [TicketStatus; 3] = [Self::Registered, Self::Accepted, Self::InProgress];

    /// Whether the ticket is still being worked on.
    pub fn is_open(self) -> bool {
        Self::OPEN.contains(&self)
    }

    /// Whether a ticket may move from `self` to `to`. Done tickets may be reopened
    /// (the resident says the work was not done); closed and cancelled are final.
    pub fn can_move_to(self, to: TicketStatus) -> bool {
        use TicketStatus::*;
        matches!(
            (self, to),
            (Registered, Accepted | InProgress | Done | Cancelled)
                | (Accepted, InProgress | Done | Cancelled)
                | (InProgress, Done | Cancelled)
                | (Done, Closed | InProgress)
        )
    }
}

text_enum! {
    /// The channel a ticket came in by.
    pub enum Channel {
        /// A call to the dispatch line.
        Phone = "phone",
        /// Typed by an operator without a call.
        Console = "console",
        /// The tenant's website or resident app.
        Web = "web",
        /// E-mail or a messenger.
        Message = "message",
    }
}

/// Input for [`Store::create_ticket`].
#[derive(Debug, Clone)]
pub struct NewTicket {
    /// Tenant code.
    pub tenant: String,
    /// The house.
    pub house_id: HouseId,
    /// Apartment, when the problem is in one.
    pub apartment: Option<String>,
    /// The reason from the catalogue (decides category, deadline, work type).
    pub reason_id: ReasonId,
    /// What the resident said.
    pub description: String,
    /// The channel.
    pub source: Channel,
    /// Free labels.
    pub labels: Vec<String>,
    /// The resident's phone, when known.
    pub caller_phone: Option<PhoneNumber>,
    /// The engine call id of the call the ticket was registered on (the journal row
    /// is linked to the ticket).
    pub call_id: Option<String>,
    /// Who registers it (operator extension, `engine`).
    pub actor: String,
}

/// A ticket as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ticket {
    /// Row id.
    pub id: TicketId,
    /// Registration number residents are told.
    pub number: String,
    /// Tenant code.
    pub tenant: String,
    /// The house.
    pub house_id: HouseId,
    /// The house's address.
    pub address: String,
    /// Apartment, if any.
    pub apartment: Option<String>,
    /// The reason.
    pub reason_id: ReasonId,
    /// The reason's title.
    pub reason: String,
    /// Emergency, planned or paid.
    pub category: Category,
    /// Where it stands.
    pub status: TicketStatus,
    /// What the resident said.
    pub description: String,
    /// The executor (chain level 1), if anyone was on duty.
    pub executor_id: Option<EmployeeId>,
    /// The executor's name.
    pub executor_name: Option<String>,
    /// The responsible person.
    pub responsible_id: Option<EmployeeId>,
    /// The responsible person's name.
    pub responsible_name: Option<String>,
    /// When it must be done by.
    pub deadline_at: DateTime<Utc>,
    /// The channel it came in by.
    pub source: Channel,
    /// Free labels.
    pub labels: Vec<String>,
    /// The engine call id it was registered on.
    pub call_id: Option<String>,
    /// Bumped by every status change (not by comments or hand-overs).
    pub version: i64,
    /// Registered at.
    pub created_at: DateTime<Utc>,
    /// Last changed at.
    pub updated_at: DateTime<Utc>,
    /// Closed or cancelled at.
    pub closed_at: Option<DateTime<Utc>>,
}

/// A registered ticket and the chain it was assigned to.
#[derive(Debug, Clone, Serialize)]
pub struct RegisteredTicket {
    /// The ticket.
    pub ticket: Ticket,
    /// Who it goes to.
    pub chain: ExecutorChain,
}

/// One entry of a ticket's stored executor chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainLink {
    /// Chain level 1..3.
    pub level: i64,
    /// The matrix level the person came from.
    pub matrix_level: i64,
    /// The executor.
    pub employee_id: EmployeeId,
    /// The executor's name.
    pub name: String,
}

/// One status change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusChange {
    /// When.
    pub at: DateTime<Utc>,
    /// The status before (`None` at registration).
    pub from: Option<TicketStatus>,
    /// The status after.
    pub to: TicketStatus,
    /// Who changed it.
    pub actor: String,
    /// Why.
    pub note: String,
}

/// One comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comment {
    /// When.
    pub at: DateTime<Utc>,
    /// Who wrote it.
    pub author: String,
    /// The text.
    pub text: String,
    /// Internal: for the dispatch centre and the company's staff, never read or
    /// shown to residents.
    pub internal: bool,
}

text_enum! {
    /// Where a hand-over to a resource supplier stands.
    pub enum SupplierStatus {
        /// Not yet accepted by the supplier's dispatcher.
        Pending = "pending",
        /// The supplier took it (and usually gave its own number).
        HandedOver = "handed_over",
        /// The supplier reports the work done.
        Done = "done",
        /// Withdrawn (handed to the wrong supplier, resolved otherwise).
        Cancelled = "cancelled",
    }
}

impl SupplierStatus {
    /// Whether a hand-over may move from `self` to `to`; done and cancelled are
    /// final.
    pub fn can_move_to(self, to: SupplierStatus) -> bool {
        use SupplierStatus::*;
        matches!(
            (self, to),
            (Pending, HandedOver | Done | Cancelled) | (HandedOver, Done | Cancelled)
        )
    }

    /// Whether the supplier still has to be called about it.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::HandedOver)
    }
}

/// A ticket handed over to a resource supplier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SupplierTicket {
    /// Row id.
    pub id: SupplierTicketId,
    /// The ticket it was derived from.
    pub ticket_id: TicketId,
    /// Tenant code of that ticket.
    pub tenant: String,
    /// Supplier code.
    pub supplier: String,
    /// The number the supplier's dispatcher gave.
    pub supplier_number: Option<String>,
    /// Where it stands.
    pub status: SupplierStatus,
    /// When it was handed over.
    pub handed_over_at: Option<DateTime<Utc>>,
    /// When the engine calls the supplier again for the status (none once it is
    /// done or cancelled).
    pub recheck_at: Option<DateTime<Utc>>,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// Last changed at.
    pub updated_at: Option<DateTime<Utc>>,
}

/// A change to a hand-over: any of its status, the supplier's number and the
/// re-check time.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupplierUpdate {
    /// The new status.
    #[serde(default)]
    pub status: Option<SupplierStatus>,
    /// The number the supplier's dispatcher gave.
    #[serde(default)]
    pub supplier_number: Option<String>,
    /// When to call the supplier again.
    #[serde(default)]
    pub recheck_at: Option<DateTime<Utc>>,
}

fn check_supplier_number(number: Option<&str>) -> Result<(), StoreError> {
    if let Some(n) = number {
        if n.trim().is_empty() || n.chars().count() > 64 {
            return Err(StoreError::invalid("supplier_number", "1 to 64 characters"));
        }
    }
    Ok(())
}

/// A ticket with everything that happened to it.
#[derive(Debug, Clone, Serialize)]
pub struct TicketDetail {
    /// The ticket.
    #[serde(flatten)]
    pub ticket: Ticket,
    /// The executor chain chosen at registration.
    pub chain: Vec<ChainLink>,
    /// Status history, oldest first.
    pub history: Vec<StatusChange>,
    /// Comments, oldest first.
    pub comments: Vec<Comment>,
    /// Hand-overs to resource suppliers.
    pub supplier_tickets: Vec<SupplierTicket>,
}

/// Filter for [`Store::tickets`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TicketFilter {
    /// Only this status.
    pub status: Option<TicketStatus>,
    /// Only open tickets (registered, accepted, in progress).
    pub open: Option<bool>,
    /// Only this category.
    pub category: Option<Category>,
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only this house.
    pub house_id: Option<HouseId>,
    /// Only this executor.
    pub executor_id: Option<EmployeeId>,
    /// Registered at or after.
    pub from: Option<DateTime<Utc>>,
    /// Registered before.
    pub to: Option<DateTime<Utc>>,
    /// This registration number.
    pub number: Option<String>,
    /// Rows to skip.
    pub offset: Option<i64>,
    /// Page size (1..=500, default 50).
    pub limit: Option<i64>,
}

/// A status change request.
#[derive(Debug, Clone)]
pub struct StatusUpdate {
    /// The new status.
    pub to: TicketStatus,
    /// Who changes it.
    pub actor: String,
    /// Why.
    pub note: String,
    /// The version the caller last saw; a different current version is a conflict.
    pub expected_version: Option<i64>,
}

/// Who accepts a ticket through its hand-off chain, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainAcceptance {
    /// The chain.
    pub chain: DialChainId,
    /// The attempt it came through, if any.
    pub seq: Option<u32>,
    /// The person who accepted (becomes the ticket's executor).
    pub employee: Option<EmployeeId>,
    /// `keypad` (the informer), `operator` (operator-first), `api`.
    pub via: String,
    /// Who the history names (`employee:12 Иванов`, an operator's extension).
    pub actor: String,
    /// The history note (the call, the recording).
    pub note: String,
}

/// The result of [`Store::accept_in_chain`].
#[derive(Debug, Clone, PartialEq)]
pub enum Acceptance {
    /// This acceptance won: the ticket is accepted.
    Won(Box<Ticket>),
    /// The ticket had already moved on (another employee accepted first, or it was
    /// cancelled): it is in this status.
    Lost(TicketStatus),
}

/// What changed, for the `ticket.changed` event.
#[derive(Debug, Clone, Copy)]
enum Change {
    Created,
    Status,
    Comment,
    Supplier,
}

impl Store {
    /// Registers a ticket: assigns the executor chain on duty at `now`, takes the
    /// tenant's next registration number, and stores both in one transaction.
    pub async fn create_ticket(
        &self,
        new: &NewTicket,
        now: DateTime<Utc>,
    ) -> Result<RegisteredTicket, StoreError> {
        validate_new(new)?;
        let chain = self
            .executor_chain(&new.tenant, new.house_id, new.reason_id, now)
            .await?;
        let id = dispatch!(self, insert(new, &chain, now))?;
        let ticket = self.ticket_row(id).await?;
        self.publish(&ticket, Change::Created);
        Ok(RegisteredTicket { ticket, chain })
    }

    /// A ticket with its chain, history, comments and supplier hand-overs.
    pub async fn ticket(&self, id: TicketId) -> Result<Option<TicketDetail>, StoreError> {
        dispatch!(self, detail(id))
    }

    /// A ticket by its tenant and registration number.
    pub async fn ticket_by_number(
        &self,
        tenant: &str,
        number: &str,
    ) -> Result<Option<Ticket>, StoreError> {
        dispatch!(self, by_number(tenant, number))
    }

    /// Tickets visible in `scope`, filtered, newest first, paginated.
    pub async fn tickets(
        &self,
        scope: &TenantScope,
        filter: &TicketFilter,
    ) -> Result<Page<Ticket>, StoreError> {
        let (offset, limit) = page_bounds(filter.offset, filter.limit);
        dispatch!(self, list(scope, filter, offset, limit))
    }

    /// Changes a ticket's status.
    pub async fn change_status(
        &self,
        id: TicketId,
        update: &StatusUpdate,
        now: DateTime<Utc>,
    ) -> Result<Ticket, StoreError> {
        let tickets = self.change_status_bulk(&[id], update, now).await?;
        tickets
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::not_found("ticket", id))
    }

    /// Changes the status of several tickets at once: all of them or none. A ticket
    /// named twice is changed (and reported, and published) once; the changed
    /// tickets are read inside the transaction, so a committed change is always
    /// answered and published.
    pub async fn change_status_bulk(
        &self,
        ids: &[TicketId],
        update: &StatusUpdate,
        now: DateTime<Utc>,
    ) -> Result<Vec<Ticket>, StoreError> {
        let mut unique: Vec<TicketId> = Vec::with_capacity(ids.len());
        for &id in ids {
            if !unique.contains(&id) {
                unique.push(id);
            }
        }
        if unique.is_empty() {
            return Err(StoreError::invalid("ids", "no tickets given"));
        }
        let changed = dispatch!(self, change_status(&unique, update, now))?;
        for ticket in &changed {
            self.publish(ticket, Change::Status);
        }
        Ok(changed)
    }

    /// Accepts a registered ticket through its hand-off chain, in one transaction
    /// guarded by the ticket's version: the status becomes `accepted`, the person
    /// who accepted becomes the executor, the history says who, how and through
    /// which call, the chain ends as accepted and the attempt records the decision.
    /// When two people press 1 within a second, exactly one wins; the other gets
    /// [`Acceptance::Lost`].
    pub async fn accept_in_chain(
        &self,
        ticket: TicketId,
        how: &ChainAcceptance,
        now: DateTime<Utc>,
    ) -> Result<Acceptance, StoreError> {
        let result = dispatch!(self, accept_in_chain(ticket, how, now))?;
        if let Acceptance::Won(t) = &result {
            self.publish(t, Change::Status);
        }
        Ok(result)
    }

    /// Adds a line to a ticket's history without changing its status (a step of
    /// its hand-off chain: escalated to level 2, declined by someone, exhausted).
    /// Does not bump the version and publishes nothing: the chain's own event says
    /// it.
    pub async fn ticket_note(
        &self,
        id: TicketId,
        actor: &str,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self, note(id, actor, note, now))
    }

    /// The tenant of each of these tickets that exists, in one query (to check a
    /// bulk request's tickets are all the caller's).
    pub async fn ticket_tenants(
        &self,
        ids: &[TicketId],
    ) -> Result<std::collections::HashMap<TicketId, String>, StoreError> {
        dispatch!(self, tenants_of(ids))
    }

    /// Adds a comment to a ticket (one residents may be told).
    pub async fn comment(
        &self,
        id: TicketId,
        author: &str,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<Comment, StoreError> {
        self.comment_with(id, author, text, false, now).await
    }

    /// Adds a comment to a ticket, `internal` or not.
    pub async fn comment_with(
        &self,
        id: TicketId,
        author: &str,
        text: &str,
        internal: bool,
        now: DateTime<Utc>,
    ) -> Result<Comment, StoreError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(StoreError::invalid("text", "empty comment"));
        }
        if text.chars().count() > 4000 {
            return Err(StoreError::invalid("text", "longer than 4000 characters"));
        }
        dispatch!(self, comment(id, author, text, internal, now))?;
        let ticket = self.ticket_row(id).await?;
        self.publish(&ticket, Change::Comment);
        Ok(Comment {
            at: now,
            author: author.to_owned(),
            text: text.to_owned(),
            internal,
        })
    }

    /// Hands a ticket over to a resource supplier (РСО): a derived ticket with the
    /// supplier's own number, re-checked by phone at `recheck_at`. The supplier must
    /// serve the ticket's city.
    pub async fn derive_supplier_ticket(
        &self,
        id: TicketId,
        supplier: &str,
        supplier_number: Option<&str>,
        recheck_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<SupplierTicketId, StoreError> {
        check_supplier_number(supplier_number)?;
        if recheck_at.is_some_and(|at| at <= now) {
            return Err(StoreError::invalid("recheck_at", "must be in the future"));
        }
        let derived = dispatch!(
            self,
            derive_supplier_ticket(
                id,
                supplier,
                supplier_number.map(str::trim),
                recheck_at,
                now
            )
        )?;
        let ticket = self.ticket_row(id).await?;
        self.publish(&ticket, Change::Supplier);
        Ok(derived)
    }

    /// A hand-over to a resource supplier by id.
    pub async fn supplier_ticket(
        &self,
        id: SupplierTicketId,
    ) -> Result<Option<SupplierTicket>, StoreError> {
        dispatch!(self, supplier_ticket(id))
    }

    /// Changes a hand-over: its status (along [`SupplierStatus::can_move_to`]), the
    /// supplier's number (giving one to a pending hand-over marks it handed over)
    /// and the re-check time (cleared once it is done or cancelled).
    pub async fn update_supplier_ticket(
        &self,
        id: SupplierTicketId,
        update: &SupplierUpdate,
        now: DateTime<Utc>,
    ) -> Result<SupplierTicket, StoreError> {
        check_supplier_number(update.supplier_number.as_deref())?;
        if update.status.is_none()
            && update.supplier_number.is_none()
            && update.recheck_at.is_none()
        {
            return Err(StoreError::invalid("status", "nothing to change"));
        }
        if update.recheck_at.is_some_and(|at| at <= now) {
            return Err(StoreError::invalid("recheck_at", "must be in the future"));
        }
        let changed = dispatch!(self, update_supplier_ticket(id, update, now))?;
        let ticket = self.ticket_row(changed.ticket_id).await?;
        self.publish(&ticket, Change::Supplier);
        Ok(changed)
    }

    /// Open hand-overs whose re-check time is at or before `now`, earliest first
    /// (what the dialer calls suppliers about).
    pub async fn supplier_rechecks_due(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<SupplierTicket>, StoreError> {
        dispatch!(self, supplier_rechecks_due(now, limit.clamp(1, 500)))
    }

    /// Publishes a status change made by another module's transaction.
    pub(crate) fn publish_status(&self, ticket: &Ticket) {
        self.publish(ticket, Change::Status);
    }

    async fn ticket_row(&self, id: TicketId) -> Result<Ticket, StoreError> {
        dispatch!(self, row(id))?.ok_or_else(|| StoreError::not_found("ticket", id))
    }

    fn publish(&self, ticket: &Ticket, change: Change) {
        let change = match change {
            Change::Created => "created",
            Change::Status => "status",
            Change::Comment => "comment",
            Change::Supplier => "supplier",
        };
        self.events.publish(
            "ticket.changed",
            Some(&ticket.tenant),
            json!({
                "ticket": ticket.id,
                "number": ticket.number,
                "status": ticket.status,
                "category": ticket.category,
                "change": change,
                "version": ticket.version,
                "house_id": ticket.house_id,
                "executor_id": ticket.executor_id,
            }),
        );
    }
}

fn validate_new(new: &NewTicket) -> Result<(), StoreError> {
    if new.tenant.trim().is_empty() {
        return Err(StoreError::invalid("tenant", "missing"));
    }
    apartment_text(new.apartment.as_deref())?;
    if new.description.chars().count() > 4000 {
        return Err(StoreError::invalid(
            "description",
            "longer than 4000 characters",
        ));
    }
    if new.labels.len() > 20
        || new
            .labels
            .iter()
            .any(|l| l.trim().is_empty() || l.len() > 64)
    {
        return Err(StoreError::invalid(
            "labels",
            "at most 20 non-empty labels of up to 64 bytes",
        ));
    }
    Ok(())
}

/// A ticket row as selected by the queries.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TicketRow {
    id: i64,
    number: String,
    tenant: String,
    house_id: i64,
    address: String,
    apartment: String,
    reason_id: i64,
    reason: String,
    category: String,
    status: String,
    description: String,
    executor_id: Option<i64>,
    executor_name: Option<String>,
    responsible_id: Option<i64>,
    responsible_name: Option<String>,
    deadline_at: DateTime<Utc>,
    source: String,
    labels: String,
    call_id: Option<String>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
}

/// The select list and joins [`TicketRow`] is read from.
pub(crate) const TICKET_SELECT: &str = "SELECT t.id, t.number, tn.code AS tenant, t.house_id, \
     h.address, t.apartment, t.reason_id, r.title AS reason, t.category, t.status, \
     t.description, t.executor_id, ex.name AS executor_name, t.responsible_id, \
     rs.name AS responsible_name, t.deadline_at, t.source, t.labels, t.call_id, t.version, \
     t.created_at, t.updated_at, t.closed_at \
     FROM tickets t \
     JOIN tenants tn ON tn.id = t.tenant_id \
     JOIN houses h ON h.id = t.house_id \
     JOIN reasons r ON r.id = t.reason_id \
     LEFT JOIN employees ex ON ex.id = t.executor_id \
     LEFT JOIN employees rs ON rs.id = t.responsible_id";

impl TryFrom<TicketRow> for Ticket {
    type Error = StoreError;
    fn try_from(r: TicketRow) -> Result<Self, StoreError> {
        Ok(Ticket {
            id: TicketId(r.id),
            number: r.number,
            tenant: r.tenant,
            house_id: HouseId(r.house_id),
            address: r.address,
            apartment: non_empty(r.apartment),
            reason_id: ReasonId(r.reason_id),
            reason: r.reason,
            category: r.category.parse()?,
            status: r.status.parse()?,
            description: r.description,
            executor_id: r.executor_id.map(EmployeeId),
            executor_name: r.executor_name,
            responsible_id: r.responsible_id.map(EmployeeId),
            responsible_name: r.responsible_name,
            deadline_at: r.deadline_at,
            source: r.source.parse()?,
            labels: stored_list(&r.labels)?,
            call_id: r.call_id,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            closed_at: r.closed_at,
        })
    }
}

/// `''` is how "no apartment" is stored (so it can take part in unique keys).
pub(crate) fn non_empty(text: String) -> Option<String> {
    if text.is_empty() { None } else { Some(text) }
}

/// The stored form of an optional apartment ([`apartment_key`](super::address::apartment_key)).
pub(crate) fn apartment_text(apartment: Option<&str>) -> Result<String, StoreError> {
    super::address::apartment_key(apartment.unwrap_or_default())
        .map_err(|e| StoreError::invalid("apartment", e))
}

pub(crate) fn number_text(n: i64) -> String {
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::TicketStatus::*;

    #[test]
    fn status_machine() {
        assert!(Registered.can_move_to(Accepted));
        assert!(Accepted.can_move_to(Done));
        assert!(Done.can_move_to(InProgress), "reopen");
        assert!(!Closed.can_move_to(InProgress));
        assert!(!Cancelled.can_move_to(Registered));
        assert!(!Registered.can_move_to(Registered));
        assert!(Registered.is_open() && !Done.is_open());
    }
}
