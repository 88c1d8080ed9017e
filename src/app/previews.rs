//! The preview of a rollout (`rollout plan --diff`): for each distinct (region, tier,
//! platform version) among the tenants it moves, what one representative tenant's
//! stack update would change, and whether the replacement guard refuses it. Tenants
//! of one group get the same template with the same kind of parameters, so one
//! change set stands for all of them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::change_set::{refused_changes, RefusedChange, ResourceChange};
use crate::domain::rollout::Plan;
use crate::domain::{PlatformVersion, Region, ReleaseVersion, RolloutSpec, TenantId, TenantSpec, Tier};
use crate::ports::{ChangePreview, StackPreview, TenantStore};
use crate::record::TenantRecord;
use crate::rollout::{Target, TenantRevision};

use super::rollouts::RolloutError;

/// The preview of a rollout, group by group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanPreview {
    pub groups: Vec<GroupPreview>,
}

impl PlanPreview {
    /// The groups the replacement guard refuses.
    pub fn refused(&self) -> impl Iterator<Item = &GroupPreview> {
        self.groups.iter().filter(|g| !g.refused.is_empty())
    }

    /// One line per refused change, naming the group it stands for.
    pub fn refusal(&self) -> Option<String> {
        let lines: Vec<String> = self
            .refused()
            .flat_map(|g| {
                g.refused.iter().map(move |r| {
                    format!(
                        "tenants of {} ({} tenant(s), e.g. {}): {r}",
                        g.label(),
                        g.tenants.len(),
                        g.representative
                    )
                })
            })
            .collect();
        (!lines.is_empty()).then(|| lines.join("; "))
    }
}

/// What the rollout would change for one group of tenants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPreview {
    pub region: Region,
    pub tier: Tier,
    /// The platform version (template and chart); none: the one built into tenantctl.
    pub platform: Option<PlatformVersion>,
    /// The tenant whose stack was previewed.
    pub representative: TenantId,
    /// Every tenant of the rollout the preview stands for.
    pub tenants: Vec<TenantId>,
    /// False when the tenant has no stack yet: the change would create it.
    pub stack_exists: bool,
    /// What the stack update would do, resource by resource (empty: nothing).
    pub changes: Vec<ResourceChange>,
    /// Replacements or removals of the tenant's data the spec does not allow.
    pub refused: Vec<RefusedChange>,
    /// The unified diff of the release's manifests (`helm template`), from the chart as
    /// deployed now to the chart after the change; empty: no change; none: not
    /// rendered (`chart_unavailable` says why).
    #[serde(default)]
    pub chart_diff: Option<String>,
    /// Why the manifests could not be rendered; the rest of the preview stands.
    #[serde(default)]
    pub chart_unavailable: Option<String>,
}

impl GroupPreview {
    pub fn label(&self) -> String {
        let platform = self
            .platform
            .map(|p| format!("platform {p}"))
            .unwrap_or_else(|| "the built-in platform".into());
        format!("{} {} on {platform}", self.region, self.tier)
    }
}

/// Previews `plan`'s tenants, one representative per group, with `spec`'s allowance.
pub(super) async fn preview_plan(
    tenants: &dyn TenantStore,
    previewer: &dyn ChangePreview,
    spec: &RolloutSpec,
    plan: &Plan,
) -> Result<PlanPreview, RolloutError> {
    type Key = (Region, Tier, Option<PlatformVersion>);
    let mut groups: BTreeMap<Key, Vec<TenantId>> = BTreeMap::new();
    for planned in plan.waves.iter().flat_map(|w| &w.tenants) {
        let record = tenants.load(&planned.id).await?;
        let Some((after, _)) = after_the_change(spec, &record) else {
            continue;
        };
        let key = (after.region.clone(), after.tier, after.platform);
        groups.entry(key).or_default().push(planned.id.clone());
    }
    let mut out = Vec::new();
    for ((region, tier, platform), mut ids) in groups {
        ids.sort();
        let representative = ids[0].clone();
        let record = tenants.load(&representative).await?;
        let Some((after, release)) = after_the_change(spec, &record) else {
            continue;
        };
        let preview = previewer
            .preview_stack(&record, &after, &release)
            .await
            .map_err(RolloutError::Preview)?;
        let (stack_exists, changes) = match preview {
            StackPreview::NoStack => (false, Vec::new()),
            StackPreview::Changes(changes) => (true, changes),
        };
        let refused = refused_changes(&changes, &spec.strategy.allow_replacement);
        // A chart that cannot be rendered is reported, not fatal: the stack's change
        // set and the replacement guard do not depend on it.
        let (chart_diff, chart_unavailable) = match previewer.preview_chart(&record, &after, &release).await {
            Ok(diff) => (Some(diff), None),
            Err(reason) => (None, Some(reason)),
        };
        out.push(GroupPreview {
            region,
            tier,
            platform,
            representative,
            tenants: ids,
            stack_exists,
            changes,
            refused,
            chart_diff,
            chart_unavailable,
        });
    }
    Ok(PlanPreview { groups: out })
}

/// The spec a tenant would have once `spec` moved it (its platform and tier set to the
/// rollout's target) and the release it would run; `None` for a tenant that runs no
/// release.
fn after_the_change(spec: &RolloutSpec, record: &TenantRecord) -> Option<(TenantSpec, ReleaseVersion)> {
    let running = record.state.current_release()?;
    let target = Target::of(spec, running, &TenantRevision::of(&record.spec, &record.facts));
    let mut after = record.spec.clone();
    after.platform = target.spec.platform;
    after.tier = target.spec.tier;
    Some((after, target.release))
}
