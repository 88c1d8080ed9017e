//! Reading a tenant's state as the outcome of what the rollout asked of it.

use crate::domain::rollout::RollbackScope;
use crate::domain::{Region, ReleaseVersion};
use crate::machine::TenantState;
use crate::record::{Outcome, RollbackStatus};

use super::TenantView;

/// Whether the tenant's machine rolled back the move to `target` and runs `from`
/// again: a failed upgrade, or a failed reconcile (`target` = `from`).
pub(super) fn rolled_back_by_machine(
    view: &TenantView,
    target: &ReleaseVersion,
    from: Option<&ReleaseVersion>,
) -> bool {
    matches!(
        &view.state,
        TenantState::Active { release, failed_upgrade: Some(failed) }
            if failed == target && Some(release) == from
    )
}

/// The outcome of an upgrade (or reconcile, when `target` is the release it ran) the
/// rollout started, once it has one.
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
        // Checked first: a failed reconcile returns to the release it targets.
        TenantState::Active {
            release,
            failed_upgrade: Some(failed),
        } if failed == target => Some(Outcome::Failed {
            reason: if release == target {
                format!(
                    "applying the revision failed, rolled back on {release}: {}",
                    detail()
                )
            } else {
                format!("upgrade failed, rolled back to {release}: {}", detail())
            },
        }),
        TenantState::Active { release, .. } if release == target => Some(Outcome::Succeeded),
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
        (
            TenantState::Active {
                release,
                failed_upgrade,
            },
            Some(from),
        ) if release == from && failed_upgrade.as_ref() != Some(from) => Some(RollbackStatus::Done),
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
