//! What an infrastructure step keeps in `facts.progress` between its runs: the stack
//! operation it started and the token it sent, so a re-run polls that operation
//! instead of starting another.

use serde::{Deserialize, Serialize};

use crate::machine::{StepKind, TenantState};
use crate::record::TenantFacts;

/// A stack operation in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "operation", rename_all = "snake_case")]
pub enum StackWork {
    /// `CreateStack` was sent with `token`.
    Create { token: String },
    /// A stack whose creation failed is being deleted so it can be created again.
    ReplaceFailedCreate { stack_id: String },
    /// An update was decided with `token` (and for UpdateInfra the stack as it was
    /// recorded in `previous_stack`); `sent` once `UpdateStack` accepted it.
    Update { token: String, sent: bool },
    /// `DeleteStack` was sent for `stack_id`.
    Delete { token: String, stack_id: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct InfraProgress {
    /// The step that wrote it: progress of another step is never mistaken for ours.
    step: StepKind,
    #[serde(flatten)]
    work: StackWork,
}

/// The operation `step` recorded, if the progress is this step's.
pub fn read(facts: &TenantFacts, step: StepKind) -> Option<StackWork> {
    let progress: InfraProgress = serde_json::from_value(facts.progress.clone()?).ok()?;
    (progress.step == step).then_some(progress.work)
}

pub fn write(facts: &mut TenantFacts, step: StepKind, work: StackWork) {
    let progress = InfraProgress { step, work };
    facts.progress = Some(serde_json::to_value(progress).expect("progress serializes"));
}

/// The upgrade a state belongs to, as `<from> -> <to>`: UpdateInfra records it with the
/// stack it saves, and RollbackInfra puts back only a stack saved for its upgrade.
pub fn upgrade_label(state: &TenantState) -> Option<String> {
    match state {
        TenantState::Upgrading { from, to, .. } => Some(format!("{from} -> {to}")),
        TenantState::RollingBack {
            abandoned, previous, ..
        } => Some(format!("{previous} -> {abandoned}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ReleaseVersion;
    use crate::machine::{RollbackStep, UpgradeStep};

    #[test]
    fn progress_round_trips_and_belongs_to_its_step() {
        let mut facts = TenantFacts::default();
        let work = StackWork::Update {
            token: "to-1".into(),
            sent: false,
        };
        write(&mut facts, StepKind::UpdateInfra, work.clone());
        assert_eq!(read(&facts, StepKind::UpdateInfra), Some(work));
        assert_eq!(read(&facts, StepKind::RollbackInfra), None);
        facts.progress = Some(serde_json::json!({"healthy_checks": 3}));
        assert_eq!(
            read(&facts, StepKind::UpdateInfra),
            None,
            "foreign progress is ignored"
        );
    }

    #[test]
    fn an_upgrade_and_its_rollback_share_a_label() {
        let from = ReleaseVersion::parse("1.0.0").unwrap();
        let to = ReleaseVersion::parse("1.1.0").unwrap();
        let upgrading = TenantState::Upgrading {
            step: UpgradeStep::UpdateInfra,
            from: from.clone(),
            to: to.clone(),
        };
        let rolling_back = TenantState::RollingBack {
            step: RollbackStep::RollbackInfra,
            abandoned: to,
            previous: from,
            cause: "Deploy failed".into(),
        };
        assert_eq!(upgrade_label(&upgrading), Some("1.0.0 -> 1.1.0".into()));
        assert_eq!(upgrade_label(&upgrading), upgrade_label(&rolling_back));
        assert_eq!(upgrade_label(&TenantState::initial()), None);
    }
}
