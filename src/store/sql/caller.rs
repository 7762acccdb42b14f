// Queries of `store::caller`, compiled once per dialect by `per_backend!`.

use sqlx::{Pool, QueryBuilder, Row};

use crate::store::backend::push_scope;
use crate::store::directory::parse_tz;

pub(super) async fn lookup(
    pool: &Pool<Db>,
    scope: &TenantScope,
    phone: &PhoneNumber,
    tenant: Option<&str>,
    city: Option<&str>,
    now: DateTime<Utc>,
) -> Result<CallerInfo, StoreError> {
    let mut conn = pool.acquire().await?;
    let mut info = CallerInfo {
        phone: phone.clone(),
        tenant: None,
        city: city.map(str::to_owned),
        address: None,
        other_addresses: Vec::new(),
        open_tickets: Vec::new(),
        debtor: None,
        outages: Vec::new(),
        staff: None,
    };

    let staff = sqlx::query(
        "SELECT e.id, e.name, t.code AS tenant, s.code AS supplier FROM employee_phones p \
         JOIN employees e ON e.id = p.employee_id LEFT JOIN tenants t ON t.id = e.tenant_id \
         LEFT JOIN suppliers s ON s.id = e.supplier_id \
         WHERE p.phone = $1 AND e.active = TRUE ORDER BY p.priority, e.id LIMIT 1",
    )
    .bind(phone.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = staff {
        info.staff = Some(StaffMember {
            id: EmployeeId(row.try_get("id")?),
            name: row.try_get("name")?,
            tenant: row.try_get("tenant")?,
            supplier: row.try_get("supplier")?,
        });
    }

    // A confirmed address outranks an imported one; among each, the latest seen.
    let mut qb = QueryBuilder::<Db>::new(
        "SELECT c.house_id, c.apartment, t.code AS tenant, t.name AS tenant_name, h.address, \
         ci.code AS city, ci.time_zone FROM contacts c \
         JOIN houses h ON h.id = c.house_id JOIN tenants t ON t.id = c.tenant_id \
         JOIN cities ci ON ci.id = h.city_id WHERE c.phone = ",
    );
    qb.push_bind(phone.as_str().to_owned());
    push_scope(&mut qb, scope, "t.code");
    if let Some(tenant) = tenant {
        qb.push(" AND t.code = ").push_bind(tenant.to_owned());
    }
    if let Some(city) = city {
        qb.push(" AND ci.code = ").push_bind(city.to_owned());
    }
    qb.push(
        " ORDER BY CASE c.source WHEN 'learnt' THEN 0 ELSE 1 END, c.last_seen_at DESC, c.id DESC LIMIT ",
    )
    .push_bind(MAX_ROWS);
    let rows = qb.build().fetch_all(&mut *conn).await?;
    let mut time_zone = None;
    for row in &rows {
        let known = KnownAddress {
            tenant: row.try_get("tenant")?,
            tenant_name: row.try_get("tenant_name")?,
            city: row.try_get("city")?,
            house_id: HouseId(row.try_get("house_id")?),
            address: row.try_get("address")?,
            apartment: non_empty(row.try_get("apartment")?),
        };
        if info.address.is_none() {
            time_zone = Some(parse_tz(row.try_get("time_zone")?)?);
            info.address = Some(known);
        } else {
            info.other_addresses.push(known);
        }
    }

    match (&info.address, tenant) {
        (Some(address), _) => {
            info.tenant = Some(TenantRef {
                code: address.tenant.clone(),
                name: address.tenant_name.clone(),
            });
            info.city = Some(address.city.clone());
        }
        (None, Some(code)) => {
            let row = sqlx::query(
                "SELECT t.code, t.name, c.code AS city FROM tenants t JOIN cities c ON c.id = t.city_id \
                 WHERE t.code = $1",
            )
            .bind(code)
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(row) = row {
                info.tenant = Some(TenantRef {
                    code: row.try_get("code")?,
                    name: row.try_get("name")?,
                });
                info.city = Some(row.try_get("city")?);
            }
        }
        (None, None) => {}
    }

    let (Some(address), Some(time_zone)) = (&info.address, time_zone) else {
        return Ok(info);
    };
    let apartment = address.apartment.clone().unwrap_or_default();

    let tickets = sqlx::query(
        "SELECT t.id, t.number, t.category, t.status, r.title, t.apartment, t.created_at \
         FROM tickets t JOIN reasons r ON r.id = t.reason_id \
         WHERE t.house_id = $1 AND t.status IN ('registered', 'accepted', 'in_progress') \
         ORDER BY CASE WHEN t.apartment = $2 OR t.apartment = '' THEN 0 ELSE 1 END, \
         t.created_at DESC LIMIT $3",
    )
    .bind(address.house_id.0)
    .bind(&apartment)
    .bind(MAX_ROWS)
    .fetch_all(&mut *conn)
    .await?;
    for row in tickets {
        let category: String = row.try_get("category")?;
        let status: String = row.try_get("status")?;
        let ticket_apartment: String = row.try_get("apartment")?;
        info.open_tickets.push(OpenTicket {
            id: TicketId(row.try_get("id")?),
            number: row.try_get("number")?,
            category: category.parse()?,
            status: status.parse()?,
            reason: row.try_get("title")?,
            same_apartment: ticket_apartment.is_empty() || ticket_apartment == apartment,
            apartment: non_empty(ticket_apartment),
            created_at: row.try_get("created_at")?,
        });
    }

    let today = now.with_timezone(&time_zone).date_naive();
    let debt = sqlx::query(
        "SELECT amount_kopecks, valid_until FROM debtors \
         WHERE house_id = $1 AND apartment = $2 AND valid_from <= $3 AND valid_until >= $3",
    )
    .bind(address.house_id.0)
    .bind(&apartment)
    .bind(today)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = debt {
        info.debtor = Some(DebtorFlag {
            amount_kopecks: row.try_get("amount_kopecks")?,
            valid_until: row.try_get("valid_until")?,
        });
    }

    let outages = sqlx::query(
        "SELECT o.id, o.kind, o.text, o.ends_at FROM outage_houses oh JOIN outages o ON o.id = oh.outage_id \
         WHERE oh.house_id = $1 AND o.starts_at <= $2 AND o.ends_at > $2 ORDER BY o.ends_at",
    )
    .bind(address.house_id.0)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    for row in outages {
        info.outages.push(ActiveOutage {
            id: OutageId(row.try_get("id")?),
            kind: row.try_get("kind")?,
            text: row.try_get("text")?,
            until: row.try_get("ends_at")?,
        });
    }
    Ok(info)
}
