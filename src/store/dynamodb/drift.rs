//! The last drift check of each tenant: `pk DRIFT#<id>`, `sk DRIFT`, apart from the
//! tenant's item so recording a check never touches the record its machine writes.
//! Each item is also in the `by-region` index under `list_pk DRIFT`, `list_sk
//! DRIFTED#<id>` or `IN_SYNC#<id>`: the fleet's drifted tenants are one
//! `begins_with` query, and the sweep reads every tenant's last check time from the
//! projected `updated_at` without a scan. A check that finds drift where the last one
//! did not (or on a tenant never checked) is written in one transaction with a
//! `drift_detected` outbox event.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};

use super::errors::classify;
use super::item::{corrupt_by, get_n, get_s, item_key, json, millis, s, time_from_millis, to_json, Item};
use super::outbox::outbox_put;
use super::page_token::PageScope;
use super::DynamoStore;
use crate::domain::TenantId;
use crate::ports::{Conflict, DriftStore, DriftSummary, Page, StoreError};
use crate::record::{CloudEvent, DriftCheck};

const SK: &str = "DRIFT";
const LIST_PK: &str = "DRIFT";
const DRIFTED: &str = "DRIFTED#";
const IN_SYNC: &str = "IN_SYNC#";

fn key_of(id: &TenantId) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(format!("DRIFT#{id}"))),
        ("sk".to_owned(), s(SK)),
    ])
}

fn drift_item(check: &DriftCheck) -> Item {
    let mut item = key_of(&check.tenant);
    let prefix = if check.drifted() { DRIFTED } else { IN_SYNC };
    item.insert("list_pk".into(), s(LIST_PK));
    item.insert("list_sk".into(), s(format!("{prefix}{}", check.tenant)));
    item.insert("updated_at".into(), millis(check.checked_at));
    item.insert("state_label".into(), s(check.summary()));
    item.insert("check".into(), to_json(check));
    item
}

/// A row of the index: the tenant from the sort key, the time and summary projected.
fn summary_of(item: &Item) -> Result<DriftSummary, StoreError> {
    let list_sk = get_s(item, "list_sk")?;
    let (drifted, id) = match (list_sk.strip_prefix(DRIFTED), list_sk.strip_prefix(IN_SYNC)) {
        (Some(id), _) => (true, id),
        (_, Some(id)) => (false, id),
        _ => return Err(super::item::corrupt("list_sk", list_sk)),
    };
    Ok(DriftSummary {
        tenant: TenantId::parse(id).map_err(|e| corrupt_by("list_sk", e))?,
        checked_at: time_from_millis("updated_at", get_n(item, "updated_at")?)?,
        drifted,
        summary: get_s(item, "state_label")?.to_owned(),
    })
}

/// Reads and tries again of a check that finds drift while another check is recorded.
const DETECTED_RETRIES: usize = 3;

fn newer_recorded(what: String) -> StoreError {
    StoreError::Conflict {
        what,
        detail: "a newer check is already recorded".into(),
        kind: Conflict::Version,
    }
}

/// How writing a check that finds drift with its event went.
enum Detected {
    Recorded,
    /// The tenant is gone: the check is recorded without an event.
    NoTenant,
    /// The last check is not `before` any more.
    Raced,
}

impl DynamoStore {
    /// Writes `check`, which finds drift where `before` (the last check, if any) did
    /// not, with a `drift_detected` event, in one transaction conditional on `before`
    /// still being the last check.
    async fn record_drift_detected(
        &self,
        check: &DriftCheck,
        before: Option<&DriftCheck>,
        context: &str,
    ) -> Result<Detected, StoreError> {
        let tenant = match crate::ports::TenantStore::load(self, &check.tenant).await {
            Ok(tenant) => tenant,
            Err(StoreError::NotFound { .. }) => return Ok(Detected::NoTenant),
            Err(other) => return Err(other),
        };
        let event = CloudEvent::tenant_drift_detected(
            check,
            tenant.spec.environment.as_str(),
            tenant.spec.region.as_str(),
        );
        let mut put = Put::builder()
            .table_name(self.table())
            .set_item(Some(drift_item(check)));
        put = match before {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(b) => put
                .condition_expression("updated_at = :before")
                .expression_attribute_values(":before", millis(b.checked_at)),
        };
        let items = vec![
            TransactWriteItem::builder()
                .put(put.build().expect("table, item set"))
                .build(),
            outbox_put(self.table(), &event),
        ];
        match self.send_transaction(items).await {
            Ok(_) => Ok(Detected::Recorded),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(TransactWriteItemsError::TransactionCanceledException(_))
                ) =>
            {
                Ok(Detected::Raced)
            }
            Err(err) => Err(classify(context, self.table(), err)),
        }
    }
}

#[async_trait::async_trait]
impl DriftStore for DynamoStore {
    async fn record_drift(&self, check: &DriftCheck) -> Result<Option<DriftCheck>, StoreError> {
        let context = format!("recording the drift check of tenant {}", check.tenant);
        if check.drifted() {
            for _ in 0..DETECTED_RETRIES {
                let before = self.last_drift(&check.tenant).await?;
                if before.as_ref().is_some_and(|b| b.drifted()) {
                    break;
                }
                if let Some(b) = &before {
                    if b.checked_at > check.checked_at {
                        return Err(newer_recorded(context));
                    }
                }
                match self
                    .record_drift_detected(check, before.as_ref(), &context)
                    .await?
                {
                    Detected::Recorded => return Ok(before),
                    Detected::NoTenant => break,
                    // Another check was recorded meanwhile: look again.
                    Detected::Raced => continue,
                }
            }
        }
        let result = self
            .client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(drift_item(check)))
            .condition_expression("attribute_not_exists(pk) OR updated_at <= :at")
            .expression_attribute_values(":at", millis(check.checked_at))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => match out.attributes() {
                Some(old) if !old.is_empty() => Ok(Some(json(old, "check")?)),
                _ => Ok(None),
            },
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Err(newer_recorded(context))
            }
            Err(err) => Err(classify(&context, self.table(), err)),
        }
    }

    async fn forget_drift(&self, id: &TenantId) -> Result<(), StoreError> {
        self.client()
            .delete_item()
            .table_name(self.table())
            .set_key(Some(key_of(id)))
            .send()
            .await
            .map_err(|e| {
                classify(
                    &format!("forgetting the drift check of tenant {id}"),
                    self.table(),
                    e,
                )
            })?;
        Ok(())
    }

    async fn last_drift(&self, id: &TenantId) -> Result<Option<DriftCheck>, StoreError> {
        let context = format!("reading the drift check of tenant {id}");
        match self.read_item(key_of(id), &context).await? {
            Some(item) => Ok(Some(json(&item, "check")?)),
            None => Ok(None),
        }
    }

    async fn drifted(&self, limit: u32, next_token: Option<&str>) -> Result<Page<DriftSummary>, StoreError> {
        let scope = PageScope::new("drifted tenants");
        let mut query = self
            .client()
            .query()
            .table_name(self.table())
            .index_name("by-region")
            .key_condition_expression("list_pk = :pk AND begins_with(list_sk, :drifted)")
            .expression_attribute_values(":pk", s(LIST_PK))
            .expression_attribute_values(":drifted", s(DRIFTED))
            .limit(limit.clamp(1, 1000) as i32 + 1);
        if let Some(token) = next_token {
            let key: HashMap<String, String> =
                self.open_page("listing drifted tenants", &scope, token).await?;
            query = query.set_exclusive_start_key(Some(item_key(key)));
        }
        let out = query
            .send()
            .await
            .map_err(|e| classify("listing drifted tenants", self.table(), e))?;
        let (page, next) = super::item::page_of(
            out.items(),
            out.last_evaluated_key(),
            limit.clamp(1, 1000) as usize,
            &super::item::LISTING_KEY,
        );
        let items = page.iter().map(summary_of).collect::<Result<_, _>>()?;
        let next_token = match next {
            Some(key) => Some(self.seal_page(&scope, &key).await?),
            None => None,
        };
        Ok(Page { items, next_token })
    }

    async fn drift_summaries(&self) -> Result<Vec<DriftSummary>, StoreError> {
        let mut found = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let out = self
                .client()
                .query()
                .table_name(self.table())
                .index_name("by-region")
                .key_condition_expression("list_pk = :pk")
                .expression_attribute_values(":pk", s(LIST_PK))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify("reading the fleet's drift checks", self.table(), e))?;
            for item in out.items() {
                found.push(summary_of(item)?);
            }
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(found);
            }
        }
    }
}
