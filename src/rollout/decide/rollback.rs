//! After a breach: returning the tenants the spec's `on_breach.rollback` names to the
//! revision they left (release, desired platform and tier, and so the template and
//! chart applied), and knowing when nothing of the wave moves any more.

use super::outcomes::rolled_back_by_machine;
use super::{Deciding, Drive};
use crate::domain::rollout::RollbackScope;
use crate::machine::{TenantEvent, TenantState};
use crate::record::{Outcome, RollbackStatus, RolloutMember};

/// Whether a breach with `scope` should return `m` to its previous release.
fn wanted(scope: RollbackScope, m: &RolloutMember) -> bool {
    match scope {
        RollbackScope::None => false,
        RollbackScope::Failed => matches!(m.outcome, Outcome::Failed { .. }),
        RollbackScope::Wave => matches!(m.outcome, Outcome::Failed { .. } | Outcome::Succeeded),
    }
}

impl Deciding<'_> {
    /// After a breach: returns the tenants the spec names to their previous revision.
    /// The desired platform and tier go back in the same write as the event that
    /// applies them: an upgrade to the previous release, or a reconcile when the
    /// release did not change.
    pub(super) fn roll_back(&mut self) {
        let scope = self.record.spec.strategy.on_breach.rollback;
        let now = self.now;
        for i in 0..self.members.len() {
            let m = self.members[i].clone();
            // A tenant driven this tick (its spec given back after a failure) is
            // looked at again next tick, once that write shows.
            if m.rollback.is_some()
                || !wanted(scope, &m)
                || self.drives.iter().any(|d| d.member.tenant == m.tenant)
            {
                continue;
            }
            let Some(view) = self.view(&m.tenant) else {
                continue;
            };
            let Some(view) = view.cloned() else {
                self.set(i, |m| {
                    m.rollback = Some(RollbackStatus::Failed {
                        reason: "the tenant no longer exists".into(),
                    })
                });
                continue;
            };
            let Some(from) = m.from_release.clone() else {
                self.set(i, |m| {
                    m.rollback = Some(RollbackStatus::Failed {
                        reason: "no earlier release is known".into(),
                    })
                });
                continue;
            };
            let target = self.target_release(&m).unwrap_or_else(|| from.clone());
            // The previous desired spec, where it differs from the tenant's now.
            let restore = m.from.filter(|f| *f != view.revision.desired());
            let event = match &view.state {
                TenantState::Active { release, .. }
                    if *release == from
                        && (from != target || rolled_back_by_machine(&view, &target, Some(&from))) =>
                {
                    let mut member = self.members[i].clone();
                    member.rollback = Some(RollbackStatus::Done);
                    match restore {
                        Some(spec) => {
                            self.members[i] = member.clone();
                            self.drives.push(Drive {
                                member,
                                event: None,
                                spec: Some(spec),
                            });
                        }
                        None => self.set(i, |m| *m = member),
                    }
                    continue;
                }
                TenantState::Active { release, .. }
                    if *release == target && target == from && restore.is_none() =>
                {
                    // Applied again with the desired revision it had: nothing to return to.
                    self.set(i, |m| m.rollback = Some(RollbackStatus::Done));
                    continue;
                }
                TenantState::Active { release, .. } if *release == target => {
                    if target == from {
                        TenantEvent::Reconcile
                    } else {
                        TenantEvent::Upgrade { release: from }
                    }
                }
                state @ TenantState::Failed { reason, .. } => {
                    if state.apply(&TenantEvent::Rollback).is_ok() {
                        TenantEvent::Rollback
                    } else {
                        let why = format!("the tenant is Failed ({reason}); it needs an operator");
                        self.set(i, |m| m.rollback = Some(RollbackStatus::Failed { reason: why }));
                        continue;
                    }
                }
                TenantState::Active { release, .. } => {
                    let why = format!("it runs {release}, moved by someone else; left as it is");
                    self.set(i, |m| m.rollback = Some(RollbackStatus::Failed { reason: why }));
                    continue;
                }
                _ => continue, // busy: look again next tick
            };
            let mut member = self.members[i].clone();
            member.rollback = Some(RollbackStatus::InProgress);
            self.members[i] = member.clone();
            self.drives.push(Drive {
                member,
                event: Some(event),
                spec: restore,
            });
        }
        let settled = self.members.iter().all(|m| {
            m.outcome != Outcome::InFlight
                && m.rollback != Some(RollbackStatus::InProgress)
                && !(m.rollback.is_none()
                    && match scope {
                        RollbackScope::None => false,
                        RollbackScope::Failed => matches!(m.outcome, Outcome::Failed { .. }),
                        RollbackScope::Wave => {
                            matches!(m.outcome, Outcome::Failed { .. } | Outcome::Succeeded)
                        }
                    })
        });
        if settled && !self.record.settled {
            self.record.settled = true;
            let back = self
                .members
                .iter()
                .filter(|m| m.rollback == Some(RollbackStatus::Done))
                .count();
            let stuck = self
                .members
                .iter()
                .filter(|m| matches!(m.rollback, Some(RollbackStatus::Failed { .. })))
                .count();
            self.record.log(
                now,
                "controller",
                format!(
                    "rollback settled: {back} tenants back on their previous revision, {stuck} need an operator; \
                     `tenantctl rollout retry|resume|abort {}`",
                    self.record.id
                ),
            );
        }
    }
}
