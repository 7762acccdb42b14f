// Queries of `store::directory`, compiled once per dialect by `per_backend!`.

use std::collections::HashMap;

use sqlx::{Pool, QueryBuilder, Row};

use crate::store::audit::{Actor, Audited as _, Logged};
use crate::store::backend::{push_in, push_scope};

pub(super) async fn create_city(
    pool: &Pool<Db>,
    code: &str,
    name: &str,
    time_zone: &str,
) -> Result<CityId, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO cities (code, name, time_zone) VALUES ($1, $2, $3) \
         ON CONFLICT (code) DO UPDATE SET code = excluded.code RETURNING id",
    )
    .bind(code)
    .bind(name)
    .bind(time_zone)
    .fetch_one(pool)
    .await?;
    Ok(CityId(id))
}

pub(super) async fn create_tenant(
    pool: &Pool<Db>,
    code: &str,
    name: &str,
    city: &str,
) -> Result<TenantId, StoreError> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO tenants (code, name, city_id) SELECT $1, $2, id FROM cities WHERE code = $3 \
         ON CONFLICT (code) DO UPDATE SET code = excluded.code RETURNING id",
    )
    .bind(code)
    .bind(name)
    .bind(city)
    .fetch_optional(pool)
    .await?;
    id.map(TenantId)
        .ok_or_else(|| StoreError::not_found("city", city))
}

pub(super) async fn create_supplier(
    pool: &Pool<Db>,
    code: &str,
    name: &str,
    city: &str,
    dispatch_phone: Option<&PhoneNumber>,
) -> Result<SupplierId, StoreError> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO suppliers (code, name, city_id, dispatch_phone) \
         SELECT $1, $2, id, $4 FROM cities WHERE code = $3 \
         ON CONFLICT (code) DO UPDATE SET code = excluded.code RETURNING id",
    )
    .bind(code)
    .bind(name)
    .bind(city)
    .bind(dispatch_phone.map(PhoneNumber::as_str))
    .fetch_optional(pool)
    .await?;
    id.map(SupplierId)
        .ok_or_else(|| StoreError::not_found("city", city))
}

pub(super) async fn create_house_group(
    pool: &Pool<Db>,
    tenant: &str,
    code: &str,
    name: &str,
) -> Result<HouseGroupId, StoreError> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO house_groups (tenant_id, code, name) SELECT id, $2, $3 FROM tenants WHERE code = $1 \
         ON CONFLICT (tenant_id, code) DO UPDATE SET code = excluded.code RETURNING id",
    )
    .bind(tenant)
    .bind(code)
    .bind(name)
    .fetch_optional(pool)
    .await?;
    id.map(HouseGroupId)
        .ok_or_else(|| StoreError::not_found("tenant", tenant))
}

async fn tenant_id(
    conn: &mut <Db as sqlx::Database>::Connection,
    code: &str,
) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT id FROM tenants WHERE code = $1")
        .bind(code)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| StoreError::not_found("tenant", code))
}

pub(super) async fn create_house(
    pool: &Pool<Db>,
    actor: Option<&Actor<'_>>,
    tenant: &str,
    house: &HouseFields<'_>,
) -> Result<HouseId, StoreError> {
    let HouseFields {
        house_group,
        address,
        key,
        floors,
        lifts,
    } = *house;
    let mut tx = Db::begin_write(pool).await?;
    let tenant_id = tenant_id(&mut tx, tenant).await?;
    let group_id: Option<i64> = match house_group {
        None => None,
        Some(code) => Some(
            sqlx::query_scalar("SELECT id FROM house_groups WHERE tenant_id = $1 AND code = $2")
                .bind(tenant_id)
                .bind(code)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::not_found("house group", code))?,
        ),
    };
    // Two addresses the key cannot tell apart are one house to the imports: say so
    // rather than hand back the other house as if it were this one.
    let existing = sqlx::query(
        "SELECT id, address FROM houses WHERE tenant_id = $1 AND address_key = $2",
    )
    .bind(tenant_id)
    .bind(key)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(row) = existing {
        let id: i64 = row.try_get("id")?;
        let other: String = row.try_get("address")?;
        return Err(StoreError::Conflict(format!(
            "house {id} at `{other}` already has this address (compared as `{key}`)"
        )));
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO houses (tenant_id, city_id, house_group_id, address, address_key, floors, lifts) \
         SELECT $1, city_id, $2, $3, $4, $5, $6 FROM tenants WHERE id = $1 RETURNING id",
    )
    .bind(tenant_id)
    .bind(group_id)
    .bind(address)
    .bind(key)
    .bind(floors)
    .bind(lifts)
    .fetch_one(&mut *tx)
    .await?;
    let detail = serde_json::json!({ "address": address, "house_group": house_group, "floors": floors, "lifts": lifts });
    Db::record(&mut tx, actor, Logged { tenant_id: Some(tenant_id), action: "create", subject: "house", subject_id: &id.to_string(), detail: &detail }).await?;
    tx.commit().await?;
    Ok(HouseId(id))
}

pub(super) async fn create_work_type(
    pool: &Pool<Db>,
    code: &str,
    name: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO work_types (code, name) VALUES ($1, $2) ON CONFLICT (code) DO NOTHING",
    )
    .bind(code)
    .bind(name)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn create_employee(
    pool: &Pool<Db>,
    actor: Option<&Actor<'_>>,
    new: &NewEmployee,
) -> Result<EmployeeId, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let tenant_id = match &new.tenant {
        Some(code) => Some(tenant_id(&mut tx, code).await?),
        None => None,
    };
    let supplier_id: Option<i64> = match &new.supplier {
        Some(code) => Some(
            sqlx::query_scalar("SELECT id FROM suppliers WHERE code = $1")
                .bind(code)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::not_found("supplier", code))?,
        ),
        None => None,
    };
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO employees (tenant_id, supplier_id, name, position, active) \
         VALUES ($1, $2, $3, $4, TRUE) RETURNING id",
    )
    .bind(tenant_id)
    .bind(supplier_id)
    .bind(&new.name)
    .bind(&new.position)
    .fetch_one(&mut *tx)
    .await?;
    insert_employee_details(&mut tx, id, new).await?;
    let detail = serde_json::json!({ "name": new.name, "position": new.position, "phones": new.phones, "work_types": new.work_types, "shifts": new.shifts, "absences": new.absences });
    Db::record(&mut tx, actor, Logged { tenant_id, action: "create", subject: "employee", subject_id: &id.to_string(), detail: &detail }).await?;
    tx.commit().await?;
    Ok(EmployeeId(id))
}

/// Writes an employee's phones, work types, shifts and absences.
async fn insert_employee_details(
    conn: &mut <Db as sqlx::Database>::Connection,
    id: i64,
    new: &NewEmployee,
) -> Result<(), StoreError> {
    for (priority, phone) in (1i64..).zip(&new.phones) {
        sqlx::query(
            "INSERT INTO employee_phones (employee_id, priority, phone) VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(priority)
        .bind(phone.as_str())
        .execute(&mut *conn)
        .await?;
    }
    for work_type in &new.work_types {
        let known: Option<String> =
            sqlx::query_scalar("SELECT code FROM work_types WHERE code = $1")
                .bind(work_type)
                .fetch_optional(&mut *conn)
                .await?;
        if known.is_none() {
            return Err(StoreError::invalid(
                "work_types",
                format!("unknown work type `{work_type}`"),
            ));
        }
        sqlx::query("INSERT INTO employee_work_types (employee_id, work_type) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(id)
            .bind(work_type)
            .execute(&mut *conn)
            .await?;
    }
    for shift in &new.shifts {
        sqlx::query(
            "INSERT INTO employee_shifts (employee_id, weekday, starts_min, ends_min) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(i64::from(shift.weekday))
        .bind(i64::from(shift.starts_min))
        .bind(i64::from(shift.ends_min))
        .execute(&mut *conn)
        .await?;
    }
    for absence in &new.absences {
        insert_absence(&mut *conn, id, absence).await?;
    }
    Ok(())
}

/// Replaces an employee's name, position, active flag, phones, work types, shifts
/// and absences (the tenant or supplier stays).
pub(super) async fn update_employee(
    pool: &Pool<Db>,
    actor: Option<&Actor<'_>>,
    id: EmployeeId,
    new: &NewEmployee,
    active: bool,
) -> Result<(), StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let done = sqlx::query("UPDATE employees SET name = $2, position = $3, active = $4 WHERE id = $1")
        .bind(id.0)
        .bind(&new.name)
        .bind(&new.position)
        .bind(active)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::not_found("employee", id));
    }
    for table in [
        "employee_phones",
        "employee_work_types",
        "employee_shifts",
        "employee_absences",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE employee_id = $1"
        )))
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
    }
    insert_employee_details(&mut tx, id.0, new).await?;
    let tenant_id: Option<i64> = sqlx::query_scalar("SELECT tenant_id FROM employees WHERE id = $1")
        .bind(id.0)
        .fetch_one(&mut *tx)
        .await?;
    let detail = serde_json::json!({ "name": new.name, "position": new.position, "phones": new.phones, "work_types": new.work_types, "shifts": new.shifts, "absences": new.absences, "active": active });
    Db::record(&mut tx, actor, Logged { tenant_id, action: "update", subject: "employee", subject_id: &id.to_string(), detail: &detail }).await?;
    tx.commit().await?;
    Ok(())
}

/// Replaces a house's group, address (and key), floors and lifts.
pub(super) async fn update_house(
    pool: &Pool<Db>,
    actor: Option<&Actor<'_>>,
    id: HouseId,
    house: &HouseFields<'_>,
) -> Result<(), StoreError> {
    let HouseFields {
        house_group,
        address,
        key,
        floors,
        lifts,
    } = *house;
    let mut tx = Db::begin_write(pool).await?;
    let tenant_id: i64 = sqlx::query_scalar("SELECT tenant_id FROM houses WHERE id = $1")
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::not_found("house", id))?;
    let group_id: Option<i64> = match house_group {
        None => None,
        Some(code) => Some(
            sqlx::query_scalar("SELECT id FROM house_groups WHERE tenant_id = $1 AND code = $2")
                .bind(tenant_id)
                .bind(code)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::not_found("house group", code))?,
        ),
    };
    let other: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM houses WHERE tenant_id = $1 AND address_key = $2 AND id <> $3",
    )
    .bind(tenant_id)
    .bind(key)
    .bind(id.0)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(other) = other {
        return Err(StoreError::Conflict(format!(
            "house {other} already has this address (compared as `{key}`)"
        )));
    }
    sqlx::query(
        "UPDATE houses SET house_group_id = $2, address = $3, address_key = $4, floors = $5, \
         lifts = $6 WHERE id = $1",
    )
    .bind(id.0)
    .bind(group_id)
    .bind(address)
    .bind(key)
    .bind(floors)
    .bind(lifts)
    .execute(&mut *tx)
    .await?;
    let detail = serde_json::json!({ "address": address, "house_group": house_group, "floors": floors, "lifts": lifts });
    Db::record(&mut tx, actor, Logged { tenant_id: Some(tenant_id), action: "update", subject: "house", subject_id: &id.to_string(), detail: &detail }).await?;
    tx.commit().await?;
    Ok(())
}

/// Whether a reason with this code exists in the tenant's own catalogue (or the
/// shared one for `None`).
pub(super) async fn reason_code_taken(
    pool: &Pool<Db>,
    tenant: Option<&str>,
    code: &str,
) -> Result<bool, StoreError> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT r.id FROM reasons r LEFT JOIN tenants t ON t.id = r.tenant_id \
         WHERE r.code = $1 AND ((t.code IS NULL AND $2 IS NULL) OR t.code = $2)",
    )
    .bind(code)
    .bind(tenant)
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some())
}

/// Replaces a reason's category, title, work type, deadline, operator text, search
/// key and active flag (its tenant and code stay).
pub(super) async fn update_reason(
    pool: &Pool<Db>,
    actor: Option<&Actor<'_>>,
    id: ReasonId,
    new: &NewReason,
    key: &str,
    active: bool,
) -> Result<(), StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let known: Option<String> = sqlx::query_scalar("SELECT code FROM work_types WHERE code = $1")
        .bind(&new.work_type)
        .fetch_optional(&mut *tx)
        .await?;
    if known.is_none() {
        return Err(StoreError::invalid(
            "work_type",
            format!("unknown work type `{}`", new.work_type),
        ));
    }
    let done = sqlx::query(
        "UPDATE reasons SET category = $2, title = $3, work_type = $4, deadline_minutes = $5, \
         operator_text = $6, search_key = $7, active = $8 WHERE id = $1",
    )
    .bind(id.0)
    .bind(new.category.as_str())
    .bind(&new.title)
    .bind(&new.work_type)
    .bind(new.deadline_minutes)
    .bind(&new.operator_text)
    .bind(key)
    .bind(active)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::not_found("reason", id));
    }
    let tenant_id: Option<i64> = sqlx::query_scalar("SELECT tenant_id FROM reasons WHERE id = $1")
        .bind(id.0)
        .fetch_one(&mut *tx)
        .await?;
    let detail = serde_json::json!({ "category": new.category, "title": new.title, "work_type": new.work_type, "deadline_minutes": new.deadline_minutes, "active": active });
    Db::record(&mut tx, actor, Logged { tenant_id, action: "update", subject: "reason", subject_id: &id.to_string(), detail: &detail }).await?;
    tx.commit().await?;
    Ok(())
}

async fn insert_absence(
    conn: &mut <Db as sqlx::Database>::Connection,
    employee: i64,
    absence: &Absence,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO employee_absences (employee_id, kind, starts_on, ends_on) VALUES ($1, $2, $3, $4)",
    )
    .bind(employee)
    .bind(absence.kind.as_str())
    .bind(absence.starts_on)
    .bind(absence.ends_on)
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) async fn add_absence(
    pool: &Pool<Db>,
    actor: Option<&Actor<'_>>,
    employee: EmployeeId,
    absence: &Absence,
) -> Result<(), StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM employees WHERE id = $1")
        .bind(employee.0)
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_none() {
        return Err(StoreError::not_found("employee", employee));
    }
    insert_absence(&mut tx, employee.0, absence).await?;
    let tenant_id: Option<i64> = sqlx::query_scalar("SELECT tenant_id FROM employees WHERE id = $1")
        .bind(employee.0)
        .fetch_one(&mut *tx)
        .await?;
    let detail = serde_json::json!({ "absence": absence });
    Db::record(&mut tx, actor, Logged { tenant_id, action: "update", subject: "employee", subject_id: &employee.to_string(), detail: &detail }).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn set_employee_active(
    pool: &Pool<Db>,
    employee: EmployeeId,
    active: bool,
) -> Result<(), StoreError> {
    let done = sqlx::query("UPDATE employees SET active = $2 WHERE id = $1")
        .bind(employee.0)
        .bind(active)
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::not_found("employee", employee));
    }
    Ok(())
}

pub(super) async fn create_reason(
    pool: &Pool<Db>,
    actor: Option<&Actor<'_>>,
    new: &NewReason,
    key: &str,
) -> Result<ReasonId, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let tenant_id = match &new.tenant {
        Some(code) => Some(tenant_id(&mut tx, code).await?),
        None => None,
    };
    let existing: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM reasons WHERE COALESCE(tenant_id, 0) = COALESCE($1, 0) AND code = $2",
    )
    .bind(tenant_id)
    .bind(&new.code)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(id) = existing {
        return Ok(ReasonId(id));
    }
    let known: Option<String> = sqlx::query_scalar("SELECT code FROM work_types WHERE code = $1")
        .bind(&new.work_type)
        .fetch_optional(&mut *tx)
        .await?;
    if known.is_none() {
        return Err(StoreError::invalid(
            "work_type",
            format!("unknown work type `{}`", new.work_type),
        ));
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO reasons (tenant_id, code, category, title, work_type, deadline_minutes, \
         operator_text, search_key, active) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, TRUE) RETURNING id",
    )
    .bind(tenant_id)
    .bind(&new.code)
    .bind(new.category.as_str())
    .bind(&new.title)
    .bind(&new.work_type)
    .bind(new.deadline_minutes)
    .bind(&new.operator_text)
    .bind(key)
    .fetch_one(&mut *tx)
    .await?;
    let detail = serde_json::json!({ "code": new.code, "category": new.category, "title": new.title, "work_type": new.work_type, "deadline_minutes": new.deadline_minutes });
    Db::record(&mut tx, actor, Logged { tenant_id, action: "create", subject: "reason", subject_id: &id.to_string(), detail: &detail }).await?;
    tx.commit().await?;
    Ok(ReasonId(id))
}

pub(super) async fn set_responsibility(
    pool: &Pool<Db>,
    actor: Option<&Actor<'_>>,
    cell: &Responsibility,
) -> Result<(), StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let group: i64 = sqlx::query_scalar(
        "SELECT g.id FROM house_groups g JOIN tenants t ON t.id = g.tenant_id \
         WHERE t.code = $1 AND g.code = $2",
    )
    .bind(&cell.tenant)
    .bind(&cell.house_group)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| StoreError::not_found("house group", &cell.house_group))?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO responsibilities (house_group_id, work_type, responsible_id, manager_id, head_id) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (house_group_id, work_type) DO UPDATE SET responsible_id = excluded.responsible_id, \
         manager_id = excluded.manager_id, head_id = excluded.head_id RETURNING id",
    )
    .bind(group)
    .bind(&cell.work_type)
    .bind(cell.responsible.map(|e| e.0))
    .bind(cell.manager.map(|e| e.0))
    .bind(cell.head.map(|e| e.0))
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM responsibility_executors WHERE responsibility_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    for (level, people) in (1i64..).zip(&cell.levels) {
        for (position, employee) in (1i64..).zip(people) {
            sqlx::query(
                "INSERT INTO responsibility_executors (responsibility_id, level, position, employee_id) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(level)
            .bind(position)
            .bind(employee.0)
            .execute(&mut *tx)
            .await?;
        }
    }
    let tenant_id: Option<i64> = sqlx::query_scalar("SELECT tenant_id FROM house_groups WHERE id = $1")
        .bind(group)
        .fetch_optional(&mut *tx)
        .await?;
    let detail = serde_json::json!({ "house_group": cell.house_group, "work_type": cell.work_type, "levels": cell.levels, "responsible": cell.responsible, "manager": cell.manager, "head": cell.head });
    Db::record(&mut tx, actor, Logged { tenant_id, action: "update", subject: "responsibility", subject_id: &format!("{}/{}", cell.house_group, cell.work_type), detail: &detail }).await?;
    tx.commit().await?;
    Ok(())
}

const TENANT_SELECT: &str = "SELECT t.id, t.code, t.name, c.id AS city_id, c.code AS city_code, \
     c.name AS city_name, c.time_zone FROM tenants t JOIN cities c ON c.id = t.city_id";

fn tenant_from(row: &<Db as sqlx::Database>::Row) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        id: TenantId(row.try_get("id")?),
        code: row.try_get("code")?,
        name: row.try_get("name")?,
        city: City {
            id: CityId(row.try_get("city_id")?),
            code: row.try_get("city_code")?,
            name: row.try_get("city_name")?,
            time_zone: parse_tz(row.try_get("time_zone")?)?,
        },
    })
}

pub(super) async fn tenant(pool: &Pool<Db>, code: &str) -> Result<Option<Tenant>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(TENANT_SELECT);
    qb.push(" WHERE t.code = ").push_bind(code.to_owned());
    let row = qb.build().fetch_optional(pool).await?;
    row.as_ref().map(tenant_from).transpose()
}

pub(super) async fn tenants(
    pool: &Pool<Db>,
    scope: &TenantScope,
) -> Result<Vec<Tenant>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(TENANT_SELECT);
    qb.push(" WHERE TRUE");
    push_scope(&mut qb, scope, "t.code");
    qb.push(" ORDER BY t.code");
    let rows = qb.build().fetch_all(pool).await?;
    rows.iter().map(tenant_from).collect()
}

#[derive(sqlx::FromRow)]
struct HouseRow {
    id: i64,
    tenant: String,
    city: String,
    house_group: Option<String>,
    address: String,
    floors: i64,
    lifts: i64,
}

impl From<HouseRow> for House {
    fn from(r: HouseRow) -> Self {
        House {
            id: HouseId(r.id),
            tenant: r.tenant,
            city: r.city,
            house_group: r.house_group,
            address: r.address,
            floors: r.floors,
            lifts: r.lifts,
        }
    }
}

const HOUSE_SELECT: &str = "SELECT h.id, t.code AS tenant, c.code AS city, g.code AS house_group, \
     h.address, h.floors, h.lifts FROM houses h JOIN tenants t ON t.id = h.tenant_id \
     JOIN cities c ON c.id = h.city_id LEFT JOIN house_groups g ON g.id = h.house_group_id";

pub(super) async fn house(pool: &Pool<Db>, id: HouseId) -> Result<Option<House>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(HOUSE_SELECT);
    qb.push(" WHERE h.id = ").push_bind(id.0);
    let row: Option<HouseRow> = qb.build_query_as().fetch_optional(pool).await?;
    Ok(row.map(House::from))
}

pub(super) async fn houses(
    pool: &Pool<Db>,
    scope: &TenantScope,
    tenant: Option<&str>,
    q: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<Page<House>, StoreError> {
    let filter = |qb: &mut QueryBuilder<Db>| {
        qb.push(" WHERE TRUE");
        push_scope(qb, scope, "t.code");
        if let Some(tenant) = tenant {
            qb.push(" AND t.code = ").push_bind(tenant.to_owned());
        }
        if let Some(q) = q {
            qb.push(" AND h.address_key LIKE ")
                .push_bind(like_pattern(q))
                .push(" ESCAPE '\\'");
        }
    };
    let mut count = QueryBuilder::<Db>::new(
        "SELECT COUNT(*) FROM houses h JOIN tenants t ON t.id = h.tenant_id",
    );
    filter(&mut count);
    let total: i64 = count.build_query_scalar().fetch_one(pool).await?;
    let mut qb = QueryBuilder::<Db>::new(HOUSE_SELECT);
    filter(&mut qb);
    qb.push(" ORDER BY h.address, h.id LIMIT ")
        .push_bind(limit)
        .push(" OFFSET ")
        .push_bind(offset);
    let rows: Vec<HouseRow> = qb.build_query_as().fetch_all(pool).await?;
    Ok(Page {
        items: rows.into_iter().map(House::from).collect(),
        total,
        offset,
        limit,
    })
}

/// `%text%` with LIKE's wildcards in `text` escaped by `\`.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[derive(sqlx::FromRow)]
struct EmployeeRow {
    id: i64,
    tenant: Option<String>,
    supplier: Option<String>,
    name: String,
    position: String,
    active: bool,
}

pub(super) async fn employees(
    pool: &Pool<Db>,
    scope: &TenantScope,
    tenant: Option<&str>,
    only: Option<EmployeeId>,
) -> Result<Vec<Employee>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(
        "SELECT e.id, t.code AS tenant, s.code AS supplier, e.name, e.position, e.active \
         FROM employees e LEFT JOIN tenants t ON t.id = e.tenant_id \
         LEFT JOIN suppliers s ON s.id = e.supplier_id WHERE TRUE",
    );
    if let Some(id) = only {
        qb.push(" AND e.id = ").push_bind(id.0);
    }
    if let TenantScope::Only(_) = scope {
        qb.push(" AND (e.supplier_id IS NOT NULL OR (TRUE");
        push_scope(&mut qb, scope, "t.code");
        qb.push("))");
    }
    if let Some(tenant) = tenant {
        qb.push(" AND t.code = ").push_bind(tenant.to_owned());
    }
    qb.push(" ORDER BY e.name, e.id");
    let rows: Vec<EmployeeRow> = qb.build_query_as().fetch_all(pool).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut people: Vec<Employee> = rows
        .into_iter()
        .map(|r| Employee {
            id: EmployeeId(r.id),
            tenant: r.tenant,
            supplier: r.supplier,
            name: r.name,
            position: r.position,
            phones: Vec::new(),
            work_types: Vec::new(),
            shifts: Vec::new(),
            absences: Vec::new(),
            active: r.active,
        })
        .collect();
    let index: std::collections::HashMap<i64, usize> =
        ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    for id_chunk in ids.chunks(500) {
        let mut qb =
            QueryBuilder::<Db>::new("SELECT employee_id, phone FROM employee_phones WHERE ");
        push_in(&mut qb, "employee_id", id_chunk);
        qb.push(" ORDER BY employee_id, priority");
        for row in qb.build().fetch_all(pool).await? {
            let id: i64 = row.try_get("employee_id")?;
            let phone: String = row.try_get("phone")?;
            if let Some(e) = index.get(&id).and_then(|&i| people.get_mut(i)) {
                e.phones.push(crate::store::stored_phone(&phone)?);
            }
        }
        let mut qb = QueryBuilder::<Db>::new(
            "SELECT employee_id, work_type FROM employee_work_types WHERE ",
        );
        push_in(&mut qb, "employee_id", id_chunk);
        qb.push(" ORDER BY employee_id, work_type");
        for row in qb.build().fetch_all(pool).await? {
            let id: i64 = row.try_get("employee_id")?;
            if let Some(e) = index.get(&id).and_then(|&i| people.get_mut(i)) {
                e.work_types.push(row.try_get("work_type")?);
            }
        }
        for (id, shift) in shifts_of(pool, id_chunk).await? {
            if let Some(e) = index.get(&id).and_then(|&i| people.get_mut(i)) {
                e.shifts.push(shift);
            }
        }
        for (id, absence) in absences_of(pool, id_chunk).await? {
            if let Some(e) = index.get(&id).and_then(|&i| people.get_mut(i)) {
                e.absences.push(absence);
            }
        }
    }
    Ok(people)
}

/// Shifts of these employees, as (employee id, shift).
async fn shifts_of(pool: &Pool<Db>, ids: &[i64]) -> Result<Vec<(i64, Shift)>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(
        "SELECT employee_id, weekday, starts_min, ends_min FROM employee_shifts WHERE ",
    );
    push_in(&mut qb, "employee_id", ids);
    qb.push(" ORDER BY employee_id, weekday, starts_min");
    let mut out = Vec::new();
    for row in qb.build().fetch_all(pool).await? {
        let weekday: i64 = row.try_get("weekday")?;
        let starts: i64 = row.try_get("starts_min")?;
        let ends: i64 = row.try_get("ends_min")?;
        let shift = Shift {
            weekday: u8::try_from(weekday)
                .map_err(|_| StoreError::Corrupt(format!("weekday {weekday}")))?,
            starts_min: u16::try_from(starts)
                .map_err(|_| StoreError::Corrupt(format!("shift start {starts}")))?,
            ends_min: u16::try_from(ends)
                .map_err(|_| StoreError::Corrupt(format!("shift end {ends}")))?,
        };
        out.push((row.try_get("employee_id")?, shift));
    }
    Ok(out)
}

/// Absences of these employees, as (employee id, absence).
async fn absences_of(pool: &Pool<Db>, ids: &[i64]) -> Result<Vec<(i64, Absence)>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(
        "SELECT employee_id, kind, starts_on, ends_on FROM employee_absences WHERE ",
    );
    push_in(&mut qb, "employee_id", ids);
    qb.push(" ORDER BY employee_id, starts_on");
    let mut out = Vec::new();
    for row in qb.build().fetch_all(pool).await? {
        let kind: String = row.try_get("kind")?;
        let absence = Absence {
            kind: kind.parse()?,
            starts_on: row.try_get("starts_on")?,
            ends_on: row.try_get("ends_on")?,
        };
        out.push((row.try_get("employee_id")?, absence));
    }
    Ok(out)
}

#[derive(sqlx::FromRow)]
struct ReasonRow {
    id: i64,
    tenant: Option<String>,
    code: String,
    category: String,
    title: String,
    work_type: String,
    deadline_minutes: i64,
    operator_text: String,
    active: bool,
}

impl TryFrom<ReasonRow> for Reason {
    type Error = StoreError;
    fn try_from(r: ReasonRow) -> Result<Self, StoreError> {
        Ok(Reason {
            id: ReasonId(r.id),
            tenant: r.tenant,
            code: r.code,
            category: r.category.parse()?,
            title: r.title,
            work_type: r.work_type,
            deadline_minutes: r.deadline_minutes,
            operator_text: r.operator_text,
            active: r.active,
        })
    }
}

const REASON_SELECT: &str = "SELECT r.id, t.code AS tenant, r.code, r.category, r.title, r.work_type, \
     r.deadline_minutes, r.operator_text, r.active FROM reasons r LEFT JOIN tenants t ON t.id = r.tenant_id";

pub(super) async fn reasons(
    pool: &Pool<Db>,
    tenant: Option<&str>,
    words: &[String],
    category: Option<Category>,
) -> Result<Vec<Reason>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(REASON_SELECT);
    qb.push(" WHERE r.active = TRUE");
    if let Some(tenant) = tenant {
        qb.push(" AND (r.tenant_id IS NULL OR t.code = ")
            .push_bind(tenant.to_owned())
            .push(")");
    }
    for word in words {
        qb.push(" AND r.search_key LIKE ")
            .push_bind(like_pattern(word))
            .push(" ESCAPE '\\'");
    }
    if let Some(category) = category {
        qb.push(" AND r.category = ").push_bind(category.as_str());
    }
    qb.push(
        " ORDER BY CASE r.category WHEN 'emergency' THEN 0 WHEN 'planned' THEN 1 ELSE 2 END, r.title, r.id",
    );
    let rows: Vec<ReasonRow> = qb.build_query_as().fetch_all(pool).await?;
    rows.into_iter().map(Reason::try_from).collect()
}

pub(super) async fn reason(pool: &Pool<Db>, id: ReasonId) -> Result<Option<Reason>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(REASON_SELECT);
    qb.push(" WHERE r.id = ").push_bind(id.0);
    let row: Option<ReasonRow> = qb.build_query_as().fetch_optional(pool).await?;
    row.map(Reason::try_from).transpose()
}

pub(super) async fn house_keys(
    pool: &Pool<Db>,
    tenant: &str,
) -> Result<HashMap<String, HouseId>, StoreError> {
    let rows = sqlx::query(
        "SELECT h.id, h.address_key FROM houses h JOIN tenants t ON t.id = h.tenant_id WHERE t.code = $1",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("address_key")?, HouseId(r.try_get("id")?))))
        .collect()
}

/// Every house as (id, tenant id, address, stored key), for re-keying.
pub(super) async fn house_addresses(
    pool: &Pool<Db>,
) -> Result<Vec<(i64, i64, String, String)>, StoreError> {
    let rows = sqlx::query("SELECT id, tenant_id, address, address_key FROM houses ORDER BY id")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("id")?,
                r.try_get("tenant_id")?,
                r.try_get("address")?,
                r.try_get("address_key")?,
            ))
        })
        .collect()
}

/// Stores a house's recomputed key; `false` when another house of the tenant has it.
pub(super) async fn set_house_key(
    pool: &Pool<Db>,
    id: i64,
    key: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE houses SET address_key = $2 WHERE id = $1 AND NOT EXISTS \
         (SELECT 1 FROM houses o WHERE o.tenant_id = houses.tenant_id AND o.address_key = $2 AND o.id <> $1)",
    )
    .bind(id)
    .bind(key)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
