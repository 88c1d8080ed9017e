//! Tenants as the store keeps them: the record with its lease and history, and the
//! read models of listings and the fleet summary.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::{Group, Hostname, InvalidValue, PlatformVersion, Region, ReleaseVersion, TenantId};
use crate::record::{HistoryEvent, Lease, TenantRecord, Transition};

/// Work-index partitions per region. Due tenants of a region are spread over this
/// many keys so one busy region never makes a hot partition; a worker polls each
/// shard of its regions ([`TenantStore::due`]).
pub const WORK_SHARDS: u32 = 8;

/// A page of results and the token for the next page, if any.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

/// What a write must still find true to go through.
#[derive(Debug, Clone, Copy)]
pub enum WriteGuard<'a> {
    /// A worker write: the caller's lease must still be the live one.
    Lease(&'a Lease),
    /// An operator write: only the version is checked; the lease (if any) stays.
    Version,
}

/// A state a worker's tenant passed through without being written on its own: a
/// step's outcome held back to be recorded with the steps after it
/// ([`TenantStore::save_steps`]).
#[derive(Debug, Clone)]
pub struct PassedStep {
    /// The transition into the state.
    pub transition: Transition,
    /// The tenant as it was in that state, which its history event describes.
    pub after: TenantRecord,
    /// When the step that led there finished: the history event's time.
    pub at: DateTime<Utc>,
}

/// Filters for listing tenants; results come back ordered by region, the state a
/// tenant rests in, and id (a listing of a state with steps: by region and id).
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub region: Option<Region>,
    /// A state name as in [`crate::machine::TenantState::NAMES`].
    pub state: Option<String>,
    pub limit: Option<u32>,
    pub next_token: Option<String>,
}

/// One row of a tenant listing.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TenantSummary {
    pub id: TenantId,
    pub region: Region,
    pub state: String,
    pub label: String,
    pub release: Option<String>,
    /// The platform version the tenant runs (`None`: the built-in one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    pub group: String,
    pub updated_at: DateTime<Utc>,
}

impl TenantSummary {
    /// The listing row of a stored tenant as it is now.
    pub fn of(record: &TenantRecord) -> Self {
        TenantSummary {
            id: record.id().clone(),
            region: record.spec.region.clone(),
            state: record.state.name().to_owned(),
            label: record.state.label(),
            release: record.state.listed_release().map(ToString::to_string),
            platform: record.facts.running_platform().map(|p| p.to_string()),
            group: record.spec.group.as_str().to_owned(),
            updated_at: record.updated_at,
        }
    }
}

/// What [`TenantStore::save_steps_and_drive`] wrote: the tenant that landed, as
/// stored, and the next tenant as the drive stored it, when it was written too.
#[derive(Debug)]
pub struct Relayed {
    pub landed: TenantRecord,
    pub next: Option<TenantRecord>,
}

#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Stores a new tenant and its first history event; `Conflict` if the id is taken.
    async fn create(&self, record: &TenantRecord, first: Transition) -> Result<TenantRecord, StoreError>;
    async fn load(&self, id: &TenantId) -> Result<TenantRecord, StoreError>;
    /// The records of `ids` in their order, leaving out ids with no tenant (deleted
    /// since they were listed): what a fleet-wide read uses after a listing page. A
    /// store that can read many items in one request does.
    async fn load_many(&self, ids: &[TenantId]) -> Result<Vec<TenantRecord>, StoreError> {
        let mut records = Vec::with_capacity(ids.len());
        for id in ids {
            match self.load(id).await {
                Ok(record) => records.push(record),
                Err(StoreError::NotFound { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(records)
    }
    /// Writes `record` if the stored item is still at `record.version` and `guard`
    /// holds. With `transition`, the state change and its history event are written in
    /// one transaction. Returns the record as stored (version bumped).
    async fn save(
        &self,
        record: &TenantRecord,
        guard: WriteGuard<'_>,
        transition: Option<Transition>,
    ) -> Result<TenantRecord, StoreError>;
    /// Records several steps a worker ran one after another under `lease` in one
    /// write: a history event for each of `passed` (in order, numbered after
    /// `record.event_seq`), and the tenant as `record` says, which is where the last
    /// of them left it (its lease kept or given up as `record.lease` says). Written
    /// only if the stored tenant is still at `record.version` and the lease holds, so
    /// nothing of a batch is written unless all of it is. `passed` empty is a save
    /// without transition.
    async fn save_steps(
        &self,
        record: &TenantRecord,
        lease: &Lease,
        passed: Vec<PassedStep>,
    ) -> Result<TenantRecord, StoreError>;
    /// [`Self::save_steps`] for a tenant that lands, and in the same transaction
    /// `drive`, a rollout's start of the next tenant ([`super::Relay`]): both are
    /// written or neither. When the drive's part is refused (the next tenant changed,
    /// the rollout's lease moved on) or the answer to the joint write was lost, the
    /// steps are written alone and the answer says the drive was not: the rollout's
    /// next pass decides about that tenant as it would have. A store that cannot write
    /// both at once writes the steps alone.
    async fn save_steps_and_drive(
        &self,
        record: &TenantRecord,
        lease: &Lease,
        passed: Vec<PassedStep>,
        _drive: super::TenantDrive<'_>,
    ) -> Result<Relayed, StoreError> {
        let landed = self.save_steps(record, lease, passed).await?;
        Ok(Relayed { landed, next: None })
    }
    /// Saves an operator's spec change like `save` with [`WriteGuard::Version`], and in
    /// the same transaction claims the record's new hostnames and gives up those of
    /// `before` it no longer has. `HostnameTaken` if another live tenant holds one.
    async fn save_spec(
        &self,
        record: &TenantRecord,
        before: &[Hostname],
        transition: Transition,
    ) -> Result<TenantRecord, StoreError>;
    /// Takes the tenant's lease for `owner` if it is free, expired, or already ours.
    async fn acquire_lease(
        &self,
        id: &TenantId,
        owner: &str,
        ttl: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<TenantRecord, StoreError>;
    /// Extends a live lease; `Conflict` if it was lost.
    async fn renew_lease(
        &self,
        id: &TenantId,
        lease: &Lease,
        ttl: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Lease, StoreError>;
    /// Gives a lease up so another worker can take the tenant at its due time.
    /// Conditional on the tenant still being at `record.version` (the work index is
    /// recomputed from `record`): `Conflict` if it changed, and the holder decides
    /// again from the stored tenant.
    async fn release_lease(&self, record: &TenantRecord, lease: &Lease) -> Result<(), StoreError>;
    /// History in order, starting after `after_seq`.
    async fn history(
        &self,
        id: &TenantId,
        after_seq: u64,
        limit: u32,
    ) -> Result<Page<HistoryEvent>, StoreError>;
    async fn list(&self, query: &ListQuery) -> Result<Page<TenantSummary>, StoreError>;
    /// The ids of one page of tenants matching `query`, for a reader that loads every
    /// record anyway (a rollout's plan, a catalog's): a store whose listing reads more
    /// to show the tenants in the middle of steps as they are need not here, so a
    /// state filter may admit a tenant that has since begun its steps.
    async fn list_ids(&self, query: &ListQuery) -> Result<Page<TenantId>, StoreError> {
        let page = self.list(query).await?;
        Ok(Page {
            items: page.items.into_iter().map(|t| t.id).collect(),
            next_token: page.next_token,
        })
    }
    /// Tenants of one region and work shard with a step due at or before `now`.
    async fn due(
        &self,
        region: &Region,
        shard: u32,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<TenantId>, StoreError>;
    /// Every region that has had a tenant, in order.
    async fn regions(&self) -> Result<Vec<Region>, StoreError>;
}

/// Filters on attributes the listing index projects (evaluated by DynamoDB after the
/// key condition, so they narrow what is returned, not what is read).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// The tenant's current release, or the one it is being moved to.
    pub release: Option<ReleaseVersion>,
    pub group: Option<Group>,
    pub platform: Option<PlatformChoice>,
}

impl ListFilter {
    /// Whether `row` passes these filters, as the store's filter on the listing entry
    /// decides it.
    pub fn admits(&self, row: &TenantSummary) -> bool {
        let release = (self.release.as_ref()).is_none_or(|r| row.release.as_deref() == Some(&r.to_string()));
        let group = (self.group.as_ref()).is_none_or(|g| row.group == g.as_str());
        let platform = match &self.platform {
            Some(PlatformChoice::Version(v)) => row.platform.as_deref() == Some(&v.to_string()),
            Some(PlatformChoice::BuiltIn) => row.platform.is_none(),
            None => true,
        };
        release && group && platform
    }
}

/// How the fleet summary and listings name the platform of a tenant that runs the
/// template and chart built into `tenantctl` rather than a published version.
pub const BUILT_IN_PLATFORM: &str = "built-in";

/// A platform to select tenants by: a published version, or the built-in one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformChoice {
    BuiltIn,
    Version(PlatformVersion),
}

impl PlatformChoice {
    /// `built-in` or a platform version such as `2026.12.1`.
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        if text == BUILT_IN_PLATFORM {
            return Ok(PlatformChoice::BuiltIn);
        }
        PlatformVersion::parse(text)
            .map(PlatformChoice::Version)
            .map_err(|e| {
                InvalidValue::new(
                    "platform",
                    text,
                    format!(
                        "{}; or `{BUILT_IN_PLATFORM}` for the platform built into tenantctl",
                        e.problem
                    ),
                )
            })
    }
}

impl std::fmt::Display for PlatformChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlatformChoice::BuiltIn => f.write_str(BUILT_IN_PLATFORM),
            PlatformChoice::Version(v) => v.fmt(f),
        }
    }
}

/// Tenants counted by region and state, and by release, from the listing index.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FleetSummary {
    pub total: u64,
    pub by_region: BTreeMap<Region, BTreeMap<String, u64>>,
    /// Tenants per release (current, or target while provisioning); `none` for
    /// tenants that run no release.
    pub by_release: BTreeMap<String, u64>,
    /// Tenants per platform version they run; [`BUILT_IN_PLATFORM`] for the
    /// template and chart built into `tenantctl`.
    pub by_platform: BTreeMap<String, u64>,
    /// Tenants by release, platform, region, group and state, in that order: the finest counts
    /// of the same read, so a view can sum any selection of them (a release ×
    /// region matrix, one group's states) without reading again.
    pub cells: Vec<FleetCell>,
}

/// Counts tenants one listing row at a time into a [`FleetSummary`]: what the store's
/// fleet read and a restricted principal's filtered read both do.
#[derive(Debug, Default)]
pub struct FleetTally {
    summary: FleetSummary,
    cells: BTreeMap<(String, String, Region, String, String), u64>,
}

impl FleetTally {
    /// One listed tenant, counted by its region, state, group, release (`None`:
    /// none) and platform (`None`: the built-in one).
    pub fn add(&mut self, row: ListedTenant<'_>) {
        let ListedTenant {
            region,
            state,
            group,
            release,
            platform,
        } = row;
        let release = release.unwrap_or("none");
        let platform = platform.unwrap_or(BUILT_IN_PLATFORM);
        self.summary.total += 1;
        *self
            .summary
            .by_region
            .entry(region.clone())
            .or_default()
            .entry(state.to_owned())
            .or_default() += 1;
        *self.summary.by_release.entry(release.to_owned()).or_default() += 1;
        *self.summary.by_platform.entry(platform.to_owned()).or_default() += 1;
        *self
            .cells
            .entry((
                release.to_owned(),
                platform.to_owned(),
                region.clone(),
                group.to_owned(),
                state.to_owned(),
            ))
            .or_default() += 1;
    }

    pub fn finish(self) -> FleetSummary {
        let mut summary = self.summary;
        summary.cells = self
            .cells
            .into_iter()
            .map(|((release, platform, region, group, state), tenants)| FleetCell {
                release,
                platform,
                region,
                group,
                state,
                tenants,
            })
            .collect();
        summary
    }
}

/// What [`FleetTally::add`] counts of one listed tenant.
#[derive(Debug, Clone, Copy)]
pub struct ListedTenant<'a> {
    pub region: &'a Region,
    pub state: &'a str,
    pub group: &'a str,
    pub release: Option<&'a str>,
    pub platform: Option<&'a str>,
}

impl<'a> From<&'a TenantSummary> for ListedTenant<'a> {
    fn from(row: &'a TenantSummary) -> Self {
        ListedTenant {
            region: &row.region,
            state: &row.state,
            group: &row.group,
            release: row.release.as_deref(),
            platform: row.platform.as_deref(),
        }
    }
}

/// How many tenants share a release (as in [`FleetSummary::by_release`]), a platform
/// (as in [`FleetSummary::by_platform`]), a region, a group and a state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FleetCell {
    pub release: String,
    pub platform: String,
    pub region: Region,
    pub group: String,
    pub state: String,
    pub tenants: u64,
}

/// Reads for operators: filtered listings, history pages behind sealed tokens, and
/// fleet counts, all from the listing index or the tenant's own partition.
#[async_trait]
pub trait TenantReads: Send + Sync {
    /// One page of tenants matching `query` and `filter`, ordered as [`ListQuery`] says.
    async fn list_matching(
        &self,
        query: &ListQuery,
        filter: &ListFilter,
    ) -> Result<Page<TenantSummary>, StoreError>;
    /// One page of a tenant's history for a client, continued by `next_token`.
    async fn history_page(
        &self,
        id: &TenantId,
        next_token: Option<&str>,
        limit: u32,
    ) -> Result<Page<HistoryEvent>, StoreError>;
    /// Counts every tenant by region and state and by release.
    async fn fleet_summary(&self) -> Result<FleetSummary, StoreError>;
    /// Up to `limit` tenants in the middle of steps, whatever their state, region by
    /// region in id order, as their items say: one read of the work index however
    /// many states with steps the caller looks at.
    async fn in_flight(&self, limit: usize) -> Result<Vec<TenantSummary>, StoreError>;
    /// The live tenant that holds `hostname`, if any (one point read of its claim).
    async fn hostname_owner(&self, hostname: &Hostname) -> Result<Option<TenantId>, StoreError>;
    /// Whether the store answers within `within`, tried once (readiness probes).
    async fn ping(&self, within: std::time::Duration) -> Result<(), StoreError>;
}
