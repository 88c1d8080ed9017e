//! Many tenants in few requests: `BatchGetItem`, 100 keys a request, strongly
//! consistent, the keys DynamoDB leaves unprocessed (throttling, the 16 MB answer
//! limit) asked again after a short backoff. What a fleet-wide read (planning a
//! rollout, a catalog plan, a restricted principal's listing) uses instead of one
//! `GetItem` per tenant, and the rollout page's sample of a wave's members.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::KeysAndAttributes;

use super::errors::classify;
use super::item::{decode_tenant, Item};
use super::DynamoStore;
use crate::domain::TenantId;
use crate::record::TenantRecord;
use crate::store::StoreError;

/// The most keys one `BatchGetItem` may ask for.
const KEYS_PER_REQUEST: usize = 100;

/// How many times keys left unprocessed are asked again before the read fails.
const UNPROCESSED_ROUNDS: u32 = 8;

impl DynamoStore {
    /// The stored records of `ids`, in their order; an id with no tenant is left out.
    pub(super) async fn batch_load(&self, ids: &[TenantId]) -> Result<Vec<TenantRecord>, StoreError> {
        let keys = ids.iter().map(Self::tenant_key).collect();
        let mut found: HashMap<TenantId, TenantRecord> = HashMap::with_capacity(ids.len());
        for item in self.batch_get(keys, "loading tenants").await? {
            let record = decode_tenant(&item)?;
            found.insert(record.id().clone(), record);
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// The items of `keys` that exist, in no particular order.
    pub(super) async fn batch_get(&self, keys: Vec<Item>, context: &str) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(KEYS_PER_REQUEST) {
            let mut keys: Vec<Item> = chunk.to_vec();
            let mut round = 0;
            while !keys.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .expect("keys set");
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| classify(context, &self.table, e))?;
                found.extend((out.responses.unwrap_or_default().remove(&self.table)).unwrap_or_default());
                keys = (out.unprocessed_keys.unwrap_or_default().remove(&self.table))
                    .map(|left| left.keys)
                    .unwrap_or_default();
                if keys.is_empty() {
                    break;
                }
                round += 1;
                if round > UNPROCESSED_ROUNDS {
                    return Err(StoreError::Retryable {
                        context: context.to_owned(),
                        message: format!(
                            "DynamoDB left {} keys unprocessed {UNPROCESSED_ROUNDS} times: the table is \
                             over its read capacity; retry later or raise it",
                            keys.len()
                        ),
                        source: None,
                    });
                }
                tokio::time::sleep(Duration::from_millis(25 << round.min(6))).await;
            }
        }
        Ok(found)
    }
}
