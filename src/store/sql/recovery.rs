// Queries of `store::recovery`, compiled once per dialect by `per_backend!`.

use sqlx::{Pool, QueryBuilder, Row};

pub(super) async fn own_calls(pool: &Pool<Db>, node: &str, ids: &[&str]) -> Result<(), StoreError> {
    let mut qb = QueryBuilder::<Db>::new("UPDATE calls SET node = ");
    qb.push_bind(node.to_owned())
        .push(" WHERE node IS NULL AND id IN (");
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind((*id).to_owned());
    }
    list.push_unseparated(")");
    qb.build().execute(pool).await?;
    Ok(())
}

pub(super) async fn close_unfinished(
    pool: &Pool<Db>,
    node: &str,
    now: DateTime<Utc>,
    plan: PlanCallback<'_>,
) -> Result<Recovered, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let select = format!(
        "SELECT c.id, c.from_number, c.to_number, c.tenant_id, t.code AS tenant, c.offered_at, \
         c.queued_at, c.answered_at, c.updated_at, EXISTS (SELECT 1 FROM dial_jobs j \
         WHERE j.call_id = c.id AND j.kind = 'callback') AS has_callback \
         FROM calls c LEFT JOIN tenants t ON t.id = c.tenant_id \
         WHERE c.node = $1 AND c.ended_at IS NULL{}",
        // The rows are locked: a survivor recovering a dead node and the node itself
        // restarting close each row once (the second finds it ended), so no caller
        // gets two callbacks. SQLite's write transaction already serialises them.
        if Db::FOR_UPDATE.is_empty() { "" } else { " FOR UPDATE OF c" }
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(select))
        .bind(node.to_owned())
        .fetch_all(&mut *tx)
        .await?;
    let mut recovered = Recovered {
        closed: rows.len() as u64,
        ..Recovered::default()
    };
    for row in &rows {
        let id: String = row.try_get("id")?;
        let offered: DateTime<Utc> = row.try_get("offered_at")?;
        let queued: Option<DateTime<Utc>> = row.try_get("queued_at")?;
        let answered: Option<DateTime<Utc>> = row.try_get("answered_at")?;
        let last: DateTime<Utc> = row.try_get("updated_at")?;
        let ended = last.max(offered);
        let (disposition, wait, talk) = match answered {
            Some(at) => (
                "answered",
                (at - offered).num_seconds().max(0),
                (ended - at).num_seconds().max(0),
            ),
            None if queued.is_some() => {
                // A callback the call already had is not doubled.
                let has_callback: bool = row.try_get("has_callback")?;
                if !has_callback {
                    let caller = WaitingCaller {
                        call_id: id.clone(),
                        from_number: row.try_get("from_number")?,
                        to_number: row.try_get("to_number")?,
                        tenant: row.try_get("tenant")?,
                        offered_at: offered,
                    };
                    // The callback is written with the row's closing, in this
                    // transaction: a crash now loses both or neither.
                    if let Some(job) = plan(&caller) {
                        let tenant_id: Option<i64> = row.try_get("tenant_id")?;
                        let origin = Some(caller.to_number.as_str());
                        if peers::dial_jobs::insert_job(&mut tx, &job, tenant_id, origin, now)
                            .await?
                            .is_some()
                        {
                            recovered.callbacks += 1;
                        }
                    }
                    recovered.waiting.push(caller);
                }
                ("callback-scheduled", (ended - offered).num_seconds().max(0), 0)
            }
            None => ("failed", (ended - offered).num_seconds().max(0), 0),
        };
        sqlx::query(
            "UPDATE calls SET ended_at = $2, disposition = COALESCE(disposition, $3), \
             wait_seconds = COALESCE(wait_seconds, $4), talk_seconds = COALESCE(talk_seconds, $5), \
             updated_at = $6 WHERE id = $1 AND ended_at IS NULL",
        )
        .bind(&id)
        .bind(ended)
        .bind(disposition)
        .bind(wait)
        .bind(talk)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(recovered)
}
