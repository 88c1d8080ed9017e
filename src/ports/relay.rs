//! The next tenant a rollout starts, offered by the rollout controller to the workers
//! in its process, so that a worker whose tenant lands starts it in the same write
//! that records the landing ([`super::TenantStore::save_steps_and_drive`]) and runs
//! it at once, instead of waiting for the controller to see the landing and drive the
//! next tenant in a transaction of its own.
//!
//! After each pass over a rollout it holds, the controller offers the tenants that
//! pass found ready to start but for a free slot, per region, each as the drive it
//! would write itself: decided by the same rules, at the same time. An offer is good
//! for [`RELAY_VALID_FOR`] and is replaced by the next pass's; a pass that leaves the
//! rollout anything but deploying withdraws it, and so do an operator's command in
//! this process and a failed landing of one of its tenants, so a pause, an abort or a
//! spent failure budget stops relays at once. A relayed start takes the place of a
//! tenant that landed, in its region, that the pass counted in flight, each such
//! landing once, so the in-flight limits hold as the pass counted them. The write fences on the controller's lease and on the next tenant's
//! version, so a relay never starts a tenant twice nor after the controller lost the
//! rollout. Tenants with maintenance windows are never offered: their turn is left to
//! the controller, which checks the window when it starts them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::domain::{Region, RolloutId, TenantId};
use crate::record::{Lease, RolloutMember, RolloutRecord, TenantRecord, Transition};

/// How long an offer stays good without the controller passing over its rollout
/// again: during a wave, every landing wakes the controller, so a busy rollout's
/// offer is renewed well within it.
pub const RELAY_VALID_FOR: Duration = Duration::from_secs(1);

/// A tenant's start, decided by the controller's pass and written by the worker whose
/// tenant lands: the fields of a [`super::TenantDrive`], owned.
#[derive(Debug, Clone)]
pub struct RelayDrive {
    pub rollout: Arc<RolloutRecord>,
    /// The controller's lease on the rollout when it decided.
    pub lease: Lease,
    /// The tenant moved to its next state, at the version it was read at.
    pub tenant: TenantRecord,
    pub transition: Transition,
    pub member: RolloutMember,
    pub finished_holder: Option<RolloutId>,
}

struct Offer {
    until: Instant,
    ready: HashMap<Region, VecDeque<RelayDrive>>,
    /// The tenants the pass counted in flight: only the landing of one of them frees
    /// a slot, and each frees one.
    in_flight: HashSet<TenantId>,
}

#[derive(Default)]
struct Offers {
    by_rollout: HashMap<RolloutId, Offer>,
    /// Tenants taken whose joint write has not been answered yet.
    relaying: HashMap<RolloutId, HashSet<TenantId>>,
    /// Tenants started by relay lately, and when: in flight whatever a pass read
    /// before their start, until they land or [`STARTED_KEPT`] passes.
    started: HashMap<RolloutId, HashMap<TenantId, Instant>>,
}

/// How long a tenant started by relay counts in flight for the offers without a
/// pass having seen it: longer than a pass's read can be stale, shorter than any
/// upgrade.
const STARTED_KEPT: Duration = Duration::from_secs(2);

/// The offers of the rollout controller in this process; see the module's comment.
#[derive(Default)]
pub struct Relay {
    offers: Mutex<Offers>,
}

impl Relay {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Offers> {
        self.offers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the offer of `rollout` with `ready`, in the order they are to start,
    /// good for [`RELAY_VALID_FOR`] from now, each to take the place of one of
    /// `in_flight` that lands. Tenants being relayed are left out.
    pub fn offer(&self, rollout: &RolloutId, ready: Vec<RelayDrive>, mut in_flight: HashSet<TenantId>) {
        let mut offers = self.lock();
        let now = Instant::now();
        let relaying = offers.relaying.get(rollout).cloned().unwrap_or_default();
        let started = offers.started.entry(rollout.clone()).or_default();
        started.retain(|_, at| now.duration_since(*at) < STARTED_KEPT);
        // A pass that read a tenant before its relayed start saw it pending.
        in_flight.extend(started.keys().cloned());
        let taken = |id: &TenantId| relaying.contains(id) || started.contains_key(id);
        let mut by_region: HashMap<Region, VecDeque<RelayDrive>> = HashMap::new();
        for drive in ready.into_iter().filter(|d| !taken(d.tenant.id())) {
            by_region
                .entry(drive.tenant.spec.region.clone())
                .or_default()
                .push_back(drive);
        }
        if started.is_empty() {
            offers.started.remove(rollout);
        }
        if by_region.is_empty() {
            offers.by_rollout.remove(rollout);
            return;
        }
        let offer = Offer {
            until: now + RELAY_VALID_FOR,
            ready: by_region,
            in_flight,
        };
        offers.by_rollout.insert(rollout.clone(), offer);
    }

    /// Withdraws the offer of `rollout`: nothing more of it starts by relay until the
    /// controller's next pass offers again.
    pub fn withdraw(&self, rollout: &RolloutId) {
        self.lock().by_rollout.remove(rollout);
    }

    /// Withdraws every offer.
    pub fn withdraw_all(&self) {
        self.lock().by_rollout.clear();
    }

    /// The next tenant of `rollout` in `region` to start in place of `landed`, if
    /// the offer is still good and counted `landed` in flight. The caller reports
    /// its write's end with [`Self::answered`].
    pub fn take(&self, rollout: &RolloutId, region: &Region, landed: &TenantId) -> Option<RelayDrive> {
        let mut offers = self.lock();
        let Offers {
            by_rollout,
            relaying,
            started,
        } = &mut *offers;
        // A tenant started by relay has landed: it counts in flight no longer.
        let was_started = (started.get_mut(rollout)).is_some_and(|s| s.remove(landed).is_some());
        let offer = by_rollout.get_mut(rollout)?;
        if offer.until <= Instant::now() {
            by_rollout.remove(rollout);
            return None;
        }
        let counted = offer.in_flight.remove(landed);
        if !(counted || was_started) {
            return None;
        }
        let drive = offer.ready.get_mut(region)?.pop_front()?;
        (relaying.entry(rollout.clone()).or_default()).insert(drive.tenant.id().clone());
        Some(drive)
    }

    /// The joint write that was to start `tenant` was answered: `started` says
    /// whether it was written.
    pub fn answered(&self, rollout: &RolloutId, tenant: &TenantId, started: bool) {
        let mut offers = self.lock();
        if let Some(relaying) = offers.relaying.get_mut(rollout) {
            relaying.remove(tenant);
            if relaying.is_empty() {
                offers.relaying.remove(rollout);
            }
        }
        if started {
            (offers.started.entry(rollout.clone()).or_default()).insert(tenant.clone(), Instant::now());
        }
    }

    /// The tenants of `rollout` whose relayed start is being written now: a pass
    /// that read them before the write counts them in flight and leaves them alone.
    pub fn relaying(&self, rollout: &RolloutId) -> HashSet<TenantId> {
        self.lock().relaying.get(rollout).cloned().unwrap_or_default()
    }
}
