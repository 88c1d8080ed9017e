//! A fleet on the local DynamoDB for rollout tests: Active tenants, in-process workers
//! running `ScriptedStep` (the step test double) and rollout controllers, all stopped
//! when the fleet is dropped.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use tenant_orchestrator::app::RolloutCommands;
use tenant_orchestrator::domain::{ReleaseVersion, RolloutId, RolloutSpec, TenantSpec};
use tenant_orchestrator::machine::{TenantEvent, TenantState};
use tenant_orchestrator::ports::{Relay, TenantHealth, TenantProbe, Wakeup};
use tenant_orchestrator::record::{Actor, Cause, RolloutMember, RolloutRecord, TenantRecord, Transition};
use tenant_orchestrator::rollout::{Controller, ControllerConfig};
use tenant_orchestrator::step::StepRegistry;
use tenant_orchestrator::store::{RolloutStore, TenantStore};
use tenant_orchestrator::worker::Worker;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::common::*;

/// Test double for bake health checks: every tenant is healthy unless marked sick.
#[derive(Default)]
pub struct HealthDouble {
    sick: Mutex<HashSet<String>>,
    checks: Mutex<usize>,
}

impl HealthDouble {
    #[allow(dead_code)] // the dashboard tests drive no rollout to its end
    pub fn make_sick(&self, tenant: &str) {
        self.sick.lock().unwrap().insert(tenant.to_owned());
    }

    #[allow(dead_code)] // the dashboard tests drive no rollout to its end
    pub fn checks(&self) -> usize {
        *self.checks.lock().unwrap()
    }
}

#[async_trait]
impl TenantProbe for HealthDouble {
    async fn probe(&self, tenant: &TenantSpec, release: &ReleaseVersion) -> TenantHealth {
        *self.checks.lock().unwrap() += 1;
        if self.sick.lock().unwrap().contains(tenant.id.as_str()) {
            return TenantHealth::Unhealthy {
                reported_release: Some(release.to_string()),
                reason: format!("{}.example.com answered 503 on {release}", tenant.id),
                alarms: Vec::new(),
            };
        }
        TenantHealth::Healthy { alarms: Vec::new() }
    }
}

pub struct Fleet {
    pub store: TestStore,
    pub steps: Arc<ScriptedStep>,
    pub health: Arc<HealthDouble>,
    pub commands: RolloutCommands,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Fleet {
    /// `tenants` as (id, region), all Active on `release`.
    pub async fn new(tenants: &[(String, &str)], on: &str) -> Self {
        let store = fresh_store().await;
        for (id, region) in tenants {
            let state = TenantState::Active {
                release: release(on),
                failed_upgrade: None,
            };
            let record = TenantRecord::new(spec(id, region), state, Utc::now());
            store
                .create(
                    &record,
                    Transition::new(
                        &TenantState::initial(),
                        Cause::Event(TenantEvent::Provision { release: release(on) }),
                        Actor("test".into()),
                    ),
                )
                .await
                .unwrap();
        }
        let (shutdown, _) = watch::channel(false);
        Self {
            commands: RolloutCommands::new(store.clone(), store.clone()),
            store,
            steps: ScriptedStep::new(),
            health: Arc::new(HealthDouble::default()),
            shutdown,
            tasks: Vec::new(),
        }
    }

    pub fn start_workers(&mut self, count: usize) {
        for i in 0..count {
            let mut config = fast_worker(&format!("worker-{i}"));
            config.concurrency = 8;
            let worker = Worker::new(self.store.clone(), StepRegistry::all(self.steps.clone()), config);
            let shutdown = self.shutdown.subscribe();
            self.tasks.push(tokio::spawn(async move {
                worker.run(shutdown).await.unwrap();
            }));
        }
    }

    /// A controller and `workers` workers in one process, wired as `tenantctl serve`
    /// wires them: they wake each other, the controller hands the tenants it starts to
    /// a worker with a free slot, and offers the next ones to start with a landing
    /// ([`Relay`]). Operator commands go through `commands`, which wake it.
    #[allow(dead_code)] // the relay tests run the controller beside its workers
    pub fn start_in_process(&mut self, owner: &str, workers: usize) {
        let (due, settled, commanded, relay) = (
            Wakeup::default(),
            Wakeup::default(),
            Wakeup::default(),
            Relay::new(),
        );
        let mut controller = self
            .controller(owner)
            .with_wakeups(due.clone(), settled.clone())
            .with_command_wakeup(commanded.clone())
            .with_relay(relay.clone());
        for i in 0..workers {
            let mut config = fast_worker(&format!("{owner}-worker-{i}"));
            config.concurrency = 8;
            let (worker, handoff) =
                Worker::new(self.store.clone(), StepRegistry::all(self.steps.clone()), config)
                    .with_due_wakeup(due.clone())
                    .with_settled_wakeup(settled.clone())
                    .with_relay(relay.clone())
                    .with_handoff();
            controller = controller.with_handoff(handoff);
            let shutdown = self.shutdown.subscribe();
            self.tasks.push(tokio::spawn(async move {
                worker.run(shutdown).await.unwrap();
            }));
        }
        self.commands = RolloutCommands::new(self.store.clone(), self.store.clone()).with_wakeup(commanded);
        self.run_controller(controller);
    }

    pub fn controller(&self, owner: &str) -> Controller {
        Controller::new(
            self.store.clone(),
            self.store.clone(),
            self.health.clone(),
            ControllerConfig {
                lease_ttl: Duration::from_secs(1),
                tick: Duration::from_millis(50),
                ..ControllerConfig::new(owner)
            },
        )
        .with_policy(self.store.clone())
        .with_promotions(self.store.clone())
    }

    pub fn start_controller(&mut self, owner: &str) {
        self.run_controller(self.controller(owner));
    }

    /// Runs `controller` until the fleet stops.
    pub fn run_controller(&mut self, controller: Controller) {
        let shutdown = self.shutdown.subscribe();
        self.tasks
            .push(tokio::spawn(async move { controller.run(shutdown).await }));
    }

    pub async fn start(&self, id: &str, spec: serde_json::Value) -> RolloutRecord {
        let spec: RolloutSpec = serde_json::from_value(spec).unwrap();
        self.commands
            .start(RolloutId::parse(id).unwrap(), spec, "operator:test")
            .await
            .unwrap()
            .record
    }

    pub async fn rollout(&self, id: &str) -> RolloutRecord {
        self.store
            .load_rollout(&RolloutId::parse(id).unwrap())
            .await
            .unwrap()
    }

    #[allow(dead_code)] // the dashboard tests drive no rollout to its end
    pub async fn members(&self, id: &str) -> Vec<RolloutMember> {
        self.store
            .members(&RolloutId::parse(id).unwrap(), None)
            .await
            .unwrap()
    }

    /// Polls the rollout until `done` holds for it.
    pub async fn wait_for(
        &self,
        id: &str,
        within: Duration,
        what: &str,
        done: impl Fn(&RolloutRecord) -> bool,
    ) -> RolloutRecord {
        let deadline = std::time::Instant::now() + within;
        loop {
            let r = self.rollout(id).await;
            if done(&r) {
                return r;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "rollout {id} did not reach {what} within {within:?}; it is {} at wave {}: {:#?}",
                r.phase,
                r.current_wave,
                r.events
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many times a rollout started the tenant's upgrade to `to`, by its history.
    #[allow(dead_code)] // the dashboard tests drive no rollout to its end
    pub async fn upgrades_started(&self, tenant: &str, to: &str) -> usize {
        let history = self.store.history(&tenant_id(tenant), 0, 1000).await.unwrap();
        history
            .items
            .iter()
            .filter(|e| e.cause.starts_with(&format!("Upgrade to {to} (rollout")))
            .count()
    }

    #[allow(dead_code)] // the dashboard tests drive no rollout to its end
    pub async fn release_of(&self, tenant: &str) -> String {
        let r = self.store.load(&tenant_id(tenant)).await.unwrap();
        format!(
            "{}/{}",
            r.state.name(),
            r.state
                .current_release()
                .map(|r| r.to_string())
                .unwrap_or_default()
        )
    }

    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// `count` tenants named `<prefix>-<n>` in `region`.
#[allow(dead_code)] // the dashboard tests drive no rollout to its end
pub fn tenants(prefix: &str, region: &'static str, count: usize) -> Vec<(String, &'static str)> {
    (0..count).map(|i| (format!("{prefix}-{i:02}"), region)).collect()
}
