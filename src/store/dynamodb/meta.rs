//! The settings kept whole in one item under `pk META` (the version policy, the freeze
//! windows): each carries a version, and a write replaces the item only if the version
//! is still the one read, so two operators changing it at once cannot lose a change.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};

use super::errors::classify;
use super::item::{n, s, Item};
use super::DynamoStore;
use crate::store::{keys, StoreError};

/// How often a change is read and applied again after another write came first.
pub(super) const CONFLICT_RETRIES: usize = 5;

impl DynamoStore {
    /// Replaces the META item `sk` with `attributes` at `version + 1`, conditional on
    /// the stored one being `version` (or absent); `Conflict` when another write came
    /// first. `context` names the write in an error.
    pub(super) async fn put_meta_item(
        &self,
        sk: &str,
        attributes: impl IntoIterator<Item = (&str, AttributeValue)>,
        version: u64,
        context: &str,
    ) -> Result<(), StoreError> {
        let mut item: Item = attributes.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        item.insert("pk".to_owned(), s(keys::META_PK));
        item.insert("sk".to_owned(), s(sk));
        item.insert("version".to_owned(), n(version + 1));
        let out = self
            .client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR version = :v")
            .expression_attribute_values(":v", n(version))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| classify(context, self.table(), e))?;
        self.count(out.consumed_capacity());
        Ok(())
    }
}
