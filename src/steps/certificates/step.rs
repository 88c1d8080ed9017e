//! The two steps. Each run reads the region's slots, plans what the tenant needs
//! (its names in and the names it no longer has out, or all its names out), then
//! drives every slot that has work until nothing can move without waiting; it is Done
//! when the tenant's goal holds, Pending otherwise. Everything it needs to resume is
//! in the slots, so a run after a crash, a lost lease or on another worker simply
//! carries on.
//!
//! The hostnames' DNS records go with their certificates: EnsureCertificates deletes
//! the records of hostnames the tenant no longer has before their certificates change
//! and points the others at their listener's load balancer once they are covered;
//! ReleaseCertificates deletes them all first. The names are recorded in the facts
//! (`routed_hostnames`) before any record is written, so no record is forgotten.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use tracing::{instrument, warn};

use super::allocator::{Layout, SlotChange, SlotView, Waiting};
use super::cloud::{CertificateCloud, CloudError};
use super::driver::{Driven, Driver};
use super::issuance::Timing;
use super::routes::Routes;
use crate::domain::{Hostname, TenantId};
use crate::machine::StepKind;
use crate::ports::{CertificateSlotStore, RegionSlots, StoreError};
use crate::record::slot::{Names, Slot};
use crate::step::{Step, StepContext, StepOutcome};
use crate::steps::{RegionSettings, StepsConfig};

/// Rounds of plan-and-drive in one run before handing back to the worker.
const MAX_ROUNDS: usize = 40;

/// EnsureCertificates and ReleaseCertificates.
pub struct CertificateStep {
    config: Arc<StepsConfig>,
    cloud: Arc<dyn CertificateCloud>,
    slots: Arc<dyn CertificateSlotStore>,
}

/// What the run is for.
enum Goal {
    /// Every name on an issued certificate attached to a listener, and none of the
    /// tenant's other names (hostnames it no longer has) on any certificate.
    Covered { names: Names, tenant: TenantId },
    /// None of the tenant's names on any certificate.
    Released(TenantId),
}

impl Goal {
    fn tenant(&self) -> &TenantId {
        match self {
            Goal::Covered { tenant, .. } | Goal::Released(tenant) => tenant,
        }
    }

    /// The tenant's names the slots hold but the goal does not want.
    fn leaving(&self, slots: &[Slot]) -> BTreeSet<Hostname> {
        let tenant = self.tenant();
        slots
            .iter()
            .flat_map(all_names)
            .filter(|(name, owner)| {
                owner == tenant
                    && match self {
                        Goal::Covered { names, .. } => !names.contains_key(name),
                        Goal::Released(_) => true,
                    }
            })
            .map(|(name, _)| name)
            .collect()
    }

    fn tenant_names(&self, slots: &[Slot]) -> BTreeSet<Hostname> {
        let mut out = self.leaving(slots);
        if let Goal::Covered { names, .. } = self {
            out.extend(names.keys().cloned());
        }
        out
    }

    fn reached(&self, slots: &[Slot]) -> bool {
        let covered = match self {
            Goal::Covered { names, .. } => names.keys().all(|n| slots.iter().any(|s| s.covers(n))),
            Goal::Released(_) => true,
        };
        covered && self.leaving(slots).is_empty()
    }
}

/// Every name a slot holds: planned, on its certificate, or on a retired one.
fn all_names(slot: &Slot) -> Vec<(Hostname, TenantId)> {
    let mut out: Vec<(Hostname, TenantId)> = slot.target().into_iter().collect();
    for cert in slot.current.iter().chain(&slot.retired) {
        out.extend(cert.names.iter().map(|(n, t)| (n.clone(), t.clone())));
    }
    out
}

/// Slots a failure of which is the tenant's business: those holding its names, and
/// those its names' slots wait for.
fn relevant(slots: &[Slot], names: &BTreeSet<Hostname>) -> BTreeSet<u32> {
    let holding: Vec<&Slot> = slots
        .iter()
        .filter(|s| all_names(s).iter().any(|(n, _)| names.contains(n)))
        .collect();
    let mut out: BTreeSet<u32> = holding.iter().map(|s| s.n).collect();
    for s in holding {
        let leaving = s.current_names();
        out.extend(
            slots
                .iter()
                .filter(|o| o.target().keys().any(|n| leaving.contains(n)))
                .map(|o| o.n),
        );
    }
    out
}

impl CertificateStep {
    pub fn new(
        config: Arc<StepsConfig>,
        cloud: Arc<dyn CertificateCloud>,
        slots: Arc<dyn CertificateSlotStore>,
    ) -> Self {
        Self { config, cloud, slots }
    }

    fn settings<'a>(&'a self, ctx: &StepContext<'_>) -> Result<&'a RegionSettings, String> {
        if let Some(problem) = self.config.certificates.problem() {
            return Err(problem);
        }
        let region = &ctx.tenant.spec.region;
        let settings = self.config.region(region)?;
        if settings.listener_arns.is_empty() {
            return Err(format!(
                "region {region} has no listener_arns; list the shared ALB's HTTPS listeners in the steps configuration"
            ));
        }
        if settings.hosted_zone_id.is_empty() {
            return Err(format!(
                "region {region} has no hosted_zone_id for certificate validation and hostname records; set it in the steps configuration"
            ));
        }
        Ok(settings)
    }

    async fn converge(&self, ctx: StepContext<'_>, goal: Goal) -> StepOutcome {
        let settings = match self.settings(&ctx) {
            Ok(s) => s,
            Err(problem) => return StepOutcome::fail(problem),
        };
        let certificates = &self.config.certificates;
        let timing = Timing {
            poll: Duration::from_secs(certificates.poll_seconds),
            gather: Duration::from_secs(certificates.gather_seconds),
        };
        let driver = Driver {
            cloud: self.cloud.as_ref(),
            slots: self.slots.as_ref(),
            hosted_zone_id: &settings.hosted_zone_id,
            timing,
        };
        let region = &ctx.tenant.spec.region;
        let mut last_wait: Option<(Duration, String)> = None;
        for _ in 0..MAX_ROUNDS {
            let RegionSlots { root_version, slots } = match self.slots.load_slots(region).await {
                Ok(loaded) => loaded,
                Err(e) => return store_failure(e),
            };
            let now = Utc::now();

            // Decide.
            let mut layout = Layout::new(
                slots.iter().map(SlotView::of),
                settings.listener_arns.clone(),
                certificates.limits(),
            );
            let mut waiting = match &goal {
                Goal::Covered { names, .. } => {
                    if let Some(conflict) = foreign_owner(&slots, names) {
                        return StepOutcome::fail(conflict);
                    }
                    match layout.place(names) {
                        Ok(waiting) => waiting,
                        Err(no_room) => return StepOutcome::fail(format!("region {region}: {no_room}")),
                    }
                }
                Goal::Released(_) => Vec::new(),
            };
            let leaving = goal.leaving(&slots);
            if !leaving.is_empty() {
                waiting.extend(layout.release(&leaving));
            }
            let changes = layout.changes();
            if !changes.is_empty() {
                let writes = materialize(&changes, &slots, region, now);
                match self.slots.allocate_slots(region, root_version, &writes).await {
                    Ok(()) | Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return store_failure(e),
                }
            }

            // Do.
            let mine = relevant(&slots, &goal.tenant_names(&slots));
            let mut moved = false;
            let mut moved_mine = false;
            let mut waits: Vec<(Duration, String)> = waiting
                .into_iter()
                .map(|Waiting { name, why }| (timing.poll, format!("{name}: {why}")))
                .collect();
            for slot in slots.iter().filter(|s| !s.is_settled()) {
                let is_mine = mine.contains(&slot.n);
                match driver.drive(slot, &slots, now).await {
                    Driven::Moved => {
                        moved = true;
                        moved_mine |= is_mine;
                    }
                    Driven::Waiting { after, why } if is_mine => waits.push((after, why)),
                    Driven::Waiting { .. } | Driven::Settled => {}
                    Driven::Failed { retryable, reason } if is_mine => {
                        return StepOutcome::Failed { retryable, reason }
                    }
                    Driven::Failed { reason, .. } => {
                        warn!(slot = slot.n, %reason, "another tenant's certificate slot is stuck");
                    }
                }
            }

            // Judge.
            if goal.reached(&slots) && !moved_mine {
                return match &goal {
                    Goal::Covered { names, .. } => {
                        let placed = placements(names, &slots);
                        self.route(&ctx, settings, &placed, self.done(&ctx, &goal, &slots))
                            .await
                    }
                    Goal::Released(_) => self.done(&ctx, &goal, &slots),
                };
            }
            if moved {
                continue;
            }
            last_wait = waits.into_iter().min_by_key(|(after, _)| *after);
            break;
        }
        let (after, note) = last_wait.unwrap_or((
            Duration::from_millis(200),
            "certificate slots are still changing".into(),
        ));
        let mut facts = ctx.tenant.facts.clone();
        facts.progress = None;
        StepOutcome::Pending {
            poll_after: after.min(timing.poll).max(Duration::from_millis(100)),
            facts,
            note,
        }
    }

    fn done(&self, ctx: &StepContext<'_>, goal: &Goal, slots: &[Slot]) -> StepOutcome {
        let mut facts = ctx.tenant.facts.clone();
        facts.progress = None;
        match goal {
            Goal::Covered { names, .. } => {
                let arns: BTreeSet<String> = slots
                    .iter()
                    .filter(|s| names.keys().any(|n| s.covers(n)))
                    .filter_map(|s| s.current.as_ref().map(|c| c.arn.clone()))
                    .collect();
                facts.certificates = arns.into_iter().collect();
                StepOutcome::done(
                    format!(
                        "{} hostname(s) on {} certificate(s)",
                        names.len(),
                        facts.certificates.len()
                    ),
                    facts,
                )
            }
            Goal::Released(_) => {
                facts.certificates.clear();
                facts.routed_hostnames.clear();
                StepOutcome::done("hostnames released from shared certificates", facts)
            }
        }
    }

    fn routes<'a>(&'a self, ctx: &'a StepContext<'_>, settings: &'a RegionSettings) -> Routes<'a> {
        Routes {
            cloud: self.cloud.as_ref(),
            region: &ctx.tenant.spec.region,
            hosted_zone_id: &settings.hosted_zone_id,
            tenant: ctx.tenant.id(),
        }
    }

    /// Points the covered hostnames at their listeners' load balancer; the step is
    /// done once they all are.
    async fn route(
        &self,
        ctx: &StepContext<'_>,
        settings: &RegionSettings,
        placed: &[(Hostname, String)],
        covered: StepOutcome,
    ) -> StepOutcome {
        let StepOutcome::Done(mut output) = covered else {
            return covered;
        };
        let recorded = &ctx.tenant.facts.routed_hostnames;
        if placed.iter().any(|(name, _)| !recorded.contains(name)) {
            // Recorded before any record is written, so no record is ever unknown.
            let all: BTreeSet<Hostname> = recorded
                .iter()
                .chain(placed.iter().map(|(n, _)| n))
                .cloned()
                .collect();
            output.facts.routed_hostnames = all.into_iter().collect();
            return StepOutcome::Pending {
                poll_after: Duration::ZERO,
                facts: output.facts,
                note: "hostnames recorded before their DNS records are written".into(),
            };
        }
        match self.routes(ctx, settings).point(placed).await {
            Ok(written) => {
                output.facts.routed_hostnames = placed.iter().map(|(name, _)| name.clone()).collect();
                output.summary = format!("{}; {written} DNS record(s) written", output.summary);
                StepOutcome::Done(output)
            }
            Err(e) => cloud_failure(e, &output.facts),
        }
    }

    /// EnsureCertificates: deletes the records of hostnames the tenant no longer
    /// has, then converges (and routes the covered hostnames).
    async fn ensure(&self, ctx: StepContext<'_>, names: Names) -> StepOutcome {
        let settings = match self.settings(&ctx) {
            Ok(s) => s,
            Err(problem) => return StepOutcome::fail(problem),
        };
        let recorded = &ctx.tenant.facts.routed_hostnames;
        let dropped: Vec<&Hostname> = recorded.iter().filter(|n| !names.contains_key(*n)).collect();
        if let Err(e) = self.routes(&ctx, settings).remove(dropped).await {
            return cloud_failure(e, &ctx.tenant.facts);
        }
        let tenant = ctx.tenant.id().clone();
        self.converge(ctx, Goal::Covered { names, tenant }).await
    }

    /// ReleaseCertificates: deletes the tenant's DNS records, then converges.
    async fn release(&self, ctx: StepContext<'_>) -> StepOutcome {
        let settings = match self.settings(&ctx) {
            Ok(s) => s,
            Err(problem) => return StepOutcome::fail(problem),
        };
        let names: BTreeSet<&Hostname> = ctx
            .tenant
            .facts
            .routed_hostnames
            .iter()
            .chain(&ctx.tenant.spec.hostnames)
            .collect();
        if let Err(e) = self.routes(&ctx, settings).remove(names).await {
            return cloud_failure(e, &ctx.tenant.facts);
        }
        self.converge(ctx, Goal::Released(ctx.tenant.id().clone())).await
    }
}

/// Each name with the listener carrying the certificate that covers it.
fn placements(names: &Names, slots: &[Slot]) -> Vec<(Hostname, String)> {
    names
        .keys()
        .filter_map(|name| {
            slots
                .iter()
                .find(|s| s.covers(name))
                .map(|s| (name.clone(), s.listener_arn.clone()))
        })
        .collect()
}

fn cloud_failure(e: CloudError, facts: &crate::record::TenantFacts) -> StepOutcome {
    match e {
        CloudError::Throttled(throttled) => throttled.into_outcome(facts),
        CloudError::Retryable(reason) | CloudError::InUse(reason) => StepOutcome::retry(reason),
        CloudError::Fatal(reason) => StepOutcome::fail(reason),
    }
}

#[async_trait]
impl Step for CertificateStep {
    #[instrument(skip_all, fields(tenant = %ctx.tenant.id(), step = %ctx.step))]
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
        let tenant = ctx.tenant.id().clone();
        match ctx.step {
            StepKind::EnsureCertificates => {
                let names = ctx
                    .tenant
                    .spec
                    .hostnames
                    .iter()
                    .map(|h| (h.clone(), tenant.clone()))
                    .collect();
                self.ensure(ctx, names).await
            }
            StepKind::ReleaseCertificates => self.release(ctx).await,
            other => StepOutcome::fail(format!("the certificate step does not run {other}")),
        }
    }
}

/// A wanted name already planned for another tenant.
fn foreign_owner(slots: &[Slot], names: &Names) -> Option<String> {
    slots.iter().find_map(|s| {
        s.target()
            .into_iter()
            .find_map(|(name, owner)| match names.get(&name) {
                Some(tenant) if *tenant != owner => Some(format!(
                    "hostname {name} is already on a shared certificate for tenant {owner}; a hostname \
                 belongs to one tenant only"
                )),
                _ => None,
            })
    })
}

/// The slot records an allocation writes.
fn materialize(
    changes: &[SlotChange],
    slots: &[Slot],
    region: &crate::domain::Region,
    now: chrono::DateTime<Utc>,
) -> Vec<Slot> {
    changes
        .iter()
        .filter_map(|change| match change {
            SlotChange::Open { n, listener, names } => Some(Slot::open(
                region.clone(),
                *n,
                listener.clone(),
                names.clone(),
                now,
            )),
            SlotChange::Retarget { n, target } => slots.iter().find(|s| s.n == *n).map(|s| {
                let mut s = s.clone();
                s.retarget(target.clone(), now);
                s
            }),
        })
        .collect()
}

fn store_failure(e: StoreError) -> StepOutcome {
    match e {
        StoreError::Retryable { .. } | StoreError::Conflict { .. } => StepOutcome::retry(e.detailed()),
        _ => StepOutcome::fail(e.detailed()),
    }
}
