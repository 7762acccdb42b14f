// Queries of `store::journal`, compiled once per dialect by `per_backend!`.

use sqlx::{Pool, QueryBuilder, Row};

use crate::store::backend::push_scope;

pub(super) async fn upsert_calls(
    pool: &Pool<Db>,
    calls: &[CallRecord],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let mut tenants: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for call in calls {
        let tenant_id: Option<i64> = match &call.tenant {
            Some(code) => Some(match tenants.get(code.as_str()) {
                Some(id) => *id,
                None => {
                    let id: i64 = sqlx::query_scalar("SELECT id FROM tenants WHERE code = $1")
                        .bind(code)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or_else(|| {
                            StoreError::invalid("tenant", format!("unknown tenant `{code}`"))
                        })?;
                    tenants.insert(code.as_str(), id);
                    id
                }
            }),
            None => None,
        };
        sqlx::query(
        "INSERT INTO calls (id, direction, from_number, to_number, tenant_id, number_kind, offered_at, \
         queued_at, answered_at, ended_at, wait_seconds, talk_seconds, disposition, operator_extension, \
         recording_id, ticket_id, rating, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
         COALESCE($16, (SELECT MIN(t.id) FROM tickets t WHERE t.call_id = $1 \
           AND ($5 IS NULL OR t.tenant_id = $5))), $17, $18) \
         ON CONFLICT (id) DO UPDATE SET \
         tenant_id = COALESCE(excluded.tenant_id, calls.tenant_id), \
         number_kind = COALESCE(excluded.number_kind, calls.number_kind), \
         queued_at = COALESCE(excluded.queued_at, calls.queued_at), \
         answered_at = COALESCE(excluded.answered_at, calls.answered_at), \
         ended_at = COALESCE(excluded.ended_at, calls.ended_at), \
         wait_seconds = COALESCE(excluded.wait_seconds, calls.wait_seconds), \
         talk_seconds = COALESCE(excluded.talk_seconds, calls.talk_seconds), \
         disposition = COALESCE(excluded.disposition, calls.disposition), \
         operator_extension = COALESCE(excluded.operator_extension, calls.operator_extension), \
         recording_id = COALESCE(excluded.recording_id, calls.recording_id), \
         ticket_id = COALESCE(excluded.ticket_id, calls.ticket_id), \
         rating = COALESCE(excluded.rating, calls.rating), \
         updated_at = excluded.updated_at",
    )
    .bind(&call.id)
    .bind(call.direction.as_str())
    .bind(&call.from_number)
    .bind(&call.to_number)
    .bind(tenant_id)
    .bind(call.number_kind.as_deref())
    .bind(call.offered_at)
    .bind(call.queued_at)
    .bind(call.answered_at)
    .bind(call.ended_at)
    .bind(call.wait_seconds)
    .bind(call.talk_seconds)
    .bind(call.disposition.map(Disposition::as_str))
    .bind(call.operator_extension.as_deref())
    .bind(call.recording_id.map(|r| r.0))
    .bind(call.ticket_id.map(|t| t.0))
        .bind(call.rating)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(in crate::store) const CALL_SELECT: &str = "SELECT c.id, c.direction, c.from_number, c.to_number, t.code AS tenant, \
     c.number_kind, c.offered_at, c.queued_at, c.answered_at, c.ended_at, c.wait_seconds, \
     c.talk_seconds, c.disposition, c.operator_extension, c.recording_id, c.ticket_id, c.rating \
     FROM calls c LEFT JOIN tenants t ON t.id = c.tenant_id";

pub(in crate::store) fn call_from(row: &<Db as sqlx::Database>::Row) -> Result<CallRecord, StoreError> {
    let direction: String = row.try_get("direction")?;
    let disposition: Option<String> = row.try_get("disposition")?;
    Ok(CallRecord {
        id: row.try_get("id")?,
        direction: direction.parse()?,
        from_number: row.try_get("from_number")?,
        to_number: row.try_get("to_number")?,
        tenant: row.try_get("tenant")?,
        number_kind: row.try_get("number_kind")?,
        offered_at: row.try_get("offered_at")?,
        queued_at: row.try_get("queued_at")?,
        answered_at: row.try_get("answered_at")?,
        ended_at: row.try_get("ended_at")?,
        wait_seconds: row.try_get("wait_seconds")?,
        talk_seconds: row.try_get("talk_seconds")?,
        disposition: disposition.map(|d| d.parse()).transpose()?,
        operator_extension: row.try_get("operator_extension")?,
        recording_id: row
            .try_get::<Option<i64>, _>("recording_id")?
            .map(RecordingId),
        ticket_id: row.try_get::<Option<i64>, _>("ticket_id")?.map(TicketId),
        rating: row.try_get("rating")?,
    })
}

pub(super) async fn get_call(pool: &Pool<Db>, id: &str) -> Result<Option<CallRecord>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(CALL_SELECT);
    qb.push(" WHERE c.id = ").push_bind(id.to_owned());
    let row = qb.build().fetch_optional(pool).await?;
    row.as_ref().map(call_from).transpose()
}

pub(super) async fn calls(
    pool: &Pool<Db>,
    scope: &TenantScope,
    filter: &CallFilter,
    offset: i64,
    limit: i64,
) -> Result<Page<CallRecord>, StoreError> {
    let where_clause = |qb: &mut QueryBuilder<Db>| {
        qb.push(" WHERE TRUE");
        push_scope(qb, scope, "t.code");
        if let Some(tenant) = &filter.tenant {
            qb.push(" AND t.code = ").push_bind(tenant.clone());
        }
        if let Some(direction) = filter.direction {
            qb.push(" AND c.direction = ").push_bind(direction.as_str());
        }
        if let Some(disposition) = filter.disposition {
            qb.push(" AND c.disposition = ")
                .push_bind(disposition.as_str());
        }
        if let Some(operator) = &filter.operator {
            qb.push(" AND c.operator_extension = ")
                .push_bind(operator.clone());
        }
        if let Some(ticket) = filter.ticket_id {
            qb.push(" AND c.ticket_id = ").push_bind(ticket.0);
        }
        if let Some(from) = filter.from {
            qb.push(" AND c.offered_at >= ").push_bind(from);
        }
        if let Some(to) = filter.to {
            qb.push(" AND c.offered_at < ").push_bind(to);
        }
    };
    let mut count = QueryBuilder::<Db>::new(
        "SELECT COUNT(*) FROM calls c LEFT JOIN tenants t ON t.id = c.tenant_id",
    );
    where_clause(&mut count);
    let total: i64 = count.build_query_scalar().fetch_one(pool).await?;
    let mut qb = QueryBuilder::<Db>::new(CALL_SELECT);
    where_clause(&mut qb);
    qb.push(" ORDER BY c.offered_at DESC, c.id DESC LIMIT ")
        .push_bind(limit)
        .push(" OFFSET ")
        .push_bind(offset);
    let rows = qb.build().fetch_all(pool).await?;
    Ok(Page {
        items: rows.iter().map(call_from).collect::<Result<_, _>>()?,
        total,
        offset,
        limit,
    })
}

pub(super) async fn insert_recording(
    pool: &Pool<Db>,
    call_id: &str,
    path: &str,
    duration_ms: i64,
    bytes: i64,
    now: DateTime<Utc>,
) -> Result<RecordingId, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    // The same file stored again (spooled work replayed after a crash, a repaired
    // recording linked twice) is the row stored before.
    let known: Option<i64> =
        sqlx::query_scalar("SELECT id FROM recordings WHERE path = $1 AND call_id = $2")
            .bind(path)
            .bind(call_id)
            .fetch_optional(&mut *tx)
            .await?;
    let id: i64 = match known {
        Some(id) => id,
        None => {
            sqlx::query_scalar(
                "INSERT INTO recordings (call_id, path, duration_ms, bytes, created_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(call_id)
            .bind(path)
            .bind(duration_ms)
            .bind(bytes)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?
        }
    };
    sqlx::query("UPDATE calls SET recording_id = $2, updated_at = $3 WHERE id = $1")
        .bind(call_id)
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(RecordingId(id))
}

pub(super) async fn recording(
    pool: &Pool<Db>,
    id: RecordingId,
) -> Result<Option<Recording>, StoreError> {
    let row = sqlx::query(
        "SELECT r.id, r.call_id, r.path, r.duration_ms, r.bytes, r.created_at, t.code AS tenant \
         FROM recordings r LEFT JOIN calls c ON c.id = r.call_id LEFT JOIN tenants t ON t.id = c.tenant_id \
         WHERE r.id = $1",
    )
    .bind(id.0)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(Recording {
        id: RecordingId(row.try_get("id")?),
        call_id: row.try_get("call_id")?,
        path: row.try_get("path")?,
        duration_ms: row.try_get("duration_ms")?,
        bytes: row.try_get("bytes")?,
        created_at: row.try_get("created_at")?,
        tenant: row.try_get("tenant")?,
    }))
}

pub(super) async fn insert_survey(
    pool: &Pool<Db>,
    ticket: Option<TicketId>,
    call_id: Option<&str>,
    metric: SurveyMetric,
    score: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO survey_answers (ticket_id, call_id, metric, score, answered_at, executor_id) \
         VALUES ($1, $2, $3, $4, $5, (SELECT executor_id FROM tickets WHERE id = $1))",
    )
    .bind(ticket.map(|t| t.0))
    .bind(call_id)
    .bind(metric.as_str())
    .bind(score)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}
