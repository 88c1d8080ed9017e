//! Drift checks: the tenant's live stack (parameters the orchestrator sets, template
//! by content), SSM configuration and Helm release (values of the deployed revision,
//! chart platform) against what its spec and release ask for. The desired side comes
//! from the very functions the steps apply it with (`InfraSteps::owned_parameters`
//! and `template`, `config::configuration`, `helm::render_values`), so a check and a
//! reconcile can never disagree on what "in sync" means. Read-only.

pub mod compare;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use tracing::instrument;

use crate::ports::{DriftCheckFailed, DriftChecker, PlatformArtifacts};
use crate::record::{DriftFinding, DriftKind, TenantRecord};
use crate::step::StepOutcome;
use crate::steps::helm::{self, HelmError};
use crate::steps::infra::{InfraError, InfraSteps};
use crate::steps::platform::PlatformSource;
use crate::steps::{config, names, AwsClients, StepsConfig};

/// The drift checker on AWS and the Helm CLI, configured like the steps.
pub struct AwsDriftChecker {
    config: Arc<StepsConfig>,
    aws: Arc<AwsClients>,
    infra: InfraSteps,
    helm_bin: String,
}

impl AwsDriftChecker {
    pub fn new(
        config: Arc<StepsConfig>,
        aws: Arc<AwsClients>,
        platforms: Option<Arc<dyn PlatformArtifacts>>,
    ) -> Self {
        let infra = InfraSteps::new(config.clone(), aws.clone(), PlatformSource::new(platforms));
        let helm_bin = config.helm.binary();
        Self {
            config,
            aws,
            infra,
            helm_bin,
        }
    }

    async fn stack(&self, tenant: &TenantRecord) -> Result<Vec<DriftFinding>, DriftCheckFailed> {
        let spec = &tenant.spec;
        let stack = names::stack(spec);
        let desired = self.infra.owned_parameters(spec).map_err(infra_failed)?;
        let Some((live, live_template)) = self.infra.live_stack(spec).await.map_err(infra_failed)? else {
            return Ok(vec![DriftFinding {
                kind: DriftKind::Stack,
                name: stack,
                desired: Some("exists".into()),
                live: None,
            }]);
        };
        let template = self.infra.template(spec).await.map_err(infra_failed)?;
        let mut found = compare::stack_parameters(&desired, &live);
        found.extend(compare::stack_template(&stack, &template, &live_template));
        Ok(found)
    }

    async fn configuration(&self, tenant: &TenantRecord) -> Result<Vec<DriftFinding>, DriftCheckFailed> {
        let spec = &tenant.spec;
        let wanted =
            config::configuration(spec, &tenant.facts.stack_outputs).map_err(|missing| DriftCheckFailed {
                reason: format!(
                "the configuration needs stack outputs {} and they are not recorded; reconcile the tenant",
                missing.join(", ")
            ),
                retryable: false,
            })?;
        let prefix = names::ssm_prefix(spec);
        let ssm = &self.aws.tenant(spec).ssm;
        let existing: BTreeMap<String, config::Stored> = config::parameters_under(ssm, &prefix)
            .await
            .map_err(outcome_failed)?
            .into_iter()
            .filter_map(|(name, stored)| Some((name.strip_prefix(&format!("{prefix}/"))?.to_owned(), stored)))
            .collect();
        Ok(compare::ssm_parameters(&wanted, &existing))
    }

    async fn helm_release(&self, tenant: &TenantRecord) -> Result<Vec<DriftFinding>, DriftCheckFailed> {
        let spec = &tenant.spec;
        let release = tenant.state.current_release().ok_or_else(|| DriftCheckFailed {
            reason: format!("tenant {} runs no release ({})", spec.id, tenant.state.label()),
            retryable: false,
        })?;
        let desired = helm::render_values(
            spec,
            release,
            &tenant.facts,
            &self.config.helm.ingress_group_prefix,
        )
        .map_err(|e| DriftCheckFailed {
            reason: e.to_string(),
            retryable: false,
        })?;
        let cli =
            helm::release_cli(&self.config, &self.helm_bin, spec).map_err(|reason| DriftCheckFailed {
                reason,
                retryable: false,
            })?;
        let Some(deployed) = cli.history().await.map_err(helm_failed)?.deployed() else {
            return Ok(vec![DriftFinding {
                kind: DriftKind::HelmRelease,
                name: cli.release.clone(),
                desired: Some(format!("deployed in {}", cli.namespace)),
                live: None,
            }]);
        };
        let live = cli.values(deployed).await.map_err(helm_failed)?;
        let mut found = compare::helm_values(&desired, &live);
        if tenant.facts.chart_platform != spec.platform {
            let show = |p: Option<crate::domain::PlatformVersion>| {
                Some(p.map_or_else(|| "built-in".to_owned(), |v| v.to_string()))
            };
            found.push(DriftFinding {
                kind: DriftKind::HelmRelease,
                name: "chart platform".into(),
                desired: show(spec.platform),
                live: show(tenant.facts.chart_platform),
            });
        }
        Ok(found)
    }
}

#[async_trait]
impl DriftChecker for AwsDriftChecker {
    #[instrument(skip_all, fields(tenant = %tenant.id()))]
    async fn check(&self, tenant: &TenantRecord) -> Result<Vec<DriftFinding>, DriftCheckFailed> {
        let mut found = self.stack(tenant).await?;
        found.extend(self.configuration(tenant).await?);
        found.extend(self.helm_release(tenant).await?);
        found.sort();
        Ok(found)
    }
}

fn infra_failed(err: InfraError) -> DriftCheckFailed {
    let retryable = matches!(&err, InfraError::Aws { retryable: true, .. })
        || matches!(&err, InfraError::Platform(p) if p.retryable);
    DriftCheckFailed {
        reason: err.to_string(),
        retryable,
    }
}

fn helm_failed(err: HelmError) -> DriftCheckFailed {
    DriftCheckFailed {
        retryable: err.is_transient() || err.is_operation_in_progress(),
        reason: err.to_string(),
    }
}

fn outcome_failed(outcome: StepOutcome) -> DriftCheckFailed {
    match outcome {
        StepOutcome::Failed { retryable, reason } => DriftCheckFailed { reason, retryable },
        other => DriftCheckFailed {
            reason: format!("unexpected outcome {other:?}"),
            retryable: false,
        },
    }
}
