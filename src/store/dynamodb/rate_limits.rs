//! Token buckets for the AWS calls the steps make, one item per (service, region,
//! account): `pk RATE#<service>#<region>` for the orchestrator's own account and
//! `RATE#<service>#<region>#<account>` for a target's, `sk BUCKET`, holding `tat`, the bucket's
//! theoretical arrival time in microseconds (GCRA: the time at which the bucket
//! would be full again had every granted token been spaced one interval apart).
//!
//! A token is granted when `tat <= now + tolerance` (tolerance = (burst − 1)
//! intervals), and the grant moves `tat` to `max(tat, now) + interval`. DynamoDB
//! cannot take a maximum, so the two sides are two conditional updates: a quiet
//! bucket (`tat <= now`, or no item) is set to `now + interval`; a busy one
//! (`now < tat <= now + tolerance`) is advanced by `interval` in place. The busy
//! update does not name the value it read, so any number of replicas advancing the
//! same bucket all land without retrying against each other. Which side to try first
//! is guessed from the last `tat` this process saw; a wrong guess costs one refused
//! update whose answer (`ReturnValuesOnConditionCheckFailure`) carries the stored
//! `tat`, so an acquire is one `UpdateItem`, two after a wrong guess, never a read.
//!
//! Whatever the processes' interleaving, the grants in any window of length `w` are
//! at most `w · rate + burst`: each grant takes `tat` one interval further, and `tat`
//! never runs more than `tolerance` ahead of the granting process's clock. Clocks
//! that disagree by `d` add at most `d · rate` grants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnConsumedCapacity, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::errors::classify;
use super::item::{get_n, n, Item};
use super::DynamoStore;
use crate::ports::{Acquired, BucketKey, BucketShape, RateLimiter};
use crate::store::StoreError;

const BUCKET_SK: &str = "BUCKET";
/// Guesses per acquire; two always suffice unless the clock jumps meanwhile.
const ATTEMPTS: usize = 3;

/// The partition key of `bucket`.
pub fn bucket_pk(bucket: &BucketKey) -> String {
    let BucketKey {
        service,
        region,
        account,
    } = bucket;
    match account {
        None => format!("RATE#{service}#{region}"),
        Some(account) => format!("RATE#{service}#{region}#{account}"),
    }
}

/// [`RateLimiter`] on the tenants' table.
pub struct DynamoRateLimiter {
    store: Arc<DynamoStore>,
    /// The last `tat` seen per bucket: only a guess of which update to send.
    seen: Mutex<HashMap<String, i64>>,
}

impl DynamoRateLimiter {
    pub fn new(store: Arc<DynamoStore>) -> Self {
        Self {
            store,
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn remember(&self, pk: &str, tat: i64) {
        self.seen
            .lock()
            .expect("rate limit hints")
            .insert(pk.to_owned(), tat);
    }

    fn last_seen(&self, pk: &str) -> Option<i64> {
        self.seen.lock().expect("rate limit hints").get(pk).copied()
    }

    /// Sends one of the two updates; `Ok(Ok(tat))` when it was granted (the new
    /// `tat`), `Ok(Err(tat))` when its condition failed (the stored `tat`).
    async fn try_take(
        &self,
        pk: &str,
        busy: bool,
        now: i64,
        shape: BucketShape,
    ) -> Result<Result<i64, Option<i64>>, StoreError> {
        let interval = shape.interval_micros();
        let request = self
            .store
            .client()
            .update_item()
            .table_name(self.store.table())
            .key("pk", super::item::s(pk))
            .key("sk", super::item::s(BUCKET_SK))
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let request = if busy {
            request
                .update_expression("SET tat = tat + :interval")
                .condition_expression("tat > :now AND tat <= :limit")
                .expression_attribute_values(":interval", n(interval))
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":limit", n(now + shape.tolerance_micros()))
        } else {
            request
                .update_expression("SET tat = :next")
                .condition_expression("attribute_not_exists(tat) OR tat <= :now")
                .expression_attribute_values(":next", n(now + interval))
                .expression_attribute_values(":now", n(now))
        };
        match request.send().await {
            Ok(out) => {
                self.store.count(out.consumed_capacity());
                let tat = match out.attributes() {
                    Some(attributes) => get_n(attributes, "tat")?,
                    None => now + interval,
                };
                Ok(Ok(tat))
            }
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(refused)) => {
                    Ok(Err(refused.item().map(stored_tat).transpose()?))
                }
                _ => Err(classify(
                    &format!("taking a token from {pk}"),
                    self.store.table(),
                    err,
                )),
            },
        }
    }
}

fn stored_tat(item: &Item) -> Result<i64, StoreError> {
    get_n(item, "tat")
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

#[async_trait::async_trait]
impl RateLimiter for DynamoRateLimiter {
    async fn acquire(&self, bucket: &BucketKey, shape: BucketShape) -> Result<Acquired, StoreError> {
        if !(shape.rate_per_second.is_finite() && shape.rate_per_second > 0.0) {
            return Err(StoreError::Invalid {
                context: format!("rate limit of {bucket}"),
                message: format!(
                    "rate_per_second must be a positive number, not {}",
                    shape.rate_per_second
                ),
            });
        }
        let pk = bucket_pk(bucket);
        let now = now_micros();
        let mut busy = self.last_seen(&pk).is_some_and(|tat| tat > now);
        for _ in 0..ATTEMPTS {
            match self.try_take(&pk, busy, now, shape).await? {
                Ok(tat) => {
                    self.remember(&pk, tat);
                    return Ok(Acquired::Granted);
                }
                Err(stored) => {
                    let tat = stored.unwrap_or(now);
                    self.remember(&pk, tat);
                    let earliest = tat - shape.tolerance_micros();
                    if earliest > now {
                        return Ok(Acquired::Wait(Duration::from_micros((earliest - now) as u64)));
                    }
                    busy = tat > now;
                }
            }
        }
        Ok(Acquired::Wait(Duration::from_micros(
            shape.interval_micros() as u64
        )))
    }
}
