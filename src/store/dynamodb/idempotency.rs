//! Idempotency keys of API requests (`pk IDEMPOTENCY#<caller>#<key>`, `sk IDEMPOTENCY`).
//! A key is reserved with a conditional put before the request acts, so of two
//! concurrent requests with one key only one can act; the response is then stored on
//! the item and replayed. Items carry `expires_at` (epoch seconds), the table's TTL
//! attribute, so DynamoDB removes them after a day.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use chrono::{DateTime, Utc};

use super::errors::classify;
use super::item::{get_n, get_s, n, s, Item};
use super::DynamoStore;
use crate::ports::{IdempotencyStore, Reservation, StoreError};

const SK: &str = "IDEMPOTENCY";

fn key_pk(scope: &str, key: &str) -> String {
    format!("IDEMPOTENCY#{scope}#{key}")
}

fn key_of(scope: &str, key: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(key_pk(scope, key))), ("sk".to_owned(), s(SK))])
}

#[async_trait::async_trait]
impl IdempotencyStore for DynamoStore {
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
    ) -> Result<Reservation, StoreError> {
        let secs = |d: Duration| now.timestamp() + d.as_secs() as i64;
        let mut item = key_of(scope, key);
        item.insert("fingerprint".into(), s(fingerprint));
        item.insert("status".into(), s("pending"));
        item.insert("pending_until".into(), n(secs(pending_timeout)));
        item.insert("expires_at".into(), n(secs(retention)));
        let result = self
            .client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now OR (#status = :pending AND pending_until < :now)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(now.timestamp()))
            .expression_attribute_values(":pending", s("pending"))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(Reservation::Reserved),
            Err(err) => err,
        };
        let old = match err.as_service_error() {
            Some(PutItemError::ConditionalCheckFailedException(e)) => e.item().cloned(),
            _ => return Err(classify("reserving an idempotency key", self.table(), err)),
        };
        let old = match old {
            Some(item) => item,
            // Not returned (older emulators): read it.
            None => self.load_idempotency_item(scope, key).await?,
        };
        let fingerprint = get_s(&old, "fingerprint")?.to_owned();
        if get_s(&old, "status")? == "done" {
            Ok(Reservation::Completed {
                fingerprint,
                status: get_n(&old, "response_status")? as u16,
                body: get_s(&old, "response_body")?.to_owned(),
            })
        } else {
            Ok(Reservation::InProgress { fingerprint })
        }
    }

    /// Stores the response of the request that reserved `key`.
    async fn complete_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError> {
        self.client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key_of(scope, key)))
            .update_expression("SET #status = :done, response_status = :code, response_body = :body")
            .condition_expression("fingerprint = :fingerprint")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":done", s("done"))
            .expression_attribute_values(":code", n(status))
            .expression_attribute_values(":body", s(body))
            .expression_attribute_values(":fingerprint", s(fingerprint))
            .send()
            .await
            .map_err(|e| classify("storing an idempotent response", self.table(), e))?;
        Ok(())
    }

    /// Drops a reservation whose request failed in a way worth retrying (a store
    /// outage), so the client may send the same key again.
    async fn forget_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .client()
            .delete_item()
            .table_name(self.table())
            .set_key(Some(key_of(scope, key)))
            .condition_expression("fingerprint = :fingerprint AND #status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":fingerprint", s(fingerprint))
            .expression_attribute_values(":pending", s("pending"))
            .send()
            .await;
        match result.map_err(|e| classify("releasing an idempotency key", self.table(), e)) {
            Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl DynamoStore {
    async fn load_idempotency_item(&self, scope: &str, key: &str) -> Result<Item, StoreError> {
        let item = self
            .read_item(key_of(scope, key), "reading an idempotency key")
            .await?;
        item.ok_or_else(|| {
            StoreError::retryable(
                "reading an idempotency key",
                "the key expired while it was read; send the request again",
            )
        })
    }
}
