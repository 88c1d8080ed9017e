//! Quiesce and Reopen on moto's ELBv2, through the worker: an upgrade in maintenance
//! puts a 503 page on the tenant's hostnames on every listener (the health stand-in
//! answers as the load balancer's rules say), verify reaches the new release through
//! the bypass header, and every path out of the upgrade (success, rollback, a worker
//! killed with SIGKILL in maintenance) ends with no maintenance rule on any listener.

use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, HostHeaderConditionConfig, ProtocolEnum, RuleCondition, TargetTypeEnum,
};
use chrono::Utc;
use tenant_orchestrator::app::TenantCommands;
use tenant_orchestrator::machine::{StepKind, TenantEvent, TenantState, UpgradeStep};
use tenant_orchestrator::record::{Actor, Maintenance, OutageCause, TenantRecord};
use tenant_orchestrator::step::{Step, StepContext, StepOutcome, StepRegistry};
use tenant_orchestrator::steps::helm::{Deploy, RollbackDeploy};
use tenant_orchestrator::steps::maintenance::{
    MaintenanceSteps, QuiesceWhen, WithoutMaintenance, BYPASS_HEADER, TAG_TENANT,
};
use tenant_orchestrator::steps::verify::{VerifyConfig, VerifyRelease};
use tenant_orchestrator::steps::{AwsClients, StepsConfig};
use tenant_orchestrator::store::{DynamoStore, TenantStore};
use tenant_orchestrator::worker::{Worker, WorkerConfig};

use crate::certificates::platform::Platform;
use crate::child_worker::{self, RunLog};
use crate::common::*;
use crate::helm_support::*;

/// The rules of `listener` tagged as some tenant's maintenance rules (priority, the
/// first action's type, the tenant), read from AWS.
async fn maintenance_rules(aws: &AwsClients, listener: &str) -> Vec<(String, String, String)> {
    let elbv2 = &aws
        .region(&tenant_orchestrator::domain::Region::parse("us-east-1").unwrap())
        .elbv2;
    let rules = elbv2
        .describe_rules()
        .listener_arn(listener)
        .send()
        .await
        .unwrap();
    let mut found = Vec::new();
    for rule in rules.rules() {
        let arn = rule.rule_arn().unwrap();
        let tags = elbv2.describe_tags().resource_arns(arn).send().await.unwrap();
        let tenant = tags.tag_descriptions()[0]
            .tags()
            .iter()
            .find(|t| t.key() == Some(TAG_TENANT))
            .and_then(|t| t.value().map(str::to_owned));
        if let Some(tenant) = tenant {
            let action = rule.actions()[0]
                .r#type()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default();
            found.push((rule.priority().unwrap_or_default().to_owned(), action, tenant));
        }
    }
    found.sort();
    found
}

/// What the load balancer controller does for a tenant: a rule routing its hostname
/// to a target group, at a priority after the maintenance range.
async fn route_like_the_controller(aws: &AwsClients, listener: &str, host: &str, priority: i32) -> String {
    let elbv2 = &aws
        .region(&tenant_orchestrator::domain::Region::parse("us-east-1").unwrap())
        .elbv2;
    let listeners = elbv2
        .describe_listeners()
        .listener_arns(listener)
        .send()
        .await
        .unwrap();
    let lb = listeners.listeners()[0].load_balancer_arn().unwrap().to_owned();
    let lbs = elbv2
        .describe_load_balancers()
        .load_balancer_arns(lb)
        .send()
        .await
        .unwrap();
    let vpc = lbs.load_balancers()[0].vpc_id().unwrap().to_owned();
    let name = format!("tg-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let tg = elbv2
        .create_target_group()
        .name(name)
        .protocol(ProtocolEnum::Http)
        .port(80)
        .vpc_id(vpc)
        .target_type(TargetTypeEnum::Ip)
        .send()
        .await
        .unwrap();
    let tg = tg.target_groups()[0].target_group_arn().unwrap().to_owned();
    elbv2
        .create_rule()
        .listener_arn(listener)
        .priority(priority)
        .conditions(
            RuleCondition::builder()
                .field("host-header")
                .host_header_config(HostHeaderConditionConfig::builder().values(host).build())
                .build(),
        )
        .actions(
            Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .target_group_arn(&tg)
                .build(),
        )
        .send()
        .await
        .unwrap();
    tg
}

/// What one request to the tenant's hostname got: status and content type.
async fn get(port: u16, host: &str, bypass: Option<&str>) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut request = client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .header("Host", host);
    if let Some(token) = bypass {
        request = request.header(BYPASS_HEADER, token);
    }
    let response = request.send().await.unwrap();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (response.status().as_u16(), content_type)
}

/// Test double for UpdateInfra: while the upgrade is in maintenance, asks the tenant's
/// hostname what a user and what verify get, and passes the stack outputs on.
struct LookWhileUpgrading {
    health_port: u16,
    seen: Mutex<Vec<Seen>>,
}

#[derive(Debug, Clone)]
struct Seen {
    maintenance: Option<Maintenance>,
    user: (u16, String),
    with_token: Option<(u16, String)>,
}

#[async_trait]
impl Step for LookWhileUpgrading {
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
        let host = ctx.tenant.spec.hostnames[0].to_string();
        let maintenance = ctx.tenant.facts.maintenance.clone();
        let user = get(self.health_port, &host, None).await;
        let with_token = match &maintenance {
            Some(m) => Some(get(self.health_port, &host, Some(&m.token)).await),
            None => None,
        };
        self.seen.lock().unwrap().push(Seen {
            maintenance,
            user,
            with_token,
        });
        StepOutcome::done("stack unchanged (stand-in)", ctx.tenant.facts.clone())
    }
}

struct Harness {
    platform: Arc<Platform>,
    store: TestStore,
    helm: HelmStandin,
    health: HealthStandin,
    scripted: Arc<ScriptedStep>,
    look: Arc<LookWhileUpgrading>,
    worker: Worker,
    commands: TenantCommands,
    op: Actor,
    id: String,
}

impl Harness {
    /// Tenant `id` Active on 1.0.0 (Helm revision 1), its hostname routed on both
    /// listeners of a fresh load balancer, upgrades quiescing `when`.
    async fn provisioned(id: &str, when: QuiesceWhen) -> Self {
        let platform = Platform::build(2).await;
        let host = format!("{id}.example.com");
        for (i, listener) in platform.listeners.iter().enumerate() {
            route_like_the_controller(&platform.aws, listener, &host, 5000 + i as i32).await;
        }
        let store = fresh_store().await;
        let helm = HelmStandin::new();
        let health = HealthStandin::start_behind(&helm, &platform.listeners);
        let mut config: StepsConfig = (*steps_config(&helm)).clone();
        config.verify = VerifyConfig {
            required_passes: 2,
            ..crate::verify::verify_config(health.port, 50, 5)
        };
        config.maintenance.quiesce = when;
        config.regions.get_mut("us-east-1").unwrap().listener_arns = platform.listeners.clone();
        let config = Arc::new(config);
        let scripted = ScriptedStep::new();
        scripted.script(
            id,
            StepKind::CheckArtifact,
            vec![StepOutcome::done("resolved", deployable_facts(id, 'a'))],
        );
        let verify = Arc::new(VerifyRelease::new(config.clone(), platform.aws.clone()));
        let maintenance = Arc::new(MaintenanceSteps::new(config.clone(), platform.aws.clone()));
        let look = Arc::new(LookWhileUpgrading {
            health_port: health.port,
            seen: Mutex::new(Vec::new()),
        });
        let steps = StepRegistry::all(scripted.clone())
            .with(StepKind::Deploy, Arc::new(Deploy::new(config.clone())))
            .with(
                StepKind::RollbackDeploy,
                Arc::new(RollbackDeploy::new(config.clone())),
            )
            .with(StepKind::Verify, verify.clone())
            .with(StepKind::VerifyRollback, verify)
            .with(StepKind::Quiesce, maintenance.clone())
            .with(StepKind::Reopen, maintenance)
            .with(StepKind::UpdateInfra, look.clone());
        let h = Self {
            worker: Worker::new(store.clone(), steps, fast_worker("w-maintenance")),
            commands: TenantCommands::new(store.clone()),
            platform,
            store,
            helm,
            health,
            scripted,
            look,
            op: Actor::operator("test"),
            id: id.to_owned(),
        };
        h.commands
            .create(spec(id, "us-east-1"), release("1.0.0"), &h.op)
            .await
            .unwrap();
        drain(&h.worker).await;
        let r = h.load().await;
        assert_eq!(r.state.label(), "Active", "last error: {:?}", r.last_error);
        h
    }

    async fn load(&self) -> TenantRecord {
        self.store.load(&tenant_id(&self.id)).await.unwrap()
    }

    /// Upgrades to `to` and lets the worker run until the tenant settles.
    async fn upgrade(&self, to: &str) -> TenantRecord {
        let mut facts = self.load().await.facts;
        facts.image = deployable_facts(&self.id, 'b').image;
        self.scripted.script(
            &self.id,
            StepKind::CheckArtifact,
            vec![StepOutcome::done("resolved", facts)],
        );
        let upgrade = TenantEvent::Upgrade { release: release(to) };
        self.commands
            .command(&tenant_id(&self.id), upgrade, &self.op)
            .await
            .unwrap();
        drain(&self.worker).await;
        self.load().await
    }

    async fn rules_left(&self) -> Vec<(String, String, String)> {
        let mut all = Vec::new();
        for listener in &self.platform.listeners {
            all.extend(maintenance_rules(&self.platform.aws, listener).await);
        }
        all
    }

    async fn step_output(&self, from: &str) -> String {
        let history = self
            .store
            .history(&tenant_id(&self.id), 0, 100)
            .await
            .unwrap()
            .items;
        history
            .iter()
            .rev()
            .find(|e| e.from == from)
            .and_then(|e| e.output.clone().or(e.error.clone()))
            .unwrap_or_else(|| panic!("no event from {from}: {history:#?}"))
    }
}

#[tokio::test]
async fn an_upgrade_in_maintenance_shows_users_the_page_verifies_through_the_bypass_and_reopens() {
    let h = Harness::provisioned("quiet-a", QuiesceWhen::Always).await;

    let r = h.upgrade("1.1.0").await;

    assert_eq!(
        r.state,
        TenantState::Active {
            release: release("1.1.0"),
            failed_upgrade: None
        },
        "last error: {:?}",
        r.last_error
    );
    let seen = h
        .look
        .seen
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("UpdateInfra ran");
    let maintenance = seen.maintenance.expect("in maintenance during the upgrade");
    assert_eq!(
        maintenance.rules.len(),
        4,
        "a bypass and a page rule on each of two listeners"
    );
    assert!(maintenance.since <= Utc::now());
    assert_eq!(
        seen.user,
        (503, "text/html".to_owned()),
        "users get the maintenance page"
    );
    assert_eq!(
        seen.with_token.map(|(status, _)| status),
        Some(200),
        "the bypass reaches the tenant (routed by the controller's forward rule)"
    );
    assert!(h
        .step_output("Upgrading/Quiesce")
        .await
        .contains("4 rules (4 created)"));
    assert!(h
        .step_output("Upgrading/Reopen")
        .await
        .contains("4 rules deleted"));
    assert_eq!(h.rules_left().await, vec![], "no maintenance rule is left");
    assert_eq!(r.facts.maintenance, None);
    assert_eq!(get(h.health.port, "quiet-a.example.com", None).await.0, 200);
    // The outage is the maintenance page's time up, from Quiesce to Reopen, though
    // verify never saw the tenant down through the bypass.
    assert_eq!(r.facts.last_outage_cause, Some(OutageCause::Maintenance));
    let up = (r.updated_at - maintenance.since).num_seconds() as u64;
    let recorded = r
        .facts
        .last_outage_seconds
        .expect("the upgrade's outage is recorded");
    assert!(
        recorded <= up && recorded + 1 >= up,
        "{recorded}s recorded; the page was up {up}s, from Quiesce to the transition out of Reopen"
    );
}

#[tokio::test]
async fn an_upgrade_that_does_not_change_the_database_creates_no_rule_and_says_why() {
    let h = Harness::provisioned("quiet-b", QuiesceWhen::DatabaseChanges).await;

    let r = h.upgrade("1.1.0").await;

    assert_eq!(r.state.label(), "Active", "last error: {:?}", r.last_error);
    let said = h.step_output("Upgrading/Quiesce").await;
    assert_eq!(
        said,
        "maintenance skipped: the upgrade does not change the database"
    );
    let seen = h.look.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!((seen.maintenance, seen.user.0), (None, 200));
    assert_eq!(h.step_output("Upgrading/Reopen").await, "not in maintenance");
    assert_eq!(h.rules_left().await, vec![]);
}

#[tokio::test]
async fn a_rollback_after_a_failed_verify_verifies_the_old_release_through_the_bypass_and_reopens() {
    let h = Harness::provisioned("quiet-c", QuiesceWhen::Always).await;
    HealthStandin::break_release(&h.helm, "1.1.0");

    let r = h.upgrade("1.1.0").await;

    assert_eq!(
        r.state,
        TenantState::Active {
            release: release("1.0.0"),
            failed_upgrade: Some(release("1.1.0"))
        },
        "last error: {:?}",
        r.last_error
    );
    let history = h.store.history(&tenant_id(&h.id), 0, 100).await.unwrap().items;
    let path: Vec<&str> = history.iter().map(|e| e.to.as_str()).collect();
    assert!(
        path.ends_with(&[
            "RollingBack/RollbackDeploy",
            "RollingBack/RollbackInfra",
            "RollingBack/RestoreDatabase",
            "RollingBack/VerifyRollback",
            "RollingBack/Reopen",
            "Active"
        ]),
        "{path:?}"
    );
    assert!(h
        .step_output("RollingBack/Reopen")
        .await
        .contains("4 rules deleted"));
    assert_eq!(h.rules_left().await, vec![]);
    assert_eq!(r.facts.maintenance, None);
}

#[tokio::test]
async fn quiesce_run_again_after_a_crash_before_its_rules_were_recorded_finds_them() {
    let platform = Platform::build(1).await;
    route_like_the_controller(
        &platform.aws,
        &platform.listeners[0],
        "*.quiet-e.example.com",
        5000,
    )
    .await;
    let mut config = StepsConfig::default();
    config.maintenance.quiesce = QuiesceWhen::Always;
    config.regions.insert(
        "us-east-1".into(),
        tenant_orchestrator::steps::RegionSettings {
            listener_arns: platform.listeners.clone(),
            ..Default::default()
        },
    );
    let step = MaintenanceSteps::new(Arc::new(config), platform.aws.clone());
    let mut spec = spec("quiet-e", "us-east-1");
    spec.hostnames = ["a", "b", "c", "d"]
        .iter()
        .map(|h| tenant_orchestrator::domain::Hostname::parse(&format!("{h}.quiet-e.example.com")).unwrap())
        .collect();
    let state = TenantState::Upgrading {
        step: UpgradeStep::Quiesce,
        from: release("1.0.0"),
        to: release("1.1.0"),
    };
    let mut record = TenantRecord::new(spec, state, Utc::now());
    // The first run only records the maintenance (its own write).
    let StepOutcome::Pending { facts, .. } = step.run(ctx(&record)).await else {
        panic!("Quiesce records the maintenance before creating rules")
    };
    record.facts = facts;
    let persisted = record.clone();

    let StepOutcome::Done(first) = step.run(ctx(&record)).await else {
        panic!("rules created")
    };
    // The worker died before saving: the record still has no rule. Run again.
    let StepOutcome::Done(again) = step.run(ctx(&persisted)).await else {
        panic!("rules found")
    };

    let first = first.facts.maintenance.unwrap();
    let again_m = again.facts.maintenance.unwrap();
    assert_eq!(
        first.rules.len(),
        4,
        "two groups of hostnames (3 + 1), two rules each"
    );
    assert_eq!(again_m.rules, first.rules);
    assert_eq!(again_m.token, first.token);
    assert!(again.summary.contains("(0 created)"), "{}", again.summary);
    let rules = maintenance_rules(&platform.aws, &platform.listeners[0]).await;
    assert_eq!(rules.len(), 4, "{rules:?}");
    let kinds: Vec<&str> = rules.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(
        kinds,
        ["forward", "fixed-response", "forward", "fixed-response"],
        "each group's bypass rule (forwarding where the wildcard rule routes), then its page"
    );
}

#[tokio::test]
async fn deprovisioning_removes_the_rules_a_crashed_quiesce_left_before_it_releases_certificates() {
    let platform = Platform::build(1).await;
    let mut config = StepsConfig::default();
    config.maintenance.quiesce = QuiesceWhen::Always;
    config.regions.insert(
        "us-east-1".into(),
        tenant_orchestrator::steps::RegionSettings {
            listener_arns: platform.listeners.clone(),
            ..Default::default()
        },
    );
    let maintenance = Arc::new(MaintenanceSteps::new(Arc::new(config), platform.aws.clone()));
    let state = TenantState::Upgrading {
        step: UpgradeStep::Quiesce,
        from: release("1.0.0"),
        to: release("1.1.0"),
    };
    let mut record = TenantRecord::new(spec("quiet-d", "us-east-1"), state, Utc::now());
    let StepOutcome::Pending { facts, .. } = maintenance.run(ctx(&record)).await else {
        panic!("Quiesce records the maintenance first")
    };
    record.facts = facts;
    let persisted = record.facts.clone();
    assert!(matches!(
        maintenance.run(ctx(&record)).await,
        StepOutcome::Done(_)
    ));
    assert_eq!(
        maintenance_rules(&platform.aws, &platform.listeners[0])
            .await
            .len(),
        2
    );

    // Its worker died before recording the rules; later the tenant is removed.
    let mut leaving = TenantRecord::new(
        spec("quiet-d", "us-east-1"),
        TenantState::Deprovisioning {
            step: tenant_orchestrator::machine::DeprovisionStep::ReleaseCertificates,
        },
        Utc::now(),
    );
    leaving.facts = persisted;
    let certificates = ScriptedStep::new();
    let release_certificates = WithoutMaintenance::new(maintenance, certificates.clone());
    let StepOutcome::Done(out) = release_certificates.run(ctx(&leaving)).await else {
        panic!("ReleaseCertificates done")
    };

    assert_eq!(
        maintenance_rules(&platform.aws, &platform.listeners[0]).await,
        vec![]
    );
    assert_eq!(
        out.facts.maintenance, None,
        "the certificate step saw the rules gone"
    );
    assert_eq!(certificates.calls_of("quiet-d", StepKind::ReleaseCertificates), 1);
}

// ---- A worker killed with SIGKILL while the tenant is in maintenance ----------------

/// Test double wrapper: appends each run's start and end to a log shared by the
/// worker processes; every step but Quiesce and Reopen is a no-op, Backup a slow one.
struct Recorded {
    log: RunLog,
    inner: Option<Arc<dyn Step>>,
    slow_backup: Duration,
}

#[async_trait]
impl Step for Recorded {
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
        self.log.append(&ctx, "start");
        let outcome = match &self.inner {
            Some(inner) => inner.run(ctx).await,
            None => {
                if ctx.step == StepKind::Backup {
                    tokio::time::sleep(self.slow_backup).await;
                }
                let mut facts = ctx.tenant.facts.clone();
                facts.progress = None;
                StepOutcome::done(format!("{} done", ctx.step), facts)
            }
        };
        self.log.append(&ctx, "end");
        outcome
    }
}

#[test]
#[ignore = "worker process started by the maintenance crash test"]
fn maintenance_child_worker() {
    if std::env::var("MAINTENANCE_CHILD").is_err() {
        return;
    }
    let env = |k: &str| std::env::var(k).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let sdk = aws_config::load_from_env().await;
        let store = Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            env("MAINTENANCE_TABLE"),
        ));
        let mut config = StepsConfig::default();
        config.maintenance.quiesce = QuiesceWhen::Always;
        config.regions.insert(
            "us-east-1".into(),
            tenant_orchestrator::steps::RegionSettings {
                listener_arns: env("MAINTENANCE_LISTENERS")
                    .split(',')
                    .map(str::to_owned)
                    .collect(),
                ..Default::default()
            },
        );
        let maintenance: Arc<dyn Step> = Arc::new(MaintenanceSteps::new(
            Arc::new(config),
            Arc::new(AwsClients::new(sdk)),
        ));
        let recorded = |inner: Option<Arc<dyn Step>>| -> Arc<dyn Step> {
            Arc::new(Recorded {
                log: RunLog(env("MAINTENANCE_LOG").into()),
                inner,
                slow_backup: Duration::from_millis(env("MAINTENANCE_SLOW_MS").parse().unwrap()),
            })
        };
        let steps = StepRegistry::all(recorded(None))
            .with(StepKind::Quiesce, recorded(Some(maintenance.clone())))
            .with(StepKind::Reopen, recorded(Some(maintenance)));
        let config = WorkerConfig {
            lease_ttl: Duration::from_millis(2000),
            heartbeat: Duration::from_millis(500),
            poll_interval: Duration::from_millis(100),
            ..WorkerConfig::new(env("MAINTENANCE_OWNER"))
        };
        let worker = Worker::new(store, steps, config);
        let (_tx, rx) = tokio::sync::watch::channel(false);
        worker.run(rx).await.unwrap();
    });
}

fn spawn_worker(table: &str, listeners: &[String], log: &RunLog, owner: &str, slow_ms: u64) -> Child {
    child_worker::spawn(
        "maintenance::maintenance_child_worker",
        &[
            ("MAINTENANCE_CHILD", "1".into()),
            ("MAINTENANCE_TABLE", table.into()),
            ("MAINTENANCE_LISTENERS", listeners.join(",")),
            ("MAINTENANCE_LOG", log.0.display().to_string()),
            ("MAINTENANCE_OWNER", owner.into()),
            ("MAINTENANCE_SLOW_MS", slow_ms.to_string()),
        ],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_in_maintenance_leaves_no_maintenance_rule_once_the_tenant_settles() {
    let platform = Platform::build(2).await;
    let store = fresh_store().await;
    let commands = TenantCommands::new(store.clone());
    let op = Actor::operator("test");
    let ids = ["quiet-k1", "quiet-k2"];
    for id in ids {
        commands
            .create(spec(id, "us-east-1"), release("1.0.0"), &op)
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let log = child_worker::log_in(dir.path());

    // Worker A provisions, then upgrades in maintenance; its Backup takes 60 s.
    let a = spawn_worker(store.table(), &platform.listeners, &log, "worker-a", 60_000);
    for id in ids {
        wait_for_state(store.as_ref(), &tenant_id(id), "Active", Duration::from_secs(60)).await;
        let upgrade = TenantEvent::Upgrade {
            release: release("1.1.0"),
        };
        commands.command(&tenant_id(id), upgrade, &op).await.unwrap();
    }
    log.wait_for_start("worker-a", StepKind::Backup, Duration::from_secs(60))
        .await;
    let mut in_maintenance = 0;
    for listener in &platform.listeners {
        in_maintenance += maintenance_rules(&platform.aws, listener).await.len();
    }
    assert!(in_maintenance >= 2, "a tenant is in maintenance when A is killed");
    child_worker::kill(a);
    let a_lease_ends = child_worker::lease_ends_of(store.as_ref(), &ids, "worker-a").await;

    let b = spawn_worker(store.table(), &platform.listeners, &log, "worker-b", 10);
    for id in ids {
        let r = wait_for_state(store.as_ref(), &tenant_id(id), "Active", Duration::from_secs(60)).await;
        assert_eq!(
            r.state,
            TenantState::Active {
                release: release("1.1.0"),
                failed_upgrade: None
            },
            "{id}"
        );
        assert_eq!(r.facts.maintenance, None, "{id}");
    }
    child_worker::kill(b);

    for listener in &platform.listeners {
        assert_eq!(
            maintenance_rules(&platform.aws, listener).await,
            vec![],
            "rules left on {listener}"
        );
    }
    let runs = log.read();
    for id in ids {
        log.assert_no_step_under_two_owners(id, a_lease_ends.get(id).copied());
        let reopened_by_b = runs.iter().any(|l| {
            l.tenant == id && l.owner == "worker-b" && l.step == StepKind::Reopen && l.phase == "end"
        });
        assert!(reopened_by_b, "{id}: worker B reopened the tenant");
    }
    assert_fleet_sound(&store.arc()).await;
}
