//! The outage of an upgrade, measured by the product: the worker drives real Deploy,
//! RollbackDeploy and Verify steps against the Helm and health stand-ins, the tenant
//! answers unhealthy for some verify rounds, and the history, the deployment report
//! and `/metrics` (read through the HTTP API, as an operator would) give its seconds.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use serde_json::Value;
use tenant_orchestrator::api::{router, token_hash, ApiState, Tokens};
use tenant_orchestrator::app::{App, TenantCommands};
use tenant_orchestrator::domain::TenantId;
use tenant_orchestrator::machine::{StepKind, TenantEvent, TenantState, UpgradeStep};
use tenant_orchestrator::record::{Actor, HistoryEvent, OutageCause, TenantRecord};
use tenant_orchestrator::step::{StepOutcome, StepRegistry};
use tenant_orchestrator::steps::helm::{Deploy, RollbackDeploy};
use tenant_orchestrator::steps::verify::{VerifyConfig, VerifyRelease};
use tenant_orchestrator::store::TenantStore;
use tenant_orchestrator::worker::Worker;

use crate::common::*;
use crate::helm_support::*;
use crate::verify::verify_config;

const READ: &str = "read-token-0123456789";

/// One tenant on 1.0.0, driven by the worker through the real Helm and verify steps.
struct Upgrade {
    store: TestStore,
    helm: HelmStandin,
    _health: HealthStandin,
    scripted: Arc<ScriptedStep>,
    worker: Worker,
    commands: TenantCommands,
    id: TenantId,
    /// The HTTP API on the same table.
    api: String,
}

impl Upgrade {
    /// Provisions `id` on 1.0.0; verify needs 2 passes 50 ms apart within `deadline` s.
    async fn provisioned(id: &str, deadline_seconds: u64) -> Self {
        let store = fresh_store().await;
        let helm = HelmStandin::new();
        let health = HealthStandin::start(&helm);
        let mut config = (*steps_config(&helm)).clone();
        config.verify = VerifyConfig {
            required_passes: 2,
            ..verify_config(health.port, 50, deadline_seconds)
        };
        let config = Arc::new(config);
        let scripted = ScriptedStep::new();
        scripted.script(
            id,
            StepKind::CheckArtifact,
            vec![StepOutcome::done("resolved", deployable_facts(id, 'a'))],
        );
        let verify = Arc::new(VerifyRelease::new(
            config.clone(),
            crate::aws_support::aws().await,
        ));
        let steps = StepRegistry::all(scripted.clone())
            .with(StepKind::Deploy, Arc::new(Deploy::new(config.clone())))
            .with(
                StepKind::RollbackDeploy,
                Arc::new(RollbackDeploy::new(config.clone())),
            )
            .with(StepKind::Verify, verify.clone())
            .with(StepKind::VerifyRollback, verify);
        let tokens = Tokens::parse(&format!(
            "- {{name: viewer, scope: read, sha256: {}}}\n",
            token_hash(READ)
        ))
        .unwrap();
        let app = router(ApiState::new(App::new(store.arc()), tokens));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let upgrade = Self {
            worker: Worker::new(store.clone(), steps, fast_worker("w-outage")),
            commands: TenantCommands::new(store.clone()),
            store,
            helm,
            _health: health,
            scripted,
            id: tenant_id(id),
            api,
        };
        upgrade
            .commands
            .create(spec(id, "us-east-1"), release("1.0.0"), &Actor::operator("test"))
            .await
            .unwrap();
        drain(&upgrade.worker).await;
        let active = upgrade.load().await;
        assert_eq!(active.state.label(), "Active", "{:?}", active.last_error);
        upgrade
    }

    async fn load(&self) -> TenantRecord {
        self.store.load(&self.id).await.unwrap()
    }

    /// Upgrades to `to` and runs the worker until nothing is left to run.
    async fn run(&self, to: &str) -> TenantRecord {
        self.start(to).await;
        drain(&self.worker).await;
        self.load().await
    }

    /// Starts the upgrade to `to`; the worker has not run yet.
    async fn start(&self, to: &str) {
        let mut facts = self.load().await.facts;
        facts.image = deployable_facts(self.id.as_str(), 'b').image;
        self.scripted.script(
            self.id.as_str(),
            StepKind::CheckArtifact,
            vec![StepOutcome::done("resolved", facts)],
        );
        let upgrade = TenantEvent::Upgrade { release: release(to) };
        (self.commands)
            .command(&self.id, upgrade, &Actor::operator("test"))
            .await
            .unwrap();
    }

    /// The health stand-in's switch for the tenant's hostname: present, it answers 503.
    fn unhealthy_switch(&self) -> PathBuf {
        let dir = self.helm.state().join("unhealthy");
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(format!("{}.example.com", self.id))
    }

    /// The history event that brought the tenant back to Active.
    async fn completion(&self) -> HistoryEvent {
        let history = self.store.history(&self.id, 0, 100).await.unwrap().items;
        history
            .into_iter()
            .rev()
            .find(|e| e.to == "Active")
            .expect("the tenant came back to Active")
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(format!("{}{path}", self.api))
            .bearer_auth(READ)
            .send()
            .await
            .unwrap()
    }

    /// Today's deployment report totals, through the API.
    async fn report_total(&self) -> Value {
        let today = Utc::now().date_naive();
        let reply = self
            .get(&format!("/v1/reports/deployments?from={today}&to={today}"))
            .await;
        assert!(reply.status().is_success());
        reply.json::<Value>().await.unwrap()["total"].clone()
    }
}

#[tokio::test]
async fn an_upgrade_that_answers_unhealthy_for_a_while_records_its_outage_in_seconds() {
    let up = Upgrade::provisioned("patchy", 60).await;
    let switch = up.unhealthy_switch();
    std::fs::write(&switch, "").unwrap();
    let before = Utc::now();
    up.start("1.1.0").await;

    // Run the worker until verify has seen the tenant down for at least a second,
    // then let it answer healthy again.
    let mut seen_down = None;
    for _ in 0..3000 {
        up.worker.run_once().await.unwrap();
        let r = up.load().await;
        if let Some(window) = &r.facts.outage {
            assert!(matches!(
                r.state,
                TenantState::Upgrading {
                    step: UpgradeStep::Verify,
                    ..
                }
            ));
            assert_eq!(window.cause, OutageCause::FailedProbe);
            seen_down = Some(window.started_at);
            if Utc::now() - window.started_at >= chrono::Duration::seconds(1) {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let started = seen_down.expect("verify saw the tenant down");
    std::fs::remove_file(&switch).unwrap();
    let healthy_from = Utc::now();
    drain(&up.worker).await;

    let r = up.load().await;
    assert_eq!(
        r.state.current_release(),
        Some(&release("1.1.0")),
        "{:?}",
        r.state
    );
    assert_eq!(r.facts.outage, None, "the window is closed once Active");
    let seconds = up
        .completion()
        .await
        .outage_seconds
        .expect("the outage is in the history");
    let most = (healthy_from - before).num_seconds() as u64 + 1;
    assert!(
        (1..=most).contains(&seconds),
        "outage {seconds}s: down from {started} (upgrade started {before}), healthy from {healthy_from}"
    );
    assert_eq!(r.facts.last_outage_seconds, Some(seconds));
    let tenant: Value = up.get("/v1/tenants/patchy").await.json().await.unwrap();
    assert_eq!(
        (
            &tenant["facts"]["last_outage_seconds"],
            &tenant["facts"]["maintenance_since"]
        ),
        (&Value::from(seconds), &Value::Null),
        "{tenant}"
    );
    let history: Value = up.get("/v1/tenants/patchy/history").await.json().await.unwrap();
    let completed = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["from"] == "Upgrading/Reopen" && e["to"] == "Active")
        .expect("the API lists the completed upgrade");
    assert_eq!(
        (&completed["outage_seconds"], &completed["outage_cause"]),
        (&Value::from(seconds), &Value::from("failed_probe"))
    );

    let total = up.report_total().await;
    assert_eq!(total["outage"]["measured"], 1, "{total}");
    assert_eq!(total["outage"]["total_seconds"], seconds, "{total}");
    assert_eq!(total["outage"]["buckets"]["le_30s"], 1, "{total}");

    let metrics = up.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("tenantctl_upgrade_outage_seconds_count{region=\"us-east-1\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_upgrade_that_never_fails_a_probe_records_an_outage_of_zero() {
    let up = Upgrade::provisioned("steady", 60).await;
    let r = up.run("1.1.0").await;
    assert_eq!(
        r.state.current_release(),
        Some(&release("1.1.0")),
        "{:?}",
        r.state
    );
    let completion = up.completion().await;
    assert_eq!(completion.from, "Upgrading/Reopen");
    assert_eq!(completion.outage_seconds, Some(0));
    let total = up.report_total().await;
    assert_eq!(
        (&total["outage"]["measured"], &total["outage"]["buckets"]["none"]),
        (&Value::from(1), &Value::from(1)),
        "{total}"
    );
}

#[tokio::test]
async fn a_rolled_back_upgrade_counts_its_outage_until_the_old_release_is_verified() {
    let up = Upgrade::provisioned("relapse", 2).await;
    HealthStandin::break_release(&up.helm, "1.1.0");
    let before = Utc::now();
    let r = up.run("1.1.0").await;
    assert_eq!(
        r.state.current_release(),
        Some(&release("1.0.0")),
        "{:?}",
        r.state
    );
    let completion = up.completion().await;
    assert_eq!(completion.from, "RollingBack/Reopen");
    let seconds = completion
        .outage_seconds
        .expect("the rollback's outage is measured");
    // Down from verify's first round until its 2 s deadline at least, then through
    // the Helm rollback, until VerifyRollback's first healthy round.
    let most = (completion.at - before).num_seconds() as u64 + 1;
    assert!(
        (1..=most).contains(&seconds),
        "outage {seconds}s, at most {most}s"
    );
    assert_eq!(up.report_total().await["outage"]["total_seconds"], seconds);
}
