//! What the store keeps for a tenant: its spec, machine state, lease and the facts its
//! steps recorded, plus one event per transition.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{
    Hostname, LogicalId, MigrationRestore, PlatformVersion, RolloutId, SchemaVersion, TenantId, TenantSpec,
    Tier,
};
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
    /// The schema version the tenant's database is on, as far as the product knows
    /// (`None`: no release it deployed declared one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaVersion>,
    /// The schema version the release being deployed declares (CheckArtifact reads it
    /// from the image's annotation; `None`: it declares none, so no migration runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_schema: Option<SchemaVersion>,
    /// The snapshot the last Backup took, which holds the database as it was before
    /// the upgrade in progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_upgrade_snapshot: Option<String>,
    /// What a failed upgrade does with a migration that ran, as the rollout that
    /// started the operation says (`None`: the steps configuration's default);
    /// cleared when the operation ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration_restore: Option<MigrationRestore>,
    /// A migration Deploy started (recorded before Helm runs the chart's hook) and that
    /// has not been settled yet: by a successful upgrade, or by restoring its snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration: Option<Migration>,
    /// The outage of the upgrade or rollback in flight: open from the maintenance page
    /// or the first failed probe, ended by verify at the first healthy round of the
    /// streak that passed. Cleared when an upgrade starts and when the tenant is Active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outage: Option<OutageWindow>,
    /// The outage of the last completed upgrade or rollback, in seconds, as verify
    /// and the maintenance page measured it; `None` when not measured: while an
    /// upgrade runs, and after one that failed before it touched the tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_outage_seconds: Option<u64>,
    /// What began that outage (`None`: no outage was observed, or not measured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_outage_cause: Option<OutageCause>,
    /// The tenant is in maintenance (or Quiesce is putting it there): its hostnames
    /// answer the maintenance page. Set before any rule is created and cleared by
    /// Reopen once every rule is gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Maintenance>,
}

/// A schema migration that may have run on the tenant's database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    /// The schema before (`None`: none was recorded).
    pub from: Option<SchemaVersion>,
    pub to: SchemaVersion,
    /// The pre-upgrade snapshot, which holds the database on `from`.
    pub snapshot: String,
    /// How a failed upgrade restores `snapshot`: fixed when the migration starts.
    pub restore: MigrationRestore,
    pub started_at: DateTime<Utc>,
    /// Who approved restoring `snapshot` (the actor of the operator's restore), once
    /// someone has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
}

/// When a tenant stopped serving during an upgrade or rollback, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutageWindow {
    pub started_at: DateTime<Utc>,
    pub cause: OutageCause,
    /// The first healthy round of the verification that passed (`None`: still down,
    /// or not verified yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
}

impl OutageWindow {
    /// Whole seconds from the start to the end, or to `now` when the window is open.
    pub fn seconds(&self, now: DateTime<Utc>) -> u64 {
        let end = self.ended_at.unwrap_or(now);
        (end - self.started_at).num_seconds().max(0) as u64
    }
}

/// What began an outage window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutageCause {
    /// The tenant was put in maintenance (its hostnames answer a maintenance page).
    Maintenance,
    /// A verify round found a hostname unhealthy or unreachable, or an alarm failing.
    FailedProbe,
}

impl OutageCause {
    /// The cause in words, as the CLI and the dashboard show it.
    pub fn as_str(self) -> &'static str {
        match self {
            OutageCause::Maintenance => "maintenance",
            OutageCause::FailedProbe => "failed probe",
        }
    }

    /// The cause as the API gives it: `maintenance` or `failed_probe`.
    pub fn code(self) -> &'static str {
        match self {
            OutageCause::Maintenance => "maintenance",
            OutageCause::FailedProbe => "failed_probe",
        }
    }
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

    /// The platform version the tenant runs (`None`: the built-in one): the one its
    /// deployed chart came from, or before a chart is deployed, its stack's. Mid-way
    /// through a platform change this is the chart's, the part serving traffic.
    pub fn running_platform(&self) -> Option<PlatformVersion> {
        match self.helm_revision {
            Some(_) => self.chart_platform,
            None => self.stack_platform,
        }
    }

    /// Notes that the tenant is down since `at`. The earliest start wins: a second
    /// call never moves it later, so the window covers the whole outage. A window that
    /// had ended opens again (the tenant went down after it was verified healthy).
    pub fn begin_outage(&mut self, at: DateTime<Utc>, cause: OutageCause) {
        match &mut self.outage {
            Some(window) => {
                if at < window.started_at {
                    window.started_at = at;
                    window.cause = cause;
                }
                window.ended_at = None;
            }
            None => {
                self.outage = Some(OutageWindow {
                    started_at: at,
                    cause,
                    ended_at: None,
                })
            }
        }
    }

    /// Notes that the tenant served healthy again from `at` (the first healthy round
    /// of the verification that passed). Without an open window there is nothing to end.
    pub fn end_outage(&mut self, at: DateTime<Utc>) {
        if let Some(window) = self.outage.as_mut().filter(|w| w.ended_at.is_none()) {
            window.ended_at = Some(at.max(window.started_at));
        }
    }

    /// The maintenance page came down at `at`: users were out until then at least, even
    /// when verify saw the new release healthy through the bypass earlier. Ends the
    /// window there, or moves an earlier end to it.
    pub fn end_outage_by_reopening(&mut self, at: DateTime<Utc>) {
        if let Some(window) = self.outage.as_mut() {
            let end = window.ended_at.map_or(at, |ended| ended.max(at));
            window.ended_at = Some(end.max(window.started_at));
        }
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
            // The release verified runs on the schema it declares: a migration that ran
            // is now what the database is on.
            if let Some(migration) = self.facts.migration.take() {
                self.facts.schema = Some(migration.to);
            } else if self.facts.target_schema.is_some() {
                self.facts.schema = self.facts.target_schema.clone();
            }
        }
        let rolled_back = matches!(self.state, TenantState::RollingBack { .. })
            && matches!(next, TenantState::Active { .. });
        self.settle_outage(&next, now);
        if rolled_back {
            // The tenant runs the image it ran before the upgrade again; what it was
            // moving to is no longer what it runs (a drift check compares with this).
            if let Some(previous) = self.facts.previous_image.clone() {
                self.facts.image = Some(previous);
            }
            // Likewise the schema it declares is again the one the database is on.
            self.facts.target_schema = self.facts.schema.clone();
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
            self.facts.migration_restore = None;
        }
    }

    /// Measures the outage of an upgrade or reconcile (Upgrading) or a rollback
    /// (RollingBack) that ends Active: its window's seconds, 0 when none was opened.
    /// The window is cleared whenever the tenant becomes Active and when an upgrade
    /// starts, so a stale one never leaks into the next upgrade.
    fn settle_outage(&mut self, next: &TenantState, now: DateTime<Utc>) {
        let completed = ends_a_measured_outage(&self.state, next);
        let starts_upgrade =
            matches!(self.state, TenantState::Active { .. }) && matches!(next, TenantState::Upgrading { .. });
        if !(matches!(next, TenantState::Active { .. }) || starts_upgrade) {
            return;
        }
        let window = self.facts.outage.take();
        if starts_upgrade {
            self.facts.last_outage_seconds = None;
            self.facts.last_outage_cause = None;
        }
        if completed {
            self.facts.last_outage_seconds = Some(window.as_ref().map_or(0, |w| w.seconds(now)));
            self.facts.last_outage_cause = window.map(|w| w.cause);
        }
    }
}

/// Whether the transition from `from` to `to` ends an upgrade, reconcile or rollback
/// whose outage is measured: one that returns the tenant to Active after it touched
/// the tenant. An upgrade that failed at CheckArtifact changed nothing and measures
/// nothing (it would count a 0 s outage that never was).
fn ends_a_measured_outage(from: &TenantState, to: &TenantState) -> bool {
    let touched = match from {
        TenantState::Upgrading { step, .. } => *step != crate::machine::UpgradeStep::CheckArtifact,
        TenantState::RollingBack { .. } => true,
        _ => false,
    };
    touched && matches!(to, TenantState::Active { .. })
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
    /// A person using the dashboard, named by the token their session was opened with.
    pub fn dashboard(token_name: &str) -> Self {
        Self(format!("dashboard:{token_name}"))
    }
    /// A catalog apply on behalf of `principal` (an operator or an API caller).
    pub fn catalog(principal: &Actor) -> Self {
        Self(format!("catalog:{}", principal.0))
    }
    /// Stripe's delivery of billing event `event_id` (`evt_…`), through the intake.
    pub fn stripe(event_id: &str) -> Self {
        Self(format!("stripe:{event_id}"))
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
    /// For an upgrade, reconcile or rollback that ended Active: its outage in whole
    /// seconds as verify measured it (0: no outage was observed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outage_seconds: Option<u64>,
    /// What began that outage (absent when there was none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outage_cause: Option<OutageCause>,
    /// For a step's outcome: the attempts the step took, this one included (1: it
    /// ended on its first; absent on events recorded before attempts were).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
}

/// A tenant's desired revision in one line, as its history records it:
/// `release 1.4.2, platform 2026.12.1, tier large` (`platform built-in` when none),
/// then `, schema 42` when a database schema is known: the one a migration in flight
/// moves to, else the one the database is on.
pub fn revision_line(record: &TenantRecord) -> String {
    let release = (record.state.target_release())
        .or(record.state.current_release())
        .map_or_else(|| "none".to_owned(), |r| r.to_string());
    let platform = record
        .spec
        .platform
        .map_or_else(|| "built-in".to_owned(), |p| p.to_string());
    let line = format!(
        "release {release}, platform {platform}, tier {}",
        record.spec.tier
    );
    let schema = (record.facts.migration.as_ref().map(|m| &m.to)).or(record.facts.schema.as_ref());
    match schema {
        Some(schema) => format!("{line}, schema {schema}"),
        None => line,
    }
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
    /// For a step's outcome: the attempts the step took, this one included.
    pub attempts: Option<u32>,
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
    /// What a subscription's billing events decided for the tenant without moving it:
    /// a deprovision scheduled after the grace period, or that schedule canceled. The
    /// state stays.
    Subscription(String),
    /// An action the caller's role bindings did not allow on this tenant: who asked,
    /// what for, and the binding it lacked. The state stays.
    AccessRefused(String),
}

/// Where a command came from when someone other than the tenant's operator moved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A rollout drove the tenant.
    Rollout(RolloutId),
    /// An operator overrode the hold of a rollout in the named phase.
    HoldOverride { rollout: RolloutId, phase: &'static str },
    /// An admin overrode the named freezes for `reason`; `hold` when the override of a
    /// rollout's hold was given too and needed.
    FreezeOverride {
        freezes: Vec<String>,
        reason: String,
        hold: Option<(RolloutId, &'static str)>,
    },
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
            attempts: None,
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
            Cause::Subscription(said) => format!("Subscription: {said}"),
            Cause::AccessRefused(said) => format!("AccessRefused: {said}"),
        };
        match &self.origin {
            None => cause,
            Some(Origin::Rollout(rollout)) => format!("{cause} (rollout {rollout})"),
            Some(Origin::HoldOverride { rollout, phase }) => {
                format!("{cause} (admin override of the hold of rollout {rollout}, {phase})")
            }
            Some(Origin::FreezeOverride {
                freezes,
                reason,
                hold,
            }) => {
                let hold = match hold {
                    Some((rollout, phase)) => {
                        format!("; admin override of the hold of rollout {rollout}, {phase}")
                    }
                    None => String::new(),
                };
                format!(
                    "{cause} (freeze {} overridden by {}: {reason}{hold})",
                    freezes.join(", "),
                    self.actor.0
                )
            }
        }
    }

    /// The history event this transition becomes as event `seq` of `next`.
    pub fn into_event(self, seq: u64, next: &TenantRecord, at: DateTime<Utc>) -> HistoryEvent {
        let measured = ends_a_measured_outage(&self.from, &next.state);
        HistoryEvent {
            outage_seconds: measured.then_some(next.facts.last_outage_seconds).flatten(),
            outage_cause: measured.then_some(next.facts.last_outage_cause).flatten(),
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
            attempts: self.attempts,
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

    fn schema(s: &str) -> SchemaVersion {
        SchemaVersion::parse(s).unwrap()
    }

    #[test]
    fn a_verified_upgrade_settles_its_migration_and_a_rollback_its_declared_schema() {
        use crate::machine::UpgradeStep;
        let v = |s: &str| ReleaseVersion::parse(s).unwrap();
        let now = Utc::now();
        let verifying = TenantState::Upgrading {
            step: UpgradeStep::Verify,
            from: v("1.1.0"),
            to: v("1.2.0"),
        };
        let mut r = TenantRecord::new(TenantSpec::example("acme", "us-east-1"), verifying, now);
        r.facts.schema = Some(schema("41"));
        r.facts.target_schema = Some(schema("42"));
        r.facts.migration = Some(Migration {
            from: Some(schema("41")),
            to: schema("42"),
            snapshot: "snap-7".into(),
            restore: MigrationRestore::Approval,
            started_at: now,
            approved_by: None,
        });
        assert!(
            revision_line(&r).ends_with(", schema 42"),
            "{}",
            revision_line(&r)
        );
        r.enter(
            TenantState::Active {
                release: v("1.2.0"),
                failed_upgrade: None,
            },
            now,
        );
        assert_eq!(r.facts.schema, Some(schema("42")));
        assert_eq!(r.facts.migration, None);

        // A rollback leaves the schema alone and forgets the abandoned release's.
        let mut r = TenantRecord::new(
            TenantSpec::example("acme", "us-east-1"),
            TenantState::RollingBack {
                step: RollbackStep::VerifyRollback,
                abandoned: v("1.2.0"),
                previous: v("1.1.0"),
                cause: "verify failed".into(),
            },
            now,
        );
        r.facts.schema = Some(schema("41"));
        r.facts.target_schema = Some(schema("42"));
        r.enter(
            TenantState::Active {
                release: v("1.1.0"),
                failed_upgrade: Some(v("1.2.0")),
            },
            now,
        );
        assert_eq!(r.facts.schema, Some(schema("41")));
        assert_eq!(r.facts.target_schema, Some(schema("41")));
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn the_earliest_start_of_an_outage_wins_and_the_first_end_stays() {
        let mut facts = TenantFacts::default();
        facts.begin_outage(at(10), OutageCause::Maintenance);
        facts.begin_outage(at(40), OutageCause::FailedProbe);
        let window = facts.outage.clone().unwrap();
        assert_eq!(
            (window.started_at, window.cause),
            (at(10), OutageCause::Maintenance),
            "a later failed probe does not move the start of the maintenance window"
        );
        facts.end_outage(at(70));
        facts.end_outage(at(90));
        assert_eq!(facts.outage.as_ref().unwrap().ended_at, Some(at(70)));
        assert_eq!(facts.outage.as_ref().unwrap().seconds(at(500)), 60);
        facts.begin_outage(at(5), OutageCause::FailedProbe);
        let window = facts.outage.unwrap();
        assert_eq!(
            (window.started_at, window.cause, window.ended_at),
            (at(5), OutageCause::FailedProbe, None),
            "an earlier start replaces the later one, and the tenant is down again"
        );
    }

    #[test]
    fn reopening_ends_the_outage_when_the_page_comes_down_not_before() {
        let mut facts = TenantFacts::default();
        facts.begin_outage(at(10), OutageCause::Maintenance);
        facts.end_outage(at(50)); // verify's first healthy round, through the bypass
        facts.end_outage_by_reopening(at(80));
        assert_eq!(facts.outage.as_ref().unwrap().ended_at, Some(at(80)));
        facts.end_outage_by_reopening(at(70));
        assert_eq!(
            facts.outage.as_ref().unwrap().ended_at,
            Some(at(80)),
            "a later end is never moved back"
        );
        let mut none = TenantFacts::default();
        none.end_outage_by_reopening(at(80));
        assert_eq!(none.outage, None, "no window, nothing to end");
    }

    #[test]
    fn without_an_open_window_there_is_no_outage_to_end() {
        let mut facts = TenantFacts::default();
        facts.end_outage(at(10));
        assert_eq!(facts.outage, None);
    }

    fn upgrading(step: crate::machine::UpgradeStep) -> TenantState {
        let v = |s: &str| ReleaseVersion::parse(s).unwrap();
        TenantState::Upgrading {
            step,
            from: v("1.0.0"),
            to: v("1.1.0"),
        }
    }

    fn active(release: &str) -> TenantState {
        TenantState::Active {
            release: ReleaseVersion::parse(release).unwrap(),
            failed_upgrade: None,
        }
    }

    #[test]
    fn a_completed_upgrade_records_its_outage_and_clears_the_window() {
        use crate::machine::UpgradeStep;
        let spec = TenantSpec::example("acme", "us-east-1");
        let mut r = TenantRecord::new(spec, upgrading(UpgradeStep::Verify), at(0));
        r.facts.begin_outage(at(100), OutageCause::Maintenance);
        r.facts.end_outage(at(142));
        let from = r.state.clone();
        r.enter(active("1.1.0"), at(150));
        assert_eq!(r.facts.outage, None);
        assert_eq!(r.facts.last_outage_seconds, Some(42));
        let event = Transition::new(
            &from,
            Cause::Event(TenantEvent::StepSucceeded),
            Actor::operator("t"),
        )
        .into_event(1, &r, at(150));
        assert_eq!(event.outage_seconds, Some(42));
        assert_eq!(event.outage_cause, Some(OutageCause::Maintenance));
    }

    #[test]
    fn an_upgrade_without_an_outage_records_zero_and_other_transitions_none() {
        use crate::machine::UpgradeStep;
        let spec = TenantSpec::example("acme", "us-east-1");
        let mut r = TenantRecord::new(spec, active("1.0.0"), at(0));
        r.facts.last_outage_seconds = Some(42);
        r.facts.begin_outage(at(1), OutageCause::FailedProbe);
        let from = r.state.clone();
        r.enter(upgrading(UpgradeStep::CheckArtifact), at(10));
        assert_eq!(
            r.facts.outage, None,
            "a stale window does not leak into the upgrade"
        );
        let started = Transition::new(&from, Cause::Event(TenantEvent::Reconcile), Actor::operator("t"))
            .into_event(1, &r, at(10));
        assert_eq!(started.outage_seconds, None);
        assert_eq!(
            r.facts.last_outage_seconds, None,
            "the last upgrade's outage is no measure of this one"
        );
        r.state = upgrading(UpgradeStep::Verify);
        r.enter(active("1.1.0"), at(20));
        assert_eq!(r.facts.last_outage_seconds, Some(0));
        assert_eq!(r.facts.last_outage_cause, None, "no outage, no cause");
    }

    #[test]
    fn an_upgrade_that_failed_before_it_touched_the_tenant_measures_no_outage() {
        use crate::machine::UpgradeStep;
        let spec = TenantSpec::example("acme", "us-east-1");
        let mut r = TenantRecord::new(spec, upgrading(UpgradeStep::CheckArtifact), at(0));
        let from = r.state.clone();
        r.enter(
            TenantState::Active {
                release: ReleaseVersion::parse("1.0.0").unwrap(),
                failed_upgrade: Some(ReleaseVersion::parse("1.1.0").unwrap()),
            },
            at(5),
        );
        assert_eq!(r.facts.last_outage_seconds, None);
        let event = Transition::new(
            &from,
            Cause::Event(TenantEvent::StepFailed {
                reason: "release 1.1.0 is not published".into(),
            }),
            Actor::operator("t"),
        )
        .into_event(1, &r, at(5));
        assert_eq!(
            event.outage_seconds, None,
            "no 0 s outage for an upgrade that never began"
        );
    }

    #[test]
    fn a_rollback_measures_from_the_failed_upgrade_to_its_healthy_verification() {
        use crate::machine::UpgradeStep;
        let v = |s: &str| ReleaseVersion::parse(s).unwrap();
        let spec = TenantSpec::example("acme", "us-east-1");
        let mut r = TenantRecord::new(spec, upgrading(UpgradeStep::Verify), at(0));
        r.facts.begin_outage(at(30), OutageCause::FailedProbe);
        let rolling_back = TenantState::RollingBack {
            step: RollbackStep::RollbackDeploy,
            abandoned: v("1.1.0"),
            previous: v("1.0.0"),
            cause: "verify failed".into(),
        };
        r.enter(rolling_back, at(60));
        assert!(r.facts.outage.is_some(), "the outage goes on while rolling back");
        r.facts.end_outage(at(95));
        r.state = TenantState::RollingBack {
            step: RollbackStep::VerifyRollback,
            abandoned: v("1.1.0"),
            previous: v("1.0.0"),
            cause: "verify failed".into(),
        };
        r.enter(
            TenantState::Active {
                release: v("1.0.0"),
                failed_upgrade: Some(v("1.1.0")),
            },
            at(100),
        );
        assert_eq!(r.facts.last_outage_seconds, Some(65));
    }
}
