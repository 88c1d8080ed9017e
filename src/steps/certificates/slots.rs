//! Certificate slots in the tenant table. One partition per region holds the
//! region's slots (`CERTS#<region>` / `SLOT#<n>`), so one strongly consistent Query
//! reads all of them, plus an allocation root (`CERTS#<region>` / `ROOT`).
//!
//! Every write is conditional on the slot's `version`. Allocation changes (new slots,
//! names joining or leaving) also bump the root's version in the same transaction:
//! they decide on the whole region at once (listener places, the certificate bound),
//! so two workers allocating at the same time cannot both win and over-fill a
//! listener. Progress on one slot (request, attach, swap, retire) touches that slot
//! only; it never adds to a listener, so it does not need the root.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;

use super::slot::Slot;
use crate::domain::Region;
use crate::store::DynamoStore;

type Item = HashMap<String, AttributeValue>;

const ROOT_SK: &str = "ROOT";
const SLOT_SK_PREFIX: &str = "SLOT#";

fn region_pk(region: &Region) -> String {
    format!("CERTS#{region}")
}

fn slot_sk(n: u32) -> String {
    format!("{SLOT_SK_PREFIX}{n:06}")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotStoreError {
    /// Another worker changed the slots first; nothing was written. Reload and decide again.
    #[error("certificate slots changed meanwhile ({0})")]
    Conflict(String),
    #[error("temporary failure of the certificate slot table ({context}): {message}")]
    Retryable { context: String, message: String },
    #[error("certificate slot table ({context}): {message}")]
    Fatal { context: String, message: String },
}

const RETRYABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "ThrottlingException",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
];

fn classify<E, R>(context: &str, table: &str, err: SdkError<E, R>) -> SlotStoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let context = context.to_owned();
    let message = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::ServiceError(service) => match service.err().code().unwrap_or_default() {
            "ConditionalCheckFailedException" => SlotStoreError::Conflict(context),
            "ResourceNotFoundException" => SlotStoreError::Fatal {
                context,
                message: format!("table {table:?} does not exist; create it with `tenantctl table create`"),
            },
            code if RETRYABLE_CODES.contains(&code) => SlotStoreError::Retryable { context, message },
            _ => SlotStoreError::Fatal { context, message },
        },
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            SlotStoreError::Retryable { context, message }
        }
        _ => SlotStoreError::Fatal { context, message },
    }
}

/// A region's slots as read in one consistent Query.
#[derive(Debug, Clone, Default)]
pub struct RegionSlots {
    /// Version of the allocation root (0 before the first allocation).
    pub root_version: u64,
    pub slots: Vec<Slot>,
}

/// Reads and writes certificate slots in the tenant table.
#[derive(Clone)]
pub struct SlotTable {
    client: Client,
    table: String,
}

impl SlotTable {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The slots live next to the tenants, in the store's table.
    pub fn of(store: &DynamoStore) -> Self {
        Self::new(store.client().clone(), store.table())
    }

    pub async fn load(&self, region: &Region) -> Result<RegionSlots, SlotStoreError> {
        let mut out = RegionSlots::default();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(region_pk(region)))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("reading certificate slots", &self.table, e))?;
            for item in page.items() {
                let sk = item.get("sk").and_then(|v| v.as_s().ok()).map(String::as_str);
                let version = decode_version(item)?;
                match sk {
                    Some(ROOT_SK) => out.root_version = version,
                    Some(sk) if sk.starts_with(SLOT_SK_PREFIX) => out.slots.push(decode_slot(item, version)?),
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

    /// Writes an allocation: new slots (`version` 0) and changed ones, guarded by the
    /// root version the decision was made on and by each slot's version.
    pub async fn allocate(
        &self,
        region: &Region,
        root_version: u64,
        slots: &[Slot],
    ) -> Result<(), SlotStoreError> {
        let root = Update::builder()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(region_pk(region)))
            .key("sk", AttributeValue::S(ROOT_SK.into()))
            .update_expression("SET #version = :next")
            .condition_expression("attribute_not_exists(pk) OR #version = :expected")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":next", number(root_version + 1))
            .expression_attribute_values(":expected", number(root_version))
            .build()
            .map_err(|e| self.fatal("building the allocation", e))?;
        let mut items = vec![TransactWriteItem::builder().update(root).build()];
        for slot in slots {
            let put = self.put(slot)?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        match self
            .client
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
                // worker got there first.
                Err(SlotStoreError::Conflict(format!(
                    "allocation in {region}: {}",
                    service.err().message().unwrap_or("transaction cancelled")
                )))
            }
            Err(e) => Err(classify("writing an allocation", &self.table, e)),
        }
    }

    /// Writes a slot's progress if nobody changed it since it was read. A write whose
    /// answer was lost fails its condition when the SDK sends it again; finding our
    /// own write in the item (the next version, with this very content) is success.
    pub async fn save(&self, slot: &Slot) -> Result<(), SlotStoreError> {
        let put = self.put(slot)?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(put.item().clone()))
            .condition_expression(put.condition_expression().unwrap_or_default())
            .set_expression_attribute_names(put.expression_attribute_names().cloned())
            .set_expression_attribute_values(put.expression_attribute_values().cloned())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
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
                &format!("saving certificate slot {}", slot.n),
                &self.table,
                e,
            )),
        }
    }

    /// Deletes a slot that holds nothing any more, if nobody changed it since it was
    /// read. A slot already gone (our delete, its answer lost, sent again) is success.
    pub async fn remove(&self, slot: &Slot) -> Result<(), SlotStoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(region_pk(&slot.region)))
            .key("sk", AttributeValue::S(slot_sk(slot.n)))
            .condition_expression("#version = :expected")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":expected", number(slot.version))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(service))
                if matches!(
                    service.err(),
                    DeleteItemError::ConditionalCheckFailedException(refused) if refused.item().is_none()
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(classify(
                &format!("removing certificate slot {}", slot.n),
                &self.table,
                e,
            )),
        }
    }

    /// The slot as a conditional Put: created if new, else replaced at its version.
    fn put(&self, slot: &Slot) -> Result<Put, SlotStoreError> {
        let body = serde_json::to_string(slot).map_err(|e| self.fatal("encoding a certificate slot", e))?;
        let builder = Put::builder()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(region_pk(&slot.region)))
            .item("sk", AttributeValue::S(slot_sk(slot.n)))
            .item("version", number(slot.version + 1))
            .item("listener_arn", AttributeValue::S(slot.listener_arn.clone()))
            .item("slot", AttributeValue::S(body));
        let builder = if slot.version == 0 {
            builder.condition_expression("attribute_not_exists(pk)")
        } else {
            builder
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":expected", number(slot.version))
        };
        builder
            .build()
            .map_err(|e| self.fatal("building a slot write", e))
    }

    fn fatal(&self, context: &str, e: impl std::fmt::Display) -> SlotStoreError {
        SlotStoreError::Fatal {
            context: context.into(),
            message: e.to_string(),
        }
    }
}

/// Whether the stored item `found` is exactly the item `written`: same version, same
/// content.
fn holds_write(found: &Item, written: &Item) -> bool {
    ["version", "slot", "listener_arn"]
        .iter()
        .all(|attribute| found.get(*attribute).is_some() && found.get(*attribute) == written.get(*attribute))
}

fn number(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> SlotStoreError {
    SlotStoreError::Fatal {
        context: "decoding a certificate slot".into(),
        message: format!("{what}: {detail}"),
    }
}

fn decode_version(item: &Item) -> Result<u64, SlotStoreError> {
    match item.get("version") {
        Some(AttributeValue::N(v)) => v.parse().map_err(|e| corrupt("version", e)),
        other => Err(corrupt("version", format!("expected a number, found {other:?}"))),
    }
}

fn decode_slot(item: &Item, version: u64) -> Result<Slot, SlotStoreError> {
    let body = match item.get("slot") {
        Some(AttributeValue::S(v)) => v,
        other => return Err(corrupt("slot", format!("expected a string, found {other:?}"))),
    };
    let mut slot: Slot = serde_json::from_str(body).map_err(|e| corrupt("slot", e))?;
    slot.version = version;
    Ok(slot)
}
