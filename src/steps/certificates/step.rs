//! The two steps. Each run reads the region's slots, plans what the tenant needs
//! (names in, or names out), then drives every slot that has work until nothing can
//! move without waiting; it is Done when the tenant's goal holds, Pending otherwise.
//! Everything it needs to resume is in the slots, so a run after a crash, a lost
//! lease or on another worker simply carries on.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use tracing::{instrument, warn};

use super::allocator::{Layout, SlotChange, SlotView, Waiting};
use super::cloud::CertificateCloud;
use super::driver::{Driven, Driver};
use super::issuance::Timing;
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
    /// Every name on an issued certificate attached to a listener.
    Covered(Names),
    /// None of the tenant's names on any certificate.
    Released(TenantId),
}

impl Goal {
    fn tenant_names(&self, slots: &[Slot]) -> BTreeSet<Hostname> {
        match self {
            Goal::Covered(names) => names.keys().cloned().collect(),
            Goal::Released(tenant) => slots
                .iter()
                .flat_map(all_names)
                .filter(|(_, owner)| owner == tenant)
                .map(|(name, _)| name)
                .collect(),
        }
    }

    fn reached(&self, slots: &[Slot]) -> bool {
        match self {
            Goal::Covered(names) => names.keys().all(|n| slots.iter().any(|s| s.covers(n))),
            Goal::Released(tenant) => !slots
                .iter()
                .flat_map(all_names)
                .any(|(_, owner)| &owner == tenant),
        }
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
                "region {region} has no hosted_zone_id for certificate validation records; set it in the steps configuration"
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
            let waiting = match &goal {
                Goal::Covered(names) => {
                    if let Some(conflict) = foreign_owner(&slots, names) {
                        return StepOutcome::fail(conflict);
                    }
                    match layout.place(names) {
                        Ok(waiting) => waiting,
                        Err(no_room) => return StepOutcome::fail(format!("region {region}: {no_room}")),
                    }
                }
                Goal::Released(_) => layout.release(&goal.tenant_names(&slots)),
            };
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
                return self.done(&ctx, &goal, &slots);
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
            Goal::Covered(names) => {
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
                StepOutcome::done("hostnames released from shared certificates", facts)
            }
        }
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
                self.converge(ctx, Goal::Covered(names)).await
            }
            StepKind::ReleaseCertificates => self.converge(ctx, Goal::Released(tenant)).await,
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
        StoreError::Retryable { .. } | StoreError::Conflict { .. } => StepOutcome::retry(e.to_string()),
        _ => StepOutcome::fail(e.to_string()),
    }
}
