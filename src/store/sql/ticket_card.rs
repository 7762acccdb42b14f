// Queries of `store::ticket_card`, compiled once per dialect by `per_backend!`.

use sqlx::{Pool, QueryBuilder, Row};

/// Every call linked to a ticket, with what linked it (a call may come twice).
pub(super) async fn calls_of(pool: &Pool<Db>, id: TicketId) -> Result<Vec<TicketCall>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new("SELECT k.kind, cc.* FROM (");
    qb.push(
        "SELECT c.id AS call_id, CASE WHEN c.direction = 'inbound' THEN 'inbound' ELSE 'outbound' END AS kind \
         FROM calls c WHERE c.ticket_id = ",
    )
    .push_bind(id.0);
    qb.push(
        " UNION SELECT ca.call_id, 'handoff' FROM chain_attempts ca \
         JOIN dial_chains dc ON dc.id = ca.chain_id WHERE ca.call_id IS NOT NULL AND dc.ticket_id = ",
    )
    .push_bind(id.0);
    qb.push(
        " UNION SELECT da.call_id, dj.kind FROM dial_attempts da JOIN dial_jobs dj ON dj.id = da.job_id \
         WHERE da.call_id IS NOT NULL AND dj.ticket_id = ",
    )
    .push_bind(id.0);
    qb.push(
        " UNION SELECT st.last_call_id, 'supplier-query' FROM supplier_tickets st \
         WHERE st.last_call_id IS NOT NULL AND st.ticket_id = ",
    )
    .push_bind(id.0);
    qb.push(") k JOIN (");
    qb.push(peers::journal::CALL_SELECT);
    qb.push(") cc ON cc.id = k.call_id ORDER BY cc.offered_at, cc.id LIMIT 500");
    let rows = qb.build().fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            Ok(TicketCall {
                kind: r.try_get("kind")?,
                call: peers::journal::call_from(r)?,
            })
        })
        .collect()
}

pub(super) async fn ratings_of(
    pool: &Pool<Db>,
    id: TicketId,
) -> Result<Vec<TicketRating>, StoreError> {
    let rows = sqlx::query(
        "SELECT sa.metric, sa.score, sa.executor_id, e.name AS executor_name, sa.call_id, sa.answered_at \
         FROM survey_answers sa LEFT JOIN employees e ON e.id = sa.executor_id \
         WHERE sa.ticket_id = $1 ORDER BY sa.answered_at, sa.id",
    )
    .bind(id.0)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(TicketRating {
                metric: r.try_get("metric")?,
                score: r.try_get("score")?,
                executor_id: r.try_get::<Option<i64>, _>("executor_id")?.map(EmployeeId),
                executor_name: r.try_get("executor_name")?,
                call_id: r.try_get("call_id")?,
                answered_at: r.try_get("answered_at")?,
            })
        })
        .collect()
}
