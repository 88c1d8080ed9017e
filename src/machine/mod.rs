//! The tenant state machine. Pure and synchronous: it takes the persisted state and an
//! event (an operator command or a step outcome) and returns the next state, or says
//! why the event does not apply. It performs no I/O and has no entry or exit actions,
//! so restoring a state from storage can never re-run anything: the worker derives the
//! step to run from the state alone (`TenantState::step`).

mod diagram;
mod steps;

use serde::{Deserialize, Serialize};
use statig::prelude::*;

use crate::domain::ReleaseVersion;

pub use diagram::mermaid_diagram;
pub use steps::{DeprovisionStep, ProvisionStep, RestoreStep, RollbackStep, StepKind, UpgradeStep};

/// What can happen to a tenant: operator commands and the outcomes of its steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TenantEvent {
    /// Build a new tenant on `release`.
    Provision { release: ReleaseVersion },
    /// Move an active tenant to `release`.
    Upgrade { release: ReleaseVersion },
    /// Apply everything an active tenant should be, on the release it runs: the
    /// stack from the current template and spec, its configuration, certificates and
    /// DNS, the chart, then verify. Runs the upgrade's steps, and rolls back like one.
    Reconcile,
    /// The current step finished.
    StepSucceeded,
    /// The current step failed for good (retries are the worker's business).
    StepFailed { reason: String },
    /// Resume a failed tenant at the step that failed, or retry a failed upgrade.
    Retry,
    /// Abandon the upgrade in progress, or restart a failed rollback from its start.
    Rollback,
    /// Restore the database from a named snapshot (operator-approved, never automatic).
    Restore { snapshot: String },
    /// Remove the tenant.
    Deprovision,
}

impl TenantEvent {
    pub fn name(&self) -> &'static str {
        match self {
            TenantEvent::Provision { .. } => "Provision",
            TenantEvent::Upgrade { .. } => "Upgrade",
            TenantEvent::Reconcile => "Reconcile",
            TenantEvent::StepSucceeded => "StepSucceeded",
            TenantEvent::StepFailed { .. } => "StepFailed",
            TenantEvent::Retry => "Retry",
            TenantEvent::Rollback => "Rollback",
            TenantEvent::Restore { .. } => "Restore",
            TenantEvent::Deprovision => "Deprovision",
        }
    }
}

/// An event that does not apply to the tenant's current state. Nothing changed.
/// A state name that is none of [`TenantState::NAMES`] (as given, up to 40 characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown state {given:?}; use one of {}", TenantState::NAMES.join(", "))]
pub struct UnknownStateName {
    given: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {event} a tenant that is {state}: {reason}")]
pub struct Rejected {
    pub state: String,
    pub event: &'static str,
    pub reason: String,
}

/// Where a failed tenant resumes when an operator retries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeAt(pub Box<TenantState>);

/// The shared storage of the statig machine: only the verdict on the last event.
#[derive(Debug, Default)]
pub struct Lifecycle {
    rejection: Option<String>,
}

impl Lifecycle {
    fn reject(&mut self, reason: impl Into<String>) -> Outcome<TenantState> {
        self.rejection = Some(reason.into());
        Handled
    }

    fn stale_outcome(&mut self) -> Outcome<TenantState> {
        self.reject("no step is running; the outcome belongs to an older state")
    }
}

#[state_machine(
    initial = "TenantState::new_tenant()",
    state(
        name = "TenantState",
        derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)
    ),
    superstate(derive(Debug))
)]
impl Lifecycle {
    /// Recorded, nothing built yet.
    #[state]
    fn new_tenant(&mut self, event: &TenantEvent) -> Outcome<TenantState> {
        match event {
            TenantEvent::Provision { release } => {
                Transition(TenantState::provisioning(ProvisionStep::FIRST, release.clone()))
            }
            _ => self.reject("the tenant has not been provisioned yet"),
        }
    }

    #[state(superstate = "working")]
    fn provisioning(
        &mut self,
        step: &ProvisionStep,
        release: &ReleaseVersion,
        event: &TenantEvent,
    ) -> Outcome<TenantState> {
        match event {
            TenantEvent::StepSucceeded => Transition(match step.next() {
                Some(next) => TenantState::provisioning(next, release.clone()),
                None => TenantState::active(release.clone(), None),
            }),
            TenantEvent::StepFailed { reason } => Transition(TenantState::failed(
                resume(TenantState::provisioning(*step, release.clone())),
                None,
                format!("provisioning {release} failed at {}: {reason}", step.kind()),
            )),
            _ => Super,
        }
    }

    /// Serving `release`. `failed_upgrade` names the last release it could not move to.
    #[state]
    fn active(
        &mut self,
        release: &ReleaseVersion,
        failed_upgrade: &Option<ReleaseVersion>,
        event: &TenantEvent,
    ) -> Outcome<TenantState> {
        match event {
            TenantEvent::Upgrade { release: target } if target == release => self.reject(format!(
                "it already runs {release}; to apply its template, chart and spec again, reconcile it"
            )),
            TenantEvent::Reconcile => Transition(TenantState::upgrading(
                UpgradeStep::FIRST,
                release.clone(),
                release.clone(),
            )),
            TenantEvent::Upgrade { release: target } => Transition(TenantState::upgrading(
                UpgradeStep::FIRST,
                release.clone(),
                target.clone(),
            )),
            TenantEvent::Retry => match failed_upgrade {
                Some(target) => Transition(TenantState::upgrading(
                    UpgradeStep::FIRST,
                    release.clone(),
                    target.clone(),
                )),
                None => self.reject("there is no failed upgrade to retry"),
            },
            TenantEvent::Deprovision => {
                Transition(TenantState::deprovisioning(DeprovisionStep::FIRST))
            }
            TenantEvent::Restore { snapshot } => Transition(TenantState::restoring(
                RestoreStep::FIRST,
                snapshot.clone(),
                release.clone(),
            )),
            TenantEvent::Rollback => self.reject(format!(
                "no upgrade is in progress; to return to an earlier release, upgrade to it (it runs {release})"
            )),
            TenantEvent::Provision { .. } => self.reject("it is already provisioned"),
            TenantEvent::StepSucceeded | TenantEvent::StepFailed { .. } => self.stale_outcome(),
        }
    }

    #[state(superstate = "working")]
    fn upgrading(
        &mut self,
        step: &UpgradeStep,
        from: &ReleaseVersion,
        to: &ReleaseVersion,
        event: &TenantEvent,
    ) -> Outcome<TenantState> {
        let abandon = |cause: String| {
            if step.touches_tenant() {
                let first = if step.touches_deploy() {
                    RollbackStep::RollbackDeploy
                } else if step.touches_infra() {
                    RollbackStep::RollbackInfra
                } else {
                    RollbackStep::Reopen
                };
                TenantState::rolling_back(first, to.clone(), from.clone(), cause)
            } else {
                TenantState::active(from.clone(), Some(to.clone()))
            }
        };
        match event {
            TenantEvent::StepSucceeded => Transition(match step.next() {
                Some(next) => TenantState::upgrading(next, from.clone(), to.clone()),
                None => TenantState::active(to.clone(), None),
            }),
            TenantEvent::StepFailed { reason } => Transition(abandon(format!(
                "upgrade {from} -> {to} failed at {}: {reason}",
                step.kind()
            ))),
            TenantEvent::Rollback => Transition(abandon(format!(
                "upgrade {from} -> {to} abandoned by operator at {}",
                step.kind()
            ))),
            _ => Super,
        }
    }

    /// Undoing the upgrade to `abandoned`, back to `previous`, because of `cause`.
    #[state(superstate = "working")]
    fn rolling_back(
        &mut self,
        step: &RollbackStep,
        abandoned: &ReleaseVersion,
        previous: &ReleaseVersion,
        cause: &String,
        event: &TenantEvent,
    ) -> Outcome<TenantState> {
        match event {
            TenantEvent::StepSucceeded => Transition(match step.next() {
                Some(next) => {
                    TenantState::rolling_back(next, abandoned.clone(), previous.clone(), cause.clone())
                }
                None => TenantState::active(previous.clone(), Some(abandoned.clone())),
            }),
            TenantEvent::StepFailed { reason } => Transition(TenantState::failed(
                resume(TenantState::rolling_back(
                    *step,
                    abandoned.clone(),
                    previous.clone(),
                    cause.clone(),
                )),
                Some(previous.clone()),
                format!(
                    "rollback to {previous} failed at {}: {reason}; it was rolling back because {cause}",
                    step.kind()
                ),
            )),
            _ => Super,
        }
    }

    /// Restoring the database from `snapshot`, then verifying `release` again.
    #[state(superstate = "working")]
    fn restoring(
        &mut self,
        step: &RestoreStep,
        snapshot: &String,
        release: &ReleaseVersion,
        event: &TenantEvent,
    ) -> Outcome<TenantState> {
        match event {
            TenantEvent::StepSucceeded => Transition(match step.next() {
                Some(next) => TenantState::restoring(next, snapshot.clone(), release.clone()),
                None => TenantState::active(release.clone(), None),
            }),
            TenantEvent::StepFailed { reason } => Transition(TenantState::failed(
                resume(TenantState::restoring(*step, snapshot.clone(), release.clone())),
                Some(release.clone()),
                format!(
                    "restore from snapshot {snapshot} failed at {}: {reason}",
                    step.kind()
                ),
            )),
            _ => Super,
        }
    }

    #[state(superstate = "working")]
    fn deprovisioning(&mut self, step: &DeprovisionStep, event: &TenantEvent) -> Outcome<TenantState> {
        match event {
            TenantEvent::StepSucceeded => Transition(match step.next() {
                Some(next) => TenantState::deprovisioning(next),
                None => TenantState::deleted(),
            }),
            TenantEvent::StepFailed { reason } => Transition(TenantState::failed(
                resume(TenantState::deprovisioning(*step)),
                None,
                format!("deprovisioning failed at {}: {reason}", step.kind()),
            )),
            _ => Super,
        }
    }

    /// Commands that arrive while a step is in flight are refused, not queued: the
    /// caller sees at once that the tenant is busy.
    #[superstate]
    fn working(&mut self, event: &TenantEvent) -> Outcome<TenantState> {
        match event {
            TenantEvent::Rollback => {
                self.reject("only an upgrade can be rolled back; wait until the tenant is Active or Failed")
            }
            _ => self.reject("a step is in progress; wait until the tenant is Active or Failed"),
        }
    }

    /// Stopped, waiting for an operator: retry, roll back, restore or deprovision.
    /// `release` is what the tenant should be running, if anything was ever deployed.
    #[state]
    fn failed(
        &mut self,
        resume: &ResumeAt,
        release: &Option<ReleaseVersion>,
        reason: &String,
        event: &TenantEvent,
    ) -> Outcome<TenantState> {
        let _ = reason;
        match event {
            TenantEvent::Retry => Transition((*resume.0).clone()),
            TenantEvent::Rollback => match &*resume.0 {
                TenantState::RollingBack {
                    abandoned,
                    previous,
                    cause,
                    ..
                } => Transition(TenantState::rolling_back(
                    RollbackStep::FIRST,
                    abandoned.clone(),
                    previous.clone(),
                    cause.clone(),
                )),
                _ => self.reject("it did not fail during an upgrade; retry, restore or deprovision it"),
            },
            TenantEvent::Restore { snapshot } => match release {
                Some(release) => Transition(TenantState::restoring(
                    RestoreStep::FIRST,
                    snapshot.clone(),
                    release.clone(),
                )),
                None => self.reject("no release was ever deployed; retry or deprovision it"),
            },
            TenantEvent::Deprovision => Transition(TenantState::deprovisioning(DeprovisionStep::FIRST)),
            TenantEvent::Upgrade { .. } => self.reject("retry, roll back or restore it first, then upgrade"),
            TenantEvent::Reconcile => self.reject("retry, roll back or restore it first, then reconcile"),
            TenantEvent::Provision { .. } => self.reject("it is already provisioned"),
            TenantEvent::StepSucceeded | TenantEvent::StepFailed { .. } => self.stale_outcome(),
        }
    }

    #[state]
    fn deleted(&mut self, event: &TenantEvent) -> Outcome<TenantState> {
        let _ = event;
        self.reject("it has been deleted; create a new tenant instead")
    }
}

fn resume(state: TenantState) -> ResumeAt {
    ResumeAt(Box::new(state))
}

impl TenantState {
    /// The state of a tenant that is recorded but not yet provisioned.
    pub fn initial() -> Self {
        TenantState::NewTenant {}
    }

    /// Applies `event` and returns the next state, or why it does not apply.
    pub fn apply(&self, event: &TenantEvent) -> Result<TenantState, Rejected> {
        let mut machine = Lifecycle::default().uninitialized_state_machine();
        *machine.state_mut() = self.clone();
        // No state has entry actions, so initialising a restored machine runs nothing.
        let mut machine = machine.init();
        machine.handle(event);
        match &machine.inner().rejection {
            Some(reason) => Err(Rejected {
                state: self.label(),
                event: event.name(),
                reason: reason.clone(),
            }),
            None => Ok(machine.state().clone()),
        }
    }

    /// The step the worker must run in this state, if any. A pure function of the
    /// state: after a crash the worker reloads the tenant and runs it again.
    pub fn step(&self) -> Option<StepKind> {
        match self {
            TenantState::Provisioning { step, .. } => Some(step.kind()),
            TenantState::Upgrading { step, .. } => Some(step.kind()),
            TenantState::RollingBack { step, .. } => Some(step.kind()),
            TenantState::Restoring { step, .. } => Some(step.kind()),
            TenantState::Deprovisioning { step } => Some(step.kind()),
            TenantState::NewTenant {}
            | TenantState::Active { .. }
            | TenantState::Failed { .. }
            | TenantState::Deleted {} => None,
        }
    }

    /// The state's name without its data: what operators filter and count by.
    pub fn name(&self) -> &'static str {
        match self {
            TenantState::NewTenant {} => "New",
            TenantState::Provisioning { .. } => "Provisioning",
            TenantState::Active { .. } => "Active",
            TenantState::Upgrading { .. } => "Upgrading",
            TenantState::RollingBack { .. } => "RollingBack",
            TenantState::Restoring { .. } => "Restoring",
            TenantState::Deprovisioning { .. } => "Deprovisioning",
            TenantState::Failed { .. } => "Failed",
            TenantState::Deleted {} => "Deleted",
        }
    }

    /// Every state name, as [`Self::name`] gives it: the one list that filters and
    /// checks of state names derive from.
    pub const NAMES: [&'static str; 9] = [
        "New",
        "Provisioning",
        "Active",
        "Upgrading",
        "RollingBack",
        "Restoring",
        "Deprovisioning",
        "Failed",
        "Deleted",
    ];

    /// The names of the states that run steps ([`Self::step`] is `Some`): a tenant in
    /// one moves on every step, so its listing entry does not follow each step.
    pub const STEPPING: [&'static str; 5] = [
        "Provisioning",
        "Upgrading",
        "RollingBack",
        "Restoring",
        "Deprovisioning",
    ];

    /// `name` if it is one of [`Self::NAMES`]; otherwise an error that lists them.
    pub fn parse_name(name: &str) -> Result<&'static str, UnknownStateName> {
        Self::NAMES
            .into_iter()
            .find(|known| *known == name)
            .ok_or_else(|| UnknownStateName {
                given: name.chars().take(40).collect(),
            })
    }

    /// The steps a state named `name` runs, in order; `None` for a state that runs
    /// none (`Active`, `Failed`, …) or an unknown name. Lets a client that only sees
    /// names (a view over the API) tell how far a phase has come.
    pub fn phase_steps(name: &str) -> Option<Vec<StepKind>> {
        fn kinds<S: Copy>(sequence: &[S], kind: impl Fn(S) -> StepKind) -> Option<Vec<StepKind>> {
            Some(sequence.iter().map(|s| kind(*s)).collect())
        }
        match name {
            "Provisioning" => kinds(ProvisionStep::SEQUENCE, ProvisionStep::kind),
            "Upgrading" => kinds(UpgradeStep::SEQUENCE, UpgradeStep::kind),
            "RollingBack" => kinds(RollbackStep::SEQUENCE, RollbackStep::kind),
            "Restoring" => kinds(RestoreStep::SEQUENCE, RestoreStep::kind),
            "Deprovisioning" => kinds(DeprovisionStep::SEQUENCE, DeprovisionStep::kind),
            _ => None,
        }
    }

    /// The name with the step, e.g. `Upgrading/Deploy`.
    pub fn label(&self) -> String {
        match self.step() {
            Some(step) => format!("{}/{}", self.name(), step),
            None => self.name().to_owned(),
        }
    }

    /// The release the tenant serves now (or last served), if any.
    pub fn current_release(&self) -> Option<&ReleaseVersion> {
        match self {
            TenantState::Active { release, .. } | TenantState::Restoring { release, .. } => Some(release),
            TenantState::Upgrading { from, .. } => Some(from),
            TenantState::RollingBack { previous, .. } => Some(previous),
            TenantState::Failed { release, .. } => release.as_ref(),
            TenantState::Provisioning { .. }
            | TenantState::NewTenant {}
            | TenantState::Deprovisioning { .. }
            | TenantState::Deleted {} => None,
        }
    }

    /// The release a listing shows: the current one, else the one it is being moved to
    /// (a tenant still provisioning).
    pub fn listed_release(&self) -> Option<&ReleaseVersion> {
        self.current_release().or(self.target_release())
    }

    /// The release the tenant is being moved to, while it moves.
    pub fn target_release(&self) -> Option<&ReleaseVersion> {
        match self {
            TenantState::Provisioning { release, .. } => Some(release),
            TenantState::Upgrading { to, .. } => Some(to),
            TenantState::RollingBack { previous, .. } => Some(previous),
            TenantState::Restoring { release, .. } => Some(release),
            _ => None,
        }
    }

    /// The release whose artifact the current step deploys or verifies.
    pub fn working_release(&self) -> Option<&ReleaseVersion> {
        self.target_release()
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self, TenantState::Deleted {})
    }
}

#[cfg(test)]
mod tests;
