// Queries of `store::admin`, compiled once per dialect by `per_backend!`.

use std::collections::HashMap;

use sqlx::{Pool, QueryBuilder, Row};

use crate::store::audit::{Actor, Audited as _, Logged};
use crate::store::backend::push_scope;

type Conn = <Db as sqlx::Database>::Connection;

async fn tenant_id(conn: &mut Conn, code: &str) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT id FROM tenants WHERE code = $1")
        .bind(code)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| StoreError::not_found("tenant", code))
}

pub(super) async fn cities(pool: &Pool<Db>) -> Result<Vec<CityEntry>, StoreError> {
    let rows = sqlx::query("SELECT code, name, time_zone FROM cities ORDER BY code")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(CityEntry {
                code: r.try_get("code")?,
                name: r.try_get("name")?,
                time_zone: r.try_get("time_zone")?,
            })
        })
        .collect()
}

pub(super) async fn add_city(
    pool: &Pool<Db>,
    actor: Option<&Actor<'_>>,
    code: &str,
    name: &str,
    time_zone: &str,
) -> Result<CityEntry, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let done = sqlx::query(
        "INSERT INTO cities (code, name, time_zone) VALUES ($1, $2, $3) ON CONFLICT (code) DO NOTHING",
    )
    .bind(code)
    .bind(name)
    .bind(time_zone)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!("city `{code}` exists")));
    }
    let city = CityEntry {
        code: code.to_owned(),
        name: name.to_owned(),
        time_zone: time_zone.to_owned(),
    };
    let detail = serde_json::json!(city);
    Db::record(&mut tx, actor, Logged { tenant_id: None, action: "create", subject: "city", subject_id: code, detail: &detail }).await?;
    tx.commit().await?;
    Ok(city)
}

pub(super) async fn add_tenant(
    pool: &Pool<Db>,
    actor: Option<&Actor<'_>>,
    code: &str,
    name: &str,
    city: &str,
) -> Result<(), StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let city_id: i64 = sqlx::query_scalar("SELECT id FROM cities WHERE code = $1")
        .bind(city)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::not_found("city", city))?;
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO tenants (code, name, city_id) VALUES ($1, $2, $3) ON CONFLICT (code) DO NOTHING RETURNING id",
    )
    .bind(code)
    .bind(name)
    .bind(city_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = id else {
        return Err(StoreError::Conflict(format!("tenant `{code}` exists")));
    };
    let detail = serde_json::json!({ "code": code, "name": name, "city": city });
    Db::record(&mut tx, actor, Logged { tenant_id: Some(id), action: "create", subject: "tenant", subject_id: code, detail: &detail }).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn rename_tenant(
    pool: &Pool<Db>,
    actor: Option<&Actor<'_>>,
    code: &str,
    name: &str,
) -> Result<(), StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let id = tenant_id(&mut tx, code).await?;
    sqlx::query("UPDATE tenants SET name = $2 WHERE id = $1")
        .bind(id)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    let detail = serde_json::json!({ "name": name });
    Db::record(&mut tx, actor, Logged { tenant_id: Some(id), action: "update", subject: "tenant", subject_id: code, detail: &detail }).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn house_groups(
    pool: &Pool<Db>,
    scope: &TenantScope,
    tenant: Option<&str>,
) -> Result<Vec<HouseGroup>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(
        "SELECT g.id, t.code AS tenant, g.code, g.name, \
         (SELECT COUNT(*) FROM houses h WHERE h.house_group_id = g.id) AS houses \
         FROM house_groups g JOIN tenants t ON t.id = g.tenant_id WHERE TRUE",
    );
    push_scope(&mut qb, scope, "t.code");
    if let Some(tenant) = tenant {
        qb.push(" AND t.code = ").push_bind(tenant.to_owned());
    }
    qb.push(" ORDER BY t.code, g.code");
    let rows = qb.build().fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            Ok(HouseGroup {
                id: r.try_get("id")?,
                tenant: r.try_get("tenant")?,
                code: r.try_get("code")?,
                name: r.try_get("name")?,
                houses: r.try_get("houses")?,
            })
        })
        .collect()
}

pub(super) async fn put_house_group(
    pool: &Pool<Db>,
    actor: Option<&Actor<'_>>,
    tenant: &str,
    code: &str,
    name: &str,
) -> Result<(), StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let id = tenant_id(&mut tx, tenant).await?;
    sqlx::query(
        "INSERT INTO house_groups (tenant_id, code, name) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id, code) DO UPDATE SET name = excluded.name",
    )
    .bind(id)
    .bind(code)
    .bind(name)
    .execute(&mut *tx)
    .await?;
    let detail = serde_json::json!({ "code": code, "name": name });
    Db::record(&mut tx, actor, Logged { tenant_id: Some(id), action: "update", subject: "house_group", subject_id: code, detail: &detail }).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn suppliers(pool: &Pool<Db>, code: Option<&str>) -> Result<Vec<Supplier>, StoreError> {
    let rows = sqlx::query(
        "SELECT s.id, s.code, s.name, c.code AS city, s.dispatch_phone FROM suppliers s \
         JOIN cities c ON c.id = s.city_id WHERE ($1 IS NULL OR s.code = $1) ORDER BY s.code",
    )
    .bind(code)
    .fetch_all(pool)
    .await?;
    let mut phones: HashMap<i64, Vec<String>> = HashMap::new();
    for r in sqlx::query("SELECT supplier_id, phone FROM supplier_phones ORDER BY supplier_id, priority")
        .fetch_all(pool)
        .await?
    {
        phones.entry(r.try_get("supplier_id")?).or_default().push(r.try_get("phone")?);
    }
    rows.iter()
        .map(|r| {
            let id: i64 = r.try_get("id")?;
            let first: Option<String> = r.try_get("dispatch_phone")?;
            Ok(Supplier {
                id,
                code: r.try_get("code")?,
                name: r.try_get("name")?,
                city: r.try_get("city")?,
                phones: phones.remove(&id).unwrap_or_else(|| first.into_iter().collect()),
            })
        })
        .collect()
}

pub(super) async fn put_supplier(
    pool: &Pool<Db>,
    actor: Option<&Actor<'_>>,
    code: &str,
    name: &str,
    city: Option<&str>,
    phones: &[String],
) -> Result<(), StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let existing: Option<i64> = sqlx::query_scalar("SELECT id FROM suppliers WHERE code = $1")
        .bind(code)
        .fetch_optional(&mut *tx)
        .await?;
    let (id, action) = match existing {
        Some(id) => {
            sqlx::query("UPDATE suppliers SET name = $2, dispatch_phone = $3 WHERE id = $1")
                .bind(id)
                .bind(name)
                .bind(phones.first())
                .execute(&mut *tx)
                .await?;
            (id, "update")
        }
        None => {
            let city = city.ok_or_else(|| StoreError::invalid("city", "a new supplier needs its city"))?;
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO suppliers (code, name, city_id, dispatch_phone) \
                 SELECT $1, $2, id, $4 FROM cities WHERE code = $3 RETURNING id",
            )
            .bind(code)
            .bind(name)
            .bind(city)
            .bind(phones.first())
            .fetch_optional(&mut *tx)
            .await?;
            (id.ok_or_else(|| StoreError::not_found("city", city))?, "create")
        }
    };
    sqlx::query("DELETE FROM supplier_phones WHERE supplier_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    for (priority, phone) in (1i64..).zip(phones) {
        sqlx::query("INSERT INTO supplier_phones (supplier_id, priority, phone) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(priority)
            .bind(phone)
            .execute(&mut *tx)
            .await?;
    }
    let detail = serde_json::json!({ "name": name, "phones": phones });
    Db::record(&mut tx, actor, Logged { tenant_id: None, action, subject: "supplier", subject_id: code, detail: &detail }).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn tags(pool: &Pool<Db>, scope: &TenantScope) -> Result<Vec<Tag>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(
        "SELECT g.id, t.code AS tenant, g.code, g.name FROM tags g LEFT JOIN tenants t ON t.id = g.tenant_id \
         WHERE (g.tenant_id IS NULL OR (TRUE",
    );
    push_scope(&mut qb, scope, "t.code");
    qb.push(")) ORDER BY t.code, g.code");
    let rows = qb.build().fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            Ok(Tag {
                id: TagId(r.try_get("id")?),
                tenant: r.try_get("tenant")?,
                code: r.try_get("code")?,
                name: r.try_get("name")?,
            })
        })
        .collect()
}

pub(super) async fn add_tag(
    pool: &Pool<Db>,
    actor: Option<&Actor<'_>>,
    tenant: Option<&str>,
    code: &str,
    name: &str,
) -> Result<Tag, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let tenant_id = match tenant {
        Some(t) => Some(tenant_id(&mut tx, t).await?),
        None => None,
    };
    let taken: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM tags WHERE COALESCE(tenant_id, 0) = COALESCE($1, 0) AND code = $2",
    )
    .bind(tenant_id)
    .bind(code)
    .fetch_optional(&mut *tx)
    .await?;
    if taken.is_some() {
        return Err(StoreError::Conflict(format!("tag `{code}` exists")));
    }
    let id: i64 = sqlx::query_scalar("INSERT INTO tags (tenant_id, code, name) VALUES ($1, $2, $3) RETURNING id")
        .bind(tenant_id)
        .bind(code)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
    let tag = Tag {
        id: TagId(id),
        tenant: tenant.map(str::to_owned),
        code: code.to_owned(),
        name: name.to_owned(),
    };
    let detail = serde_json::json!(tag);
    Db::record(&mut tx, actor, Logged { tenant_id, action: "create", subject: "tag", subject_id: code, detail: &detail }).await?;
    tx.commit().await?;
    Ok(tag)
}

pub(super) async fn remove_tag(pool: &Pool<Db>, actor: Option<&Actor<'_>>, id: TagId) -> Result<Tag, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let row = sqlx::query(
        "SELECT g.tenant_id, t.code AS tenant, g.code, g.name FROM tags g LEFT JOIN tenants t ON t.id = g.tenant_id WHERE g.id = $1",
    )
    .bind(id.0)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| StoreError::not_found("tag", id))?;
    let tag = Tag {
        id,
        tenant: row.try_get("tenant")?,
        code: row.try_get("code")?,
        name: row.try_get("name")?,
    };
    let tenant_id: Option<i64> = row.try_get("tenant_id")?;
    sqlx::query("DELETE FROM tags WHERE id = $1").bind(id.0).execute(&mut *tx).await?;
    let detail = serde_json::json!(tag);
    Db::record(&mut tx, actor, Logged { tenant_id, action: "remove", subject: "tag", subject_id: &tag.code, detail: &detail }).await?;
    tx.commit().await?;
    Ok(tag)
}

pub(super) async fn matrix(pool: &Pool<Db>, tenant: &str) -> Result<Vec<MatrixCell>, StoreError> {
    let rows = sqlx::query(
        "SELECT r.id, g.code AS grp, r.work_type, r.responsible_id, r.manager_id, r.head_id \
         FROM responsibilities r JOIN house_groups g ON g.id = r.house_group_id JOIN tenants t ON t.id = g.tenant_id \
         WHERE t.code = $1 ORDER BY g.code, r.work_type",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    let mut cells = Vec::with_capacity(rows.len());
    let mut index = HashMap::new();
    for r in &rows {
        index.insert(r.try_get::<i64, _>("id")?, cells.len());
        cells.push(MatrixCell {
            house_group: r.try_get("grp")?,
            work_type: r.try_get("work_type")?,
            levels: Default::default(),
            responsible: r.try_get::<Option<i64>, _>("responsible_id")?.map(EmployeeId),
            manager: r.try_get::<Option<i64>, _>("manager_id")?.map(EmployeeId),
            head: r.try_get::<Option<i64>, _>("head_id")?.map(EmployeeId),
        });
    }
    for r in sqlx::query(
        "SELECT x.responsibility_id, x.level, x.employee_id FROM responsibility_executors x \
         JOIN responsibilities r ON r.id = x.responsibility_id JOIN house_groups g ON g.id = r.house_group_id \
         JOIN tenants t ON t.id = g.tenant_id WHERE t.code = $1 ORDER BY x.responsibility_id, x.level, x.position",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await?
    {
        let id: i64 = r.try_get("responsibility_id")?;
        let level: i64 = r.try_get("level")?;
        if let (Some(&i), Ok(l)) = (index.get(&id), usize::try_from(level - 1)) {
            if let Some(list) = cells.get_mut(i).and_then(|c| c.levels.get_mut(l)) {
                list.push(EmployeeId(r.try_get("employee_id")?));
            }
        }
    }
    Ok(cells)
}

pub(super) async fn tenant_facts(pool: &Pool<Db>, tenant: &str) -> Result<TenantFacts, StoreError> {
    let mut conn = pool.acquire().await?;
    let id = tenant_id(&mut conn, tenant).await?;
    let houses: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM houses WHERE tenant_id = $1")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    let groups: Vec<String> = sqlx::query_scalar("SELECT code FROM house_groups WHERE tenant_id = $1 ORDER BY code")
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
    let emergency_work_types: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT work_type FROM reasons WHERE active = TRUE AND category = 'emergency' \
         AND (tenant_id IS NULL OR tenant_id = $1) ORDER BY work_type",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let mut shifts = Vec::new();
    for r in sqlx::query(
        "SELECT s.weekday, s.starts_min, s.ends_min FROM employee_shifts s JOIN employees e ON e.id = s.employee_id \
         WHERE e.tenant_id = $1 AND e.active = TRUE",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    {
        let (w, a, b): (i64, i64, i64) = (r.try_get("weekday")?, r.try_get("starts_min")?, r.try_get("ends_min")?);
        if let (Ok(weekday), Ok(starts_min), Ok(ends_min)) = (u8::try_from(w), u16::try_from(a), u16::try_from(b)) {
            shifts.push(crate::store::assignment::Shift { weekday, starts_min, ends_min });
        }
    }
    Ok(TenantFacts {
        houses,
        groups,
        emergency_work_types,
        cells: Vec::new(),
        shifts,
    })
}
