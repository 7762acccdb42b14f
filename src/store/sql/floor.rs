// Queries of `store::floor`, compiled once per dialect by `per_backend!`.

use sqlx::{Pool, Row};

/// Nodes known alive at `$1`.
const LIVE: &str = "(SELECT id FROM nodes WHERE alive_until > $1)";

pub(super) async fn snapshot(
    pool: &Pool<Db>,
    now: DateTime<Utc>,
) -> Result<FloorSnapshot, StoreError> {
    let sql = format!(
        "SELECT extension, state, reason, since, call_id, holder, node, \
         CASE WHEN holder IN {LIVE} THEN 1 ELSE 0 END AS holder_alive \
         FROM floor_operators ORDER BY extension"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .fetch_all(pool)
        .await?;
    let mut operators = Vec::with_capacity(rows.len());
    for row in rows {
        let alive: i32 = row.try_get("holder_alive")?;
        operators.push(FloorOperator {
            extension: row.try_get("extension")?,
            state: row.try_get("state")?,
            reason: row.try_get("reason")?,
            since: row.try_get("since")?,
            call_id: row.try_get("call_id")?,
            holder: row.try_get("holder")?,
            holder_alive: alive == 1,
            node: row.try_get("node")?,
        });
    }
    let rows = sqlx::query("SELECT extension, node, bindings FROM floor_bindings ORDER BY extension, node")
        .fetch_all(pool)
        .await?;
    let mut bindings = Vec::with_capacity(rows.len());
    for row in rows {
        bindings.push(FloorBindings {
            extension: row.try_get("extension")?,
            node: row.try_get("node")?,
            bindings: row.try_get("bindings")?,
        });
    }
    Ok(FloorSnapshot {
        operators,
        bindings,
    })
}

pub(super) async fn put_operator(
    pool: &Pool<Db>,
    node: &str,
    w: OperatorWrite<'_>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let sql = format!(
        "SELECT call_id, holder, CASE WHEN holder IN {LIVE} THEN 1 ELSE 0 END AS holder_alive \
         FROM floor_operators WHERE extension = $2{}",
        Db::FOR_UPDATE
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(w.extension)
        .fetch_optional(&mut *tx)
        .await?;
    let on_call_elsewhere = match &row {
        Some(row) => {
            let call: Option<String> = row.try_get("call_id")?;
            let holder: Option<String> = row.try_get("holder")?;
            let alive: i32 = row.try_get("holder_alive")?;
            call.is_some() && alive == 1 && holder.as_deref() != Some(node)
        }
        None => false,
    };
    if on_call_elsewhere {
        // Their call is another node's: only the pause to take after it is ours to set.
        sqlx::query("UPDATE floor_operators SET reason = $1, node = $2 WHERE extension = $3")
            .bind(w.reason)
            .bind(node)
            .bind(w.extension)
            .execute(&mut *tx)
            .await?;
    } else {
        sqlx::query(
            "INSERT INTO floor_operators (extension, state, reason, since, call_id, holder, node) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (extension) DO UPDATE SET state = excluded.state, reason = excluded.reason, \
             since = excluded.since, call_id = excluded.call_id, holder = excluded.holder, node = excluded.node",
        )
        .bind(w.extension)
        .bind(w.state)
        .bind(w.reason)
        .bind(w.since)
        .bind(w.call_id)
        .bind(w.held.then_some(node))
        .bind(node)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn put_bindings(
    pool: &Pool<Db>,
    node: &str,
    extension: &str,
    bindings: Option<&str>,
) -> Result<(), StoreError> {
    match bindings {
        Some(json) if json != "[]" => {
            sqlx::query(
                "INSERT INTO floor_bindings (extension, node, bindings) VALUES ($1, $2, $3) \
                 ON CONFLICT (extension, node) DO UPDATE SET bindings = excluded.bindings",
            )
            .bind(extension)
            .bind(node)
            .bind(json)
            .execute(pool)
            .await?;
        }
        _ => {
            sqlx::query("DELETE FROM floor_bindings WHERE extension = $1 AND node = $2")
                .bind(extension)
                .bind(node)
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

pub(super) async fn acquire(
    pool: &Pool<Db>,
    node: &str,
    demand: &[FloorDemand],
    serves: Serves<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    sqlx::query("DELETE FROM floor_demand WHERE node = $1")
        .bind(node)
        .execute(&mut *tx)
        .await?;
    for d in demand {
        sqlx::query(
            "INSERT INTO floor_demand (node, tenant, city, since, waiting) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (node, tenant, city) DO UPDATE SET since = excluded.since, \
             waiting = excluded.waiting",
        )
        .bind(node)
        .bind(d.tenant.as_deref().unwrap_or(""))
        .bind(d.city.as_deref().unwrap_or(""))
        .bind(d.since)
        .bind(i64::from(d.waiting))
        .execute(&mut *tx)
        .await?;
    }
    if demand.is_empty() {
        tx.commit().await?;
        return Ok(Vec::new());
    }
    // Ready operators nobody alive holds, longest idle first; rows another node is
    // granting right now are skipped, not waited for. An operator whose call died
    // with its node (busy or wrapping up for a node no longer alive, with no pause
    // asked for) is ready: that is what every node's mirror shows, and nobody else
    // will ever write her row.
    let sql = format!(
        "SELECT extension FROM floor_operators WHERE \
         (state = 'ready' AND call_id IS NULL \
          AND (holder IS NULL OR holder = $2 OR holder NOT IN {LIVE})) \
         OR (state IN ('busy', 'wrap-up') AND reason IS NULL \
          AND holder IS NOT NULL AND holder <> $2 AND holder NOT IN {LIVE}) \
         ORDER BY since, extension{}",
        Db::SKIP_LOCKED
    );
    let free: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(node)
        .fetch_all(&mut *tx)
        .await?;
    if free.is_empty() {
        tx.commit().await?;
        return Ok(Vec::new());
    }
    // Everyone's waiting work, oldest first (ties go to the lower node id).
    let sql = format!(
        "SELECT node, tenant, city, waiting FROM floor_demand \
         WHERE node = $2 OR node IN {LIVE} ORDER BY since, node"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(node)
        .fetch_all(&mut *tx)
        .await?;
    let mut waiting: Vec<(String, Option<String>, Option<String>, i64)> =
        Vec::with_capacity(rows.len());
    for row in rows {
        let tenant: String = row.try_get("tenant")?;
        let city: String = row.try_get("city")?;
        waiting.push((
            row.try_get("node")?,
            (!tenant.is_empty()).then_some(tenant),
            (!city.is_empty()).then_some(city),
            row.try_get("waiting")?,
        ));
    }
    let mut granted = Vec::new();
    for extension in free {
        // The operator goes to the oldest work they serve; each one granted (here
        // or left for another node) takes one waiting call or job off its row.
        let first = waiting.iter_mut().find(|(_, tenant, city, count)| {
            *count > 0 && serves(&extension, tenant.as_deref(), city.as_deref())
        });
        let Some((owner, _, _, count)) = first else {
            continue;
        };
        *count -= 1;
        if owner == node {
            // `node` stays the writer of the state: the grantee must still read it.
            // A call that died with its node is cleared with the grant, or the
            // grantee would mirror her as busy on it, now under a live holder.
            sqlx::query(
                "UPDATE floor_operators SET holder = $1, call_id = NULL, \
                 state = CASE WHEN state IN ('busy', 'wrap-up') THEN 'ready' ELSE state END, \
                 since = CASE WHEN state IN ('busy', 'wrap-up') THEN $3 ELSE since END \
                 WHERE extension = $2",
            )
                .bind(node)
                .bind(&extension)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            granted.push(extension);
        }
    }
    tx.commit().await?;
    Ok(granted)
}
