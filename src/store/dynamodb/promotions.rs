//! [`PromotionStore`] on the tenants' table: a rule is `PROMOTION#<name>`/`PROMOTION`
//! (the rule and its latest promotion as JSON, with a `version` every write is
//! conditional on), listed through the `by-region` index under `PROMOTIONS`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use chrono::Utc;

use super::errors::{classify, conflict_as};
use super::item;
use super::item::{get_n, get_s, json, n, s, to_json, Item};
use super::DynamoStore;
use crate::domain::PromotionName;
use crate::ports::PromotionStore;
use crate::record::PromotionRecord;
use crate::store::{keys, Conflict, Entity, StoreError};

fn promotion_key(name: &PromotionName) -> Item {
    item::key(keys::promotion_pk(name), keys::PROMOTION_SK)
}

fn decode_promotion(item: &Item) -> Result<PromotionRecord, StoreError> {
    let mut record: PromotionRecord = json(item, "promotion")?;
    record.version = get_n(item, "version")? as u64;
    Ok(record)
}

fn not_found(name: &PromotionName) -> StoreError {
    StoreError::NotFound {
        entity: Entity::Promotion,
        what: format!("promotion rule {name}"),
    }
}

#[async_trait::async_trait]
impl PromotionStore for DynamoStore {
    async fn save_promotion(&self, record: &PromotionRecord) -> Result<PromotionRecord, StoreError> {
        let mut stored = record.clone();
        stored.version = record.version + 1;
        stored.updated_at = Utc::now();
        let mut item: Item = HashMap::from([
            ("promotion".to_owned(), to_json(&stored)),
            ("version".to_owned(), n(stored.version)),
            (
                "state_name".to_owned(),
                s(stored.promotion.as_ref().map_or("idle", |p| p.state.as_str())),
            ),
            ("list_pk".to_owned(), s(keys::PROMOTIONS_LIST_PK)),
            ("list_sk".to_owned(), s(stored.rule.name.as_str())),
        ]);
        item.extend(promotion_key(&stored.rule.name));
        let mut put = self
            .client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        put = if record.version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :v")
                .expression_attribute_values(":v", n(record.version))
        };
        let name = &stored.rule.name;
        put.send()
            .await
            .map(|out| self.count(out.consumed_capacity()))
            .map_err(|e| {
                conflict_as(
                    classify("saving promotion rule", self.table(), e),
                    Conflict::Version,
                    || {
                        format!(
                            "promotion rule {name} changed meanwhile; read it again with \
                         `tenantctl promotion get {name}` and repeat the change"
                        )
                    },
                )
            })?;
        Ok(stored)
    }

    async fn load_promotion(&self, name: &PromotionName) -> Result<PromotionRecord, StoreError> {
        match self
            .read_item(promotion_key(name), "loading promotion rule")
            .await?
        {
            Some(item) => decode_promotion(&item),
            None => Err(not_found(name)),
        }
    }

    async fn list_promotions(&self) -> Result<Vec<PromotionRecord>, StoreError> {
        let mut names = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client()
                .query()
                .table_name(self.table())
                .index_name("by-region")
                .key_condition_expression("list_pk = :pk")
                .expression_attribute_values(":pk", s(keys::PROMOTIONS_LIST_PK))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify("listing promotion rules", self.table(), e))?;
            for item in out.items() {
                let name = get_s(item, "list_sk")?;
                names.push(PromotionName::parse(name).map_err(|e| item::corrupt_by("list_sk", e))?);
            }
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        let mut records = Vec::with_capacity(names.len());
        for name in names {
            match self.load_promotion(&name).await {
                Ok(record) => records.push(record),
                // Deleted between the listing and the read.
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(records)
    }

    async fn delete_promotion(&self, name: &PromotionName) -> Result<(), StoreError> {
        let out = self
            .client()
            .delete_item()
            .table_name(self.table())
            .set_key(Some(promotion_key(name)))
            .condition_expression("attribute_exists(pk)")
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| classify("deleting promotion rule", self.table(), e));
        match out {
            Ok(out) => {
                self.count(out.consumed_capacity());
                Ok(())
            }
            Err(StoreError::Conflict { .. }) => Err(not_found(name)),
            Err(e) => Err(e),
        }
    }
}
