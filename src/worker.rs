//! The worker: finds tenants with a step due, takes each one's lease, runs the step
//! the state names, feeds the outcome to the machine and persists the result. Several
//! workers (threads or processes) can share a table: the lease and conditional writes
//! make sure one tenant has one writer at a time.

mod backoff;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, instrument, warn};

pub use backoff::Backoff;

use crate::domain::{Region, TenantId};
use crate::machine::{StepKind, TenantEvent, TenantState};
use crate::step::{Step, StepContext, StepOutcome, StepRegistry};
use crate::store::{
    Actor, Lease, StoreError, TenantRecord, TenantStore, Transition, WriteGuard, WORK_SHARDS,
};

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Unique name of this worker, recorded as lease owner and in the history.
    pub owner: String,
    /// Regions to serve; `None` serves every region the table knows.
    pub regions: Option<Vec<Region>>,
    /// How long a lease lasts without a heartbeat.
    pub lease_ttl: Duration,
    /// How often a running step renews its lease; at most a third of the TTL, as in
    /// the DynamoDB lock client, so two missed beats still leave the lease valid.
    pub heartbeat: Duration,
    /// Pause between polls of the work index when nothing was due.
    pub poll_interval: Duration,
    /// Tenants processed at once by this worker.
    pub concurrency: usize,
    pub backoff: Backoff,
    /// Longest a step may take across all its attempts and polls before it fails.
    pub step_deadline: Duration,
    /// Longest a single run of a step may take.
    pub call_timeout: Duration,
    /// On shutdown, how long running steps get to finish before they are abandoned
    /// (their lease is released; the step is idempotent and runs again elsewhere).
    pub shutdown_grace: Duration,
}

impl WorkerConfig {
    pub fn new(owner: impl Into<String>) -> Self {
        Self {
            owner: owner.into(),
            regions: None,
            lease_ttl: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            concurrency: 8,
            backoff: Backoff::default(),
            step_deadline: Duration::from_secs(45 * 60),
            call_timeout: Duration::from_secs(10 * 60),
            shutdown_grace: Duration::from_secs(20),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat.is_zero() || self.heartbeat * 3 > self.lease_ttl {
            return Err(format!(
                "heartbeat ({:?}) must be non-zero and at most a third of the lease TTL ({:?}); \
                 raise --lease-ttl or lower --heartbeat",
                self.heartbeat, self.lease_ttl
            ));
        }
        if self.concurrency == 0 {
            return Err("concurrency must be at least 1".into());
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the machine refused the outcome of {step}: {reason}")]
    Machine { step: String, reason: String },
}

/// How processing one tenant ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// Another worker holds it.
    Busy,
    /// No step is due now (settled, or waiting for its due time).
    Idle,
    /// The step is running elsewhere (started work to poll later) or backing off.
    Waiting,
    /// The lease was lost mid-step; nothing was written.
    LeaseLost,
    /// Shutdown came before the step finished; the lease was released.
    Interrupted,
}

#[derive(Clone)]
pub struct Worker {
    store: Arc<dyn TenantStore>,
    steps: StepRegistry,
    config: WorkerConfig,
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn after(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// How a run of a step ended, with the lease as last renewed.
enum RunEnd {
    Outcome(Box<StepOutcome>, Lease),
    LeaseLost,
    Interrupted(Lease),
}

impl Worker {
    pub fn new(store: Arc<dyn TenantStore>, steps: StepRegistry, config: WorkerConfig) -> Self {
        Self { store, steps, config }
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Runs until `shutdown` turns true, then lets running steps finish within the
    /// grace period (each releases its lease) and returns.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) -> Result<(), WorkerError> {
        info!(owner = %self.config.owner, "worker started");
        let mut running: JoinSet<TenantId> = JoinSet::new();
        let mut in_flight: HashSet<TenantId> = HashSet::new();
        while !*shutdown.borrow() {
            while let Some(done) = running.try_join_next() {
                if let Ok(id) = done {
                    in_flight.remove(&id);
                }
            }
            let free = self.config.concurrency.saturating_sub(running.len());
            let mut started = 0;
            if free > 0 {
                let wanted = (free + in_flight.len()) as u32;
                match self.find_due(wanted).await {
                    Ok(due) => {
                        let fresh: Vec<TenantId> = due
                            .into_iter()
                            .filter(|id| !in_flight.contains(id))
                            .take(free)
                            .collect();
                        for id in fresh {
                            in_flight.insert(id.clone());
                            let worker = self.clone();
                            let rx = shutdown.clone();
                            running.spawn(async move {
                                if let Err(e) = worker.process(&id, rx).await {
                                    warn!(tenant = %id, error = %e, "processing failed; the tenant stays due");
                                }
                                id
                            });
                            started += 1;
                        }
                    }
                    Err(e) => warn!(error = %e, "could not read the work index; will retry"),
                }
            }
            if started == 0 {
                tokio::select! {
                    Some(Ok(id)) = running.join_next(), if !running.is_empty() => { in_flight.remove(&id); }
                    _ = tokio::time::sleep(self.config.poll_interval) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        info!(owner = %self.config.owner, running = running.len(), "worker stopping; finishing in-flight work");
        while running.join_next().await.is_some() {}
        info!(owner = %self.config.owner, "worker stopped");
        Ok(())
    }

    /// Tenants with a step due in the regions this worker serves.
    pub async fn find_due(&self, limit: u32) -> Result<Vec<TenantId>, StoreError> {
        let regions = match &self.config.regions {
            Some(r) => r.clone(),
            None => self.store.regions().await?,
        };
        let mut due = Vec::new();
        let now = now();
        for region in &regions {
            for shard in 0..WORK_SHARDS {
                let remaining = limit.saturating_sub(due.len() as u32);
                if remaining == 0 {
                    return Ok(due);
                }
                due.extend(self.store.due(region, shard, now, remaining).await?);
            }
        }
        Ok(due)
    }

    /// Processes every tenant due now, one after another, and returns how many were
    /// due: lets tests and tools step through time without a background loop.
    pub async fn run_once(&self) -> Result<usize, WorkerError> {
        let due = self.find_due(1000).await?;
        let (_tx, rx) = watch::channel(false);
        for id in &due {
            self.process(id, rx.clone()).await?;
        }
        Ok(due.len())
    }

    /// Takes the tenant's lease and runs steps until none is due now.
    #[instrument(skip_all, fields(tenant = %id, worker = %self.config.owner))]
    pub async fn process(
        &self,
        id: &TenantId,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Processed, WorkerError> {
        let mut record = match self
            .store
            .acquire_lease(id, &self.config.owner, self.config.lease_ttl, now())
            .await
        {
            Ok(r) => r,
            Err(StoreError::Conflict { .. }) => return Ok(Processed::Busy),
            Err(e) => return Err(e.into()),
        };
        let mut lease = record
            .lease
            .clone()
            .expect("a freshly acquired lease is on the record");
        debug!(fence = lease.fence, "lease taken");
        loop {
            let Some(step) = record.state.step() else {
                self.release(&record, &lease).await?;
                return Ok(Processed::Idle);
            };
            if record.due_at.is_some_and(|due| due > now()) {
                self.release(&record, &lease).await?;
                return Ok(Processed::Idle);
            }
            if *shutdown.borrow() {
                self.release(&record, &lease).await?;
                return Ok(Processed::Interrupted);
            }
            let Some(implementation) = self.steps.get(step).cloned() else {
                warn!(%step, "no implementation for this step on this worker; retrying later");
                record.due_at = Some(after(now(), self.config.poll_interval * 30));
                record.last_error = Some(format!("worker {} cannot run step {step}", self.config.owner));
                record.lease = None;
                self.save(&record, &lease, None).await?;
                return Ok(Processed::Waiting);
            };
            let started = now();
            let step_started_at = *record.step_started_at.get_or_insert(started);
            let deadline = after(step_started_at, self.config.step_deadline);
            let budget = (deadline - started)
                .to_std()
                .unwrap_or_default()
                .min(self.config.call_timeout);
            info!(%step, attempt = record.attempt, fence = lease.fence, "step started");
            let ctx = StepContext {
                tenant: &record,
                step,
                attempt: record.attempt,
                worker: &self.config.owner,
                fence: lease.fence,
            };
            let outcome = match self
                .run_step(
                    ctx,
                    lease.clone(),
                    implementation.as_ref(),
                    budget,
                    shutdown.clone(),
                )
                .await
            {
                RunEnd::Outcome(outcome, renewed) => {
                    lease = renewed;
                    *outcome
                }
                RunEnd::LeaseLost => {
                    warn!(%step, "lease lost during the step; its result is discarded");
                    return Ok(Processed::LeaseLost);
                }
                RunEnd::Interrupted(renewed) => {
                    info!(%step, "shutdown: step abandoned, lease released");
                    self.release(&record, &renewed).await?;
                    return Ok(Processed::Interrupted);
                }
            };
            let finished = now();
            observe_step_run(step, &outcome, (finished - started).to_std().unwrap_or_default());
            let outcome = self.apply_limits(outcome, step, record.attempt, finished >= deadline);
            let from = record.state.label();
            let transition = |cause: &str, output: Option<String>, error: Option<String>| Transition {
                from: from.clone(),
                cause: cause.to_owned(),
                actor: Actor::worker(&lease.owner, lease.fence).0,
                step: Some(step),
                step_started_at: Some(started),
                fence: Some(lease.fence),
                output,
                error,
            };
            record.lease = Some(lease.clone());
            // Either the machine moves on (a transition, and we keep going with the
            // lease), or the step waits (rescheduled, lease released in the same write).
            let (recorded, keep_going) = match outcome {
                StepOutcome::Done(output) => {
                    let next = self.decide(&record.state, &TenantEvent::StepSucceeded, step)?;
                    info!(%step, to = %next.label(), summary = %output.summary, "step succeeded");
                    record.facts = output.facts;
                    record.last_error = None;
                    record.enter(next, finished);
                    (
                        Some(transition("StepSucceeded", Some(output.summary), None)),
                        true,
                    )
                }
                StepOutcome::Pending {
                    poll_after,
                    facts,
                    note,
                } => {
                    debug!(%step, ?poll_after, %note, "step pending");
                    record.facts = facts;
                    record.due_at = Some(after(finished, poll_after));
                    record.lease = None;
                    (None, false)
                }
                StepOutcome::Failed {
                    retryable: true,
                    reason,
                } => {
                    record.attempt += 1;
                    let delay = self.config.backoff.delay(record.attempt, &mut rand::rng());
                    warn!(%step, attempt = record.attempt, ?delay, %reason, "step failed; will retry");
                    record.last_error = Some(reason);
                    record.due_at = Some(after(finished, delay));
                    record.lease = None;
                    (None, false)
                }
                StepOutcome::Failed {
                    retryable: false,
                    reason,
                } => {
                    let event = TenantEvent::StepFailed {
                        reason: reason.clone(),
                    };
                    let next = self.decide(&record.state, &event, step)?;
                    warn!(%step, to = %next.label(), %reason, "step failed");
                    // A tenant that stops in Failed shows the machine's account, which
                    // names every failure that led there (e.g. the rollback's and the
                    // upgrade's), not only the last step's.
                    record.last_error = Some(match &next {
                        TenantState::Failed { reason: account, .. } => account.clone(),
                        _ => reason.clone(),
                    });
                    record.enter(next, finished);
                    (Some(transition("StepFailed", None, Some(reason))), true)
                }
            };
            match self.save(&record, &lease, recorded).await {
                Ok(_) if !keep_going => return Ok(Processed::Waiting),
                Ok(saved) => record = saved,
                Err(StoreError::Conflict { detail, .. }) => {
                    // Someone (an operator) changed the tenant while the step ran:
                    // decide again from what is stored, if the lease is still ours.
                    info!(%detail, "tenant changed during the step; reloading");
                    record = self.store.load(id).await?;
                    if record.lease.as_ref().map(|l| (&l.owner, l.fence)) != Some((&lease.owner, lease.fence))
                        || !lease.is_live(now())
                    {
                        return Ok(Processed::LeaseLost);
                    }
                    record.lease = Some(lease.clone());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Turns waiting or retrying into a final failure once the step is out of time or
    /// out of attempts.
    fn apply_limits(
        &self,
        outcome: StepOutcome,
        step: StepKind,
        attempt: u32,
        past_deadline: bool,
    ) -> StepOutcome {
        match outcome {
            StepOutcome::Pending { .. } | StepOutcome::Failed { retryable: true, .. } if past_deadline => {
                let why = match &outcome {
                    StepOutcome::Failed { reason, .. } => format!(" (last error: {reason})"),
                    _ => String::new(),
                };
                StepOutcome::fail(format!(
                    "{step} did not finish within its deadline of {}s{why}",
                    self.config.step_deadline.as_secs()
                ))
            }
            StepOutcome::Failed {
                retryable: true,
                reason,
            } if attempt + 1 >= self.config.backoff.max_attempts => {
                StepOutcome::fail(format!("{reason} (gave up after {} attempts)", attempt + 1))
            }
            other => other,
        }
    }

    /// Runs one step while renewing the lease; stops early if the lease is lost or
    /// shutdown's grace period runs out.
    async fn run_step(
        &self,
        ctx: StepContext<'_>,
        mut lease: Lease,
        implementation: &dyn Step,
        budget: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> RunEnd {
        let step = ctx.step;
        let run = tokio::time::timeout(budget, implementation.run(ctx));
        tokio::pin!(run);
        let mut beat = tokio::time::interval(self.config.heartbeat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        beat.tick().await;
        let far = tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
        let mut grace_ends: Option<tokio::time::Instant> = shutdown
            .borrow()
            .then(|| tokio::time::Instant::now() + self.config.shutdown_grace);
        loop {
            tokio::select! {
                result = &mut run => {
                    let outcome = result.unwrap_or_else(|_| {
                        StepOutcome::retry(format!("{step} did not return within {}s", budget.as_secs()))
                    });
                    return RunEnd::Outcome(Box::new(outcome), lease);
                }
                _ = beat.tick() => {
                    match self.store.renew_lease(ctx.tenant.id(), &lease, self.config.lease_ttl, now()).await {
                        Ok(renewed) => lease = renewed,
                        Err(StoreError::Conflict { .. }) => return RunEnd::LeaseLost,
                        Err(e) => {
                            warn!(error = %e, "heartbeat failed");
                            if !lease.is_live(after(now(), self.config.heartbeat)) {
                                return RunEnd::LeaseLost;
                            }
                        }
                    }
                }
                changed = shutdown.changed(), if grace_ends.is_none() => {
                    if changed.is_err() || *shutdown.borrow() {
                        grace_ends = Some(tokio::time::Instant::now() + self.config.shutdown_grace);
                    }
                }
                _ = tokio::time::sleep_until(grace_ends.unwrap_or(far)), if grace_ends.is_some() => {
                    return RunEnd::Interrupted(lease);
                }
            }
        }
    }

    fn decide(
        &self,
        state: &TenantState,
        event: &TenantEvent,
        step: StepKind,
    ) -> Result<TenantState, WorkerError> {
        state.apply(event).map_err(|rejected| WorkerError::Machine {
            step: step.to_string(),
            reason: rejected.to_string(),
        })
    }

    async fn save(
        &self,
        record: &TenantRecord,
        lease: &Lease,
        transition: Option<Transition>,
    ) -> Result<TenantRecord, StoreError> {
        self.store
            .save(record, WriteGuard::Lease(lease), transition)
            .await
    }

    async fn release(&self, record: &TenantRecord, lease: &Lease) -> Result<(), StoreError> {
        match self.store.release_lease(record, lease).await {
            Err(StoreError::Conflict { .. }) | Ok(()) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Records one run of a step for `/metrics` (`tenantctl_step_duration_seconds`).
fn observe_step_run(step: StepKind, outcome: &StepOutcome, took: Duration) {
    let outcome = match outcome {
        StepOutcome::Done(_) => "done",
        StepOutcome::Pending { .. } => "pending",
        StepOutcome::Failed { retryable: true, .. } => "retry",
        StepOutcome::Failed { retryable: false, .. } => "failed",
    };
    metrics::histogram!("tenantctl_step_duration_seconds", "step" => step.name(), "outcome" => outcome)
        .record(took.as_secs_f64());
}
