// Queries of `store::access`, compiled once per dialect by `per_backend!`.

use sqlx::{Pool, QueryBuilder, Row};

pub(super) async fn log_access(pool: &Pool<Db>, entries: &[AccessEntry]) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    for chunk in entries.chunks(500) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO pd_access_log (at, principal, tenant_id, subject, subject_id, purpose) ",
        );
        qb.push_values(chunk, |mut b, e| {
            b.push_bind(e.at)
                .push_bind(e.principal.clone())
                .push("(SELECT id FROM tenants WHERE code = ")
                .push_bind_unseparated(e.tenant.clone())
                .push_unseparated(")")
                .push_bind(e.subject.clone())
                .push_bind(e.subject_id.clone())
                .push_bind(e.purpose.clone());
        });
        qb.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn access_log(
    pool: &Pool<Db>,
    limit: i64,
) -> Result<Vec<AccessEntry>, StoreError> {
    let rows = sqlx::query(
        "SELECT l.at, l.principal, t.code AS tenant, l.subject, l.subject_id, l.purpose \
         FROM pd_access_log l LEFT JOIN tenants t ON t.id = l.tenant_id ORDER BY l.id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AccessEntry {
                at: r.try_get("at")?,
                principal: r.try_get("principal")?,
                tenant: r.try_get("tenant")?,
                subject: r.try_get("subject")?,
                subject_id: r.try_get("subject_id")?,
                purpose: r.try_get("purpose")?,
            })
        })
        .collect()
}

pub(super) async fn store_token(
    pool: &Pool<Db>,
    hash: &str,
    token: &StoredToken,
    tenants: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO console_tokens (token_hash, extension, role, tenants, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(hash)
    .bind(&token.extension)
    .bind(&token.role)
    .bind(tenants)
    .bind(now)
    .bind(token.expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn token(
    pool: &Pool<Db>,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<(String, String, String, DateTime<Utc>)>, StoreError> {
    let row = sqlx::query(
        "SELECT extension, role, tenants, expires_at FROM console_tokens WHERE token_hash = $1 AND expires_at > $2",
    )
    .bind(hash)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok((
            r.try_get("extension")?,
            r.try_get("role")?,
            r.try_get("tenants")?,
            r.try_get("expires_at")?,
        ))
    })
    .transpose()
}

pub(super) async fn purge_tokens(pool: &Pool<Db>, now: DateTime<Utc>) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM console_tokens WHERE expires_at <= $1")
        .bind(now)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

pub(super) async fn revoke_token(pool: &Pool<Db>, hash: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM console_tokens WHERE token_hash = $1")
        .bind(hash)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn renew_token(
    pool: &Pool<Db>,
    hash: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE console_tokens SET expires_at = $1 WHERE token_hash = $2 AND expires_at > $3",
    )
    .bind(expires_at)
    .bind(hash)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}
