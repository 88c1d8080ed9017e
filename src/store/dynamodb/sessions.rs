//! Dashboard sign-in sessions (`pk SESSION#<sha256 of the session id>`, `sk SESSION`).
//! Only the id's hash is stored, so reading the table never yields a usable cookie.
//! Items carry `expires_at` (epoch seconds), the table's TTL attribute; DynamoDB
//! removes them some time after that, so a read also checks the time itself.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::errors::classify;
use super::item::{corrupt, corrupt_by, get_n, get_s, n, opt_s, s, Item};
use super::DynamoStore;
use crate::ports::{SessionStore, StoreError, StoredSession};

const SK: &str = "SESSION";

fn key_of(id_hash: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(format!("SESSION#{id_hash}"))),
        ("sk".to_owned(), s(SK)),
    ])
}

fn seconds(key: &str, secs: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp(secs, 0).ok_or_else(|| corrupt(key, secs))
}

#[async_trait::async_trait]
impl SessionStore for DynamoStore {
    /// Stores a new session under the hash of its id. Ids are random, so an existing
    /// item with the same key is refused rather than overwritten.
    async fn create_session(&self, id_hash: &str, session: &StoredSession) -> Result<(), StoreError> {
        let mut item = key_of(id_hash);
        item.insert("token_name".into(), s(&session.token_name));
        item.insert("scope".into(), s(&session.scope));
        item.insert("token_check".into(), s(&session.token_check));
        item.insert("created_at".into(), n(session.created_at.timestamp()));
        item.insert("expires_at".into(), n(session.expires_at.timestamp()));
        if let Some(bindings) = &session.bindings {
            let json = serde_json::to_string(bindings).expect("bindings serialize to JSON");
            item.insert("bindings".into(), s(json));
        }
        self.put_new(item, "storing a dashboard session").await
    }

    /// The session stored under `id_hash`, if there is one (expired or not).
    async fn load_session(&self, id_hash: &str) -> Result<Option<StoredSession>, StoreError> {
        let Some(item) = self
            .read_item(key_of(id_hash), "reading a dashboard session")
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(StoredSession {
            token_name: get_s(&item, "token_name")?.to_owned(),
            scope: get_s(&item, "scope")?.to_owned(),
            token_check: get_s(&item, "token_check")?.to_owned(),
            created_at: seconds("created_at", get_n(&item, "created_at")?)?,
            expires_at: seconds("expires_at", get_n(&item, "expires_at")?)?,
            bindings: opt_s(&item, "bindings")
                .map(|json| serde_json::from_str(&json).map_err(|e| corrupt_by("bindings", e)))
                .transpose()?,
        }))
    }

    /// Revokes a session (sign-out). Revoking one that is gone already is fine.
    async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        self.client()
            .delete_item()
            .table_name(self.table())
            .set_key(Some(key_of(id_hash)))
            .send()
            .await
            .map_err(|e| classify("revoking a dashboard session", self.table(), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_live_until_it_expires() {
        let created = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let session = StoredSession {
            token_name: "viewer".into(),
            scope: "read".into(),
            token_check: "00".into(),
            created_at: created,
            expires_at: created + chrono::Duration::hours(12),
            bindings: None,
        };
        assert!(session.is_live(created));
        assert!(session.is_live(created + chrono::Duration::hours(11)));
        assert!(!session.is_live(created + chrono::Duration::hours(12)));
        assert!(!session.is_live(created + chrono::Duration::days(2)));
    }
}
