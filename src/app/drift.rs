//! Drift: check one Active tenant against its desired revision, record the result
//! beside the tenant (and, when it changes, in the tenant's history), list the
//! fleet's drifted tenants, and sweep the fleet at a bounded rate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::domain::TenantId;
use crate::ports::{
    DriftCheckFailed, DriftChecker, DriftStore, DriftSummary, ListQuery, Page, StoreError, TenantStore,
    WriteGuard,
};
use crate::record::{Actor, Cause, DriftCheck, TenantRecord, Transition};

/// Why a drift check did not give a result.
#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    /// Only a settled, Active tenant has one desired revision to compare with.
    #[error(
        "tenant {id} is {label}; drift is checked on Active tenants only, check again once it is Active"
    )]
    NotActive { id: TenantId, label: String },
    /// This process was started without the steps configuration the check needs.
    #[error("drift checks need the steps configuration; start with --steps-config (and --platform-bucket for tenants on a platform version)")]
    NoChecker,
    #[error("checking tenant {id} for drift: {failed}")]
    Check { id: TenantId, failed: DriftCheckFailed },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How fast the sweep checks the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepRate {
    /// A tenant is checked again once its last check is this old.
    pub interval: Duration,
    /// At most this many checks a minute across the fleet; 0 turns the sweep off.
    pub per_minute: u32,
}

/// What one pass of the sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepPass {
    pub checked: usize,
    pub drifted: usize,
    pub failed: usize,
}

/// What the sweep knows of the fleet between listings: the Active tenants due for a
/// check, in the order they are checked, and the last check of every tenant.
#[derive(Debug, Default)]
pub struct SweepQueue {
    listed_at: Option<tokio::time::Instant>,
    due: std::collections::VecDeque<TenantId>,
    summaries: HashMap<TenantId, DriftSummary>,
    active: std::collections::HashSet<TenantId>,
}

/// How often the running sweep lists the fleet again: a tenant that becomes Active
/// or falls due is checked at most this much later than a listing every pass would.
pub const SWEEP_RELIST: Duration = Duration::from_secs(15 * 60);

/// The drift use cases over the tenant and drift stores, with the checker (absent
/// where no steps configuration was given).
#[derive(Clone)]
pub struct DriftCommands {
    tenants: Arc<dyn TenantStore>,
    drift: Arc<dyn DriftStore>,
    checker: Option<Arc<dyn DriftChecker>>,
}

const HISTORY_RETRIES: usize = 5;

impl DriftCommands {
    pub fn new(tenants: Arc<dyn TenantStore>, drift: Arc<dyn DriftStore>) -> Self {
        Self {
            tenants,
            drift,
            checker: None,
        }
    }

    pub fn with_checker(mut self, checker: Arc<dyn DriftChecker>) -> Self {
        self.checker = Some(checker);
        self
    }

    /// Checks tenant `id` now and records the result. A result that differs from the
    /// last one (drift found, gone, or other findings) is added to its history.
    pub async fn check(&self, id: &TenantId, actor: &Actor) -> Result<DriftCheck, DriftError> {
        let record = self.tenants.load(id).await?;
        self.check_record(record, actor).await
    }

    /// [`Self::check`], answered from the tenant's last recorded check when that was
    /// made less than `reuse_within` ago and the tenant has not changed state since:
    /// whoever asks, and however often, one tenant costs at most one live comparison
    /// (its AWS and Helm calls) per `reuse_within`. The answer's `checked_at` says
    /// when it was made.
    pub async fn check_at_most_every(
        &self,
        id: &TenantId,
        actor: &Actor,
        reuse_within: std::time::Duration,
    ) -> Result<DriftCheck, DriftError> {
        let record = self.tenants.load(id).await?;
        if self.checker.is_some() && record.state.name() == "Active" {
            let recent = |check: &DriftCheck| {
                check.checked_at >= record.updated_at
                    && Utc::now() - check.checked_at
                        < chrono::TimeDelta::from_std(reuse_within).unwrap_or_default()
            };
            if let Some(last) = self.drift.last_drift(id).await?.filter(recent) {
                return Ok(last);
            }
        }
        self.check_record(record, actor).await
    }

    async fn check_record(&self, record: TenantRecord, actor: &Actor) -> Result<DriftCheck, DriftError> {
        let checker = self.checker.as_ref().ok_or(DriftError::NoChecker)?;
        if record.state.name() != "Active" {
            return Err(DriftError::NotActive {
                id: record.id().clone(),
                label: record.state.label(),
            });
        }
        let findings = match checker.check(&record).await {
            Ok(findings) => findings,
            Err(failed) => {
                metrics::counter!("tenantctl_drift_checks_total", "result" => "failed").increment(1);
                return Err(DriftError::Check {
                    id: record.id().clone(),
                    failed,
                });
            }
        };
        let check = DriftCheck {
            tenant: record.id().clone(),
            checked_at: Utc::now(),
            findings,
        };
        let result = if check.drifted() { "drifted" } else { "in_sync" };
        metrics::counter!("tenantctl_drift_checks_total", "result" => result).increment(1);
        let previous = self.drift.record_drift(&check).await?;
        let changed = match &previous {
            None => check.drifted(),
            Some(before) => before.findings != check.findings,
        };
        if changed {
            self.record_in_history(record, &check, actor).await?;
        }
        tracing::info!(tenant = %check.tenant, drifted = check.drifted(), changed, summary = %check.summary(), "drift checked");
        Ok(check)
    }

    /// Appends the check to the tenant's history without changing its state: a save
    /// conditional on the version, reloaded and tried again when the tenant moved.
    async fn record_in_history(
        &self,
        mut record: TenantRecord,
        check: &DriftCheck,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        for _ in 0..HISTORY_RETRIES {
            let mut transition =
                Transition::new(&record.state, Cause::DriftCheck(check.summary()), actor.clone());
            let details: Vec<String> = check.findings.iter().map(|f| f.describe()).collect();
            transition.output = (!details.is_empty()).then(|| details.join("; "));
            match self
                .tenants
                .save(&record, WriteGuard::Version, Some(transition))
                .await
            {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. }) => record = self.tenants.load(record.id()).await?,
                Err(other) => return Err(other),
            }
        }
        Err(StoreError::Conflict {
            what: format!("recording the drift check of tenant {}", record.id()),
            detail: "the tenant kept changing; the next check records it".into(),
            kind: crate::ports::Conflict::Version,
        })
    }

    /// The tenant's last recorded check.
    pub async fn last(&self, id: &TenantId) -> Result<Option<DriftCheck>, StoreError> {
        self.drift.last_drift(id).await
    }

    /// One page of the tenants whose last check found drift.
    pub async fn drifted(
        &self,
        limit: u32,
        next_token: Option<&str>,
    ) -> Result<Page<DriftSummary>, StoreError> {
        self.drift.drifted(limit, next_token).await
    }

    /// Checks up to `budget` Active tenants whose last check is older than
    /// `interval` (never-checked first, then the least recently checked), listing the
    /// fleet for this pass alone.
    pub async fn sweep_once(
        &self,
        budget: usize,
        interval: Duration,
        actor: &Actor,
    ) -> Result<SweepPass, StoreError> {
        self.sweep(
            &mut SweepQueue::default(),
            budget,
            interval,
            Duration::ZERO,
            actor,
        )
        .await
    }

    /// Checks up to `budget` tenants from `queue`, listing the fleet into it first
    /// when its listing is older than `relist` (or it has none). Between listings a
    /// pass reads only what its checks read, so an idle fleet costs one listing per
    /// `relist` instead of one per pass; a tenant that becomes Active or due in
    /// between waits for the next listing, and one that left Active since is skipped.
    pub async fn sweep(
        &self,
        queue: &mut SweepQueue,
        budget: usize,
        interval: Duration,
        relist: Duration,
        actor: &Actor,
    ) -> Result<SweepPass, StoreError> {
        if queue.listed_at.is_none_or(|at| at.elapsed() >= relist) {
            *queue = self.list_due(interval).await?;
        }
        let mut pass = SweepPass::default();
        for _ in 0..budget {
            let Some(id) = queue.due.pop_front() else { break };
            match self.check(&id, actor).await {
                Ok(check) => {
                    pass.checked += 1;
                    pass.drifted += usize::from(check.drifted());
                    queue.summaries.insert(
                        id.clone(),
                        DriftSummary {
                            tenant: id,
                            checked_at: check.checked_at,
                            drifted: check.drifted(),
                            summary: check.summary(),
                        },
                    );
                }
                // It moved on since it was listed: checked again once Active.
                Err(DriftError::NotActive { .. }) => {}
                Err(e) => {
                    pass.failed += 1;
                    tracing::warn!(tenant = %id, error = %e, "drift check failed; the sweep tries again later");
                }
            }
        }
        let drifted = queue
            .active
            .iter()
            .filter(|id| queue.summaries.get(*id).is_some_and(|s| s.drifted))
            .count();
        metrics::gauge!("tenantctl_drifted_tenants").set(drifted as f64);
        Ok(pass)
    }

    /// Lists the Active tenants and their last checks, forgets the drift of tenants
    /// that are gone, and orders the ones due (never checked first, then the least
    /// recently checked).
    async fn list_due(&self, interval: Duration) -> Result<SweepQueue, StoreError> {
        let summaries: HashMap<TenantId, DriftSummary> = self
            .drift
            .drift_summaries()
            .await?
            .into_iter()
            .map(|s| (s.tenant.clone(), s))
            .collect();
        let active = self.active_tenants().await?;
        let stale_before = Utc::now() - chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX);
        let mut due: Vec<(Option<chrono::DateTime<Utc>>, TenantId)> = active
            .iter()
            .map(|id| (summaries.get(id).map(|s| s.checked_at), id.clone()))
            .filter(|(at, _)| at.is_none_or(|at| at <= stale_before))
            .collect();
        due.sort();
        self.forget_deleted(&summaries, &active).await?;
        Ok(SweepQueue {
            listed_at: Some(tokio::time::Instant::now()),
            due: due.into_iter().map(|(_, id)| id).collect(),
            summaries,
            active: active.into_iter().collect(),
        })
    }

    /// Drops the recorded drift of tenants that are gone, so the report lists only
    /// tenants that can still be reconciled. Only drifted, non-Active ones are read.
    async fn forget_deleted(
        &self,
        summaries: &HashMap<TenantId, DriftSummary>,
        active: &[TenantId],
    ) -> Result<(), StoreError> {
        for summary in summaries
            .values()
            .filter(|s| s.drifted && !active.contains(&s.tenant))
        {
            let gone = match self.tenants.load(&summary.tenant).await {
                Ok(record) => record.state.is_terminal(),
                Err(StoreError::NotFound { .. }) => true,
                Err(other) => return Err(other),
            };
            if gone {
                self.drift.forget_drift(&summary.tenant).await?;
            }
        }
        Ok(())
    }

    async fn active_tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        let mut ids = Vec::new();
        let mut query = ListQuery {
            state: Some("Active".into()),
            limit: Some(1000),
            ..Default::default()
        };
        loop {
            let page = self.tenants.list(&query).await?;
            ids.extend(page.items.into_iter().map(|t| t.id));
            match page.next_token {
                Some(token) => query.next_token = Some(token),
                None => return Ok(ids),
            }
        }
    }

    /// Sweeps every minute, `rate.per_minute` checks at most, until `stop` turns true.
    pub async fn run_sweep(&self, rate: SweepRate, actor: Actor, mut stop: watch::Receiver<bool>) {
        if rate.per_minute == 0 || self.checker.is_none() {
            return;
        }
        let mut queue = SweepQueue::default();
        loop {
            let started = tokio::time::Instant::now();
            match self
                .sweep(
                    &mut queue,
                    rate.per_minute as usize,
                    rate.interval,
                    SWEEP_RELIST,
                    &actor,
                )
                .await
            {
                Ok(pass) => tracing::info!(
                    checked = pass.checked,
                    drifted = pass.drifted,
                    failed = pass.failed,
                    "drift sweep pass"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "drift sweep could not read the fleet; trying again in a minute")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep_until(started + Duration::from_secs(60)) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

/// One finding of a drift check, as both doors show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DriftFindingView {
    /// `stack`, `stack_parameter`, `stack_template`, `ssm_parameter`, `helm_release`, `helm_values`.
    pub kind: String,
    /// The parameter's name, the value's JSON path, or the stack's name.
    pub name: String,
    /// What the spec and release ask for; `null`: should not exist. Secrets read
    /// `<redacted>`, templates show a digest.
    pub desired: Option<String>,
    /// What is there; `null`: missing.
    pub live: Option<String>,
}

/// A drift check of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DriftView {
    pub tenant: String,
    pub checked_at: chrono::DateTime<Utc>,
    pub drifted: bool,
    pub summary: String,
    pub findings: Vec<DriftFindingView>,
}

impl From<&DriftCheck> for DriftView {
    fn from(check: &DriftCheck) -> Self {
        Self {
            tenant: check.tenant.to_string(),
            checked_at: check.checked_at,
            drifted: check.drifted(),
            summary: check.summary(),
            findings: check
                .findings
                .iter()
                .map(|f| DriftFindingView {
                    kind: f.kind.to_string(),
                    name: f.name.clone(),
                    desired: f.desired.clone(),
                    live: f.live.clone(),
                })
                .collect(),
        }
    }
}

/// A tenant whose last drift check found drift.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DriftedTenant {
    pub tenant: String,
    pub checked_at: chrono::DateTime<Utc>,
    pub summary: String,
}

/// A page of the fleet's drifted tenants, by id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DriftedPage {
    pub items: Vec<DriftedTenant>,
    pub next_token: Option<String>,
}

impl From<Page<DriftSummary>> for DriftedPage {
    fn from(page: Page<DriftSummary>) -> Self {
        Self {
            items: page
                .items
                .into_iter()
                .map(|s| DriftedTenant {
                    tenant: s.tenant.to_string(),
                    checked_at: s.checked_at,
                    summary: s.summary,
                })
                .collect(),
            next_token: page.next_token,
        }
    }
}
