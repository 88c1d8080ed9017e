//! The durable rollout controller. Every replica runs [`Controller::run`]; for each
//! running rollout one of them holds its lease and moves it one step per tick:
//! observe the current wave's tenants, [`decide`], write the result. All state lives
//! in the store, so a controller that dies mid-step leaves nothing half-done that the
//! next lease holder cannot pick up, and its late writes are refused by the fence.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, instrument, warn, Instrument};

use super::decide::{
    bake_check_due, decide, members_to_observe, next_due, start_order, Decision, Drive, Observed, TenantView,
};
use super::target::TenantRevision;
use crate::domain::{RolloutId, TenantId};
use crate::ports::{woken, LeaseHandoff, Relay, RelayDrive, ReservedSlot, TenantHealth, TenantProbe, Wakeup};
use crate::ports::{Conflict, RolloutStore, StoreError, TenantDrive, TenantStore, WriteGuard};
use crate::ports::{PolicyStore, PromotionDriver, PromotionStore};
use crate::record::{
    Actor, BakeCheck, Cause, Lease, Origin, Outcome, Phase, RolloutMember, RolloutRecord, TenantRecord,
    Transition,
};

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Recorded as lease owner.
    pub owner: String,
    /// How long a rollout's lease lasts without renewal; another replica takes the
    /// rollout over this long after its holder dies.
    pub lease_ttl: Duration,
    /// Longest time between passes over the running rollouts; a pass comes sooner
    /// when a rollout this controller holds has something due (`decide::next_due`)
    /// or a worker in its process settles a tenant.
    pub tick: Duration,
    /// Shortest time between the start of one pass and the next when a worker in this
    /// process wakes the controller early (a tenant settled): bounds how often a busy
    /// rollout is re-read.
    pub woken_gap: Duration,
}

impl ControllerConfig {
    pub fn new(owner: impl Into<String>) -> Self {
        Self {
            owner: owner.into(),
            lease_ttl: Duration::from_secs(15),
            tick: Duration::from_secs(2),
            woken_gap: Duration::from_millis(100),
        }
    }
}

pub struct Controller {
    tenants: Arc<dyn TenantStore>,
    rollouts: Arc<dyn RolloutStore>,
    probe: Arc<dyn TenantProbe>,
    config: ControllerConfig,
    /// Advances the version policy when a rollout that asks for it completes.
    policy: Option<Arc<dyn PolicyStore>>,
    /// Records the promotions a completed rollout starts.
    promotions: Option<Arc<dyn PromotionStore>>,
    /// Moves open promotions on after each pass.
    promoter: Option<Arc<dyn PromotionDriver>>,
    /// Woken whenever this controller made tenants due, for the workers in its process.
    due: Option<Wakeup>,
    /// Wakes this controller before its tick when a worker in its process settled a
    /// tenant.
    settled: Option<Wakeup>,
    /// Wakes this controller before its tick when an operator's command in its
    /// process changed a rollout (a start, pause, resume, approval, abort or retry).
    commanded: Option<Wakeup>,
    /// The free slots of the workers in this process: a drive that starts a tenant's
    /// step gives its lease to one of them in the same write, when one has a slot.
    handoffs: Vec<LeaseHandoff>,
    /// Where this controller offers the next tenants of the rollouts it holds to the
    /// workers in its process, to start with the landing of one of their tenants.
    relay: Option<Arc<Relay>>,
}

/// What a controller's pass over the running rollouts leaves: the leases it holds,
/// and when the first of their rollouts next has something due (`decide::next_due`).
#[derive(Debug, Default)]
pub struct Pass {
    pub held: Vec<(RolloutId, Lease)>,
    pub next_due: Option<chrono::DateTime<Utc>>,
}

/// Times the stages of a controller's pass over one rollout it holds, into
/// `tenantctl_controller_pass_seconds{stage}`: `lease` (taking or renewing the lease,
/// which reads the record), `observe` (the wave's members, their tenants, the freezes,
/// a bake check round when one is due, and the decision), `drive` (the tenants started
/// or moved back, and the member changes) and `save` (the record, when it changed). A
/// pass that stops early (another controller holds the rollout, a store error) records
/// the stages it finished.
struct PassTimer {
    since: std::time::Instant,
}

impl PassTimer {
    fn start() -> Self {
        Self {
            since: std::time::Instant::now(),
        }
    }

    fn stage(&mut self, stage: &'static str) {
        let now = std::time::Instant::now();
        metrics::histogram!("tenantctl_controller_pass_seconds", "stage" => stage)
            .record((now - self.since).as_secs_f64());
        self.since = now;
    }
}

/// Tenants one batched read of a wave's tenants asks for (BatchGetItem's limit).
const LOAD_BATCH: usize = 100;
/// Batched tenant reads a controller pass has in flight at once.
const LOAD_REQUESTS_AT_ONCE: usize = 4;
/// Tenants driven at once within one pass.
const DRIVE_PARALLELISM: usize = 16;
/// Attempts at driving a tenant whose transaction met a concurrent one (the drives
/// of a pass share the rollout item they check the lease on) or throttling.
const DRIVE_ATTEMPTS: u32 = 3;

impl Controller {
    pub fn new(
        tenants: Arc<dyn TenantStore>,
        rollouts: Arc<dyn RolloutStore>,
        probe: Arc<dyn TenantProbe>,
        config: ControllerConfig,
    ) -> Self {
        Self {
            tenants,
            rollouts,
            probe,
            config,
            policy: None,
            promotions: None,
            promoter: None,
            due: None,
            settled: None,
            commanded: None,
            handoffs: Vec::new(),
            relay: None,
        }
    }

    /// Offers the next tenants of the rollouts it holds through `relay` after each
    /// pass ([`Relay`]), to the workers in this process that take from it.
    pub fn with_relay(mut self, relay: Arc<Relay>) -> Self {
        self.relay = Some(relay);
        self
    }

    /// Wakes `due` whenever a pass made tenants due, so workers in this process start
    /// them at once; and passes early, at most every `woken_gap`, when `settled` is
    /// woken by a worker that finished a tenant.
    pub fn with_wakeups(mut self, due: Wakeup, settled: Wakeup) -> Self {
        self.due = Some(due);
        self.settled = Some(settled);
        self
    }

    /// Passes early, at most every `woken_gap`, when `commanded` is woken by the
    /// rollout commands of this process ([`crate::app::RolloutCommands::with_wakeup`]):
    /// a started, resumed or approved rollout moves at once instead of at the next tick.
    pub fn with_command_wakeup(mut self, commanded: Wakeup) -> Self {
        self.commanded = Some(commanded);
        self
    }

    /// Gives the tenants this controller starts to the worker behind `handoff` when it
    /// has a free slot: the drive writes the worker's lease and hands it the tenant, so
    /// the step starts without a lease write or a poll. Tenants no worker here has a
    /// slot for are named through the `due` wake-up, or found by polling, as before.
    pub fn with_handoff(mut self, handoff: LeaseHandoff) -> Self {
        self.handoffs.push(handoff);
        self
    }

    /// Completed rollouts with `on_complete.advance_policy` advance this policy.
    pub fn with_policy(mut self, policy: Arc<dyn PolicyStore>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Completed rollouts of an environment a promotion rule promotes from start a
    /// promotion in this store.
    pub fn with_promotions(mut self, promotions: Arc<dyn PromotionStore>) -> Self {
        self.promotions = Some(promotions);
        self
    }

    /// After each pass over the rollouts, `promoter` moves open promotions on.
    pub fn with_promoter(mut self, promoter: Arc<dyn PromotionDriver>) -> Self {
        self.promoter = Some(promoter);
        self
    }

    /// Drives rollouts until `shutdown` turns true, then gives up its leases so
    /// another replica carries on at once.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        info!(owner = %self.config.owner, "rollout controller started");
        let mut held: Vec<(RolloutId, Lease)> = Vec::new();
        let mut settled = self.settled.as_ref().map(Wakeup::listen);
        let mut commanded = self.commanded.as_ref().map(Wakeup::listen);
        loop {
            let pass_started = tokio::time::Instant::now();
            // The next pass comes after a tick, or sooner when a rollout this one
            // holds has something due (`decide::next_due`), though not before the
            // woken gap: a wave starts once the one ahead has baked, not a tick later.
            let mut next_pass = pass_started + self.config.tick;
            match self.run_once().await {
                Ok(pass) => {
                    held = pass.held;
                    if let Some(due) = pass.next_due {
                        let wait = (due - Utc::now()).to_std().unwrap_or_default();
                        let due = tokio::time::Instant::now() + wait;
                        next_pass = next_pass.min(due.max(pass_started + self.config.woken_gap));
                    }
                }
                Err(e) => warn!(error = %e, "rollout controller pass failed; trying again next tick"),
            }
            if let Some(promoter) = &self.promoter {
                if let Err(e) = promoter.step_promotions(Utc::now()).await {
                    warn!(error = %e, "promotion pass failed; trying again next tick");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next_pass) => {}
                _ = async {
                    tokio::select! {
                        _ = woken(&mut settled) => {}
                        _ = woken(&mut commanded) => {
                            // An operator's command (a pause, an abort) stops relayed
                            // starts until the pass that sees it offers again.
                            if let Some(relay) = &self.relay {
                                relay.withdraw_all();
                            }
                        }
                    }
                    tokio::time::sleep_until(pass_started + self.config.woken_gap).await;
                } => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                break;
            }
        }
        for (id, lease) in held {
            if let Err(e) = self.rollouts.release_rollout_lease(&id, &lease).await {
                debug!(rollout = %id, error = %e, "could not release rollout lease");
            }
        }
        info!(owner = %self.config.owner, "rollout controller stopped");
    }

    /// One pass: each running rollout whose lease this controller can take moves one
    /// step. Returns the leases held afterwards, and when the first of their rollouts
    /// has something due.
    pub async fn run_once(&self) -> Result<Pass, StoreError> {
        let mut pass = Pass::default();
        let mut token = None;
        loop {
            let page = self.rollouts.list_rollouts(true, 100, token).await?;
            for summary in &page.items {
                match self.step(&summary.id).await {
                    Ok(Some(record)) => {
                        if let Some(due) = next_due(&record, Utc::now()) {
                            pass.next_due = Some(pass.next_due.map_or(due, |d| d.min(due)));
                        }
                        if let (false, Some(lease)) = (record.phase.is_finished(), record.lease) {
                            pass.held.push((summary.id.clone(), lease));
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        warn!(rollout = %summary.id, error = %e, "rollout step failed; trying again next tick")
                    }
                }
            }
            token = page.next_token;
            if token.is_none() {
                return Ok(pass);
            }
        }
    }

    /// Moves one rollout one step if its lease can be had; `None` when another
    /// controller holds it.
    pub async fn step(&self, id: &RolloutId) -> Result<Option<RolloutRecord>, StoreError> {
        self.step_with(id, Utc::now(), Clock::Live).await
    }

    /// [`Controller::step`] as of `now`, the time its decisions (maintenance windows,
    /// bakes, leases) are made at.
    #[instrument(skip_all, fields(rollout = %id))]
    pub async fn step_at(
        &self,
        id: &RolloutId,
        now: chrono::DateTime<Utc>,
    ) -> Result<Option<RolloutRecord>, StoreError> {
        self.step_with(id, now, Clock::Fixed).await
    }

    async fn step_with(
        &self,
        id: &RolloutId,
        now: chrono::DateTime<Utc>,
        clock: Clock,
    ) -> Result<Option<RolloutRecord>, StoreError> {
        let mut timer = PassTimer::start();
        let record = match self
            .rollouts
            .hold_rollout_lease(id, &self.config.owner, self.config.lease_ttl, now)
            .await
        {
            Ok(record) => record,
            Err(StoreError::Conflict { .. }) => {
                // Another controller holds it: what this one offered is not its to give.
                if let Some(relay) = &self.relay {
                    relay.withdraw(id);
                }
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        timer.stage("lease");
        let lease = record.lease.clone().expect("a lease was just taken");
        if record.phase == Phase::Preparing {
            return self.abort_interrupted_start(&record, &lease, now).await.map(Some);
        }
        if record.phase.is_finished() {
            self.rollouts.release_rollout_lease(id, &lease).await?;
            return Ok(Some(record));
        }
        let (decision, loaded, now) = self.observe_and_decide(&record, now, clock).await?;
        timer.stage("observe");
        let Some(saved_members) = self.carry_out(&record, &lease, &decision, &loaded).await? else {
            if let Some(relay) = &self.relay {
                relay.withdraw(id);
            }
            return Ok(None);
        };
        self.offer_ready(&record, &lease, &decision, &loaded, &saved_members);
        timer.stage("drive");
        let mut next = decision.record;
        if next.phase == Phase::Completed && record.phase != Phase::Completed {
            // Before the completion is saved: a controller that dies in between
            // completes it again, and both follow-ups are idempotent.
            let done = super::completion::follow_up(
                &next,
                self.policy.as_deref(),
                self.promotions.as_deref(),
                self.rollouts.as_ref(),
                now,
            )
            .await?;
            for what in done {
                info!("{what}");
                next.log(now, "controller", what);
            }
        }
        let saved = self.save_decided(&record, &lease, next).await.map(Some);
        timer.stage("save");
        saved
    }

    /// A rollout still `preparing` whose lease came to this controller: its creator's
    /// lease ran out before the members were all written, so it is aborted, and the
    /// lease given up at once so that the same start, run again, can resume it.
    async fn abort_interrupted_start(
        &self,
        record: &RolloutRecord,
        lease: &Lease,
        now: chrono::DateTime<Utc>,
    ) -> Result<RolloutRecord, StoreError> {
        let mut aborted = record.clone();
        aborted.phase = Phase::Aborted;
        aborted.halt_reason = Some(crate::record::INTERRUPTED_START.into());
        aborted.log(now, "controller", "aborted: interrupted while being started");
        aborted.lease = None;
        let saved = (self.rollouts)
            .save_rollout(&aborted, WriteGuard::Lease(lease))
            .await?;
        self.rollouts.release_rollout_lease(&record.id, lease).await?;
        Ok(saved)
    }

    /// Reads the current wave's members and tenants, runs a bake check round if one
    /// is due, and decides.
    /// With a live clock, decides as of the time the loading ended, so a tenant that
    /// finished while the pass was loading counts as finished in it. Returns the time
    /// decided at.
    async fn observe_and_decide(
        &self,
        record: &RolloutRecord,
        now: chrono::DateTime<Utc>,
        clock: Clock,
    ) -> Result<(Decision, Loaded, chrono::DateTime<Utc>), StoreError> {
        let wave_and_tenants = async {
            let mut members = match record.wave() {
                Some(wave) => self.rollouts.members(&record.id, Some(wave.index)).await?,
                None => Vec::new(),
            };
            // Sorted once here; the selection and the decision find it in their order.
            members.sort_by(start_order);
            let loaded = self.observe(record, &members, now).await?;
            Ok::<_, StoreError>((members, loaded))
        };
        // The freezes are read while the wave is, not after it.
        let ((members, mut loaded), freezes) =
            tokio::try_join!(wave_and_tenants, self.rollouts.list_freezes())?;
        let now = match clock {
            // Unless that would make a bake check due that the loading above did not
            // load the baking tenants for: that check waits for the next pass.
            Clock::Live => Some(Utc::now().max(now))
                .filter(|live| bake_check_due(record, *live) == bake_check_due(record, now))
                .unwrap_or(now),
            Clock::Fixed => now,
        };
        let mut observed = Observed {
            now,
            tenants: std::mem::take(&mut loaded.views),
            bake_check: None,
            freezes,
            relaying: (self.relay.as_ref()).map_or_else(Default::default, |r| r.relaying(&record.id)),
        };
        if bake_check_due(record, now) {
            observed.bake_check = Some(self.bake_check(&members, &loaded.records).await);
        }
        Ok((decide(record, &members, &observed), loaded, now))
    }

    /// Offers the tenants the decision found ready to start but for a free slot
    /// through the relay, each as the drive that starts it, its member at the
    /// version this pass left it (`saved_members`); withdraws the rollout's offer
    /// when there is none.
    fn offer_ready(
        &self,
        record: &RolloutRecord,
        lease: &Lease,
        decision: &Decision,
        loaded: &Loaded,
        saved_members: &HashMap<TenantId, u64>,
    ) {
        let Some(relay) = &self.relay else {
            return;
        };
        let shared = Arc::new(record.clone());
        let ready: Vec<RelayDrive> = (decision.ready.iter())
            .filter_map(|drive| {
                let tenant = loaded.records.get(&drive.member.tenant)?;
                let (next, transition) = prepare(record, drive, tenant)?;
                next.state.step()?;
                let mut member = drive.member.clone();
                if let Some(version) = saved_members.get(&member.tenant) {
                    member.version = *version;
                }
                Some(RelayDrive {
                    rollout: shared.clone(),
                    lease: lease.clone(),
                    tenant: next,
                    transition,
                    member,
                    finished_holder: loaded.finished_holders.get(&drive.member.tenant).cloned(),
                })
            })
            .collect();
        relay.offer(&record.id, ready, decision.in_flight.clone());
    }

    /// Drives the decided tenants, `DRIVE_PARALLELISM` at a time, and writes the
    /// member changes; the versions the members were written at. `None` when the
    /// rollout's lease was lost meanwhile: its new holder carries on. Each drive is
    /// its own transaction, fenced by the lease, so drives in flight together are as
    /// safe as drives one after another.
    async fn carry_out(
        &self,
        record: &RolloutRecord,
        lease: &Lease,
        decision: &Decision,
        loaded: &Loaded,
    ) -> Result<Option<HashMap<TenantId, u64>>, StoreError> {
        let shared = Arc::new((record.clone(), lease.clone()));
        let mut failure = None;
        let mut lease_lost = false;
        for chunk in decision.drives.chunks(DRIVE_PARALLELISM) {
            let mut drives = JoinSet::new();
            for drive in chunk {
                let Some(tenant) = loaded.records.get(&drive.member.tenant).cloned() else {
                    continue;
                };
                let finished_holder = loaded.finished_holders.get(&drive.member.tenant).cloned();
                // Only an event can make a step due; `apply` drops the slot otherwise.
                let slot = (drive.event.is_some())
                    .then(|| self.handoffs.iter().find_map(|h| h.reserve(&tenant.spec.region)))
                    .flatten();
                let (rollouts, shared, drive) = (self.rollouts.clone(), shared.clone(), drive.clone());
                drives.spawn(
                    async move {
                        let (record, lease) = &*shared;
                        let tenant_id = drive.member.tenant.clone();
                        let result = apply(
                            rollouts.as_ref(),
                            record,
                            lease,
                            &drive,
                            tenant,
                            finished_holder,
                            slot,
                        )
                        .await;
                        (tenant_id, result)
                    }
                    .instrument(tracing::Span::current()),
                );
            }
            while let Some(joined) = drives.join_next().await {
                let (tenant, result) = joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                match result {
                    // A worker here was handed the tenant with its lease.
                    Ok(Applied::Handed) => {}
                    // The workers beside it start on it while the other drives are
                    // still out: a chunk's drives are answered one after another.
                    Ok(Applied::Written) => {
                        if let (Some(due), Some(driven)) = (&self.due, loaded.records.get(&tenant)) {
                            due.wake_for([(tenant, driven.spec.region.clone())]);
                        }
                    }
                    Err(StoreError::Conflict {
                        detail,
                        kind: Conflict::RolloutLease,
                        ..
                    }) => {
                        warn!(%detail, "lost the rollout lease; leaving it to its new holder");
                        lease_lost = true;
                    }
                    Err(StoreError::Conflict { detail, .. }) => {
                        debug!(%tenant, %detail, "tenant not driven this tick");
                    }
                    Err(e) => {
                        failure.get_or_insert(e);
                    }
                }
            }
            if lease_lost || failure.is_some() {
                break;
            }
        }
        if lease_lost {
            return Ok(None);
        }
        if let Some(e) = failure {
            return Err(e);
        }
        // Each member is its own item: written `DRIVE_PARALLELISM` at a time, not one
        // after another, so a pass that sees many tenants finish is not held up by it.
        let mut versions = HashMap::new();
        for chunk in decision.members.chunks(DRIVE_PARALLELISM) {
            let mut saves = JoinSet::new();
            for member in chunk {
                let (rollouts, id, member) = (self.rollouts.clone(), record.id.clone(), member.clone());
                saves.spawn(async move { rollouts.save_member(&id, &member).await });
            }
            for saved in saves.join_all().await {
                match saved {
                    Ok(saved) => {
                        versions.insert(saved.tenant, saved.version);
                    }
                    Err(StoreError::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(Some(versions))
    }

    /// Saves the decided record when it differs from `before`, logging its new events;
    /// the record as it stands afterwards.
    async fn save_decided(
        &self,
        before: &RolloutRecord,
        lease: &Lease,
        mut next: RolloutRecord,
    ) -> Result<RolloutRecord, StoreError> {
        next.lease = Some(lease.clone());
        if next == *before {
            return Ok(next);
        }
        for event in next
            .events
            .iter()
            .skip(before.events.len().min(next.events.len()))
        {
            info!(phase = %next.phase, "{}", event.what);
        }
        match self.rollouts.save_rollout(&next, WriteGuard::Lease(lease)).await {
            Ok(saved) => Ok(saved),
            // An operator changed it meanwhile; the next tick sees their change.
            Err(StoreError::Conflict { .. }) => Ok(before.clone()),
            Err(e) => Err(e),
        }
    }

    /// Loads the tenants the decision needs: those moving, and those whose turn or
    /// rollback may come (`members_to_observe`).
    async fn observe(
        &self,
        record: &RolloutRecord,
        members: &[RolloutMember],
        now: chrono::DateTime<Utc>,
    ) -> Result<Loaded, StoreError> {
        let wanted = members_to_observe(record, members, now);
        let mut loaded = Loaded::default();
        // Batched reads (100 tenants a request), a few requests at once: a wave of
        // hundreds is a handful of requests per pass, not one per tenant.
        let mut loads = JoinSet::new();
        for chunk in wanted.chunks(LOAD_BATCH) {
            let (store, ids) = (self.tenants.clone(), chunk.to_vec());
            loads.spawn(async move { store.load_many(&ids).await });
            if loads.len() >= LOAD_REQUESTS_AT_ONCE {
                if let Some(done) = loads.join_next().await {
                    collect_loaded(done, &mut loaded)?;
                }
            }
        }
        while let Some(done) = loads.join_next().await {
            collect_loaded(done, &mut loaded)?;
        }
        let tenants = std::mem::take(&mut loaded.records);
        for id in wanted {
            match tenants.get(&id) {
                Some(tenant) => {
                    let view = self.view(record, tenant, &mut loaded).await?;
                    loaded.views.insert(id, Some(view));
                }
                // Deleted since the member was read.
                None => {
                    loaded.views.insert(id, None);
                }
            }
        }
        loaded.records = tenants;
        Ok(loaded)
    }

    async fn view(
        &self,
        record: &RolloutRecord,
        tenant: &TenantRecord,
        loaded: &mut Loaded,
    ) -> Result<TenantView, StoreError> {
        let mut held_by = None;
        if let Some(holder) = tenant.rollout.as_ref().filter(|h| **h != record.id) {
            let phase = match loaded.holder_phases.get(holder) {
                Some(phase) => *phase,
                None => {
                    let phase = match self.rollouts.load_rollout(holder).await {
                        Ok(r) => r.phase,
                        Err(StoreError::NotFound { .. }) => Phase::Aborted,
                        Err(e) => return Err(e),
                    };
                    loaded.holder_phases.insert(holder.clone(), phase);
                    phase
                }
            };
            if phase.is_finished() {
                loaded
                    .finished_holders
                    .insert(tenant.id().clone(), holder.clone());
            } else {
                held_by = Some(holder.clone());
            }
        }
        Ok(TenantView {
            state: tenant.state.clone(),
            environment: tenant.spec.environment.clone(),
            held_by,
            pinned_release: tenant.spec.pinned_release.clone(),
            maintenance: tenant.spec.maintenance.clone(),
            last_error: match &tenant.last_error {
                Some(e) => Some(e.clone()),
                None => self.failure_of_upgrade(record, tenant).await?,
            },
            revision: TenantRevision::of(&tenant.spec, &tenant.facts),
            last_outage_seconds: tenant.facts.last_outage_seconds,
        })
    }

    /// Why the tenant's upgrade to the rollout's release (or the reconcile on its own,
    /// for a rollout that names none) failed, when it has already rolled back (its
    /// record no longer carries the error): the newest error in its recent history.
    async fn failure_of_upgrade(
        &self,
        record: &RolloutRecord,
        tenant: &TenantRecord,
    ) -> Result<Option<String>, StoreError> {
        let failed_here = matches!(
            &tenant.state,
            crate::machine::TenantState::Active { failed_upgrade: Some(f), release }
                if *f == *record.spec.release.as_ref().unwrap_or(release)
        );
        if !failed_here {
            return Ok(None);
        }
        const RECENT: u64 = 20;
        let page = self
            .tenants
            .history(
                tenant.id(),
                tenant.event_seq.saturating_sub(RECENT),
                RECENT as u32,
            )
            .await?;
        Ok(page.items.into_iter().rev().find_map(|e| e.error))
    }

    /// One round of bake checks on the wave's tenants that reached the target, each
    /// checked against the release it runs: every tenant's check with its evidence.
    async fn bake_check(
        &self,
        members: &[RolloutMember],
        tenants: &HashMap<TenantId, TenantRecord>,
    ) -> Vec<BakeCheck> {
        let mut checks = JoinSet::new();
        for m in members.iter().filter(|m| m.outcome == Outcome::Succeeded) {
            let Some(record) = tenants.get(&m.tenant) else {
                continue;
            };
            let Some(release) = record.state.current_release().cloned() else {
                continue;
            };
            let (probe, tenant) = (self.probe.clone(), record.spec.clone());
            checks.spawn(async move {
                (
                    tenant.id.clone(),
                    probe.probe(&tenant, &release).await,
                    Utc::now(),
                )
            });
        }
        let mut seen: Vec<BakeCheck> = checks
            .join_all()
            .await
            .into_iter()
            .map(|(id, health, at)| match health {
                TenantHealth::Healthy { alarms } => BakeCheck::new(id, at, None, alarms),
                TenantHealth::Unhealthy {
                    reported_release,
                    reason,
                    alarms,
                } => {
                    info!(tenant = %id, reported_release = reported_release.as_deref().unwrap_or("none"), %reason, "bake check failed");
                    BakeCheck::new(id, at, Some(reason), alarms)
                }
            })
            .collect();
        seen.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        seen
    }
}

/// What became of a decided drive.
enum Applied {
    /// Written, or left (the tenant could not take the event, or another running
    /// rollout holds it); the workers find what it made due.
    Written,
    /// Written with a worker's lease on the tenant, and handed to that worker.
    Handed,
}

/// Applies a decided tenant event together with the member change; when it makes a
/// step due and `slot` was reserved, the same write gives the tenant's lease to the
/// slot's worker, which is handed the tenant.
async fn apply(
    rollouts: &dyn RolloutStore,
    record: &RolloutRecord,
    lease: &Lease,
    drive: &Drive,
    tenant: TenantRecord,
    finished_holder: Option<RolloutId>,
    slot: Option<ReservedSlot>,
) -> Result<Applied, StoreError> {
    let id = &drive.member.tenant;
    let Some((next, transition)) = prepare(record, drive, &tenant) else {
        return Ok(Applied::Written);
    };
    let cause = transition.describe_cause();
    let slot = slot.filter(|_| next.state.step().is_some());
    let result = drive_with_retries(
        rollouts,
        TenantDrive {
            rollout: record,
            lease,
            tenant: &next,
            transition,
            member: &drive.member,
            finished_holder: finished_holder.as_ref(),
            grant: slot.as_ref().map(ReservedSlot::grant),
        },
    )
    .await;
    match result {
        Ok(stored) => {
            info!(tenant = %id, %cause, handed = slot.is_some(), "tenant driven");
            match slot {
                Some(slot) => {
                    slot.give(stored).await;
                    Ok(Applied::Handed)
                }
                None => Ok(Applied::Written),
            }
        }
        Err(StoreError::Conflict {
            detail,
            kind: Conflict::HeldBy(_),
            ..
        }) => {
            let mut skipped = drive.member.clone();
            skipped.outcome = Outcome::Skipped {
                reason: format!("{detail}, which is still running; abort or finish it first"),
            };
            skipped.rollback = None;
            skipped.attempts = skipped.attempts.saturating_sub(1);
            skipped.finished_at = Some(Utc::now());
            match rollouts.save_member(&record.id, &skipped).await {
                Ok(_) | Err(StoreError::Conflict { .. }) => Ok(Applied::Written),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// The tenant as `drive` leaves it, and the transition that records it; `None` when
/// its machine cannot take the drive's event.
fn prepare(
    record: &RolloutRecord,
    drive: &Drive,
    tenant: &TenantRecord,
) -> Option<(TenantRecord, Transition)> {
    let mut next = tenant.clone();
    let mut changed = Vec::new();
    if let Some(desired) = drive.spec {
        if next.spec.platform != desired.platform {
            next.spec.platform = desired.platform;
            changed.push(match desired.platform {
                Some(v) => format!("platform {v}"),
                None => "platform built-in".into(),
            });
        }
        if next.spec.tier != desired.tier {
            next.spec.tier = desired.tier;
            changed.push(format!("tier {}", desired.tier));
        }
    }
    let cause = match &drive.event {
        Some(event) => {
            let next_state = tenant.state.apply(event).ok()?;
            next.last_error = None;
            next.enter(next_state, Utc::now());
            Cause::Event(event.clone())
        }
        None => {
            next.updated_at = Utc::now();
            Cause::SpecChange(changed)
        }
    };
    let transition = Transition {
        origin: Some(Origin::Rollout(record.id.clone())),
        ..Transition::new(&tenant.state, cause, Actor::rollout(&record.id))
    };
    if next.state.step().is_some() {
        // What the infrastructure step may replace in this operation: what the spec allows.
        next.facts.allow_replacement = record.spec.strategy.allow_replacement.clone();
        next.facts.migration_restore = Some(record.spec.strategy.migration_restore);
    }
    Some((next, transition))
}

/// Drives a tenant, trying again after a short pause when the transaction met a
/// concurrent one or was throttled: its outcome is then known not to be written
/// only if DynamoDB says so, and a drive written already fails its version condition
/// on the next attempt, which the next pass reads as the tenant moving.
/// Adds the tenants one batched read returned to `loaded`.
fn collect_loaded(
    done: Result<Result<Vec<TenantRecord>, StoreError>, tokio::task::JoinError>,
    loaded: &mut Loaded,
) -> Result<(), StoreError> {
    // A read task only ends by returning (never cancelled): a panic in it is this pass's.
    let records = done.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    for tenant in records {
        loaded.records.insert(tenant.id().clone(), tenant);
    }
    Ok(())
}

async fn drive_with_retries(
    rollouts: &dyn RolloutStore,
    drive: TenantDrive<'_>,
) -> Result<TenantRecord, StoreError> {
    let mut attempt = 1;
    loop {
        match rollouts.drive_tenant(drive.clone()).await {
            Err(StoreError::Retryable { .. }) if attempt < DRIVE_ATTEMPTS => {
                let pause = rand::random_range(5..20u64) * u64::from(attempt);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Which time a pass decides at.
#[derive(Debug, Clone, Copy)]
enum Clock {
    /// The time given, whatever the loading took: for stepping through time.
    Fixed,
    /// The time the loading ended.
    Live,
}

#[derive(Default)]
struct Loaded {
    views: HashMap<TenantId, Option<TenantView>>,
    records: HashMap<TenantId, TenantRecord>,
    holder_phases: HashMap<RolloutId, Phase>,
    finished_holders: HashMap<TenantId, RolloutId>,
}
