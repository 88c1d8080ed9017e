//! Certificate slots in the tenant table (`pk CERTS#<region>`, `sk SLOT#<n>`, plus the
//! region's allocation root `sk ROOT`). A slot item carries its `version`, its
//! `listener_arn` and the whole slot as JSON (`slot`).

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};

use super::errors::classify;
use super::item::{corrupt, get_n, json, n, s, to_json, Item};
use super::DynamoStore;
use crate::domain::Region;
use crate::ports::{CertificateSlotStore, RegionSlots};
use crate::record::slot::Slot;
use crate::store::keys;
use crate::store::{Conflict, StoreError};

#[async_trait::async_trait]
impl CertificateSlotStore for DynamoStore {
    async fn load_slots(&self, region: &Region) -> Result<RegionSlots, StoreError> {
        let mut out = RegionSlots::default();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client()
                .query()
                .table_name(self.table())
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(keys::certs_pk(region)))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("reading certificate slots", self.table(), e))?;
            for item in page.items() {
                let sk = item.get("sk").and_then(|v| v.as_s().ok()).map(String::as_str);
                match sk {
                    Some(keys::CERTS_ROOT_SK) => out.root_version = version_of(item)?,
                    Some(sk) if sk.starts_with(keys::SLOT_SK_PREFIX) => out.slots.push(decode_slot(item)?),
                    _ => {}
                }
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        out.slots.sort_by_key(|s| s.n);
        Ok(out)
    }

    async fn allocate_slots(
        &self,
        region: &Region,
        root_version: u64,
        slots: &[Slot],
    ) -> Result<(), StoreError> {
        let root = Update::builder()
            .table_name(self.table())
            .key("pk", s(keys::certs_pk(region)))
            .key("sk", s(keys::CERTS_ROOT_SK))
            .update_expression("SET #version = :next")
            .condition_expression("attribute_not_exists(pk) OR #version = :expected")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":next", n(root_version + 1))
            .expression_attribute_values(":expected", n(root_version))
            .build()
            .map_err(|e| unbuilt("building a certificate slot allocation", e))?;
        let mut items = vec![TransactWriteItem::builder().update(root).build()];
        for slot in slots {
            items.push(TransactWriteItem::builder().put(self.slot_put(slot)?).build());
        }
        match self
            .client()
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(service))
                if matches!(
                    service.err(),
                    TransactWriteItemsError::TransactionCanceledException(_)
                ) =>
            {
                // A failed condition or a competing transaction: either way another
                // worker got there first, and the caller decides again on what it did.
                Err(StoreError::Conflict {
                    what: format!("certificate slot allocation in {region}"),
                    detail: service
                        .err()
                        .message()
                        .unwrap_or("transaction cancelled")
                        .to_owned(),
                    kind: Conflict::Version,
                })
            }
            Err(e) => Err(classify("writing a certificate slot allocation", self.table(), e)),
        }
    }

    async fn save_slot(&self, slot: &Slot) -> Result<(), StoreError> {
        let put = self.slot_put(slot)?;
        let result = self
            .client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(put.item().clone()))
            .condition_expression(put.condition_expression().unwrap_or_default())
            .set_expression_attribute_names(put.expression_attribute_names().cloned())
            .set_expression_attribute_values(put.expression_attribute_values().cloned())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // A write whose answer was lost fails its condition when the SDK sends it
            // again; finding our own write in the item (the next version, with this
            // very content) is success.
            Err(SdkError::ServiceError(service))
                if matches!(
                    service.err(),
                    PutItemError::ConditionalCheckFailedException(refused)
                        if refused.item().is_some_and(|found| holds_write(found, put.item()))
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(classify(
                &format!("saving certificate slot {} in {}", slot.n, slot.region),
                self.table(),
                e,
            )),
        }
    }

    async fn remove_slot(&self, slot: &Slot) -> Result<(), StoreError> {
        let result = self
            .client()
            .delete_item()
            .table_name(self.table())
            .key("pk", s(keys::certs_pk(&slot.region)))
            .key("sk", s(keys::slot_sk(slot.n)))
            .condition_expression("#version = :expected")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":expected", n(slot.version))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Refused with nothing there: our own delete, its answer lost, sent again.
            Err(SdkError::ServiceError(service))
                if matches!(
                    service.err(),
                    DeleteItemError::ConditionalCheckFailedException(refused) if refused.item().is_none()
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(classify(
                &format!("removing certificate slot {} in {}", slot.n, slot.region),
                self.table(),
                e,
            )),
        }
    }
}

impl DynamoStore {
    /// The slot as a conditional Put: created if new, else replaced at its version.
    fn slot_put(&self, slot: &Slot) -> Result<Put, StoreError> {
        let builder = Put::builder()
            .table_name(self.table())
            .item("pk", s(keys::certs_pk(&slot.region)))
            .item("sk", s(keys::slot_sk(slot.n)))
            .item("version", n(slot.version + 1))
            .item("listener_arn", s(&slot.listener_arn))
            .item("slot", to_json(slot));
        let builder = if slot.version == 0 {
            builder.condition_expression("attribute_not_exists(pk)")
        } else {
            builder
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":expected", n(slot.version))
        };
        builder
            .build()
            .map_err(|e| unbuilt("building a certificate slot write", e))
    }
}

/// A request the SDK would not build: a fault of this code, never retried.
fn unbuilt(context: &str, e: impl Into<crate::ports::Cause>) -> StoreError {
    StoreError::fatal(context, "the SDK refused to build the request").with_source(e)
}

/// Whether the stored item `found` is exactly the item `written`: same version, same
/// content.
fn holds_write(found: &Item, written: &Item) -> bool {
    ["version", "slot", "listener_arn"]
        .iter()
        .all(|attribute| found.get(*attribute).is_some() && found.get(*attribute) == written.get(*attribute))
}

fn version_of(item: &Item) -> Result<u64, StoreError> {
    let version = get_n(item, "version")?;
    u64::try_from(version).map_err(|_| corrupt("version", format!("{version} is negative")))
}

/// The slot as stored, at the item's version (the JSON body does not carry it).
fn decode_slot(item: &Item) -> Result<Slot, StoreError> {
    let mut slot: Slot = json(item, "slot")?;
    slot.version = version_of(item)?;
    Ok(slot)
}
