//! Certificate slots: the shared ACM certificates of a region, one slot each, kept in
//! the tenants' table. One partition per region holds the region's slots and an
//! allocation root, so one strongly consistent read returns the whole allocation.
//!
//! Every write is conditional on the slot's `version`. Allocation changes (new slots,
//! names joining or leaving) also bump the root's version in the same transaction:
//! they decide on the whole region at once (listener places, the certificate bound),
//! so two workers allocating at the same time cannot both win and over-fill a
//! listener. Progress on one slot (request, attach, swap, retire) touches that slot
//! only; it never adds to a listener, so it does not need the root.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::Region;
use crate::record::slot::Slot;

/// A region's slots as read in one consistent Query.
#[derive(Debug, Clone, Default)]
pub struct RegionSlots {
    /// Version of the allocation root (0 before the first allocation).
    pub root_version: u64,
    /// The slots, by number.
    pub slots: Vec<Slot>,
}

#[async_trait]
pub trait CertificateSlotStore: Send + Sync {
    /// Every slot of `region` and the version of its allocation root.
    async fn load_slots(&self, region: &Region) -> Result<RegionSlots, StoreError>;
    /// Writes an allocation: new slots (`version` 0) and changed ones, guarded by the
    /// root version the decision was made on and by each slot's version. `Conflict`
    /// when another worker allocated or changed a slot first: reload and decide again.
    async fn allocate_slots(
        &self,
        region: &Region,
        root_version: u64,
        slots: &[Slot],
    ) -> Result<(), StoreError>;
    /// Writes a slot's progress if nobody changed it since it was read (`Conflict`
    /// otherwise). A write whose answer was lost and that the client sent again is
    /// recognised as this write, and succeeds.
    async fn save_slot(&self, slot: &Slot) -> Result<(), StoreError>;
    /// Deletes a slot that holds nothing any more, if nobody changed it since it was
    /// read. A slot already gone is success.
    async fn remove_slot(&self, slot: &Slot) -> Result<(), StoreError>;
}
