//! The declarative catalog: a file of the tenants one environment should have, and
//! the plan that brings the table there. [`Catalog::parse`] reads the file (YAML or
//! JSON) with the same domain parsers as the API; [`plan`] is pure (the catalog and
//! the stored records in, one action per tenant out), and [`CatalogCommands`] adds
//! what needs the release registry to it; [`CatalogCommands::apply`] runs
//! each action through the operator's [`TenantCommands`], so validation, rollout
//! holds and history apply as to any operator.
//!
//! A catalog never moves releases (rollouts do), never changes a tenant's region or
//! group (both are fixed at create), and deprovisions only when asked to prune and
//! only up to a given number of tenants.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::tenants::{CommandError, RolloutHold, SpecChange, TenantCommands};
use super::views::{maintenance_text, windows_as_text, windows_text};
use crate::domain::{
    Environment, Group, Hostname, MaintenanceWindows, PlatformVersion, Region, ReleaseVersion, TenantId,
    TenantSpec, Tier,
};
use crate::machine::{TenantEvent, TenantState};
use crate::ports::{ListQuery, StoreError, TenantStore};
use crate::record::{Actor, TenantRecord};

/// The one catalog format version there is.
pub const CATALOG_VERSION: u32 = 1;

/// The largest deletion limit an apply takes: a bound for the flag and the API body,
/// far above any prune an operator should make in one go.
pub const MAX_DELETIONS: u32 = 10_000;

/// One desired tenant: the fields `tenant create` takes, without the environment
/// (the catalog's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogTenant {
    pub id: TenantId,
    pub region: Region,
    /// Rollout group (ring); default `default`. Fixed once the tenant exists.
    #[serde(default = "Group::default_group")]
    #[schema(default = "default")]
    pub group: Group,
    #[serde(default = "small")]
    #[schema(default = "small")]
    pub tier: Tier,
    /// At least one; each once.
    #[schema(schema_with = hostname_list)]
    pub hostnames: Vec<Hostname>,
    /// Release to provision a new tenant on; default: what the version policy gives
    /// it. For an existing tenant a different release is only reported: releases
    /// move by rollouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseVersion>,
    /// Keep the tenant on its release: rollouts skip it.
    #[serde(default)]
    pub pin: bool,
    /// Weekly windows in which rollouts may start the tenant, e.g.
    /// `Europe/Berlin Sun 02:00 4h`; left out: any time.
    #[serde(
        default,
        deserialize_with = "windows_text",
        serialize_with = "windows_as_text",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = maintenance_text)]
    pub maintenance: Option<MaintenanceWindows>,
    /// Published platform version; left out: the version policy's (or the built-in
    /// one) for a new tenant, and whatever an existing tenant has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformVersion>,
    /// Keep the tenant on its platform version: platform rollouts skip it.
    #[serde(default)]
    pub pin_platform: bool,
}

fn small() -> Tier {
    Tier::Small
}

fn hostname_list() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(utoipa::openapi::Ref::from_schema_name(
            <Hostname as utoipa::ToSchema>::name(),
        ))
        .min_items(Some(1))
        .unique_items(true)
        .build()
}

impl CatalogTenant {
    /// The spec a new tenant of `environment` gets (pins are set by provisioning).
    fn spec(&self, environment: &Environment) -> TenantSpec {
        TenantSpec {
            id: self.id.clone(),
            region: self.region.clone(),
            environment: environment.clone(),
            group: self.group.clone(),
            tier: self.tier,
            hostnames: self.hostnames.clone(),
            pinned_release: None,
            maintenance: self.maintenance.clone(),
            platform: self.platform,
            pinned_platform: None,
        }
    }
}

/// One environment's desired tenants. Build it with [`Catalog::parse`] (a file) or
/// check a deserialized one with [`Catalog::check`] (an API body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// The format version; only 1 exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1)]
    pub version: Option<u32>,
    /// Every tenant of the catalog is in this environment; tenants of other
    /// environments are left alone.
    pub environment: Environment,
    /// Each id once.
    pub tenants: Vec<CatalogTenant>,
}

/// Why a catalog is refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the catalog is not valid YAML or JSON: {0}; write a mapping with `environment:` and a `tenants:` list")]
    Syntax(String),
    #[error("the catalog {0}")]
    Document(String),
    #[error("catalog entry tenants[{index}]{}: {message}", id.as_ref().map(|id| format!(" (id {id})")).unwrap_or_default())]
    Entry {
        index: usize,
        id: Option<String>,
        message: String,
    },
    #[error(
        "the catalog would deprovision {count} tenants ({}), more than the {max} allowed; check the list, then pass --max-deletions {count} (max_deletions in the API)",
        ids.join(", ")
    )]
    TooManyDeletions {
        count: usize,
        max: usize,
        ids: Vec<String>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    #[serde(default)]
    version: Option<serde_json::Value>,
    environment: serde_json::Value,
    tenants: Vec<serde_json::Value>,
}

impl Catalog {
    /// Reads a catalog file: YAML or JSON (JSON is YAML), a mapping with `environment`,
    /// a `tenants` list and optionally `version: 1`. Errors name the entry and field.
    pub fn parse(text: &str) -> Result<Self, CatalogError> {
        let document: serde_json::Value =
            serde_norway::from_str(text).map_err(|e| CatalogError::Syntax(e.to_string()))?;
        let raw: RawCatalog = serde_json::from_value(document).map_err(|e| {
            CatalogError::Document(format!(
                "is not a catalog: {e}; write `version: 1`, `environment: <name>` and `tenants: [...]`"
            ))
        })?;
        let version = match raw.version {
            None => None,
            Some(v) => Some(v.as_u64().and_then(|v| u32::try_from(v).ok()).ok_or_else(|| {
                CatalogError::Document(format!("has version {v}; write `version: {CATALOG_VERSION}`"))
            })?),
        };
        let environment: Environment = serde_json::from_value(raw.environment)
            .map_err(|e| CatalogError::Document(format!("environment: {e}")))?;
        let mut tenants = Vec::with_capacity(raw.tenants.len());
        for (index, entry) in raw.tenants.into_iter().enumerate() {
            let id = entry.get("id").and_then(|v| v.as_str()).map(str::to_owned);
            if entry.get("environment").is_some() {
                return Err(CatalogError::Entry {
                    index,
                    id,
                    message: "has its own environment; a catalog is one environment's: remove the field, or move the tenant to that environment's catalog".into(),
                });
            }
            let tenant = serde_json::from_value(entry).map_err(|e| CatalogError::Entry {
                index,
                id,
                message: e.to_string(),
            })?;
            tenants.push(tenant);
        }
        Catalog {
            version,
            environment,
            tenants,
        }
        .check()
    }

    /// Checks the rules that span fields and entries: the version, each entry's spec
    /// (hostnames, pins), and no id twice.
    pub fn check(self) -> Result<Self, CatalogError> {
        if let Some(v) = self.version.filter(|v| *v != CATALOG_VERSION) {
            return Err(CatalogError::Document(format!(
                "has version {v}; this tenantctl reads version {CATALOG_VERSION} (write `version: {CATALOG_VERSION}`)"
            )));
        }
        let mut seen = BTreeMap::new();
        let mut hostnames = BTreeMap::new();
        for (index, tenant) in self.tenants.iter().enumerate() {
            let refuse = |message: String| CatalogError::Entry {
                index,
                id: Some(tenant.id.to_string()),
                message,
            };
            tenant
                .spec(&self.environment)
                .validate()
                .map_err(|e| refuse(e.to_string()))?;
            if tenant.pin_platform && tenant.platform.is_none() {
                return Err(refuse(
                    "pin_platform needs the platform version to pin: add `platform: MAJOR.MINOR.PATCH`"
                        .into(),
                ));
            }
            if let Some(first) = seen.insert(tenant.id.clone(), index) {
                return Err(refuse(format!(
                    "id {} is listed twice (also tenants[{first}]); list each tenant once",
                    tenant.id
                )));
            }
            for hostname in &tenant.hostnames {
                if let Some((first, other)) = hostnames.insert(hostname, (index, &tenant.id)) {
                    return Err(refuse(format!(
                        "hostname {hostname} is also listed for tenant {other} (tenants[{first}]); \
                         a hostname is served by one tenant, so list it once"
                    )));
                }
            }
        }
        Ok(self)
    }
}

/// What the plan does to one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatalogAction {
    /// Not in the table: provisioned.
    Create,
    /// Its spec differs: the listed fields are changed.
    Change,
    /// Active or Failed and not in the catalog, with prune: deprovisioned.
    Deprovision,
    /// Matches the catalog (apart from what `notes` reports).
    Unchanged,
    /// Not in the catalog, and kept: no prune, or not Active/Failed.
    Kept,
    /// In the catalog but cannot be reconciled (see `notes`); counts as failed when applied.
    Blocked,
}

impl CatalogAction {
    pub fn as_str(self) -> &'static str {
        match self {
            CatalogAction::Create => "create",
            CatalogAction::Change => "change",
            CatalogAction::Deprovision => "deprovision",
            CatalogAction::Unchanged => "unchanged",
            CatalogAction::Kept => "kept",
            CatalogAction::Blocked => "blocked",
        }
    }
}

/// One field a change sets, old → new, in text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldChange {
    pub field: String,
    pub from: String,
    pub to: String,
}

/// How an applied action went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Only planned (a dry run, or nothing to do).
    Planned,
    Applied,
    Failed,
}

/// The plan for one tenant, and after an apply how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlannedTenant {
    pub id: TenantId,
    pub action: CatalogAction,
    /// The fields a `change` sets.
    pub changes: Vec<FieldChange>,
    /// What the plan does not apply, e.g. `release differs: 1.0.0 → 1.1.0 (use a rollout)`.
    pub notes: Vec<String>,
    pub status: ActionStatus,
    /// Why the action failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The plan (or, after an apply, the outcome) for one catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CatalogPlan {
    pub environment: Environment,
    /// Whether tenants missing from the catalog are deprovisioned.
    pub prune: bool,
    /// Whether the actions ran (false: a dry run).
    pub applied: bool,
    pub tenants: Vec<PlannedTenant>,
}

impl CatalogPlan {
    pub fn count(&self, action: CatalogAction) -> usize {
        self.tenants.iter().filter(|t| t.action == action).count()
    }

    pub fn failed(&self) -> usize {
        self.tenants
            .iter()
            .filter(|t| t.status == ActionStatus::Failed)
            .count()
    }
}

/// What apply runs for one tenant.
#[derive(Debug, Clone)]
enum Act {
    Create(Box<CatalogTenant>),
    Change(SpecChange),
    Deprovision,
    Nothing,
}

/// Decides the plan: `records` are the stored tenants (any environment; those of
/// other environments only matter when the catalog names their id).
fn decide(catalog: &Catalog, records: &[TenantRecord], prune: bool) -> Vec<(PlannedTenant, Act)> {
    let stored: BTreeMap<&TenantId, &TenantRecord> = records.iter().map(|r| (r.id(), r)).collect();
    let held: BTreeMap<&Hostname, &TenantId> = (records.iter())
        .filter(|r| !matches!(r.state, TenantState::Deleted {}))
        .flat_map(|r| r.spec.hostnames.iter().map(move |h| (h, r.id())))
        .collect();
    let entries: BTreeMap<&TenantId, &CatalogTenant> = catalog.tenants.iter().map(|t| (&t.id, t)).collect();
    let mut out = Vec::new();
    for entry in &catalog.tenants {
        let planned = |action, changes, notes| PlannedTenant {
            id: entry.id.clone(),
            action,
            changes,
            notes,
            status: ActionStatus::Planned,
            error: None,
        };
        // A hostname another tenant serves, and goes on serving after this catalog
        // (it is not in the catalog, or its entry keeps the hostname), would fail
        // the claim at apply: say so in the dry run.
        let taken: Vec<String> = (entry.hostnames.iter())
            .filter_map(|h| {
                let owner = *held.get(h)?;
                let keeps = entries.get(owner).is_none_or(|e| e.hostnames.contains(h));
                (owner != &entry.id && keeps).then(|| {
                    format!("hostname {h} is served by tenant {owner}; remove it from {owner} first, or from this entry")
                })
            })
            .collect();
        if !taken.is_empty() {
            out.push((planned(CatalogAction::Blocked, vec![], taken), Act::Nothing));
            continue;
        }
        let Some(record) = stored.get(&entry.id) else {
            out.push((
                planned(CatalogAction::Create, vec![], vec![]),
                Act::Create(Box::new(entry.clone())),
            ));
            continue;
        };
        if record.spec.environment != catalog.environment {
            let note = format!(
                "tenant {} belongs to environment {}, not {}; rename the entry or remove it",
                entry.id, record.spec.environment, catalog.environment
            );
            out.push((planned(CatalogAction::Blocked, vec![], vec![note]), Act::Nothing));
            continue;
        }
        if matches!(
            record.state,
            TenantState::Deprovisioning { .. } | TenantState::Deleted {}
        ) {
            let note = format!(
                "tenant {} is {}; its id cannot be used again: pick another id",
                entry.id,
                record.state.name()
            );
            out.push((planned(CatalogAction::Blocked, vec![], vec![note]), Act::Nothing));
            continue;
        }
        let (change, changes, notes) = compare(entry, record);
        match change.is_empty() {
            true => out.push((planned(CatalogAction::Unchanged, vec![], notes), Act::Nothing)),
            false => out.push((
                planned(CatalogAction::Change, changes, notes),
                Act::Change(change),
            )),
        }
    }
    let listed: BTreeSet<&TenantId> = catalog.tenants.iter().map(|t| &t.id).collect();
    for record in records {
        if record.spec.environment != catalog.environment || listed.contains(record.id()) {
            continue;
        }
        let planned = |action, notes| PlannedTenant {
            id: record.id().clone(),
            action,
            changes: vec![],
            notes,
            status: ActionStatus::Planned,
            error: None,
        };
        match &record.state {
            TenantState::Deprovisioning { .. } | TenantState::Deleted {} => {}
            TenantState::Active { .. } | TenantState::Failed { .. } if prune => {
                out.push((planned(CatalogAction::Deprovision, vec![]), Act::Deprovision))
            }
            TenantState::Active { .. } | TenantState::Failed { .. } => out.push((
                planned(
                    CatalogAction::Kept,
                    vec!["not in the catalog, kept (prune to deprovision it: --prune, `prune` in the API)".into()],
                ),
                Act::Nothing,
            )),
            busy => out.push((
                planned(
                    CatalogAction::Kept,
                    vec![format!(
                        "not in the catalog, kept: it is {}; prune deprovisions only Active or Failed tenants",
                        busy.label()
                    )],
                ),
                Act::Nothing,
            )),
        }
    }
    out
}

/// The spec change that makes `record` what `entry` asks, each field old → new, and
/// the differences a catalog does not apply.
fn compare(entry: &CatalogTenant, record: &TenantRecord) -> (SpecChange, Vec<FieldChange>, Vec<String>) {
    let spec = &record.spec;
    let mut change = SpecChange::default();
    let mut fields = Vec::new();
    let mut notes = Vec::new();
    let mut field = |name: &str, from: String, to: String| {
        fields.push(FieldChange {
            field: name.into(),
            from,
            to,
        })
    };
    if entry.tier != spec.tier {
        field("tier", spec.tier.to_string(), entry.tier.to_string());
        change.tier = Some(entry.tier);
    }
    if entry.hostnames != spec.hostnames {
        let text = |hs: &[Hostname]| hs.iter().map(|h| h.as_str()).collect::<Vec<_>>().join(",");
        field("hostnames", text(&spec.hostnames), text(&entry.hostnames));
        change.hostnames = Some(entry.hostnames.clone());
    }
    if entry.maintenance != spec.maintenance {
        let text =
            |w: &Option<MaintenanceWindows>| w.as_ref().map_or("any time".to_owned(), |w| w.to_string());
        field("maintenance", text(&spec.maintenance), text(&entry.maintenance));
        change.maintenance = Some(entry.maintenance.clone());
    }
    let version_text = |v: Option<PlatformVersion>| v.map_or("built-in".to_owned(), |v| v.to_string());
    let pinned_platform = match entry.pin_platform {
        true => entry.platform,
        false => None,
    };
    if pinned_platform != spec.pinned_platform {
        field(
            "pinned_platform",
            version_text(spec.pinned_platform),
            version_text(pinned_platform),
        );
        change.pinned_platform = Some(pinned_platform);
    }
    if let Some(platform) = entry.platform.filter(|p| spec.platform != Some(*p)) {
        field("platform", version_text(spec.platform), platform.to_string());
        // Pinning sets the platform too; the command refuses both at once.
        if pinned_platform.is_none() {
            change.platform = Some(Some(platform));
        }
    }
    let current = record.state.current_release().cloned();
    let pinned_release = match (entry.pin, &entry.release) {
        (false, _) => None,
        (true, Some(release)) => Some(release.clone()),
        (true, None) => spec.pinned_release.clone().or(current.clone()),
    };
    if pinned_release != spec.pinned_release {
        let text = |r: &Option<ReleaseVersion>| r.as_ref().map_or("none".to_owned(), |r| r.to_string());
        field(
            "pinned_release",
            text(&spec.pinned_release),
            text(&pinned_release),
        );
        change.pinned_release = Some(pinned_release);
    }
    if let (Some(want), Some(now)) = (&entry.release, &current) {
        if want != now {
            notes.push(format!("release differs: {now} → {want} (use a rollout)"));
        }
    }
    if entry.region != spec.region {
        notes.push(format!(
            "region differs: {} → {} (fixed at create; deprovision and create a new tenant to move it)",
            spec.region, entry.region
        ));
    }
    if entry.group != spec.group {
        notes.push(format!(
            "group differs: {} → {} (fixed at create; deprovision and create a new tenant to move it)",
            spec.group, entry.group
        ));
    }
    (change, fields, notes)
}

/// The catalog plan, pure: one entry per catalog tenant and per stored tenant of the
/// environment the catalog leaves out (deprovisioned with `prune`, else kept).
pub fn plan(catalog: &Catalog, records: &[TenantRecord], prune: bool) -> CatalogPlan {
    dry_run(catalog, prune, decide(catalog, records, prune))
}

/// The decided actions as a plan that did not run.
fn dry_run(catalog: &Catalog, prune: bool, decided: Vec<(PlannedTenant, Act)>) -> CatalogPlan {
    CatalogPlan {
        environment: catalog.environment.clone(),
        prune,
        applied: false,
        tenants: decided.into_iter().map(|(p, _)| p).collect(),
    }
}

/// The catalog use cases over the state table.
#[derive(Clone)]
pub struct CatalogCommands {
    store: Arc<dyn TenantStore>,
    tenants: TenantCommands,
}

impl CatalogCommands {
    pub fn new(store: Arc<dyn TenantStore>, tenants: TenantCommands) -> Self {
        Self { store, tenants }
    }

    /// Every stored tenant (a full listing, then each record).
    async fn records(&self) -> Result<Vec<TenantRecord>, StoreError> {
        let mut records = Vec::new();
        let mut next_token = None;
        loop {
            let page = self
                .store
                .list_ids(&ListQuery {
                    limit: Some(1000),
                    next_token,
                    ..ListQuery::default()
                })
                .await?;
            records.extend(self.store.load_many(&page.items).await?);
            match page.next_token {
                Some(token) => next_token = Some(token),
                None => return Ok(records),
            }
        }
    }

    /// The plan against the table as it is now (a dry run: nothing changes).
    pub async fn plan(&self, catalog: &Catalog, prune: bool) -> Result<CatalogPlan, CatalogError> {
        let mut decided = decide(catalog, &self.records().await?, prune);
        self.check_releases(&mut decided).await;
        Ok(dry_run(catalog, prune, decided))
    }

    /// Blocks each planned create naming a release the registry has no image of in
    /// the tenant's region, as the create itself would be refused, so the dry run
    /// says so before the apply. A registry that cannot be asked leaves the create
    /// planned, with a note: the create checks again. Each release and region is
    /// asked once.
    async fn check_releases(&self, decided: &mut [(PlannedTenant, Act)]) {
        let mut verdicts: HashMap<(ReleaseVersion, Region), Option<(CatalogAction, String)>> = HashMap::new();
        for (planned, act) in decided.iter_mut() {
            let Act::Create(entry) = act else { continue };
            let Some(release) = entry.release.clone() else {
                continue;
            };
            let key = (release, entry.region.clone());
            if !verdicts.contains_key(&key) {
                let verdict = match self.tenants.check_release(&key.0, &key.1).await {
                    Ok(()) => None,
                    Err(CommandError::ReleaseCheck(why)) => Some((
                        CatalogAction::Create,
                        format!(
                            "could not check that release {} has an image in {} ({why}); the create checks again",
                            key.0, key.1
                        ),
                    )),
                    Err(refused) => Some((CatalogAction::Blocked, describe(&refused))),
                };
                verdicts.insert(key.clone(), verdict);
            }
            if let Some((action, note)) = &verdicts[&key] {
                planned.notes.push(note.clone());
                if *action == CatalogAction::Blocked {
                    planned.action = CatalogAction::Blocked;
                    *act = Act::Nothing;
                }
            }
        }
    }

    /// Runs one planned action on tenant `id` as `actor`.
    async fn run(
        &self,
        catalog: &Catalog,
        id: &TenantId,
        act: &Act,
        actor: &Actor,
    ) -> Result<(), CommandError> {
        match act {
            Act::Nothing => Ok(()),
            Act::Create(entry) => self
                .tenants
                .provision_pinned(
                    entry.spec(&catalog.environment),
                    entry.release.clone(),
                    entry.pin,
                    entry.pin_platform,
                    actor,
                )
                .await
                .map(drop),
            // The change sets the catalog's values, not deltas: applied over a write
            // that came in since the plan, it still leaves what the file says.
            Act::Change(change) => self
                .tenants
                .update_spec(id, change, None, actor, RolloutHold::Respect)
                .await
                .map(drop),
            Act::Deprovision => self
                .tenants
                .command(id, TenantEvent::Deprovision, actor)
                .await
                .map(drop),
        }
    }

    /// Plans, then runs every action as `actor`, continuing past a failed one; each
    /// tenant's `status` says how it went. With `prune`, refused as a whole (nothing
    /// changes) when more than `max_deletions` tenants would be deprovisioned.
    pub async fn apply(
        &self,
        catalog: &Catalog,
        prune: bool,
        max_deletions: usize,
        actor: &Actor,
    ) -> Result<CatalogPlan, CatalogError> {
        let mut decided = decide(catalog, &self.records().await?, prune);
        self.check_releases(&mut decided).await;
        let deletions: Vec<String> = decided
            .iter()
            .filter(|(p, _)| p.action == CatalogAction::Deprovision)
            .map(|(p, _)| p.id.to_string())
            .collect();
        if deletions.len() > max_deletions {
            return Err(CatalogError::TooManyDeletions {
                count: deletions.len(),
                max: max_deletions,
                ids: deletions,
            });
        }
        let mut ran: Vec<(PlannedTenant, Act, Result<(), CommandError>)> = Vec::with_capacity(decided.len());
        for (planned, act) in decided {
            let outcome = match &act {
                Act::Nothing => Ok(()),
                act => self.run(catalog, &planned.id, act, actor).await,
            };
            ran.push((planned, act, outcome));
        }
        // A hostname moving from one entry to another can be claimed only once its
        // old entry has let it go, which the file's order need not respect: an action
        // refused because another tenant still held a hostname runs again after the
        // others, as long as a pass lets something go.
        loop {
            let retry: Vec<usize> = (ran.iter().enumerate())
                .filter(|(_, (_, _, outcome))| {
                    matches!(
                        outcome,
                        Err(CommandError::Store(StoreError::HostnameTaken { .. }))
                    )
                })
                .map(|(i, _)| i)
                .collect();
            let mut progressed = false;
            for i in retry {
                let (planned, act, _) = &ran[i];
                let outcome = self.run(catalog, &planned.id, act, actor).await;
                progressed |= outcome.is_ok();
                ran[i].2 = outcome;
            }
            if !progressed {
                break;
            }
        }
        let tenants = (ran.into_iter())
            .map(|(mut planned, act, outcome)| {
                let outcome = match (&act, outcome) {
                    (Act::Nothing, _) if planned.action == CatalogAction::Blocked => Err(planned.notes.join("; ")),
                    (Act::Nothing, _) => return planned,
                    (_, outcome) => outcome.map_err(|e| describe(&e)),
                };
                match outcome {
                    Ok(()) => planned.status = ActionStatus::Applied,
                    Err(error) => {
                        tracing::warn!(tenant = %planned.id, action = planned.action.as_str(), %error, "catalog action failed");
                        planned.status = ActionStatus::Failed;
                        planned.error = Some(error);
                    }
                }
                planned
            })
            .collect();
        Ok(CatalogPlan {
            environment: catalog.environment.clone(),
            prune,
            applied: true,
            tenants,
        })
    }
}

/// A command's error, for the outcome of one action.
fn describe(e: &CommandError) -> String {
    e.to_string()
}

#[cfg(test)]
mod tests;
