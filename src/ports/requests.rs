//! What the API keeps about its callers: idempotency keys of requests, and the
//! dashboard's sign-in sessions.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::Binding;

/// How a reservation of an idempotency key went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The key is ours: act, then `complete` (or `forget` on a failure worth retrying).
    Reserved,
    /// Another request with this key is still acting.
    InProgress { fingerprint: String },
    /// The key was used before; its response is stored.
    Completed {
        fingerprint: String,
        status: u16,
        body: String,
    },
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Reserves `key` (scoped by `scope`, the caller) for a request whose body has
    /// `fingerprint`. A stored key lives `retention`; a reservation whose request never
    /// completed (the process died) may be taken over after `pending_timeout`.
    async fn reserve_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
        retention: Duration,
        pending_timeout: Duration,
    ) -> Result<Reservation, StoreError>;
    /// Stores the response of the request that reserved `key`.
    async fn complete_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError>;
    /// Drops a reservation whose request failed in a way worth retrying (a store
    /// outage), so the client may send the same key again.
    async fn forget_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
    ) -> Result<(), StoreError>;
}

/// A signed-in browser, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// The name of the token the session was made from.
    pub token_name: String,
    /// The scope that token had at sign-in.
    pub scope: String,
    /// SHA-256 (hex) of the token's configured hash: tells whether the same token is
    /// still configured under that name, without storing anything a caller could use.
    pub token_check: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The bindings a single sign-on granted at sign-in (its claims are not seen
    /// again); `None` for a session made from a configured token, whose bindings are
    /// read from the token list on every view.
    pub bindings: Option<Vec<Binding>>,
}

impl StoredSession {
    /// Whether the session may still be used at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session under the hash of its id; an existing one is refused.
    async fn create_session(&self, id_hash: &str, session: &StoredSession) -> Result<(), StoreError>;
    /// The session stored under `id_hash`, if there is one (expired or not).
    async fn load_session(&self, id_hash: &str) -> Result<Option<StoredSession>, StoreError>;
    /// Revokes a session (sign-out). Revoking one that is gone already is fine.
    async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError>;
}
