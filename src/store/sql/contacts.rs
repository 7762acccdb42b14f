// Queries of `store::contacts`, compiled once per dialect by `per_backend!`.

use sqlx::{Pool, QueryBuilder, Row};

use crate::store::backend::push_scope;

pub(super) async fn learn(
    pool: &Pool<Db>,
    phone: &PhoneNumber,
    tenant: &str,
    house: HouseId,
    apartment: &str,
    now: DateTime<Utc>,
) -> Result<ContactId, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let tenant_id: i64 = sqlx::query_scalar(
        "SELECT h.tenant_id FROM houses h JOIN tenants t ON t.id = h.tenant_id WHERE h.id = $1 AND t.code = $2",
    )
    .bind(house.0)
    .bind(tenant)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| StoreError::not_found("house", house))?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO contacts (phone, tenant_id, house_id, apartment, source, created_at, last_seen_at) \
         VALUES ($1, $2, $3, $4, 'learnt', $5, $5) \
         ON CONFLICT (phone, house_id, apartment) DO UPDATE SET last_seen_at = excluded.last_seen_at, \
         source = 'learnt' RETURNING id",
    )
    .bind(phone.as_str())
    .bind(tenant_id)
    .bind(house.0)
    .bind(apartment)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ContactId(id))
}

pub(super) async fn list(
    pool: &Pool<Db>,
    scope: &TenantScope,
    filter: &ContactFilter,
    digits: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<Page<Contact>, StoreError> {
    let where_clause = |qb: &mut QueryBuilder<Db>| {
        qb.push(" WHERE TRUE");
        push_scope(qb, scope, "t.code");
        if let Some(tenant) = &filter.tenant {
            qb.push(" AND t.code = ").push_bind(tenant.clone());
        }
        if let Some(house) = filter.house_id {
            qb.push(" AND c.house_id = ").push_bind(house.0);
        }
        if let Some(digits) = digits {
            qb.push(" AND c.phone LIKE ")
                .push_bind(format!("%{digits}%"));
        }
    };
    let mut count = QueryBuilder::<Db>::new(
        "SELECT COUNT(*) FROM contacts c JOIN tenants t ON t.id = c.tenant_id",
    );
    where_clause(&mut count);
    let total: i64 = count.build_query_scalar().fetch_one(pool).await?;
    let mut qb = QueryBuilder::<Db>::new(
        "SELECT c.id, c.phone, t.code AS tenant, c.house_id, h.address, c.apartment, c.source, \
         c.created_at, c.last_seen_at, c.imported_at FROM contacts c JOIN tenants t ON t.id = c.tenant_id \
         JOIN houses h ON h.id = c.house_id",
    );
    where_clause(&mut qb);
    qb.push(" ORDER BY c.last_seen_at DESC, c.id DESC LIMIT ")
        .push_bind(limit)
        .push(" OFFSET ")
        .push_bind(offset);
    let mut items = Vec::new();
    for row in qb.build().fetch_all(pool).await? {
        let source: String = row.try_get("source")?;
        items.push(Contact {
            id: ContactId(row.try_get("id")?),
            phone: row.try_get("phone")?,
            tenant: row.try_get("tenant")?,
            house_id: HouseId(row.try_get("house_id")?),
            address: row.try_get("address")?,
            apartment: non_empty(row.try_get("apartment")?),
            source: source.parse()?,
            created_at: row.try_get("created_at")?,
            last_seen_at: row.try_get("last_seen_at")?,
            imported_at: row.try_get("imported_at")?,
        });
    }
    Ok(Page {
        items,
        total,
        offset,
        limit,
    })
}

/// Rows a statement stages at most (four binds a row, far below both dialects'
/// limits).
const STAGE_CHUNK: usize = 1000;

/// Staged rows applied per write transaction. Between two batches other writers
/// (the call journal, ticket registration) get the lock: a million-row import must
/// not hold SQLite's single write lock past their busy timeout. The import is an
/// upsert, so one that fails part-way is completed by importing the file again.
const APPLY_BATCH: i64 = 25_000;

pub(super) async fn insert_imported(
    pool: &Pool<Db>,
    tenant_id: i64,
    rows: &[(HouseId, ContactRow)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    // A temporary table lives in this connection only: filling it locks nothing
    // other writers need.
    sqlx::query("DROP TABLE IF EXISTS import_contact_rows")
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "CREATE TEMP TABLE import_contact_rows (n BIGINT NOT NULL, phone TEXT NOT NULL, \
         house_id BIGINT NOT NULL, apartment TEXT NOT NULL, PRIMARY KEY (phone, house_id, apartment))",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query("CREATE INDEX import_contact_rows_n ON import_contact_rows (n)")
        .execute(&mut *conn)
        .await?;
    let applied = stage_and_apply(&mut conn, tenant_id, rows, now).await;
    let dropped = sqlx::query("DROP TABLE IF EXISTS import_contact_rows")
        .execute(&mut *conn)
        .await;
    applied?;
    dropped?;
    Ok(())
}

async fn stage_and_apply(
    conn: &mut <Db as sqlx::Database>::Connection,
    tenant_id: i64,
    rows: &[(HouseId, ContactRow)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    {
        use sqlx::Connection as _;
        let mut stage = conn.begin().await?;
        for (c, chunk) in rows.chunks(STAGE_CHUNK).enumerate() {
            let mut qb = QueryBuilder::<Db>::new(
                "INSERT INTO import_contact_rows (n, phone, house_id, apartment) ",
            );
            let first = (c * STAGE_CHUNK) as i64;
            let mut i = first;
            qb.push_values(chunk, |mut b, (house, row)| {
                b.push_bind(i)
                    .push_bind(row.phone.as_str().to_owned())
                    .push_bind(house.0)
                    .push_bind(row.apartment.clone());
                i += 1;
            });
            qb.build().execute(&mut *stage).await?;
        }
        stage.commit().await?;
    }
    // Only these statements need the write lock, one batch at a time. (`AND TRUE`
    // keeps SQLite from reading `ON CONFLICT` as a join constraint.)
    let total = rows.len() as i64;
    let mut from = 0;
    while from < total {
        let mut tx = Db::begin_write_on(conn).await?;
        sqlx::query(
            "INSERT INTO contacts (phone, tenant_id, house_id, apartment, source, created_at, \
             last_seen_at, imported_at) \
             SELECT phone, $1, house_id, apartment, 'imported', $2, $2, $2 FROM import_contact_rows \
             WHERE n >= $3 AND n < $4 AND TRUE \
             ON CONFLICT (phone, house_id, apartment) DO UPDATE SET imported_at = excluded.imported_at",
        )
        .bind(tenant_id)
        .bind(now)
        .bind(from)
        .bind(from + APPLY_BATCH)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        from += APPLY_BATCH;
    }
    Ok(())
}
