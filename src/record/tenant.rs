//! What the store keeps for a tenant: its spec, machine state, lease and the facts its
//! steps recorded, plus one event per transition.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Hostname, LogicalId, PlatformVersion, RolloutId, TenantId, TenantSpec, Tier};
use crate::machine::{StepKind, TenantEvent, TenantState};

/// A worker's exclusive, expiring right to run a tenant's steps. `fence` grows by one
/// with every acquisition, so a write carrying an older fence is refused even if the
/// old owner's clock still thinks the lease is valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: String,
    pub expires_at: DateTime<Utc>,
    pub fence: u64,
}

impl Lease {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at > now
    }
}

/// The stack template and parameters that were in force before an update, so a
/// rollback can put them back exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackRevision {
    pub template_body: String,
    pub parameters: BTreeMap<String, String>,
    /// The platform version that template came from (`None`: the built-in one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformVersion>,
}

/// Results and progress recorded by steps. Each step reads what earlier steps wrote
/// (the image digest, stack outputs, the Helm revision to return to) and what it wrote
/// itself on an earlier attempt, which makes re-running it after a crash safe.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantFacts {
    /// Full image reference by digest (`repo@sha256:…`) of the release being deployed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Image reference by digest of the release the tenant ran before the upgrade.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_image: Option<String>,
    /// Database snapshots taken for this tenant, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack_id: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub stack_outputs: BTreeMap<String, String>,
    /// The stack as it was before the current upgrade changed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_stack: Option<StackRevision>,
    /// The Helm revision deployed last, and the one to roll back to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub helm_revision: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub helm_revision_before_upgrade: Option<u32>,
    /// Certificates (ARNs) covering the tenant's hostnames.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<String>,
    /// Hostnames that may carry an alias record this product made for the tenant in
    /// Route 53. Names are added before their records are written and dropped only
    /// once their records are gone, so a later run knows every record to remove.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routed_hostnames: Vec<Hostname>,
    /// Private bookkeeping of the step in flight (e.g. a request token, consecutive
    /// healthy checks); cleared when the machine moves to another step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<serde_json::Value>,
    /// The upgrade (`<from> -> <to>`) whose UpdateInfra recorded `previous_stack`. A
    /// `previous_stack` outlives its upgrade, so a rollback applies it only when it was
    /// recorded for the upgrade being rolled back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_stack_upgrade: Option<String>,
    /// The platform version whose template the stack was last applied with (`None`:
    /// the template built into `tenantctl`, or no stack yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack_platform: Option<PlatformVersion>,
    /// The platform version whose chart the deployed Helm revision came from (`None`:
    /// the chart configured on the worker, or nothing deployed yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chart_platform: Option<PlatformVersion>,
    /// `chart_platform` of `helm_revision_before_upgrade`, which a rollback returns to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chart_platform_before_upgrade: Option<PlatformVersion>,
    /// Stack resources (logical ids) the current operation may replace or remove, as
    /// the rollout that started it allows; cleared when the operation ends.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow_replacement: Vec<LogicalId>,
    /// The tier and hostnames the last completed provisioning, upgrade or reconcile
    /// deployed (`None`: not recorded yet), to tell a spec change still waiting for a
    /// deployment from one in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_spec: Option<AppliedSpec>,
    /// The tenant is in maintenance (or Quiesce is putting it there): its hostnames
    /// answer the maintenance page. Set before any rule is created and cleared by
    /// Reopen once every rule is gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Maintenance>,
}

/// The listener rules that keep users on the maintenance page while an upgrade runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintenance {
    /// When Quiesce decided to put the tenant in maintenance (before the first rule).
    pub since: DateTime<Utc>,
    /// The value of the bypass header that reaches the tenant past the maintenance
    /// page; random per upgrade.
    pub token: String,
    /// ARNs of the bypass and maintenance rules created so far.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
}

/// The parts of a tenant's spec a deployment applies besides its release and platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedSpec {
    pub tier: Tier,
    pub hostnames: Vec<Hostname>,
}

impl TenantFacts {
    /// Whether the stack and the chart were last applied with `desired`.
    pub fn platform_applied(&self, desired: Option<PlatformVersion>) -> bool {
        self.stack_platform == desired && self.chart_platform == desired
    }
}

/// A tenant as persisted: one DynamoDB item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub spec: TenantSpec,
    pub state: TenantState,
    /// Optimistic-concurrency version; every write is conditional on it.
    pub version: u64,
    pub lease: Option<Lease>,
    /// Fence of the last lease granted (kept after release so fences only grow).
    pub last_fence: u64,
    pub facts: TenantFacts,
    /// Failed attempts of the current step so far.
    pub attempt: u32,
    /// When the first attempt of the current step began: the step's deadline counts from here.
    pub step_started_at: Option<DateTime<Utc>>,
    /// When the current step should next run (absent when no step is due).
    pub due_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Sequence number of the last history event.
    pub event_seq: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The rollout that last drove this tenant. It holds the tenant until it
    /// finishes, so two rollouts never move one tenant at once. Written only with the
    /// rollout's own writes; tenant saves leave it alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<crate::domain::RolloutId>,
}

impl TenantRecord {
    /// A record for a tenant entering its first state, with work due now.
    pub fn new(spec: TenantSpec, state: TenantState, now: DateTime<Utc>) -> Self {
        let due_at = state.step().map(|_| now);
        Self {
            spec,
            state,
            version: 0,
            lease: None,
            last_fence: 0,
            facts: TenantFacts::default(),
            attempt: 0,
            step_started_at: None,
            due_at,
            last_error: None,
            event_seq: 0,
            created_at: now,
            updated_at: now,
            rollout: None,
        }
    }

    pub fn id(&self) -> &TenantId {
        &self.spec.id
    }

    /// When a worker should next look at this tenant: never if its state has no step;
    /// otherwise when it is due, but not before a live lease runs out.
    pub fn work_due_at(&self) -> Option<DateTime<Utc>> {
        self.state.step()?;
        let due = self.due_at.unwrap_or(self.updated_at);
        Some(match &self.lease {
            Some(lease) if lease.expires_at > due => lease.expires_at,
            _ => due,
        })
    }

    /// Moves the record to `next`, resetting the per-step bookkeeping when the step
    /// changes. A provisioning, upgrade or reconcile that ends Active has applied the
    /// spec's tier and hostnames; a rollback that ends Active has not.
    pub fn enter(&mut self, next: TenantState, now: DateTime<Utc>) {
        let deployed = matches!(
            self.state,
            TenantState::Provisioning { .. } | TenantState::Upgrading { .. }
        ) && matches!(next, TenantState::Active { .. });
        if deployed {
            self.facts.applied_spec = Some(AppliedSpec {
                tier: self.spec.tier,
                hostnames: self.spec.hostnames.clone(),
            });
        }
        let rolled_back = matches!(self.state, TenantState::RollingBack { .. })
            && matches!(next, TenantState::Active { .. });
        if rolled_back {
            // The tenant runs the image it ran before the upgrade again; what it was
            // moving to is no longer what it runs (a drift check compares with this).
            if let Some(previous) = self.facts.previous_image.clone() {
                self.facts.image = Some(previous);
            }
        }
        let step_changed = next.step() != self.state.step() || next.name() != self.state.name();
        self.state = next;
        if step_changed {
            self.attempt = 0;
            self.step_started_at = None;
            self.facts.progress = None;
        }
        self.due_at = self.state.step().map(|_| now);
        self.updated_at = now;
        if self.state.step().is_none() {
            // The allowance was for the operation that just ended.
            self.facts.allow_replacement.clear();
        }
    }
}

/// Who caused a transition, as recorded in the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor(pub String);

impl Actor {
    pub fn worker(owner: &str, fence: u64) -> Self {
        Self(format!("worker:{owner}#{fence}"))
    }
    pub fn operator(name: &str) -> Self {
        Self(format!("operator:{name}"))
    }
    /// A caller of the HTTP API, named by its token's name.
    pub fn api(token_name: &str) -> Self {
        Self(format!("api:{token_name}"))
    }
    /// The controller carrying out a rollout.
    pub fn rollout(id: &RolloutId) -> Self {
        Self(format!("rollout:{id}"))
    }
}

/// One transition of one tenant, as kept in its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEvent {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub from: String,
    pub to: String,
    /// The machine event that caused it (`StepSucceeded`, `Upgrade`, …).
    pub cause: String,
    pub actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<StepKind>,
    /// For worker transitions: when the step run that produced this outcome began.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<DateTime<Utc>>,
    /// Lease fence of the worker that ran the step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fence: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The revision the tenant was to run after the transition: release, platform
    /// version and tier (absent on events recorded before revisions were).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// A tenant's desired revision in one line, as its history records it:
/// `release 1.4.2, platform 2026.12.1, tier large` (`platform built-in` when none).
pub fn revision_line(record: &TenantRecord) -> String {
    let release = (record.state.target_release())
        .or(record.state.current_release())
        .map_or_else(|| "none".to_owned(), |r| r.to_string());
    let platform = record
        .spec
        .platform
        .map_or_else(|| "built-in".to_owned(), |p| p.to_string());
    format!(
        "release {release}, platform {platform}, tier {}",
        record.spec.tier
    )
}

/// A transition to record with a save; the `to` state is taken from the saved record.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The state before the change.
    pub from: TenantState,
    pub cause: Cause,
    pub actor: Actor,
    /// Who let the change through, when it was not the tenant's own doing.
    pub origin: Option<Origin>,
    pub step: Option<StepKind>,
    /// For worker transitions: when the step run that produced this outcome began.
    pub step_started_at: Option<DateTime<Utc>>,
    /// Lease fence of the worker that ran the step.
    pub fence: Option<u64>,
    pub output: Option<String>,
    pub error: Option<String>,
}

/// What moved a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// A machine event: an operator's command, a rollout's drive or a step's outcome.
    Event(TenantEvent),
    /// A change of the spec, each entry saying what changed (`tier small -> large`).
    SpecChange(Vec<String>),
    /// A drift check whose result differs from the previous one: its summary
    /// (`2 drifted: stack_parameter Tier, …`, or `in sync`). The state stays.
    DriftCheck(String),
}

/// Where a command came from when someone other than the tenant's operator moved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A rollout drove the tenant.
    Rollout(RolloutId),
    /// An operator overrode the hold of a rollout in the named phase.
    HoldOverride { rollout: RolloutId, phase: &'static str },
}

impl Transition {
    /// A transition from `from` caused by `cause`, with nothing else to say yet.
    pub fn new(from: &TenantState, cause: Cause, actor: Actor) -> Self {
        Self {
            from: from.clone(),
            cause,
            actor,
            origin: None,
            step: None,
            step_started_at: None,
            fence: None,
            output: None,
            error: None,
        }
    }

    /// The history's words for the cause: `Upgrade to 1.1.0 (rollout r-1)`.
    pub fn describe_cause(&self) -> String {
        let cause = match &self.cause {
            Cause::Event(TenantEvent::Provision { release }) => format!("Provision {release}"),
            Cause::Event(TenantEvent::Upgrade { release }) => format!("Upgrade to {release}"),
            Cause::Event(TenantEvent::Reconcile) => "Reconcile".to_owned(),
            Cause::Event(TenantEvent::Restore { snapshot }) => format!("Restore from {snapshot}"),
            Cause::Event(other) => other.name().to_owned(),
            Cause::SpecChange(said) => format!("UpdateSpec: {}", said.join("; ")),
            Cause::DriftCheck(summary) => format!("DriftCheck: {summary}"),
        };
        match &self.origin {
            None => cause,
            Some(Origin::Rollout(rollout)) => format!("{cause} (rollout {rollout})"),
            Some(Origin::HoldOverride { rollout, phase }) => {
                format!("{cause} (admin override of the hold of rollout {rollout}, {phase})")
            }
        }
    }

    /// The history event this transition becomes as event `seq` of `next`.
    pub fn into_event(self, seq: u64, next: &TenantRecord, at: DateTime<Utc>) -> HistoryEvent {
        HistoryEvent {
            revision: Some(revision_line(next)),
            seq,
            at,
            from: self.from.label(),
            to: next.state.label(),
            cause: self.describe_cause(),
            actor: self.actor.0,
            step: self.step,
            step_started_at: self.step_started_at,
            fence: self.fence,
            output: self.output,
            error: self.error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ReleaseVersion;
    use crate::machine::RollbackStep;

    #[test]
    fn a_completed_rollback_runs_the_previous_image_again() {
        let v = |s: &str| ReleaseVersion::parse(s).unwrap();
        let spec = TenantSpec::example("acme", "us-east-1");
        let now = Utc::now();
        let rolling_back = TenantState::RollingBack {
            step: RollbackStep::VerifyRollback,
            abandoned: v("1.2.0"),
            previous: v("1.1.0"),
            cause: "verify failed".into(),
        };
        let mut r = TenantRecord::new(spec, rolling_back, now);
        r.facts.image = Some("repo@sha256:new".into());
        r.facts.previous_image = Some("repo@sha256:old".into());
        r.enter(
            TenantState::Active {
                release: v("1.1.0"),
                failed_upgrade: Some(v("1.2.0")),
            },
            now,
        );
        assert_eq!(r.facts.image.as_deref(), Some("repo@sha256:old"));
    }
}
