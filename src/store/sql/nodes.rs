// Queries of `store::nodes`, compiled once per dialect by `per_backend!`.

use sqlx::Pool;

pub(super) async fn upsert(
    pool: &Pool<Db>,
    node: &str,
    started: Option<DateTime<Utc>>,
    alive_until: DateTime<Utc>,
) -> Result<(), StoreError> {
    let sql = if started.is_some() {
        "INSERT INTO nodes (id, started_at, alive_until) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at, alive_until = excluded.alive_until"
    } else {
        "INSERT INTO nodes (id, started_at, alive_until) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET alive_until = excluded.alive_until"
    };
    sqlx::query(sql)
        .bind(node)
        .bind(started.unwrap_or(alive_until))
        .bind(alive_until)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn live(pool: &Pool<Db>, now: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM nodes WHERE alive_until > $1 ORDER BY id")
            .bind(now)
            .fetch_all(pool)
            .await?,
    )
}
