//! Accounts: who may log in to the console, in which role and for which tenants, and
//! which operators' softphones may register.
//!
//! Owns the [`Role`]s, the account records and their secrets. The console password
//! is kept only as an argon2id hash. A softphone's SIP digest credentials are a
//! separate password, kept only as its HA1 (`H(extension:realm:password)`, MD5 and
//! SHA-256) for the realm it was given in: the registrar needs nothing more, and a
//! copy of the database gives neither password. An account that is removed keeps its
//! row with `removed_at` set (the journal and the admin log name it); it can no
//! longer log in or register, and the configuration's `[[operator]]` tables do not
//! bring it back ([`Store::seed_users`] only creates extensions the store has never
//! had).
//!
//! Removing an account, changing its role or tenants, or setting its password
//! revokes its console tokens in the same transaction; telling the live websockets
//! and the call core is the caller's part.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Utc};
use md5::Md5;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::backend::{dispatch, per_backend};
use super::directory::TenantScope;
use super::ids::UserId;
use super::{Store, StoreError, list_text, stored_list, text_enum};

per_backend!("sql/users.rs");

text_enum! {
    /// What an account may do in the console.
    pub enum Role {
        /// Takes calls and registers tickets for their tenants.
        Operator = "operator",
        /// Watches the floor and administers the tenants they are given.
        Supervisor = "supervisor",
        /// One company's reference data, users and settings.
        TenantAdmin = "tenant-admin",
        /// One company's tickets, journal and recordings, read-only (may rate calls).
        TenantViewer = "tenant-viewer",
    }
}

impl Role {
    /// Whether this role belongs to a management company's own staff, who must be
    /// given at least one tenant and never see another's.
    pub fn is_tenant_staff(self) -> bool {
        matches!(self, Role::TenantAdmin | Role::TenantViewer)
    }

    /// Whether this role administers reference data and accounts.
    pub fn administers(self) -> bool {
        matches!(self, Role::Supervisor | Role::TenantAdmin)
    }

    /// The role a name gives (`operator`, `supervisor`, `tenant-admin`,
    /// `tenant-viewer`), for the command line and the API.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == name.trim())
    }
}

/// An account as the API shows it (no secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Row id.
    pub id: UserId,
    /// Login name; for operators also the SIP user of their softphone.
    pub extension: String,
    /// Display name.
    pub name: String,
    /// Console role.
    pub role: Role,
    /// Tenants served; empty means all (never for tenant staff).
    pub tenants: Vec<String>,
    /// Cities served (operators' skills); empty means all.
    pub cities: Vec<String>,
    /// Whether a softphone may register with SIP credentials of its own.
    pub softphone: bool,
    /// Ask the softphone to answer automatically.
    pub auto_answer: bool,
    /// Bumped by every change.
    pub version: i64,
    /// When created.
    pub created_at: DateTime<Utc>,
    /// When last changed.
    pub updated_at: DateTime<Utc>,
}

/// A softphone's digest credentials as stored: HA1 for one realm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipCredentials {
    /// The realm the HA1s were made for.
    pub realm: String,
    /// `MD5(extension:realm:password)`, hex.
    pub ha1_md5: String,
    /// `SHA-256(extension:realm:password)`, hex.
    pub ha1_sha256: String,
}

impl SipCredentials {
    /// The HA1s of `password` for `extension` in `realm` (RFC 7616 §3.4.2).
    pub fn derive(extension: &str, realm: &str, password: &str) -> Self {
        let a1 = format!("{extension}:{realm}:{password}");
        Self {
            realm: realm.to_owned(),
            ha1_md5: hex(&Md5::digest(a1.as_bytes())),
            ha1_sha256: hex(&Sha256::digest(a1.as_bytes())),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An account whose softphone may register: what the call core needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftphoneAccount {
    /// The account.
    pub user: User,
    /// Its SIP credentials.
    pub sip: SipCredentials,
}

/// Input for [`Store::create_user`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Login name (letters, digits, `-`, `_`, `.`).
    pub extension: String,
    /// Display name (the extension when empty).
    #[serde(default)]
    pub name: String,
    /// Console role.
    pub role: Option<Role>,
    /// Tenants served.
    #[serde(default)]
    pub tenants: Vec<String>,
    /// Cities served.
    #[serde(default)]
    pub cities: Vec<String>,
    /// Console password (at least [`MIN_PASSWORD`] characters).
    pub password: String,
    /// SIP password for a softphone (operators and supervisors only); none: no
    /// softphone.
    #[serde(default)]
    pub sip_password: Option<String>,
    /// Ask the softphone to answer automatically.
    #[serde(default)]
    pub auto_answer: bool,
}

/// Input for [`Store::update_user`]: what is given changes, the rest stays.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// New display name.
    pub name: Option<String>,
    /// New role.
    pub role: Option<Role>,
    /// New tenants.
    pub tenants: Option<Vec<String>>,
    /// New cities.
    pub cities: Option<Vec<String>>,
    /// New console password.
    pub password: Option<String>,
    /// New SIP password; an empty one removes the softphone.
    pub sip_password: Option<String>,
    /// Auto-answer.
    pub auto_answer: Option<bool>,
    /// The version the change was made against (a conflict when it moved).
    pub version: Option<i64>,
}

/// What [`Store::update_user`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserUpdated {
    /// The account now.
    pub user: User,
    /// Whether its console tokens were revoked (role, tenants or password changed):
    /// its open consoles must be closed.
    pub revoked: bool,
}

/// The shortest console or SIP password accepted through the API or the command
/// line.
pub const MIN_PASSWORD: usize = 8;

/// The longest password accepted (argon2 and the digest take any length; a
/// megabyte of password is an attack).
const MAX_PASSWORD: usize = 256;

/// Hashes a console password (argon2id, a fresh salt).
pub fn hash_password(password: &str) -> Result<String, StoreError> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| StoreError::invalid("password", e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::invalid("password", e.to_string()))
}

/// Whether `password` matches a stored argon2 hash (false for a malformed hash).
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

pub(crate) fn check_extension(extension: &str) -> Result<(), StoreError> {
    let ok = !extension.is_empty()
        && extension.len() <= 64
        && extension
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "extension",
            "must be 1 to 64 letters, digits, - _ or .",
        ))
    }
}

fn check_password(field: &'static str, password: &str) -> Result<(), StoreError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(StoreError::invalid(
            field,
            format!("shorter than {MIN_PASSWORD} characters"),
        ));
    }
    if n > MAX_PASSWORD {
        return Err(StoreError::invalid(
            field,
            format!("longer than {MAX_PASSWORD} characters"),
        ));
    }
    Ok(())
}

fn check_role_tenants(role: Role, tenants: &[String], softphone: bool) -> Result<(), StoreError> {
    if role.is_tenant_staff() && tenants.is_empty() {
        return Err(StoreError::invalid(
            "tenants",
            format!("a {role} must be given at least one tenant"),
        ));
    }
    if role.is_tenant_staff() && softphone {
        return Err(StoreError::invalid(
            "sip_password",
            format!("a {role} takes no calls and has no softphone"),
        ));
    }
    if tenants.len() > 1000 {
        return Err(StoreError::invalid("tenants", "at most 1000 tenants"));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), StoreError> {
    if name.chars().count() > 200 {
        return Err(StoreError::invalid("name", "longer than 200 characters"));
    }
    Ok(())
}

/// A stored account row, secrets included.
#[derive(Debug, Clone)]
pub(crate) struct UserRow {
    pub(crate) user: User,
    pub(crate) password_hash: String,
    pub(crate) sip: Option<SipCredentials>,
}

/// An account as the configuration's `[[operator]]` tables describe it, to seed a
/// store that does not have it yet.
#[derive(Debug, Clone)]
pub struct SeedUser {
    /// Extension.
    pub extension: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Tenants.
    pub tenants: Vec<String>,
    /// Cities.
    pub cities: Vec<String>,
    /// The one password the file gives: the console's and the softphone's.
    pub password: String,
    /// Auto-answer.
    pub auto_answer: bool,
}

/// Hashing is CPU work of tens of milliseconds: off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    Ok(tokio::task::spawn_blocking(f).await?)
}

impl Store {
    /// Every account visible in `scope` that has not been removed: an account is
    /// visible when it serves one of the scope's tenants (accounts of all tenants
    /// only to principals of all tenants).
    pub async fn users(&self, scope: &TenantScope) -> Result<Vec<User>, StoreError> {
        let rows = dispatch!(self, users(None))?;
        Ok(rows
            .into_iter()
            .map(|r| r.user)
            .filter(|u| match scope {
                TenantScope::All => true,
                TenantScope::Only(codes) => {
                    !u.tenants.is_empty() && u.tenants.iter().all(|t| codes.contains(t))
                }
            })
            .collect())
    }

    /// The account with this extension, unless removed.
    pub async fn user(&self, extension: &str) -> Result<Option<User>, StoreError> {
        Ok(dispatch!(self, users(Some(extension)))?
            .into_iter()
            .next()
            .map(|r| r.user))
    }

    /// Whether any account (removed or not) exists: a store with none is fresh and
    /// takes the configuration's `[[operator]]` tables.
    pub async fn has_users(&self) -> Result<bool, StoreError> {
        dispatch!(self, has_users())
    }

    /// Accounts whose softphones may register (operators and supervisors with SIP
    /// credentials), for the call core.
    pub async fn softphones(&self) -> Result<Vec<SoftphoneAccount>, StoreError> {
        Ok(dispatch!(self, users(None))?
            .into_iter()
            .filter(|r| matches!(r.user.role, Role::Operator | Role::Supervisor))
            .filter_map(|r| r.sip.map(|sip| SoftphoneAccount { user: r.user, sip }))
            .collect())
    }

    /// The account `extension` when `password` is its console password.
    pub async fn check_login(
        &self,
        extension: &str,
        password: &str,
    ) -> Result<Option<User>, StoreError> {
        if password.len() > MAX_PASSWORD * 4 {
            return Ok(None);
        }
        let row = dispatch!(self, users(Some(extension)))?.into_iter().next();
        let Some(row) = row else {
            // The same work as a real check, so timing does not tell which
            // extensions exist.
            let password = password.to_owned();
            blocking(move || verify_password(DUMMY_HASH, &password)).await?;
            return Ok(None);
        };
        let (hash, password) = (row.password_hash.clone(), password.to_owned());
        let ok = blocking(move || verify_password(&hash, &password)).await?;
        Ok(ok.then_some(row.user))
    }

    /// Creates an account; its SIP credentials (if a SIP password is given) are made
    /// for `realm`. Tenants and cities must exist.
    pub async fn create_user(&self, new: &NewUser, realm: &str) -> Result<User, StoreError> {
        let extension = new.extension.trim().to_owned();
        check_extension(&extension)?;
        let role = new
            .role
            .ok_or_else(|| StoreError::invalid("role", "missing"))?;
        check_name(&new.name)?;
        check_password("password", &new.password)?;
        let sip_password = new.sip_password.as_deref().filter(|p| !p.is_empty());
        if let Some(p) = sip_password {
            check_password("sip_password", p)?;
            if p == new.password {
                return Err(StoreError::invalid(
                    "sip_password",
                    "must differ from the console password",
                ));
            }
        }
        check_role_tenants(role, &new.tenants, sip_password.is_some())?;
        let password = new.password.clone();
        let hash = blocking(move || hash_password(&password)).await??;
        let sip = sip_password.map(|p| SipCredentials::derive(&extension, realm, p));
        let name = if new.name.trim().is_empty() {
            extension.clone()
        } else {
            new.name.trim().to_owned()
        };
        let row = UserRow {
            user: User {
                id: UserId(0),
                extension: extension.clone(),
                name,
                role,
                tenants: dedup(&new.tenants),
                cities: dedup(&new.cities),
                softphone: sip.is_some(),
                auto_answer: new.auto_answer,
                version: 1,
                created_at: Utc::now(),
                updated_at: Utc::now(),
            },
            password_hash: hash,
            sip,
        };
        dispatch!(self, insert_user(self.actor().as_ref(), &row, true))?;
        self.user(&extension)
            .await?
            .ok_or_else(|| StoreError::not_found("user", &extension))
    }

    /// Changes an account. A new role, new tenants or a new console password revoke
    /// its console tokens in the same transaction ([`UserUpdated::revoked`]).
    pub async fn update_user(
        &self,
        extension: &str,
        change: &UserChange,
        realm: &str,
    ) -> Result<UserUpdated, StoreError> {
        let current = dispatch!(self, users(Some(extension)))?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::not_found("user", extension))?;
        if change.version.is_some_and(|v| v != current.user.version) {
            return Err(StoreError::Conflict(format!(
                "user {extension} was changed by someone else (version {})",
                current.user.version
            )));
        }
        let mut next = current.clone();
        if let Some(name) = &change.name {
            check_name(name)?;
            next.user.name = if name.trim().is_empty() {
                extension.to_owned()
            } else {
                name.trim().to_owned()
            };
        }
        if let Some(role) = change.role {
            next.user.role = role;
        }
        if let Some(tenants) = &change.tenants {
            next.user.tenants = dedup(tenants);
        }
        if let Some(cities) = &change.cities {
            next.user.cities = dedup(cities);
        }
        if let Some(auto) = change.auto_answer {
            next.user.auto_answer = auto;
        }
        if let Some(password) = &change.password {
            check_password("password", password)?;
            let password = password.clone();
            next.password_hash = blocking(move || hash_password(&password)).await??;
        }
        match change.sip_password.as_deref() {
            None => {}
            Some("") => next.sip = None,
            Some(p) => {
                check_password("sip_password", p)?;
                if change.password.as_deref() == Some(p) {
                    return Err(StoreError::invalid(
                        "sip_password",
                        "must differ from the console password",
                    ));
                }
                next.sip = Some(SipCredentials::derive(extension, realm, p));
            }
        }
        // A tenant-staff role never keeps a softphone.
        if next.user.role.is_tenant_staff() && change.sip_password.is_none() {
            next.sip = None;
        }
        check_role_tenants(next.user.role, &next.user.tenants, next.sip.is_some())?;
        next.user.softphone = next.sip.is_some();
        let revoked = next.user.role != current.user.role
            || next.user.tenants != current.user.tenants
            || change.password.is_some();
        dispatch!(
            self,
            update_user(self.actor().as_ref(), &next, current.user.version, revoked)
        )?;
        let user = self
            .user(extension)
            .await?
            .ok_or_else(|| StoreError::not_found("user", extension))?;
        Ok(UserUpdated { user, revoked })
    }

    /// Removes an account: it can no longer log in or register, and its console
    /// tokens are revoked in the same transaction.
    pub async fn remove_user(&self, extension: &str) -> Result<User, StoreError> {
        let user = self
            .user(extension)
            .await?
            .ok_or_else(|| StoreError::not_found("user", extension))?;
        dispatch!(self, remove_user(self.actor().as_ref(), &user))?;
        Ok(user)
    }

    /// Creates the configuration's accounts the store has never had (not even
    /// removed), with the one password the file gives as both the console and the
    /// softphone password (SIP credentials made for `realm`). Returns the
    /// extensions created.
    pub async fn seed_users(
        &self,
        seeds: &[SeedUser],
        realm: &str,
    ) -> Result<Vec<String>, StoreError> {
        let known = dispatch!(self, all_extensions())?;
        let mut created = Vec::new();
        for seed in seeds.iter().filter(|s| !known.contains(&s.extension)) {
            let password = seed.password.clone();
            let hash = blocking(move || hash_password(&password)).await??;
            let softphone = !seed.role.is_tenant_staff();
            let row = UserRow {
                user: User {
                    id: UserId(0),
                    extension: seed.extension.clone(),
                    name: seed.name.clone(),
                    role: seed.role,
                    tenants: dedup(&seed.tenants),
                    cities: dedup(&seed.cities),
                    softphone,
                    auto_answer: seed.auto_answer,
                    version: 1,
                    created_at: Utc::now(),
                    updated_at: Utc::now(),
                },
                password_hash: hash,
                sip: softphone
                    .then(|| SipCredentials::derive(&seed.extension, realm, &seed.password)),
            };
            // Tenants named in the file are not checked here: the start-up check
            // reports those the store lacks.
            dispatch!(self, insert_user(None, &row, false))?;
            created.push(seed.extension.clone());
        }
        Ok(created)
    }
}

fn dedup(list: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for item in list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == item) {
            out.push(item.to_owned());
        }
    }
    out
}

/// An argon2id hash of a random password, checked against when the extension does
/// not exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0Q1Vj7xKx1wq2nU9yN1q3mZ3b0g4cP8aJm3tH2b6R8Y";

/// The JSON an account's admin-log row records (no secrets).
pub(crate) fn logged(user: &User) -> serde_json::Value {
    serde_json::json!({
        "extension": user.extension,
        "name": user.name,
        "role": user.role,
        "tenants": user.tenants,
        "cities": user.cities,
        "softphone": user.softphone,
        "auto_answer": user.auto_answer,
    })
}

pub(crate) fn tenants_text(user: &User) -> String {
    list_text(&user.tenants)
}

pub(crate) fn parse_list(raw: &str) -> Result<Vec<String>, StoreError> {
    stored_list(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ha1_is_rfc_2617s() {
        let c = SipCredentials::derive("Mufasa", "testrealm@host.com", "Circle Of Life");
        assert_eq!(c.ha1_md5, "939e7578ed9e3c518a452acee763bce9");
        assert_eq!(c.ha1_sha256.len(), 64);
    }

    #[test]
    fn argon2_hashes_verify_and_differ_by_salt() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$"));
        assert!(verify_password(&a, "correct horse"));
        assert!(!verify_password(&a, "correct horse!"));
        assert!(!verify_password("not a hash", "x"));
        assert!(!verify_password(DUMMY_HASH, "anything"));
    }

    #[test]
    fn roles_parse_by_their_names() {
        assert_eq!(Role::parse("tenant-admin"), Some(Role::TenantAdmin));
        assert_eq!(Role::parse("admin"), None);
        assert!(Role::TenantViewer.is_tenant_staff());
        assert!(Role::TenantAdmin.administers());
        assert!(!Role::Operator.administers());
    }

    #[test]
    fn tenant_staff_need_a_tenant_and_no_softphone() {
        assert!(check_role_tenants(Role::TenantViewer, &[], false).is_err());
        assert!(check_role_tenants(Role::TenantViewer, &["a".into()], true).is_err());
        assert!(check_role_tenants(Role::Supervisor, &[], true).is_ok());
    }
}
