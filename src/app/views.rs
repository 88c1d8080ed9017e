//! What the tenant use cases answer: views of the stored records, the same whether
//! the answer comes from the table or over the HTTP API (these are the API's response
//! bodies), so the wire format does not change when a record's layout does.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ports::TenantSummary;
use crate::record::{HistoryEvent, TenantRecord};

/// The lease of the worker running the tenant's step.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LeaseView {
    pub holder: String,
    pub fence: u64,
    pub expires_at: DateTime<Utc>,
}

/// What the tenant's steps recorded, in short.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FactsView {
    pub image: Option<String>,
    pub stack_id: Option<String>,
    pub helm_revision: Option<u32>,
    /// Database snapshots taken for the tenant, oldest first.
    pub snapshots: Vec<String>,
    pub certificates: usize,
}

/// The platform (template and chart) a tenant should run and what its steps last
/// applied. A version is a published platform version; `null` is the template and
/// chart built into `tenantctl`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlatformView {
    /// What the spec asks for.
    pub desired: Option<String>,
    /// Set when the tenant is pinned to its platform version: platform rollouts skip it.
    #[serde(default)]
    pub pinned: bool,
    /// What the stack was last applied with.
    pub applied_stack: Option<String>,
    /// What the deployed Helm revision's chart came from.
    pub applied_chart: Option<String>,
    /// The desired platform is not (or not fully) applied: the next upgrade or a
    /// reconcile applies it.
    pub differs: bool,
}

impl PlatformView {
    fn of(r: &TenantRecord) -> Self {
        let text = |v: Option<crate::domain::PlatformVersion>| v.map(|v| v.to_string());
        PlatformView {
            desired: text(r.spec.platform),
            pinned: r.spec.pinned_platform.is_some(),
            applied_stack: text(r.facts.stack_platform),
            applied_chart: text(r.facts.chart_platform),
            differs: !r.facts.platform_applied(r.spec.platform),
        }
    }
}

/// One tenant: spec, state, releases, last error, lease.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantView {
    pub id: String,
    pub region: String,
    pub environment: String,
    pub group: String,
    pub tier: String,
    pub hostnames: Vec<String>,
    pub pinned_release: Option<String>,
    /// Weekly windows in which rollouts may start it (text form); absent: any time.
    pub maintenance: Option<String>,
    pub platform: PlatformView,
    /// State name: Provisioning, Active, Upgrading, RollingBack, Restoring, Deprovisioning, Failed, Deleted.
    pub state: String,
    /// The step running or due, if any.
    pub step: Option<String>,
    pub current_release: Option<String>,
    pub target_release: Option<String>,
    pub last_error: Option<String>,
    /// Failed attempts of the current step.
    pub attempt: u32,
    pub lease: Option<LeaseView>,
    /// The rollout that last drove the tenant (it holds the tenant while it runs).
    pub rollout: Option<String>,
    pub facts: FactsView,
    /// Pass as `expected_version` to PATCH to change exactly this version.
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&TenantRecord> for TenantView {
    fn from(r: &TenantRecord) -> Self {
        let s = &r.spec;
        TenantView {
            id: s.id.to_string(),
            region: s.region.to_string(),
            environment: s.environment.to_string(),
            group: s.group.to_string(),
            tier: s.tier.to_string(),
            hostnames: s.hostnames.iter().map(|h| h.to_string()).collect(),
            pinned_release: s.pinned_release.as_ref().map(|r| r.to_string()),
            maintenance: s.maintenance.as_ref().map(|w| w.to_string()),
            platform: PlatformView::of(r),
            state: r.state.name().to_owned(),
            step: r.state.step().map(|s| s.to_string()),
            current_release: r.state.current_release().map(|v| v.to_string()),
            target_release: r.state.target_release().map(|v| v.to_string()),
            last_error: r.last_error.clone(),
            attempt: r.attempt,
            lease: r.lease.as_ref().map(|l| LeaseView {
                holder: l.owner.clone(),
                fence: l.fence,
                expires_at: l.expires_at,
            }),
            rollout: r.rollout.as_ref().map(|id| id.to_string()),
            facts: FactsView {
                image: r.facts.image.clone(),
                stack_id: r.facts.stack_id.clone(),
                helm_revision: r.facts.helm_revision,
                snapshots: r.facts.snapshots.clone(),
                certificates: r.facts.certificates.len(),
            },
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// One row of a listing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantRow {
    pub id: String,
    pub region: String,
    pub state: String,
    /// State and step, e.g. `Upgrading/Deploy`.
    pub label: String,
    pub release: Option<String>,
    pub group: String,
    pub updated_at: DateTime<Utc>,
}

impl From<TenantSummary> for TenantRow {
    fn from(t: TenantSummary) -> Self {
        TenantRow {
            id: t.id.to_string(),
            region: t.region.to_string(),
            state: t.state,
            label: t.label,
            release: t.release,
            group: t.group,
            updated_at: t.updated_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantPage {
    pub items: Vec<TenantRow>,
    /// Pass as `next_token` (with the same filters) for the next page; absent on the last.
    pub next_token: Option<String>,
}

/// One transition of a tenant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntry {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub from: String,
    pub to: String,
    pub cause: String,
    /// `worker:<owner>#<fence>`, `operator:<user>` or `api:<token name>`.
    pub actor: String,
    pub step: Option<String>,
    pub output: Option<String>,
    pub error: Option<String>,
}

impl From<HistoryEvent> for HistoryEntry {
    fn from(e: HistoryEvent) -> Self {
        HistoryEntry {
            seq: e.seq,
            at: e.at,
            from: e.from,
            to: e.to,
            cause: e.cause,
            actor: e.actor,
            step: e.step.map(|s| s.to_string()),
            output: e.output,
            error: e.error,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryPage {
    pub items: Vec<HistoryEntry>,
    pub next_token: Option<String>,
}
