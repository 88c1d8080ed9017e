//! Subscription intake's items. A delivery's id (`pk INTAKE#<event id>`, `sk
//! DELIVERY`) is put only if absent (or if its claim went stale: `claimed_at` older than
//! the takeover time and no `done`), and marked `done` once its change is made, so a
//! replayed event finds it; it carries `expires_at` (the table's TTL) a few days past
//! the signature tolerance, after which a replay is refused by its timestamp anyway. Scheduled deprovisions share one
//! partition (`pk INTAKE_DEPROVISIONS`, `sk <tenant id>`): they are few, and the sweep
//! reads them with one query.

use chrono::{DateTime, Utc};

use super::errors::classify;
use super::item::{corrupt, get_n, get_s, key, n, s, Item};
use super::DynamoStore;
use crate::domain::TenantId;
use crate::ports::{Claim, IntakeStore, ScheduledDeprovision, StoreError};

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
    async fn claim_delivery(
        &self,
        event_id: &str,
        now: DateTime<Utc>,
        stale_after: std::time::Duration,
        expires_at: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let context = "recording a Stripe delivery";
        let mut item = delivery_key(event_id);
        item.insert("claimed_at".into(), n(now.timestamp_millis()));
        item.insert("expires_at".into(), n(expires_at.timestamp()));
        let stale = now - chrono::Duration::from_std(stale_after).unwrap_or_default();
        let put = self
            .client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR (attribute_not_exists(done) AND claimed_at < :stale)",
            )
            .expression_attribute_values(":stale", n(stale.timestamp_millis()))
            .send()
            .await;
        match put.map_err(|e| classify(context, self.table(), e)) {
            Ok(_) => Ok(Claim::New),
            Err(StoreError::Conflict { .. }) => {
                let stored = self.read_item(delivery_key(event_id), context).await?;
                Ok(match stored {
                    Some(item) if !item.contains_key("done") => Claim::InProgress,
                    _ => Claim::Replay,
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn complete_delivery(&self, event_id: &str) -> Result<(), StoreError> {
        self.client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(delivery_key(event_id)))
            .update_expression("SET done = :yes")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":yes", aws_sdk_dynamodb::types::AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| classify("completing a Stripe delivery", self.table(), e))?;
        Ok(())
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
        let query = (self.client().query().table_name(self.table()))
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(DEPROVISIONS_PK))
            .consistent_read(true);
        let items = self.query_all(query, "reading scheduled deprovisions").await?;
        let mut found = items.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        found.sort_by_key(|d| d.due_at);
        Ok(found)
    }
}
