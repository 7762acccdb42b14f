// Queries of `store::onboarding`, compiled once per dialect by `per_backend!`.

use std::collections::{HashMap, HashSet};

use sqlx::{Pool, QueryBuilder, Row};

use crate::store::audit::{Actor, Audited as _, Logged};
use crate::store::backend::push_in;
use plan::{CellNow, Current, EmployeeNow, EmployeeRef, HouseNow, HouseRef, ReasonNow, SupplierNow};

/// Rows one multi-row INSERT carries at most (well below both dialects' limits on
/// bound parameters).
const BATCH: usize = 1000;

type Conn = <Db as sqlx::Database>::Connection;

pub(super) async fn load(
    pool: &Pool<Db>,
    tenant: &str,
    city: Option<&str>,
    contacts: &[(String, String)],
) -> Result<Current, StoreError> {
    let mut current = Current::default();
    let row = sqlx::query(
        "SELECT t.id, t.name, c.code AS city FROM tenants t JOIN cities c ON c.id = t.city_id WHERE t.code = $1",
    )
    .bind(tenant)
    .fetch_optional(pool)
    .await?;
    let tenant_id: Option<i64> = match row {
        Some(r) => {
            let id: i64 = r.try_get("id")?;
            current.tenant = Some((id, r.try_get("name")?, r.try_get("city")?));
            Some(id)
        }
        None => None,
    };
    let city_code = city
        .map(str::to_owned)
        .or_else(|| current.tenant.as_ref().map(|t| t.2.clone()));
    if let Some(code) = city_code {
        if let Some(r) = sqlx::query("SELECT id, name, time_zone FROM cities WHERE code = $1")
            .bind(&code)
            .fetch_optional(pool)
            .await?
        {
            current.city = Some((r.try_get("id")?, r.try_get("name")?, r.try_get("time_zone")?));
        }
    }
    for r in sqlx::query("SELECT code, name FROM work_types").fetch_all(pool).await? {
        current.work_types.insert(r.try_get("code")?, r.try_get("name")?);
    }
    for r in sqlx::query(
        "SELECT s.id, s.code, s.name, c.code AS city, s.dispatch_phone FROM suppliers s \
         JOIN cities c ON c.id = s.city_id",
    )
    .fetch_all(pool)
    .await?
    {
        let id: i64 = r.try_get("id")?;
        let first: Option<String> = r.try_get("dispatch_phone")?;
        current.suppliers.insert(
            r.try_get("code")?,
            SupplierNow {
                id,
                name: r.try_get("name")?,
                city: r.try_get("city")?,
                phones: first.into_iter().collect(),
            },
        );
    }
    let listed: Vec<(i64, String)> = sqlx::query("SELECT supplier_id, phone FROM supplier_phones ORDER BY supplier_id, priority")
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("supplier_id")?, r.try_get("phone")?)))
        .collect::<Result<_, StoreError>>()?;
    if !listed.is_empty() {
        let mut by_id: HashMap<i64, Vec<String>> = HashMap::new();
        for (id, phone) in listed {
            by_id.entry(id).or_default().push(phone);
        }
        for s in current.suppliers.values_mut() {
            if let Some(phones) = by_id.remove(&s.id) {
                s.phones = phones;
            }
        }
    }
    let Some(tenant_id) = tenant_id else {
        return Ok(current);
    };
    for r in sqlx::query("SELECT id, code, name FROM house_groups WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_all(pool)
        .await?
    {
        current
            .groups
            .insert(r.try_get("code")?, (r.try_get("id")?, r.try_get("name")?));
    }
    for r in sqlx::query(
        "SELECT h.id, h.address, h.address_key, g.code AS grp, h.floors, h.entrances, h.lifts, h.notes \
         FROM houses h LEFT JOIN house_groups g ON g.id = h.house_group_id WHERE h.tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_all(pool)
    .await?
    {
        current.houses.insert(
            r.try_get("address_key")?,
            HouseNow {
                id: r.try_get("id")?,
                address: r.try_get("address")?,
                group: r.try_get("grp")?,
                floors: r.try_get("floors")?,
                entrances: r.try_get("entrances")?,
                lifts: r.try_get("lifts")?,
                notes: r.try_get("notes")?,
            },
        );
    }
    for r in sqlx::query(
        "SELECT a.house_id, a.number, a.entrance, a.floor FROM apartments a \
         JOIN houses h ON h.id = a.house_id WHERE h.tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_all(pool)
    .await?
    {
        current.apartments.insert(
            (r.try_get("house_id")?, r.try_get("number")?),
            (r.try_get("entrance")?, r.try_get("floor")?),
        );
    }
    for r in sqlx::query(
        "SELECT id, code, category, title, work_type, deadline_minutes, operator_text, needs_supplier \
         FROM reasons WHERE tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_all(pool)
    .await?
    {
        let category: String = r.try_get("category")?;
        current.reasons.insert(
            r.try_get("code")?,
            ReasonNow {
                id: r.try_get("id")?,
                category: category.parse()?,
                title: r.try_get("title")?,
                work_type: r.try_get("work_type")?,
                deadline_minutes: r.try_get("deadline_minutes")?,
                operator_text: r.try_get("operator_text")?,
                needs_supplier: r.try_get("needs_supplier")?,
            },
        );
    }
    load_employees(pool, tenant_id, &mut current).await?;
    let mut cells: HashMap<i64, (String, String, CellNow)> = HashMap::new();
    for r in sqlx::query(
        "SELECT r.id, g.code AS grp, r.work_type, r.responsible_id, r.manager_id, r.head_id \
         FROM responsibilities r JOIN house_groups g ON g.id = r.house_group_id WHERE g.tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_all(pool)
    .await?
    {
        cells.insert(
            r.try_get("id")?,
            (
                r.try_get("grp")?,
                r.try_get("work_type")?,
                CellNow {
                    levels: Default::default(),
                    responsible: r.try_get("responsible_id")?,
                    manager: r.try_get("manager_id")?,
                    head: r.try_get("head_id")?,
                },
            ),
        );
    }
    for r in sqlx::query(
        "SELECT x.responsibility_id, x.level, x.employee_id FROM responsibility_executors x \
         JOIN responsibilities r ON r.id = x.responsibility_id JOIN house_groups g ON g.id = r.house_group_id \
         WHERE g.tenant_id = $1 ORDER BY x.responsibility_id, x.level, x.position",
    )
    .bind(tenant_id)
    .fetch_all(pool)
    .await?
    {
        let id: i64 = r.try_get("responsibility_id")?;
        let level: i64 = r.try_get("level")?;
        if let (Some(cell), Ok(l)) = (cells.get_mut(&id), usize::try_from(level - 1)) {
            if let Some(list) = cell.2.levels.get_mut(l) {
                list.push(r.try_get("employee_id")?);
            }
        }
    }
    for (_, (group, work_type, cell)) in cells {
        current.cells.insert((group, work_type), cell);
    }
    let phones: Vec<String> = {
        let set: HashSet<&str> = contacts.iter().map(|(p, _)| p.as_str()).collect();
        set.into_iter().map(str::to_owned).collect()
    };
    for chunk in phones.chunks(500) {
        let mut qb = QueryBuilder::<Db>::new(
            "SELECT phone, house_id, apartment FROM contacts WHERE tenant_id = ",
        );
        qb.push_bind(tenant_id).push(" AND ");
        push_in(&mut qb, "phone", chunk);
        for r in qb.build().fetch_all(pool).await? {
            current.contacts.insert((
                r.try_get("phone")?,
                r.try_get("house_id")?,
                r.try_get("apartment")?,
            ));
        }
    }
    Ok(current)
}

/// The tenant's employees that have a personnel number, with their details.
async fn load_employees(pool: &Pool<Db>, tenant_id: i64, current: &mut Current) -> Result<(), StoreError> {
    let mut by_id: HashMap<i64, String> = HashMap::new();
    for r in sqlx::query(
        "SELECT id, code, name, position FROM employees WHERE tenant_id = $1 AND code IS NOT NULL",
    )
    .bind(tenant_id)
    .fetch_all(pool)
    .await?
    {
        let id: i64 = r.try_get("id")?;
        let code: String = r.try_get("code")?;
        by_id.insert(id, code.clone());
        current.employees.insert(
            code,
            EmployeeNow {
                id,
                name: r.try_get("name")?,
                position: r.try_get("position")?,
                phones: Vec::new(),
                work_types: Vec::new(),
                shifts: Vec::new(),
                absences: Vec::new(),
            },
        );
    }
    let scope = "SELECT {cols} FROM {table} x JOIN employees e ON e.id = x.employee_id \
                 WHERE e.tenant_id = $1 AND e.code IS NOT NULL ORDER BY x.employee_id, {order}";
    let query = |cols: &str, table: &str, order: &str| {
        scope.replace("{cols}", cols).replace("{table}", table).replace("{order}", order)
    };
    fn person<'a>(
        by_id: &HashMap<i64, String>,
        employees: &'a mut HashMap<String, EmployeeNow>,
        id: i64,
    ) -> Option<&'a mut EmployeeNow> {
        by_id.get(&id).and_then(|code| employees.get_mut(code))
    }
    for r in sqlx::query(sqlx::AssertSqlSafe(query("x.employee_id, x.phone", "employee_phones", "x.priority")))
        .bind(tenant_id)
        .fetch_all(pool)
        .await?
    {
        if let Some(e) = person(&by_id, &mut current.employees, r.try_get("employee_id")?) {
            e.phones.push(r.try_get("phone")?);
        }
    }
    for r in sqlx::query(sqlx::AssertSqlSafe(query("x.employee_id, x.work_type", "employee_work_types", "x.work_type")))
        .bind(tenant_id)
        .fetch_all(pool)
        .await?
    {
        if let Some(e) = person(&by_id, &mut current.employees, r.try_get("employee_id")?) {
            e.work_types.push(r.try_get("work_type")?);
        }
    }
    for r in sqlx::query(sqlx::AssertSqlSafe(query(
        "x.employee_id, x.weekday, x.starts_min, x.ends_min",
        "employee_shifts",
        "x.weekday, x.starts_min",
    )))
    .bind(tenant_id)
    .fetch_all(pool)
    .await?
    {
        let (weekday, starts, ends): (i64, i64, i64) =
            (r.try_get("weekday")?, r.try_get("starts_min")?, r.try_get("ends_min")?);
        let shift = crate::store::assignment::Shift {
            weekday: u8::try_from(weekday).map_err(|_| StoreError::Corrupt(format!("weekday {weekday}")))?,
            starts_min: u16::try_from(starts).map_err(|_| StoreError::Corrupt(format!("shift start {starts}")))?,
            ends_min: u16::try_from(ends).map_err(|_| StoreError::Corrupt(format!("shift end {ends}")))?,
        };
        if let Some(e) = person(&by_id, &mut current.employees, r.try_get("employee_id")?) {
            e.shifts.push(shift);
        }
    }
    for r in sqlx::query(sqlx::AssertSqlSafe(query(
        "x.employee_id, x.kind, x.starts_on, x.ends_on",
        "employee_absences",
        "x.starts_on",
    )))
    .bind(tenant_id)
    .fetch_all(pool)
    .await?
    {
        let kind: String = r.try_get("kind")?;
        let absence = crate::store::assignment::Absence {
            kind: kind.parse()?,
            starts_on: r.try_get("starts_on")?,
            ends_on: r.try_get("ends_on")?,
        };
        if let Some(e) = person(&by_id, &mut current.employees, r.try_get("employee_id")?) {
            e.absences.push(absence);
        }
    }
    Ok(())
}

async fn id_map(conn: &mut Conn, sql: &'static str, tenant_id: i64) -> Result<HashMap<String, i64>, StoreError> {
    let rows = sqlx::query(sql).bind(tenant_id).fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

pub(super) async fn apply(
    pool: &Pool<Db>,
    actor: Option<&Actor<'_>>,
    tenant: &str,
    plan: &plan::Plan,
    detail: &serde_json::Value,
) -> Result<(), StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let now = chrono::Utc::now();
    if let Some((code, name, tz)) = &plan.city {
        sqlx::query(
            "INSERT INTO cities (code, name, time_zone) VALUES ($1, $2, $3) \
             ON CONFLICT (code) DO UPDATE SET name = excluded.name, time_zone = excluded.time_zone",
        )
        .bind(code)
        .bind(name)
        .bind(tz)
        .execute(&mut *tx)
        .await?;
    }
    if let Some((code, name, city)) = &plan.tenant {
        sqlx::query(
            "INSERT INTO tenants (code, name, city_id) SELECT $1, $2, id FROM cities WHERE code = $3 \
             ON CONFLICT (code) DO UPDATE SET name = excluded.name",
        )
        .bind(code)
        .bind(name)
        .bind(city)
        .execute(&mut *tx)
        .await?;
    }
    let row = sqlx::query("SELECT id, city_id FROM tenants WHERE code = $1")
        .bind(tenant)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::not_found("tenant", tenant))?;
    let tenant_id: i64 = row.try_get("id")?;
    let city_id: i64 = row.try_get("city_id")?;
    for (code, name) in &plan.work_types {
        sqlx::query(
            "INSERT INTO work_types (code, name) VALUES ($1, $2) \
             ON CONFLICT (code) DO UPDATE SET name = excluded.name",
        )
        .bind(code)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    }
    for (code, name) in &plan.groups {
        sqlx::query(
            "INSERT INTO house_groups (tenant_id, code, name) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, code) DO UPDATE SET name = excluded.name",
        )
        .bind(tenant_id)
        .bind(code)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    }
    let groups = id_map(&mut tx, "SELECT code, id FROM house_groups WHERE tenant_id = $1", tenant_id).await?;
    let group_of = |code: &str| -> Result<i64, StoreError> {
        groups
            .get(code)
            .copied()
            .ok_or_else(|| StoreError::Corrupt(format!("house group `{code}` vanished during an import")))
    };

    // Houses: new ones in batches, changed ones one by one.
    let (new_houses, changed_houses): (Vec<_>, Vec<_>) = plan.houses.iter().partition(|(id, _)| id.is_none());
    for chunk in new_houses.chunks(BATCH) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO houses (tenant_id, city_id, house_group_id, address, address_key, floors, lifts, entrances, notes) ",
        );
        let mut rows = Vec::with_capacity(chunk.len());
        for (_, h) in chunk {
            rows.push((group_of(&h.group)?, h));
        }
        qb.push_values(rows, |mut b, (group, h)| {
            b.push_bind(tenant_id)
                .push_bind(city_id)
                .push_bind(group)
                .push_bind(h.address.clone())
                .push_bind(h.key.clone())
                .push_bind(h.floors.unwrap_or(0))
                .push_bind(h.lifts.unwrap_or(0))
                .push_bind(h.entrances.unwrap_or(0))
                .push_bind(h.notes.clone().unwrap_or_default());
        });
        qb.build().execute(&mut *tx).await?;
    }
    for (id, h) in changed_houses {
        sqlx::query(
            "UPDATE houses SET house_group_id = $2, floors = COALESCE($3, floors), lifts = COALESCE($4, lifts), \
             entrances = COALESCE($5, entrances), notes = COALESCE($6, notes) WHERE id = $1",
        )
        .bind(id)
        .bind(group_of(&h.group)?)
        .bind(h.floors)
        .bind(h.lifts)
        .bind(h.entrances)
        .bind(h.notes.clone())
        .execute(&mut *tx)
        .await?;
    }
    let needs_keys = plan.apartments.iter().any(|a| matches!(a.house, HouseRef::New(_)))
        || plan.contacts.iter().any(|c| matches!(c.1, HouseRef::New(_)));
    let houses = if needs_keys {
        id_map(&mut tx, "SELECT address_key, id FROM houses WHERE tenant_id = $1", tenant_id).await?
    } else {
        HashMap::new()
    };
    let house_id = |r: &HouseRef| -> Result<i64, StoreError> {
        match r {
            HouseRef::Id(id) => Ok(*id),
            HouseRef::New(key) => houses
                .get(key)
                .copied()
                .ok_or_else(|| StoreError::Corrupt(format!("house `{key}` vanished during an import"))),
        }
    };

    // Apartments.
    let (new_apartments, changed_apartments): (Vec<_>, Vec<_>) =
        plan.apartments.iter().partition(|a| !a.exists);
    for chunk in new_apartments.chunks(BATCH) {
        let mut rows = Vec::with_capacity(chunk.len());
        for a in chunk {
            rows.push((house_id(&a.house)?, &a.number, a.entrance, a.floor));
        }
        let mut qb = QueryBuilder::<Db>::new("INSERT INTO apartments (house_id, number, entrance, floor) ");
        qb.push_values(rows, |mut b, (house, number, entrance, floor)| {
            b.push_bind(house)
                .push_bind(number.clone())
                .push_bind(entrance)
                .push_bind(floor);
        });
        qb.build().execute(&mut *tx).await?;
    }
    for a in changed_apartments {
        sqlx::query("UPDATE apartments SET entrance = $3, floor = $4 WHERE house_id = $1 AND number = $2")
            .bind(house_id(&a.house)?)
            .bind(&a.number)
            .bind(a.entrance)
            .bind(a.floor)
            .execute(&mut *tx)
            .await?;
    }

    // Reasons.
    for (id, r) in &plan.reasons {
        let key = crate::store::directory::search_key(&format!("{} {}", r.title, r.code));
        match id {
            None => {
                sqlx::query(
                    "INSERT INTO reasons (tenant_id, code, category, title, work_type, deadline_minutes, \
                     operator_text, search_key, active, needs_supplier) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, TRUE, $9)",
                )
                .bind(tenant_id)
                .bind(&r.code)
                .bind(r.category.as_str())
                .bind(&r.title)
                .bind(&r.work_type)
                .bind(r.deadline_minutes)
                .bind(&r.operator_text)
                .bind(key)
                .bind(r.needs_supplier)
                .execute(&mut *tx)
                .await?;
            }
            Some(id) => {
                sqlx::query(
                    "UPDATE reasons SET category = $2, title = $3, work_type = $4, deadline_minutes = $5, \
                     operator_text = $6, search_key = $7, needs_supplier = $8 WHERE id = $1",
                )
                .bind(id)
                .bind(r.category.as_str())
                .bind(&r.title)
                .bind(&r.work_type)
                .bind(r.deadline_minutes)
                .bind(&r.operator_text)
                .bind(key)
                .bind(r.needs_supplier)
                .execute(&mut *tx)
                .await?;
            }
        }
    }

    // Suppliers.
    for (id, code, name, phones) in &plan.suppliers {
        let first = phones.first().cloned();
        let id: i64 = match id {
            None => sqlx::query_scalar(
                "INSERT INTO suppliers (code, name, city_id, dispatch_phone) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(code)
            .bind(name)
            .bind(city_id)
            .bind(first)
            .fetch_one(&mut *tx)
            .await?,
            Some(id) => {
                sqlx::query("UPDATE suppliers SET name = $2, dispatch_phone = $3 WHERE id = $1")
                    .bind(id)
                    .bind(name)
                    .bind(first)
                    .execute(&mut *tx)
                    .await?;
                *id
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
    }

    // Employees.
    let mut employee_ids: HashMap<String, i64> = HashMap::new();
    for e in &plan.employees {
        let id: i64 = match e.id {
            None => sqlx::query_scalar(
                "INSERT INTO employees (tenant_id, name, position, active, code) VALUES ($1, $2, $3, TRUE, $4) RETURNING id",
            )
            .bind(tenant_id)
            .bind(&e.name)
            .bind(&e.position)
            .bind(&e.code)
            .fetch_one(&mut *tx)
            .await?,
            Some(id) => {
                sqlx::query("UPDATE employees SET name = $2, position = $3 WHERE id = $1")
                    .bind(id)
                    .bind(&e.name)
                    .bind(&e.position)
                    .execute(&mut *tx)
                    .await?;
                id
            }
        };
        employee_ids.insert(e.code.clone(), id);
        for table in ["employee_phones", "employee_work_types"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE employee_id = $1")))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        for (priority, phone) in (1i64..).zip(&e.phones) {
            sqlx::query("INSERT INTO employee_phones (employee_id, priority, phone) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(priority)
                .bind(phone)
                .execute(&mut *tx)
                .await?;
        }
        let mut work_types = e.work_types.clone();
        work_types.sort();
        work_types.dedup();
        for work_type in &work_types {
            sqlx::query("INSERT INTO employee_work_types (employee_id, work_type) VALUES ($1, $2)")
                .bind(id)
                .bind(work_type)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(shifts) = &e.shifts {
            sqlx::query("DELETE FROM employee_shifts WHERE employee_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for s in shifts {
                sqlx::query(
                    "INSERT INTO employee_shifts (employee_id, weekday, starts_min, ends_min) VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(i64::from(s.weekday))
                .bind(i64::from(s.starts_min))
                .bind(i64::from(s.ends_min))
                .execute(&mut *tx)
                .await?;
            }
        }
        for a in &e.new_absences {
            sqlx::query(
                "INSERT INTO employee_absences (employee_id, kind, starts_on, ends_on) VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(a.kind.as_str())
            .bind(a.starts_on)
            .bind(a.ends_on)
            .execute(&mut *tx)
            .await?;
        }
    }
    let employee = |r: &EmployeeRef| -> Result<i64, StoreError> {
        match r {
            EmployeeRef::Id(id) => Ok(*id),
            EmployeeRef::New(code) => employee_ids
                .get(code)
                .copied()
                .ok_or_else(|| StoreError::Corrupt(format!("employee `{code}` vanished during an import"))),
        }
    };

    // The responsibility matrix.
    for cell in &plan.cells {
        let opt = |r: &Option<EmployeeRef>| r.as_ref().map(&employee).transpose();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO responsibilities (house_group_id, work_type, responsible_id, manager_id, head_id) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (house_group_id, work_type) DO UPDATE SET \
             responsible_id = excluded.responsible_id, manager_id = excluded.manager_id, head_id = excluded.head_id \
             RETURNING id",
        )
        .bind(group_of(&cell.group)?)
        .bind(&cell.work_type)
        .bind(opt(&cell.responsible)?)
        .bind(opt(&cell.manager)?)
        .bind(opt(&cell.head)?)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM responsibility_executors WHERE responsibility_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for (level, people) in (1i64..).zip(&cell.levels) {
            for (position, person) in (1i64..).zip(people) {
                sqlx::query(
                    "INSERT INTO responsibility_executors (responsibility_id, level, position, employee_id) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(level)
                .bind(position)
                .bind(employee(person)?)
                .execute(&mut *tx)
                .await?;
            }
        }
    }

    // Contacts. (`AND TRUE` keeps SQLite from reading ON CONFLICT as a join.)
    for chunk in plan.contacts.chunks(BATCH) {
        let mut rows = Vec::with_capacity(chunk.len());
        for (phone, house, apartment) in chunk {
            rows.push((phone, house_id(house)?, apartment));
        }
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO contacts (phone, tenant_id, house_id, apartment, source, created_at, last_seen_at, imported_at) ",
        );
        qb.push_values(rows, |mut b, (phone, house, apartment)| {
            b.push_bind(phone.clone())
                .push_bind(tenant_id)
                .push_bind(house)
                .push_bind(apartment.clone())
                .push_bind("imported")
                .push_bind(now)
                .push_bind(now)
                .push_bind(now);
        });
        qb.push(" ON CONFLICT (phone, house_id, apartment) DO NOTHING");
        qb.build().execute(&mut *tx).await?;
    }
    Db::record(
        &mut tx,
        actor,
        Logged {
            tenant_id: Some(tenant_id),
            action: "import",
            subject: "onboarding",
            subject_id: tenant,
            detail,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
