//! A fleet rollout's specification: which revision (release, platform, spec change),
//! which tenants, and how to move them.
//! Parsed once (from JSON, or from the command line's text forms) into types that
//! cannot hold an invalid spec; the planner and the controller trust it.

mod plan;
mod schema;
mod strategy;
mod waves;

use std::collections::BTreeSet;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::schema::{string, string_schema};
use super::{
    dns_label_problem, string_newtype, Environment, Group, InvalidValue, PlatformVersion, Region,
    ReleaseVersion, TenantId, Tier,
};

pub use plan::{Deferral, Plan, PlannedTenant, SkipReason, Skipped, Wave, WaveKind};
pub use strategy::{Approvals, Bake, BreachAction, OnBreach, OutageBudget, RollbackScope, Strategy};
pub use waves::{FailureBudget, Percent, WaveSize, Waves};

/// A rollout's identifier: a DNS label of 3–63 characters that starts with a letter,
/// given by the user or derived from the date and release (`r-2026-11-21-1-4-2`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RolloutId(String);

impl RolloutId {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let example = "(example: r-2026-11-21-1-4-2)";
        let problem = dns_label_problem(s, 3, 63).or_else(|| {
            (!s.starts_with(|c: char| c.is_ascii_lowercase()))
                .then(|| "must start with a lowercase letter".to_owned())
        });
        match problem {
            Some(problem) => Err(InvalidValue::new("rollout id", s, format!("{problem} {example}"))),
            None => Ok(Self(s.to_owned())),
        }
    }

    fn json_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string(
            "^[a-z][a-z0-9-]{1,61}[a-z0-9]$",
            (3, Some(63)),
            "A rollout id: a DNS label of 3-63 characters starting with a lowercase letter.",
            "r-2026-11-21-1-4-2",
        )
    }

    /// The id of a rollout of `release` started on `date`: `r-2026-11-21-1-4-2`. Two
    /// rollouts of one release on one day get the same id; the second is refused by
    /// the store and needs an id of its own.
    pub fn derived(release: &ReleaseVersion, date: NaiveDate) -> Self {
        Self::from_words(&format!("r-{}-{release}", date.format("%Y-%m-%d")))
    }

    /// The id of a rollout of `spec` started on `date`: as [`Self::derived`] for a
    /// release alone, else its targets in words (`r-2026-11-21-platform-2026-12-1`,
    /// `r-2026-11-21-tier-large`, `r-2026-11-21-reconcile`).
    pub fn derived_for(spec: &RolloutSpec, date: NaiveDate) -> Self {
        let mut words = format!("r-{}", date.format("%Y-%m-%d"));
        if let Some(release) = &spec.release {
            words.push_str(&format!("-{release}"));
        }
        if let Some(platform) = &spec.platform {
            words.push_str(&format!("-platform-{platform}"));
        }
        if let Some(tier) = spec.tier() {
            words.push_str(&format!("-tier-{tier}"));
        }
        if spec.reconcile {
            words.push_str("-reconcile");
        }
        Self::from_words(&words)
    }

    fn from_words(words: &str) -> Self {
        let mut id = String::new();
        for c in words.chars() {
            let c = if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            };
            if !(c == '-' && id.ends_with('-')) {
                id.push(c);
            }
        }
        id.truncate(63);
        while id.ends_with('-') {
            id.pop();
        }
        Self(id)
    }
}
string_newtype!(RolloutId);
string_schema!(RolloutId);

/// Which tenants a rollout moves. Each non-empty list narrows the selection (a tenant
/// must match one entry of every non-empty list); an empty list matches any tenant.
/// `exclude` removes tenants whatever else matches, and they are reported as skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SelectorFields", into = "SelectorFields")]
pub struct Selector {
    pub regions: BTreeSet<Region>,
    pub groups: BTreeSet<Group>,
    pub tiers: BTreeSet<Tier>,
    pub tenants: BTreeSet<TenantId>,
    pub exclude: BTreeSet<TenantId>,
    /// Only tenants whose last drift check found drift (a reconcile rollout's target).
    pub drifted: bool,
    /// Only tenants of this environment; `None` for every environment.
    pub environment: Option<Environment>,
}

/// The JSON form of [`Selector`]: lists, each optional.
#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SelectorFields {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    regions: Vec<Region>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    groups: Vec<Group>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tiers: Vec<Tier>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tenants: Vec<TenantId>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    exclude: Vec<TenantId>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    drifted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    environment: Option<Environment>,
}

impl Selector {
    /// Whether a tenant matches every non-empty list (exclusions aside).
    pub fn matches(&self, id: &TenantId, region: &Region, group: &Group, tier: Tier) -> bool {
        fn admits<T: Ord>(set: &BTreeSet<T>, value: &T) -> bool {
            set.is_empty() || set.contains(value)
        }
        admits(&self.regions, region)
            && admits(&self.groups, group)
            && admits(&self.tiers, &tier)
            && admits(&self.tenants, id)
    }

    pub fn excludes(&self, id: &TenantId) -> bool {
        self.exclude.contains(id)
    }

    /// Whether a tenant of `environment` is in the selector's environment (any, when
    /// it names none).
    pub fn admits_environment(&self, environment: &Environment) -> bool {
        self.environment.as_ref().is_none_or(|e| e == environment)
    }
}

impl TryFrom<SelectorFields> for Selector {
    type Error = InvalidValue;
    fn try_from(f: SelectorFields) -> Result<Self, Self::Error> {
        let selector = Selector {
            regions: f.regions.into_iter().collect(),
            groups: f.groups.into_iter().collect(),
            tiers: f.tiers.into_iter().collect(),
            tenants: f.tenants.into_iter().collect(),
            exclude: f.exclude.into_iter().collect(),
            drifted: f.drifted,
            environment: f.environment,
        };
        if let Some(both) = selector.tenants.intersection(&selector.exclude).next() {
            return Err(InvalidValue::new(
                "selector",
                both.as_str(),
                "is listed in both tenants and exclude; remove it from one of them",
            ));
        }
        Ok(selector)
    }
}

impl From<Selector> for SelectorFields {
    fn from(s: Selector) -> Self {
        SelectorFields {
            regions: s.regions.into_iter().collect(),
            groups: s.groups.into_iter().collect(),
            tiers: s.tiers.into_iter().collect(),
            tenants: s.tenants.into_iter().collect(),
            exclude: s.exclude.into_iter().collect(),
            drifted: s.drifted,
            environment: s.environment,
        }
    }
}

/// What a rollout changes in each selected tenant's spec, beside its release and
/// platform. Each field left out keeps the tenant's own value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
}

/// What happens once a rollout completes, beside ending its hold on the tenants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OnComplete {
    /// Set the version policy of the selector's environment to the rollout's release
    /// and platform: the default of each region its waves covered, or the override of
    /// its group when the selector names exactly one group. New tenants then start on
    /// what the fleet was moved to.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub advance_policy: bool,
}

/// The parts of a tenant's desired revision a rollout may set besides the release:
/// what a member held before the rollout moved it, and what a rollback restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecRevision {
    /// `None`: the template and chart built into `tenantctl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformVersion>,
    pub tier: Tier,
}

/// A rollout: move the selected tenants to a target revision, following `strategy`.
/// The target is any of a `release`, a `platform` version, a `change` of the spec, and
/// `reconcile` (apply each tenant's desired revision again even where it looks
/// applied); at least one must be given. What a spec leaves out, each tenant keeps:
/// a platform rollout runs every tenant on the release it runs. The selector defaults
/// to every tenant and the strategy to its documented defaults. Unknown fields are
/// refused, so a misspelt option is an error rather than a silently ignored safety
/// setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RolloutSpecFields", into = "RolloutSpecFields")]
pub struct RolloutSpec {
    pub release: Option<ReleaseVersion>,
    pub platform: Option<PlatformVersion>,
    pub change: Option<RolloutChange>,
    pub reconcile: bool,
    pub selector: Selector,
    pub strategy: Strategy,
    pub on_complete: OnComplete,
}

/// The JSON form of [`RolloutSpec`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RolloutSpecFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    release: Option<ReleaseVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    platform: Option<PlatformVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    change: Option<RolloutChange>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    reconcile: bool,
    #[serde(default)]
    selector: Selector,
    #[serde(default)]
    strategy: Strategy,
    #[serde(default, skip_serializing_if = "is_default")]
    on_complete: OnComplete,
}

fn is_default(on_complete: &OnComplete) -> bool {
    *on_complete == OnComplete::default()
}

impl TryFrom<RolloutSpecFields> for RolloutSpec {
    type Error = InvalidValue;
    fn try_from(f: RolloutSpecFields) -> Result<Self, Self::Error> {
        if f.change.is_some_and(|c| c.tier.is_none()) {
            return Err(InvalidValue::new(
                "rollout spec",
                "change",
                "names no field to change; give one, e.g. \"change\": {\"tier\": \"large\"}",
            ));
        }
        if f.release.is_none() && f.platform.is_none() && f.change.is_none() && !f.reconcile {
            return Err(InvalidValue::new(
                "rollout spec",
                "target",
                "is missing; give at least one of `release`, `platform`, `change` (e.g. {\"tier\": \"large\"}) \
                 or `reconcile: true`",
            ));
        }
        if f.on_complete.advance_policy {
            if f.selector.environment.is_none() {
                return Err(InvalidValue::new(
                    "rollout spec",
                    "on_complete.advance_policy",
                    "needs the environment whose policy it advances; add \"environment\" to the selector, \
                     e.g. \"selector\": {\"environment\": \"prod\"}",
                ));
            }
            if f.release.is_none() && f.platform.is_none() {
                return Err(InvalidValue::new(
                    "rollout spec",
                    "on_complete.advance_policy",
                    "has nothing to advance the policy to; give a `release` or a `platform`",
                ));
            }
        }
        Ok(Self {
            release: f.release,
            platform: f.platform,
            change: f.change,
            reconcile: f.reconcile,
            selector: f.selector,
            strategy: f.strategy,
            on_complete: f.on_complete,
        })
    }
}

impl From<RolloutSpec> for RolloutSpecFields {
    fn from(s: RolloutSpec) -> Self {
        RolloutSpecFields {
            release: s.release,
            platform: s.platform,
            change: s.change,
            reconcile: s.reconcile,
            selector: s.selector,
            strategy: s.strategy,
            on_complete: s.on_complete,
        }
    }
}

impl RolloutSpec {
    /// A rollout of `release` to every tenant with the default strategy.
    pub fn new(release: ReleaseVersion) -> Self {
        Self {
            release: Some(release),
            platform: None,
            change: None,
            reconcile: false,
            selector: Selector::default(),
            strategy: Strategy::default(),
            on_complete: OnComplete::default(),
        }
    }

    /// The tier the rollout sets, if its change names one.
    pub fn tier(&self) -> Option<Tier> {
        self.change.and_then(|c| c.tier)
    }

    /// What the rollout moves tenants to, for people: the release alone (`1.4.2`) as
    /// before, else its parts (`release 1.4.2, platform 2026.12.1`, `tier large`).
    pub fn target_text(&self) -> String {
        if let (Some(release), None, None, false) =
            (&self.release, &self.platform, &self.change, self.reconcile)
        {
            return release.to_string();
        }
        self.target_label()
    }

    /// The target with each part named: `release 1.5.0, platform 2026.12.1`.
    pub fn target_label(&self) -> String {
        let mut parts = Vec::new();
        if let Some(release) = &self.release {
            parts.push(format!("release {release}"));
        }
        if let Some(platform) = &self.platform {
            parts.push(format!("platform {platform}"));
        }
        if let Some(tier) = self.tier() {
            parts.push(format!("tier {tier}"));
        }
        if self.reconcile {
            parts.push("reconcile".to_owned());
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests;
