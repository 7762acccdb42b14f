// Queries of `store::users`, compiled once per dialect by `per_backend!`.

use sqlx::{Pool, Row};

use crate::store::audit::{Actor, Audited as _, Logged};

fn row_to_user(r: &<Db as sqlx::Database>::Row) -> Result<UserRow, StoreError> {
    let role: String = r.try_get("role")?;
    let tenants: String = r.try_get("tenants")?;
    let cities: String = r.try_get("cities")?;
    let realm: Option<String> = r.try_get("sip_realm")?;
    let md5: Option<String> = r.try_get("sip_ha1_md5")?;
    let sha: Option<String> = r.try_get("sip_ha1_sha256")?;
    let sip = match (realm, md5, sha) {
        (Some(realm), Some(ha1_md5), Some(ha1_sha256)) => Some(SipCredentials {
            realm,
            ha1_md5,
            ha1_sha256,
        }),
        _ => None,
    };
    Ok(UserRow {
        user: User {
            id: UserId(r.try_get("id")?),
            extension: r.try_get("extension")?,
            name: r.try_get("name")?,
            role: role.parse()?,
            tenants: parse_list(&tenants)?,
            cities: parse_list(&cities)?,
            softphone: sip.is_some(),
            auto_answer: r.try_get("auto_answer")?,
            version: r.try_get("version")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        },
        password_hash: r.try_get("password_hash")?,
        sip,
    })
}

pub(super) async fn users(
    pool: &Pool<Db>,
    extension: Option<&str>,
) -> Result<Vec<UserRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, extension, name, role, tenants, cities, password_hash, sip_realm, sip_ha1_md5, \
         sip_ha1_sha256, auto_answer, version, created_at, updated_at FROM users \
         WHERE removed_at IS NULL AND ($1 IS NULL OR extension = $1) ORDER BY extension",
    )
    .bind(extension)
    .fetch_all(pool)
    .await?;
    rows.iter().map(row_to_user).collect()
}

pub(super) async fn has_users(pool: &Pool<Db>) -> Result<bool, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(pool)
        .await?;
    Ok(n > 0)
}

pub(super) async fn all_extensions(
    pool: &Pool<Db>,
) -> Result<std::collections::HashSet<String>, StoreError> {
    let rows: Vec<String> = sqlx::query_scalar("SELECT extension FROM users")
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Refuses tenants and cities the store does not have.
async fn check_references(
    conn: &mut <Db as sqlx::Database>::Connection,
    user: &User,
) -> Result<(), StoreError> {
    for tenant in &user.tenants {
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM tenants WHERE code = $1")
            .bind(tenant)
            .fetch_optional(&mut *conn)
            .await?;
        if found.is_none() {
            return Err(StoreError::invalid(
                "tenants",
                format!("unknown tenant `{tenant}`"),
            ));
        }
    }
    for city in &user.cities {
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM cities WHERE code = $1")
            .bind(city)
            .fetch_optional(&mut *conn)
            .await?;
        if found.is_none() {
            return Err(StoreError::invalid("cities", format!("unknown city `{city}`")));
        }
    }
    Ok(())
}

/// The tenant an account's admin-log row is filed under: its only tenant, if it
/// has exactly one.
async fn log_tenant(
    conn: &mut <Db as sqlx::Database>::Connection,
    user: &User,
) -> Result<Option<i64>, StoreError> {
    let [only] = user.tenants.as_slice() else {
        return Ok(None);
    };
    Ok(sqlx::query_scalar("SELECT id FROM tenants WHERE code = $1")
        .bind(only)
        .fetch_optional(conn)
        .await?)
}

pub(super) async fn insert_user(
    pool: &Pool<Db>,
    actor: Option<&Actor<'_>>,
    row: &UserRow,
    check: bool,
) -> Result<(), StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    if check {
        check_references(&mut tx, &row.user).await?;
    }
    let taken: Option<Option<DateTime<Utc>>> =
        sqlx::query_scalar("SELECT removed_at FROM users WHERE extension = $1")
            .bind(&row.user.extension)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(removed) = taken {
        return Err(StoreError::Conflict(match removed {
            Some(at) => format!(
                "extension {} belonged to an account removed on {}; choose another",
                row.user.extension,
                at.format("%Y-%m-%d")
            ),
            None => format!("extension {} already has an account", row.user.extension),
        }));
    }
    let now = Utc::now();
    let sip = row.sip.as_ref();
    sqlx::query(
        "INSERT INTO users (extension, name, role, tenants, cities, password_hash, sip_realm, \
         sip_ha1_md5, sip_ha1_sha256, auto_answer, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, $11, $11)",
    )
    .bind(&row.user.extension)
    .bind(&row.user.name)
    .bind(row.user.role.as_str())
    .bind(tenants_text(&row.user))
    .bind(crate::store::list_text(&row.user.cities))
    .bind(&row.password_hash)
    .bind(sip.map(|s| s.realm.clone()))
    .bind(sip.map(|s| s.ha1_md5.clone()))
    .bind(sip.map(|s| s.ha1_sha256.clone()))
    .bind(row.user.auto_answer)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let tenant_id = log_tenant(&mut tx, &row.user).await?;
    Db::record(
        &mut tx,
        actor,
        Logged {
            tenant_id,
            action: "create",
            subject: "user",
            subject_id: &row.user.extension,
            detail: &logged(&row.user),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn update_user(
    pool: &Pool<Db>,
    actor: Option<&Actor<'_>>,
    row: &UserRow,
    version: i64,
    revoke: bool,
) -> Result<(), StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    check_references(&mut tx, &row.user).await?;
    let sip = row.sip.as_ref();
    let done = sqlx::query(
        "UPDATE users SET name = $2, role = $3, tenants = $4, cities = $5, password_hash = $6, \
         sip_realm = $7, sip_ha1_md5 = $8, sip_ha1_sha256 = $9, auto_answer = $10, \
         version = version + 1, updated_at = $11 \
         WHERE extension = $1 AND version = $12 AND removed_at IS NULL",
    )
    .bind(&row.user.extension)
    .bind(&row.user.name)
    .bind(row.user.role.as_str())
    .bind(tenants_text(&row.user))
    .bind(crate::store::list_text(&row.user.cities))
    .bind(&row.password_hash)
    .bind(sip.map(|s| s.realm.clone()))
    .bind(sip.map(|s| s.ha1_md5.clone()))
    .bind(sip.map(|s| s.ha1_sha256.clone()))
    .bind(row.user.auto_answer)
    .bind(Utc::now())
    .bind(version)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!(
            "user {} was changed by someone else; reload it",
            row.user.extension
        )));
    }
    if revoke {
        sqlx::query("DELETE FROM console_tokens WHERE extension = $1")
            .bind(&row.user.extension)
            .execute(&mut *tx)
            .await?;
    }
    let tenant_id = log_tenant(&mut tx, &row.user).await?;
    let mut detail = logged(&row.user);
    detail["tokens_revoked"] = revoke.into();
    Db::record(
        &mut tx,
        actor,
        Logged {
            tenant_id,
            action: "update",
            subject: "user",
            subject_id: &row.user.extension,
            detail: &detail,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn remove_user(
    pool: &Pool<Db>,
    actor: Option<&Actor<'_>>,
    user: &User,
) -> Result<(), StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let now = Utc::now();
    let done = sqlx::query(
        "UPDATE users SET removed_at = $2, updated_at = $2, version = version + 1, \
         sip_realm = NULL, sip_ha1_md5 = NULL, sip_ha1_sha256 = NULL \
         WHERE extension = $1 AND removed_at IS NULL",
    )
    .bind(&user.extension)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::not_found("user", &user.extension));
    }
    sqlx::query("DELETE FROM console_tokens WHERE extension = $1")
        .bind(&user.extension)
        .execute(&mut *tx)
        .await?;
    let tenant_id = log_tenant(&mut tx, user).await?;
    Db::record(
        &mut tx,
        actor,
        Logged {
            tenant_id,
            action: "remove",
            subject: "user",
            subject_id: &user.extension,
            detail: &logged(user),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
