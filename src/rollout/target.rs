//! What a rollout moves one tenant to. A spec names any of a release, a platform
//! version and a spec change; whatever it leaves out, the tenant keeps. The planner
//! and the controller ask the same questions here: is the tenant there already, and
//! which machine event takes it there.

use crate::domain::rollout::SpecRevision;
use crate::domain::{PlatformVersion, ReleaseVersion, RolloutSpec, TenantSpec, Tier};
use crate::machine::TenantEvent;
use crate::record::TenantFacts;

/// A tenant's desired platform and tier and the platform its stack and chart were
/// last applied with: what a rollout compares with its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRevision {
    pub platform: Option<PlatformVersion>,
    /// Set when the tenant is pinned to its platform: platform rollouts skip it.
    pub pinned_platform: Option<PlatformVersion>,
    pub tier: Tier,
    pub stack_platform: Option<PlatformVersion>,
    pub chart_platform: Option<PlatformVersion>,
}

impl TenantRevision {
    pub fn of(spec: &TenantSpec, facts: &TenantFacts) -> Self {
        Self {
            platform: spec.platform,
            pinned_platform: spec.pinned_platform,
            tier: spec.tier,
            stack_platform: facts.stack_platform,
            chart_platform: facts.chart_platform,
        }
    }

    /// The platform version the tenant is pinned to, when `spec` would move it to
    /// another one: such a tenant is skipped, as a release pin is.
    pub fn platform_pin_against(&self, spec: &RolloutSpec) -> Option<PlatformVersion> {
        let pin = self.pinned_platform?;
        (spec.platform.is_some_and(|p| p != pin)).then_some(pin)
    }

    /// A tenant on the template and chart built into `tenantctl`, applied.
    pub fn built_in(tier: Tier) -> Self {
        Self {
            platform: None,
            pinned_platform: None,
            tier,
            stack_platform: None,
            chart_platform: None,
        }
    }

    /// The spec fields a rollout may change, as the tenant's spec holds them now.
    pub fn desired(&self) -> SpecRevision {
        SpecRevision {
            platform: self.platform,
            tier: self.tier,
        }
    }

    /// Whether the stack and the chart were last applied with `platform`.
    fn applied(&self, platform: Option<PlatformVersion>) -> bool {
        self.stack_platform == platform && self.chart_platform == platform
    }
}

/// The revision a rollout moves one tenant to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub release: ReleaseVersion,
    pub spec: SpecRevision,
}

impl Target {
    /// The target of `spec` for a tenant running `running` with `tenant`'s revision:
    /// the rollout's release, platform and tier, or the tenant's own where the rollout
    /// names none.
    pub fn of(spec: &RolloutSpec, running: &ReleaseVersion, tenant: &TenantRevision) -> Self {
        Self {
            release: spec.release.clone().unwrap_or_else(|| running.clone()),
            spec: SpecRevision {
                platform: spec.platform.or(tenant.platform),
                tier: spec.tier().unwrap_or(tenant.tier),
            },
        }
    }

    /// Whether a tenant running `running` is there already: on the release, its spec
    /// holding the platform and tier, and the platform applied. A reconcile rollout
    /// applies the revision again whatever it looks like.
    pub fn reached(&self, spec: &RolloutSpec, running: &ReleaseVersion, tenant: &TenantRevision) -> bool {
        !spec.reconcile
            && *running == self.release
            && tenant.desired() == self.spec
            && tenant.applied(self.spec.platform)
    }

    /// The machine event that applies the target to a tenant running `running`: an
    /// upgrade when the release changes, a reconcile on the release it runs otherwise.
    pub fn event(&self, running: &ReleaseVersion) -> TenantEvent {
        if *running == self.release {
            TenantEvent::Reconcile
        } else {
            TenantEvent::Upgrade {
                release: self.release.clone(),
            }
        }
    }
}
