//! A worker's free slots, offered to the rollout controller in the same process: a
//! drive that makes a tenant's step due can give the tenant's lease to that worker
//! in the drive's own transaction, and hand it the tenant as stored, so the worker
//! starts the step without a lease write or a read of its own.
//!
//! A grant is made only with a slot reserved first, so a worker never holds a lease
//! it has no room to run: a granted tenant is as good as started. A worker that has
//! stopped offers no slot, and a tenant handed to it after it stopped has its lease
//! given back at once. A process that dies with granted tenants leaves leases that
//! run out like any worker's, and each tenant goes to whichever worker polls it next.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tracing::debug;

use crate::domain::Region;
use crate::record::TenantRecord;

use super::TenantStore;

/// What a grant writes on the tenant: the worker's name as the lease owner, and how
/// long the lease lasts before the worker's first renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseGrant {
    pub owner: String,
    pub ttl: Duration,
}

/// A tenant whose lease a drive gave to the worker, as stored, with the slot it runs in.
pub struct Handed {
    pub record: TenantRecord,
    pub slot: OwnedSemaphorePermit,
}

/// The controller's side of one worker's slots.
#[derive(Clone)]
pub struct LeaseHandoff {
    grant: LeaseGrant,
    regions: Option<Vec<Region>>,
    slots: Arc<Semaphore>,
    to_worker: mpsc::UnboundedSender<Handed>,
    store: Arc<dyn TenantStore>,
}

/// The worker's side: the tenants handed to it.
pub struct HandoffInbox {
    from_controller: Mutex<Option<mpsc::UnboundedReceiver<Handed>>>,
}

impl HandoffInbox {
    /// The receiver, for the one loop that runs the worker; `None` once taken.
    pub fn take(&self) -> Option<mpsc::UnboundedReceiver<Handed>> {
        self.from_controller
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

impl LeaseHandoff {
    /// A handoff to the worker named `grant.owner`, serving `regions` (`None`: all),
    /// whose running tenants each hold one of `slots`; `store` gives a granted lease
    /// back when the worker has stopped.
    pub fn new(
        grant: LeaseGrant,
        regions: Option<Vec<Region>>,
        slots: Arc<Semaphore>,
        store: Arc<dyn TenantStore>,
    ) -> (Self, HandoffInbox) {
        let (to_worker, from_controller) = mpsc::unbounded_channel();
        let handoff = Self {
            grant,
            regions,
            slots,
            to_worker,
            store,
        };
        let inbox = HandoffInbox {
            from_controller: Mutex::new(Some(from_controller)),
        };
        (handoff, inbox)
    }

    /// A free slot of this worker for a tenant of `region`, if it serves the region
    /// and has one; `None` when it is busy at its concurrency or stopping.
    pub fn reserve(&self, region: &Region) -> Option<ReservedSlot> {
        let serves = (self.regions.as_ref()).is_none_or(|regions| regions.contains(region));
        if !serves {
            return None;
        }
        let permit = self.slots.clone().try_acquire_owned().ok()?;
        Some(ReservedSlot {
            permit,
            handoff: self.clone(),
        })
    }
}

/// A slot held for one drive. Dropped unused, it is free again.
pub struct ReservedSlot {
    permit: OwnedSemaphorePermit,
    handoff: LeaseHandoff,
}

impl ReservedSlot {
    /// The lease the drive writes for the worker holding this slot.
    pub fn grant(&self) -> &LeaseGrant {
        &self.handoff.grant
    }

    /// Hands `record`, stored with this slot's grant, to the worker. A worker that
    /// has stopped no longer takes tenants: the lease is given back at once so the
    /// next worker need not wait for it to run out.
    pub async fn give(self, record: TenantRecord) {
        let ReservedSlot { permit, handoff } = self;
        let Err(mpsc::error::SendError(unsent)) = handoff.to_worker.send(Handed { record, slot: permit })
        else {
            return;
        };
        let record = unsent.record;
        if let Some(lease) = &record.lease {
            if let Err(e) = handoff.store.release_lease(&record, lease).await {
                debug!(tenant = %record.id(), error = %e, "could not give back a lease granted to a stopped worker; it runs out");
            }
        }
    }
}
