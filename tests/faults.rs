//! The product under faults between it and AWS: workers drive tenants with the real
//! artifact, infrastructure, backup, configuration and certificate steps on moto
//! (ECR, CloudFormation, RDS, SSM, ACM, Route 53, ELBv2), and the tenant table on
//! DynamoDB Local, through `localstack/fault_proxy.py`, which throttles, answers 503,
//! goes dark, delays and drops answers after the request was applied. The Helm and
//! verify steps, which do not talk to AWS, are `ScriptedStep` test doubles here (the `steps`
//! test binary covers them with the Helm stand-in).

mod common;
#[path = "faults/dynamodb_restart.rs"]
mod dynamodb_restart;
mod fault_proxy_support;
// The shared ALB and hosted zone the certificate step needs.
#[allow(dead_code)]
#[path = "steps/certificates/platform.rs"]
mod platform;
// Only the ECR helpers are used here.
#[allow(dead_code)]
#[path = "steps/aws_support.rs"]
mod aws_support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tenant_orchestrator::app::TenantCommands;
use tenant_orchestrator::domain::{Hostname, TenantId};
use tenant_orchestrator::machine::{StepKind, TenantEvent};
use tenant_orchestrator::record::Actor;
use tenant_orchestrator::step::StepRegistry;
use tenant_orchestrator::steps::artifact::{ArtifactConfig, CheckArtifact};
use tenant_orchestrator::steps::backup::{BackupConfig, SnapshotDatabase};
use tenant_orchestrator::steps::certificates::{AwsCertificateCloud, CertificateConfig, CertificateStep};
use tenant_orchestrator::steps::config::{DeleteConfig, WriteConfig};
use tenant_orchestrator::steps::infra::{self, InfraConfig};
use tenant_orchestrator::steps::{AwsClients, RegionSettings, StepsConfig};
use tenant_orchestrator::store::{table, DynamoStore, TenantStore};
use tenant_orchestrator::worker::{Backoff, Worker, WorkerConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use common::{
    assert_fleet_sound, dynamodb_client, fast_worker, overlapping_calls, release, spec, ScriptedStep,
};
use fault_proxy_support::{quick_store_retries, sdk_config_through, FaultProxy};

const REGION: &str = "us-east-1";
/// Longest a test waits for the tenants (they take 10–40 s on a busy CI machine).
const CONVERGE: Duration = Duration::from_secs(80);

/// The worker settings of these tests: the fast test timings, with a lease and a
/// retry budget that outlast the injected faults as production's defaults do (a
/// throttled call can spend seconds in the SDK's own retries), and one tenant at a
/// time: moto's RDS models can fail a stack with "OrderedDict mutated during
/// iteration" when two stacks with clusters are created at once.
fn worker_config(owner: &str) -> WorkerConfig {
    WorkerConfig {
        concurrency: 1,
        lease_ttl: Duration::from_secs(6),
        heartbeat: Duration::from_secs(2),
        backoff: Backoff {
            // At least 13 s of retries in all: longer than the outage test's 12 s.
            base: Duration::from_millis(200),
            cap: Duration::from_secs(5),
            max_attempts: 10,
        },
        ..fast_worker(owner)
    }
}

fn region_settings() -> RegionSettings {
    RegionSettings {
        db_subnet_group: "tenants-db".into(),
        db_security_group_ids: vec!["sg-0a1b2c3d4e5f60001".into()],
        oidc_provider_arn:
            "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/5C7E8A1B2D3F4A5B6C7D8E9F0A1B2C3D"
                .into(),
        oidc_provider_host: "oidc.eks.us-east-1.amazonaws.com/id/5C7E8A1B2D3F4A5B6C7D8E9F0A1B2C3D".into(),
        ..Default::default()
    }
}

/// One test's world: a fresh table, an ECR repository with releases 1.0.0 and 1.1.0,
/// an ALB and a hosted zone for the certificates, a proxy in front of moto and one in
/// front of DynamoDB Local, and the store both through the proxy (for workers) and
/// direct (for the test's own commands and reads).
struct Rig {
    aws_proxy: FaultProxy,
    dynamodb_proxy: FaultProxy,
    direct: Arc<DynamoStore>,
    proxied: Arc<DynamoStore>,
    /// The store the test's own commands go through: `direct` unless the test puts
    /// the operator behind the DynamoDB proxy too.
    operator: Arc<DynamoStore>,
    steps: StepRegistry,
    stand_ins: Arc<ScriptedStep>,
    shutdown: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
    /// Unique per test: the tenant ids' prefix.
    uid: String,
    /// With the real steps: the ALB and hosted zone the tenants' hostnames live in.
    platform: Option<Arc<platform::Platform>>,
}

impl Rig {
    /// With the real AWS steps, or with `ScriptedStep` for every step (`real_steps`
    /// false: only the DynamoDB side is under test).
    async fn new(seed: u64, real_steps: bool) -> Rig {
        // The product's log on a failure, filtered by RUST_LOG (errors only by default).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let aws_proxy = FaultProxy::for_aws(seed).await;
        let dynamodb_proxy = FaultProxy::for_dynamodb(seed + 1).await;
        let client = dynamodb_client().await;
        let name = format!("test-{}", uuid::Uuid::new_v4().simple());
        table::ensure_table(&client, &name).await.expect("table created");
        // The product's client (its interceptors among it), through the proxy.
        let product_client = tenant_orchestrator::store::client(&aws_config::load_from_env().await);
        let proxied_client = aws_sdk_dynamodb::Client::from_conf(
            product_client
                .config()
                .to_builder()
                .endpoint_url(dynamodb_proxy.url())
                .retry_config(quick_store_retries())
                .build(),
        );
        let direct = Arc::new(DynamoStore::new(client, name.clone()));
        let proxied = Arc::new(DynamoStore::new(proxied_client, name));
        let stand_ins = ScriptedStep::new();
        let uid = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        let mut platform = None;
        let steps = if real_steps {
            let repository = format!("app-{uid}");
            aws_support::create_repository(REGION, &repository).await;
            for tag in ["1.0.0", "1.1.0"] {
                aws_support::push_image(REGION, &repository, tag).await;
            }
            let shared = platform::Platform::build(1).await;
            let config = Arc::new(StepsConfig {
                artifact: ArtifactConfig {
                    repository,
                    registry_region: None,
                },
                backup: BackupConfig {
                    keep_snapshots: 5,
                    poll_seconds: 1,
                },
                infra: InfraConfig {
                    poll_seconds: 0,
                    termination_protection: false,
                    ..InfraConfig::default()
                },
                certificates: CertificateConfig {
                    poll_seconds: 1,
                    gather_seconds: 1,
                    ..CertificateConfig::default()
                },
                regions: [(
                    REGION.to_owned(),
                    RegionSettings {
                        listener_arns: shared.listeners.clone(),
                        hosted_zone_id: shared.hosted_zone_id.clone(),
                        ..region_settings()
                    },
                )]
                .into(),
                ..Default::default()
            });
            platform = Some(shared);
            let aws = Arc::new(AwsClients::new(sdk_config_through(&aws_proxy).await));
            let registry = StepRegistry::all(stand_ins.clone())
                .with(
                    StepKind::CheckArtifact,
                    Arc::new(CheckArtifact::new(config.artifact.clone(), aws.clone())),
                )
                .with(
                    StepKind::Backup,
                    Arc::new(SnapshotDatabase::before_upgrade(
                        config.backup.clone(),
                        aws.clone(),
                    )),
                )
                .with(
                    StepKind::FinalBackup,
                    Arc::new(SnapshotDatabase::final_backup(config.backup.clone(), aws.clone())),
                )
                .with(StepKind::WriteConfig, Arc::new(WriteConfig::new(aws.clone())))
                .with(StepKind::DeleteConfig, Arc::new(DeleteConfig::new(aws.clone())));
            let certificates = Arc::new(CertificateStep::new(
                config.clone(),
                Arc::new(AwsCertificateCloud::new(aws.clone())),
                proxied.clone(),
            ));
            let registry = registry
                .with(StepKind::EnsureCertificates, certificates.clone())
                .with(StepKind::ReleaseCertificates, certificates);
            infra::register(registry, config, aws, Default::default())
        } else {
            StepRegistry::all(stand_ins.clone())
        };
        Rig {
            aws_proxy,
            dynamodb_proxy,
            operator: direct.clone(),
            direct,
            proxied,
            steps,
            stand_ins,
            shutdown: watch::channel(false).0,
            workers: Vec::new(),
            uid,
            platform,
        }
    }

    fn ids(&self, count: usize) -> Vec<TenantId> {
        (0..count)
            .map(|i| TenantId::parse(&format!("f{}-{i}", self.uid)).unwrap())
            .collect()
    }

    /// Starts a worker on `store` (the proxied one, unless a test wants one worker
    /// to talk to DynamoDB directly).
    fn start_worker(&mut self, store: Arc<DynamoStore>, config: WorkerConfig) {
        let worker = Worker::new(store, self.steps.clone(), config);
        let shutdown = self.shutdown.subscribe();
        self.workers.push(tokio::spawn(async move {
            worker.run(shutdown).await.expect("the worker stops cleanly");
        }));
    }

    fn start_workers(&mut self, count: usize) {
        for i in 0..count {
            self.start_worker(self.proxied.clone(), worker_config(&format!("w{i}")));
        }
    }

    async fn create(&self, ids: &[TenantId]) {
        let commands = TenantCommands::new(self.operator.clone());
        for id in ids {
            let mut spec = spec(id.as_str(), REGION);
            if let Some(platform) = &self.platform {
                spec.hostnames = vec![Hostname::parse(&platform.hostname(id.as_str())).unwrap()];
            }
            commands
                .create(spec, release("1.0.0"), &Actor::operator("test"))
                .await
                .expect("tenant created");
        }
    }

    async fn upgrade(&self, ids: &[TenantId], to: &str) {
        let commands = TenantCommands::new(self.operator.clone());
        for id in ids {
            commands
                .command(
                    id,
                    TenantEvent::Upgrade { release: release(to) },
                    &Actor::operator("test"),
                )
                .await
                .expect("upgrade accepted");
        }
    }

    async fn deprovision(&self, ids: &[TenantId]) {
        let commands = TenantCommands::new(self.operator.clone());
        for id in ids {
            commands
                .command(id, TenantEvent::Deprovision, &Actor::operator("test"))
                .await
                .expect("deprovision accepted");
        }
    }

    /// Waits until every tenant is Deleted, failing early on a Failed tenant.
    async fn deleted(&self, ids: &[TenantId]) {
        let deadline = std::time::Instant::now() + CONVERGE;
        for id in ids {
            loop {
                let r = self.direct.load(id).await.unwrap();
                assert_ne!(r.state.name(), "Failed", "tenant {id} failed: {:?}", r.last_error);
                if r.state.name() == "Deleted" {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "tenant {id} is not Deleted after {CONVERGE:?}: {} (last error: {:?})",
                    r.state.label(),
                    r.last_error
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Waits until every tenant is Active on `on` and no worker holds it any more
    /// (released, or expired when the release itself was refused),
    /// failing early on a Failed tenant. The wait for the lease keeps the next operator
    /// command from racing the worker's lease release: that race is the worker tests'
    /// subject, not a fault between the product and AWS.
    async fn converge(&self, ids: &[TenantId], on: &str) {
        let deadline = std::time::Instant::now() + CONVERGE;
        for id in ids {
            loop {
                let r = self.direct.load(id).await.unwrap();
                assert_ne!(
                    r.state.name(),
                    "Failed",
                    "tenant {id} failed: {:?}; faults injected: {} / {}",
                    r.last_error,
                    self.aws_proxy.state().await["injected"],
                    self.dynamodb_proxy.state().await["injected"]
                );
                if r.state.name() == "Active"
                    && r.state.current_release().map(|v| v.to_string()).as_deref() == Some(on)
                {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "tenant {id} is not Active on {on} after {CONVERGE:?}: {} (last error: {:?})",
                    r.state.label(),
                    r.last_error
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// No step of any tenant ever failed for good: no Failed, no rollback, no upgrade
    /// that fell back to its old release.
    async fn assert_never_failed(&self, ids: &[TenantId]) {
        for id in ids {
            let history = self.direct.history(id, 0, 500).await.unwrap().items;
            let failed: Vec<_> = history
                .iter()
                .filter(|e| {
                    e.cause == "StepFailed" || e.to.starts_with("Failed") || e.to.starts_with("RollingBack")
                })
                .collect();
            assert!(failed.is_empty(), "tenant {id} saw a failure: {failed:#?}");
        }
    }

    /// Stops the workers and checks the fleet's invariants on the table.
    async fn stop(mut self) {
        self.stop_workers().await;
        assert_fleet_sound(&self.direct).await;
    }

    async fn stop_workers(&mut self) {
        let _ = self.shutdown.send(true);
        for worker in self.workers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(15), worker).await;
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Throttling and 503s on a share of the calls to every AWS service and DynamoDB.
fn flaky(throttle: f64, unavailable: f64) -> serde_json::Value {
    json!([
        {"fault": "throttle", "probability": throttle},
        {"fault": "unavailable", "probability": unavailable},
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn provisioning_and_upgrade_survive_throttling_and_503s_everywhere() {
    // The recorder /metrics renders, in place before the first call, as in `serve`.
    tenant_orchestrator::api::metrics::handle();
    let mut rig = Rig::new(11, true).await;
    let ids = rig.ids(3);
    rig.aws_proxy.set_rules(flaky(0.15, 0.1)).await;
    rig.dynamodb_proxy
        .set_rules(json!([
            {"fault": "throttle", "probability": 0.1},
            {"fault": "throttle", "probability": 0.05, "code": "ThrottlingException"},
            {"fault": "unavailable", "probability": 0.1},
        ]))
        .await;
    rig.start_workers(1);

    rig.create(&ids).await;
    rig.converge(&ids, "1.0.0").await;
    rig.upgrade(&ids, "1.1.0").await;
    rig.converge(&ids, "1.1.0").await;

    rig.assert_never_failed(&ids).await;
    for (proxy, what) in [(&rig.aws_proxy, "AWS"), (&rig.dynamodb_proxy, "DynamoDB")] {
        for kind in ["throttle", "unavailable"] {
            assert!(
                proxy.injected(kind).await > 0,
                "no {kind} was injected into {what}"
            );
        }
    }
    // Every throttle the SDK rode out is on /metrics, by service: as many as the
    // proxies injected, each counted once, and none made up.
    rig.stop_workers().await;
    let metrics = tenant_orchestrator::api::metrics::handle().render();
    let throttled = |dynamodb: bool| -> u64 {
        (metrics.lines())
            .filter(|l| l.starts_with("tenantctl_aws_requests_total{") && l.contains("outcome=\"throttled\""))
            .filter(|l| l.contains("service=\"dynamodb\"") == dynamodb)
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(
        throttled(true),
        rig.dynamodb_proxy.injected("throttle").await,
        "DynamoDB throttles on /metrics against those injected:\n{metrics}"
    );
    assert_eq!(
        throttled(false),
        rig.aws_proxy.injected("throttle").await,
        "AWS throttles on /metrics against those injected:\n{metrics}"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenants_converge_after_a_ten_second_outage_of_every_answer() {
    let mut rig = Rig::new(21, true).await;
    let ids = rig.ids(2);
    rig.start_workers(1);
    // AWS goes dark first, so the steps meet the outage; once a step has, DynamoDB
    // goes dark too, and for ten seconds nothing answers at all.
    rig.aws_proxy.outage(12.0).await;
    rig.create(&ids).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while rig.aws_proxy.injected("outage_unavailable").await == 0 {
        assert!(std::time::Instant::now() < deadline, "no step called AWS");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rig.dynamodb_proxy.outage(10.0).await;
    let dark = std::time::Instant::now();

    rig.converge(&ids, "1.0.0").await;

    assert!(
        dark.elapsed() >= Duration::from_secs(10),
        "the tenants cannot finish while AWS does not answer"
    );
    rig.assert_never_failed(&ids).await;
    assert!(rig.dynamodb_proxy.injected("outage_unavailable").await > 0);
    assert!(rig.aws_proxy.injected("outage_unavailable").await > 0);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn answers_lost_after_every_step_write_was_applied_cause_no_failure() {
    let mut rig = Rig::new(31, true).await;
    let ids = rig.ids(2);
    // The first answers of each write the steps make are lost after AWS applied it.
    let writes = [
        ("cloudformation", "CreateStack"),
        ("cloudformation", "CreateChangeSet"),
        ("cloudformation", "DeleteChangeSet"),
        ("ssm", "PutParameter"),
        ("rds", "CreateDBClusterSnapshot"),
        ("acm", "RequestCertificate"),
        ("route53", "ChangeResourceRecordSets"),
        ("elasticloadbalancing", "AddListenerCertificates"),
        ("elasticloadbalancing", "RemoveListenerCertificates"),
        ("acm", "DeleteCertificate"),
        ("ssm", "DeleteParameters"),
        ("cloudformation", "DeleteStack"),
    ];
    let rules: Vec<_> = writes
        .iter()
        .map(|(service, operation)| {
            json!({"fault": "drop_answer", "service": service, "operation": operation, "count": 2})
        })
        .collect();
    rig.aws_proxy.set_rules(json!(rules)).await;
    rig.start_workers(1);

    rig.create(&ids).await;
    rig.converge(&ids, "1.0.0").await;
    rig.upgrade(&ids, "1.1.0").await;
    rig.converge(&ids, "1.1.0").await;
    rig.deprovision(&ids).await;
    rig.deleted(&ids).await;

    rig.assert_never_failed(&ids).await;
    let state = rig.aws_proxy.state().await;
    for (service, operation) in writes {
        let dropped = state["injected"]["drop_answer"][format!("{service}:{operation}")]
            .as_u64()
            .unwrap_or(0);
        assert!(
            dropped > 0,
            "no answer to {service}:{operation} was dropped: {state}"
        );
    }
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn answers_lost_after_dynamodb_applied_a_write_cause_no_failure() {
    let mut rig = Rig::new(51, false).await;
    let ids = rig.ids(4);
    // Workers and the operator alike lose some answers to their writes after
    // DynamoDB applied them; the SDK's retry then finds its own write in place.
    rig.operator = rig.proxied.clone();
    rig.dynamodb_proxy
        .set_rules(json!([
            {"fault": "drop_answer", "service": "dynamodb", "operation": "TransactWriteItems", "probability": 0.3, "count": 8},
            {"fault": "drop_answer", "service": "dynamodb", "operation": "UpdateItem", "probability": 0.5, "count": 8},
        ]))
        .await;
    rig.start_workers(2);

    rig.create(&ids).await;
    rig.converge(&ids, "1.0.0").await;
    rig.upgrade(&ids, "1.1.0").await;
    rig.converge(&ids, "1.1.0").await;

    rig.assert_never_failed(&ids).await;
    let state = rig.dynamodb_proxy.state().await;
    for operation in ["TransactWriteItems", "UpdateItem"] {
        let dropped = state["injected"]["drop_answer"][format!("dynamodb:{operation}")]
            .as_u64()
            .unwrap_or(0);
        assert!(dropped > 0, "no answer to {operation} was dropped: {state}");
    }
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_with_slow_dynamodb_never_runs_a_step_at_the_same_time_as_another() {
    let mut rig = Rig::new(41, false).await;
    let ids = rig.ids(6);
    rig.stand_ins.delay(StepKind::Deploy, Duration::from_millis(300));
    rig.stand_ins.delay(StepKind::Verify, Duration::from_millis(200));
    rig.dynamodb_proxy
        .set_rules(json!([{"fault": "latency", "latency_ms": 450}]))
        .await;
    rig.start_worker(rig.proxied.clone(), fast_worker("slow"));
    rig.create(&ids).await;
    // The quick worker joins once the slow one is at work, so both hold tenants.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !rig.stand_ins.calls().iter().any(|c| c.worker == "slow") {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow worker never ran a step"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rig.start_worker(rig.direct.clone(), fast_worker("quick"));

    rig.converge(&ids, "1.0.0").await;

    assert!(rig.dynamodb_proxy.injected("latency").await > 0);
    let calls = rig.stand_ins.calls();
    assert!(
        calls.iter().any(|c| c.worker == "quick"),
        "the quick worker ran no step, so no two workers met"
    );
    // Calls are recorded from start to end, runs abandoned on a lost lease included.
    let overlaps = overlapping_calls(&calls);
    assert!(overlaps.is_empty(), "a step ran twice at once: {overlaps:#?}");
    rig.stop().await;
}

/// An answer that never comes (a connection gone dark) costs the store one attempt
/// timeout, not the call: the product's client abandons the attempt and tries again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dynamodb_answer_that_never_comes_costs_one_attempt_timeout_not_the_call() {
    use tenant_orchestrator::store::ATTEMPT_TIMEOUT;
    let rig = Rig::new(61, false).await;
    let ids = rig.ids(1);
    rig.create(&ids).await;
    // The next read through the proxy is held for ten minutes before it is forwarded.
    rig.dynamodb_proxy
        .set_rules(json!([
            {"fault": "latency", "service": "dynamodb", "operation": "GetItem", "latency_ms": 600_000, "count": 1},
        ]))
        .await;
    let started = std::time::Instant::now();
    let loaded = tokio::time::timeout(ATTEMPT_TIMEOUT * 3, rig.proxied.load(&ids[0]))
        .await
        .expect("the held attempt was abandoned and the read tried again")
        .expect("the second attempt answered");
    assert_eq!(loaded.id(), &ids[0]);
    assert!(
        started.elapsed() >= ATTEMPT_TIMEOUT,
        "the read came back before its first attempt could time out: the rule did not hold it"
    );
    assert_eq!(rig.dynamodb_proxy.injected("latency").await, 1);
    rig.stop().await;
}
