//! The fleet's invariants, checked over a snapshot of the table. The snapshot is read
//! by the store; deciding what is wrong with it is pure, so every rule is unit-tested
//! without DynamoDB.
//!
//! What must hold at any moment, whatever interleaving of workers, controllers and
//! operator commands led there:
//! - a tenant whose state has a step is in the work index (it has both work keys), or
//!   nothing would ever run that step;
//! - a settled tenant (no step) carries no expired lease: whoever held it last gave it
//!   up with the write that settled it;
//! - a tenant's history is numbered 1, 2, … without gaps, up to its `event_seq`;
//! - every tenant a running rollout started is held by that rollout, and every tenant
//!   held by a running rollout is one of its members.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{RolloutId, TenantId};
use crate::record::{Outcome, Phase, TenantRecord};

/// What the check needs to know of one tenant.
#[derive(Debug, Clone)]
pub struct TenantFacts {
    pub record: TenantRecord,
    /// Both keys of the work index are present on the item.
    pub in_work_index: bool,
    /// Sequence numbers of its history events, as stored.
    pub history: BTreeSet<u64>,
}

/// What the check needs to know of one rollout.
#[derive(Debug, Clone)]
pub struct RolloutFacts {
    pub id: RolloutId,
    pub phase: Phase,
    /// Each member's tenant and outcome.
    pub members: Vec<(TenantId, Outcome)>,
}

/// The table as read by one scan.
#[derive(Debug, Clone, Default)]
pub struct FleetSnapshot {
    pub tenants: Vec<TenantFacts>,
    pub rollouts: Vec<RolloutFacts>,
}

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Stable name of the invariant (`missing_work_entry`, `expired_lease`,
    /// `history_gap`, `rollout_hold`).
    pub invariant: &'static str,
    /// The tenant or rollout concerned.
    pub subject: String,
    /// The tenant the violation is about (for a rollout's, the member or holder).
    pub tenant: TenantId,
    pub detail: String,
}

impl Violation {
    /// Whether `other` reports the same broken invariant (details such as times may
    /// differ between two reads).
    pub fn same_as(&self, other: &Violation) -> bool {
        self.invariant == other.invariant && self.subject == other.subject && self.tenant == other.tenant
    }
}

/// The result of a check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FleetCheck {
    pub tenants: usize,
    pub rollouts: usize,
    pub violations: Vec<Violation>,
}

impl FleetCheck {
    pub fn is_sound(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Every broken invariant in `snapshot`, as of `now`.
pub fn check(snapshot: &FleetSnapshot, now: DateTime<Utc>) -> FleetCheck {
    let mut violations = vec![];
    for t in &snapshot.tenants {
        let r = &t.record;
        let id = r.id().to_string();
        if let Some(step) = r.state.step() {
            if !t.in_work_index {
                violations.push(Violation {
                    invariant: "missing_work_entry",
                    subject: id.clone(),
                    tenant: r.id().clone(),
                    detail: format!(
                        "{} has step {step} to run but no work-index entry: no worker will ever pick it up",
                        r.state.label()
                    ),
                });
            }
        } else if let Some(lease) = r.lease.as_ref().filter(|l| !l.is_live(now)) {
            violations.push(Violation {
                invariant: "expired_lease",
                subject: id.clone(),
                tenant: r.id().clone(),
                detail: format!(
                    "settled in {} but still carries the lease of {} (fence {}) that expired at {}",
                    r.state.label(),
                    lease.owner,
                    lease.fence,
                    lease.expires_at.to_rfc3339()
                ),
            });
        }
        let expected: BTreeSet<u64> = (1..=r.event_seq).collect();
        if t.history != expected {
            let missing: Vec<u64> = expected.difference(&t.history).copied().collect();
            let extra: Vec<u64> = t.history.difference(&expected).copied().collect();
            violations.push(Violation {
                invariant: "history_gap",
                subject: id.clone(),
                tenant: r.id().clone(),
                detail: format!(
                    "history should be numbered 1..={} but events {missing:?} are missing and {extra:?} are beyond it",
                    r.event_seq
                ),
            });
        }
    }
    let holder: BTreeMap<&TenantId, Option<&RolloutId>> = snapshot
        .tenants
        .iter()
        .map(|t| (t.record.id(), t.record.rollout.as_ref()))
        .collect();
    for rollout in snapshot.rollouts.iter().filter(|r| !r.phase.is_finished()) {
        let members: BTreeSet<&TenantId> = rollout.members.iter().map(|(t, _)| t).collect();
        for (tenant, outcome) in &rollout.members {
            let started = !matches!(outcome, Outcome::Pending | Outcome::Skipped { .. });
            match holder.get(tenant) {
                Some(held_by) if started && *held_by != Some(&rollout.id) => violations.push(Violation {
                    invariant: "rollout_hold",
                    subject: rollout.id.to_string(),
                    tenant: (*tenant).clone(),
                    detail: format!(
                        "member {tenant} is {} but the tenant is held by {}",
                        outcome.name(),
                        held_by.map_or("no rollout".to_owned(), |h| format!("rollout {h}"))
                    ),
                }),
                None if started => violations.push(Violation {
                    invariant: "rollout_hold",
                    subject: rollout.id.to_string(),
                    tenant: tenant.clone(),
                    detail: format!(
                        "member {tenant} is {} but the tenant does not exist",
                        outcome.name()
                    ),
                }),
                _ => {}
            }
        }
        for (tenant, held_by) in &holder {
            if *held_by == Some(&rollout.id) && !members.contains(tenant) {
                violations.push(Violation {
                    invariant: "rollout_hold",
                    subject: rollout.id.to_string(),
                    tenant: (*tenant).clone(),
                    detail: format!("tenant {tenant} is held by the rollout but is none of its members"),
                });
            }
        }
    }
    FleetCheck {
        tenants: snapshot.tenants.len(),
        rollouts: snapshot.rollouts.len(),
        violations,
    }
}

#[cfg(test)]
mod tests;
