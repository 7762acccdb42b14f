// Queries of `store::notices`, compiled once per dialect by `per_backend!`.

use sqlx::{Pool, QueryBuilder, Row};

use crate::store::backend::{push_in, push_scope};
use crate::store::tickets::non_empty;

pub(super) async fn save_outage(
    pool: &Pool<Db>,
    id: Option<OutageId>,
    new: &NewOutage,
    now: DateTime<Utc>,
) -> Result<OutageId, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let tenant_id: i64 = sqlx::query_scalar("SELECT id FROM tenants WHERE code = $1")
        .bind(&new.tenant)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::invalid("tenant", format!("unknown tenant `{}`", new.tenant)))?;
    let mut houses = new.house_ids.iter().map(|h| h.0).collect::<Vec<_>>();
    houses.sort_unstable();
    houses.dedup();
    let mut qb = QueryBuilder::<Db>::new("SELECT COUNT(*) FROM houses WHERE tenant_id = ");
    qb.push_bind(tenant_id).push(" AND ");
    push_in(&mut qb, "id", &houses);
    let found: i64 = qb.build_query_scalar().fetch_one(&mut *tx).await?;
    if usize::try_from(found).ok() != Some(houses.len()) {
        return Err(StoreError::invalid(
            "house_ids",
            "a house is not the tenant's",
        ));
    }
    let id = match id {
        None => {
            sqlx::query_scalar(
                "INSERT INTO outages (tenant_id, kind, text, starts_at, ends_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(tenant_id)
            .bind(&new.kind)
            .bind(new.text.trim())
            .bind(new.starts_at)
            .bind(new.ends_at)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?
        }
        Some(id) => {
            let done = sqlx::query(
                "UPDATE outages SET kind = $3, text = $4, starts_at = $5, ends_at = $6 \
                 WHERE id = $1 AND tenant_id = $2",
            )
            .bind(id.0)
            .bind(tenant_id)
            .bind(&new.kind)
            .bind(new.text.trim())
            .bind(new.starts_at)
            .bind(new.ends_at)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::not_found("outage", id));
            }
            sqlx::query("DELETE FROM outage_houses WHERE outage_id = $1")
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
            id.0
        }
    };
    for house in houses {
        sqlx::query("INSERT INTO outage_houses (outage_id, house_id) VALUES ($1, $2)")
            .bind(id)
            .bind(house)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(OutageId(id))
}

pub(super) async fn delete_outage(pool: &Pool<Db>, id: OutageId) -> Result<(), StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    // A broadcast of a withdrawn outage stops: its calls not yet made are cancelled
    // (the calls made stay in the journal, no longer linked to it).
    sqlx::query(
        "UPDATE dial_jobs SET state = 'cancelled', outcome = 'outage-withdrawn', claimed_by = NULL, \
         claimed_until = NULL WHERE outage_id = $1 AND state IN ('pending', 'claimed')",
    )
    .bind(id.0)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM outage_houses WHERE outage_id = $1")
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
    let done = sqlx::query("DELETE FROM outages WHERE id = $1")
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::not_found("outage", id));
    }
    tx.commit().await?;
    Ok(())
}

async fn load_outages(
    pool: &Pool<Db>,
    mut qb: QueryBuilder<Db>,
) -> Result<Vec<Outage>, StoreError> {
    let rows = qb.build().fetch_all(pool).await?;
    let mut outages = Vec::with_capacity(rows.len());
    for row in rows {
        outages.push(Outage {
            id: OutageId(row.try_get("id")?),
            tenant: row.try_get("tenant")?,
            kind: row.try_get("kind")?,
            text: row.try_get("text")?,
            starts_at: row.try_get("starts_at")?,
            ends_at: row.try_get("ends_at")?,
            house_ids: Vec::new(),
        });
    }
    let ids: Vec<i64> = outages.iter().map(|o| o.id.0).collect();
    for chunk in ids.chunks(500) {
        let mut qb =
            QueryBuilder::<Db>::new("SELECT outage_id, house_id FROM outage_houses WHERE ");
        push_in(&mut qb, "outage_id", chunk);
        qb.push(" ORDER BY house_id");
        for row in qb.build().fetch_all(pool).await? {
            let outage: i64 = row.try_get("outage_id")?;
            let house = HouseId(row.try_get("house_id")?);
            if let Some(o) = outages.iter_mut().find(|o| o.id.0 == outage) {
                o.house_ids.push(house);
            }
        }
    }
    Ok(outages)
}

const OUTAGE_SELECT: &str = "SELECT o.id, t.code AS tenant, o.kind, o.text, o.starts_at, o.ends_at \
     FROM outages o JOIN tenants t ON t.id = o.tenant_id";

pub(super) async fn outage(pool: &Pool<Db>, id: OutageId) -> Result<Option<Outage>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(OUTAGE_SELECT);
    qb.push(" WHERE o.id = ").push_bind(id.0);
    Ok(load_outages(pool, qb).await?.into_iter().next())
}

pub(super) async fn outages(
    pool: &Pool<Db>,
    scope: &TenantScope,
    active_at: Option<DateTime<Utc>>,
) -> Result<Vec<Outage>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(OUTAGE_SELECT);
    qb.push(" WHERE TRUE");
    push_scope(&mut qb, scope, "t.code");
    if let Some(at) = active_at {
        qb.push(" AND o.starts_at <= ").push_bind(at);
        qb.push(" AND o.ends_at > ").push_bind(at);
    }
    qb.push(" ORDER BY o.starts_at DESC, o.id DESC LIMIT 500");
    load_outages(pool, qb).await
}

pub(super) async fn debtors(
    pool: &Pool<Db>,
    scope: &TenantScope,
    tenant: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<Page<Debtor>, StoreError> {
    let filter = |qb: &mut QueryBuilder<Db>| {
        qb.push(" WHERE TRUE");
        push_scope(qb, scope, "t.code");
        if let Some(tenant) = tenant {
            qb.push(" AND t.code = ").push_bind(tenant.to_owned());
        }
    };
    let mut count = QueryBuilder::<Db>::new(
        "SELECT COUNT(*) FROM debtors d JOIN tenants t ON t.id = d.tenant_id",
    );
    filter(&mut count);
    let total: i64 = count.build_query_scalar().fetch_one(pool).await?;
    let mut qb = QueryBuilder::<Db>::new(
        "SELECT d.id, t.code AS tenant, d.house_id, h.address, d.apartment, d.amount_kopecks, \
         d.valid_from, d.valid_until FROM debtors d JOIN tenants t ON t.id = d.tenant_id \
         JOIN houses h ON h.id = d.house_id",
    );
    filter(&mut qb);
    qb.push(" ORDER BY h.address, d.apartment, d.id LIMIT ")
        .push_bind(limit)
        .push(" OFFSET ")
        .push_bind(offset);
    let mut items = Vec::new();
    for row in qb.build().fetch_all(pool).await? {
        items.push(Debtor {
            id: DebtorId(row.try_get("id")?),
            tenant: row.try_get("tenant")?,
            house_id: HouseId(row.try_get("house_id")?),
            address: row.try_get("address")?,
            apartment: non_empty(row.try_get("apartment")?),
            amount_kopecks: row.try_get("amount_kopecks")?,
            valid_from: row.try_get("valid_from")?,
            valid_until: row.try_get("valid_until")?,
        });
    }
    Ok(Page {
        items,
        total,
        offset,
        limit,
    })
}

pub(super) async fn insert_debtors(
    pool: &Pool<Db>,
    tenant_id: i64,
    rows: &[(HouseId, DebtorRow)],
    replace: bool,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut conn = pool.acquire().await?;
    // Staged in a temporary table of this connection, which locks nothing others
    // need; see `store::contacts` for why.
    sqlx::query("DROP TABLE IF EXISTS import_debtor_rows")
        .execute(&mut *conn)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TEMP TABLE import_debtor_rows (house_id BIGINT NOT NULL, apartment TEXT NOT NULL, \
         amount_kopecks BIGINT NOT NULL, valid_until {} NOT NULL, PRIMARY KEY (house_id, apartment))",
        Db::DATE_TYPE
    )))
    .execute(&mut *conn)
    .await?;
    let applied = stage_and_apply_debtors(&mut conn, tenant_id, rows, replace, today, now).await;
    let dropped = sqlx::query("DROP TABLE IF EXISTS import_debtor_rows")
        .execute(&mut *conn)
        .await;
    let deleted = applied?;
    dropped?;
    Ok(deleted)
}

async fn stage_and_apply_debtors(
    conn: &mut <Db as sqlx::Database>::Connection,
    tenant_id: i64,
    rows: &[(HouseId, DebtorRow)],
    replace: bool,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    {
        use sqlx::Connection as _;
        let mut stage = conn.begin().await?;
        // Four binds a row: far below both dialects' limits.
        for chunk in rows.chunks(1000) {
            let mut qb = QueryBuilder::<Db>::new(
                "INSERT INTO import_debtor_rows (house_id, apartment, amount_kopecks, valid_until) ",
            );
            qb.push_values(chunk, |mut b, (house, row)| {
                b.push_bind(house.0)
                    .push_bind(row.apartment.clone())
                    .push_bind(row.amount_kopecks)
                    .push_bind(row.valid_until);
            });
            qb.build().execute(&mut *stage).await?;
        }
        stage.commit().await?;
    }
    let mut tx = Db::begin_write_on(conn).await?;
    // `WHERE TRUE` keeps SQLite from reading `ON CONFLICT` as a join constraint.
    sqlx::query(
        "INSERT INTO debtors (tenant_id, house_id, apartment, amount_kopecks, valid_from, \
         valid_until, imported_at) \
         SELECT $1, house_id, apartment, amount_kopecks, $2, valid_until, $3 FROM import_debtor_rows \
         WHERE TRUE ON CONFLICT (house_id, apartment) DO UPDATE SET amount_kopecks = excluded.amount_kopecks, \
         valid_from = excluded.valid_from, valid_until = excluded.valid_until, \
         imported_at = excluded.imported_at, tenant_id = excluded.tenant_id",
    )
    .bind(tenant_id)
    .bind(today)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let deleted = if replace {
        sqlx::query(
            "DELETE FROM debtors WHERE tenant_id = $1 AND NOT EXISTS (SELECT 1 FROM import_debtor_rows s \
             WHERE s.house_id = debtors.house_id AND s.apartment = debtors.apartment)",
        )
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
    } else {
        0
    };
    tx.commit().await?;
    Ok(deleted)
}
