//! What operators and pipelines do to rollouts: plan, start, pause, resume, abort,
//! approve, retry. Each is a conditional write on the rollout record (retried a few
//! times if the controller wrote in between); the controller acts on it next tick.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::rollout::{Plan, SkipReason, Skipped};
use crate::domain::{frozen_by, Freeze, RolloutId, RolloutSpec, TenantId};
use crate::ports::{
    ArtifactError, ChangePreview, DriftStore, PlatformArtifacts, ReleaseCheckError, ReleaseRegistry,
};
use crate::ports::{ListQuery, RolloutStore, StoreError, TenantStore, Wakeup, WriteGuard};
use crate::record::{Outcome, Phase, RolloutMember, RolloutRecord, WaveStatus};
use crate::rollout::{plan_with_limits, PlanOptions, StartSpacing, TenantSummaryForPlanning};

use super::previews::{preview_plan, PlanPreview};

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// The release cannot be rolled out (e.g. no image is published for it).
    #[error("{0}")]
    UnknownRelease(String),
    /// The artifact registry could not be asked whether the release is published.
    #[error("{0}")]
    ReleaseCheck(String),
    /// The platform version the rollout names is not published.
    #[error("{0}")]
    UnknownPlatform(String),
    /// The platform artifact store could not say whether the version is published.
    #[error("cannot check the rollout's platform version: {0}")]
    PlatformCheck(#[source] ArtifactError),
    /// The rollout's phase does not allow it; the message says what would.
    #[error("rollout {id}: {message}")]
    Refused { id: RolloutId, message: String },
    /// The rollout would move no tenant because other running rollouts hold those it
    /// selects; the message names them.
    #[error("rollout {id}: {message}")]
    Held { id: RolloutId, message: String },
    /// The change would replace or remove a tenant's database or bucket, and the
    /// spec's `strategy.allow_replacement` does not name it.
    #[error("refused: {0}")]
    ReplacementRefused(String),
    /// The change could not be previewed (the stack, a platform version or the steps
    /// configuration); the message says which and what to do.
    #[error("{0}")]
    Preview(String),
    /// A preview was asked of a service built without one.
    #[error("no change preview is configured: give the steps configuration (--steps-config, and --platform-bucket for tenants on a published platform) to preview stack changes")]
    NoPreview,
    /// A freeze holds tenants the rollout would start now; the message says until
    /// when, why, and that an admin may override it.
    #[error("rollout {id}: {message}")]
    Frozen { id: RolloutId, message: String },
    /// The scheduled start time cannot be used; the message says why.
    #[error("{0}")]
    BadSchedule(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ReleaseCheckError> for RolloutError {
    fn from(e: ReleaseCheckError) -> Self {
        match e {
            ReleaseCheckError::Unpublished(m) => RolloutError::UnknownRelease(m),
            ReleaseCheckError::Unavailable(m) => RolloutError::ReleaseCheck(m),
        }
    }
}

/// Why a rollout of `plan` must not start: it would move no tenant, and some it
/// selects are held by other running rollouts. Started, it would complete at once as
/// if nothing needed to move, while those tenants stay where the other rollouts take
/// them.
fn all_held(plan: &Plan) -> Option<String> {
    if !plan.waves.is_empty() {
        return None;
    }
    let mut holders: Vec<&RolloutId> = (plan.skipped.iter())
        .filter_map(|s| match &s.reason {
            SkipReason::HeldByRollout { rollout } => Some(rollout),
            _ => None,
        })
        .collect();
    let held = holders.len();
    holders.sort();
    holders.dedup();
    let holders: Vec<String> = holders.iter().map(|r| r.to_string()).collect();
    (held > 0).then(|| {
        format!(
            "none of its tenants can move: {} held by running {} {}; \
             wait for {} to finish (or abort {}), then start this rollout again",
            if held == 1 {
                "1 of those it selects is".to_owned()
            } else {
                format!("{held} of those it selects are")
            },
            if holders.len() == 1 { "rollout" } else { "rollouts" },
            holders.join(", "),
            if holders.len() == 1 { "it" } else { "them" },
            if holders.len() == 1 { "it" } else { "them" }
        )
    })
}

/// The upgrade time per tenant that `plan` (and so `tenantctl rollout plan`) assumes
/// for its estimated timeline: the dashboard draws a started rollout's planned bars
/// with it.
pub fn assumed_tenant_duration() -> std::time::Duration {
    PlanOptions::default().tenant_duration
}

/// How much of a rollout's membership [`members_to_draw`] reads.
#[derive(Debug, Clone, Copy)]
pub struct DrawSample {
    /// A rollout of at most this many members is read whole.
    pub read_all_up_to: usize,
    /// Of a larger one, each wave's first members by tenant id, besides the failed
    /// and in-flight ones its tally names.
    pub per_wave: u32,
}

impl DrawSample {
    /// What the dashboard's rollout page reads on each reload: a rollout of 100,000
    /// tenants costs it a query of 40 members and a batch read of at most 30 a wave.
    pub const PAGE: Self = Self {
        read_all_up_to: 1_000,
        per_wave: 40,
    };
}

/// The members a picture of `record` is drawn from: all of them for a small rollout
/// (or one written before its waves kept tallies and planned starts, whose picture
/// needs them all); otherwise per wave a sample, the failed and in-flight members its
/// tally names and the first `sample.per_wave`, so the reads are bounded by the number of waves
/// and not the fleet. The dashboard's timeline takes what else it draws of a sampled
/// wave from the record.
pub async fn members_to_draw<S: RolloutStore + ?Sized>(
    store: &S,
    record: &RolloutRecord,
    sample: DrawSample,
) -> Result<Vec<RolloutMember>, StoreError> {
    let size: usize = record.waves.iter().map(|w| w.size).sum();
    let kept = record.waves.iter().all(|w| {
        w.tally.is_some() && w.window_waits.is_some() && (w.planned_starts.is_some() || w.size == 0)
    });
    if size <= sample.read_all_up_to || !kept {
        return store.members(&record.id, None).await;
    }
    let mut members = Vec::new();
    for w in record.waves.iter().filter(|w| w.size > 0) {
        let named: Vec<TenantId> = (w.tally.iter())
            .flat_map(|t| (t.failures.iter().map(|f| &f.tenant)).chain(&t.moving))
            .cloned()
            .collect();
        let sampled = store.members_sample(&record.id, w.index, &named, sample.per_wave);
        members.extend(sampled.await?);
    }
    Ok(members)
}

/// How far ahead a start may be scheduled.
pub const LONGEST_SCHEDULE_DAYS: i64 = 90;
/// How far in the past a scheduled start may be (clocks of callers differ a little).
const SCHEDULE_SLACK_SECONDS: i64 = 60;

/// What a start may add to the spec: when, and an admin's override of the freezes in
/// force (with the reason, recorded in the rollout's events).
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    pub at: Option<DateTime<Utc>>,
    pub override_freeze: Option<String>,
}

/// The answer to `start`: the rollout, whether this call created it (a repeated
/// start of the same spec under the same id returns the existing one), and how many
/// tenants it moves.
#[derive(Debug, Clone)]
pub struct Started {
    pub record: RolloutRecord,
    pub created: bool,
    pub tenants: usize,
}

const CONFLICT_RETRIES: usize = 8;
/// How long a starting call holds the new rollout before controllers may take it;
/// renewed after each [`START_CHUNK`] of its writes.
const START_LEASE: Duration = Duration::from_secs(60);
/// How many members (or skipped tenants) a start writes between renewals of its lease.
const START_CHUNK: usize = 1_000;
/// How long a start that lost the race to create its rollout waits for the call that
/// won to finish writing it, to answer with it.
const CONCURRENT_START_WAIT: Duration = Duration::from_secs(10);

/// What taking over an unfinished start found.
enum TakeOver {
    /// The rollout, rewritten from the new plan and still preparing, under the
    /// caller's lease.
    Taken(RolloutRecord),
    /// Another call finished the start first: the rollout as it is.
    Finished(Started),
}

impl Started {
    /// A rollout that was already started: its own members, not a new plan (the fleet
    /// now counts them as held).
    fn existing(record: RolloutRecord) -> Self {
        let tenants = record.waves.iter().map(|w| w.size).sum();
        Started {
            record,
            created: false,
            tenants,
        }
    }
}

#[derive(Clone)]
pub struct RolloutCommands {
    tenants: Arc<dyn TenantStore>,
    rollouts: Arc<dyn RolloutStore>,
    registry: Option<Arc<dyn ReleaseRegistry>>,
    platforms: Option<Arc<dyn PlatformArtifacts>>,
    previewer: Option<Arc<dyn ChangePreview>>,
    drift: Option<Arc<dyn DriftStore>>,
    /// The least time between two upgrade starts per region, from the AWS rate limits.
    start_spacing: StartSpacing,
    /// Woken after every command that changed a rollout, for a controller in this
    /// process to act on it at once ([`Self::with_wakeup`]).
    changed: Option<Wakeup>,
}

/// Why a start is refused when its id is taken by a rollout of another spec.
const OTHER_SPEC: &str =
    "exists with a different spec; give the new rollout another id (--id, `id` in the API)";

/// Refuses a scheduled start in the past or too far ahead.
fn check_schedule(at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), RolloutError> {
    if at < now - chrono::TimeDelta::seconds(SCHEDULE_SLACK_SECONDS) {
        return Err(RolloutError::BadSchedule(format!(
            "the scheduled start {} is in the past (now {}); give a later time, or leave it out (--at, `start_at` in the API) to start now",
            at.to_rfc3339(),
            now.to_rfc3339()
        )));
    }
    if at > now + chrono::TimeDelta::days(LONGEST_SCHEDULE_DAYS) {
        return Err(RolloutError::BadSchedule(format!(
            "the scheduled start {} is more than {LONGEST_SCHEDULE_DAYS} days ahead; schedule it closer, \
             the fleet will have changed by then",
            at.to_rfc3339()
        )));
    }
    Ok(())
}

impl RolloutCommands {
    pub fn new(tenants: Arc<dyn TenantStore>, rollouts: Arc<dyn RolloutStore>) -> Self {
        Self {
            tenants,
            rollouts,
            registry: None,
            previewer: None,
            platforms: None,
            drift: None,
            start_spacing: StartSpacing::new(),
            changed: None,
        }
    }

    /// Wakes `changed` after every command that changed a rollout, so a controller in
    /// this process ([`crate::rollout::Controller::with_command_wakeup`]) acts on it at
    /// once rather than at its next tick.
    pub fn with_wakeup(mut self, changed: Wakeup) -> Self {
        self.changed = Some(changed);
        self
    }

    fn wake_controller(&self) {
        if let Some(changed) = &self.changed {
            changed.wake();
        }
    }

    /// Where the selector `drifted: true` reads which tenants drifted; without it no
    /// tenant counts as drifted.
    pub fn with_drift(mut self, drift: Arc<dyn DriftStore>) -> Self {
        self.drift = Some(drift);
        self
    }

    /// The tenants whose last drift check found drift.
    async fn drifted_tenants(&self) -> Result<std::collections::HashSet<TenantId>, StoreError> {
        let mut ids = std::collections::HashSet::new();
        let Some(drift) = &self.drift else {
            return Ok(ids);
        };
        let mut token: Option<String> = None;
        loop {
            let page = drift.drifted(1000, token.as_deref()).await?;
            ids.extend(page.items.into_iter().map(|s| s.tenant));
            token = page.next_token;
            if token.is_none() {
                return Ok(ids);
            }
        }
    }

    /// Checks, before a rollout is planned or started, that the platform version it
    /// names is published in `platforms`.
    pub fn with_platforms(mut self, platforms: Arc<dyn PlatformArtifacts>) -> Self {
        self.platforms = Some(platforms);
        self
    }

    /// Refuses a platform version that is not published, when there is a store to ask.
    async fn check_platform(&self, spec: &RolloutSpec) -> Result<(), RolloutError> {
        let (Some(platforms), Some(version)) = (&self.platforms, &spec.platform) else {
            return Ok(());
        };
        match platforms.manifest(version).await {
            Ok(_) => Ok(()),
            Err(ArtifactError::NotFound(v)) => Err(RolloutError::UnknownPlatform(format!(
                "platform version {v} is not published; publish it first (`tenantctl platform publish`) \
                 or name a published one (`tenantctl platform list`)"
            ))),
            Err(e) => Err(RolloutError::PlatformCheck(e)),
        }
    }

    /// Plans with the AWS rate limits of the steps: a region's upgrades start no closer
    /// together than `spacing` says (see [`plan_with_limits`]).
    pub fn with_start_spacing(mut self, spacing: StartSpacing) -> Self {
        self.start_spacing = spacing;
        self
    }

    /// Previews each rollout's stack changes with `previewer` (`plan --diff`), and
    /// refuses to start one that would replace or remove a tenant's data unasked.
    pub fn with_preview(mut self, previewer: Arc<dyn ChangePreview>) -> Self {
        self.previewer = Some(previewer);
        self
    }

    /// The plan with, per (region, tier, platform version) group of the tenants it
    /// moves, what one representative's stack update would change.
    pub async fn preview(
        &self,
        spec: &RolloutSpec,
        now: DateTime<Utc>,
    ) -> Result<(Plan, PlanPreview), RolloutError> {
        let Some(previewer) = &self.previewer else {
            return Err(RolloutError::NoPreview);
        };
        let plan = self.plan(spec, now).await?;
        let preview = preview_plan(self.tenants.as_ref(), previewer.as_ref(), spec, &plan).await?;
        Ok((plan, preview))
    }

    /// Checks, before a rollout starts, that its release is published in `registry`
    /// for every region it visits.
    pub fn with_registry(mut self, registry: Arc<dyn ReleaseRegistry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The dry run: the plan `start` would store now. Tenants in the waves of another
    /// running rollout are skipped: that rollout will move them.
    pub async fn plan(&self, spec: &RolloutSpec, now: DateTime<Utc>) -> Result<Plan, RolloutError> {
        self.check_platform(spec).await?;
        let held_by = self.held_tenants().await?;
        let mut fleet = Vec::new();
        let mut held = Vec::new();
        let mut other_environments = 0;
        let mut token = None;
        loop {
            // Every record is read next, so the listing need not follow the tenants in
            // the middle of steps.
            let page = self
                .tenants
                .list_ids(&ListQuery {
                    limit: Some(500),
                    next_token: token,
                    ..Default::default()
                })
                .await?;
            // A tenant deleted since the listing is not part of the fleet.
            for record in self.tenants.load_many(&page.items).await? {
                // Another environment's tenant is not part of the fleet this rollout
                // plans over, so it counts as not selected.
                if !spec.selector.admits_environment(&record.spec.environment) {
                    other_environments += 1;
                    continue;
                }
                let selected = spec.selector.matches(
                    record.id(),
                    &record.spec.region,
                    &record.spec.group,
                    record.spec.tier,
                );
                match held_by.get(record.id()) {
                    Some(holder) if selected && !spec.selector.excludes(record.id()) => held.push(Skipped {
                        id: record.id().clone(),
                        reason: SkipReason::HeldByRollout {
                            rollout: holder.clone(),
                        },
                    }),
                    _ => fleet.push(TenantSummaryForPlanning::from_tenant(
                        &record.spec,
                        &record.state,
                        &record.facts,
                    )),
                }
            }
            token = page.next_token;
            if token.is_none() {
                break;
            }
        }
        // `drifted: true` narrows the fleet the planner sees to the drifted tenants; the
        // others count as not selected, as for any other selector field.
        let mut not_drifted = 0;
        if spec.selector.drifted {
            let drifted = self.drifted_tenants().await?;
            let before = fleet.len();
            fleet.retain(|t| drifted.contains(&t.id));
            not_drifted = before - fleet.len();
        }
        let mut plan = plan_with_limits(spec, &fleet, now, &PlanOptions::default(), &self.start_spacing);
        plan.not_selected += not_drifted + other_environments;
        // A tenant the selector names and another rollout holds is in the fleet, only
        // held: the planner, which never saw it, took it for missing. It is skipped
        // once, as held (members and skipped tenants are keyed by tenant).
        plan.skipped
            .retain(|s| s.reason != SkipReason::NotInFleet || !held.iter().any(|h| h.id == s.id));
        plan.skipped.extend(held);
        plan.skipped.sort_by(|a, b| a.id.cmp(&b.id));
        // The dry run refuses what the start would: a release not published in a
        // region the plan moves tenants in.
        if let (Some(registry), Some(release)) = (&self.registry, &spec.release) {
            for region in &plan.region_order {
                registry
                    .check_published(release, region)
                    .await
                    .map_err(RolloutError::from)?;
            }
        }
        Ok(plan)
    }

    /// Tenants that running rollouts have in their waves (not skipped), by rollout.
    async fn held_tenants(&self) -> Result<HashMap<TenantId, RolloutId>, RolloutError> {
        let mut held = HashMap::new();
        let mut token = None;
        loop {
            let page = self.rollouts.list_rollouts(true, 100, token).await?;
            for rollout in &page.items {
                for m in self.rollouts.members(&rollout.id, None).await? {
                    if !matches!(m.outcome, Outcome::Skipped { .. }) {
                        held.insert(m.tenant, rollout.id.clone());
                    }
                }
            }
            token = page.next_token;
            if token.is_none() {
                return Ok(held);
            }
        }
    }

    /// Plans and stores a rollout; the controllers carry it out. Starting the same
    /// spec under an existing id returns that rollout, so a retried pipeline step
    /// never starts two.
    pub async fn start(
        &self,
        id: RolloutId,
        spec: RolloutSpec,
        actor: &str,
    ) -> Result<Started, RolloutError> {
        self.start_with(id, spec, actor, StartOptions::default()).await
    }

    /// [`Self::start`], scheduled for `options.at` (stored now, no wave starts before
    /// then; a freeze in force at that time holds its tenants until it ends), or
    /// overriding the freezes that hold its tenants now.
    pub async fn start_with(
        &self,
        id: RolloutId,
        spec: RolloutSpec,
        actor: &str,
        options: StartOptions,
    ) -> Result<Started, RolloutError> {
        let now = Utc::now();
        if let Some(at) = options.at {
            check_schedule(at, now)?;
        }
        let unfinished = match self.rollouts.load_rollout(&id).await {
            // A start that was interrupted is done again below, under its lease.
            Ok(existing) if existing.spec == spec && existing.start_unfinished() => Some(existing),
            Ok(existing) if existing.spec == spec => return Ok(Started::existing(existing)),
            Ok(_) => {
                return Err(RolloutError::Refused {
                    id,
                    message: OTHER_SPEC.into(),
                })
            }
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let plan = self.plan(&spec, now).await?;
        if let Some(message) = all_held(&plan) {
            return Err(RolloutError::Held { id, message });
        }
        if let Some(previewer) = &self.previewer {
            let preview = preview_plan(self.tenants.as_ref(), previewer.as_ref(), &spec, &plan).await?;
            if let Some(refusal) = preview.refusal() {
                return Err(RolloutError::ReplacementRefused(refusal));
            }
        }
        let tenants: Vec<TenantId> = (plan.waves.iter())
            .flat_map(|w| w.tenants.iter().map(|t| t.id.clone()))
            .collect();
        let overridden = match options.at {
            Some(_) => Vec::new(),
            None => {
                self.freezes_in_the_way(&id, &tenants, now, options.override_freeze.as_deref())
                    .await?
            }
        };
        let mut record = RolloutRecord::from_plan(id.clone(), spec, &plan, actor, now);
        record.not_before = options.at;
        if let Some(at) = options.at {
            record.log(now, actor, format!("scheduled to start at {}", at.to_rfc3339()));
        }
        if let (false, Some(reason)) = (overridden.is_empty(), &options.override_freeze) {
            record.log(
                now,
                actor,
                format!("admin override of freeze {}: {reason}", overridden.join(", ")),
            );
        }
        record.overridden_freezes = overridden;
        let starter = format!("start:{}", uuid::Uuid::new_v4().simple());
        let mut record = match unfinished {
            None => match (self.rollouts)
                .create_rollout(&record, &starter, START_LEASE)
                .await
            {
                Ok(created) => created,
                // Another call created it since it was read above: the same start
                // made twice at once gets the one rollout, as one made twice in turn.
                Err(StoreError::Conflict { .. }) => return self.started_by_another(id, &record.spec).await,
                Err(e) => return Err(e.into()),
            },
            Some(unfinished) => match self.take_over_start(unfinished, record, &starter, actor).await? {
                TakeOver::Taken(record) => record,
                TakeOver::Finished(started) => return Ok(started),
            },
        };
        let mut lease = record.lease.clone().expect("created with a lease");
        // Written while the rollout is still preparing, a chunk at a time with the
        // lease renewed after each, so that a large fleet's start keeps its lease
        // however long the writes take, and one interrupted is resumed whole.
        for chunk in plan.skipped.chunks(START_CHUNK) {
            self.rollouts.put_skipped(&id, chunk).await?;
            lease = self.renew_start(&id, &starter).await?;
        }
        for chunk in RolloutMember::from_plan(&plan).chunks(START_CHUNK) {
            self.rollouts.put_members(&id, chunk).await?;
            lease = self.renew_start(&id, &starter).await?;
        }
        record.phase = if plan.waves.is_empty() {
            record.log(now, actor, "completed: no tenant needed to move");
            Phase::Completed
        } else {
            Phase::Running
        };
        record.lease = None;
        let record = self
            .rollouts
            .save_rollout(&record, WriteGuard::Lease(&lease))
            .await?;
        self.rollouts.release_rollout_lease(&id, &lease).await?;
        self.wake_controller();
        Ok(Started {
            record,
            created: true,
            tenants: plan.tenant_count(),
        })
    }

    /// The rollout `id` that another call created while this one planned it: once
    /// that call has written it whole (waited for up to [`CONCURRENT_START_WAIT`]),
    /// it is this call's answer if it has the same spec.
    async fn started_by_another(&self, id: RolloutId, spec: &RolloutSpec) -> Result<Started, RolloutError> {
        let deadline = tokio::time::Instant::now() + CONCURRENT_START_WAIT;
        loop {
            let existing = self.rollouts.load_rollout(&id).await?;
            if existing.spec != *spec {
                return Err(RolloutError::Refused {
                    id,
                    message: OTHER_SPEC.into(),
                });
            }
            if !existing.start_unfinished() {
                return Ok(Started::existing(existing));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RolloutError::Refused {
                    id: id.clone(),
                    message: format!(
                        "is being started by another call with the same spec, which has not finished writing it after {} s; run the same start again to get it (or to resume it, if that call was interrupted), or see it with `tenantctl rollout status {id}`",
                        CONCURRENT_START_WAIT.as_secs()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Takes the lease of a rollout whose start was interrupted (`unfinished`, read
    /// before planning) and rewrites it from `planned`, this call's plan of the same
    /// spec: the first attempt's members and skipped tenants are removed, its events
    /// kept. Refused while the lease is live: the start may still be running, or
    /// have been interrupted less than [`START_LEASE`] ago.
    async fn take_over_start(
        &self,
        unfinished: RolloutRecord,
        planned: RolloutRecord,
        starter: &str,
        actor: &str,
    ) -> Result<TakeOver, RolloutError> {
        let id = unfinished.id.clone();
        let now = Utc::now();
        let held = match (self.rollouts)
            .acquire_rollout_lease(&id, starter, START_LEASE, now)
            .await
        {
            Ok(held) => held,
            Err(StoreError::Conflict { .. }) => {
                return Err(RolloutError::Refused {
                    id,
                    message: format!(
                        "is still being started, by another call or by one interrupted less than {} s ago; run the same start again after that and it resumes the interrupted one, or see it with `tenantctl rollout status {}`",
                        START_LEASE.as_secs(),
                        unfinished.id
                    ),
                })
            }
            Err(e) => return Err(e.into()),
        };
        let lease = held.lease.clone().expect("a lease was just taken");
        if !held.start_unfinished() {
            self.rollouts.release_rollout_lease(&id, &lease).await?;
            return Ok(TakeOver::Finished(Started::existing(held)));
        }
        self.rollouts.clear_start(&id).await?;
        let mut record = planned;
        record.skipped_apart = Some(record.skipped.len());
        record.created_at = held.created_at;
        record.created_by = held.created_by.clone();
        record.events = held.events.iter().cloned().chain(record.events).collect();
        record.log(
            now,
            actor,
            format!("start resumed: the {} start before was interrupted", held.phase),
        );
        record.version = held.version;
        record.lease = Some(lease.clone());
        let mut saved = (self.rollouts)
            .save_rollout(&record, WriteGuard::Lease(&lease))
            .await?;
        saved.skipped = Vec::new();
        Ok(TakeOver::Taken(saved))
    }

    /// Renews a starting call's lease on the rollout it is writing.
    async fn renew_start(&self, id: &RolloutId, starter: &str) -> Result<crate::record::Lease, RolloutError> {
        let renewed = (self.rollouts)
            .acquire_rollout_lease(id, starter, START_LEASE, Utc::now())
            .await?;
        Ok(renewed.lease.expect("a lease was just renewed"))
    }

    /// The rollout, with the bake evidence of its finished waves, and its members.
    pub async fn get(&self, id: &RolloutId) -> Result<(RolloutRecord, Vec<RolloutMember>), RolloutError> {
        let record = self.rollouts.load_rollout(id).await?;
        let record = (self.rollouts)
            .with_details(record, crate::ports::Details::Everything)
            .await?;
        let members = self.rollouts.members(id, None).await?;
        Ok((record, members))
    }

    pub async fn pause(&self, id: &RolloutId, actor: &str) -> Result<RolloutRecord, RolloutError> {
        self.change(id, actor, |r| match r.phase {
            Phase::Running => {
                r.phase = Phase::Paused;
                Ok("paused: no tenant is started until it is resumed; tenants in flight finish".into())
            }
            Phase::Paused => Err("is already paused".into()),
            other => Err(format!("is {other}; only a running rollout can be paused")),
        })
        .await
    }

    /// Continues a paused rollout, or a halted one, accepting the failures that
    /// halted it (those tenants stay as they are; `retry` starts them again).
    pub async fn resume(&self, id: &RolloutId, actor: &str) -> Result<RolloutRecord, RolloutError> {
        self.resume_with(id, actor, None).await
    }

    /// [`Self::resume`], refused while a freeze holds a tenant the current wave would
    /// start, unless an admin overrides it (`override_freeze`: why).
    pub async fn resume_with(
        &self,
        id: &RolloutId,
        actor: &str,
        override_freeze: Option<&str>,
    ) -> Result<RolloutRecord, RolloutError> {
        let record = self.rollouts.load_rollout(id).await?;
        let pending: Vec<TenantId> = match record.wave() {
            Some(w) if matches!(record.phase, Phase::Paused | Phase::Halted) => (self.rollouts)
                .members(id, Some(w.index))
                .await?
                .into_iter()
                .filter(|m| !m.outcome.is_done() || matches!(m.outcome, Outcome::Failed { .. }))
                .map(|m| m.tenant)
                .collect(),
            _ => Vec::new(),
        };
        let overridden = self
            .freezes_in_the_way(id, &pending, Utc::now(), override_freeze)
            .await?;
        if let (false, Some(reason)) = (overridden.is_empty(), override_freeze) {
            let what = format!("admin override of freeze {}: {reason}", overridden.join(", "));
            self.change(id, actor, |r| {
                for f in &overridden {
                    if !r.overridden_freezes.contains(f) {
                        r.overridden_freezes.push(f.clone());
                    }
                }
                Ok(what.clone())
            })
            .await?;
        }
        let failures = self.current_failures(id).await?;
        self.change(id, actor, |r| match r.phase {
            Phase::Paused => {
                r.phase = Phase::Running;
                Ok("resumed".into())
            }
            Phase::Halted => {
                let (at, waves) = (r.current_wave, r.waves.len());
                let Some(wave) = r.wave_mut() else {
                    return Err(format!(
                        "is halted at wave {at} but has only {waves} waves (numbered from 0), so there is \
                         no wave to resume; abort it and start a new rollout for the tenants it has not moved"
                    ));
                };
                wave.accepted_failures = failures.saturating_sub(wave.allowed_failures);
                wave.status = WaveStatus::Deploying;
                let index = wave.index;
                r.phase = Phase::Running;
                r.halt_reason = None;
                r.settled = false;
                Ok(format!(
                    "resumed after a halt, accepting {failures} failed tenant(s) of wave {index}"
                ))
            }
            Phase::Running => Err("is already running".into()),
            other => Err(format!(
                "is {other}; it cannot be resumed, start a new rollout instead"
            )),
        })
        .await
    }

    pub async fn abort(&self, id: &RolloutId, actor: &str) -> Result<RolloutRecord, RolloutError> {
        self.change(id, actor, |r| match r.phase {
            phase if phase.is_finished() => Err(format!("is already {phase}")),
            _ => {
                r.phase = Phase::Aborted;
                Ok("aborted: no further tenant is started; tenants in flight finish or roll back on their own".into())
            }
        })
        .await
    }

    /// Approves the wave that waits for an approval.
    pub async fn approve(&self, id: &RolloutId, actor: &str) -> Result<RolloutRecord, RolloutError> {
        let who = actor.to_owned();
        self.change(id, actor, move |r| {
            if r.phase.is_finished() {
                return Err(format!("is {}; there is nothing to approve", r.phase));
            }
            let wave = r
                .wave_mut()
                .ok_or_else(|| "has no wave left to approve".to_owned())?;
            let waiting = wave.approval_before
                && wave.approved_by.is_none()
                && matches!(wave.status, WaveStatus::Waiting | WaveStatus::AwaitingApproval);
            if !waiting {
                return Err(format!(
                    "wave {} is {:?} and needs no approval now; approve when `tenantctl rollout status` shows awaiting_approval",
                    wave.index, wave.status
                ));
            }
            wave.approved_by = Some(who.clone());
            Ok(format!("wave {} approved", wave.index))
        })
        .await
    }

    /// Starts the current wave's failed tenants again, and those a breach rolled
    /// back; a halted rollout runs again.
    pub async fn retry(&self, id: &RolloutId, actor: &str) -> Result<RolloutRecord, RolloutError> {
        let record = self.rollouts.load_rollout(id).await?;
        if record.phase.is_finished() {
            return Err(RolloutError::Refused {
                id: id.clone(),
                message: format!(
                    "is {}; start a new rollout to move the tenants it left",
                    record.phase
                ),
            });
        }
        let Some(wave) = record.wave() else {
            return Err(RolloutError::Refused {
                id: id.clone(),
                message: "has no current wave".into(),
            });
        };
        let mut count = 0;
        for member in self.rollouts.members(id, Some(wave.index)).await? {
            let rolled_back = member.rollback.is_some() && member.outcome == Outcome::Succeeded;
            if matches!(member.outcome, Outcome::Failed { .. }) || rolled_back {
                let mut again = member.clone();
                again.outcome = Outcome::Pending;
                again.rollback = None;
                again.finished_at = None;
                self.rollouts.save_member(id, &again).await?;
                count += 1;
            }
        }
        if count == 0 {
            return Err(RolloutError::Refused {
                id: id.clone(),
                message: format!("wave {} has no failed or rolled-back tenant to retry", wave.index),
            });
        }
        self.change(id, actor, move |r| {
            if r.phase == Phase::Halted {
                r.phase = Phase::Running;
                r.halt_reason = None;
                r.settled = false;
                if let Some(w) = r.wave_mut() {
                    w.status = WaveStatus::Deploying;
                }
            }
            Ok(format!("retrying {count} failed or rolled-back tenant(s)"))
        })
        .await
    }

    /// The freezes that hold any of `tenants` at `now`. Refused as `Frozen` when there
    /// are some and no override is given; with one, their ids (to record as overridden).
    async fn freezes_in_the_way(
        &self,
        id: &RolloutId,
        tenants: &[TenantId],
        now: DateTime<Utc>,
        override_freeze: Option<&str>,
    ) -> Result<Vec<String>, RolloutError> {
        let freezes: Vec<Freeze> = (self.rollouts.list_freezes().await?.into_iter())
            .filter(|f| f.from <= now && now < f.until)
            .collect();
        if freezes.is_empty() {
            return Ok(Vec::new());
        }
        let mut holds: Vec<(TenantId, String, Vec<String>)> = Vec::new();
        for tenant in tenants {
            let record = match self.tenants.load(tenant).await {
                Ok(r) => r,
                Err(StoreError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let (env, region) = (&record.spec.environment, &record.spec.region);
            if let Some(hold) = frozen_by(&freezes, env, region, now) {
                let ids = (freezes.iter())
                    .filter(|f| f.environment == *env && f.region.as_ref().is_none_or(|r| r == region))
                    .map(|f| f.id.clone())
                    .collect();
                holds.push((tenant.clone(), hold.to_string(), ids));
            }
        }
        let Some((first, why, _)) = holds.first() else {
            return Ok(Vec::new());
        };
        if override_freeze.is_none() {
            return Err(RolloutError::Frozen {
                id: id.clone(),
                message: format!(
                    "{} of its tenants are frozen (first {first}: {why}); wait until the freeze ends, \
                     schedule the start after it (--at, `start_at` in the API), or, as an admin, override it with \
                     a reason (--override-freeze \"why\", `override_freeze` in the API)",
                    holds.len()
                ),
            });
        }
        let mut ids: Vec<String> = holds.into_iter().flat_map(|(_, _, ids)| ids).collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    async fn current_failures(&self, id: &RolloutId) -> Result<usize, RolloutError> {
        let record = self.rollouts.load_rollout(id).await?;
        let Some(wave) = record.wave() else { return Ok(0) };
        Ok(self
            .rollouts
            .members(id, Some(wave.index))
            .await?
            .iter()
            .filter(|m| matches!(m.outcome, Outcome::Failed { .. }))
            .count())
    }

    /// Applies `change` to the stored record and saves it, recording `actor`.
    async fn change(
        &self,
        id: &RolloutId,
        actor: &str,
        change: impl Fn(&mut RolloutRecord) -> Result<String, String>,
    ) -> Result<RolloutRecord, RolloutError> {
        let mut attempt = 0;
        loop {
            let mut record = self.rollouts.load_rollout(id).await?;
            let what = change(&mut record).map_err(|message| RolloutError::Refused {
                id: id.clone(),
                message,
            })?;
            record.log(Utc::now(), actor, what);
            match self.rollouts.save_rollout(&record, WriteGuard::Version).await {
                Err(StoreError::Conflict { .. }) if attempt < CONFLICT_RETRIES => attempt += 1,
                other => {
                    let saved = other?;
                    self.wake_controller();
                    return Ok(saved);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_skipping(held: &[(&str, &str)]) -> Plan {
        Plan {
            target: "release 1.4.2".into(),
            release: None,
            planned_at: chrono::Utc::now(),
            region_order: vec![],
            waves: vec![],
            skipped: (held.iter())
                .map(|(id, rollout)| Skipped {
                    id: TenantId::parse(id).unwrap(),
                    reason: SkipReason::HeldByRollout {
                        rollout: RolloutId::parse(rollout).unwrap(),
                    },
                })
                .collect(),
            not_selected: 0,
            assumed_tenant_duration: std::time::Duration::from_secs(60),
            estimated_end: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_rollout_of_held_tenants_only_is_refused_in_words_that_count_them() {
        assert_eq!(
            all_held(&plan_skipping(&[("acme", "r-first")])).unwrap(),
            "none of its tenants can move: 1 of those it selects is held by running rollout r-first; \
             wait for it to finish (or abort it), then start this rollout again"
        );
        let two = all_held(&plan_skipping(&[("acme", "r-first"), ("beta", "r-second")])).unwrap();
        assert!(
            two.starts_with("none of its tenants can move: 2 of those it selects are held by running rollouts r-first, r-second; wait for them to finish (or abort them)"),
            "{two}"
        );
        assert_eq!(all_held(&plan_skipping(&[])), None);
    }
}
