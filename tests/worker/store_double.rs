//! `StoreDouble`: a test double wrapping the real DynamoDB store that can add latency
//! to every call (a slow network to DynamoDB for one worker) and hold a worker at a
//! chosen point, so a test can land an operator command exactly there.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tenant_orchestrator::domain::{Hostname, Region, TenantId};
use tenant_orchestrator::record::{HistoryEvent, Lease, TenantRecord, Transition};
use tenant_orchestrator::store::{
    DynamoStore, ListQuery, Page, PassedStep, StoreError, TenantStore, TenantSummary, WriteGuard,
};
use tokio::sync::oneshot;

/// Where the double holds the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldPoint {
    /// After a successful save that left the tenant in this state name, before the
    /// caller sees the answer.
    AfterSaveInto(String),
    /// Before a lease release is sent.
    BeforeRelease,
}

struct Hold {
    point: HoldPoint,
    reached: oneshot::Sender<()>,
    go: oneshot::Receiver<()>,
}

/// Resumes a held caller when sent to (or dropped).
pub struct Held {
    pub reached: oneshot::Receiver<()>,
    pub go: oneshot::Sender<()>,
}

pub struct StoreDouble {
    inner: Arc<DynamoStore>,
    due_queries: std::sync::atomic::AtomicUsize,
    lease_takes: std::sync::atomic::AtomicUsize,
    latency: Mutex<Duration>,
    hold: Mutex<Option<Hold>>,
}

impl StoreDouble {
    pub fn new(inner: Arc<DynamoStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            due_queries: Default::default(),
            lease_takes: Default::default(),
            latency: Mutex::new(Duration::ZERO),
            hold: Mutex::new(None),
        })
    }

    /// How many times callers tried to take a tenant's lease.
    pub fn lease_takes(&self) -> usize {
        self.lease_takes.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many work-index queries (`due`) callers have made.
    pub fn due_queries(&self) -> usize {
        self.due_queries.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Every call waits this long before it reaches DynamoDB.
    pub fn set_latency(&self, latency: Duration) {
        *self.latency.lock().unwrap() = latency;
    }

    /// Holds the next caller that reaches `point` until the returned `go` is sent.
    pub fn hold_at(&self, point: HoldPoint) -> Held {
        let (reached_tx, reached_rx) = oneshot::channel();
        let (go_tx, go_rx) = oneshot::channel();
        *self.hold.lock().unwrap() = Some(Hold {
            point,
            reached: reached_tx,
            go: go_rx,
        });
        Held {
            reached: reached_rx,
            go: go_tx,
        }
    }

    async fn delay(&self) {
        let latency = *self.latency.lock().unwrap();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }

    async fn maybe_hold(&self, at: HoldPoint) {
        let hold = {
            let mut slot = self.hold.lock().unwrap();
            match slot.as_ref() {
                Some(h) if h.point == at => slot.take(),
                _ => None,
            }
        };
        if let Some(hold) = hold {
            let _ = hold.reached.send(());
            let _ = hold.go.await;
        }
    }
}

#[async_trait]
impl TenantStore for StoreDouble {
    async fn create(&self, record: &TenantRecord, first: Transition) -> Result<TenantRecord, StoreError> {
        self.delay().await;
        self.inner.create(record, first).await
    }

    async fn load(&self, id: &TenantId) -> Result<TenantRecord, StoreError> {
        self.delay().await;
        self.inner.load(id).await
    }

    async fn save(
        &self,
        record: &TenantRecord,
        guard: WriteGuard<'_>,
        transition: Option<Transition>,
    ) -> Result<TenantRecord, StoreError> {
        self.delay().await;
        let saved = self.inner.save(record, guard, transition).await?;
        self.maybe_hold(HoldPoint::AfterSaveInto(saved.state.name().to_owned()))
            .await;
        Ok(saved)
    }

    async fn save_steps(
        &self,
        record: &TenantRecord,
        lease: &Lease,
        passed: Vec<PassedStep>,
    ) -> Result<TenantRecord, StoreError> {
        self.delay().await;
        let saved = self.inner.save_steps(record, lease, passed).await?;
        self.maybe_hold(HoldPoint::AfterSaveInto(saved.state.name().to_owned()))
            .await;
        Ok(saved)
    }

    async fn save_spec(
        &self,
        record: &TenantRecord,
        before: &[Hostname],
        transition: Transition,
    ) -> Result<TenantRecord, StoreError> {
        self.delay().await;
        self.inner.save_spec(record, before, transition).await
    }

    async fn acquire_lease(
        &self,
        id: &TenantId,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<TenantRecord, StoreError> {
        (self.lease_takes).fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.delay().await;
        self.inner.acquire_lease(id, owner, ttl, now).await
    }

    async fn renew_lease(
        &self,
        id: &TenantId,
        lease: &Lease,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Lease, StoreError> {
        self.delay().await;
        self.inner.renew_lease(id, lease, ttl, now).await
    }

    async fn release_lease(&self, record: &TenantRecord, lease: &Lease) -> Result<(), StoreError> {
        self.maybe_hold(HoldPoint::BeforeRelease).await;
        self.delay().await;
        self.inner.release_lease(record, lease).await
    }

    async fn history(
        &self,
        id: &TenantId,
        after_seq: u64,
        limit: u32,
    ) -> Result<Page<HistoryEvent>, StoreError> {
        self.delay().await;
        self.inner.history(id, after_seq, limit).await
    }

    async fn list(&self, query: &ListQuery) -> Result<Page<TenantSummary>, StoreError> {
        self.delay().await;
        self.inner.list(query).await
    }

    async fn due(
        &self,
        region: &Region,
        shard: u32,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<TenantId>, StoreError> {
        self.due_queries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.delay().await;
        self.inner.due(region, shard, now, limit).await
    }

    async fn regions(&self) -> Result<Vec<Region>, StoreError> {
        self.delay().await;
        self.inner.regions().await
    }
}
