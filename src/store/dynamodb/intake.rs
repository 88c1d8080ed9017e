//! Subscription intake's items. A delivery's id (`pk INTAKE#<event id>`, `sk
//! DELIVERY`) is put only if absent, so a replayed event finds it; it carries
//! `expires_at` (the table's TTL) a few days past the signature tolerance, after which
//! a replay is refused by its timestamp anyway. Scheduled deprovisions share one
//! partition (`pk INTAKE_DEPROVISIONS`, `sk <tenant id>`): they are few, and the sweep
//! reads them with one query.

use chrono::{DateTime, Utc};

use super::errors::classify;
use super::item::{corrupt, get_n, get_s, key, n, s, Item};
use super::DynamoStore;
use crate::domain::TenantId;
use crate::ports::{IntakeStore, ScheduledDeprovision, StoreError};

const DELIVERY_SK: &str = "DELIVERY";
const DEPROVISIONS_PK: &str = "INTAKE_DEPROVISIONS";

fn delivery_key(event_id: &str) -> Item {
    key(format!("INTAKE#{event_id}"), DELIVERY_SK)
}

fn deprovision_key(tenant: &TenantId) -> Item {
    key(DEPROVISIONS_PK, tenant.as_str())
}

fn decode(item: &Item) -> Result<ScheduledDeprovision, StoreError> {
    let due = get_n(item, "due_at")?;
    Ok(ScheduledDeprovision {
        tenant: TenantId::parse(get_s(item, "sk")?).map_err(|e| corrupt("sk", e))?,
        due_at: DateTime::from_timestamp(due, 0).ok_or_else(|| corrupt("due_at", due))?,
        subscription: get_s(item, "subscription")?.to_owned(),
        event: get_s(item, "event")?.to_owned(),
    })
}

#[async_trait::async_trait]
impl IntakeStore for DynamoStore {
    async fn claim_delivery(&self, event_id: &str, expires_at: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut item = delivery_key(event_id);
        item.insert("expires_at".into(), n(expires_at.timestamp()));
        match self.put_new(item, "recording a Stripe delivery").await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn release_delivery(&self, event_id: &str) -> Result<(), StoreError> {
        self.client()
            .delete_item()
            .table_name(self.table())
            .set_key(Some(delivery_key(event_id)))
            .send()
            .await
            .map_err(|e| classify("forgetting a Stripe delivery", self.table(), e))?;
        Ok(())
    }

    async fn schedule_deprovision(
        &self,
        deprovision: &ScheduledDeprovision,
    ) -> Result<(ScheduledDeprovision, bool), StoreError> {
        let mut item = deprovision_key(&deprovision.tenant);
        item.insert("due_at".into(), n(deprovision.due_at.timestamp()));
        item.insert("subscription".into(), s(&deprovision.subscription));
        item.insert("event".into(), s(&deprovision.event));
        match self.put_new(item, "scheduling a deprovision").await {
            Ok(()) => Ok((deprovision.clone(), true)),
            Err(StoreError::Conflict { .. }) => {
                let stored = self
                    .read_item(
                        deprovision_key(&deprovision.tenant),
                        "reading a scheduled deprovision",
                    )
                    .await?;
                match stored {
                    Some(item) => Ok((decode(&item)?, false)),
                    // Canceled in between: schedule again.
                    None => Box::pin(self.schedule_deprovision(deprovision)).await,
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn cancel_deprovision(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<ScheduledDeprovision>, StoreError> {
        let out = self
            .client()
            .delete_item()
            .table_name(self.table())
            .set_key(Some(deprovision_key(tenant)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| classify("canceling a scheduled deprovision", self.table(), e))?;
        out.attributes.as_ref().map(decode).transpose()
    }

    async fn scheduled_deprovisions(&self) -> Result<Vec<ScheduledDeprovision>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client()
                .query()
                .table_name(self.table())
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(DEPROVISIONS_PK))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify("reading scheduled deprovisions", self.table(), e))?;
            for item in out.items() {
                found.push(decode(item)?);
            }
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                found.sort_by_key(|d| d.due_at);
                return Ok(found);
            }
        }
    }
}
