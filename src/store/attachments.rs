//! Files attached to a ticket (photos from executors, scanned acts): the store keeps
//! each file's name, type, size and where it lies under the data directory; the
//! bytes are files the console's API writes and serves.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::backend::{dispatch, per_backend};
use super::ids::TicketId;
use super::{Store, StoreError};

per_backend!("sql/attachments.rs");

/// Most files one ticket may hold.
pub const MAX_PER_TICKET: i64 = 20;

/// A file attached to a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    /// Row id.
    pub id: i64,
    /// The ticket.
    pub ticket_id: TicketId,
    /// The name it was uploaded with.
    pub file_name: String,
    /// Its media type (checked against its first bytes on upload).
    pub content_type: String,
    /// Its size.
    pub bytes: i64,
    /// Where it lies, relative to the attachments directory.
    #[serde(skip)]
    pub path: String,
    /// Who uploaded it.
    pub uploaded_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A file to record.
#[derive(Debug, Clone)]
pub struct NewAttachment<'a> {
    /// The ticket.
    pub ticket_id: TicketId,
    /// The uploaded name.
    pub file_name: &'a str,
    /// Its media type.
    pub content_type: &'a str,
    /// Its size.
    pub bytes: i64,
    /// Where it was written, relative to the attachments directory.
    pub path: &'a str,
    /// Who uploads it.
    pub uploaded_by: &'a str,
}

impl Store {
    /// Records a file written for a ticket; refused past [`MAX_PER_TICKET`].
    pub async fn add_attachment(
        &self,
        new: &NewAttachment<'_>,
        now: DateTime<Utc>,
    ) -> Result<Attachment, StoreError> {
        let id = dispatch!(self, insert(new, now))?;
        self.attachment(id)
            .await?
            .ok_or_else(|| StoreError::not_found("attachment", id))
    }

    /// One file by id.
    pub async fn attachment(&self, id: i64) -> Result<Option<Attachment>, StoreError> {
        dispatch!(self, get(id))
    }

    /// A ticket's files, oldest first.
    pub async fn attachments(&self, ticket: TicketId) -> Result<Vec<Attachment>, StoreError> {
        dispatch!(self, of_ticket(ticket))
    }
}
