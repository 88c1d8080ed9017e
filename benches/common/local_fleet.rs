//! What the fleet-scale benchmarks (`scale_out`, `idle_cost`) share: the local
//! DynamoDB, fresh tables, their tenants, a step test double that returns at once,
//! and a settled fleet seeded through the store's own create path.
#![allow(dead_code)] // each benchmark uses its part

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use tenant_orchestrator::domain::{ReleaseVersion, TenantId, TenantSpec};
use tenant_orchestrator::machine::{TenantEvent, TenantState};
use tenant_orchestrator::record::{Actor, Cause, TenantRecord, Transition};
use tenant_orchestrator::step::{Step, StepContext, StepOutcome};
use tenant_orchestrator::store::{table, DynamoStore, TenantStore};

pub const REGIONS: [&str; 4] = ["us-east-1", "eu-west-1", "ap-southeast-2", "us-west-2"];

/// Exits with a message saying how to start DynamoDB Local when it is not configured.
pub fn require_local_aws(bench: &str) {
    if std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_err() {
        eprintln!("the {bench} benchmark needs DynamoDB Local: run `eval \"$(localstack/start.sh)\"` first");
        std::process::exit(2);
    }
}

/// A DynamoDB client configured as `tenantctl` configures its own.
pub async fn client() -> aws_sdk_dynamodb::Client {
    let config = aws_config::load_from_env().await;
    tenant_orchestrator::store::client(&config)
}

/// A new, uniquely named state table.
pub async fn fresh_table(client: &aws_sdk_dynamodb::Client, prefix: &str) -> String {
    let name = format!("bench-{prefix}-{}", uuid::Uuid::new_v4().simple());
    table::ensure_table(client, &name).await.unwrap();
    name
}

pub fn tenant_id(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

/// Tenant `i` of a benchmark fleet, spread over [`REGIONS`].
pub fn spec(prefix: &str, i: usize) -> TenantSpec {
    crate::fleet_spec::bench_spec(&format!("{prefix}-{i:06}"), REGIONS[i % REGIONS.len()])
}

/// Test double: every step succeeds at once, keeping the facts it was given.
pub struct InstantStep;

#[async_trait]
impl Step for InstantStep {
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
        StepOutcome::done("instant", ctx.tenant.facts.clone())
    }
}

/// Runs `make(i)` for every `i` below `n`, `concurrency` at a time.
pub async fn for_each_concurrently<F, Fut>(n: usize, concurrency: usize, make: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut running = tokio::task::JoinSet::new();
    for i in 0..n {
        if running.len() >= concurrency {
            running.join_next().await.unwrap().unwrap();
        }
        running.spawn(make(i));
    }
    while let Some(done) = running.join_next().await {
        done.unwrap();
    }
}

/// Writes `n` Active tenants on release 1.0.0 with the facts a provisioning leaves
/// (image, stack, Helm revision, certificate, routed hostname), through the store's
/// own create path (`concurrency` at a time), and returns how long it took.
pub async fn seed_settled(store: &Arc<DynamoStore>, prefix: &str, n: usize, concurrency: usize) -> Duration {
    let start = Instant::now();
    let (store, prefix) = (store.clone(), prefix.to_owned());
    for_each_concurrently(n, concurrency, move |i| {
        let (store, spec) = (store.clone(), spec(&prefix, i));
        async move {
            let release = ReleaseVersion::parse("1.0.0").unwrap();
            let mut record = TenantRecord::new(
                spec,
                TenantState::Active {
                    release: release.clone(),
                    failed_upgrade: None,
                },
                Utc::now(),
            );
            let id = record.id().to_string();
            let facts = &mut record.facts;
            facts.image = Some(format!(
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:{:064x}",
                i
            ));
            facts.stack_id = Some(format!(
                "arn:aws:cloudformation:us-east-1:123456789012:stack/tenant-{id}/{}",
                uuid::Uuid::new_v4()
            ));
            for (k, v) in [
                ("DbEndpoint", "db"),
                ("DbSecretArn", "secret"),
                ("TargetGroupArn", "tg"),
            ] {
                facts.stack_outputs.insert(k.into(), format!("{v}-{id}"));
            }
            facts.helm_revision = Some(1);
            facts.certificates = vec![format!(
                "arn:aws:acm:us-east-1:123456789012:certificate/{}",
                uuid::Uuid::new_v4()
            )];
            facts.routed_hostnames = record.spec.hostnames.clone();
            let first = Transition::new(
                &TenantState::initial(),
                Cause::Event(TenantEvent::Provision { release }),
                Actor::operator("bench"),
            );
            store.create(&record, first).await.unwrap();
        }
    })
    .await;
    start.elapsed()
}

pub fn per_second(count: f64, d: Duration) -> f64 {
    count / d.as_secs_f64()
}
