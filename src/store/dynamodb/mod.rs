//! The DynamoDB implementation of [`TenantStore`].

mod audit;
mod batch;
mod check;
mod claims;
mod drift;
mod errors;
mod freezes;
mod idempotency;
mod intake;
mod item;
mod listing;
mod meta;
mod meter;
mod outbox;
mod page_token;
mod policy;
mod promotions;
mod rate_limits;
mod reports;
mod rollout_drive;
mod rollout_lease;
mod rollouts;
mod sessions;
mod slots;
mod transition;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::{TransactWriteItemsError, TransactWriteItemsOutput};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ConsumedCapacity, Put, ReturnConsumedCapacity, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

use super::keys;
use super::{
    Conflict, Entity, ListQuery, Page, PassedStep, StoreError, TenantStore, TenantSummary, WriteGuard,
};
use crate::domain::{Hostname, Region, TenantId};
use crate::ports::{Relayed, TenantDrive};
use crate::record::{HistoryEvent, Lease, TenantRecord, Transition};
use errors::{cancellation, classify, conflict_as};
use item::{decode_history, decode_tenant, get_n, get_s, millis, n, s, tenant_item, Item};
use tracing::{debug, info, warn};
use transition::{Committed, TransitionTx};

pub use claims::ClaimBackfill;
pub use item::mutable_attributes;
pub use meter::{Meter, Usage};
pub use rate_limits::DynamoRateLimiter;

/// Tenant state in one DynamoDB table.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// Write capacity consumed by this store's writes, in thousandths of a unit, as
    /// reported by `ReturnConsumedCapacity`.
    write_milli_units: Arc<AtomicU64>,
    /// The same write capacity broken down by operation and by what it wrote (the
    /// table or one of its indexes), in thousandths of a unit.
    write_breakdown: Arc<std::sync::Mutex<BTreeMap<String, u64>>>,
    /// The table's page-token key, read (or created) on first use.
    page_key: page_token::PageKeyCell,
}

/// The conditional update of a tenant item that a save makes, and the tenant as it
/// is once the update is written.
struct TenantWrite {
    update: UpdateExpr,
    condition: String,
    next: TenantRecord,
}

/// Collects `SET`/`REMOVE` clauses and their values for one update expression.
#[derive(Default)]
struct UpdateExpr {
    set: Vec<String>,
    remove: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl UpdateExpr {
    fn set(&mut self, attr: &str, value: AttributeValue) -> &mut Self {
        let (name, placeholder) = (format!("#{attr}"), format!(":{attr}"));
        self.set.push(format!("{name} = {placeholder}"));
        self.names.insert(name, attr.to_owned());
        self.values.insert(placeholder, value);
        self
    }

    fn set_or_remove(&mut self, attr: &str, value: Option<AttributeValue>) -> &mut Self {
        match value {
            Some(v) => self.set(attr, v),
            None => self.remove(attr),
        }
    }

    fn set_raw(&mut self, clause: &str) -> &mut Self {
        self.set.push(clause.to_owned());
        self
    }

    fn remove(&mut self, attr: &str) -> &mut Self {
        let name = format!("#{attr}");
        self.remove.push(name.clone());
        self.names.insert(name, attr.to_owned());
        self
    }

    /// Gives the lease a new fence: one past the last fence handed out on the item.
    fn next_fence(&mut self) -> &mut Self {
        self.set_raw("#lease_fence = #last_fence + :one, #last_fence = #last_fence + :one")
            .name("last_fence")
            .name("lease_fence")
            .value(":one", n(1))
    }

    fn name(&mut self, attr: &str) -> &mut Self {
        self.names.insert(format!("#{attr}"), attr.to_owned());
        self
    }

    fn value(&mut self, placeholder: &str, value: AttributeValue) -> &mut Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }

    fn expression(&self) -> String {
        let mut out = String::new();
        if !self.set.is_empty() {
            out.push_str("SET ");
            out.push_str(&self.set.join(", "));
        }
        if !self.remove.is_empty() {
            out.push_str(" REMOVE ");
            out.push_str(&self.remove.join(", "));
        }
        out
    }
}

/// The condition that a write is made by `lease`'s holder while the lease lasts,
/// to append to a version condition; adds the names and values it uses to `update`.
fn lease_guard(update: &mut UpdateExpr, lease: &Lease, now: DateTime<Utc>) -> &'static str {
    update
        .name("lease_owner")
        .name("lease_fence")
        .name("lease_expires")
        .value(":guard_owner", s(&lease.owner))
        .value(":guard_fence", n(lease.fence))
        .value(":now", millis(now));
    " AND #lease_owner = :guard_owner AND #lease_fence = :guard_fence AND #lease_expires > :now"
}

fn ttl_after(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(30))
}

/// How often the store's client tries one DynamoDB call before the error reaches
/// the caller. Every write the store makes is conditional and carries its own
/// `write_id`, so a retry after a lost answer recognises its own write; more
/// attempts than the SDK's default three ride out throttling bursts and dropped
/// connections instead of failing an operator's command.
pub const MAX_ATTEMPTS: u32 = 8;

/// The retry policy of the store's DynamoDB client: standard mode (token bucket,
/// exponential backoff with jitter) with [`MAX_ATTEMPTS`] attempts.
pub fn retry_config() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_max_backoff(Duration::from_secs(5))
}

/// Longest one attempt of a DynamoDB call may wait for its answer before it is
/// abandoned and, within [`MAX_ATTEMPTS`], tried again. A connection that went dark
/// (a middlebox that dropped it, an endpoint that stopped answering) sends nothing
/// back, and without a bound the call waits until TCP gives up, minutes later, with
/// the controller's pass or the worker's step behind it. DynamoDB answers in
/// milliseconds; the bound leaves a loaded table ample room. An attempt abandoned
/// after DynamoDB applied it is a lost answer like any other: the retry of a write
/// finds its own `write_id`.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the store's DynamoDB client waits: a connection within 3 s (the SDK's
/// default), an attempt's answer within [`ATTEMPT_TIMEOUT`].
pub fn timeout_config() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(3100))
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .build()
}

/// A DynamoDB client for the store, from the shared SDK configuration with the
/// store's [`retry_config`] and [`timeout_config`].
pub fn client(config: &aws_config::SdkConfig) -> Client {
    Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(config)
            .retry_config(retry_config())
            .timeout_config(timeout_config())
            .interceptor(crate::ports::aws_calls::AwsCallMetrics::new("dynamodb"))
            .build(),
    )
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            write_milli_units: Arc::new(AtomicU64::new(0)),
            write_breakdown: Arc::default(),
            page_key: page_token::PageKeyCell::default(),
        }
    }

    /// Write capacity units consumed by writes through this store so far.
    pub fn consumed_write_units(&self) -> f64 {
        self.write_milli_units.load(Ordering::Relaxed) as f64 / 1000.0
    }

    /// Write capacity units consumed so far per operation and per part written, as
    /// `("<operation>: table", units)` and `("<operation>: index <name>", units)`;
    /// an operation whose response did not break its capacity down is `"<operation>"`.
    pub fn write_units_by_operation(&self) -> Vec<(String, f64)> {
        let breakdown = self
            .write_breakdown
            .lock()
            .expect("breakdown lock never poisoned");
        breakdown
            .iter()
            .map(|(k, milli)| (k.clone(), *milli as f64 / 1000.0))
            .collect()
    }

    /// Adds the write capacity a response reports (none, one or one per table).
    fn count<'a>(&self, capacity: impl IntoIterator<Item = &'a ConsumedCapacity>) {
        self.count_as("other writes", capacity);
    }

    /// Adds the write capacity a response reports, booked under `operation`.
    fn count_as<'a>(&self, operation: &str, capacity: impl IntoIterator<Item = &'a ConsumedCapacity>) {
        let milli = |units: Option<f64>| (units.unwrap_or(0.0) * 1000.0).round() as u64;
        let mut breakdown = self
            .write_breakdown
            .lock()
            .expect("breakdown lock never poisoned");
        for c in capacity {
            let total = milli(c.capacity_units());
            self.write_milli_units.fetch_add(total, Ordering::Relaxed);
            let mut parts = 0;
            if let Some(table) = c.table() {
                parts += milli(table.capacity_units());
                *breakdown.entry(format!("{operation}: table")).or_default() += milli(table.capacity_units());
            }
            for (index, units) in c.global_secondary_indexes().into_iter().flatten() {
                parts += milli(units.capacity_units());
                *breakdown
                    .entry(format!("{operation}: index {index}"))
                    .or_default() += milli(units.capacity_units());
            }
            if parts < total {
                *breakdown.entry(operation.to_owned()).or_default() += total - parts;
            }
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Sends a transaction; again (up to three times) when DynamoDB cancelled it only
    /// because another transaction touched one of its items at the same moment, in
    /// which case nothing was written. Shared report counters make that possible.
    async fn send_transaction(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<TransactWriteItemsOutput, SdkError<TransactWriteItemsError, HttpResponse>> {
        let mut attempt = 0u64;
        loop {
            let result = self
                .client
                .transact_write_items()
                .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            match result {
                Err(e) if attempt < 3 && is_transaction_conflict(&e) => {
                    attempt += 1;
                    let jitter = rand::random::<u64>() % 40;
                    tokio::time::sleep(Duration::from_millis(10 * attempt + jitter)).await;
                }
                other => return other,
            }
        }
    }

    /// The item under `key`, read consistently, if there is one; `context` names the
    /// read in an error.
    async fn read_item(&self, key: Item, context: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(context, &self.table, e))?;
        Ok(out.item)
    }

    /// Every item `query` finds, read page after page; `context` names the read in an
    /// error.
    async fn query_all(&self, query: QueryFluentBuilder, context: &str) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = (query.clone().set_exclusive_start_key(start).send())
                .await
                .map_err(|e| classify(context, &self.table, e))?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// A conditional update of the item under `key`, ready to send: it reports the
    /// capacity it consumes, and the caller adds what it wants returned.
    fn conditional_update(
        &self,
        key: Item,
        update: UpdateExpr,
        condition: impl Into<String>,
    ) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression(update.expression())
            .condition_expression(condition)
            .set_expression_attribute_names(Some(update.names))
            .set_expression_attribute_values(Some(update.values))
    }

    /// Puts `item` if no item has its key yet; `context` names the write in an error.
    async fn put_new(&self, item: Item, context: &str) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| classify(context, &self.table, e))?;
        Ok(())
    }

    fn tenant_key(id: &TenantId) -> Item {
        item::key(keys::tenant_pk(id), keys::TENANT_SK)
    }

    /// Builds the conditional update for `save`, returning it with the new record.
    fn save_update(
        &self,
        record: &TenantRecord,
        guard: WriteGuard<'_>,
        now: DateTime<Utc>,
        write_id: &str,
    ) -> TenantWrite {
        let mut next = record.clone();
        next.version += 1;
        let mut update = UpdateExpr::default();
        // A worker that keeps its lease leaves the work index alone: the tenant stays
        // hidden from other workers by the lease renewals, which move `work_sk` with
        // the expiry, so a step saved mid-visit does not rewrite the index entry.
        let keeps_lease = matches!(guard, WriteGuard::Lease(_)) && next.lease.is_some();
        for (attr, value) in mutable_attributes(&next) {
            if keeps_lease && WORK_INDEX_KEYS.contains(&attr) {
                continue;
            }
            update.set_or_remove(attr, value);
        }
        update.set(WRITE_ID, s(write_id));
        update.set("version", n(next.version));
        update.set("event_seq", n(next.event_seq));
        update.value(":expected_version", n(record.version));
        let mut condition = "#version = :expected_version".to_owned();
        if let WriteGuard::Lease(lease) = guard {
            condition.push_str(lease_guard(&mut update, lease, now));
            match &next.lease {
                // The worker keeps its lease, possibly with a later expiry.
                Some(kept) => {
                    update.set("lease_expires", millis(kept.expires_at));
                }
                // Giving the lease up in the same write as the result.
                None => {
                    update
                        .remove("lease_owner")
                        .remove("lease_fence")
                        .remove("lease_expires");
                }
            }
        }
        TenantWrite {
            update,
            condition,
            next,
        }
    }

    /// Explains a refused transition by the item of its transaction that refused it:
    /// the tenant (the first item), its history event (the second) or a hostname claim.
    fn explain_refused_transition<'a>(
        record: &'a TenantRecord,
        guard: WriteGuard<'a>,
        event_seq: u64,
        now: DateTime<Utc>,
    ) -> impl Fn(usize, &CancellationReason) -> (Conflict, String) + 'a {
        Self::explain_refused_transitions(record, guard, 1, event_seq, now)
    }

    /// As [`Self::explain_refused_transition`], for a transaction of `events`
    /// history events (items 1 to `events`), the last numbered `event_seq`.
    fn explain_refused_transitions<'a>(
        record: &'a TenantRecord,
        guard: WriteGuard<'a>,
        events: usize,
        event_seq: u64,
        now: DateTime<Utc>,
    ) -> impl Fn(usize, &CancellationReason) -> (Conflict, String) + 'a {
        move |i, reason| match i {
            0 => Self::explain_conflict(record, guard, reason.item(), now),
            1 => (
                Conflict::Version,
                match events {
                    1 => format!("history event {event_seq} already written; reload and try again"),
                    n => format!(
                        "history events {} to {event_seq} already written; reload and try again",
                        event_seq + 1 - n as u64
                    ),
                },
            ),
            _ => (
                Conflict::Version,
                "a hostname claim changed meanwhile; try again".into(),
            ),
        }
    }

    /// Saves a change that records no transition: one conditional update of the
    /// tenant item. A refusal that carries `write_id` is this very write, retried
    /// after its first answer was lost: it counts as written.
    async fn save_in_place(
        &self,
        record: &TenantRecord,
        guard: WriteGuard<'_>,
        now: DateTime<Utc>,
        write: TenantWrite,
        write_id: &str,
    ) -> Result<TenantRecord, StoreError> {
        let result = self
            .conditional_update(Self::tenant_key(record.id()), write.update, write.condition)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match result {
            Ok(out) => {
                self.count_as("save without transition", out.consumed_capacity());
                return as_stored(&write.next);
            }
            Err(err) => err,
        };
        let current = match err.as_service_error() {
            Some(UpdateItemError::ConditionalCheckFailedException(refused)) => refused.item(),
            _ => return Err(classify("saving tenant", &self.table, err)),
        };
        if written_by(current, write_id) {
            return as_stored(&write.next);
        }
        let (kind, detail) = Self::explain_conflict(record, guard, current, now);
        Err(StoreError::Conflict {
            what: format!("saving tenant {}", record.id()),
            detail,
            kind,
        })
    }

    /// Saves a change with the history events of `passed` in one transaction (one,
    /// or a worker's steps written together), numbered up to `write.next.event_seq`.
    /// A tenant that ends deleted gives its hostnames up for other tenants in the
    /// same transaction.
    async fn save_transitions(
        &self,
        record: &TenantRecord,
        guard: WriteGuard<'_>,
        now: DateTime<Utc>,
        write: TenantWrite,
        write_id: &str,
        passed: Vec<PassedStep>,
    ) -> Result<TenantRecord, StoreError> {
        let events = passed.len();
        let (tx, next, context) = self.transitions_tx(record, write, passed).await?;
        match self.commit(tx, &next, write_id, &context).await? {
            Committed::Stored => as_stored(&next),
            Committed::Cancelled(reasons) => Err(cancellation(
                &context,
                &reasons,
                Self::explain_refused_transitions(record, guard, events, next.event_seq, now),
            )),
        }
    }

    /// The transaction of `write` with the history events of `passed`, not yet sent,
    /// the tenant as it will be stored, and the words that name the write in an error.
    async fn transitions_tx(
        &self,
        record: &TenantRecord,
        write: TenantWrite,
        passed: Vec<PassedStep>,
    ) -> Result<(TransitionTx, TenantRecord, String), StoreError> {
        let TenantWrite {
            update,
            condition,
            next,
        } = write;
        let events = passed.len();
        let tenant_write = self.tenant_update(Self::tenant_key(record.id()), update, condition);
        let mut tx = Self::tenant_tx(tenant_write);
        let first_seq = next.event_seq + 1 - events as u64;
        for (seq, step) in (first_seq..).zip(passed) {
            self.add_transition(&mut tx, &step.after, seq, step.transition, step.at);
        }
        if next.state.is_terminal() {
            for h in self.held_by(record.id(), &next.spec.hostnames).await? {
                tx.push(claims::release(&self.table, &h, record.id()));
            }
        }
        let context = match events {
            1 => format!("saving tenant {}", record.id()),
            n => format!("saving {n} steps of tenant {}", record.id()),
        };
        Ok((tx, next, context))
    }

    /// [`TenantStore::save_steps_and_drive`]: the steps' transaction and the drive's
    /// sent as one; the steps alone when the drive's part was refused or the answer
    /// was lost (their write id makes that retry safe), and after a lost answer the
    /// next tenant read to learn whether the joint write had landed.
    async fn steps_and_drive(
        &self,
        record: &TenantRecord,
        lease: &Lease,
        passed: Vec<PassedStep>,
        drive: TenantDrive<'_>,
    ) -> Result<Relayed, StoreError> {
        let guard = WriteGuard::Lease(lease);
        let now = Utc::now();
        let mut record = record.clone();
        let events = passed.len();
        record.event_seq += events as u64;
        let write_id = new_write_id();
        let write = self.save_update(&record, guard, now, &write_id);
        let (tx, landed, context) = self.transitions_tx(&record, write, passed).await?;
        let steps = self.seal(tx, &landed);
        let built = self.drive_tx(&drive, now);
        let driven = self.seal(built.tx, &built.next);
        let driven_tally = driven.tally();
        let explain = Self::explain_refused_transitions(&record, guard, events, landed.event_seq, now);
        let mut answer_lost = false;
        if shares_an_item(&steps.items, &driven.items) {
            // One transaction may name an item once: the two tenants' report counters
            // are one item when they share the day, region, group and shard.
            debug!("the landing and the relayed start write one item; the landing is written alone");
        } else {
            let joint = vec![steps.clone(), driven];
            match self
                .send_sealed(joint, "relay transaction", &write_id, &context)
                .await
            {
                Ok((Committed::Stored, _)) => {
                    return Ok(Relayed {
                        landed: as_stored(&landed)?,
                        next: Some(built.next),
                    })
                }
                Ok((Committed::Cancelled(reasons), lengths)) => {
                    let (own, theirs) = reasons.split_at(lengths[0].min(reasons.len()));
                    if own.iter().any(|r| r.code() == Some("ConditionalCheckFailed")) {
                        return Err(cancellation(&context, own, explain));
                    }
                    let why = rollout_drive::explain_drive(&drive, &built.context, theirs);
                    debug!(error = %why, "the relayed start was refused; the landing is written alone");
                }
                Err(e) => {
                    debug!(error = %e, "the joint write's answer was lost; the landing is written alone");
                    answer_lost = true;
                }
            }
        }
        match (self
            .send_sealed(vec![steps], "transition transaction", &write_id, &context)
            .await?)
            .0
        {
            Committed::Stored => Ok(Relayed {
                landed: as_stored(&landed)?,
                // A joint write whose answer was lost may have landed: the landing's
                // retry then finds its own write id in place, and the start is
                // written too, leased to the caller, who should run it now rather
                // than leave it to wait out its lease.
                next: if answer_lost {
                    (self.started_with_landing(built.next, &built.write_id).await)
                        .inspect(|_| driven_tally.count_written())
                } else {
                    None
                },
            }),
            Committed::Cancelled(reasons) => Err(cancellation(&context, &reasons, explain)),
        }
    }

    /// `next`, if its item carries `write_id` (the joint write that started it
    /// landed); `None` if it does not, or if it cannot be read now, in which case a
    /// start that did land waits for its lease to run out, as after a worker's death.
    async fn started_with_landing(&self, next: TenantRecord, write_id: &str) -> Option<TenantRecord> {
        let context = format!("reading tenant {} after a lost answer", next.id());
        match self.read_item(Self::tenant_key(next.id()), &context).await {
            Ok(item) if written_by(item.as_ref(), write_id) => {
                info!(next = %next.id(), "the joint write's answer was lost, and it had landed: the start is written");
                Some(next)
            }
            Ok(_) => None,
            Err(e) => {
                warn!(error = %e, next = %next.id(), "whether a joint write with a lost answer started the next tenant is unknown; it resumes when its lease runs out");
                None
            }
        }
    }

    fn explain_conflict(
        record: &TenantRecord,
        guard: WriteGuard<'_>,
        current: Option<&Item>,
        now: DateTime<Utc>,
    ) -> (Conflict, String) {
        let Some(current) = current else {
            return (
                Conflict::Version,
                format!(
                    "tenant {} changed since version {} was read; reload and try again",
                    record.id(),
                    record.version
                ),
            );
        };
        let version = get_n(current, "version").unwrap_or(-1);
        if version != record.version as i64 {
            return (
                Conflict::Version,
                format!(
                    "tenant {} is at version {version}, not {}; reload and try again",
                    record.id(),
                    record.version
                ),
            );
        }
        if let WriteGuard::Lease(lease) = guard {
            let owner = get_s(current, "lease_owner").unwrap_or("nobody");
            let fence = get_n(current, "lease_fence").unwrap_or(-1);
            let expired = get_n(current, "lease_expires").is_ok_and(|e| e <= now.timestamp_millis());
            return (
                Conflict::Lease,
                format!(
                    "lease lost: held by {owner} (fence {fence}){}, this writer has fence {}",
                    if expired { ", expired" } else { "" },
                    lease.fence
                ),
            );
        }
        (Conflict::Version, "condition failed".into())
    }
}

/// Whether two transactions' item lists name one item (by its key).
fn shares_an_item(a: &[TransactWriteItem], b: &[TransactWriteItem]) -> bool {
    fn key(item: &TransactWriteItem) -> Option<(String, String)> {
        let named = |m: &HashMap<String, AttributeValue>| {
            let part = |k: &str| m.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            (part("pk"), part("sk"))
        };
        (item.update().map(|u| named(u.key())))
            .or_else(|| item.put().map(|p| named(p.item())))
            .or_else(|| item.delete().map(|d| named(d.key())))
            .or_else(|| item.condition_check().map(|c| named(c.key())))
    }
    let keys: std::collections::HashSet<(String, String)> = a.iter().filter_map(key).collect();
    b.iter().filter_map(key).any(|k| keys.contains(&k))
}

#[async_trait]
impl TenantStore for DynamoStore {
    async fn create(&self, record: &TenantRecord, first: Transition) -> Result<TenantRecord, StoreError> {
        let now = record.created_at;
        let mut stored = record.clone();
        stored.version = 1;
        stored.event_seq = 1;
        let write_id = new_write_id();
        let mut item = tenant_item(&stored);
        item.insert(WRITE_ID.to_owned(), s(&write_id));
        let put_tenant = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("table, item set");
        let register_region = Update::builder()
            .table_name(&self.table)
            .key("pk", s(keys::META_PK))
            .key("sk", s(keys::REGIONS_SK))
            .update_expression("ADD regions :region")
            .expression_attribute_values(
                ":region",
                AttributeValue::Ss(vec![record.spec.region.to_string()]),
            )
            .build()
            .expect("table, key, expression set");
        let mut tx = self.transition_tx(
            TransactWriteItem::builder().put(put_tenant).build(),
            &stored,
            first,
            now,
        );
        tx.push(TransactWriteItem::builder().update(register_region).build());
        let first_claim = tx.len();
        let hostnames = &record.spec.hostnames;
        for h in hostnames {
            tx.push(claims::claim(&self.table, h, record.id()));
        }
        let reasons = match self.commit(tx, &stored, &write_id, "creating tenant").await? {
            Committed::Stored => return as_stored(&stored),
            Committed::Cancelled(reasons) => reasons,
        };
        let exists = reasons.first().and_then(|r| r.code()) == Some("ConditionalCheckFailed");
        if let Some(taken) = self.refused_claim(&reasons, first_claim, hostnames).await {
            if !exists {
                return Err(taken);
            }
        }
        Err(cancellation("creating tenant", &reasons, |_, _| {
            (
                Conflict::Version,
                format!(
                    "tenant {} already exists; pick another id or inspect it with `tenantctl tenant get {}`",
                    record.id(),
                    record.id()
                ),
            )
        }))
    }

    async fn load(&self, id: &TenantId) -> Result<TenantRecord, StoreError> {
        match self.read_item(Self::tenant_key(id), "loading tenant").await? {
            Some(item) => decode_tenant(&item),
            None => Err(StoreError::NotFound {
                entity: Entity::Tenant,
                what: format!("tenant {id}"),
            }),
        }
    }

    async fn load_many(&self, ids: &[TenantId]) -> Result<Vec<TenantRecord>, StoreError> {
        self.batch_load(ids).await
    }

    async fn save(
        &self,
        record: &TenantRecord,
        guard: WriteGuard<'_>,
        transition: Option<Transition>,
    ) -> Result<TenantRecord, StoreError> {
        let now = Utc::now();
        let mut record = record.clone();
        if transition.is_some() {
            record.event_seq += 1;
        }
        let write_id = new_write_id();
        let write = self.save_update(&record, guard, now, &write_id);
        match transition {
            None => self.save_in_place(&record, guard, now, write, &write_id).await,
            Some(transition) => {
                let step = PassedStep {
                    transition,
                    after: write.next.clone(),
                    at: now,
                };
                (self.save_transitions(&record, guard, now, write, &write_id, vec![step])).await
            }
        }
    }

    async fn save_steps(
        &self,
        record: &TenantRecord,
        lease: &Lease,
        passed: Vec<PassedStep>,
    ) -> Result<TenantRecord, StoreError> {
        let guard = WriteGuard::Lease(lease);
        if passed.is_empty() {
            return self.save(record, guard, None).await;
        }
        let now = Utc::now();
        let mut record = record.clone();
        record.event_seq += passed.len() as u64;
        let write_id = new_write_id();
        let write = self.save_update(&record, guard, now, &write_id);
        (self.save_transitions(&record, guard, now, write, &write_id, passed)).await
    }

    async fn save_steps_and_drive(
        &self,
        record: &TenantRecord,
        lease: &Lease,
        passed: Vec<PassedStep>,
        drive: TenantDrive<'_>,
    ) -> Result<Relayed, StoreError> {
        if passed.is_empty() {
            let landed = self.save(record, WriteGuard::Lease(lease), None).await?;
            return Ok(Relayed { landed, next: None });
        }
        self.steps_and_drive(record, lease, passed, drive).await
    }

    async fn save_spec(
        &self,
        record: &TenantRecord,
        before: &[Hostname],
        transition: Transition,
    ) -> Result<TenantRecord, StoreError> {
        self.save_spec_change(record, before, transition).await
    }

    async fn acquire_lease(
        &self,
        id: &TenantId,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<TenantRecord, StoreError> {
        let expires = ttl_after(now, ttl);
        let mut update = UpdateExpr::default();
        update
            .set("lease_owner", s(owner))
            .set("lease_expires", millis(expires))
            .next_fence()
            .value(":now", millis(now))
            // Hide the tenant from the work index until the lease runs out. An item
            // without work_pk stays out of the index whatever work_sk says.
            .set("work_sk", s(keys::work_sk(expires, id)));
        let free_or_ours = "attribute_exists(pk) AND (attribute_not_exists(#lease_owner) OR #lease_expires <= :now OR #lease_owner = :lease_owner)";
        let result = self
            .conditional_update(Self::tenant_key(id), update, free_or_ours)
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                self.count_as("lease acquire", out.consumed_capacity());
                decode_tenant(out.attributes().unwrap_or(&HashMap::new()))
            }
            Err(err) => Err(conflict_as(
                classify("taking lease", &self.table, err),
                Conflict::Lease,
                || format!("tenant {id} is leased by another worker (or does not exist)"),
            )),
        }
    }

    async fn renew_lease(
        &self,
        id: &TenantId,
        lease: &Lease,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Lease, StoreError> {
        let expires = ttl_after(now, ttl);
        let mut update = UpdateExpr::default();
        update
            .set("lease_expires", millis(expires))
            .set("work_sk", s(keys::work_sk(expires, id)))
            .name("lease_owner")
            .name("lease_fence")
            .value(":owner", s(&lease.owner))
            .value(":fence", n(lease.fence))
            .value(":now", millis(now));
        let out = self
            .conditional_update(
                Self::tenant_key(id),
                update,
                "#lease_owner = :owner AND #lease_fence = :fence AND #lease_expires > :now",
            )
            .send()
            .await
            .map_err(|e| {
                conflict_as(
                    classify("renewing lease", &self.table, e),
                    Conflict::Lease,
                    || format!("lease on tenant {id} (fence {}) was lost", lease.fence),
                )
            })?;
        self.count_as("lease renew", out.consumed_capacity());
        Ok(Lease {
            expires_at: expires,
            ..lease.clone()
        })
    }

    async fn release_lease(&self, record: &TenantRecord, lease: &Lease) -> Result<(), StoreError> {
        let mut unleased = record.clone();
        unleased.lease = None;
        let mut update = UpdateExpr::default();
        update
            .remove("lease_owner")
            .remove("lease_expires")
            .remove("lease_fence")
            .name("version")
            .value(":owner", s(&lease.owner))
            .value(":fence", n(lease.fence))
            .value(":version", n(record.version));
        // The work-index key below is computed from `record`: the release is valid only
        // for that version. A command that changed the tenant since makes it a
        // conflict, and the holder carries on with the new state instead.
        match unleased.work_due_at() {
            Some(due) => update.set("work_sk", s(keys::work_sk(due, record.id()))),
            None => update.remove("work_sk"),
        };
        let out = self
            .conditional_update(
                Self::tenant_key(record.id()),
                update,
                "#lease_owner = :owner AND #lease_fence = :fence AND #version = :version",
            )
            .send()
            .await
            .map_err(|e| classify("releasing lease", &self.table, e))?;
        self.count_as("lease release", out.consumed_capacity());
        Ok(())
    }

    async fn history(
        &self,
        id: &TenantId,
        after_seq: u64,
        limit: u32,
    ) -> Result<Page<HistoryEvent>, StoreError> {
        // An item holds one event or several (`item::history_item`), keyed by its last
        // one's number: the first item read may hold events up to `after_seq` too, and
        // `limit + 1` items hold more than `limit` events whenever the history goes on.
        let limit = limit.clamp(1, 1000) as usize;
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
            .expression_attribute_values(":pk", s(keys::tenant_pk(id)))
            .expression_attribute_values(":from", s(keys::event_sk(after_seq + 1)))
            .expression_attribute_values(":to", s(keys::event_sk(999_999_999_999)))
            .consistent_read(true)
            .limit(limit as i32 + 1)
            .send()
            .await
            .map_err(|e| classify("reading history", &self.table, e))?;
        let mut items = Vec::with_capacity(limit + 1);
        for item in out.items() {
            items.extend(decode_history(item)?.into_iter().filter(|e| e.seq > after_seq));
        }
        let more = items.len() > limit || out.last_evaluated_key().is_some_and(|k| !k.is_empty());
        items.truncate(limit);
        let next_token = match items.last() {
            Some(last) if more => Some(last.seq.to_string()),
            _ => None,
        };
        Ok(Page { items, next_token })
    }

    async fn list(&self, query: &ListQuery) -> Result<Page<TenantSummary>, StoreError> {
        crate::ports::TenantReads::list_matching(self, query, &crate::ports::ListFilter::default()).await
    }

    async fn list_ids(&self, query: &ListQuery) -> Result<Page<TenantId>, StoreError> {
        let page = (self.list_page(
            query,
            &crate::ports::ListFilter::default(),
            listing::Steps::AsListed,
        ))
        .await?;
        Ok(Page {
            items: page.items.into_iter().map(|t| t.id).collect(),
            next_token: page.next_token,
        })
    }

    async fn due(
        &self,
        region: &Region,
        shard: u32,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<TenantId>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("work")
            .key_condition_expression("work_pk = :pk AND work_sk <= :upper")
            .expression_attribute_values(":pk", s(keys::work_pk(region, shard)))
            .expression_attribute_values(":upper", s(keys::work_sk_upper(now)))
            .limit(limit.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(|e| classify("finding due tenants", &self.table, e))?;
        out.items()
            .iter()
            .map(|item| {
                let pk = get_s(item, "pk")?;
                let id = pk.strip_prefix("TENANT#").unwrap_or(pk);
                TenantId::parse(id).map_err(|e| {
                    StoreError::fatal(
                        "finding due tenants",
                        "a work item names a tenant id that is not valid",
                    )
                    .with_source(e)
                })
            })
            .collect()
    }

    async fn regions(&self) -> Result<Vec<Region>, StoreError> {
        let item = self
            .read_item(item::key(keys::META_PK, keys::REGIONS_SK), "listing regions")
            .await?;
        let mut regions = match item.as_ref().and_then(|i| i.get("regions")) {
            Some(AttributeValue::Ss(list)) => list
                .iter()
                .map(|r| Region::parse(r))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    StoreError::fatal(
                        "listing regions",
                        "the stored region list holds a region that is not valid",
                    )
                    .with_source(e)
                })?,
            _ => vec![],
        };
        regions.sort();
        Ok(regions)
    }
}

/// Counts a recorded transition for `/metrics` (`tenantctl_transitions_total`), and
/// the outage it measured (`tenantctl_upgrade_outage_seconds`).
fn count_transition(from: &'static str, to: &'static str, region: &Region, outage_seconds: Option<u64>) {
    metrics::counter!(
        "tenantctl_transitions_total",
        "from" => from,
        "to" => to
    )
    .increment(1);
    if let Some(seconds) = outage_seconds {
        metrics::histogram!(
            "tenantctl_upgrade_outage_seconds",
            "region" => region.to_string()
        )
        .record(seconds as f64);
    }
}

fn is_transaction_conflict(err: &SdkError<TransactWriteItemsError, HttpResponse>) -> bool {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
            let codes: Vec<_> = e.cancellation_reasons().iter().filter_map(|r| r.code()).collect();
            codes.contains(&"TransactionConflict") && !codes.contains(&"ConditionalCheckFailed")
        }
        _ => false,
    }
}

/// The tenant item's keys in the `work` index.
const WORK_INDEX_KEYS: [&str; 2] = ["work_pk", "work_sk"];

/// Attribute naming the last write to a tenant item, so a write retried after its
/// answer was lost recognises itself in the refusal instead of reporting a conflict.
const WRITE_ID: &str = "write_id";

fn new_write_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Whether `item` (as returned with a refused condition) carries our write.
fn written_by(item: Option<&Item>, write_id: &str) -> bool {
    item.and_then(|i| item::opt_s(i, WRITE_ID))
        .is_some_and(|w| w == write_id)
}

/// The record exactly as a later load returns it (timestamps at millisecond precision).
fn as_stored(record: &TenantRecord) -> Result<TenantRecord, StoreError> {
    let mut item = tenant_item(record);
    if let Some(lease) = &record.lease {
        item.insert("lease_owner".into(), s(&lease.owner));
        item.insert("lease_expires".into(), millis(lease.expires_at));
        item.insert("lease_fence".into(), n(lease.fence));
    }
    decode_tenant(&item)
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem, Update};

    use super::{s, shares_an_item};

    fn update(pk: &str, sk: &str) -> TransactWriteItem {
        let update = Update::builder()
            .table_name("t")
            .key("pk", s(pk))
            .key("sk", s(sk))
            .update_expression("ADD #n :one")
            .build()
            .unwrap();
        TransactWriteItem::builder().update(update).build()
    }

    /// Two tenants' transactions sent as one must not name an item twice: their
    /// report counters are one item when the day, region, group and shard agree.
    #[test]
    fn a_joint_write_knows_when_its_parts_write_one_item() {
        let check = TransactWriteItem::builder()
            .condition_check(
                ConditionCheck::builder()
                    .table_name("t")
                    .key("pk", s("ROLLOUT#r"))
                    .key("sk", s("LEASE"))
                    .condition_expression("attribute_exists(pk)")
                    .build()
                    .unwrap(),
            )
            .build();
        let landing = [
            update("TENANT#a", "TENANT"),
            update("REPORT#2026-12-05", "eu-west-1#default#3"),
        ];
        let same_counter = [
            update("TENANT#b", "TENANT"),
            update("REPORT#2026-12-05", "eu-west-1#default#3"),
        ];
        let other_counter = [
            update("TENANT#b", "TENANT"),
            update("REPORT#2026-12-05", "eu-west-1#default#5"),
            check,
        ];
        assert!(shares_an_item(&landing, &same_counter));
        assert!(!shares_an_item(&landing, &other_counter));
        assert!(!shares_an_item(&landing, &[]));
    }
}
