//! The worker: finds tenants with a step due, takes each one's lease, runs the step
//! the state names, feeds the outcome to the machine and persists the result. Several
//! workers (threads or processes) can share a table: the lease and conditional writes
//! make sure one tenant has one writer at a time.

mod backoff;
mod lease;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, instrument, warn};

pub use backoff::Backoff;
use lease::{after, LeaseKeeper};

use crate::domain::{Region, TenantId};
use crate::machine::{StepKind, TenantEvent, TenantState};
use crate::ports::reports::DeploymentMilestone;
use crate::ports::{
    woken, Handed, HandoffInbox, LeaseGrant, LeaseHandoff, PassedStep, Relay, RelayDrive, Relayed,
    StoreError, TenantDrive, TenantStore, Wakeup, WriteGuard, WORK_SHARDS,
};
use crate::record::{Actor, Cause, Lease, TenantRecord, Transition};
use crate::step::{Step, StepContext, StepOutcome, StepRegistry};

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
    /// Most step outcomes recorded in one write. A step that succeeds and leaves the
    /// tenant's next step due at once is held back and recorded with the steps after
    /// it, in one transaction with a history event each; a full batch is written
    /// beside the step that follows it. 1 writes every step alone, before the next.
    pub steps_per_write: usize,
    /// Longest a finished step's outcome is held back: once it has waited this long
    /// it is written, beside the step running then if need be.
    pub step_write_delay: Duration,
}

/// Most steps one write may record: with a history event and an outbox event each,
/// the tenant's write, a report counter and the hostname claims given up with a
/// deleted tenant, well within a transaction's 100 items.
pub const MAX_STEPS_PER_WRITE: usize = 16;

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
            steps_per_write: MAX_STEPS_PER_WRITE,
            step_write_delay: Duration::from_secs(1),
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
        if !(1..=MAX_STEPS_PER_WRITE).contains(&self.steps_per_write) {
            return Err(format!(
                "steps per write ({}) must be between 1 and {MAX_STEPS_PER_WRITE}; \
                 use 1 to write every step on its own",
                self.steps_per_write
            ));
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
    /// Wakes this worker when a writer in this process made a tenant due.
    due: Option<Wakeup>,
    /// Woken when this worker settles a tenant (no step left), for the rollout
    /// controller in this process.
    settled: Option<Wakeup>,
    /// One permit per tenant processed at once: held by each running tenant, and by
    /// a rollout controller in this process for a tenant it is about to hand over.
    slots: Arc<Semaphore>,
    /// Tenants a rollout controller in this process handed over with their lease.
    inbox: Option<Arc<HandoffInbox>>,
    /// The next tenants the rollout controller in this process offers to start in
    /// the write that lands one of its tenants.
    relay: Option<Arc<Relay>>,
}

/// Work-index shard queries a poll has in flight at once.
const SHARD_QUERIES_AT_ONCE: usize = 8;

/// How long a tenant a poll found due, beyond the slots free then, is kept to fill
/// the next free slot without another poll. Older, it may well have been taken by
/// another worker; taking it then costs one refused lease write, nothing more.
const KNOWN_DUE_MAX_AGE: Duration = Duration::from_secs(2);

/// Tenants a poll found due that no slot was free for yet, oldest first: a slot that
/// frees up takes the next of them instead of polling every shard of the work index
/// again.
struct KnownDue {
    queue: std::collections::VecDeque<(TenantId, std::time::Instant)>,
    max_age: Duration,
}

impl KnownDue {
    fn new(max_age: Duration) -> Self {
        Self {
            queue: Default::default(),
            max_age,
        }
    }

    /// Up to `wanted` tenants found at most `max_age` ago and not in `in_flight`;
    /// older ones are forgotten.
    fn take(&mut self, wanted: usize, in_flight: &HashSet<TenantId>) -> Vec<TenantId> {
        let mut taken = Vec::new();
        while taken.len() < wanted {
            let Some((id, found)) = self.queue.pop_front() else {
                break;
            };
            if found.elapsed() <= self.max_age && !in_flight.contains(&id) && !taken.contains(&id) {
                taken.push(id);
            }
        }
        taken
    }

    /// Puts `ids` (just learnt of) before the tenants kept from the last poll.
    fn push_front(&mut self, ids: Vec<TenantId>) {
        let now = std::time::Instant::now();
        for id in ids.into_iter().rev() {
            self.queue.push_front((id, now));
        }
    }

    /// Keeps `ids`, found due just now, replacing what was kept: a poll sees
    /// everything due, so older entries add nothing.
    fn replace(&mut self, ids: impl IntoIterator<Item = TenantId>) {
        let found = std::time::Instant::now();
        self.queue = ids.into_iter().map(|id| (id, found)).collect();
    }
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

/// The next tenant handed over, or never when this worker takes none.
async fn recv(inbox: &mut Option<mpsc::UnboundedReceiver<Handed>>) -> Option<Handed> {
    match inbox {
        Some(inbox) => inbox.recv().await,
        None => std::future::pending().await,
    }
}

/// How a run of a step ended.
enum RunEnd {
    Outcome(Box<StepOutcome>),
    LeaseLost,
    Interrupted,
}

/// What the worker does next with a tenant whose lease it holds.
enum StepEnd {
    /// The lease is still held: carry on from the tenant as given (the next step, or
    /// a change an operator made meanwhile).
    Continue(Box<TenantRecord>),
    Stop(Processed),
    /// The tenant landed, and the same write started the next tenant of its rollout
    /// with this worker's lease on it ([`Relay`]): run that one next.
    Relayed(Box<TenantRecord>),
}

/// How holding a tenant's lease ended.
enum Held {
    Stopped(Processed),
    /// The tenant landed and its write started this tenant, leased to this worker.
    Relayed(Box<TenantRecord>),
}

/// Outcomes of steps a worker ran under its lease and has not written yet: each a
/// success that left the next step due at once. They are written with the next
/// write the worker makes for the tenant, within `step_write_delay`, or dropped
/// with the lease (the steps are idempotent, and the next holder runs them again).
#[derive(Default)]
struct Unwritten {
    passed: Vec<PassedStep>,
    /// When the first of them finished.
    since: Option<tokio::time::Instant>,
}

impl Unwritten {
    fn is_empty(&self) -> bool {
        self.passed.is_empty()
    }

    fn push(&mut self, step: PassedStep) {
        self.since.get_or_insert_with(tokio::time::Instant::now);
        self.passed.push(step);
    }

    /// All of them, plus `last` if the write records one more transition.
    fn take_with(&mut self, last: Option<PassedStep>) -> Vec<PassedStep> {
        self.since = None;
        let mut passed = std::mem::take(&mut self.passed);
        passed.extend(last);
        passed
    }

    /// Drops them: the lease is gone, or the tenant changed under it.
    fn discard(&mut self, why: &str) {
        if !self.passed.is_empty() {
            info!(
                steps = self.passed.len(),
                "{why}: the unwritten step outcomes are dropped; the steps run again"
            );
        }
        self.take_with(None);
    }
}

impl Worker {
    pub fn new(store: Arc<dyn TenantStore>, steps: StepRegistry, config: WorkerConfig) -> Self {
        Self {
            store,
            steps,
            due: None,
            settled: None,
            slots: Arc::new(Semaphore::new(config.concurrency)),
            inbox: None,
            relay: None,
            config,
        }
    }

    /// Takes the next tenant a rollout in this process offers ([`Relay`]) whenever a
    /// tenant of that rollout lands here: its start is written with the landing, and
    /// it runs at once in the slot the landed tenant leaves.
    pub fn with_relay(mut self, relay: Arc<Relay>) -> Self {
        self.relay = Some(relay);
        self
    }

    /// Offers this worker's free slots to a rollout controller in this process
    /// ([`LeaseHandoff`]): a tenant it starts can come with its lease already this
    /// worker's, handed over as stored, instead of being found and leased here.
    pub fn with_handoff(mut self) -> (Self, LeaseHandoff) {
        let grant = LeaseGrant {
            owner: self.config.owner.clone(),
            ttl: self.config.lease_ttl,
        };
        let (handoff, inbox) = LeaseHandoff::new(
            grant,
            self.config.regions.clone(),
            self.slots.clone(),
            self.store.clone(),
        );
        self.inbox = Some(Arc::new(inbox));
        (self, handoff)
    }

    /// Polls at once, instead of at the next poll, whenever `due` is woken: for the
    /// writers in this process that make tenants due (the rollout controller).
    pub fn with_due_wakeup(mut self, due: Wakeup) -> Self {
        self.due = Some(due);
        self
    }

    /// Wakes `settled` whenever this worker leaves a tenant with no step to run, so
    /// a rollout controller in this process sees the tenant finish at once.
    pub fn with_settled_wakeup(mut self, settled: Wakeup) -> Self {
        self.settled = Some(settled);
        self
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Whether this worker serves tenants of `region`.
    fn serves(&self, region: &Region) -> bool {
        (self.config.regions.as_ref()).is_none_or(|regions| regions.contains(region))
    }

    /// Runs until `shutdown` turns true, then lets running steps finish within the
    /// grace period (each releases its lease) and returns.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) -> Result<(), WorkerError> {
        info!(owner = %self.config.owner, "worker started");
        let mut running: JoinSet<TenantId> = JoinSet::new();
        let mut in_flight: HashSet<TenantId> = HashSet::new();
        let mut due_wakeups = self.due.as_ref().map(Wakeup::listen);
        let mut handed = self.inbox.as_ref().and_then(|inbox| inbox.take());
        let mut known_due = KnownDue::new(KNOWN_DUE_MAX_AGE);
        let mut quiet_until: Option<tokio::time::Instant> = None;
        // Until when the last poll, which found fewer due tenants than it asked for,
        // stands for the whole work index: a slot freeing up before then polls no
        // shard, since what became due since is either named by its writer in this
        // process or found by the next poll a poll interval on, as when no slot frees.
        let mut seen_all_until: Option<tokio::time::Instant> = None;
        // Woken by a writer in this process since the last turn of the loop.
        let mut woken_by_writer = false;
        while !*shutdown.borrow() {
            while let Some(done) = running.try_join_next() {
                if let Ok(id) = done {
                    in_flight.remove(&id);
                    quiet_until = None;
                }
            }
            // Tenants handed over with their lease, each with the slot reserved for it.
            while let Some(tenant) = handed.as_mut().and_then(|inbox| inbox.try_recv().ok()) {
                self.spawn_handed(&mut running, &mut in_flight, tenant, &shutdown);
            }
            let free = self.slots.available_permits();
            // Tenants a writer in this process made due and named: taken before
            // those a poll found. The writer named what it made due, so the work
            // index is not polled again for a poll interval, unless a tenant
            // finishes and frees a slot first.
            let named = (self.due.as_ref()).map_or_else(Vec::new, |due| due.take_named(|r| self.serves(r)));
            if !named.is_empty() {
                quiet_until = Some(tokio::time::Instant::now() + self.config.poll_interval);
            } else if woken_by_writer {
                // A writer made something due without naming it: only a poll finds it.
                seen_all_until = None;
            }
            woken_by_writer = false;
            known_due.push_front(named);
            let mut fresh = known_due.take(free, &in_flight);
            let now = tokio::time::Instant::now();
            let quiet = [quiet_until, seen_all_until]
                .into_iter()
                .flatten()
                .any(|until| now < until);
            if fresh.len() < free && !quiet {
                // Asks for a second round of slots too, kept for the slots that free
                // up next, so a worker busy at its concurrency polls once per round.
                let wanted = (free + in_flight.len() + self.config.concurrency) as u32;
                match self.find_due(wanted).await {
                    Ok(due) => {
                        seen_all_until =
                            (due.len() < wanted as usize).then(|| now + self.config.poll_interval);
                        let mut due: Vec<TenantId> = (due.into_iter())
                            .filter(|id| !in_flight.contains(id) && !fresh.contains(id))
                            .collect();
                        let now_free = free - fresh.len();
                        let later = due.split_off(now_free.min(due.len()));
                        fresh.extend(due);
                        known_due.replace(later);
                    }
                    Err(e) => warn!(error = %e, "could not read the work index; will retry"),
                }
            }
            let mut started = 0;
            let mut fresh = fresh.into_iter();
            while let Some(id) = fresh.next() {
                // A rollout controller here may have reserved a slot since `free` was read.
                let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                    known_due.push_front(std::iter::once(id).chain(fresh).collect());
                    break;
                };
                started += 1;
                in_flight.insert(id.clone());
                let worker = self.clone();
                let rx = shutdown.clone();
                running.spawn(async move {
                    let _slot = slot;
                    if let Err(e) = worker.process(&id, rx).await {
                        warn!(tenant = %id, error = %e, "processing failed; the tenant stays due");
                    }
                    id
                });
            }
            if started == 0 {
                tokio::select! {
                    Some(Ok(id)) = running.join_next(), if !running.is_empty() => {
                        in_flight.remove(&id);
                        quiet_until = None;
                    }
                    Some(tenant) = recv(&mut handed) => {
                        self.spawn_handed(&mut running, &mut in_flight, tenant, &shutdown);
                    }
                    _ = tokio::time::sleep(self.config.poll_interval) => {}
                    _ = woken(&mut due_wakeups) => woken_by_writer = true,
                    _ = shutdown.changed() => {}
                }
            }
        }
        if let Some(mut inbox) = handed {
            // No more tenants are handed over: a controller here reserves no slot, and
            // one handed over meanwhile gets its lease back at once.
            self.slots.close();
            inbox.close();
            while let Ok(Handed { record, .. }) = inbox.try_recv() {
                if let Some(lease) = &record.lease {
                    if let Err(e) = self.store.release_lease(&record, lease).await {
                        debug!(tenant = %record.id(), error = %e, "could not give back a handed-over lease; it runs out");
                    }
                }
            }
        }
        info!(owner = %self.config.owner, running = running.len(), "worker stopping; finishing in-flight work");
        while running.join_next().await.is_some() {}
        info!(owner = %self.config.owner, "worker stopped");
        Ok(())
    }

    /// Runs a tenant handed over with its lease in the slot reserved for it.
    fn spawn_handed(
        &self,
        running: &mut JoinSet<TenantId>,
        in_flight: &mut HashSet<TenantId>,
        handed: Handed,
        shutdown: &watch::Receiver<bool>,
    ) {
        let Handed { record, slot } = handed;
        let id = record.id().clone();
        in_flight.insert(id.clone());
        let worker = self.clone();
        let rx = shutdown.clone();
        running.spawn(async move {
            if let Err(e) = worker.process_handed(record, slot, rx).await {
                warn!(tenant = %id, error = %e, "processing failed; the tenant stays due");
            }
            id
        });
    }

    /// Runs steps on a tenant whose lease was given to this worker with `record`,
    /// until none is due now.
    #[instrument(skip_all, fields(tenant = %record.id(), worker = %self.config.owner))]
    async fn process_handed(
        &self,
        record: TenantRecord,
        _slot: OwnedSemaphorePermit,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Processed, WorkerError> {
        self.hold_relaying(record, shutdown).await
    }

    /// Tenants with a step due in the regions this worker serves, up to `limit`: the
    /// work index's shards are queried a few at a time, in order, so a poll costs a
    /// few round trips rather than one per shard.
    pub async fn find_due(&self, limit: u32) -> Result<Vec<TenantId>, StoreError> {
        let regions = match &self.config.regions {
            Some(r) => r.clone(),
            None => self.store.regions().await?,
        };
        let shards: Vec<(Region, u32)> = (regions.iter())
            .flat_map(|region| (0..WORK_SHARDS).map(move |shard| (region.clone(), shard)))
            .collect();
        let mut due = Vec::new();
        let now = now();
        for batch in shards.chunks(SHARD_QUERIES_AT_ONCE) {
            let remaining = limit.saturating_sub(due.len() as u32);
            if remaining == 0 {
                break;
            }
            let mut queries = JoinSet::new();
            for (i, (region, shard)) in batch.iter().cloned().enumerate() {
                let store = self.store.clone();
                queries.spawn(async move { (i, store.due(&region, shard, now, remaining).await) });
            }
            let mut found: Vec<(usize, Vec<TenantId>)> = Vec::with_capacity(batch.len());
            for (i, result) in queries.join_all().await {
                found.push((i, result?));
            }
            found.sort_by_key(|(i, _)| *i);
            for (_, ids) in found {
                let remaining = limit.saturating_sub(due.len() as u32) as usize;
                due.extend(ids.into_iter().take(remaining));
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
        let Some(record) = self.take_lease(id).await? else {
            return Ok(Processed::Busy);
        };
        self.hold_relaying(record, shutdown).await
    }

    /// Runs steps on a tenant whose lease this worker holds, and then on each tenant
    /// its landing started by relay, until one ends otherwise; how that one ended.
    async fn hold_relaying(
        &self,
        mut record: TenantRecord,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Processed, WorkerError> {
        loop {
            let keeper = self.keep_lease(&record);
            match self.hold(record, &keeper, shutdown.clone()).await? {
                Held::Relayed(next) => {
                    debug!(tenant = %next.id(), "running the tenant its rollout started with the landing");
                    record = *next;
                }
                Held::Stopped(processed) => return Ok(processed),
            }
        }
    }

    /// The tenant with this worker's lease on it, or `None` if another worker holds it.
    async fn take_lease(&self, id: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        match self
            .store
            .acquire_lease(id, &self.config.owner, self.config.lease_ttl, now())
            .await
        {
            Ok(record) => Ok(Some(record)),
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Starts renewing the lease just taken on `record`.
    fn keep_lease(&self, record: &TenantRecord) -> LeaseKeeper {
        let lease = record
            .lease
            .clone()
            .expect("a freshly acquired lease is on the record");
        debug!(fence = lease.fence, "lease taken");
        LeaseKeeper::start(
            self.store.clone(),
            record.id().clone(),
            lease,
            self.config.lease_ttl,
            self.config.heartbeat,
        )
    }

    /// Runs the tenant's steps one after another while `keeper` holds its lease.
    async fn hold(
        &self,
        mut record: TenantRecord,
        keeper: &LeaseKeeper,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Held, WorkerError> {
        let mut unwritten = Unwritten::default();
        loop {
            let Some(lease) = keeper.current().filter(|_| keeper.is_safe(now())) else {
                warn!("lease lost or about to run out between steps; leaving the tenant to its next holder");
                unwritten.discard("lease lost");
                return Ok(Held::Stopped(Processed::LeaseLost));
            };
            let idle = !step_due(&record, now());
            let end = if !unwritten.is_empty() && (idle || *shutdown.borrow()) {
                let ended = if idle {
                    Processed::Waiting
                } else {
                    Processed::Interrupted
                };
                self.write_unwritten_and_release(record, &lease, &mut unwritten, ended)
                    .await?
            } else if idle || *shutdown.borrow() {
                self.give_up_lease(&record, &lease, idle, &shutdown).await?
            } else {
                self.run_due_step(record, &lease, keeper, shutdown.clone(), &mut unwritten)
                    .await?
            };
            match end {
                StepEnd::Continue(next) => record = *next,
                StepEnd::Stop(processed) => return Ok(Held::Stopped(processed)),
                StepEnd::Relayed(next) => return Ok(Held::Relayed(next)),
            }
        }
    }

    /// Gives the lease up because no step is due now (`idle`) or shutdown came.
    /// Giving it up is conditional on the version this decision was made from: an
    /// operator command that landed meanwhile (the lease leaves such writes alone)
    /// is carried on with, not dropped, unless the worker is shutting down.
    async fn give_up_lease(
        &self,
        record: &TenantRecord,
        lease: &Lease,
        idle: bool,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<StepEnd, WorkerError> {
        match self.release(record, lease).await? {
            Release::Changed(fresh) if !*shutdown.borrow() => {
                debug!(state = %fresh.state.label(), "tenant changed before the lease was released; carrying on");
                Ok(StepEnd::Continue(fresh))
            }
            Release::Changed(fresh) => {
                self.release_for_shutdown(*fresh, lease).await?;
                Ok(StepEnd::Stop(Processed::Interrupted))
            }
            Release::Done if idle => Ok(StepEnd::Stop(Processed::Idle)),
            Release::Done => Ok(StepEnd::Stop(Processed::Interrupted)),
        }
    }

    /// Shutdown came, or the next step is not due yet, with step outcomes unwritten:
    /// writes them and gives the lease up in the same write, and ends as `ended`
    /// says. If the tenant changed meanwhile they are dropped and the lease is given
    /// up alone.
    async fn write_unwritten_and_release(
        &self,
        mut record: TenantRecord,
        lease: &Lease,
        unwritten: &mut Unwritten,
        ended: Processed,
    ) -> Result<StepEnd, WorkerError> {
        record.lease = None;
        match self
            .store
            .save_steps(&record, lease, unwritten.take_with(None))
            .await
        {
            Ok(_) => Ok(StepEnd::Stop(ended)),
            Err(StoreError::Conflict { detail, .. }) => {
                info!(%detail, "tenant changed before the unwritten steps were written; they run again");
                let fresh = self.store.load(record.id()).await?;
                if holds(&fresh, lease) {
                    self.release_for_shutdown(fresh, lease).await?;
                }
                Ok(StepEnd::Stop(Processed::Interrupted))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Runs the step the tenant's state names and saves its outcome, or holds the
    /// outcome back to be written with the next step's (`steps_per_write`).
    async fn run_due_step(
        &self,
        mut record: TenantRecord,
        lease: &Lease,
        keeper: &LeaseKeeper,
        shutdown: watch::Receiver<bool>,
        unwritten: &mut Unwritten,
    ) -> Result<StepEnd, WorkerError> {
        let step = record
            .state
            .step()
            .expect("the caller checked that a step is due");
        let Some(implementation) = self.steps.get(step).cloned() else {
            return self.defer_unknown_step(record, lease, step, unwritten).await;
        };
        let started = now();
        let deadline = self.step_deadline(&mut record, started);
        let budget = self.run_budget(deadline, started);
        info!(%step, attempt = record.attempt, fence = lease.fence, "step started");
        let ctx = StepContext {
            tenant: &record,
            step,
            attempt: record.attempt,
            worker: &self.config.owner,
            fence: lease.fence,
        };
        let stopping = shutdown.clone();
        let run = self.run_step(ctx, implementation.as_ref(), budget, keeper, shutdown);
        let (end, written) = self.run_beside_unwritten(run, &record, keeper, unwritten).await;
        match written {
            None => {}
            Some(Ok(saved)) => record = saved,
            Some(Err(StoreError::Conflict { detail, .. })) => {
                return self
                    .reload_after_conflict(record.id(), &detail, lease, keeper)
                    .await;
            }
            Some(Err(e)) => return Err(e.into()),
        }
        let outcome = match end {
            RunEnd::Outcome(outcome) => *outcome,
            RunEnd::LeaseLost => {
                warn!(%step, "lease lost during the step; its result is discarded");
                unwritten.discard("lease lost");
                return Ok(StepEnd::Stop(Processed::LeaseLost));
            }
            RunEnd::Interrupted => return self.abandon_for_shutdown(record, step, keeper, unwritten).await,
        };
        let finished = now();
        observe_step_run(step, &outcome, (finished - started).to_std().unwrap_or_default());
        let outcome = self.apply_limits(outcome, step, record.attempt, finished >= deadline);
        // The lease as renewed while the step ran: the write below must carry it.
        let Some(lease) = keeper.current() else {
            return Ok(StepEnd::Stop(Processed::LeaseLost));
        };
        let run = StepRun {
            step,
            started,
            finished,
            lease: &lease,
        };
        let decided = decide_outcome(&record, outcome, &run, &self.config.backoff)?;
        if self.may_hold_back(&decided, unwritten) {
            let Decided {
                record, transition, ..
            } = decided;
            debug!(%step, to = %record.state.label(), "step outcome held back for the next write");
            unwritten.push(PassedStep {
                transition: transition.expect("a held-back outcome moved the machine"),
                after: record.clone(),
                at: finished,
            });
            return Ok(StepEnd::Continue(Box::new(record)));
        }
        let stopping = *stopping.borrow();
        self.save_decided(decided, finished, &lease, keeper, unwritten, stopping)
            .await
    }

    /// Whether `decided` can wait to be written with the next step's outcome: it
    /// moved the machine to a step due now, under the lease, adds no milestone to the
    /// deployment report (a start, success or failure is written at once), is not
    /// part of a removal (whose last write also gives up each of the tenant's
    /// hostname claims, so the transaction keeps its items for them), and the
    /// outcomes waiting already leave room and time for one more. A batch that is
    /// full is written beside the next step, as soon as it starts.
    fn may_hold_back(&self, decided: &Decided, unwritten: &Unwritten) -> bool {
        let Some(transition) = &decided.transition else {
            return false;
        };
        let waited_long =
            (unwritten.since).is_some_and(|since| since.elapsed() >= self.config.step_write_delay);
        decided.keeps_lease
            && self.config.steps_per_write > 1
            && unwritten.passed.len() < self.config.steps_per_write
            && !waited_long
            && step_due(&decided.record, now())
            && !matches!(decided.record.state, TenantState::Deprovisioning { .. })
            && DeploymentMilestone::of(&transition.from, &decided.record.state, &transition.cause).is_none()
    }

    /// Runs a step while outcomes of earlier ones wait unwritten, and writes those
    /// beside the step once the first has waited `step_write_delay`, so a long step
    /// does not hold them back, or at once when they fill a write (`steps_per_write`),
    /// so the step does not wait for the write of the ones before it. Returns how the
    /// step ended and, if they were written, the tenant as stored then (the state
    /// before this step).
    async fn run_beside_unwritten(
        &self,
        run: impl std::future::Future<Output = RunEnd>,
        record: &TenantRecord,
        keeper: &LeaseKeeper,
        unwritten: &mut Unwritten,
    ) -> (RunEnd, Option<Result<TenantRecord, StoreError>>) {
        let Some(since) = unwritten.since else {
            return (run.await, None);
        };
        let write_at = (unwritten.passed.len() < self.config.steps_per_write)
            .then_some(since + self.config.step_write_delay);
        let started = std::sync::atomic::AtomicBool::new(false);
        let passed = &unwritten.passed;
        let (end, written) = {
            let write = async {
                if let Some(write_at) = write_at {
                    tokio::time::sleep_until(write_at).await;
                }
                started.store(true, std::sync::atomic::Ordering::Relaxed);
                let Some(lease) = keeper.current() else {
                    return Err(StoreError::Conflict {
                        what: format!("writing the steps of tenant {}", record.id()),
                        detail: "the lease was lost".into(),
                        kind: crate::ports::Conflict::Lease,
                    });
                };
                let mut kept = record.clone();
                kept.lease = Some(Lease {
                    expires_at: after(now(), self.config.lease_ttl),
                    ..lease.clone()
                });
                let saved = self.store.save_steps(&kept, &lease, passed.clone()).await?;
                if let Some(extended) = &saved.lease {
                    keeper.extended(extended);
                }
                Ok(saved)
            };
            tokio::pin!(run, write);
            // The write first: when it is due at once, it is sent before the step can
            // end, so a full batch never takes one more outcome.
            tokio::select! {
                biased;
                written = &mut write => (run.await, Some(written)),
                end = &mut run => {
                    // A write already sent is seen through, so its answer is known.
                    let written = if started.load(std::sync::atomic::Ordering::Relaxed) { Some(write.await) } else { None };
                    (end, written)
                }
            }
        };
        if written.is_some() {
            unwritten.take_with(None);
        }
        (end, written)
    }

    /// This worker has no implementation of `step`: gives the lease up and leaves the
    /// tenant due again later, for a worker that has one.
    async fn defer_unknown_step(
        &self,
        mut record: TenantRecord,
        lease: &Lease,
        step: StepKind,
        unwritten: &mut Unwritten,
    ) -> Result<StepEnd, WorkerError> {
        warn!(%step, "no implementation for this step on this worker; retrying later");
        record.due_at = Some(after(now(), self.config.poll_interval * 30));
        record.last_error = Some(format!("worker {} cannot run step {step}", self.config.owner));
        record.lease = None;
        (self.store)
            .save_steps(&record, lease, unwritten.take_with(None))
            .await?;
        Ok(StepEnd::Stop(Processed::Waiting))
    }

    /// When the step must have finished: its deadline counts from the first run of
    /// the step, which `started` becomes if this is it.
    fn step_deadline(&self, record: &mut TenantRecord, started: DateTime<Utc>) -> DateTime<Utc> {
        let first_run = *record.step_started_at.get_or_insert(started);
        after(first_run, self.config.step_deadline)
    }

    /// How long a run starting at `started` may take: up to the step's deadline, and
    /// no longer than one call may.
    fn run_budget(&self, deadline: DateTime<Utc>, started: DateTime<Utc>) -> Duration {
        (deadline - started)
            .to_std()
            .unwrap_or_default()
            .min(self.config.call_timeout)
    }

    /// Shutdown's grace period ran out mid-step: the step is abandoned (it is
    /// idempotent and runs again elsewhere) and the lease released.
    async fn abandon_for_shutdown(
        &self,
        record: TenantRecord,
        step: StepKind,
        keeper: &LeaseKeeper,
        unwritten: &mut Unwritten,
    ) -> Result<StepEnd, WorkerError> {
        info!(%step, "shutdown: step abandoned, lease released");
        let Some(lease) = keeper.current() else {
            unwritten.discard("lease lost");
            return Ok(StepEnd::Stop(Processed::Interrupted));
        };
        if unwritten.is_empty() {
            self.release_for_shutdown(record, &lease).await?;
            return Ok(StepEnd::Stop(Processed::Interrupted));
        }
        self.write_unwritten_and_release(record, &lease, unwritten, Processed::Interrupted)
            .await
    }

    /// Writes what was decided under `lease`: keeps the lease (extended as a renewal
    /// would) when the machine moved on to another step, gives it up in the same
    /// write otherwise.
    async fn save_decided(
        &self,
        decided: Decided,
        finished: DateTime<Utc>,
        lease: &Lease,
        keeper: &LeaseKeeper,
        unwritten: &mut Unwritten,
        stopping: bool,
    ) -> Result<StepEnd, WorkerError> {
        let Decided {
            mut record,
            transition,
            keeps_lease,
        } = decided;
        record.lease = keeps_lease.then(|| Lease {
            expires_at: after(now(), self.config.lease_ttl),
            ..lease.clone()
        });
        let landing = transition.is_some() && !keeps_lease && record.state.step().is_none();
        let offer = landing.then(|| self.relay_offer(&record, stopping)).flatten();
        let mut relayed = None;
        let saved = match (offer, transition) {
            (Some((relay, offered)), Some(transition)) => {
                let last = PassedStep {
                    transition,
                    after: record.clone(),
                    at: finished,
                };
                let passed = unwritten.take_with(Some(last));
                let written = self.land_and_start(&record, lease, passed, &offered).await;
                let started = written.as_ref().is_ok_and(|w| w.next.is_some());
                relay.answered(&offered.rollout.id, offered.tenant.id(), started);
                written.map(|written| {
                    relayed = written.next;
                    written.landed
                })
            }
            (_, transition) if unwritten.is_empty() => self.save(&record, lease, transition).await,
            (_, transition) => {
                let last = transition.map(|transition| PassedStep {
                    transition,
                    after: record.clone(),
                    at: finished,
                });
                (self.store)
                    .save_steps(&record, lease, unwritten.take_with(last))
                    .await
            }
        };
        match saved {
            Ok(saved) if keeps_lease => {
                if let Some(extended) = &saved.lease {
                    keeper.extended(extended);
                }
                Ok(StepEnd::Continue(Box::new(saved)))
            }
            Ok(_) if record.state.step().is_none() => {
                if let Some(settled) = &self.settled {
                    settled.wake();
                }
                match relayed {
                    Some(next) => Ok(StepEnd::Relayed(Box::new(next))),
                    None => Ok(StepEnd::Stop(Processed::Idle)),
                }
            }
            Ok(_) => Ok(StepEnd::Stop(Processed::Waiting)),
            Err(StoreError::Conflict { detail, .. }) => {
                self.reload_after_conflict(record.id(), &detail, lease, keeper)
                    .await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The next tenant the rollout that moved `landed` offers to start in its
    /// place ([`Relay`]), when `landed` reached the rollout's target: an upgrade
    /// that succeeded. A landing that failed withdraws the rollout's offer instead,
    /// so no tenant starts by relay before its controller has counted the failure.
    fn relay_offer(&self, landed: &TenantRecord, stopping: bool) -> Option<(&Relay, RelayDrive)> {
        let relay = self.relay.as_deref()?;
        let rollout = landed.rollout.as_ref()?;
        match &landed.state {
            TenantState::Active {
                failed_upgrade: None, ..
            } if !stopping => relay
                .take(rollout, &landed.spec.region, landed.id())
                .map(|offered| (relay, offered)),
            TenantState::Active {
                failed_upgrade: Some(_),
                ..
            }
            | TenantState::Failed { .. } => {
                relay.withdraw(rollout);
                None
            }
            _ => None,
        }
    }

    /// Writes the landing of `record` with the start of `offered`, the next tenant
    /// of its rollout, whose lease the same write gives to this worker. Each offer
    /// taken is counted in `tenantctl_relayed_starts_total{result}`: `started`, or
    /// `not_started` (the landing written alone), or `failed` (nothing written).
    async fn land_and_start(
        &self,
        record: &TenantRecord,
        lease: &Lease,
        passed: Vec<PassedStep>,
        offered: &RelayDrive,
    ) -> Result<Relayed, StoreError> {
        let grant = LeaseGrant {
            owner: self.config.owner.clone(),
            ttl: self.config.lease_ttl,
        };
        let mut member = offered.member.clone();
        member.started_at = Some(now());
        let drive = TenantDrive {
            rollout: &offered.rollout,
            lease: &offered.lease,
            tenant: &offered.tenant,
            transition: offered.transition.clone(),
            member: &member,
            finished_holder: offered.finished_holder.as_ref(),
            grant: Some(&grant),
        };
        let written = self
            .store
            .save_steps_and_drive(record, lease, passed, drive)
            .await;
        let result = match &written {
            Ok(Relayed { next: Some(_), .. }) => "started",
            Ok(_) => "not_started",
            Err(_) => "failed",
        };
        metrics::counter!("tenantctl_relayed_starts_total", "result" => result).increment(1);
        let written = written?;
        match &written.next {
            Some(next) => {
                info!(next = %next.id(), "landed, and started the next tenant of its rollout in the same write")
            }
            None => {
                debug!(next = %offered.tenant.id(), "landed; the next tenant of its rollout was not started with it")
            }
        }
        Ok(written)
    }

    /// Someone (an operator) changed the tenant while the step ran: decide again from
    /// what is stored, if the lease is still ours.
    async fn reload_after_conflict(
        &self,
        id: &TenantId,
        detail: &str,
        lease: &Lease,
        keeper: &LeaseKeeper,
    ) -> Result<StepEnd, WorkerError> {
        info!(%detail, "tenant changed during the step; reloading");
        let fresh = self.store.load(id).await?;
        if !holds(&fresh, lease) || !keeper.is_safe(now()) {
            return Ok(StepEnd::Stop(Processed::LeaseLost));
        }
        Ok(StepEnd::Continue(Box::new(fresh)))
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

    /// Runs one step; stops early if the lease is lost (or about to run out) or
    /// shutdown's grace period runs out. The lease itself is kept by `keeper`.
    async fn run_step(
        &self,
        ctx: StepContext<'_>,
        implementation: &dyn Step,
        budget: Duration,
        keeper: &LeaseKeeper,
        mut shutdown: watch::Receiver<bool>,
    ) -> RunEnd {
        let step = ctx.step;
        let run = tokio::time::timeout(budget, implementation.run(ctx));
        tokio::pin!(run);
        let lost = keeper.lost();
        tokio::pin!(lost);
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
                    return RunEnd::Outcome(Box::new(outcome));
                }
                _ = &mut lost => return RunEnd::LeaseLost,
                changed = shutdown.changed(), if grace_ends.is_none() => {
                    if changed.is_err() || *shutdown.borrow() {
                        grace_ends = Some(tokio::time::Instant::now() + self.config.shutdown_grace);
                    }
                }
                _ = tokio::time::sleep_until(grace_ends.unwrap_or(far)), if grace_ends.is_some() => {
                    return RunEnd::Interrupted;
                }
            }
        }
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

    /// Gives the lease up, conditional on the tenant being as `record` says. If it
    /// changed meanwhile while the lease is still ours, returns the tenant as it is.
    async fn release(&self, record: &TenantRecord, lease: &Lease) -> Result<Release, StoreError> {
        match self.store.release_lease(record, lease).await {
            Ok(()) => Ok(Release::Done),
            Err(StoreError::Conflict { .. }) => {
                let fresh = self.store.load(record.id()).await?;
                Ok(if holds(&fresh, lease) {
                    Release::Changed(Box::new(fresh))
                } else {
                    // Released already (a retried release whose first answer was
                    // lost), or taken over after expiry: nothing of ours to give up.
                    Release::Done
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up on shutdown, whatever the tenant changed into meanwhile.
    async fn release_for_shutdown(&self, mut record: TenantRecord, lease: &Lease) -> Result<(), StoreError> {
        for _ in 0..5 {
            match self.release(&record, lease).await? {
                Release::Done => return Ok(()),
                Release::Changed(fresh) => record = *fresh,
            }
        }
        // Still changing under us: the lease runs out by itself.
        Ok(())
    }
}

/// How an attempt to give a lease up ended.
enum Release {
    Done,
    Changed(Box<TenantRecord>),
}

/// Whether the tenant's state names a step and its due time has come.
fn step_due(record: &TenantRecord, now: DateTime<Utc>) -> bool {
    record.state.step().is_some() && record.due_at.is_none_or(|due| due <= now)
}

/// Whether `record` still carries `lease` (same owner and fence).
fn holds(record: &TenantRecord, lease: &Lease) -> bool {
    record
        .lease
        .as_ref()
        .is_some_and(|l| l.owner == lease.owner && l.fence == lease.fence)
}

/// What the worker writes after a step ran.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The tenant after the outcome (lease untouched: the caller sets it).
    pub record: TenantRecord,
    /// The transition to record when the machine moved.
    pub transition: Option<Transition>,
    /// The machine moved on to a state with a step: the worker keeps the lease and
    /// runs that step next. Otherwise the lease is given up in the same write.
    pub keeps_lease: bool,
}

/// One run of a step: which, by whom (the lease it ran under) and when.
#[derive(Debug, Clone, Copy)]
pub struct StepRun<'a> {
    pub step: StepKind,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub lease: &'a Lease,
}

impl StepRun<'_> {
    /// The history entry of this run moving the tenant out of `from`.
    fn transition(&self, from: &TenantState, event: TenantEvent) -> Transition {
        Transition {
            step: Some(self.step),
            step_started_at: Some(self.started),
            fence: Some(self.lease.fence),
            ..Transition::new(
                from,
                Cause::Event(event),
                Actor::worker(&self.lease.owner, self.lease.fence),
            )
        }
    }
}

/// Decides, without I/O, what a step's outcome does to the tenant: the machine's
/// next state and the history entry, a poll later, or a retry after backoff.
pub fn decide_outcome(
    record: &TenantRecord,
    outcome: StepOutcome,
    run: &StepRun<'_>,
    backoff: &Backoff,
) -> Result<Decided, WorkerError> {
    let (step, now) = (run.step, run.finished);
    let mut record = record.clone();
    let from = record.state.clone();
    // The attempts this outcome ends, recorded with it when the machine moves.
    let attempts = Some(record.attempt + 1);
    let machine = |state: &TenantState, event: &TenantEvent| {
        state.apply(event).map_err(|rejected| WorkerError::Machine {
            step: step.to_string(),
            reason: rejected.to_string(),
        })
    };
    let transition = match outcome {
        StepOutcome::Done(output) => {
            let next = machine(&record.state, &TenantEvent::StepSucceeded)?;
            info!(%step, to = %next.label(), summary = %output.summary, "step succeeded");
            record.facts = output.facts;
            record.last_error = None;
            record.enter(next, now);
            Some(Transition {
                output: Some(output.summary),
                attempts,
                ..run.transition(&from, TenantEvent::StepSucceeded)
            })
        }
        StepOutcome::Pending {
            poll_after,
            facts,
            note,
        } => {
            debug!(%step, ?poll_after, %note, "step pending");
            record.facts = facts;
            record.due_at = Some(after(now, poll_after));
            None
        }
        StepOutcome::Failed {
            retryable: true,
            reason,
        } => {
            record.attempt += 1;
            let delay = backoff.delay(record.attempt, &mut rand::rng());
            warn!(%step, attempt = record.attempt, ?delay, %reason, "step failed; will retry");
            record.last_error = Some(reason);
            record.due_at = Some(after(now, delay));
            None
        }
        StepOutcome::Failed {
            retryable: false,
            reason,
        } => {
            let next = machine(
                &record.state,
                &TenantEvent::StepFailed {
                    reason: reason.clone(),
                },
            )?;
            warn!(%step, to = %next.label(), %reason, "step failed");
            // A tenant that stops in Failed shows the machine's account, which
            // names every failure that led there (e.g. the rollback's and the
            // upgrade's), not only the last step's.
            record.last_error = Some(match &next {
                TenantState::Failed { reason: account, .. } => account.clone(),
                _ => reason.clone(),
            });
            record.enter(next, now);
            Some(Transition {
                error: Some(reason.clone()),
                attempts,
                ..run.transition(&from, TenantEvent::StepFailed { reason })
            })
        }
    };
    let keeps_lease = transition.is_some() && record.state.step().is_some();
    Ok(Decided {
        record,
        transition,
        keeps_lease,
    })
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
