//! What the tenant use cases answer: views of the stored records, the same whether
//! the answer comes from the table or over the HTTP API (these are the API's response
//! bodies), so the wire format does not change when a record's layout does.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::domain::MaintenanceWindows;
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
    /// Since when the tenant's hostnames answer the maintenance page (`null`: they do
    /// not). Set by Quiesce, cleared by Reopen; a tenant that failed during an upgrade
    /// keeps it until a retry, rollback or restore reopens it.
    #[serde(default)]
    pub maintenance_since: Option<DateTime<Utc>>,
    /// The outage of the last completed upgrade or rollback, in seconds, as verify and
    /// the maintenance page measured it (`null`: none measured yet).
    #[serde(default)]
    pub last_outage_seconds: Option<u64>,
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

/// One side of a tenant's revision: release, platform version (`null`: built in),
/// tier and hostnames. On the applied side a part is `null` (or the list empty) when
/// no completed deployment recorded it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RevisionParts {
    pub release: Option<String>,
    pub platform: Option<String>,
    pub tier: Option<String>,
    pub hostnames: Vec<String>,
}

/// What the tenant should run against what its last completed deployment applied.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RevisionView {
    pub desired: RevisionParts,
    pub applied: RevisionParts,
    /// The parts that differ (`release`, `platform`, `tier`, `hostnames`): an upgrade
    /// in flight, or a spec change waiting for the next deployment (a rollout or
    /// `tenant reconcile`).
    pub differs: Vec<String>,
}

impl RevisionView {
    fn of(r: &TenantRecord) -> Self {
        let text = |v: Option<&dyn std::fmt::Display>| v.map(|v| v.to_string());
        let names = |h: &[crate::domain::Hostname]| h.iter().map(|h| h.to_string()).collect::<Vec<_>>();
        let desired = RevisionParts {
            release: text(
                (r.spec.pinned_release.as_ref())
                    .or(r.state.target_release())
                    .or(r.state.current_release())
                    .map(|v| v as &dyn std::fmt::Display),
            ),
            platform: r.spec.platform.map(|p| p.to_string()),
            tier: Some(r.spec.tier.to_string()),
            hostnames: names(&r.spec.hostnames),
        };
        let applied_spec = r.facts.applied_spec.as_ref();
        let applied = RevisionParts {
            release: r.state.current_release().map(|v| v.to_string()),
            platform: r.facts.stack_platform.map(|p| p.to_string()),
            tier: applied_spec.map(|a| a.tier.to_string()),
            hostnames: applied_spec.map(|a| names(&a.hostnames)).unwrap_or_default(),
        };
        let mut differs = Vec::new();
        if applied.release.is_some() && desired.release != applied.release {
            differs.push("release".to_owned());
        }
        if applied.release.is_some() && !r.facts.platform_applied(r.spec.platform) {
            differs.push("platform".to_owned());
        }
        if let Some(a) = applied_spec {
            if a.tier != r.spec.tier {
                differs.push("tier".to_owned());
            }
            if a.hostnames != r.spec.hostnames {
                differs.push("hostnames".to_owned());
            }
        }
        RevisionView {
            desired,
            applied,
            differs,
        }
    }
}

/// The tenant's database schema, as its releases declare them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SchemaView {
    /// The schema version the database is on (`null`: no deployed release declared one).
    #[schema(value_type = Option<String>, example = "2026.11.3")]
    pub current: Option<String>,
    /// A migration that ran or may have run and is not settled yet: the upgrade that
    /// started it has not finished, or its snapshot awaits restoring.
    pub migration: Option<MigrationView>,
}

/// A schema migration in flight.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MigrationView {
    pub from: Option<String>,
    pub to: String,
    /// The pre-upgrade snapshot a failed upgrade restores.
    pub snapshot: String,
    /// `automatic` or `approval`: how that restore happens.
    pub restore: String,
    pub started_at: DateTime<Utc>,
}

impl SchemaView {
    fn of(r: &TenantRecord) -> Self {
        SchemaView {
            current: r.facts.schema.as_ref().map(|s| s.to_string()),
            migration: r.facts.migration.as_ref().map(|m| MigrationView {
                from: m.from.as_ref().map(|s| s.to_string()),
                to: m.to.to_string(),
                snapshot: m.snapshot.clone(),
                restore: m.restore.to_string(),
                started_at: m.started_at,
            }),
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
    pub revision: RevisionView,
    /// The database schema and any migration not yet settled.
    #[serde(default)]
    pub schema: SchemaView,
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
    /// [`TenantViewOf`] read back as owned values: the record is mapped to the view in
    /// one place only, so the two cannot drift apart.
    fn from(r: &TenantRecord) -> Self {
        serde_json::to_value(TenantViewOf::from(r))
            .and_then(serde_json::from_value)
            .expect("a tenant view reads back the JSON it writes")
    }
}

/// [`TenantView`] serialised straight from the record: the same JSON, byte for byte
/// (a test holds the two together), without building the view's strings first. The
/// hot read path (`GET /v1/tenants/{id}`) answers with it, and [`TenantView`] is built
/// from it.
#[derive(Serialize)]
pub struct TenantViewOf<'a> {
    id: Shown<&'a crate::domain::TenantId>,
    region: Shown<&'a crate::domain::Region>,
    environment: Shown<&'a crate::domain::Environment>,
    group: Shown<&'a crate::domain::Group>,
    tier: Shown<crate::domain::Tier>,
    hostnames: ShownAll<'a, crate::domain::Hostname>,
    pinned_release: Option<Shown<&'a crate::domain::ReleaseVersion>>,
    maintenance: Option<Shown<&'a MaintenanceWindows>>,
    platform: PlatformView,
    revision: RevisionView,
    schema: SchemaView,
    state: &'static str,
    step: Option<Shown<crate::machine::StepKind>>,
    current_release: Option<Shown<&'a crate::domain::ReleaseVersion>>,
    target_release: Option<Shown<&'a crate::domain::ReleaseVersion>>,
    last_error: Option<&'a str>,
    attempt: u32,
    lease: Option<LeaseOf<'a>>,
    rollout: Option<Shown<&'a crate::domain::RolloutId>>,
    facts: FactsOf<'a>,
    version: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Serialize)]
struct LeaseOf<'a> {
    holder: &'a str,
    fence: u64,
    expires_at: DateTime<Utc>,
}

#[derive(Serialize)]
struct FactsOf<'a> {
    image: Option<&'a str>,
    stack_id: Option<&'a str>,
    helm_revision: Option<u32>,
    snapshots: &'a [String],
    certificates: usize,
    maintenance_since: Option<DateTime<Utc>>,
    last_outage_seconds: Option<u64>,
}

/// A value written as its `Display` text, as the view's `String` fields hold it.
struct Shown<T>(T);

impl<T: std::fmt::Display> Serialize for Shown<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// A list written as the `Display` texts of its items.
struct ShownAll<'a, T>(&'a [T]);

impl<T: std::fmt::Display> Serialize for ShownAll<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(Shown))
    }
}

impl<'a> From<&'a TenantRecord> for TenantViewOf<'a> {
    fn from(r: &'a TenantRecord) -> Self {
        let s = &r.spec;
        TenantViewOf {
            id: Shown(&s.id),
            region: Shown(&s.region),
            environment: Shown(&s.environment),
            group: Shown(&s.group),
            tier: Shown(s.tier),
            hostnames: ShownAll(&s.hostnames),
            pinned_release: s.pinned_release.as_ref().map(Shown),
            maintenance: s.maintenance.as_ref().map(Shown),
            platform: PlatformView::of(r),
            revision: RevisionView::of(r),
            schema: SchemaView::of(r),
            state: r.state.name(),
            step: r.state.step().map(Shown),
            current_release: r.state.current_release().map(Shown),
            target_release: r.state.target_release().map(Shown),
            last_error: r.last_error.as_deref(),
            attempt: r.attempt,
            lease: r.lease.as_ref().map(|l| LeaseOf {
                holder: &l.owner,
                fence: l.fence,
                expires_at: l.expires_at,
            }),
            rollout: r.rollout.as_ref().map(Shown),
            facts: FactsOf {
                image: r.facts.image.as_deref(),
                stack_id: r.facts.stack_id.as_deref(),
                helm_revision: r.facts.helm_revision,
                snapshots: &r.facts.snapshots,
                certificates: r.facts.certificates.len(),
                maintenance_since: r.facts.maintenance.as_ref().map(|m| m.since),
                last_outage_seconds: r.facts.last_outage_seconds,
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
    /// The revision the tenant was to run after this event
    /// (`release 1.4.2, platform 2026.12.1, tier large`).
    #[serde(default)]
    pub revision: Option<String>,
    /// For an upgrade, reconcile or rollback that ended Active: how long the tenant
    /// was down, in whole seconds, from the maintenance page or the first failed probe
    /// to the first healthy round of verify (0: no outage was observed).
    #[serde(default)]
    pub outage_seconds: Option<u64>,
    /// What began that outage: `maintenance` or `failed_probe` (null when none).
    #[serde(default)]
    pub outage_cause: Option<String>,
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
            revision: e.revision,
            outage_seconds: e.outage_seconds,
            outage_cause: e.outage_cause.map(|c| c.code().to_owned()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryPage {
    pub items: Vec<HistoryEntry>,
    pub next_token: Option<String>,
}

/// Reads maintenance windows in their text form, `"Europe/Berlin Sun 02:00 4h, Wed
/// 22:00 2h"`, or `null`: the API's and the catalog's `maintenance` field.
pub(crate) fn windows_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<MaintenanceWindows>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|text| text.parse().map_err(serde::de::Error::custom))
        .transpose()
}

/// Writes maintenance windows in the text form [`windows_text`] reads.
pub(crate) fn windows_as_text<S: serde::Serializer>(
    w: &Option<MaintenanceWindows>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match w {
        Some(w) => s.serialize_some(&w.to_string()),
        None => s.serialize_none(),
    }
}

/// The OpenAPI schema of that text form (`Maintenance` in the document, with the
/// grammar the parser takes), or `null`.
pub(crate) fn maintenance_text() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    let one_of = utoipa::openapi::schema::OneOfBuilder::new()
        .item(utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::Null))
        .item(utoipa::openapi::Ref::from_schema_name("Maintenance"))
        .build();
    utoipa::openapi::schema::Schema::OneOf(one_of).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ReleaseVersion, TenantSpec, Tier};
    use crate::machine::{TenantState, UpgradeStep};

    fn release(v: &str) -> ReleaseVersion {
        ReleaseVersion::parse(v).unwrap()
    }

    fn active_tenant() -> TenantRecord {
        let spec = TenantSpec::example("acme", "us-east-1");
        let now = chrono::Utc::now();
        let mut r = TenantRecord::new(
            spec,
            TenantState::Upgrading {
                step: UpgradeStep::Verify,
                from: release("1.0.0"),
                to: release("1.1.0"),
            },
            now,
        );
        r.enter(
            TenantState::Active {
                release: release("1.1.0"),
                failed_upgrade: None,
            },
            now,
        );
        r
    }

    /// A tenant with every optional part of the view set.
    fn tenant_with_everything() -> TenantRecord {
        let mut r = active_tenant();
        r.spec.pinned_release = Some(release("1.1.0"));
        r.spec
            .hostnames
            .push(crate::domain::Hostname::parse("shop.acme.example").unwrap());
        r.spec.maintenance = Some("Europe/Berlin Sun 02:00 4h, Wed 22:00 2h".parse().unwrap());
        r.spec.platform = Some(crate::domain::PlatformVersion::parse("2026.12.1").unwrap());
        r.last_error = Some("the stack \"acme\" failed:\nROLLBACK_COMPLETE".into());
        r.attempt = 3;
        r.lease = Some(crate::record::Lease {
            owner: "worker-1".into(),
            fence: 7,
            expires_at: chrono::Utc::now(),
        });
        r.rollout = Some(crate::domain::RolloutId::parse("ro-20261201-abc").unwrap());
        r.facts.image = Some("123.dkr.ecr.us-east-1.amazonaws.com/app:1.1.0".into());
        r.facts.stack_id = Some("arn:aws:cloudformation:us-east-1:123:stack/acme/1".into());
        r.facts.helm_revision = Some(4);
        r.facts.snapshots = vec!["acme-pre-1-1-0".into(), "acme-pre-1-2-0".into()];
        r.facts.maintenance = Some(crate::record::Maintenance {
            since: chrono::Utc::now(),
            token: "t".into(),
            rules: vec!["arn:rule".into()],
        });
        r.facts.last_outage_seconds = Some(12);
        r
    }

    #[test]
    fn the_view_serialised_from_the_record_is_the_views_json_byte_for_byte() {
        let provisioning = TenantRecord::new(
            TenantSpec::example("globex", "eu-west-1"),
            TenantState::Provisioning {
                step: crate::machine::ProvisionStep::FIRST,
                release: release("1.0.0"),
            },
            chrono::Utc::now(),
        );
        for r in [provisioning, active_tenant(), tenant_with_everything()] {
            let built = serde_json::to_string(&TenantView::from(&r)).unwrap();
            let borrowed = serde_json::to_string(&TenantViewOf::from(&r)).unwrap();
            assert_eq!(borrowed, built);
        }
    }

    #[test]
    fn a_tenant_in_maintenance_says_since_when() {
        let mut r = active_tenant();
        assert_eq!(TenantView::from(&r).facts.maintenance_since, None);
        let since = chrono::Utc::now();
        r.facts.maintenance = Some(crate::record::Maintenance {
            since,
            token: "t".into(),
            rules: vec!["arn:rule".into()],
        });
        assert_eq!(TenantView::from(&r).facts.maintenance_since, Some(since));
    }

    #[test]
    fn a_spec_change_differs_until_a_deployment_applies_it_and_a_rollback_does_not() {
        let mut r = active_tenant();
        assert_eq!(RevisionView::of(&r).differs, Vec::<String>::new());
        assert_eq!(RevisionView::of(&r).applied.tier.as_deref(), Some("small"));

        r.spec.tier = Tier::Large;
        let view = RevisionView::of(&r);
        assert_eq!(view.differs, ["tier"]);
        assert_eq!(
            (view.desired.tier.as_deref(), view.applied.tier.as_deref()),
            (Some("large"), Some("small"))
        );

        // A reconcile that rolls back leaves the old tier applied.
        let now = chrono::Utc::now();
        r.enter(
            TenantState::RollingBack {
                step: crate::machine::RollbackStep::RollbackDeploy,
                abandoned: release("1.1.0"),
                previous: release("1.1.0"),
                cause: "verify failed".into(),
            },
            now,
        );
        r.enter(
            TenantState::Active {
                release: release("1.1.0"),
                failed_upgrade: None,
            },
            now,
        );
        assert_eq!(RevisionView::of(&r).differs, ["tier"]);

        // One that completes applies it.
        r.enter(
            TenantState::Upgrading {
                step: UpgradeStep::Verify,
                from: release("1.1.0"),
                to: release("1.1.0"),
            },
            now,
        );
        r.enter(
            TenantState::Active {
                release: release("1.1.0"),
                failed_upgrade: None,
            },
            now,
        );
        assert_eq!(RevisionView::of(&r).differs, Vec::<String>::new());
        assert_eq!(
            crate::record::revision_line(&r),
            "release 1.1.0, platform built-in, tier large"
        );
    }
}
