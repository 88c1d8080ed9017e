//! The outbox's items: one per event (`pk OUTBOX#<partition>`, `sk EV#<time>#<id>`),
//! put in the transaction of the change it reports, and one lease per partition
//! (`sk LEASE`) that the dispatcher delivering the partition holds. A settled event
//! (delivered, or dead-lettered) carries `expires_at` and is removed by the table's
//! TTL after the dispatcher's retention; a pending one expires after
//! `UNDELIVERED_RETENTION`, so events no dispatcher delivers cannot pile up.
//!
//! The events of a worker's steps written together (one tenant's, so one partition)
//! are one item instead ([`outbox_put_together`]), named by the first: their JSON
//! array deflated (`events_z`), and per event, under its index, the bookkeeping a
//! lone event keeps in its own attributes (`slot_deliveries`, `slot_states`,
//! `slot_versions`), with the indexes still pending in the number set
//! `pending_slots` (DynamoDB removes the set with its last element, so the item is
//! pending while it exists). Reads hand out each event on its own, with its
//! [`BatchSlot`]; the dispatcher and the API see no difference. Such an item expires
//! after the retention once its last event settles.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::errors::classify;
use super::item::{
    corrupt, deflated_json, get_n, get_s, inflated_json, json, key, millis, n, s, to_json, Item,
};
use super::DynamoStore;
use crate::ports::{Conflict, Entity, OutboxStore, StoreError};
use crate::record::outbox::{BatchSlot, OUTBOX_PARTITIONS, UNDELIVERED_RETENTION};
use crate::record::{CloudEvent, DeliveryState, OutboxEvent};
use crate::store::keys;

/// The put of a new event, for the transaction of the change it reports. It has no
/// condition: the change's own items decide whether the transaction is written, and
/// a retried transaction writes the same event under the same key.
pub(super) fn outbox_put(table: &str, event: &CloudEvent) -> TransactWriteItem {
    unconditional_put(table, outbox_item(&OutboxEvent::new(event.clone())))
}

fn unconditional_put(table: &str, item: Item) -> TransactWriteItem {
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

/// The put of the events of one transaction: a lone event in its own item, several
/// (a worker's steps written together) in one (see the module's comment).
pub(super) fn outbox_put_together(table: &str, events: &[CloudEvent]) -> TransactWriteItem {
    let (first, rest) = events
        .split_first()
        .expect("a transaction reports at least one event");
    if rest.is_empty() {
        return outbox_put(table, first);
    }
    let indexes = (0..events.len()).map(|i| i.to_string()).collect();
    let item = HashMap::from([
        ("pk".to_owned(), s(keys::outbox_pk(first.partition()))),
        ("sk".to_owned(), s(keys::outbox_sk(first.time, &first.id))),
        ("events_z".to_owned(), deflated_json(&events)),
        ("pending_slots".to_owned(), AttributeValue::Ns(indexes)),
        ("slot_deliveries".to_owned(), AttributeValue::M(HashMap::new())),
        ("slot_states".to_owned(), AttributeValue::M(HashMap::new())),
        ("slot_versions".to_owned(), AttributeValue::M(HashMap::new())),
        ("expires_at".to_owned(), expiry(first.time, UNDELIVERED_RETENTION)),
    ]);
    unconditional_put(table, item)
}

/// Whether an `UpdateItem` was refused by its condition.
fn refused_by_condition<R>(err: &aws_sdk_dynamodb::error::SdkError<UpdateItemError, R>) -> bool {
    matches!(
        err.as_service_error(),
        Some(UpdateItemError::ConditionalCheckFailedException(_))
    )
}

/// The conflict of a delivery record whose event someone changed since it was read
/// (a redelivery): the next pass reads it again.
fn deliveries_changed(what: String) -> StoreError {
    StoreError::Conflict {
        what,
        detail: "its deliveries changed since they were read".into(),
        kind: Conflict::Version,
    }
}

fn decode_outbox(item: &Item) -> Result<OutboxEvent, StoreError> {
    Ok(OutboxEvent {
        event: json(item, "event")?,
        state: DeliveryState::parse(get_s(item, "delivery_state")?)
            .map_err(|e| super::item::corrupt("delivery_state", e))?,
        deliveries: json(item, "deliveries")?,
        version: get_n(item, "version")? as u64,
        batch: None,
    })
}

/// The events an outbox item holds, in the order they were written: one, or those
/// written together (see the module's comment).
fn decode_outbox_item(item: &Item) -> Result<Vec<OutboxEvent>, StoreError> {
    if !item.contains_key("events_z") {
        return Ok(vec![decode_outbox(item)?]);
    }
    let events: Vec<CloudEvent> = inflated_json(item, "events_z")?;
    let first = events.first().ok_or_else(|| corrupt("events_z", "no events"))?;
    let (first_at, first_id) = (first.time, first.id.clone());
    let slot = |map: &str, index: &str| match item.get(map) {
        Some(AttributeValue::M(slots)) => slots.get(index).cloned(),
        _ => None,
    };
    let mut decoded = Vec::with_capacity(events.len());
    for (index, event) in events.into_iter().enumerate() {
        let i = index.to_string();
        let state = match slot("slot_states", &i) {
            Some(AttributeValue::S(state)) => {
                DeliveryState::parse(&state).map_err(|e| corrupt("slot_states", e))?
            }
            _ => DeliveryState::Pending,
        };
        let deliveries = match slot("slot_deliveries", &i) {
            Some(AttributeValue::S(text)) => {
                serde_json::from_str(&text).map_err(|e| super::item::corrupt_by("slot_deliveries", e))?
            }
            _ => Default::default(),
        };
        let version = match slot("slot_versions", &i) {
            Some(AttributeValue::N(v)) => v.parse().map_err(|_| corrupt("slot_versions", v))?,
            _ => 0,
        };
        decoded.push(OutboxEvent {
            event,
            state,
            deliveries,
            version,
            batch: Some(BatchSlot {
                first_at,
                first_id: first_id.clone(),
                index: index as u32,
            }),
        });
    }
    Ok(decoded)
}

impl DynamoStore {
    /// [`OutboxStore::record_deliveries`] of an event kept with others in one item:
    /// its slot's bookkeeping, conditional on the slot's version. The item's expiry
    /// moves to the retention once no event in it is pending any more.
    async fn record_slot_deliveries(
        &self,
        event: &OutboxEvent,
        slot: &BatchSlot,
        retention: Duration,
    ) -> Result<(), StoreError> {
        let e = &event.event;
        let context = format!("recording the deliveries of event {}", e.id);
        let item_key = key(
            keys::outbox_pk(e.partition()),
            keys::outbox_sk(slot.first_at, &slot.first_id),
        );
        let index = AttributeValue::Ns(vec![slot.index.to_string()]);
        let (pending_change, expires) = match event.state {
            DeliveryState::Pending => ("ADD pending_slots :index", ", expires_at = :expires"),
            _ => ("DELETE pending_slots :index", ""),
        };
        let mut update = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(item_key.clone()))
            .update_expression(format!(
                "SET slot_deliveries.#i = :deliveries, slot_states.#i = :state, slot_versions.#i = :next{expires} {pending_change}"
            ))
            .condition_expression(match event.version {
                0 => "attribute_exists(pk) AND attribute_not_exists(slot_versions.#i)",
                _ => "attribute_exists(pk) AND slot_versions.#i = :version",
            })
            .expression_attribute_names("#i", slot.index.to_string())
            .expression_attribute_values(":deliveries", to_json(&event.deliveries))
            .expression_attribute_values(":state", s(event.state.as_str()))
            .expression_attribute_values(":next", n(event.version + 1))
            .expression_attribute_values(":index", index)
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        if event.version > 0 {
            update = update.expression_attribute_values(":version", n(event.version));
        }
        if event.state == DeliveryState::Pending {
            update =
                update.expression_attribute_values(":expires", expiry(Utc::now(), UNDELIVERED_RETENTION));
        }
        let stored = match update.send().await {
            Ok(out) => out,
            Err(err) if refused_by_condition(&err) => return Err(deliveries_changed(context)),
            Err(err) => return Err(classify(&context, self.table(), err)),
        };
        if stored
            .attributes()
            .is_some_and(|item| item.contains_key("pending_slots"))
        {
            return Ok(());
        }
        // The last pending event settled: the item is kept for the retention. An
        // event redelivered meanwhile made it pending again, and it stays.
        let settled = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(item_key))
            .update_expression("SET expires_at = :expires")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(pending_slots)")
            .expression_attribute_values(":expires", expiry(Utc::now(), retention))
            .send()
            .await;
        match settled {
            Ok(_) => Ok(()),
            Err(err) if refused_by_condition(&err) => Ok(()),
            Err(err) => Err(classify(&context, self.table(), err)),
        }
    }

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
            // An item of events written together has no state of its own: it is
            // read whenever it may hold an event in `state`, and its events filtered.
            query = match state {
                Some(DeliveryState::Pending) => query
                    .filter_expression("delivery_state = :state OR attribute_exists(pending_slots)")
                    .expression_attribute_values(":state", s(DeliveryState::Pending.as_str())),
                Some(state) => query
                    .filter_expression("delivery_state = :state OR attribute_exists(events_z)")
                    .expression_attribute_values(":state", s(state.as_str())),
                None => query,
            };
            let out = query
                .send()
                .await
                .map_err(|e| classify(&context, self.table(), e))?;
            for item in out.items() {
                let mut held = decode_outbox_item(item)?;
                if newest_first {
                    held.reverse();
                }
                for event in held {
                    if state.is_none_or(|state| event.state == state) {
                        events.push(event);
                    }
                    if events.len() >= limit {
                        return Ok(events);
                    }
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
            Err(err) if refused_by_condition(&err) => Ok(false),
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
        if let Some(slot) = &event.batch {
            return self.record_slot_deliveries(event, slot, retention).await;
        }
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
            Err(err) if refused_by_condition(&err) => Err(deliveries_changed(context)),
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
        // each answering with the matching event and the items of events written
        // together, which are looked into here).
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
                    .filter_expression("event_id = :id OR attribute_exists(events_z)")
                    .expression_attribute_values(":pk", s(keys::outbox_pk(partition)))
                    .expression_attribute_values(":prefix", s(keys::OUTBOX_EVENT_SK_PREFIX))
                    .expression_attribute_values(":id", s(id))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| classify(&context, self.table(), e))?;
                for item in out.items() {
                    let found = decode_outbox_item(item)?.into_iter().find(|e| e.event.id == id);
                    if let Some(event) = found {
                        return Ok(event);
                    }
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
