// Queries of `store::reviews`, compiled once per dialect by `per_backend!`.

use sqlx::{Pool, QueryBuilder, Row};

use crate::store::backend::{push_in, push_scope};

pub(super) async fn upsert(
    pool: &Pool<Db>,
    call_id: &str,
    reviewer: &str,
    score: i64,
    comment: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let tenant: Option<Option<i64>> =
        sqlx::query_scalar("SELECT tenant_id FROM calls WHERE id = $1")
            .bind(call_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(tenant) = tenant else {
        return Err(StoreError::not_found("call", call_id));
    };
    sqlx::query(
        "INSERT INTO call_reviews (call_id, tenant_id, reviewer, score, comment, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (call_id, reviewer) DO UPDATE SET score = excluded.score, \
         comment = excluded.comment, created_at = excluded.created_at",
    )
    .bind(call_id)
    .bind(tenant)
    .bind(reviewer)
    .bind(score)
    .bind(comment)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

const FROM: &str = " FROM call_reviews r LEFT JOIN tenants t ON t.id = r.tenant_id \
     LEFT JOIN calls c ON c.id = r.call_id WHERE 1 = 1";

pub(super) async fn list(
    pool: &Pool<Db>,
    scope: &TenantScope,
    filter: &ReviewFilter,
    offset: i64,
    limit: i64,
) -> Result<Page<CallReview>, StoreError> {
    let where_clause = |qb: &mut QueryBuilder<Db>| {
        if matches!(scope, TenantScope::Only(_)) {
            push_scope(qb, scope, "t.code");
        }
        if let Some(tenant) = &filter.tenant {
            qb.push(" AND t.code = ").push_bind(tenant.clone());
        }
        if let Some(operator) = &filter.operator {
            qb.push(" AND c.operator_extension = ").push_bind(operator.clone());
        }
        if let Some(call) = &filter.call_id {
            qb.push(" AND r.call_id = ").push_bind(call.clone());
        }
        if !filter.calls.is_empty() {
            qb.push(" AND ");
            push_in(qb, "r.call_id", &filter.calls);
        }
        if let Some(from) = filter.from {
            qb.push(" AND r.created_at >= ").push_bind(from);
        }
        if let Some(to) = filter.to {
            qb.push(" AND r.created_at < ").push_bind(to);
        }
    };
    let mut count = QueryBuilder::<Db>::new(format!("SELECT COUNT(*){FROM}"));
    where_clause(&mut count);
    let total: i64 = count.build_query_scalar().fetch_one(pool).await?;
    let mut qb = QueryBuilder::<Db>::new(format!(
        "SELECT r.call_id, t.code AS tenant, r.reviewer, r.score, r.comment, r.created_at, \
         c.operator_extension, c.offered_at, c.ticket_id{FROM}"
    ));
    where_clause(&mut qb);
    qb.push(" ORDER BY r.created_at DESC, r.id DESC LIMIT ")
        .push_bind(limit)
        .push(" OFFSET ")
        .push_bind(offset);
    let items = qb
        .build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(CallReview {
                call_id: r.try_get("call_id")?,
                tenant: r.try_get("tenant")?,
                reviewer: r.try_get("reviewer")?,
                score: r.try_get("score")?,
                comment: r.try_get("comment")?,
                created_at: r.try_get("created_at")?,
                operator: r.try_get("operator_extension")?,
                offered_at: r.try_get("offered_at")?,
                ticket_id: r.try_get("ticket_id")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Page {
        items,
        total,
        offset,
        limit,
    })
}
