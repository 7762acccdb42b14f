//! Console authentication: operators log in with their extension and password from
//! the configuration and get a bearer token. The token is 32 random bytes (hex); only
//! its SHA-256 is stored, with the operator's role, tenants and expiry. [`authenticate`]
//! is the one check every API route (and the websocket) uses.

use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::{Json, extract::FromRef};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ApiState;
use super::error::ApiError;
use super::extract::JsonBody;
use crate::config::Role;
use crate::store::directory::TenantScope;
use crate::store::{Store, StoreError, StoredToken};

/// Who is calling the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// The operator's extension.
    pub extension: String,
    /// Console role.
    pub role: Role,
    /// Tenants served; empty means all.
    pub tenants: Vec<String>,
}

impl Principal {
    /// The tenants this principal may read.
    pub fn scope(&self) -> TenantScope {
        TenantScope::of(&self.tenants)
    }

    /// Whether `tenant` is visible to this principal.
    pub fn sees(&self, tenant: &str) -> bool {
        self.tenants.is_empty() || self.tenants.iter().any(|t| t == tenant)
    }

    /// Refuses (403 naming `tenant`) a tenant the request names explicitly but this
    /// principal does not serve; `None` (no tenant named) passes.
    pub(crate) fn require(&self, tenant: Option<&str>) -> Result<(), ApiError> {
        match tenant {
            Some(t) if !self.sees(t) => Err(ApiError::forbidden(
                Some("tenant"),
                format!("you do not serve tenant `{t}`"),
            )),
            _ => Ok(()),
        }
    }
}

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No token was presented.
    #[error("no bearer token")]
    Missing,
    /// The token is unknown or expired.
    #[error("invalid or expired token")]
    Invalid,
    /// The store could not be asked.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Missing | AuthError::Invalid => {
                ApiError::new(StatusCode::UNAUTHORIZED, error.to_string()).with_field("token")
            }
            AuthError::Store(e) => e.into(),
        }
    }
}

/// The hex SHA-256 a token is stored under.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks a bearer token; the websocket uses this too.
pub async fn authenticate(store: &Store, token: &str) -> Result<Principal, AuthError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    if token.len() > 256 {
        return Err(AuthError::Invalid);
    }
    let stored = store
        .token(&token_hash(token), Utc::now())
        .await?
        .ok_or(AuthError::Invalid)?;
    let role = match stored.role.as_str() {
        "supervisor" => Role::Supervisor,
        _ => Role::Operator,
    };
    Ok(Principal {
        extension: stored.extension,
        role,
        tenants: stored.tenants,
    })
}

/// The token in an `Authorization: Bearer` header, if any.
pub(crate) fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

impl<S> FromRequestParts<S> for Principal
where
    S: Send + Sync,
    ApiState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = ApiState::from_ref(state);
        let token = bearer(parts).ok_or(AuthError::Missing)?;
        Ok(authenticate(&state.store, token).await?)
    }
}

/// `POST /auth/token` body.
#[derive(Debug, Deserialize)]
pub(crate) struct Login {
    extension: String,
    password: String,
}

/// `POST /auth/token` answer.
#[derive(Debug, Serialize)]
pub(crate) struct Issued {
    token: String,
    role: Role,
    tenants: Vec<String>,
    expires_at: DateTime<Utc>,
}

/// Compares secrets in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

pub(crate) async fn issue_token(
    State(state): State<ApiState>,
    JsonBody(login): JsonBody<Login>,
) -> Result<Json<Issued>, ApiError> {
    let operator = state
        .config
        .operator(login.extension.trim())
        .filter(|o| same_secret(&o.password, &login.password))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unknown extension or wrong password",
            )
            .with_field("password")
        })?;
    let now = Utc::now();
    // Logins are rare; sweeping expired tokens here keeps the table small.
    state.store.purge_expired_tokens(now).await?;
    let bytes: [u8; 32] = rand::random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let expires_at = now + state.token_ttl;
    let role = match operator.role {
        Role::Supervisor => "supervisor",
        _ => "operator",
    };
    state
        .store
        .store_token(
            &token_hash(&token),
            &StoredToken {
                extension: operator.extension.clone(),
                role: role.to_owned(),
                tenants: operator.tenants.clone(),
                expires_at,
            },
            now,
        )
        .await?;
    Ok(Json(Issued {
        token,
        role: operator.role,
        tenants: operator.tenants.clone(),
        expires_at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_hex_sha256() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(same_secret("pw", "pw"));
        assert!(!same_secret("pw", "pw2"));
    }
}
