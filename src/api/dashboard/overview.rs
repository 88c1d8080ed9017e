//! What the overview page shows, gathered from the store: fleet counts, releases in
//! use, running rollouts with each wave's progress, tenants in trouble, and the
//! upgrades' outages of the last day. Reading
//! is here; turning it into HTML is `overview_html`, a pure function of [`Overview`].
//!
//! Every read is an index query or a point read, bounded by the limits below, so a
//! page that refreshes itself every few seconds never scans the table.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::fleet_view::FleetFilter;
use crate::api::access::Principal;
use crate::api::{ApiError, ApiState};
use crate::domain::rollout::WaveKind;
use crate::domain::{Hostname, Scope, TenantId, TenantPlace};
use crate::machine::TenantState;
use crate::ports::{
    FleetSummary, ListFilter, ListQuery, OutageCounts, ReportQuery, StoreError, TenantSummary,
};
use crate::record::TenantRecord;
use crate::record::{MemberFailure, Phase, RolloutMember, RolloutRecord, WaveStatus, WaveTally};

/// Running rollouts shown (newest first); there are rarely more than a few.
const ROLLOUTS_SHOWN: u32 = 20;
/// Tenants listed as in trouble; more are counted but not listed.
pub const TROUBLE_SHOWN: usize = 50;
/// Tenants mid-step read to look for a retried error (and for RollingBack ones):
/// the busiest part of the fleet, so it is capped (a rollout moves tens, not
/// thousands, at once).
const IN_FLIGHT_CHECKED: usize = 500;

/// States that are trouble by themselves.
const TROUBLE_STATES: [&str; 2] = ["Failed", "RollingBack"];
/// States with a step running or due: a tenant there with a last error is retrying.
const MOVING_STATES: [&str; 4] = ["Provisioning", "Upgrading", "Restoring", "Deprovisioning"];

pub struct Overview {
    pub fleet: FleetSummary,
    /// When the read of `fleet`'s counts started (they may be up to the API's
    /// summary bound old).
    pub fleet_as_of: DateTime<Utc>,
    pub rollouts: Vec<RolloutProgress>,
    pub trouble: Vec<TroubledTenant>,
    /// Tenants in trouble beyond the ones listed.
    pub trouble_not_listed: usize,
    /// Outages of the upgrades and rollbacks that completed yesterday and today (UTC),
    /// from the deployment report's counters.
    pub outages: OutageCounts,
    /// The form's filters, which select from `fleet` and `tenants`.
    pub filter: FleetFilter,
    pub tenants: TenantList,
    pub generated_at: DateTime<Utc>,
}

/// One page of the tenants the filters select, or the answer to a search.
#[derive(Default)]
pub struct TenantList {
    pub items: Vec<TenantSummary>,
    /// The sealed token of the next page, if the listing goes on.
    pub next_token: Option<String>,
}

/// A running rollout and how far each wave got.
pub struct RolloutProgress {
    pub id: String,
    /// What it moves tenants to: `release 1.5.0`, `platform 2026.12.1, tier large`, …
    pub release: String,
    pub phase: Phase,
    pub halt_reason: Option<String>,
    /// Halted, and the rollback the spec asks for is done.
    pub settled: bool,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub current_wave: usize,
    pub waves: Vec<WaveProgress>,
    pub last_event: Option<String>,
}

impl RolloutProgress {
    /// The wave waiting for an operator's approval, if any.
    pub fn awaiting_approval(&self) -> Option<&WaveProgress> {
        self.waves
            .iter()
            .find(|w| w.status == WaveStatus::AwaitingApproval)
    }
}

pub struct WaveProgress {
    pub index: usize,
    pub kind: WaveKind,
    pub target: String,
    pub regions: Vec<String>,
    pub status: WaveStatus,
    pub approved_by: Option<String>,
    pub allowed_failures: usize,
    pub counts: OutcomeCounts,
}

/// A wave's members by outcome.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OutcomeCounts {
    pub succeeded: usize,
    pub failed: usize,
    pub in_flight: usize,
    pub pending: usize,
    pub skipped: usize,
}

impl OutcomeCounts {
    /// Each count with the outcome's name ([`crate::record::Outcome::name`]).
    pub fn named(&self) -> [(&'static str, usize); 5] {
        [
            ("pending", self.pending),
            ("in_flight", self.in_flight),
            ("succeeded", self.succeeded),
            ("failed", self.failed),
            ("skipped", self.skipped),
        ]
    }
}

impl From<&WaveTally> for OutcomeCounts {
    fn from(t: &WaveTally) -> Self {
        Self {
            succeeded: t.succeeded,
            failed: t.failed,
            in_flight: t.in_flight,
            pending: t.pending,
            skipped: t.skipped,
        }
    }
}

/// A rollout's members by outcome per wave, and its failed members with their
/// reasons: from the waves' tallies (no member read, however large the rollout), or,
/// for a record written before waves kept them, from its members.
pub async fn rollout_outcomes(
    store: &dyn crate::ports::RolloutStore,
    record: &RolloutRecord,
) -> Result<(BTreeMap<usize, OutcomeCounts>, Vec<MemberFailure>), StoreError> {
    if let Some(tallies) = record.tallies() {
        let counts = (record.waves.iter().zip(&tallies))
            .map(|(w, t)| (w.index, OutcomeCounts::from(*t)))
            .collect();
        let failures = tallies.iter().flat_map(|t| t.failures.iter().cloned()).collect();
        return Ok((counts, failures));
    }
    let members = store.members(&record.id, None).await?;
    Ok(outcomes_of_members(&members))
}

/// [`rollout_outcomes`] counted from the members (pure).
fn outcomes_of_members(members: &[RolloutMember]) -> (BTreeMap<usize, OutcomeCounts>, Vec<MemberFailure>) {
    let mut by_wave: BTreeMap<usize, Vec<&RolloutMember>> = BTreeMap::new();
    for m in members {
        by_wave.entry(m.wave).or_default().push(m);
    }
    let now = Utc::now();
    let tallies: Vec<WaveTally> = (by_wave.values())
        .map(|ms| WaveTally::of(ms.iter().copied(), now))
        .collect();
    let counts = (by_wave.keys().zip(&tallies))
        .map(|(wave, t)| (*wave, OutcomeCounts::from(t)))
        .collect();
    let failures = tallies.into_iter().flat_map(|t| t.failures).collect();
    (counts, failures)
}

/// Each wave of `record` with its members counted by outcome (pure).
pub fn wave_progress(record: &RolloutRecord, counts: &BTreeMap<usize, OutcomeCounts>) -> Vec<WaveProgress> {
    record
        .waves
        .iter()
        .map(|w| WaveProgress {
            index: w.index,
            kind: w.kind,
            target: w.target.to_string(),
            regions: w.regions.iter().map(|r| r.to_string()).collect(),
            status: w.status,
            approved_by: w.approved_by.clone(),
            allowed_failures: w.allowed_failures + w.accepted_failures,
            counts: counts.get(&w.index).copied().unwrap_or_default(),
        })
        .collect()
}

/// A tenant that needs a look, and why.
pub struct TroubledTenant {
    pub id: String,
    pub region: String,
    /// State and step, e.g. `RollingBack/RollbackDeploy`.
    pub label: String,
    pub release: Option<String>,
    pub last_error: Option<String>,
    /// A rollout that recorded it as failed, with the reason it gave.
    pub rollout_failure: Option<(String, String)>,
}

impl Overview {
    /// What `viewer` may see of the fleet: counts over its tenants, the rollouts one
    /// of its read bindings covers, its tenants in trouble, and the page of tenants
    /// `filter` asks for, less those it may not see.
    pub async fn load(
        state: &ApiState,
        viewer: &Principal<'_>,
        filter: FleetFilter,
    ) -> Result<Self, ApiError> {
        let (fleet, fleet_as_of) = state.fleet_summary_for(viewer).await?;
        let tenants = match &filter.search {
            Some(text) => TenantList {
                items: search(state, text)
                    .await?
                    .filter(|record| viewer.sees(TenantPlace::from(&record.spec)))
                    .iter()
                    .map(listed)
                    .collect(),
                next_token: None,
            },
            None => {
                let page = tenant_page(state, &filter).await?;
                TenantList {
                    items: viewer.visible(state, page.items).await?,
                    next_token: page.next_token,
                }
            }
        };
        let store = state.store();
        let mut rollouts = Vec::new();
        // A failed member of a running rollout is trouble even if its tenant is
        // Active again (its upgrade failed and was rolled back).
        let mut rollout_failures: BTreeMap<TenantId, (String, String)> = BTreeMap::new();
        for summary in store.list_rollouts(true, ROLLOUTS_SHOWN, None).await?.items {
            let record = store.load_rollout(&summary.id).await?;
            if !viewer.sees_rollout(&record.spec.selector) {
                continue;
            }
            let (counts, failures) = rollout_outcomes(store.as_ref(), &record).await?;
            for f in failures {
                rollout_failures.insert(f.tenant, (record.id.to_string(), f.reason));
            }
            rollouts.push(RolloutProgress {
                id: record.id.to_string(),
                release: record.spec.target_label(),
                phase: record.phase,
                halt_reason: record.halt_reason.clone(),
                settled: record.settled,
                created_by: record.created_by.clone(),
                created_at: record.created_at,
                current_wave: record.current_wave,
                waves: wave_progress(&record, &counts),
                last_event: record
                    .events
                    .last()
                    .map(|e| format!("{} {}: {}", super::html::time(&e.at), e.actor, e.what)),
            });
        }
        let (trouble, trouble_not_listed) = troubled_tenants(state, viewer, &fleet, rollout_failures).await?;
        let today = Utc::now().date_naive();
        // The report counts by region: a viewer restricted otherwise than by region
        // gets no outage counts rather than the fleet's.
        let regions: Vec<Option<crate::domain::Region>> = if viewer.access.is_unrestricted(Scope::Read) {
            vec![None]
        } else {
            match viewer.access.regions(Scope::Read) {
                Some(regions) if !viewer.access.names_environments(Scope::Read) => {
                    regions.into_iter().map(Some).collect()
                }
                _ => Vec::new(),
            }
        };
        let mut outages = OutageCounts::default();
        for region in regions {
            let report = (store.deployment_report(&ReportQuery {
                from: today.pred_opt().unwrap_or(today),
                to: today,
                region,
                group: None,
            }))
            .await?;
            for counts in report.values() {
                outages.merge(&counts.outage);
            }
        }
        Ok(Overview {
            fleet,
            fleet_as_of,
            rollouts,
            trouble,
            trouble_not_listed,
            outages,
            filter,
            tenants,
            generated_at: Utc::now(),
        })
    }
}

/// One page of the listing index with the filters: a query per region at most, never
/// more than the page's size of tenants.
async fn tenant_page(state: &ApiState, filter: &FleetFilter) -> Result<TenantList, StoreError> {
    let query = ListQuery {
        region: filter.region.clone(),
        state: filter.state.map(str::to_owned),
        limit: Some(filter.limit),
        next_token: filter.after.clone(),
    };
    let narrow = ListFilter {
        release: filter.release.clone(),
        group: filter.group.clone(),
        platform: filter.platform,
    };
    let page = state.store().list_matching(&query, &narrow).await?;
    Ok(TenantList {
        items: page.items,
        next_token: page.next_token,
    })
}

/// The tenant whose id or hostname is `text` (point reads: the tenant, or the
/// hostname's claim and then its tenant), if there is one.
async fn search(state: &ApiState, text: &str) -> Result<Option<TenantRecord>, ApiError> {
    let store = state.store();
    let by_id = TenantId::parse(text).ok();
    let by_hostname = Hostname::parse(text).ok();
    if by_id.is_none() && by_hostname.is_none() {
        return Err(ApiError::InvalidRequest(format!(
            "search {:?} is neither a tenant id nor a hostname; enter one of them, e.g. acme or acme.example.com",
            text.chars().take(80).collect::<String>()
        )));
    }
    let load = |id: TenantId| async move {
        match store.load(&id).await {
            Ok(record) => Ok(Some(record)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    };
    if let Some(id) = by_id {
        if let Some(record) = load(id).await? {
            return Ok(Some(record));
        }
    }
    match by_hostname {
        Some(hostname) => match store.hostname_owner(&hostname).await? {
            Some(owner) => Ok(load(owner).await?),
            None => Ok(None),
        },
        None => Ok(None),
    }
}

/// A tenant as a listing row.
fn listed(record: &TenantRecord) -> TenantSummary {
    TenantSummary {
        id: record.id().clone(),
        region: record.spec.region.clone(),
        state: record.state.name().to_owned(),
        label: record.state.label(),
        release: record.state.listed_release().map(|r| r.to_string()),
        platform: record.facts.running_platform().map(|p| p.to_string()),
        group: record.spec.group.as_str().to_owned(),
        updated_at: record.updated_at,
    }
}

/// Tenants that are Failed or RollingBack, mid-step with an error they are retrying,
/// or failed by a running rollout, most urgent first.
async fn troubled_tenants(
    state: &ApiState,
    viewer: &Principal<'_>,
    fleet: &FleetSummary,
    rollout_failures: BTreeMap<TenantId, (String, String)>,
) -> Result<(Vec<TroubledTenant>, usize), StoreError> {
    let store = state.store();
    let list = |state_name: &str, limit: u32| ListQuery {
        state: Some(state_name.to_owned()),
        limit: Some(limit),
        ..ListQuery::default()
    };
    let mut candidates: Vec<TenantId> = Vec::new();
    let mut not_listed = 0;
    // The tenants in the middle of steps are read once, from the work index, for
    // every state with steps looked at below.
    let in_flight = store.in_flight(IN_FLIGHT_CHECKED).await?;
    let in_flight_cut = in_flight.len() >= IN_FLIGHT_CHECKED;
    for name in TROUBLE_STATES {
        let (mut ids, more): (Vec<TenantId>, bool) = if TenantState::STEPPING.contains(&name) {
            let ids: Vec<TenantId> = (in_flight.iter())
                .filter(|t| t.state == name)
                .map(|t| t.id.clone())
                .collect();
            let more = in_flight_cut || ids.len() > TROUBLE_SHOWN;
            (ids, more)
        } else {
            let page = store.list(&list(name, TROUBLE_SHOWN as u32)).await?;
            let more = page.next_token.is_some();
            (page.items.into_iter().map(|t| t.id).collect(), more)
        };
        ids.truncate(TROUBLE_SHOWN);
        if more {
            // More than we list; count them from the summary instead.
            let total = state_total(fleet, name);
            not_listed += (total as usize).saturating_sub(ids.len());
        }
        candidates.extend(ids);
    }
    let moving: Vec<TenantId> = (in_flight.into_iter())
        .filter(|t| MOVING_STATES.contains(&t.state.as_str()))
        .map(|t| t.id)
        .collect();
    let always: BTreeSet<TenantId> = candidates.iter().cloned().collect();
    candidates.extend(moving);
    candidates.extend(rollout_failures.keys().cloned());
    let mut seen = BTreeSet::new();
    let mut trouble = Vec::new();
    for id in candidates {
        if !seen.insert(id.clone()) {
            continue;
        }
        if trouble.len() >= TROUBLE_SHOWN {
            not_listed += 1;
            continue;
        }
        let record = match store.load(&id).await {
            Ok(r) => r,
            // Deleted between the listing and the read: no longer anyone's trouble.
            Err(StoreError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        if !viewer.sees(TenantPlace::from(&record.spec)) {
            continue;
        }
        let rollout_failure = rollout_failures.get(&id).cloned();
        if !always.contains(&id) && record.last_error.is_none() && rollout_failure.is_none() {
            continue;
        }
        trouble.push(TroubledTenant {
            id: id.to_string(),
            region: record.spec.region.to_string(),
            label: record.state.label(),
            release: record.state.listed_release().map(|r| r.to_string()),
            last_error: record.last_error.clone(),
            rollout_failure,
        });
    }
    Ok((trouble, not_listed))
}

fn state_total(fleet: &FleetSummary, name: &str) -> u64 {
    fleet
        .by_region
        .values()
        .filter_map(|states| states.get(name))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::dashboard::rollout_timeline;
    use crate::domain::rollout::{Plan, PlannedTenant, Wave};
    use crate::domain::{Region, RolloutId, RolloutSpec};
    use crate::record::Outcome;

    #[test]
    fn the_states_the_overview_looks_at_are_the_machines_own() {
        for name in TROUBLE_STATES.iter().chain(MOVING_STATES.iter()) {
            assert!(
                TenantState::parse_name(name).is_ok(),
                "{name} is not a state of the machine"
            );
        }
    }

    /// A member of wave `wave` in eu-west-1, as the timeline tests build it.
    fn member(wave: usize, id: &str, outcome: Outcome) -> RolloutMember {
        rollout_timeline::tests::member(wave, id, outcome, 0)
    }

    fn record(waves: usize) -> RolloutRecord {
        let spec: RolloutSpec = serde_json::from_value(serde_json::json!({"release": "1.1.0"})).unwrap();
        let now = Utc::now();
        let plan = Plan {
            target: spec.target_text(),
            release: spec.release.clone(),
            planned_at: now,
            region_order: vec![Region::parse("eu-west-1").unwrap()],
            waves: (0..waves)
                .map(|index| Wave {
                    index,
                    kind: if index == 0 {
                        WaveKind::Canary
                    } else {
                        WaveKind::Percent
                    },
                    target: crate::domain::rollout::WaveSize::parse(if index == 0 { "1" } else { "100%" })
                        .unwrap(),
                    stage: index,
                    regions: vec![Region::parse("eu-west-1").unwrap()],
                    tenants: Vec::<PlannedTenant>::new(),
                    approval_before: index > 0,
                    allowed_failures: index,
                    earliest_start: now,
                    estimated_finish: now,
                    bake_until: now,
                })
                .collect(),
            skipped: Vec::new(),
            not_selected: 0,
            assumed_tenant_duration: std::time::Duration::from_secs(60),
            estimated_end: now,
        };
        RolloutRecord::from_plan(
            RolloutId::parse("r-test").unwrap(),
            spec,
            &plan,
            "operator:t",
            now,
        )
    }

    #[test]
    fn members_are_counted_per_wave_by_outcome() {
        let members = vec![
            member(0, "alpha", Outcome::Succeeded),
            member(1, "bravo", Outcome::InFlight),
            member(
                1,
                "charlie",
                Outcome::Failed {
                    reason: "boom".into(),
                },
            ),
            member(1, "delta", Outcome::Pending),
            member(1, "echo", Outcome::Pending),
            member(
                1,
                "foxtrot",
                Outcome::Skipped {
                    reason: "pinned".into(),
                },
            ),
        ];
        let waves = wave_progress(&record(3), &outcomes_of_members(&members).0);
        assert_eq!(waves.len(), 3);
        assert_eq!(
            waves[0].counts,
            OutcomeCounts {
                succeeded: 1,
                ..OutcomeCounts::default()
            }
        );
        assert_eq!(
            waves[1].counts,
            OutcomeCounts {
                succeeded: 0,
                failed: 1,
                in_flight: 1,
                pending: 2,
                skipped: 1
            }
        );
        assert_eq!(
            waves[2].counts,
            OutcomeCounts::default(),
            "a wave with no members counts zero"
        );
        assert_eq!(waves[1].target, "100%");
        assert_eq!(waves[1].allowed_failures, 1);
    }
}
