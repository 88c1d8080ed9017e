//! Set-up for the infrastructure step tests: the local AWS clients, step settings,
//! tenants in the states that run each step, and a driver that runs a step the way
//! the worker does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_cloudformation::types::{Capability, Parameter, StackStatus, TemplateStage};
use chrono::Utc;
use tenant_orchestrator::app::TenantCommands;
use tenant_orchestrator::machine::{
    DeprovisionStep, ProvisionStep, RestoreStep, RollbackStep, TenantState, UpgradeStep,
};
use tenant_orchestrator::record::{Actor, HistoryEvent, TenantRecord};
use tenant_orchestrator::step::{StepContext, StepOutcome, StepRegistry};
use tenant_orchestrator::steps::infra::{self, template, InfraConfig};
use tenant_orchestrator::steps::platform::PlatformSource;
use tenant_orchestrator::steps::{AwsClients, RegionSettings, StepsConfig};
use tenant_orchestrator::store::{DynamoStore, TenantStore};
use tenant_orchestrator::worker::Worker;

use crate::common::{fast_worker, release, require_local_aws, spec, tenant_id, ScriptedStep};

pub const REGION: &str = "us-east-1";
pub const SUBNET_GROUP: &str = "tenants-db";
pub const OTHER_SUBNET_GROUP: &str = "tenants-db-next";

/// A tenant id no other test uses (moto is shared by every test).
pub fn unique_id(prefix: &str) -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &suffix[..10])
}

pub fn stack_name(id: &str) -> String {
    format!("tenant-test-{id}")
}

pub fn region_settings(subnet_group: &str) -> RegionSettings {
    RegionSettings {
        db_subnet_group: subnet_group.into(),
        db_security_group_ids: vec!["sg-0a1b2c3d4e5f60001".into(), "sg-0a1b2c3d4e5f60002".into()],
        oidc_provider_arn:
            "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/5C7E8A1B2D3F4A5B6C7D8E9F0A1B2C3D"
                .into(),
        oidc_provider_host: "oidc.eks.us-east-1.amazonaws.com/id/5C7E8A1B2D3F4A5B6C7D8E9F0A1B2C3D".into(),
        ..Default::default()
    }
}

/// Settings with one region. `termination_protection` stays off where a test deletes
/// stacks: moto does not implement UpdateTerminationProtection.
pub fn config(subnet_group: &str, termination_protection: bool) -> StepsConfig {
    StepsConfig {
        infra: InfraConfig {
            poll_seconds: 0,
            termination_protection,
            ..InfraConfig::default()
        },
        regions: [(REGION.to_owned(), region_settings(subnet_group))].into(),
        ..Default::default()
    }
}

// --- tenants in the state that runs each step ---------------------------------

fn enter(mut tenant: TenantRecord, state: TenantState) -> TenantRecord {
    // As the machine does when the step changes.
    tenant.enter(state, Utc::now());
    tenant
}

pub fn provisioning(id: &str) -> TenantRecord {
    let state = TenantState::Provisioning {
        step: ProvisionStep::ProvisionInfra,
        release: release("1.0.0"),
    };
    TenantRecord::new(spec(id, REGION), state, Utc::now())
}

pub fn upgrading(tenant: TenantRecord) -> TenantRecord {
    let state = TenantState::Upgrading {
        step: UpgradeStep::UpdateInfra,
        from: release("1.0.0"),
        to: release("1.1.0"),
    };
    enter(tenant, state)
}

/// The tenant's operation may replace its database (as a rollout allowing it sets):
/// moving the cluster to another subnet group replaces it.
pub fn allowing_database_replacement(mut tenant: TenantRecord) -> TenantRecord {
    tenant.facts.allow_replacement = ["DatabaseCluster"]
        .iter()
        .map(|id| tenant_orchestrator::domain::LogicalId::parse(id).unwrap())
        .collect();
    tenant
}

pub fn rolling_back(tenant: TenantRecord) -> TenantRecord {
    let state = TenantState::RollingBack {
        step: RollbackStep::RollbackInfra,
        abandoned: release("1.1.0"),
        previous: release("1.0.0"),
        cause: "upgrade 1.0.0 -> 1.1.0 failed".into(),
    };
    enter(tenant, state)
}

pub fn restoring(tenant: TenantRecord, snapshot: &str) -> TenantRecord {
    let state = TenantState::Restoring {
        step: RestoreStep::RestoreDatabase,
        snapshot: snapshot.into(),
        release: release("1.0.0"),
    };
    enter(tenant, state)
}

pub fn deprovisioning(tenant: TenantRecord) -> TenantRecord {
    enter(
        tenant,
        TenantState::Deprovisioning {
            step: DeprovisionStep::DeleteStack,
        },
    )
}

// --- running steps ----------------------------------------------------------------

/// How a driven step ended, and after how many runs.
#[derive(Debug)]
pub struct Run {
    pub outcome: StepOutcome,
    pub runs: usize,
}

impl Run {
    /// The summary of a step that succeeded.
    pub fn done(&self) -> String {
        match &self.outcome {
            StepOutcome::Done(output) => output.summary.clone(),
            other => panic!("expected the step to succeed, got {}", brief(other)),
        }
    }

    /// The reason of a step that failed for good (no retry would help).
    pub fn failed_for_good(&self) -> String {
        match &self.outcome {
            StepOutcome::Failed {
                retryable: false,
                reason,
            } => reason.clone(),
            other => panic!("expected a final failure, got {}", brief(other)),
        }
    }
}

/// An outcome without its facts (which hold whole templates).
fn brief(outcome: &StepOutcome) -> String {
    match outcome {
        StepOutcome::Done(output) => format!("Done: {}", output.summary),
        StepOutcome::Pending { note, .. } => format!("Pending: {note}"),
        StepOutcome::Failed { retryable, reason } => format!("Failed (retryable: {retryable}): {reason}"),
    }
}

pub async fn run_once(steps: &StepRegistry, tenant: &TenantRecord) -> StepOutcome {
    let kind = tenant.state.step().expect("the tenant's state runs a step");
    let step = steps.get(kind).expect("step registered").clone();
    let ctx = StepContext {
        tenant,
        step: kind,
        attempt: tenant.attempt,
        worker: "test",
        fence: 1,
    };
    step.run(ctx).await
}

/// Runs the tenant's step again after every Pending, keeping the facts it reported,
/// until it is done or fails; the tenant ends with the facts the worker would save.
pub async fn drive(steps: &StepRegistry, tenant: &mut TenantRecord) -> Run {
    for runs in 1..=10 {
        match run_once(steps, tenant).await {
            StepOutcome::Pending { facts, .. } => tenant.facts = facts,
            StepOutcome::Done(output) => {
                tenant.facts = output.facts.clone();
                return Run {
                    outcome: StepOutcome::Done(output),
                    runs,
                };
            }
            failed => {
                return Run {
                    outcome: failed,
                    runs,
                }
            }
        }
    }
    panic!("the step was still pending after 10 runs")
}

// --- the local AWS ---------------------------------------------------------------

/// A stack as the tests compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackState {
    pub id: String,
    pub status: String,
    pub parameters: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, String>,
    pub termination_protection: bool,
}

pub struct LocalAws {
    pub clients: Arc<AwsClients>,
    cf: aws_sdk_cloudformation::Client,
    rds: aws_sdk_rds::Client,
    ssm: aws_sdk_ssm::Client,
}

impl LocalAws {
    pub async fn new() -> Self {
        require_local_aws();
        let clients = Arc::new(AwsClients::from_env().await);
        let region = clients.region(&tenant_orchestrator::domain::Region::parse(REGION).unwrap());
        Self {
            cf: region.cloudformation.clone(),
            rds: region.rds.clone(),
            ssm: region.ssm.clone(),
            clients,
        }
    }

    /// The infrastructure steps with `config`.
    pub fn steps(&self, config: StepsConfig) -> StepRegistry {
        infra::register(
            StepRegistry::new(),
            Arc::new(config),
            self.clients.clone(),
            PlatformSource::default(),
        )
    }

    /// The tenant's stack (by tenant id), or any stack by its id (ARN).
    pub async fn stack(&self, id: &str) -> Option<StackState> {
        let name = if id.starts_with("arn:") {
            id.to_owned()
        } else {
            stack_name(id)
        };
        let response = match self.cf.describe_stacks().stack_name(&name).send().await {
            Ok(r) => r,
            Err(e) if format!("{e:?}").contains("does not exist") => return None,
            Err(e) => panic!("describe {name}: {e:?}"),
        };
        let s = response.stacks().first()?;
        Some(StackState {
            id: s.stack_id().unwrap().to_owned(),
            status: s.stack_status().unwrap().as_str().to_owned(),
            parameters: s
                .parameters()
                .iter()
                .map(|p| {
                    (
                        p.parameter_key().unwrap().to_owned(),
                        p.parameter_value().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
            outputs: s
                .outputs()
                .iter()
                .map(|o| {
                    (
                        o.output_key().unwrap().to_owned(),
                        o.output_value().unwrap().to_owned(),
                    )
                })
                .collect(),
            termination_protection: s.enable_termination_protection().unwrap_or(false),
        })
    }

    pub async fn template(&self, id: &str) -> String {
        let response = self
            .cf
            .get_template()
            .stack_name(stack_name(id))
            .template_stage(TemplateStage::Original)
            .send()
            .await
            .expect("template");
        response.template_body().unwrap().to_owned()
    }

    /// How many stack-level events of the tenant's stack have `status`.
    pub async fn stack_events(&self, id: &str, status: &str) -> usize {
        let response = self
            .cf
            .describe_stack_events()
            .stack_name(stack_name(id))
            .send()
            .await
            .expect("stack events");
        response
            .stack_events()
            .iter()
            .filter(|e| e.resource_type() == Some("AWS::CloudFormation::Stack"))
            .filter(|e| e.resource_status().map(|s| s.as_str()) == Some(status))
            .count()
    }

    /// Ids of the stacks called `name` that are not deleted.
    pub async fn live_stacks_named(&self, name: &str) -> Vec<String> {
        let response = self.cf.list_stacks().send().await.expect("list stacks");
        response
            .stack_summaries()
            .iter()
            .filter(|s| {
                s.stack_name() == Some(name) && s.stack_status() != Some(&StackStatus::DeleteComplete)
            })
            .map(|s| s.stack_id().unwrap().to_owned())
            .collect()
    }

    /// Creates the tenant's stack directly, as an older release would have.
    pub async fn create_stack(&self, id: &str, template_body: &str, subnet_group: &str) {
        let owned = template::owned_parameters(&spec(id, REGION), &region_settings(subnet_group)).unwrap();
        let parameters = template::create_parameters(&owned)
            .into_iter()
            .map(|(k, v)| Parameter::builder().parameter_key(k).parameter_value(v).build())
            .collect();
        self.cf
            .create_stack()
            .stack_name(stack_name(id))
            .template_body(template_body)
            .set_parameters(Some(parameters))
            .capabilities(Capability::CapabilityIam)
            .send()
            .await
            .expect("stack created");
        assert_eq!(self.stack(id).await.unwrap().status, "CREATE_COMPLETE");
    }

    pub async fn cluster_exists(&self, cluster: &str) -> bool {
        match self
            .rds
            .describe_db_clusters()
            .db_cluster_identifier(cluster)
            .send()
            .await
        {
            Ok(r) => !r.db_clusters().is_empty(),
            Err(e) if format!("{e:?}").contains("DBClusterNotFound") => false,
            Err(e) => panic!("describe cluster {cluster}: {e:?}"),
        }
    }

    pub async fn snapshot_cluster(&self, cluster: &str, snapshot: &str) {
        self.rds
            .create_db_cluster_snapshot()
            .db_cluster_identifier(cluster)
            .db_cluster_snapshot_identifier(snapshot)
            .send()
            .await
            .expect("snapshot created");
    }

    pub async fn delete_snapshot(&self, snapshot: &str) {
        self.rds
            .delete_db_cluster_snapshot()
            .db_cluster_snapshot_identifier(snapshot)
            .send()
            .await
            .expect("snapshot deleted");
    }

    pub async fn put_parameter(&self, name: &str) {
        self.ssm
            .put_parameter()
            .name(name)
            .value("left over")
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .send()
            .await
            .expect("parameter written");
    }

    pub async fn delete_parameter(&self, name: &str) {
        self.ssm
            .delete_parameter()
            .name(name)
            .send()
            .await
            .expect("parameter deleted");
    }
}

// --- through the worker --------------------------------------------------------------

/// Creates tenant `id` and lets a worker provision it, with the real infrastructure
/// steps and `ScriptedStep` (the test double) for every other step.
pub async fn provision_with_worker(aws: &LocalAws, store: Arc<DynamoStore>, id: &str) -> TenantRecord {
    let registry = infra::register(
        StepRegistry::all(ScriptedStep::new()),
        Arc::new(config(SUBNET_GROUP, false)),
        aws.clients.clone(),
        PlatformSource::default(),
    );
    let worker = Worker::new(store.clone(), registry, fast_worker("w-infra"));
    TenantCommands::new(store.clone())
        .create(spec(id, REGION), release("1.0.0"), &Actor::operator("test"))
        .await
        .expect("tenant created");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        worker.run_once().await.expect("worker pass");
        let tenant = store.load(&tenant_id(id)).await.unwrap();
        if tenant.state.step().is_none() {
            return tenant;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {}",
            tenant.state.label()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn store_history(store: &DynamoStore, id: &str) -> Vec<HistoryEvent> {
    store.history(&tenant_id(id), 0, 100).await.unwrap().items
}
