//! Shared set-up for integration tests: a fresh table on the local DynamoDB per test,
//! tenant specs, and `ScriptedStep`, the test double standing in for real steps.

// The API and CLI tests and the worker tests build their tables with it; the others
// start from an empty table.
#[allow(dead_code)]
pub mod fleet;
// Only the tests of the outbox's sinks post to a receiver.
#[allow(dead_code)]
pub mod receiver;
pub mod tenant_spec;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tenant_orchestrator::domain::{ReleaseVersion, TenantId, TenantSpec};
use tenant_orchestrator::machine::StepKind;
use tenant_orchestrator::record::TenantRecord;
use tenant_orchestrator::step::{Step, StepContext, StepOutcome};
use tenant_orchestrator::store::{table, DynamoStore, TenantStore};
use tenant_orchestrator::worker::{Backoff, Worker, WorkerConfig};

pub fn require_local_aws() {
    assert!(
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok(),
        "integration tests need the local AWS: run `eval \"$(localstack/start.sh)\"` first (scripts/test.sh does it)"
    );
}

pub async fn dynamodb_client() -> aws_sdk_dynamodb::Client {
    require_local_aws();
    let config = aws_config::load_from_env().await;
    tenant_orchestrator::store::client(&config)
}

/// A new, uniquely named table so tests never see each other's items. When the test
/// ends without a failure, the fleet's invariants are checked on the table (what
/// `tenantctl fleet check` does), so every test also shows that it left no tenant
/// stranded, no lease behind and no gap in a history.
pub async fn fresh_store() -> TestStore {
    let client = dynamodb_client().await;
    let name = format!("test-{}", uuid::Uuid::new_v4().simple());
    table::ensure_table(&client, &name).await.expect("table created");
    TestStore(Arc::new(DynamoStore::new(client, name)))
}

/// A test's table; dereferences to the store.
pub struct TestStore(Arc<DynamoStore>);

impl TestStore {
    /// The store itself, for code that takes ownership of an `Arc`.
    #[allow(dead_code)] // the tests that hand the store over as an `Arc` use it
    pub fn arc(&self) -> Arc<DynamoStore> {
        self.0.clone()
    }
}

impl std::ops::Deref for TestStore {
    type Target = Arc<DynamoStore>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let table = self.0.table().to_owned();
        // The test's runtime is blocked in this drop: check from a runtime of its own,
        // with a client of its own.
        let check = std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                let store = DynamoStore::new(dynamodb_client().await, &table);
                store.check_fleet().await
            })
        })
        .join()
        .expect("the fleet check thread ran");
        match check {
            Ok(check) => assert!(
                check.is_sound(),
                "the test left broken fleet invariants: {:#?}",
                check.violations
            ),
            // A test may delete its own table; nothing is left to check then.
            Err(tenant_orchestrator::store::StoreError::Fatal { message, .. })
                if message.contains("does not exist") => {}
            Err(e) => panic!("the fleet check at the end of the test failed: {e}"),
        }
    }
}

pub fn release(v: &str) -> ReleaseVersion {
    ReleaseVersion::parse(v).unwrap()
}

pub fn tenant_id(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

/// Tenant `id` in `region`, environment `test`: see [`tenant_spec::small_tenant`].
pub fn spec(id: &str, region: &str) -> TenantSpec {
    tenant_spec::small_tenant("test", id, region)
}

pub fn fast_worker(owner: &str) -> WorkerConfig {
    WorkerConfig {
        lease_ttl: Duration::from_millis(1500),
        heartbeat: Duration::from_millis(400),
        poll_interval: Duration::from_millis(50),
        concurrency: 4,
        backoff: Backoff {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(100),
            max_attempts: 3,
        },
        step_deadline: Duration::from_secs(30),
        call_timeout: Duration::from_secs(30),
        shutdown_grace: Duration::from_millis(200),
        step_write_delay: Duration::from_millis(300),
        ..WorkerConfig::new(owner)
    }
}

/// One call the double received. A call is recorded when it starts; `ended` is set
/// when it returns or is abandoned (its future dropped), so a run cut short by a lost
/// lease still counts.
#[derive(Debug, Clone)]
#[allow(dead_code)] // the tests that check step runs for overlaps read it
pub struct Call {
    pub tenant: String,
    pub step: StepKind,
    pub worker: String,
    pub fence: u64,
    pub attempt: u32,
    pub started: DateTime<Utc>,
    pub ended: Option<DateTime<Utc>>,
}

#[allow(dead_code)] // the tests that check step runs for overlaps read it
impl Call {
    /// Whether this call and `other` ran at the same moment for the same tenant
    /// under different leases.
    pub fn overlaps(&self, other: &Call) -> bool {
        let end = |c: &Call| c.ended.unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.tenant == other.tenant
            && (self.worker != other.worker || self.fence != other.fence)
            && self.started < end(other)
            && other.started < end(self)
    }
}

/// Every pair of calls (any steps) that ran at once for one tenant under two leases.
#[allow(dead_code)] // the tests that check step runs for overlaps read it
pub fn overlapping_calls(calls: &[Call]) -> Vec<(Call, Call)> {
    let mut found = vec![];
    for (i, a) in calls.iter().enumerate() {
        for b in &calls[i + 1..] {
            if a.overlaps(b) {
                found.push((a.clone(), b.clone()));
            }
        }
    }
    found
}

/// Sets the end of a recorded call when the run returns or is dropped.
struct CallEnd<'a> {
    calls: &'a Mutex<Vec<Call>>,
    index: usize,
}

impl Drop for CallEnd<'_> {
    fn drop(&mut self) {
        if let Ok(mut calls) = self.calls.lock() {
            calls[self.index].ended = Some(Utc::now());
        }
    }
}

/// Test double for the bake's health checks: every tenant is healthy.
#[allow(dead_code)] // the tests that run a controller with workers use it
pub struct HealthyProbeDouble;

#[async_trait]
impl tenant_orchestrator::ports::TenantProbe for HealthyProbeDouble {
    async fn probe(
        &self,
        _tenant: &tenant_orchestrator::domain::TenantSpec,
        _release: &tenant_orchestrator::domain::ReleaseVersion,
    ) -> tenant_orchestrator::ports::TenantHealth {
        tenant_orchestrator::ports::TenantHealth::Healthy { alarms: Vec::new() }
    }
}

/// Test double for the real steps: succeeds by default, or plays scripted outcomes
/// per (tenant, step), and records every call with its timing.
#[derive(Default)]
pub struct ScriptedStep {
    calls: Mutex<Vec<Call>>,
    script: Mutex<HashMap<(String, StepKind), VecDeque<StepOutcome>>>,
    delays: Mutex<HashMap<StepKind, Duration>>,
    outages: Mutex<HashMap<String, chrono::Duration>>,
}

impl ScriptedStep {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The next runs of `step` for `tenant` return these outcomes, in order.
    #[allow(dead_code)] // not every test binary scripts or reads the double
    pub fn script(&self, tenant: &str, step: StepKind, outcomes: Vec<StepOutcome>) {
        self.script
            .lock()
            .unwrap()
            .entry((tenant.into(), step))
            .or_default()
            .extend(outcomes);
    }

    #[allow(dead_code)] // not every test binary scripts or reads the double
    pub fn delay(&self, step: StepKind, d: Duration) {
        self.delays.lock().unwrap().insert(step, d);
    }

    /// Verify of `tenant` reports an outage of `seconds`, ended when it runs, as the
    /// real verify does for a tenant it saw down that long.
    #[allow(dead_code)] // not every test binary scripts or reads the double
    pub fn outage(&self, tenant: &str, seconds: i64) {
        (self.outages.lock().unwrap()).insert(tenant.into(), chrono::Duration::seconds(seconds));
    }

    #[allow(dead_code)] // not every test binary scripts or reads the double
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    #[allow(dead_code)] // not every test binary scripts or reads the double
    pub fn calls_of(&self, tenant: &str, step: StepKind) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.tenant == tenant && c.step == step)
            .count()
    }
}

#[async_trait]
impl Step for ScriptedStep {
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
        let started = Utc::now();
        let index = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(Call {
                tenant: ctx.tenant.id().to_string(),
                step: ctx.step,
                worker: ctx.worker.to_owned(),
                fence: ctx.fence,
                attempt: ctx.attempt,
                started,
                ended: None,
            });
            calls.len() - 1
        };
        let _end = CallEnd {
            calls: &self.calls,
            index,
        };
        let delay = self.delays.lock().unwrap().get(&ctx.step).copied();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let scripted = self
            .script
            .lock()
            .unwrap()
            .get_mut(&(ctx.tenant.id().to_string(), ctx.step))
            .and_then(|q| q.pop_front());
        scripted.unwrap_or_else(|| {
            let mut facts = ctx.tenant.facts.clone();
            facts.progress = None;
            let outage = self
                .outages
                .lock()
                .unwrap()
                .get(&ctx.tenant.id().to_string())
                .copied();
            if let Some(length) = outage.filter(|_| ctx.step == StepKind::Verify) {
                let now = Utc::now();
                facts.begin_outage(
                    now - length,
                    tenant_orchestrator::record::OutageCause::FailedProbe,
                );
                facts.end_outage(now);
            }
            StepOutcome::done(format!("{} done", ctx.step), facts)
        })
    }
}

#[allow(dead_code)] // used by the tests that run workers in the background
pub async fn wait_for_state(
    store: &dyn TenantStore,
    id: &TenantId,
    state: &str,
    within: Duration,
) -> TenantRecord {
    let deadline = std::time::Instant::now() + within;
    loop {
        let r = store.load(id).await.unwrap();
        if r.state.name() == state {
            return r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "tenant {id} did not reach {state} within {within:?}; it is {} (last error: {:?})",
            r.state.label(),
            r.last_error
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the worker pass by pass until nothing has been due for 0.7 s (longer than any
/// poll or backoff delay the tests use).
pub async fn drain(w: &Worker) {
    let mut idle_since = std::time::Instant::now();
    for _ in 0..3000 {
        if w.run_once().await.unwrap() > 0 {
            idle_since = std::time::Instant::now();
        } else if idle_since.elapsed() > Duration::from_millis(700) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("work never drained");
}

/// Fails the test if any fleet invariant is broken (what `tenantctl fleet check`
/// reports): run at the end of integration tests, once the fleet has settled.
#[allow(dead_code)] // used by the tests that run workers in the background
pub async fn assert_fleet_sound(store: &DynamoStore) {
    let check = store.check_fleet().await.expect("the fleet check ran");
    assert!(
        check.is_sound(),
        "fleet invariants broken: {:#?}",
        check.violations
    );
}

/// A release registry double in which only `published` has an image, in every region.
#[allow(dead_code)] // the rollout and API tests check releases; the others do not
pub struct RegistryDouble {
    pub published: &'static str,
}

#[async_trait]
impl tenant_orchestrator::ports::ReleaseRegistry for RegistryDouble {
    async fn check_published(
        &self,
        release: &ReleaseVersion,
        region: &tenant_orchestrator::domain::Region,
    ) -> Result<(), tenant_orchestrator::ports::ReleaseCheckError> {
        match release.to_string() == self.published {
            true => Ok(()),
            false => Err(tenant_orchestrator::ports::ReleaseCheckError::Unpublished(
                format!("release {release} has no image in {region}; publish it first"),
            )),
        }
    }
}

/// A release registry double that cannot be asked, as when ECR throttles or is down.
#[allow(dead_code)] // the API tests use it; the others do not
pub struct RegistryDownDouble;

#[async_trait]
impl tenant_orchestrator::ports::ReleaseRegistry for RegistryDownDouble {
    async fn check_published(
        &self,
        release: &ReleaseVersion,
        _region: &tenant_orchestrator::domain::Region,
    ) -> Result<(), tenant_orchestrator::ports::ReleaseCheckError> {
        Err(tenant_orchestrator::ports::ReleaseCheckError::Unavailable(
            format!("the artifact registry could not say whether release {release} is published: ThrottlingException: Rate exceeded; try again"),
        ))
    }
}
