//! Engine throughput against raw DynamoDB writes, side by side on one DynamoDB Local.
//!
//!   eval "$(localstack/start.sh)" && cargo bench --bench engine
//!
//! Prints transitions per second through the whole engine (work index, lease, step,
//! machine, conditional transaction with its history event, lease release), raw
//! 2-item conditional `TransactWriteItems` per second at the same concurrency, their
//! ratio, and write capacity units per transition from `ReturnConsumedCapacity`.
//! Each side runs three rounds, interleaved (raw, engine; engine, raw; raw, engine),
//! on a fresh table each; the rates are over all three.
//! The step is a test double that returns at once, so only the engine is measured.

#[path = "common/allocator.rs"]
mod allocator;
#[path = "common/fleet_spec.rs"]
mod fleet_spec;
#[path = "common/write_units.rs"]
mod write_units;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnConsumedCapacity, TransactWriteItem, Update};
use chrono::Utc;
use tenant_orchestrator::app::TenantCommands;
use tenant_orchestrator::domain::{ReleaseVersion, TenantId, TenantSpec};
use tenant_orchestrator::record::{Actor, TenantRecord};
use tenant_orchestrator::step::{Step, StepContext, StepOutcome, StepRegistry};
use tenant_orchestrator::store::{table, DynamoStore, TenantStore};
use tenant_orchestrator::worker::{Worker, WorkerConfig};

/// Test double: every step succeeds immediately.
struct InstantStep;

#[async_trait]
impl Step for InstantStep {
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
        StepOutcome::done("instant", ctx.tenant.facts.clone())
    }
}

const TENANTS: usize = 200;
const STEPS_PER_TENANT: usize = 6;
const CONCURRENCY: usize = 16;

fn spec(i: usize) -> TenantSpec {
    fleet_spec::bench_spec(
        &format!("bench-{i:05}"),
        if i % 2 == 0 { "us-east-1" } else { "eu-west-1" },
    )
}

/// What the engine run measured.
struct EngineRun {
    transitions_per_second: f64,
    units_per_transition: f64,
    /// Writes of the tenant item (each bumps its version) per transition: 1 when every
    /// step is written alone, less when a worker writes steps together.
    writes_per_transition: f64,
    /// Units per transition by operation and part written (table or index).
    breakdown: Vec<(String, f64)>,
    /// Stored sizes in bytes (attribute names plus values, as DynamoDB bills them) of
    /// one settled tenant's items: the tenant item, its last history item, an outbox item.
    item_sizes: Vec<(&'static str, usize)>,
}

/// The size DynamoDB bills an item at: attribute names plus values.
fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    fn value_size(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => n.len().div_ceil(2) + 1,
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
            AttributeValue::Ss(l) => l.iter().map(String::len).sum(),
            AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
            AttributeValue::M(m) => 3 + m.iter().map(|(k, v)| 1 + k.len() + value_size(v)).sum::<usize>(),
            _ => 0,
        }
    }
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// The sizes of one tenant's tenant item, its last history item and one outbox item
/// (the events of steps written together share one of each).
async fn item_sizes(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
) -> Vec<(&'static str, usize)> {
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let own = client
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", s(&format!("TENANT#{tenant}")))
        .send()
        .await
        .unwrap();
    let mut sizes = Vec::new();
    for item in own.items() {
        let sk = item
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .map_or("", |v| v.as_str());
        let kind = if sk.starts_with("EVENT#") {
            "last history item"
        } else {
            "tenant item"
        };
        sizes.retain(|(k, _)| *k != kind);
        sizes.push((kind, item_size(item)));
    }
    let outbox = client
        .scan()
        .table_name(table)
        .filter_expression("begins_with(pk, :p)")
        .expression_attribute_values(":p", s("OUTBOX#"))
        .limit(200)
        .send()
        .await
        .unwrap();
    if let Some(item) = outbox.items().first() {
        sizes.push(("an outbox item", item_size(item)));
    }
    sizes
}

async fn engine(client: aws_sdk_dynamodb::Client) -> EngineRun {
    let name = format!("bench-engine-{}", uuid::Uuid::new_v4().simple());
    table::ensure_table(&client, &name).await.unwrap();
    let store = Arc::new(DynamoStore::new(client, name));
    let commands = TenantCommands::new(store.clone());
    for i in 0..TENANTS {
        commands
            .create(
                spec(i),
                ReleaseVersion::parse("1.0.0").unwrap(),
                &Actor::operator("bench"),
            )
            .await
            .unwrap();
    }
    let ids: Vec<TenantId> = (0..TENANTS).map(|i| spec(i).id).collect();
    let versions = |records: Vec<TenantRecord>| records.iter().map(|r| r.version).sum::<u64>();
    let versions_before = versions(store.load_many(&ids).await.unwrap());
    let before = store.consumed_write_units();
    let units_mark = write_units::mark(&store);
    let config = WorkerConfig {
        concurrency: CONCURRENCY,
        poll_interval: Duration::from_millis(20),
        ..WorkerConfig::new("bench")
    };
    let worker = Worker::new(store.clone(), StepRegistry::all(Arc::new(InstantStep)), config);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let start = Instant::now();
    let running = tokio::spawn(async move { worker.run(rx).await });
    fleet_spec::wait_until_provisioned(&*store).await;
    let elapsed = start.elapsed().as_secs_f64();
    tx.send(true).unwrap();
    running.await.unwrap().unwrap();
    let transitions = (TENANTS * STEPS_PER_TENANT) as f64;
    let units = store.consumed_write_units() - before;
    let writes = versions(store.load_many(&ids).await.unwrap()) - versions_before;
    let units_per_transition = units / transitions;
    let breakdown = write_units::since(&store, &units_mark, transitions);
    let accounted: f64 = breakdown.iter().map(|(_, units)| units).sum();
    assert!(
        (accounted - units_per_transition).abs() < 1e-6,
        "the breakdown must add up to the total"
    );
    EngineRun {
        transitions_per_second: transitions / elapsed,
        units_per_transition,
        writes_per_transition: writes as f64 / transitions,
        breakdown,
        item_sizes: item_sizes(store.client(), store.table(), "bench-00000").await,
    }
}

async fn raw(client: aws_sdk_dynamodb::Client) -> (f64, f64) {
    let name = format!("bench-raw-{}", uuid::Uuid::new_v4().simple());
    table::ensure_table(&client, &name).await.unwrap();
    let s = |v: String| AttributeValue::S(v);
    let n = |v: usize| AttributeValue::N(v.to_string());
    for i in 0..TENANTS {
        client
            .put_item()
            .table_name(&name)
            .item("pk", s(format!("TENANT#raw-{i}")))
            .item("sk", s("TENANT".into()))
            .item("version", n(0))
            .send()
            .await
            .unwrap();
    }
    let units = Arc::new(std::sync::Mutex::new(0.0f64));
    let start = Instant::now();
    let mut tasks = Vec::new();
    // Each task owns TENANTS/CONCURRENCY items and writes each STEPS_PER_TENANT times,
    // the same shape as the engine: condition on version, bump it, add an event.
    for t in 0..CONCURRENCY {
        let client = client.clone();
        let name = name.clone();
        let units = units.clone();
        tasks.push(tokio::spawn(async move {
            for i in (t..TENANTS).step_by(CONCURRENCY) {
                for v in 0..STEPS_PER_TENANT {
                    let pk = format!("TENANT#raw-{i}");
                    let update = Update::builder()
                        .table_name(&name)
                        .key("pk", s(pk.clone()))
                        .key("sk", s("TENANT".into()))
                        .update_expression("SET version = :next, state_label = :label")
                        .condition_expression("version = :v")
                        .expression_attribute_values(":v", n(v))
                        .expression_attribute_values(":next", n(v + 1))
                        .expression_attribute_values(":label", s(format!("step-{v}")))
                        .build()
                        .unwrap();
                    let put = Put::builder()
                        .table_name(&name)
                        .set_item(Some(HashMap::from([
                            ("pk".to_owned(), s(pk)),
                            ("sk".to_owned(), s(format!("EVENT#{:012}", v + 1))),
                            (
                                "event".to_owned(),
                                s(format!("{{\"to\":\"step-{v}\",\"at\":\"{}\"}}", Utc::now())),
                            ),
                        ])))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .unwrap();
                    let out = client
                        .transact_write_items()
                        .return_consumed_capacity(ReturnConsumedCapacity::Total)
                        .transact_items(TransactWriteItem::builder().update(update).build())
                        .transact_items(TransactWriteItem::builder().put(put).build())
                        .send()
                        .await
                        .unwrap();
                    let used: f64 = out
                        .consumed_capacity()
                        .iter()
                        .filter_map(|c| c.capacity_units())
                        .sum();
                    *units.lock().unwrap() += used;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let transactions = (TENANTS * STEPS_PER_TENANT) as f64;
    let total = *units.lock().unwrap();
    (transactions / elapsed, total / transactions)
}

/// Rounds of each side; the rates reported are over all of them.
const ROUNDS: usize = 3;

/// The rate over rounds of equal work at these rates: the work of all of them over
/// their summed time (the harmonic mean).
fn overall(rates: impl Iterator<Item = f64>) -> f64 {
    let (count, inverse) = rates.fold((0.0, 0.0), |(n, s), r| (n + 1.0, s + 1.0 / r));
    count / inverse
}

fn main() {
    if std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_err() {
        eprintln!("the engine benchmark needs DynamoDB Local: run `eval \"$(localstack/start.sh)\"` first");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = aws_config::load_from_env().await;
        let client = aws_sdk_dynamodb::Client::new(&config);
        // Warm-up: JIT of DynamoDB Local and connection pools, not reported.
        let _ = raw(client.clone()).await;
        // Rounds in the order raw, engine; engine, raw; raw, engine: drift on the
        // machine (DynamoDB Local's speed moves by a third from run to run) hits both
        // sides alike.
        let (mut raw_rounds, mut engine_rounds) = (Vec::new(), Vec::new());
        let mut run = None;
        for round in 0..ROUNDS {
            if round % 2 == 0 {
                raw_rounds.push(raw(client.clone()).await);
            }
            let this = engine(client.clone()).await;
            engine_rounds.push(this.transitions_per_second);
            run = Some(this);
            if round % 2 == 1 {
                raw_rounds.push(raw(client.clone()).await);
            }
        }
        let run = run.expect("at least one round");
        let raw_wcu = raw_rounds[0].1;
        let raw_tps = overall(raw_rounds.iter().map(|r| r.0));
        let (engine_tps, engine_wcu) = (overall(engine_rounds.iter().copied()), run.units_per_transition);
        println!("tenants: {TENANTS}, steps per tenant: {STEPS_PER_TENANT}, concurrency: {CONCURRENCY}, rounds: {ROUNDS}");
        for (i, (engine, raw)) in engine_rounds.iter().zip(&raw_rounds).enumerate() {
            println!("  round {i}: engine {engine:>7.1}/s, raw {:>7.1}/s, ratio {:.2}", raw.0, engine / raw.0);
        }
        println!("engine transitions per second:                  {engine_tps:>8.1}");
        println!("raw 2-item conditional TransactWriteItems per second: {raw_tps:>8.1}");
        println!(
            "ratio engine / raw:                             {:>8.2}",
            engine_tps / raw_tps
        );
        println!("write capacity units per engine transition:     {engine_wcu:>8.2}");
        println!("write capacity units per raw transaction:       {raw_wcu:>8.2}");
        println!(
            "tenant writes per engine transition:            {:>8.2}",
            run.writes_per_transition
        );
        println!("write capacity units per engine transition, by operation and part written:");
        for (part, units) in &run.breakdown {
            println!("  {part:<46} {units:>8.2}");
        }
        println!("stored item sizes of one settled tenant (bytes):");
        for (kind, size) in &run.item_sizes {
            println!("  {kind:<46} {size:>8}");
        }
    });
}
