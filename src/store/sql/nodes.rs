// Queries of `store::nodes`, compiled once per dialect by `per_backend!`.

use sqlx::Pool;

pub(super) async fn upsert(
    pool: &Pool<Db>,
    node: &str,
    started: Option<DateTime<Utc>>,
    alive_until: DateTime<Utc>,
    recovered: bool,
) -> Result<(), StoreError> {
    // A node that starts or renews its row is alive again: a later death is
    // recovered again. One that stopped cleanly left nothing to recover.
    let recovered_by = if recovered { "excluded.id" } else { "NULL" };
    let started_set = if started.is_some() {
        "started_at = excluded.started_at, "
    } else {
        ""
    };
    let sql = format!(
        "INSERT INTO nodes (id, started_at, alive_until) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET {started_set}alive_until = excluded.alive_until, \
         recovered_by = {recovered_by}, recovered_at = NULL"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(node)
        .bind(started.unwrap_or(alive_until))
        .bind(alive_until)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn claim_dead(
    pool: &Pool<Db>,
    node: &str,
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    // One conditional UPDATE per row: of several survivors asking at once, the
    // first to lock a dead node's row takes it; the others find `recovered_by` set.
    let mut dead: Vec<String> = sqlx::query_scalar(
        "UPDATE nodes SET recovered_by = $1, recovered_at = $2 \
         WHERE alive_until <= $2 AND recovered_by IS NULL AND id <> $1 RETURNING id",
    )
    .bind(node)
    .bind(now)
    .fetch_all(pool)
    .await?;
    dead.sort();
    Ok(dead)
}

pub(super) async fn recovered_by(pool: &Pool<Db>, node: &str) -> Result<Option<String>, StoreError> {
    let by: Option<Option<String>> =
        sqlx::query_scalar("SELECT recovered_by FROM nodes WHERE id = $1")
            .bind(node)
            .fetch_optional(pool)
            .await?;
    Ok(by.flatten())
}

pub(super) async fn live(pool: &Pool<Db>, now: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM nodes WHERE alive_until > $1 ORDER BY id")
            .bind(now)
            .fetch_all(pool)
            .await?,
    )
}

pub(super) async fn statuses(
    pool: &Pool<Db>,
    now: DateTime<Utc>,
) -> Result<Vec<NodeStatus>, StoreError> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT id, started_at, alive_until, recovered_by, recovered_at FROM nodes \
         WHERE alive_until > $1 ORDER BY id",
    )
    .bind(now - chrono::Duration::days(1))
    .fetch_all(pool)
    .await?;
    let mut nodes = Vec::with_capacity(rows.len());
    for row in rows {
        let alive_until: DateTime<Utc> = row.try_get("alive_until")?;
        nodes.push(NodeStatus {
            id: row.try_get("id")?,
            started_at: row.try_get("started_at")?,
            alive_until,
            alive: alive_until > now,
            recovered_by: row.try_get("recovered_by")?,
            recovered_at: row.try_get("recovered_at")?,
        });
    }
    Ok(nodes)
}
