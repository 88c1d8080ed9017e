//! After a breach: returning the tenants the spec's `on_breach.rollback` names to the
//! release they left, and knowing when nothing of the wave moves any more.

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
    /// After a breach: returns the tenants the spec names to their previous release.
    pub(super) fn roll_back(&mut self) {
        let scope = self.record.spec.strategy.on_breach.rollback;
        let target = self.target().clone();
        let now = self.now;
        for i in 0..self.members.len() {
            let m = self.members[i].clone();
            if m.rollback.is_some() || !wanted(scope, &m) {
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
            let event = match &view.state {
                TenantState::Active { release, .. } if *release == from => {
                    self.set(i, |m| m.rollback = Some(RollbackStatus::Done));
                    continue;
                }
                TenantState::Active { release, .. } if *release == target => {
                    TenantEvent::Upgrade { release: from }
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
            self.drives.push(Drive { member, event });
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
                    "rollback settled: {back} tenants back on their previous release, {stuck} need an operator; \
                     `tenantctl rollout retry|resume|abort {}`",
                    self.record.id
                ),
            );
        }
    }
}
