//! The real steps: one module per step family, each implementing [`Step`] on the
//! official AWS SDK (or the `helm` CLI), each idempotent and safe to run twice.

pub mod artifact;
pub mod backup;
pub mod certificates;
pub mod config;
pub mod drift;
pub mod helm;
pub mod infra;
pub mod maintenance;
pub mod platform;
pub mod rate_limits;
pub mod targets;
pub mod verify;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::{Deserialize, Serialize};

use crate::domain::{Region, TenantSpec};
use crate::machine::StepKind;
use crate::ports::aws_calls::AwsCallMetrics;
use crate::ports::{CertificateSlotStore, PlatformArtifacts};
use crate::step::{StepOutcome, StepRegistry};

/// Per-region facts about the shared platform a tenant is deployed onto.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegionSettings {
    /// DB subnet group for tenant database clusters.
    pub db_subnet_group: String,
    /// Security groups for tenant database clusters.
    pub db_security_group_ids: Vec<String>,
    /// The EKS cluster's OIDC provider, trusted by tenant workload roles.
    pub oidc_provider_arn: String,
    pub oidc_provider_host: String,
    /// kube context Helm uses for this region's cluster.
    pub kube_context: String,
    /// HTTPS listeners of the shared ALB, in fill order.
    pub listener_arns: Vec<String>,
    /// Route 53 hosted zone for certificate validation records and the hostnames'
    /// alias records (every tenant hostname of the region must lie in it).
    pub hosted_zone_id: String,
}

/// Schema migrations (the chart's pre-upgrade hook Job).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MigrationsConfig {
    /// What a failed upgrade whose migration ran does with the pre-upgrade snapshot
    /// when no rollout says (an upgrade started by an operator): `approval` (the
    /// default) stops the tenant Failed until an operator restores it; `automatic`
    /// restores it during the rollback.
    pub restore: crate::domain::MigrationRestore,
}

/// Settings of the steps for one environment, read from the file given with
/// `--steps-config` (JSON); every field has a default suited to a local run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StepsConfig {
    pub artifact: artifact::ArtifactConfig,
    pub backup: backup::BackupConfig,
    pub infra: infra::InfraConfig,
    pub certificates: certificates::CertificateConfig,
    pub helm: helm::HelmConfig,
    pub verify: verify::VerifyConfig,
    pub migrations: MigrationsConfig,
    pub maintenance: maintenance::MaintenanceConfig,
    /// Rate limits on account-limited AWS calls, per service and region.
    pub rate_limits: rate_limits::RateLimitsConfig,
    /// Other AWS accounts tenants live in, per environment and region (AssumeRole).
    pub targets: targets::Targets,
    /// Settings per region name.
    pub regions: BTreeMap<String, RegionSettings>,
}

impl StepsConfig {
    /// The settings of `region`; an unknown region is a configuration error that the
    /// step reports (not retryable) instead of guessing.
    pub fn region(&self, region: &Region) -> Result<&RegionSettings, String> {
        self.regions.get(region.as_str()).ok_or_else(|| {
            format!("region {region} is not configured; add it under \"regions\" in the steps configuration")
        })
    }
}

/// SDK clients for one region.
pub struct RegionClients {
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub rds: aws_sdk_rds::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub acm: aws_sdk_acm::Client,
    pub route53: aws_sdk_route53::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
}

/// Builds SDK clients per target account and region from one loaded `aws-config`, so
/// the standard environment (`AWS_PROFILE`, `AWS_ENDPOINT_URL`, …) applies everywhere.
/// A tenant's clients ([`AwsClients::tenant`]) act in its target's account when its
/// environment and region have one, else in the orchestrator's own.
pub struct AwsClients {
    base: aws_config::SdkConfig,
    cache: Mutex<HashMap<ClientsKey, Arc<RegionClients>>>,
    /// Where limited calls take their tokens; none, they are not limited.
    throttle: Option<rate_limits::Throttle>,
    targets: Vec<AssumedTarget>,
}

/// Whose clients: a target's role ARN (none: the orchestrator's own account), and the region.
type ClientsKey = (Option<String>, String);

/// A target with the configuration its clients are built from: the base one with the
/// target's assumed-role credentials and a credentials cache of its own.
struct AssumedTarget {
    target: targets::Target,
    config: aws_config::SdkConfig,
}

impl AwsClients {
    pub fn new(base: aws_config::SdkConfig) -> Self {
        Self {
            base,
            cache: Mutex::new(HashMap::new()),
            throttle: None,
            targets: Vec::new(),
        }
    }

    /// Limits the calls of [`rate_limits::LimitedService`]s with `throttle`.
    pub fn with_throttle(mut self, throttle: rate_limits::Throttle) -> Self {
        self.throttle = Some(throttle);
        self
    }

    /// Acts for the tenants of each target with the target's role, assumed with STS
    /// `AssumeRole` (the SDK's [`aws_config::sts::AssumeRoleProvider`]) from the base
    /// credentials. The credentials are cached per target, shared by all its clients,
    /// and replaced [`targets::REFRESH_BEFORE_EXPIRY`] before they expire.
    pub async fn with_targets(mut self, targets: &targets::Targets) -> Self {
        for target in &targets.0 {
            let mut role = aws_config::sts::AssumeRoleProvider::builder(target.role_arn.clone())
                .external_id(target.external_id.clone())
                .session_name(target.session_name())
                .region(aws_config::Region::new(target.region.to_string()))
                .configure(&self.base);
            if let Some(seconds) = target.session_seconds {
                role = role.session_length(std::time::Duration::from_secs(seconds.into()));
            }
            let credentials =
                aws_sdk_cloudformation::config::SharedCredentialsProvider::new(role.build().await);
            let config = self
                .base
                .to_builder()
                .credentials_provider(credentials)
                .identity_cache(
                    aws_config::identity::IdentityCache::lazy()
                        .buffer_time(targets::REFRESH_BEFORE_EXPIRY)
                        .build(),
                )
                .build();
            self.targets.push(AssumedTarget {
                target: target.clone(),
                config,
            });
        }
        self
    }

    /// Takes a token for one call of `service` for the tenant `spec`, from the buckets
    /// of the account its clients act in ([`Self::tenant`]); always granted when the
    /// clients are not limited.
    pub async fn admit_tenant(
        &self,
        service: rate_limits::LimitedService,
        spec: &TenantSpec,
    ) -> Result<(), rate_limits::Admission> {
        let account = self.target_account(&spec.environment, &spec.region);
        self.admit(service, &spec.region, account).await
    }

    /// Takes a token for one call of `service` on the shared platform of `region`, from
    /// the buckets of the account its clients act in ([`Self::platform`]).
    pub async fn admit_platform(
        &self,
        service: rate_limits::LimitedService,
        region: &Region,
    ) -> Result<(), rate_limits::Admission> {
        let account = (self.targets.iter())
            .find(|t| &t.target.region == region)
            .map(|t| t.target.account.as_str());
        self.admit(service, region, account).await
    }

    async fn admit(
        &self,
        service: rate_limits::LimitedService,
        region: &Region,
        account: Option<&str>,
    ) -> Result<(), rate_limits::Admission> {
        match &self.throttle {
            Some(throttle) => throttle.admit(service, region, account).await,
            None => Ok(()),
        }
    }

    pub async fn from_env() -> Self {
        Self::new(aws_config::load_from_env().await)
    }

    /// The standard AWS environment, acting in the accounts of `targets` for their tenants.
    pub async fn from_env_with_targets(targets: &targets::Targets) -> Self {
        Self::from_env().await.with_targets(targets).await
    }

    /// Clients in `region` of the orchestrator's own account, for what is not a
    /// tenant's (the release registry).
    pub fn region(&self, region: &Region) -> Arc<RegionClients> {
        self.clients(None, region)
    }

    /// Clients for the tenants of `environment` in `region`: in their target's account
    /// when they have one, else in the orchestrator's own.
    pub fn placed(&self, environment: &crate::domain::Environment, region: &Region) -> Arc<RegionClients> {
        let target = (self.targets.iter())
            .find(|t| &t.target.environment == environment && &t.target.region == region);
        self.clients(target, region)
    }

    /// Clients for everything of the tenant `spec`.
    pub fn tenant(&self, spec: &TenantSpec) -> Arc<RegionClients> {
        self.placed(&spec.environment, &spec.region)
    }

    /// Clients for the shared platform of `region` (the ALB's listeners, the hosted
    /// zone and the certificates every tenant of the region shares): in the account of
    /// the region's targets (one account per region, see [`targets::Targets::validate`]),
    /// else in the orchestrator's own.
    pub fn platform(&self, region: &Region) -> Arc<RegionClients> {
        let target = self.targets.iter().find(|t| &t.target.region == region);
        self.clients(target, region)
    }

    /// The account the tenants of `environment` in `region` live in, when it is a target's.
    pub fn target_account(&self, environment: &crate::domain::Environment, region: &Region) -> Option<&str> {
        (self.targets.iter())
            .find(|t| &t.target.environment == environment && &t.target.region == region)
            .map(|t| t.target.account.as_str())
    }

    fn clients(&self, target: Option<&AssumedTarget>, region: &Region) -> Arc<RegionClients> {
        let key = (target.map(|t| t.target.role_arn.clone()), region.to_string());
        let mut cache = self.cache.lock().expect("client cache lock");
        cache
            .entry(key)
            .or_insert_with(|| {
                let base = target.map_or(&self.base, |t| &t.config);
                let config = base
                    .to_builder()
                    .region(aws_config::Region::new(region.to_string()))
                    .build();
                // Each service's client from the shared configuration, with the
                // interceptor that counts and times its calls under `label`.
                macro_rules! client {
                    ($sdk:ident, $label:literal) => {
                        $sdk::Client::from_conf(
                            $sdk::config::Builder::from(&config)
                                .interceptor(AwsCallMetrics::new($label))
                                .build(),
                        )
                    };
                }
                Arc::new(RegionClients {
                    cloudformation: client!(aws_sdk_cloudformation, "cloudformation"),
                    cloudwatch: client!(aws_sdk_cloudwatch, "cloudwatch"),
                    rds: client!(aws_sdk_rds, "rds"),
                    ecr: client!(aws_sdk_ecr, "ecr"),
                    ssm: client!(aws_sdk_ssm, "ssm"),
                    acm: client!(aws_sdk_acm, "acm"),
                    route53: client!(aws_sdk_route53, "route53"),
                    elbv2: client!(aws_sdk_elasticloadbalancingv2, "elasticloadbalancing"),
                })
            })
            .clone()
    }
}

/// Names derived from the spec, shared by every step so they always agree.
pub mod names {
    use super::TenantSpec;

    pub fn stack(spec: &TenantSpec) -> String {
        format!("tenant-{}-{}", spec.environment, spec.id)
    }

    /// Every alarm of the tenant stack is named under this prefix. The slash keeps it
    /// apart from other tenants' names: `tenant-prod-acme-` would also prefix the
    /// alarms of tenant `acme-eu`.
    pub fn alarm_prefix(spec: &TenantSpec) -> String {
        format!("{}/", stack(spec))
    }

    pub fn namespace(spec: &TenantSpec) -> String {
        format!("tenant-{}", spec.id)
    }

    pub fn helm_release(spec: &TenantSpec) -> String {
        spec.id.to_string()
    }

    pub fn ssm_prefix(spec: &TenantSpec) -> String {
        format!("/{}/tenants/{}", spec.environment, spec.id)
    }
}

const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "ServiceUnavailable",
    "PriorRequestNotComplete",
];

/// Maps an SDK failure to a step outcome: throttling, timeouts and 5xx are retried by
/// the worker; anything else fails the step with the service's message.
pub fn aws_failure<E, R>(what: &str, err: SdkError<E, R>) -> StepOutcome
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let retryable = match &err {
        SdkError::ServiceError(service) => {
            RETRYABLE_CODES.contains(&service.err().code().unwrap_or_default())
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        _ => false,
    };
    let message = match &err {
        SdkError::ServiceError(service) => format!(
            "{}: {}",
            service.err().code().unwrap_or("error"),
            service.err().message().unwrap_or("no message")
        ),
        other => aws_smithy_types::error::display::DisplayErrorContext(other).to_string(),
    };
    StepOutcome::Failed {
        retryable,
        reason: format!("{what}: {message}"),
    }
}

/// Every product step, wired to its implementation. `platforms` is where published
/// platform versions are read from; without it a tenant naming one fails its
/// infrastructure and deploy steps with a message saying so.
pub fn registry(
    config: Arc<StepsConfig>,
    aws: Arc<AwsClients>,
    slots: Arc<dyn CertificateSlotStore>,
    platforms: Option<Arc<dyn PlatformArtifacts>>,
) -> StepRegistry {
    let platforms = platform::PlatformSource::new(platforms);
    let certificates: Arc<dyn crate::step::Step> = Arc::new(certificates::CertificateStep::new(
        config.clone(),
        Arc::new(certificates::AwsCertificateCloud::new(aws.clone())),
        slots,
    ));
    let verify = Arc::new(verify::VerifyRelease::new(config.clone(), aws.clone()));
    let maintenance = Arc::new(maintenance::MaintenanceSteps::new(config.clone(), aws.clone()));
    let registry = StepRegistry::new()
        .with(
            StepKind::Deploy,
            Arc::new(helm::Deploy::new(config.clone()).with_platforms(platforms.clone())),
        )
        .with(
            StepKind::RollbackDeploy,
            Arc::new(helm::RollbackDeploy::new(config.clone())),
        )
        .with(
            StepKind::Uninstall,
            Arc::new(helm::Uninstall::new(config.clone())),
        )
        .with(StepKind::Verify, verify.clone())
        .with(StepKind::VerifyRollback, verify)
        .with(
            StepKind::CheckArtifact,
            Arc::new(artifact::CheckArtifact::new(config.artifact.clone(), aws.clone())),
        )
        .with(
            StepKind::Backup,
            Arc::new(backup::SnapshotDatabase::before_upgrade(
                config.backup.clone(),
                aws.clone(),
            )),
        )
        .with(
            StepKind::FinalBackup,
            Arc::new(backup::SnapshotDatabase::final_backup(
                config.backup.clone(),
                aws.clone(),
            )),
        )
        .with(
            StepKind::WriteConfig,
            Arc::new(self::config::WriteConfig::new(aws.clone())),
        )
        .with(
            StepKind::DeleteConfig,
            Arc::new(self::config::DeleteConfig::new(aws.clone())),
        )
        .with(StepKind::EnsureCertificates, certificates.clone())
        .with(
            StepKind::ReleaseCertificates,
            Arc::new(maintenance::WithoutMaintenance::new(
                maintenance.clone(),
                certificates,
            )),
        )
        .with(StepKind::Quiesce, maintenance.clone())
        .with(StepKind::Reopen, maintenance);
    infra::register(registry, config.clone(), aws.clone(), platforms)
}

/// The preview rollouts ask before they start ([`crate::ports::ChangePreview`]): the
/// stack's change set and the chart's manifest diff, with the same settings, clients,
/// `helm` and platform versions as the steps.
pub fn change_preview(
    config: Arc<StepsConfig>,
    aws: Arc<AwsClients>,
    platforms: Option<Arc<dyn PlatformArtifacts>>,
) -> ChangePreviewer {
    let platforms = platform::PlatformSource::new(platforms);
    ChangePreviewer {
        stack: infra::StackPreviewer(infra::InfraSteps::new(config.clone(), aws, platforms.clone())),
        chart: helm::ChartPreview::new(config, platforms),
    }
}

/// [`crate::ports::ChangePreview`] on CloudFormation (the stack) and Helm (the chart).
pub struct ChangePreviewer {
    stack: infra::StackPreviewer,
    chart: helm::ChartPreview,
}

#[async_trait::async_trait]
impl crate::ports::ChangePreview for ChangePreviewer {
    async fn preview_stack(
        &self,
        tenant: &crate::record::TenantRecord,
        desired: &crate::domain::TenantSpec,
        release: &crate::domain::ReleaseVersion,
    ) -> Result<crate::ports::StackPreview, String> {
        self.stack.preview_stack(tenant, desired, release).await
    }

    async fn preview_chart(
        &self,
        tenant: &crate::record::TenantRecord,
        desired: &crate::domain::TenantSpec,
        release: &crate::domain::ReleaseVersion,
    ) -> Result<String, String> {
        self.chart
            .diff(tenant, desired, release)
            .await
            .map_err(|e| format!("previewing the chart of tenant {}: {e}", tenant.id()))
    }
}
