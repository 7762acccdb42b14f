//! Who may read what, and a record of who did.
//!
//! Owns the personal-data access log (152-ФЗ: phone plus address is personal data, so
//! every read of contacts, callers' phones and addresses through the console is
//! written down: who, when, which tenant, which record, for what) and the console's
//! bearer tokens, of which only the SHA-256 is stored, so a copy of the database
//! does not let anyone log in.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::backend::{dispatch, per_backend};
use super::{Store, StoreError, list_text, stored_list};

per_backend!("sql/access.rs");

/// One read of personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who (operator extension).
    pub principal: String,
    /// The tenant whose data it was.
    pub tenant: Option<String>,
    /// What kind of record (`contact`, `call`, `ticket`, `recording`, `caller`).
    pub subject: String,
    /// Which record.
    pub subject_id: String,
    /// Through what (the API route).
    pub purpose: String,
}

/// A console token as stored (its hash is the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// The operator's extension.
    pub extension: String,
    /// `operator` or `supervisor`.
    pub role: String,
    /// Tenant codes the operator serves; empty means all.
    pub tenants: Vec<String>,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
}

impl Store {
    /// Writes reads of personal data to the access log (one transaction).
    pub async fn log_access(&self, entries: &[AccessEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        dispatch!(self, log_access(entries))
    }

    /// The newest access-log entries, newest first.
    pub async fn access_log(&self, limit: i64) -> Result<Vec<AccessEntry>, StoreError> {
        dispatch!(self, access_log(limit.clamp(1, 1000)))
    }

    /// Stores a token under the hex SHA-256 of its secret.
    pub async fn store_token(
        &self,
        token_hash: &str,
        token: &StoredToken,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let tenants = list_text(&token.tenants);
        dispatch!(self, store_token(token_hash, token, &tenants, now))
    }

    /// The unexpired token stored under `token_hash`.
    pub async fn token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredToken>, StoreError> {
        let row = dispatch!(self, token(token_hash, now))?;
        row.map(|(extension, role, tenants, expires_at)| {
            Ok(StoredToken {
                extension,
                role,
                tenants: stored_list(&tenants)?,
                expires_at,
            })
        })
        .transpose()
    }

    /// Deletes tokens that expired before `now`.
    pub async fn purge_expired_tokens(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        dispatch!(self, purge_tokens(now))
    }

    /// Deletes the token stored under `token_hash` (a log-out); whether there was one.
    pub async fn revoke_token(&self, token_hash: &str) -> Result<bool, StoreError> {
        dispatch!(self, revoke_token(token_hash))
    }

    /// Moves the expiry of the unexpired token under `token_hash` to `expires_at`;
    /// whether there was such a token.
    pub async fn renew_token(
        &self,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        dispatch!(self, renew_token(token_hash, expires_at, now))
    }
}
