//! Helm steps: deploy the tenant's release of `charts/tenant`, roll it back to the
//! revision that ran before an upgrade, uninstall it. They drive the `helm` CLI as an
//! operator would and read back Helm's own record (history, values per revision) to
//! stay idempotent: running a step twice never makes a second revision.

mod cli;
mod deploy;
mod preview;
mod rollback;
mod values;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::TenantSpec;
use crate::record::TenantFacts;
use crate::step::StepOutcome;

use super::{names, StepsConfig};

pub use cli::{parse_go_duration, HelmCli, HelmError, History, HistoryEntry};
pub use deploy::Deploy;
pub use preview::ChartPreview;
pub use rollback::{RollbackDeploy, Uninstall};
pub use values::{render as render_values, ValuesError};

/// How Helm is run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HelmConfig {
    /// The `helm` executable (default `helm`, found on `PATH`). The environment
    /// variable `HELM_BIN`, when set, takes precedence.
    pub helm_bin: String,
    /// The chart to deploy: a directory, a packaged chart or a repository reference
    /// (default `charts/tenant`, relative to the worker's working directory).
    pub chart: String,
    /// Helm's `--timeout` for waiting on the workload, as a Go duration (default `5m0s`).
    pub timeout: String,
    /// The tenant joins the shared ALB's IngressGroup named this prefix followed by its
    /// region (default `tenants-`, giving `tenants-us-east-1`).
    pub ingress_group_prefix: String,
}

impl Default for HelmConfig {
    fn default() -> Self {
        Self {
            helm_bin: "helm".into(),
            chart: "charts/tenant".into(),
            timeout: "5m0s".into(),
            ingress_group_prefix: "tenants-".into(),
        }
    }
}

impl HelmConfig {
    /// The executable to run: `HELM_BIN` if set, else `helm_bin`.
    pub fn binary(&self) -> String {
        binary_from(&self.helm_bin, std::env::var("HELM_BIN").ok())
    }
}

fn binary_from(configured: &str, env: Option<String>) -> String {
    env.filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| configured.to_owned())
}

/// How soon to look again when Helm is busy with another operation on the release.
const BUSY_POLL: Duration = Duration::from_secs(10);

/// The CLI bound to the tenant's release: its kube context, namespace and name.
pub(crate) fn release_cli(config: &StepsConfig, bin: &str, spec: &TenantSpec) -> Result<HelmCli, String> {
    let region = config.region(&spec.region)?;
    if region.kube_context.trim().is_empty() {
        return Err(format!(
            "region {} has no kube_context; set regions.{}.kube_context in the steps configuration",
            spec.region, spec.region
        ));
    }
    HelmCli::new(
        bin.to_owned(),
        region.kube_context.clone(),
        names::namespace(spec),
        names::helm_release(spec),
        &config.helm.timeout,
    )
}

/// Maps a Helm failure to the step's outcome. An operation already in progress on the
/// release (ours from an earlier run, or someone else's) is waited for, not failed;
/// transient API trouble is retried; anything else fails the step, whose reason carries
/// Helm's own message.
fn helm_failure(err: HelmError, facts: &TenantFacts) -> StepOutcome {
    if err.is_operation_in_progress() {
        return StepOutcome::Pending {
            poll_after: BUSY_POLL,
            facts: facts.clone(),
            note: err.to_string(),
        };
    }
    StepOutcome::Failed {
        retryable: err.is_transient(),
        reason: err.to_string(),
    }
}

/// Pending while a revision of the release is still being installed, upgraded or
/// rolled back.
fn busy(history: &History, release: &str, facts: &TenantFacts) -> Option<StepOutcome> {
    history.pending().map(|entry| StepOutcome::Pending {
        poll_after: BUSY_POLL,
        facts: facts.clone(),
        note: format!(
            "revision {} of {release} is {}; waiting for that operation to finish",
            entry.revision, entry.status
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helm_bin_in_the_environment_wins_over_the_configuration() {
        assert_eq!(binary_from("helm", None), "helm");
        assert_eq!(
            binary_from("/opt/helm", Some("/usr/bin/helm3".into())),
            "/usr/bin/helm3"
        );
        assert_eq!(binary_from("/opt/helm", Some(" ".into())), "/opt/helm");
    }

    #[test]
    fn an_unconfigured_region_or_kube_context_is_a_configuration_error() {
        let spec = TenantSpec {
            id: crate::domain::TenantId::parse("acme").unwrap(),
            region: crate::domain::Region::parse("eu-west-1").unwrap(),
            environment: crate::domain::Environment::parse("prod").unwrap(),
            group: crate::domain::Group::default_group(),
            tier: crate::domain::Tier::Small,
            hostnames: vec![crate::domain::Hostname::parse("acme.example.com").unwrap()],
            pinned_release: None,
            maintenance: None,
            platform: None,
            pinned_platform: None,
        };
        let mut config = StepsConfig::default();
        let err = release_cli(&config, "helm", &spec).unwrap_err();
        assert!(err.contains("region eu-west-1 is not configured"), "{err}");
        config.regions.insert("eu-west-1".into(), Default::default());
        let err = release_cli(&config, "helm", &spec).unwrap_err();
        assert!(err.contains("kube_context"), "{err}");
        config.regions.get_mut("eu-west-1").unwrap().kube_context = "eks-eu".into();
        config.helm.timeout = "five minutes".into();
        let err = release_cli(&config, "helm", &spec).unwrap_err();
        assert!(err.contains("helm.timeout"), "{err}");
        config.helm.timeout = "2m".into();
        let cli = release_cli(&config, "helm", &spec).unwrap();
        assert_eq!(
            (cli.namespace.as_str(), cli.release.as_str()),
            ("tenant-acme", "acme")
        );
        assert_eq!(cli.wait_limit, Duration::from_secs(180));
    }
}
