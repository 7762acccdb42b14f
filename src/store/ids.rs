//! Typed row identifiers, so a house id is never passed where a ticket id belongs.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta] $name:ident;)*) => {$(
        #[$doc]
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            Serialize, Deserialize, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

id_type! {
    /// A city or region.
    CityId;
    /// A management company.
    TenantId;
    /// A resource supplier (РСО).
    SupplierId;
    /// A group of houses sharing one responsibility matrix.
    HouseGroupId;
    /// A house.
    HouseId;
    /// An employee of a tenant or of a resource supplier.
    EmployeeId;
    /// An entry of the reasons catalogue.
    ReasonId;
    /// A ticket (the registration number residents hear is separate).
    TicketId;
    /// A ticket handed over to a resource supplier.
    SupplierTicketId;
    /// A call recording.
    RecordingId;
    /// A persistent outbound dial job.
    DialJobId;
    /// An escalation chain of dial jobs for one ticket.
    DialChainId;
    /// An outage notice.
    OutageId;
    /// A debtor entry.
    DebtorId;
    /// A phone-to-address contact.
    ContactId;
    /// A console account (and softphone extension).
    UserId;
    /// A ticket label a tenant offers its operators.
    TagId;
}
