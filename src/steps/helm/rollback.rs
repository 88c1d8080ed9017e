//! RollbackDeploy returns the release to the revision recorded before the upgrade
//! (its chart too, and so the platform version recorded with it); Uninstall removes it. Both are idempotent by reading Helm's history first.

use std::sync::Arc;

use async_trait::async_trait;
use tracing::instrument;

use crate::record::TenantFacts;
use crate::step::{Step, StepContext, StepOutcome};
use crate::steps::StepsConfig;

use super::{busy, helm_failure, release_cli, HelmCli};

pub struct RollbackDeploy {
    config: Arc<StepsConfig>,
    bin: String,
}

impl RollbackDeploy {
    pub fn new(config: Arc<StepsConfig>) -> Self {
        let bin = config.helm.binary();
        Self { config, bin }
    }

    async fn roll_back(&self, cli: &HelmCli, target: u32, mut facts: TenantFacts) -> StepOutcome {
        let history = match cli.history().await {
            Ok(h) => h,
            Err(e) => return helm_failure(e, &facts),
        };
        let release = &cli.release;
        if history.0.is_empty() {
            return StepOutcome::fail(format!(
                "release {release} is not installed in namespace {} (context {}), so it cannot return to \
                 revision {target}; check the cluster, then retry or restore the tenant",
                cli.namespace, cli.kube_context
            ));
        }
        if let Some(pending) = busy(&history, release, &facts) {
            return pending;
        }
        if !history.0.iter().any(|e| e.revision == target) {
            return StepOutcome::fail(format!(
                "revision {target} of {release} is no longer in Helm's history (pruned by --history-max?); \
                 deploy the previous release with an upgrade instead"
            ));
        }
        if let Some(deployed) = history.deployed() {
            if deployed == target {
                facts.helm_revision = Some(deployed);
                facts.chart_platform = facts.chart_platform_before_upgrade;
                return StepOutcome::done(format!("revision {target} is deployed"), facts);
            }
            // A rollback already made (before a crash) is a newer revision with the
            // target's values; making another would only add history.
            let (current, wanted) = match (cli.values(deployed).await, cli.values(target).await) {
                (Ok(current), Ok(wanted)) => (current, wanted),
                (Err(e), _) | (_, Err(e)) => return helm_failure(e, &facts),
            };
            if current == wanted {
                facts.helm_revision = Some(deployed);
                facts.chart_platform = facts.chart_platform_before_upgrade;
                return StepOutcome::done(
                    format!("revision {deployed} already runs the values of revision {target}"),
                    facts,
                );
            }
        }
        if let Err(e) = cli.rollback(target).await {
            return helm_failure(e, &facts);
        }
        let now = match cli.history().await {
            Ok(h) => h.deployed(),
            Err(e) => return helm_failure(e, &facts),
        };
        facts.helm_revision = now;
        facts.chart_platform = facts.chart_platform_before_upgrade;
        let now = now.map_or_else(|| "none deployed".into(), |n| format!("revision {n}"));
        StepOutcome::done(format!("rolled back to revision {target} (now {now})"), facts)
    }
}

#[async_trait]
impl Step for RollbackDeploy {
    #[instrument(skip_all, fields(tenant = %ctx.tenant.id(), step = %ctx.step))]
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
        let facts = ctx.tenant.facts.clone();
        let Some(target) = facts.helm_revision_before_upgrade else {
            return StepOutcome::done(
                "nothing to roll back: no Helm revision was recorded before the upgrade",
                facts,
            );
        };
        match release_cli(&self.config, &self.bin, &ctx.tenant.spec) {
            Ok(cli) => self.roll_back(&cli, target, facts).await,
            Err(e) => StepOutcome::fail(e),
        }
    }
}

pub struct Uninstall {
    config: Arc<StepsConfig>,
    bin: String,
}

impl Uninstall {
    pub fn new(config: Arc<StepsConfig>) -> Self {
        let bin = config.helm.binary();
        Self { config, bin }
    }
}

#[async_trait]
impl Step for Uninstall {
    #[instrument(skip_all, fields(tenant = %ctx.tenant.id(), step = %ctx.step))]
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
        let mut facts = ctx.tenant.facts.clone();
        let cli = match release_cli(&self.config, &self.bin, &ctx.tenant.spec) {
            Ok(cli) => cli,
            Err(e) => return StepOutcome::fail(e),
        };
        // --ignore-not-found: a release that is already gone is what this step wants.
        if let Err(e) = cli.uninstall().await {
            return helm_failure(e, &facts);
        }
        facts.helm_revision = None;
        facts.helm_revision_before_upgrade = None;
        facts.chart_platform = None;
        facts.chart_platform_before_upgrade = None;
        StepOutcome::done(
            format!(
                "release {} uninstalled from namespace {} (or was already gone)",
                cli.release, cli.namespace
            ),
            facts,
        )
    }
}
