//! The outbox's items: one per event (`pk OUTBOX#<partition>`, `sk EV#<time>#<id>`),
//! put in the transaction of the change it reports, and one lease per partition
//! (`sk LEASE`) that the dispatcher delivering the partition holds. A settled event
//! (delivered, or dead-lettered) carries `expires_at` and is removed by the table's
//! TTL after the dispatcher's retention; a pending one expires after
//! `UNDELIVERED_RETENTION`, so events no dispatcher delivers cannot pile up.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::errors::classify;
use super::item::{get_n, get_s, json, key, millis, n, s, to_json, Item};
use super::DynamoStore;
use crate::ports::{Conflict, Entity, OutboxStore, StoreError};
use crate::record::outbox::{OUTBOX_PARTITIONS, UNDELIVERED_RETENTION};
use crate::record::{CloudEvent, DeliveryState, OutboxEvent};
use crate::store::keys;

/// The put of a new event, for the transaction of the change it reports. It has no
/// condition: the change's own items decide whether the transaction is written, and
/// a retried transaction writes the same event under the same key.
pub(super) fn outbox_put(table: &str, event: &CloudEvent) -> TransactWriteItem {
    let item = outbox_item(&OutboxEvent::new(event.clone()));
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .build()
        .expect("table, item set");
    TransactWriteItem::builder().put(put).build()
}

fn outbox_item(event: &OutboxEvent) -> Item {
    let e = &event.event;
    HashMap::from([
        ("pk".to_owned(), s(keys::outbox_pk(e.partition()))),
        ("sk".to_owned(), s(keys::outbox_sk(e.time, &e.id))),
        ("event_id".to_owned(), s(&e.id)),
        ("event".to_owned(), to_json(e)),
        ("delivery_state".to_owned(), s(event.state.as_str())),
        ("deliveries".to_owned(), to_json(&event.deliveries)),
        ("version".to_owned(), n(event.version)),
        ("expires_at".to_owned(), expiry(e.time, UNDELIVERED_RETENTION)),
    ])
}

/// The TTL attribute's value: `retention` after `from`, in epoch seconds.
fn expiry(from: DateTime<Utc>, retention: Duration) -> AttributeValue {
    let expires = from + chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    AttributeValue::N(expires.timestamp().to_string())
}

fn decode_outbox(item: &Item) -> Result<OutboxEvent, StoreError> {
    Ok(OutboxEvent {
        event: json(item, "event")?,
        state: DeliveryState::parse(get_s(item, "delivery_state")?)
            .map_err(|e| super::item::corrupt("delivery_state", e))?,
        deliveries: json(item, "deliveries")?,
        version: get_n(item, "version")? as u64,
    })
}

impl DynamoStore {
    /// Events of `partition` in sort-key order (oldest first, or newest first when
    /// `newest_first`), in `state` if given, at most `limit`.
    async fn query_outbox(
        &self,
        partition: u32,
        state: Option<DeliveryState>,
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let context = format!("reading outbox partition {partition}");
        let mut events = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .client()
                .query()
                .table_name(self.table())
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(keys::outbox_pk(partition)))
                .expression_attribute_values(":prefix", s(keys::OUTBOX_EVENT_SK_PREFIX))
                .scan_index_forward(!newest_first)
                .set_exclusive_start_key(start.take());
            if let Some(state) = state {
                query = query
                    .filter_expression("delivery_state = :state")
                    .expression_attribute_values(":state", s(state.as_str()));
            }
            let out = query
                .send()
                .await
                .map_err(|e| classify(&context, self.table(), e))?;
            for item in out.items() {
                events.push(decode_outbox(item)?);
                if events.len() >= limit {
                    return Ok(events);
                }
            }
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(events),
            }
        }
    }
}

#[async_trait]
impl OutboxStore for DynamoStore {
    async fn lease_partition(
        &self,
        partition: u32,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let expires = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        let result = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key(keys::outbox_pk(partition), keys::OUTBOX_LEASE_SK)))
            .update_expression("SET lease_owner = :owner, lease_expires = :expires ADD lease_fence :one")
            .condition_expression(
                "attribute_not_exists(lease_owner) OR lease_owner = :owner OR lease_expires < :now",
            )
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":expires", millis(expires))
            .expression_attribute_values(":now", millis(now))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(false)
            }
            Err(err) => Err(classify(
                &format!("leasing outbox partition {partition}"),
                self.table(),
                err,
            )),
        }
    }

    async fn pending_events(&self, partition: u32, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        self.query_outbox(partition, Some(DeliveryState::Pending), false, limit)
            .await
    }

    async fn record_deliveries(&self, event: &OutboxEvent, retention: Duration) -> Result<(), StoreError> {
        let e = &event.event;
        let context = format!("recording the deliveries of event {}", e.id);
        let mut update = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key(
                keys::outbox_pk(e.partition()),
                keys::outbox_sk(e.time, &e.id),
            )))
            .condition_expression("version = :version")
            .expression_attribute_values(":version", n(event.version))
            .expression_attribute_values(":next", n(event.version + 1))
            .expression_attribute_values(":state", s(event.state.as_str()))
            .expression_attribute_values(":deliveries", to_json(&event.deliveries));
        // A pending event (a retry, or a dead letter sent again) waits for delivery
        // as long as a new one; a settled one stays for the dispatcher's retention.
        let keep = match event.state {
            DeliveryState::Pending => UNDELIVERED_RETENTION,
            _ => retention,
        };
        update = update
            .update_expression("SET version = :next, delivery_state = :state, deliveries = :deliveries, expires_at = :expires")
            .expression_attribute_values(":expires", expiry(Utc::now(), keep));
        match update.send().await {
            Ok(_) => Ok(()),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Err(StoreError::Conflict {
                    what: context,
                    detail: "its deliveries changed since they were read".into(),
                    kind: Conflict::Version,
                })
            }
            Err(err) => Err(classify(&context, self.table(), err)),
        }
    }

    async fn list_events(
        &self,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let mut events = Vec::new();
        for partition in 0..OUTBOX_PARTITIONS {
            events.extend(self.query_outbox(partition, state, true, limit).await?);
        }
        events.sort_by(|a, b| (b.event.time, &b.event.id).cmp(&(a.event.time, &a.event.id)));
        events.truncate(limit);
        Ok(events)
    }

    async fn event(&self, id: &str) -> Result<OutboxEvent, StoreError> {
        // Ids carry no partition: every partition is asked (a handful of queries,
        // each reading only the matching event).
        let context = format!("looking up event {id}");
        for partition in 0..OUTBOX_PARTITIONS {
            let mut start: Option<Item> = None;
            loop {
                let out = self
                    .client()
                    .query()
                    .table_name(self.table())
                    .consistent_read(true)
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .filter_expression("event_id = :id")
                    .expression_attribute_values(":pk", s(keys::outbox_pk(partition)))
                    .expression_attribute_values(":prefix", s(keys::OUTBOX_EVENT_SK_PREFIX))
                    .expression_attribute_values(":id", s(id))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| classify(&context, self.table(), e))?;
                if let Some(item) = out.items().first() {
                    return decode_outbox(item);
                }
                match out.last_evaluated_key() {
                    Some(key) if !key.is_empty() => start = Some(key.clone()),
                    _ => break,
                }
            }
        }
        Err(StoreError::NotFound {
            what: format!("event {id}"),
            entity: Entity::Event,
        })
    }
}
