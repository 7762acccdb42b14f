//! Console authentication: users log in with their extension and console password
//! (checked against the argon2 hash of their account in the store) and get a bearer
//! token. The token is 32 random bytes (hex); only its SHA-256 is stored, with the
//! account's role, tenants and expiry. [`authenticate`] is the one check every API
//! route (and the websocket) uses.
//!
//! Removing an account or changing its role, tenants or password deletes its tokens
//! in the same transaction; [`Revocations`] then tells this engine's open websockets
//! of that account to close at once (those on other nodes find out at their next
//! token check).
//!
//! `DELETE /auth/token` revokes the caller's token (log-out ends it on the server,
//! not just in the browser); `POST /auth/token/renew` moves its expiry to a full
//! `token_ttl` from now, so a console in use (it renews every half hour) is never
//! logged out in the middle of a shift that runs over, while an abandoned one
//! still expires. Failed logins are limited per client address and per extension
//! ([`LoginLimiter`]): after a few failures every try waits longer (429 with the
//! wait), and an address that keeps failing is banned for a while.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Extension, FromRequestParts, State};
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
use crate::guard::{AuthGuard, Failure, GuardPolicy, Verdict};
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

/// Tells open websockets that an account's tokens were revoked, so they close at
/// once instead of at their next token check.
#[derive(Debug, Clone)]
pub struct Revocations {
    tx: tokio::sync::broadcast::Sender<String>,
}

impl Default for Revocations {
    fn default() -> Self {
        Self {
            tx: tokio::sync::broadcast::channel(256).0,
        }
    }
}

impl Revocations {
    /// Announces that `extension`'s tokens are gone.
    pub fn revoke(&self, extension: &str) {
        let _ = self.tx.send(extension.to_owned());
    }

    /// Listens for revocations.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.tx.subscribe()
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
    // A role this engine does not know (a newer node wrote it) grants nothing.
    let role = Role::parse(&stored.role).ok_or(AuthError::Invalid)?;
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
        let who = authenticate(&state.store, token).await?;
        if !role_allows(who.role, &parts.method, parts.uri.path()) {
            return Err(ApiError::forbidden(
                None,
                format!("a {} may not use this route", who.role),
            ));
        }
        Ok(who)
    }
}

/// What a management company's own staff may reach: a tenant viewer its tickets,
/// journal and recordings (read-only); a tenant admin everything but the floor of
/// the contact centre (operators, the board, live calls, callers, dial jobs).
/// Operators and supervisors are limited by each route.
pub fn role_allows(role: Role, method: &axum::http::Method, path: &str) -> bool {
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match role {
        Role::TenantViewer => {
            (*method == axum::http::Method::GET
                && matches!(
                    segments.as_slice(),
                    ["tickets"]
                        | ["tickets", _]
                        | ["calls"]
                        | ["calls", _]
                        | ["recordings", _]
                        | ["tenants"]
                        | ["reviews"]
                        | ["monitor"]
                        | ["analytics", ..]
                        | ["export", ..]
                        | ["tickets", _, "attachments", ..]
                )
                && segments.get(1) != Some(&"active"))
                || (*method == axum::http::Method::POST
                    && matches!(segments.as_slice(), ["calls", _, "review"]))
        }
        Role::TenantAdmin => !matches!(
            segments.as_slice(),
            ["board"]
                | ["operators", ..]
                | ["calls", "active"]
                | ["calls", _, "tenant"]
                | ["caller"]
                | ["dial-jobs", ..]
        ),
        _ => true,
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
    name: String,
    tenants: Vec<String>,
    expires_at: DateTime<Utc>,
}

/// Counts failed logins per client address and per extension, in memory, with
/// the engine's guessing guard ([`crate::guard`]): after a few failures every
/// further try must wait longer (doubling), and an address that keeps failing is
/// banned for a while. A successful login clears only the count of the account
/// that logged in, never its address's: an attacker cannot reset their count by
/// logging in with an account they know.
#[derive(Debug)]
pub struct LoginLimiter {
    guard: Mutex<AuthGuard>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new(GuardPolicy::default())
    }
}

impl LoginLimiter {
    /// A limiter with `policy`.
    pub fn new(policy: GuardPolicy) -> Self {
        Self {
            guard: Mutex::new(AuthGuard::new(policy)),
        }
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, AuthGuard> {
        // Each update is one insert or remove: a poisoned table is still consistent.
        self.guard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `Some(seconds to wait)` when a login from `from` for `extension` must not be
    /// checked now (the refusal is counted as a failure: hammering bans).
    pub fn blocked(&self, from: IpAddr, extension: &str, now: Instant) -> Option<u64> {
        let mut guard = self.guard();
        let wait = match guard.check(now, from, Some(extension)) {
            Verdict::Allow => return None,
            Verdict::Wait(w) | Verdict::Banned(w) => w,
        };
        if let Failure::Banned(ip) = guard.failed(now, from, Some(extension)) {
            log_ban(ip, guard.policy());
        }
        Some(wait.as_secs().max(1))
    }

    /// Counts a failed login from `from` for `extension`.
    pub fn failed(&self, from: IpAddr, extension: &str, now: Instant) {
        let mut guard = self.guard();
        if let Failure::Banned(ip) = guard.failed(now, from, Some(extension)) {
            log_ban(ip, guard.policy());
        }
    }

    /// A successful login of `extension` from `from`: its count is cleared (its
    /// address's is not).
    pub fn succeeded(&self, from: IpAddr, extension: &str, now: Instant) {
        self.guard().succeeded(now, from, extension);
    }

    /// Addresses banned since start, and now.
    pub fn bans(&self, now: Instant) -> (u64, usize) {
        let guard = self.guard();
        (guard.bans(), guard.banned_now(now))
    }
}

fn log_ban(ip: IpAddr, policy: &GuardPolicy) {
    tracing::warn!(
        source = %ip,
        failures = policy.ban_after,
        ban_s = policy.ban_for.as_secs(),
        "console logins from this address banned after failed logins"
    );
}

pub(crate) async fn issue_token(
    State(state): State<ApiState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    JsonBody(login): JsonBody<Login>,
) -> Result<Json<Issued>, ApiError> {
    // Without the peer's address (an API served without connect info) every client
    // shares one count.
    let from = peer.map_or(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        |Extension(ConnectInfo(a))| a.ip(),
    );
    let extension = login.extension.trim();
    if let Some(wait) = state.login_limiter.blocked(from, extension, Instant::now()) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many failed logins from your address; try again in {wait} s"),
        )
        .with_field("password"));
    }
    let account = state.store.check_login(extension, &login.password).await?;
    let Some(account) = account else {
        state.login_limiter.failed(from, extension, Instant::now());
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unknown extension or wrong password",
        )
        .with_field("password"));
    };
    state
        .login_limiter
        .succeeded(from, &account.extension, Instant::now());
    let now = Utc::now();
    // Logins are rare; sweeping expired tokens here keeps the table small.
    state.store.purge_expired_tokens(now).await?;
    let bytes: [u8; 32] = rand::random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let expires_at = now + state.token_ttl;
    state
        .store
        .store_token(
            &token_hash(&token),
            &StoredToken {
                extension: account.extension.clone(),
                role: account.role.as_str().to_owned(),
                tenants: account.tenants.clone(),
                expires_at,
            },
            now,
        )
        .await?;
    Ok(Json(Issued {
        token,
        role: account.role,
        tenants: account.tenants,
        name: account.name,
        expires_at,
    }))
}

/// `POST /auth/token/renew` answer.
#[derive(Debug, Serialize)]
pub(crate) struct Renewed {
    expires_at: DateTime<Utc>,
}

/// The bearer token of a request that must have one.
fn required_token(parts: &Parts) -> Result<&str, ApiError> {
    Ok(bearer(parts).ok_or(AuthError::Missing)?.trim())
}

pub(crate) async fn revoke_token(
    State(state): State<ApiState>,
    request: axum::extract::Request,
) -> Result<StatusCode, ApiError> {
    let (parts, _) = request.into_parts();
    let token = required_token(&parts)?;
    authenticate(&state.store, token).await?;
    state.store.revoke_token(&token_hash(token)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn renew_token(
    State(state): State<ApiState>,
    request: axum::extract::Request,
) -> Result<Json<Renewed>, ApiError> {
    let (parts, _) = request.into_parts();
    let token = required_token(&parts)?;
    authenticate(&state.store, token).await?;
    let now = Utc::now();
    let expires_at = now + state.token_ttl;
    if !state
        .store
        .renew_token(&token_hash(token), expires_at, now)
        .await?
    {
        return Err(AuthError::Invalid.into());
    }
    Ok(Json(Renewed { expires_at }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn failed_logins_back_off_and_a_success_elsewhere_resets_nothing() {
        let limiter = LoginLimiter::default();
        let (a, b) = (IpAddr::from([127, 0, 0, 1]), IpAddr::from([127, 0, 0, 2]));
        let t0 = Instant::now();
        for _ in 0..GuardPolicy::default().free_failures {
            assert_eq!(limiter.blocked(a, "1001", t0), None);
            limiter.failed(a, "1001", t0);
        }
        assert_eq!(limiter.blocked(a, "1001", t0), None, "free failures");
        limiter.failed(a, "1001", t0);
        assert_eq!(limiter.blocked(a, "1001", t0), Some(1), "back-off");
        // The attacker logs in with an account they know: their address still waits.
        limiter.succeeded(a, "1002", t0);
        assert!(limiter.blocked(a, "1002", t0).is_some());
        assert_eq!(limiter.blocked(b, "1002", t0), None, "per address");
        // Hammering during the back-off ends in a ban.
        let mut now = t0;
        for _ in 0..20 {
            now += Duration::from_millis(10);
            let _ = limiter.blocked(a, "1001", now);
        }
        assert_eq!(limiter.bans(now).1, 1);
    }

    #[test]
    fn tenant_staff_reach_only_their_routes() {
        use axum::http::Method;
        assert!(role_allows(Role::TenantViewer, &Method::GET, "/tickets"));
        assert!(role_allows(Role::TenantViewer, &Method::GET, "/calls/abc"));
        assert!(!role_allows(
            Role::TenantViewer,
            &Method::GET,
            "/calls/active"
        ));
        assert!(!role_allows(Role::TenantViewer, &Method::POST, "/tickets"));
        assert!(!role_allows(Role::TenantViewer, &Method::GET, "/contacts"));
        assert!(!role_allows(Role::TenantViewer, &Method::GET, "/employees"));
        assert!(role_allows(Role::TenantAdmin, &Method::POST, "/onboarding"));
        assert!(!role_allows(Role::TenantAdmin, &Method::GET, "/board"));
        assert!(!role_allows(Role::TenantAdmin, &Method::GET, "/caller"));
        assert!(role_allows(Role::Operator, &Method::GET, "/caller"));
    }

    #[test]
    fn hashes_are_hex_sha256() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
