//! Engine throughput against raw DynamoDB writes, side by side on one DynamoDB Local.
//!
//!   eval "$(localstack/start.sh)" && cargo bench --bench engine
//!
//! Prints transitions per second through the whole engine (work index, lease, step,
//! machine, conditional transaction with its history event, lease release), raw
//! 2-item conditional `TransactWriteItems` per second at the same concurrency, their
//! ratio, and write capacity units per transition from `ReturnConsumedCapacity`.
//! The step is a test double that returns at once, so only the engine is measured.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnConsumedCapacity, TransactWriteItem, Update};
use chrono::Utc;
use tenant_orchestrator::app::TenantCommands;
use tenant_orchestrator::domain::{
    Environment, Group, Hostname, Region, ReleaseVersion, TenantId, TenantSpec, Tier,
};
use tenant_orchestrator::record::Actor;
use tenant_orchestrator::step::{Step, StepContext, StepOutcome, StepRegistry};
use tenant_orchestrator::store::{table, DynamoStore, ListQuery, TenantStore};
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
    let id = format!("bench-{i:05}");
    TenantSpec {
        id: TenantId::parse(&id).unwrap(),
        region: Region::parse(if i % 2 == 0 { "us-east-1" } else { "eu-west-1" }).unwrap(),
        environment: Environment::parse("bench").unwrap(),
        group: Group::default_group(),
        tier: Tier::Small,
        hostnames: vec![Hostname::parse(&format!("{id}.example.com")).unwrap()],
        pinned_release: None,
        maintenance: None,
        platform: None,
        pinned_platform: None,
    }
}

async fn engine(client: aws_sdk_dynamodb::Client) -> (f64, f64) {
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
    let before = store.consumed_write_units();
    let config = WorkerConfig {
        concurrency: CONCURRENCY,
        poll_interval: Duration::from_millis(20),
        ..WorkerConfig::new("bench")
    };
    let worker = Worker::new(store.clone(), StepRegistry::all(Arc::new(InstantStep)), config);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let start = Instant::now();
    let running = tokio::spawn(async move { worker.run(rx).await });
    loop {
        let left = store
            .list(&ListQuery {
                state: Some("Provisioning".into()),
                limit: Some(1),
                ..Default::default()
            })
            .await
            .unwrap();
        if left.items.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    tx.send(true).unwrap();
    running.await.unwrap().unwrap();
    let transitions = (TENANTS * STEPS_PER_TENANT) as f64;
    (
        transitions / elapsed,
        (store.consumed_write_units() - before) / transitions,
    )
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
        let (raw_tps, raw_wcu) = raw(client.clone()).await;
        let (engine_tps, engine_wcu) = engine(client.clone()).await;
        println!("tenants: {TENANTS}, steps per tenant: {STEPS_PER_TENANT}, concurrency: {CONCURRENCY}");
        println!("engine transitions per second:                  {engine_tps:>8.1}");
        println!("raw 2-item conditional TransactWriteItems per second: {raw_tps:>8.1}");
        println!(
            "ratio engine / raw:                             {:>8.2}",
            engine_tps / raw_tps
        );
        println!("write capacity units per engine transition:     {engine_wcu:>8.2}");
        println!("write capacity units per raw transaction:       {raw_wcu:>8.2}");
    });
}
