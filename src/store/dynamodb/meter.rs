//! What a DynamoDB client costs: requests by operation, and the read capacity its
//! reads consume. A [`Meter`] is an interceptor on the client, so every read of every
//! part of the store is counted without each call site asking: it sets
//! `ReturnConsumedCapacity=TOTAL` on `GetItem`, `BatchGetItem`, `Query`, `Scan` and
//! `TransactGetItems` and adds up the capacity their responses report.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::operation::batch_get_item::{BatchGetItemInput, BatchGetItemOutput};
use aws_sdk_dynamodb::operation::get_item::{GetItemInput, GetItemOutput};
use aws_sdk_dynamodb::operation::query::{QueryInput, QueryOutput};
use aws_sdk_dynamodb::operation::scan::{ScanInput, ScanOutput};
use aws_sdk_dynamodb::operation::transact_get_items::{TransactGetItemsInput, TransactGetItemsOutput};
use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;

/// Requests by operation and read capacity consumed, shared by the clones of a
/// metered client.
#[derive(Clone, Default)]
pub struct Meter(Arc<Mutex<Usage>>);

/// What a meter has counted so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// Requests sent (each retry included), by operation name (`Query`, `GetItem`…).
    pub requests: BTreeMap<String, u64>,
    /// Read capacity units the reads consumed, tables and indexes together.
    pub read_units: f64,
}

impl Usage {
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }

    /// Requests of operation `name` (0 when none was sent).
    pub fn requests_of(&self, name: &str) -> u64 {
        self.requests.get(name).copied().unwrap_or(0)
    }
}

impl Meter {
    /// `client` with a meter on it: the returned client (and its clones) count into
    /// the returned meter; `client` itself stays unmetered.
    pub fn attach(client: &Client) -> (Client, Meter) {
        let meter = Meter::default();
        let config = client.config().to_builder().interceptor(meter.clone()).build();
        (Client::from_conf(config), meter)
    }

    /// A copy of what was counted so far.
    pub fn usage(&self) -> Usage {
        self.0.lock().expect("meter lock").clone()
    }
}

impl fmt::Debug for Meter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Meter").field(&self.usage()).finish()
    }
}

fn units<'a>(capacity: impl IntoIterator<Item = &'a ConsumedCapacity>) -> f64 {
    capacity.into_iter().filter_map(|c| c.capacity_units()).sum()
}

impl Intercept for Meter {
    fn name(&self) -> &'static str {
        "DynamoDbMeter"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_owned())
            .unwrap_or_else(|| "unknown".into());
        *self
            .0
            .lock()
            .expect("meter lock")
            .requests
            .entry(operation)
            .or_default() += 1;
        let input = context.input_mut();
        let total = Some(ReturnConsumedCapacity::Total);
        if let Some(i) = input.downcast_mut::<QueryInput>() {
            i.return_consumed_capacity = total;
        } else if let Some(i) = input.downcast_mut::<GetItemInput>() {
            i.return_consumed_capacity = total;
        } else if let Some(i) = input.downcast_mut::<ScanInput>() {
            i.return_consumed_capacity = total;
        } else if let Some(i) = input.downcast_mut::<BatchGetItemInput>() {
            i.return_consumed_capacity = total;
        } else if let Some(i) = input.downcast_mut::<TransactGetItemsInput>() {
            i.return_consumed_capacity = total;
        }
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Ok(output) = context.output_or_error() else {
            return Ok(());
        };
        let read = if let Some(o) = output.downcast_ref::<QueryOutput>() {
            units(o.consumed_capacity())
        } else if let Some(o) = output.downcast_ref::<GetItemOutput>() {
            units(o.consumed_capacity())
        } else if let Some(o) = output.downcast_ref::<ScanOutput>() {
            units(o.consumed_capacity())
        } else if let Some(o) = output.downcast_ref::<BatchGetItemOutput>() {
            units(o.consumed_capacity())
        } else if let Some(o) = output.downcast_ref::<TransactGetItemsOutput>() {
            units(o.consumed_capacity())
        } else {
            0.0
        };
        self.0.lock().expect("meter lock").read_units += read;
        Ok(())
    }
}
