// Queries of `store::attachments`, compiled once per dialect by `per_backend!`.

use sqlx::{Pool, Row};

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, ticket_id, file_name, content_type, bytes, path, uploaded_by, created_at \
             FROM ticket_attachments ",
            $tail
        )
    };
}

fn from_row(r: &<Db as sqlx::Database>::Row) -> Result<Attachment, StoreError> {
    Ok(Attachment {
        id: r.try_get("id")?,
        ticket_id: TicketId(r.try_get("ticket_id")?),
        file_name: r.try_get("file_name")?,
        content_type: r.try_get("content_type")?,
        bytes: r.try_get("bytes")?,
        path: r.try_get("path")?,
        uploaded_by: r.try_get("uploaded_by")?,
        created_at: r.try_get("created_at")?,
    })
}

pub(super) async fn insert(
    pool: &Pool<Db>,
    new: &NewAttachment<'_>,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    peers::tickets::lock(&mut tx, new.ticket_id).await?;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ticket_attachments WHERE ticket_id = $1")
        .bind(new.ticket_id.0)
        .fetch_one(&mut *tx)
        .await?;
    if count >= MAX_PER_TICKET {
        return Err(StoreError::invalid(
            "file",
            format!("a ticket holds at most {MAX_PER_TICKET} files"),
        ));
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO ticket_attachments (ticket_id, file_name, content_type, bytes, path, uploaded_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(new.ticket_id.0)
    .bind(new.file_name)
    .bind(new.content_type)
    .bind(new.bytes)
    .bind(new.path)
    .bind(new.uploaded_by)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

pub(super) async fn get(pool: &Pool<Db>, id: i64) -> Result<Option<Attachment>, StoreError> {
    let row = sqlx::query(select!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub(super) async fn of_ticket(pool: &Pool<Db>, ticket: TicketId) -> Result<Vec<Attachment>, StoreError> {
    let rows = sqlx::query(select!("WHERE ticket_id = $1 ORDER BY id"))
        .bind(ticket.0)
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}
