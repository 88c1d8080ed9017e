//! Decides which certificate slot each hostname goes to. Pure: it takes the region's
//! slots as they are and returns the changes to make; persistence and AWS are
//! elsewhere.
//!
//! Two costs pull against each other. Certificates are few when slots are full, but
//! every change of a slot's names is a new ACM issuance, and issuances count against
//! a yearly quota. The rules:
//!
//! * a name joins a slot whose change is not requested yet before anything else: it
//!   rides along on an issuance that happens anyway;
//! * then a settled slot with room (one issuance, no new certificate);
//! * then a new slot, but only while the region stays within
//!   `ceil(names / names_per_certificate) + 1` certificates;
//! * otherwise the name waits for a slot in flight rather than ask ACM twice;
//! * a name already planned is never planned again;
//! * a region above the bound (after removals) spreads its smallest changeable slot
//!   over the others, on every `place` and `release`, so a region that could not
//!   shrink while slots were in flight does once they have settled.
//!
//! A listener has `certificates_per_listener` places. A replacement certificate is
//! attached before the one it replaces leaves, so new slots are opened only while a
//! listener keeps one place free for replacements.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::Hostname;
use crate::record::slot::{Names, Slot, SlotState};

#[cfg(test)]
mod tests;

/// The capacities the allocator respects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub names_per_certificate: usize,
    pub certificates_per_listener: usize,
}

/// The most certificates a region should need for `names` hostnames.
pub fn certificate_bound(names: usize, names_per_certificate: usize) -> usize {
    names.div_ceil(names_per_certificate.max(1)) + 1
}

/// What the allocator needs to know about one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotView {
    pub n: u32,
    pub listener: String,
    pub state: SlotState,
    /// Names on the attached certificate (empty when there is none).
    pub current: BTreeSet<Hostname>,
    /// Replaced certificates still attached.
    pub retired: usize,
    /// Names the slot is converging to.
    pub target: Names,
}

impl SlotView {
    pub fn of(slot: &Slot) -> Self {
        Self {
            n: slot.n,
            listener: slot.listener_arn.clone(),
            state: slot.state(),
            current: slot.current_names(),
            retired: slot.retired.len(),
            target: slot.target(),
        }
    }

    /// Same count as [`Slot::certificates_at_peak`].
    pub fn certificates_at_peak(&self) -> usize {
        let replacement = matches!(self.state, SlotState::Open | SlotState::InFlight);
        usize::from(!self.current.is_empty()) + usize::from(replacement) + self.retired
    }

    fn room(&self, limits: &Limits) -> usize {
        limits.names_per_certificate.saturating_sub(self.target.len())
    }

    /// Whether the slot can take a change now, and whether that change would need a
    /// new place on the listener.
    fn changeable(&self) -> Option<bool> {
        match self.state {
            SlotState::Open => Some(false),
            SlotState::Idle => Some(true),
            SlotState::InFlight | SlotState::Retiring => None,
        }
    }

    /// Mirrors [`Slot::retarget`].
    fn retarget(&mut self, target: Names) {
        let keys: BTreeSet<Hostname> = target.keys().cloned().collect();
        self.state = if !self.current.is_empty() && keys == self.current {
            SlotState::Idle
        } else if target.is_empty() {
            SlotState::Retiring
        } else {
            SlotState::Open
        };
        self.target = target;
    }
}

/// A name that cannot be placed or released yet, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub name: Hostname,
    pub why: String,
}

/// No listener has a free place and no certificate has room: only a new listener helps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no room for hostname {name}: every listener carries its limit of {per_listener} certificates \
     (one place kept free for replacements) and every certificate has {per_certificate} names; \
     add a listener to the region's listener_arns"
)]
pub struct NoRoom {
    pub name: Hostname,
    pub per_listener: usize,
    pub per_certificate: usize,
}

/// A change to one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotChange {
    Open { n: u32, listener: String, names: Names },
    Retarget { n: u32, target: Names },
}

/// The region's slots as the allocator sees them, changed in place by `place` and
/// `release`; `changes` lists what to persist.
#[derive(Debug, Clone)]
pub struct Layout {
    slots: BTreeMap<u32, SlotView>,
    /// Listeners that may receive names, in fill order.
    listeners: Vec<String>,
    limits: Limits,
    opened: BTreeSet<u32>,
    retargeted: BTreeSet<u32>,
}

impl Layout {
    pub fn new(slots: impl IntoIterator<Item = SlotView>, listeners: Vec<String>, limits: Limits) -> Self {
        Self {
            slots: slots.into_iter().map(|v| (v.n, v)).collect(),
            listeners,
            limits,
            opened: BTreeSet::new(),
            retargeted: BTreeSet::new(),
        }
    }

    pub fn slots(&self) -> impl Iterator<Item = &SlotView> {
        self.slots.values()
    }

    pub fn slots_mut(&mut self) -> impl Iterator<Item = &mut SlotView> {
        self.slots.values_mut()
    }

    pub fn remove_slot(&mut self, n: u32) {
        self.slots.remove(&n);
    }

    /// Hostnames planned in the region.
    pub fn names(&self) -> usize {
        self.slots.values().map(|v| v.target.len()).sum()
    }

    /// Certificates the region is converging to: slots with names.
    pub fn certificates(&self) -> usize {
        self.slots.values().filter(|v| !v.target.is_empty()).count()
    }

    pub fn certificates_on(&self, listener: &str) -> usize {
        self.slots
            .values()
            .filter(|v| v.listener == listener)
            .map(SlotView::certificates_at_peak)
            .sum()
    }

    fn free_places(&self, listener: &str) -> usize {
        self.limits
            .certificates_per_listener
            .saturating_sub(self.certificates_on(listener))
    }

    fn receives(&self, v: &SlotView) -> bool {
        self.listeners.contains(&v.listener)
    }

    pub fn slot_of(&self, name: &Hostname) -> Option<&SlotView> {
        self.slots.values().find(|v| v.target.contains_key(name))
    }

    /// The changes made so far, to persist.
    pub fn changes(&self) -> Vec<SlotChange> {
        let mut out = Vec::new();
        for n in self.opened.union(&self.retargeted) {
            let Some(v) = self.slots.get(n) else { continue };
            out.push(if self.opened.contains(n) {
                SlotChange::Open {
                    n: *n,
                    listener: v.listener.clone(),
                    names: v.target.clone(),
                }
            } else {
                SlotChange::Retarget {
                    n: *n,
                    target: v.target.clone(),
                }
            });
        }
        out
    }

    fn set_target(&mut self, n: u32, target: Names) {
        if let Some(v) = self.slots.get_mut(&n) {
            v.retarget(target);
            if !self.opened.contains(&n) {
                self.retargeted.insert(n);
            }
        }
    }

    /// The fullest slot matching `fits`, lowest number first among equals.
    fn fullest(&self, fits: impl Fn(&SlotView) -> bool) -> Option<u32> {
        self.slots
            .values()
            .filter(|v| fits(v))
            .max_by(|a, b| a.target.len().cmp(&b.target.len()).then(b.n.cmp(&a.n)))
            .map(|v| v.n)
    }

    /// Plans `names` (with their tenants) into slots. Names already planned somewhere
    /// are left alone. Returns the names that must wait for a slot in flight; fails
    /// only when the region is full with nothing in flight that could make room.
    pub fn place(&mut self, names: &Names) -> Result<Vec<Waiting>, NoRoom> {
        let new: Names = names
            .iter()
            .filter(|(name, _)| self.slot_of(name).is_none())
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect();
        let bound = certificate_bound(self.names() + new.len(), self.limits.names_per_certificate);
        let mut waiting = Vec::new();
        for (name, tenant) in new {
            let open =
                self.fullest(|v| v.state == SlotState::Open && self.receives(v) && v.room(&self.limits) > 0);
            let settled = || {
                self.fullest(|v| {
                    v.state == SlotState::Idle
                        && self.receives(v)
                        && v.room(&self.limits) > 0
                        && self.free_places(&v.listener) >= 1
                })
            };
            if let Some(n) = open.or_else(settled) {
                let mut target = self.slots[&n].target.clone();
                target.insert(name, tenant);
                self.set_target(n, target);
                continue;
            }
            // A slot that has room but cannot change now (in flight, or its listener
            // has no place for a replacement).
            let busy = self
                .slots
                .values()
                .find(|v| self.receives(v) && v.state != SlotState::Retiring && v.room(&self.limits) > 0)
                .map(|v| match v.state {
                    SlotState::InFlight => format!(
                        "certificate slot {} is being issued; its names can change once it is done",
                        v.n
                    ),
                    _ => format!(
                        "listener {} has no free place for a replacement certificate until one in flight is done",
                        v.listener
                    ),
                });
            let listener = self.listeners.iter().find(|l| self.free_places(l) >= 2).cloned();
            let within_bound = self.certificates() < bound;
            if let Some(listener) = listener.filter(|_| within_bound || busy.is_none()) {
                self.open_slot(listener, name, tenant);
            } else if let Some(why) = busy {
                waiting.push(Waiting { name, why });
            } else if self
                .slots
                .values()
                .any(|v| v.state != SlotState::Idle || v.retired > 0)
            {
                // Replacements and retirements hold places only until they are done.
                waiting.push(Waiting {
                    name,
                    why: "no room until the certificates being replaced or retired are done".into(),
                });
            } else {
                return Err(NoRoom {
                    name,
                    per_listener: self.limits.certificates_per_listener,
                    per_certificate: self.limits.names_per_certificate,
                });
            }
        }
        // A region left above its bound while slots were in flight is brought back
        // once they have settled, whichever step looks at the region next.
        self.consolidate(&BTreeSet::new());
        Ok(waiting)
    }

    fn open_slot(&mut self, listener: String, name: Hostname, tenant: crate::domain::TenantId) {
        let n = (1..)
            .find(|n| !self.slots.contains_key(n))
            .expect("a free slot number");
        let names = Names::from([(name, tenant)]);
        self.slots.insert(
            n,
            SlotView {
                n,
                listener,
                state: SlotState::Open,
                current: BTreeSet::new(),
                retired: 0,
                target: names,
            },
        );
        self.opened.insert(n);
    }

    /// Takes `names` out of their slots. A slot left without names retires; one that
    /// would need a new certificate anyway merges into another slot with room when it
    /// can (the same one issuance, one certificate fewer). When the region is above its
    /// certificate bound, the smallest slot that can change is spread over the others
    /// (see `consolidate`). Returns the names that must wait for a slot in
    /// flight.
    pub fn release(&mut self, names: &BTreeSet<Hostname>) -> Vec<Waiting> {
        let mut waiting = Vec::new();
        let mut shrunk = Vec::new();
        let affected: Vec<u32> = self
            .slots
            .values()
            .filter(|v| v.target.keys().any(|k| names.contains(k)))
            .map(|v| v.n)
            .collect();
        for n in affected {
            let v = &self.slots[&n];
            let leaving: Vec<Hostname> = v.target.keys().filter(|k| names.contains(*k)).cloned().collect();
            let mut target = v.target.clone();
            target.retain(|k, _| !names.contains(k));
            let blocked = match v.changeable() {
                None => Some(format!(
                    "certificate slot {n} is being issued; its names can change once it is done"
                )),
                Some(true) if !target.is_empty() && self.free_places(&v.listener) < 1 => Some(format!(
                    "listener {} has no free place for a replacement certificate until one in flight is done",
                    v.listener
                )),
                Some(_) => None,
            };
            match blocked {
                Some(why) => waiting.extend(leaving.into_iter().map(|name| Waiting {
                    name,
                    why: why.clone(),
                })),
                None => {
                    self.set_target(n, target);
                    shrunk.push(n);
                }
            }
        }
        for n in shrunk {
            self.merge_away(n);
        }
        // Names that must wait to leave stay where they are: spreading them would
        // plan them into another slot.
        let stuck: BTreeSet<Hostname> = waiting.iter().map(|w| w.name.clone()).collect();
        self.consolidate(&stuck);
        waiting
    }

    /// While the region is above its certificate bound, spreads the names of a slot
    /// over the others, smallest slot first. A slot that cannot change now (in flight,
    /// or no place for a replacement) is passed over, and the next smallest is tried;
    /// what cannot be done now is done by the next `place` or `release` after the
    /// slots in the way have settled. Slots holding a name of `keep` are left alone.
    fn consolidate(&mut self, keep: &BTreeSet<Hostname>) {
        while self.certificates() > certificate_bound(self.names(), self.limits.names_per_certificate) {
            if !self.dissolve_one(keep) {
                break;
            }
        }
    }

    /// Moves all names of slot `n` into one other slot when `n` is about to request a
    /// certificate and another slot can take them for the same cost or less.
    fn merge_away(&mut self, n: u32) {
        let Some(source) = self.slots.get(&n) else { return };
        if source.state != SlotState::Open || source.target.is_empty() {
            return;
        }
        let size = source.target.len();
        let fits = |v: &SlotView, needs_place: bool| {
            v.n != n
                && self.receives(v)
                && v.room(&self.limits) >= size
                && v.changeable() == Some(needs_place)
                && (!needs_place || self.free_places(&v.listener) >= 1)
        };
        let receiver = self
            .fullest(|v| fits(v, false))
            .or_else(|| self.fullest(|v| fits(v, true)));
        if let Some(r) = receiver {
            let moving = self.slots[&n].target.clone();
            let mut target = self.slots[&r].target.clone();
            target.extend(moving);
            self.set_target(r, target);
            self.set_target(n, Names::new());
        }
    }

    /// Spreads the names of the smallest changeable slot whose names fit over other
    /// slots with room. Returns false when no slot's names fit now (nothing is changed
    /// then).
    fn dissolve_one(&mut self, keep: &BTreeSet<Hostname>) -> bool {
        let mut sources: Vec<SlotView> = self
            .slots
            .values()
            .filter(|v| {
                v.changeable().is_some() && !v.target.is_empty() && !v.target.keys().any(|k| keep.contains(k))
            })
            .cloned()
            .collect();
        sources.sort_by(|a, b| a.target.len().cmp(&b.target.len()).then(a.n.cmp(&b.n)));
        for source in sources {
            if let Some(trial) = self.spread(&source) {
                *self = trial;
                return true;
            }
        }
        false
    }

    /// The layout with the names of `source` spread over other slots with room, if
    /// they all fit now.
    fn spread(&self, source: &SlotView) -> Option<Layout> {
        let mut trial = self.clone();
        for (name, tenant) in &source.target {
            let fits = |v: &SlotView, needs_place: bool| {
                v.n != source.n
                    && trial.receives(v)
                    && v.room(&trial.limits) > 0
                    && v.changeable() == Some(needs_place)
                    && (!needs_place || trial.free_places(&v.listener) >= 1)
            };
            let r = trial
                .fullest(|v| fits(v, false))
                .or_else(|| trial.fullest(|v| fits(v, true)))?;
            let mut target = trial.slots[&r].target.clone();
            target.insert(name.clone(), tenant.clone());
            trial.set_target(r, target);
        }
        trial.set_target(source.n, Names::new());
        Some(trial)
    }
}
