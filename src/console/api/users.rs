//! `/users`: the accounts. Supervisors of every tenant manage every account; a
//! supervisor or tenant admin of some tenants manages the tenant staff (tenant
//! admins and viewers) of those tenants only, and nobody may give an account a
//! tenant they do not serve themselves. Removing an account, or changing its role,
//! tenants or password, revokes its tokens and closes its open consoles at once;
//! the call core's roster follows.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::ApiState;
use super::auth::Principal;
use super::error::ApiError;
use super::extract::JsonBody;
use crate::store::users::{NewUser, Role, User, UserChange};

/// Whether `who` may manage accounts at all.
fn check_account_admin(who: &Principal) -> Result<(), ApiError> {
    if who.role.administers() {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            None,
            "managing accounts takes a supervisor or a tenant admin",
        ))
    }
}

/// Whether `who` may manage an account of `role` serving `tenants`: a supervisor
/// of every tenant any account; anyone else only tenant staff of tenants they
/// serve themselves.
fn check_manager(who: &Principal, role: Role, tenants: &[String]) -> Result<(), ApiError> {
    check_account_admin(who)?;
    if who.role == Role::Supervisor && who.tenants.is_empty() {
        return Ok(());
    }
    if !role.is_tenant_staff() {
        return Err(ApiError::forbidden(
            Some("role"),
            "operators and supervisors are managed by a supervisor of every tenant",
        ));
    }
    if tenants.is_empty() {
        return Err(ApiError::invalid("tenants", "name the tenants"));
    }
    for t in tenants {
        who.require(Some(t))?;
    }
    Ok(())
}

fn visible(who: &Principal, user: &User) -> bool {
    who.tenants.is_empty() || (!user.tenants.is_empty() && user.tenants.iter().all(|t| who.sees(t)))
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    who: Principal,
) -> Result<Json<Vec<User>>, ApiError> {
    check_account_admin(&who)?;
    Ok(Json(state.store.users(&who.scope()).await?))
}

pub(crate) async fn create(
    State(state): State<ApiState>,
    who: Principal,
    JsonBody(new): JsonBody<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let role = new
        .role
        .ok_or_else(|| ApiError::invalid("role", "missing"))?;
    check_manager(&who, role, &new.tenants)?;
    let user = state
        .store
        .acting_as(&who.extension)
        .create_user(&new, &state.config.sip.realm)
        .await?;
    state.accounts_changed.notify_one();
    Ok((StatusCode::CREATED, Json(user)))
}

pub(crate) async fn update(
    State(state): State<ApiState>,
    who: Principal,
    Path(extension): Path<String>,
    JsonBody(change): JsonBody<UserChange>,
) -> Result<Json<User>, ApiError> {
    let current = state
        .store
        .user(&extension)
        .await?
        .filter(|u| visible(&who, u))
        .ok_or_else(|| ApiError::not_found("user"))?;
    check_manager(&who, current.role, &current.tenants)?;
    check_manager(
        &who,
        change.role.unwrap_or(current.role),
        change.tenants.as_deref().unwrap_or(&current.tenants),
    )?;
    let updated = state
        .store
        .acting_as(&who.extension)
        .update_user(&extension, &change, &state.config.sip.realm)
        .await?;
    if updated.revoked {
        state.revocations.revoke(&extension);
    }
    state.accounts_changed.notify_one();
    Ok(Json(updated.user))
}

pub(crate) async fn remove(
    State(state): State<ApiState>,
    who: Principal,
    Path(extension): Path<String>,
) -> Result<StatusCode, ApiError> {
    let current = state
        .store
        .user(&extension)
        .await?
        .filter(|u| visible(&who, u))
        .ok_or_else(|| ApiError::not_found("user"))?;
    check_manager(&who, current.role, &current.tenants)?;
    if current.extension == who.extension {
        return Err(ApiError::invalid("extension", "you cannot remove yourself"));
    }
    state
        .store
        .acting_as(&who.extension)
        .remove_user(&extension)
        .await?;
    state.revocations.revoke(&extension);
    state.accounts_changed.notify_one();
    Ok(StatusCode::NO_CONTENT)
}
