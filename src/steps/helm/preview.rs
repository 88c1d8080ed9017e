//! The preview of a tenant's release manifests: the chart rendered as deployed now and
//! as a change would deploy it (`helm template`, offline), and the unified diff of the
//! two. Rollouts show it next to the stack's change set (`rollout plan --diff`).

use std::sync::Arc;

use crate::domain::{PlatformVersion, ReleaseVersion, TenantSpec};
use crate::record::{TenantFacts, TenantRecord};
use crate::steps::platform::PlatformSource;
use crate::steps::StepsConfig;

use super::deploy::{chart_file, values_file};
use super::{release_cli, values};

/// Renders the chart the way [`super::Deploy`] deploys it: the same values builder,
/// the same chart source, the same `helm` binary.
pub struct ChartPreview {
    config: Arc<StepsConfig>,
    bin: String,
    platforms: PlatformSource,
}

impl ChartPreview {
    pub fn new(config: Arc<StepsConfig>, platforms: PlatformSource) -> Self {
        let bin = config.helm.binary();
        Self {
            config,
            bin,
            platforms,
        }
    }

    /// The unified diff of the tenant's manifests from now (its spec, running release
    /// and applied platform) to `desired` on `release` (empty: no change). `Err` says
    /// what could not be rendered.
    ///
    /// The new release's image digest is only resolved when it deploys (CheckArtifact),
    /// and the chart takes images by digest only, so both sides render with the image
    /// the tenant runs now: the diff shows what the chart and the values change, not
    /// the image.
    pub async fn diff(
        &self,
        tenant: &TenantRecord,
        desired: &TenantSpec,
        release: &ReleaseVersion,
    ) -> Result<String, String> {
        let running = tenant.state.current_release().ok_or_else(|| {
            format!(
                "tenant {} runs no release yet: nothing is deployed to compare with",
                tenant.id()
            )
        })?;
        let facts = &tenant.facts;
        let now = self
            .render(&tenant.spec, running, facts, facts.chart_platform)
            .await
            .map_err(|e| format!("rendering the chart as deployed now: {e}"))?;
        let after = self
            .render(desired, release, facts, desired.platform)
            .await
            .map_err(|e| format!("rendering the chart after the change: {e}"))?;
        Ok(unified_diff(&now, &after))
    }

    /// `helm template` of `platform`'s chart (none: the configured chart) with the
    /// values the Deploy step builds for `spec` on `release`.
    async fn render(
        &self,
        spec: &TenantSpec,
        release: &ReleaseVersion,
        facts: &TenantFacts,
        platform: Option<PlatformVersion>,
    ) -> Result<String, String> {
        let values = values::render(spec, release, facts, &self.config.helm.ingress_group_prefix)
            .map_err(|e| e.to_string())?;
        let cli = release_cli(&self.config, &self.bin, spec)?;
        let file = values_file(&values).map_err(|e| format!("cannot write the Helm values file: {e}"))?;
        // Held until Helm is done: a platform version's chart is read from this file.
        let chart = chart_file(&self.platforms, spec, platform)
            .await
            .map_err(|e| e.reason)?;
        let chart_path = match &chart {
            Some(file) => file.path().to_string_lossy().into_owned(),
            None => self.config.helm.chart.clone(),
        };
        cli.template(&chart_path, file.path())
            .await
            .map_err(|e| e.to_string())
    }
}

/// `now` to `after` as a unified diff with three lines of context; empty when equal.
fn unified_diff(now: &str, after: &str) -> String {
    if now == after {
        return String::new();
    }
    similar::TextDiff::from_lines(now, after)
        .unified_diff()
        .context_radius(3)
        .header("deployed now", "after the change")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_shows_exactly_the_changed_lines() {
        let now = "kind: Deployment\nspec:\n  replicas: 2\n";
        let after = "kind: Deployment\nspec:\n  replicas: 3\n";
        let diff = unified_diff(now, after);
        let changed: Vec<&str> = diff
            .lines()
            .filter(|l| {
                (l.starts_with('-') || l.starts_with('+')) && !l.starts_with("---") && !l.starts_with("+++")
            })
            .collect();
        assert_eq!(changed, ["-  replicas: 2", "+  replicas: 3"]);
        assert!(
            diff.starts_with("--- deployed now\n+++ after the change\n"),
            "{diff}"
        );
        assert_eq!(unified_diff(now, now), "");
    }
}
