//! Reading a tenant's state as the outcome of what the rollout asked of it.

use crate::domain::rollout::RollbackScope;
use crate::domain::{Region, ReleaseVersion};
use crate::machine::TenantState;
use crate::record::{Outcome, RollbackStatus};

use super::TenantView;

/// The outcome of an upgrade the rollout started, once it has one.
pub(super) fn judge_upgrade(
    view: Option<&TenantView>,
    target: &ReleaseVersion,
    from: Option<&ReleaseVersion>,
) -> Option<Outcome> {
    let Some(view) = view else {
        return Some(Outcome::Failed {
            reason: "the tenant no longer exists".into(),
        });
    };
    let detail = || {
        view.last_error
            .clone()
            .unwrap_or_else(|| "see the tenant's history".into())
    };
    match &view.state {
        TenantState::Active { release, .. } if release == target => Some(Outcome::Succeeded),
        TenantState::Active {
            release,
            failed_upgrade: Some(failed),
        } if failed == target => Some(Outcome::Failed {
            reason: format!("upgrade failed, rolled back to {release}: {}", detail()),
        }),
        TenantState::Active { release, .. } => Some(Outcome::Failed {
            reason: match from {
                Some(from) if from == release => format!("upgrade abandoned; still on {release}"),
                _ => format!("moved to {release} by someone else"),
            },
        }),
        TenantState::Failed { reason, .. } => Some(Outcome::Failed {
            reason: reason.clone(),
        }),
        TenantState::Deleted {} | TenantState::Deprovisioning { .. } => Some(Outcome::Failed {
            reason: "the tenant was deprovisioned during the rollout".into(),
        }),
        _ => None,
    }
}

/// The outcome of a rollback the rollout started, once it has one.
pub(super) fn judge_rollback(
    view: Option<&TenantView>,
    from: Option<&ReleaseVersion>,
) -> Option<RollbackStatus> {
    let failed = |reason: String| Some(RollbackStatus::Failed { reason });
    let Some(view) = view else {
        return failed("the tenant no longer exists".into());
    };
    match (&view.state, from) {
        (TenantState::Active { release, .. }, Some(from)) if release == from => Some(RollbackStatus::Done),
        (TenantState::Active { release, .. }, _) => {
            failed(format!("it could not be returned; it runs {release}"))
        }
        (TenantState::Failed { reason, .. }, _) => failed(reason.clone()),
        (TenantState::Deleted {} | TenantState::Deprovisioning { .. }, _) => {
            failed("the tenant was deprovisioned".into())
        }
        _ => None,
    }
}

pub(crate) fn regions(regions: &[Region]) -> String {
    regions.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
}

pub(super) fn scope_text(scope: RollbackScope) -> &'static str {
    match scope {
        RollbackScope::Failed => "the failed tenants",
        RollbackScope::Wave => "the whole wave",
        RollbackScope::None => "nothing (on_breach.rollback is none)",
    }
}
