// Queries of `store::assignment`, compiled once per dialect by `per_backend!`.

use std::collections::HashMap;

use sqlx::{Pool, QueryBuilder, Row};

use crate::store::backend::push_in;
use crate::store::directory::parse_tz;
use crate::store::stored_phone;

/// Loads the matrix cell for a ticket of `tenant` at `house` for `reason`; a missing
/// cell gives no candidates.
pub(super) async fn matrix_cell(
    pool: &Pool<Db>,
    tenant: &str,
    house: HouseId,
    reason: ReasonId,
) -> Result<MatrixCell, StoreError> {
    let mut conn = pool.acquire().await?;
    let house_row = sqlx::query(
        "SELECT h.house_group_id, c.time_zone FROM houses h JOIN tenants t ON t.id = h.tenant_id \
         JOIN cities c ON c.id = h.city_id WHERE h.id = $1 AND t.code = $2",
    )
    .bind(house.0)
    .bind(tenant)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StoreError::not_found("house", house))?;
    let group: Option<i64> = house_row.try_get("house_group_id")?;
    let time_zone = parse_tz(house_row.try_get("time_zone")?)?;
    let work_type: String = sqlx::query_scalar(
        "SELECT r.work_type FROM reasons r LEFT JOIN tenants t ON t.id = r.tenant_id \
         WHERE r.id = $1 AND r.active = TRUE AND (r.tenant_id IS NULL OR t.code = $2)",
    )
    .bind(reason.0)
    .bind(tenant)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StoreError::not_found("reason", reason))?;
    let mut cell = MatrixCell {
        time_zone,
        work_type,
        candidates: Vec::new(),
        responsible: None,
        manager: None,
        head: None,
    };
    let Some(group) = group else {
        return Ok(cell);
    };
    let Some(row) = sqlx::query(
        "SELECT id, responsible_id, manager_id, head_id FROM responsibilities \
         WHERE house_group_id = $1 AND work_type = $2",
    )
    .bind(group)
    .bind(&cell.work_type)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(cell);
    };
    let responsibility: i64 = row.try_get("id")?;
    let responsible: Option<i64> = row.try_get("responsible_id")?;
    let manager: Option<i64> = row.try_get("manager_id")?;
    let head: Option<i64> = row.try_get("head_id")?;

    let rows = sqlx::query(
        "SELECT re.level, e.id, e.name, e.active, \
         EXISTS (SELECT 1 FROM employee_work_types w WHERE w.employee_id = e.id AND w.work_type = $2) \
           AS qualified \
         FROM responsibility_executors re JOIN employees e ON e.id = re.employee_id \
         WHERE re.responsibility_id = $1 ORDER BY re.level, re.position",
    )
    .bind(responsibility)
    .bind(&cell.work_type)
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let level: i64 = row.try_get("level")?;
        cell.candidates.push(Candidate {
            person: Person {
                id: EmployeeId(row.try_get("id")?),
                name: row.try_get("name")?,
                phones: Vec::new(),
            },
            level: u8::try_from(level)
                .map_err(|_| StoreError::Corrupt(format!("level {level}")))?,
            active: row.try_get("active")?,
            qualified: row.try_get("qualified")?,
            shifts: Vec::new(),
            absences: Vec::new(),
        });
    }

    let shifts = sqlx::query(
        "SELECT s.employee_id, s.weekday, s.starts_min, s.ends_min FROM employee_shifts s \
         WHERE s.employee_id IN (SELECT employee_id FROM responsibility_executors WHERE responsibility_id = $1)",
    )
    .bind(responsibility)
    .fetch_all(&mut *conn)
    .await?;
    for row in shifts {
        let id = EmployeeId(row.try_get("employee_id")?);
        let corrupt = |what: &str| StoreError::Corrupt(format!("shift {what} of employee {id}"));
        let shift = Shift {
            weekday: u8::try_from(row.try_get::<i64, _>("weekday")?)
                .map_err(|_| corrupt("weekday"))?,
            starts_min: u16::try_from(row.try_get::<i64, _>("starts_min")?)
                .map_err(|_| corrupt("start"))?,
            ends_min: u16::try_from(row.try_get::<i64, _>("ends_min")?)
                .map_err(|_| corrupt("end"))?,
        };
        for c in cell.candidates.iter_mut().filter(|c| c.person.id == id) {
            c.shifts.push(shift);
        }
    }
    let absences = sqlx::query(
        "SELECT a.employee_id, a.kind, a.starts_on, a.ends_on FROM employee_absences a \
         WHERE a.employee_id IN (SELECT employee_id FROM responsibility_executors WHERE responsibility_id = $1)",
    )
    .bind(responsibility)
    .fetch_all(&mut *conn)
    .await?;
    for row in absences {
        let id = EmployeeId(row.try_get("employee_id")?);
        let kind: String = row.try_get("kind")?;
        let absence = Absence {
            kind: kind.parse()?,
            starts_on: row.try_get("starts_on")?,
            ends_on: row.try_get("ends_on")?,
        };
        for c in cell.candidates.iter_mut().filter(|c| c.person.id == id) {
            c.absences.push(absence);
        }
    }

    // Phones (and names of the escalation people) in one query.
    let mut ids: Vec<i64> = cell.candidates.iter().map(|c| c.person.id.0).collect();
    ids.extend([responsible, manager, head].into_iter().flatten());
    ids.sort_unstable();
    ids.dedup();
    let mut qb = QueryBuilder::<Db>::new(
        "SELECT e.id, e.name, e.active, p.phone FROM employees e \
         LEFT JOIN employee_phones p ON p.employee_id = e.id WHERE ",
    );
    push_in(&mut qb, "e.id", &ids);
    qb.push(" ORDER BY e.id, p.priority");
    let mut people: HashMap<i64, EscalationCandidate> = HashMap::new();
    for row in qb.build().fetch_all(&mut *conn).await? {
        let id: i64 = row.try_get("id")?;
        let phone: Option<String> = row.try_get("phone")?;
        let person = match people.get_mut(&id) {
            Some(p) => p,
            None => people.entry(id).or_insert(EscalationCandidate {
                person: Person {
                    id: EmployeeId(id),
                    name: row.try_get("name")?,
                    phones: Vec::new(),
                },
                active: row.try_get("active")?,
                absences: Vec::new(),
            }),
        };
        if let Some(phone) = phone {
            person.person.phones.push(stored_phone(&phone)?);
        }
    }
    for c in &mut cell.candidates {
        if let Some(p) = people.get(&c.person.id.0) {
            c.person.phones = p.person.phones.clone();
        }
    }
    // The escalation people's absences (the executors' were loaded above).
    let escalating: Vec<i64> = [responsible, manager, head].into_iter().flatten().collect();
    if !escalating.is_empty() {
        let mut qb = QueryBuilder::<Db>::new(
            "SELECT employee_id, kind, starts_on, ends_on FROM employee_absences WHERE ",
        );
        push_in(&mut qb, "employee_id", &escalating);
        for row in qb.build().fetch_all(&mut *conn).await? {
            let id: i64 = row.try_get("employee_id")?;
            let kind: String = row.try_get("kind")?;
            let absence = Absence {
                kind: kind.parse()?,
                starts_on: row.try_get("starts_on")?,
                ends_on: row.try_get("ends_on")?,
            };
            if let Some(p) = people.get_mut(&id) {
                p.absences.push(absence);
            }
        }
    }
    cell.responsible = responsible.and_then(|id| people.get(&id).cloned());
    cell.manager = manager.and_then(|id| people.get(&id).cloned());
    cell.head = head.and_then(|id| people.get(&id).cloned());
    Ok(cell)
}
