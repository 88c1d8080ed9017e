//! The application layer: the use cases operators and pipelines ask for, whichever
//! door they come through. `api/` (HTTP) and `cli/` (the binary) call only this layer
//! and `domain`; this layer decides (policy lookup, rollout holds, building
//! transitions, registries) and reaches the store through the traits of
//! [`crate::ports`].
//!
//! - [`App`] is one deployment's services over one state table: tenant commands,
//!   rollout commands, and the store's reads behind [`Backend`].
//! - [`TenantService`] is the tenant use cases as one interface with two
//!   implementations: [`LocalTenants`] over the table, and the CLI's `--server` client
//!   over the HTTP API. Both answer with the typed [`views`].
//!
//! This layer may use `domain`, `machine`, `record`, `ports`, `rollout` and `store`
//! (only to build the DynamoDB implementation of the ports).

pub mod catalog;
pub mod drift;
pub mod events;
pub mod intake;
pub mod previews;
pub mod promotions;
pub mod rollouts;
mod service;
pub mod tenants;
pub mod views;

use std::sync::Arc;

use crate::ports::{
    AuditStore, CertificateSlotStore, DriftChecker, DriftStore, IdempotencyStore, PlatformArtifacts,
    PolicyStore, PromotionStore, ReleaseRegistry, ReportStore, RolloutStore, SessionStore, StoreError,
    TenantReads, TenantStore,
};
use crate::store::DynamoStore;

pub use crate::store::check::FleetCheck;
pub use crate::store::table::{TableError, TableOutcome};
pub use crate::store::ClaimBackfill;
pub use catalog::{Catalog, CatalogCommands, CatalogError, CatalogPlan};
pub use drift::{
    DriftCommands, DriftError, DriftView, DriftedPage, SweepPass, SweepQueue, SweepRate, SWEEP_RELIST,
};
pub use events::{EventCommands, EventError, MAX_EVENTS_LISTED};
pub use intake::{IntakeConfig, IntakeError, IntakeReply, StripeIntake};
pub use previews::{GroupPreview, PlanPreview};
pub use promotions::{PromotionCommands, PromotionError, RuleRequest};
pub use rollouts::{RolloutCommands, RolloutError, StartOptions, Started, LONGEST_SCHEDULE_DAYS};
pub use service::{LocalTenants, TenantService};
pub use tenants::{CommandError, Overrides, RolloutHold, SpecChange, TenantCommands};

/// Every kind of stored item, as one handle: what the services and the API's reads
/// are built on. The DynamoDB store is the one implementation in the product.
pub trait Backend:
    TenantStore
    + TenantReads
    + RolloutStore
    + PolicyStore
    + ReportStore
    + IdempotencyStore
    + SessionStore
    + CertificateSlotStore
    + DriftStore
    + PromotionStore
    + AuditStore
{
}

impl<T> Backend for T where
    T: TenantStore
        + TenantReads
        + RolloutStore
        + PolicyStore
        + ReportStore
        + IdempotencyStore
        + SessionStore
        + CertificateSlotStore
        + DriftStore
        + PromotionStore
        + AuditStore
{
}

/// One deployment's services over its state table.
#[derive(Clone)]
pub struct App {
    table: Arc<DynamoStore>,
    backend: Arc<dyn Backend>,
    tenants: TenantCommands,
    rollouts: RolloutCommands,
    drift: DriftCommands,
}

impl From<Arc<DynamoStore>> for App {
    fn from(table: Arc<DynamoStore>) -> Self {
        App::new(table)
    }
}

impl App {
    /// The services over `table`: tenant commands respect rollout holds and name a new
    /// tenant's release from the version policy.
    pub fn new(table: Arc<DynamoStore>) -> Self {
        let tenants: Arc<dyn TenantStore> = table.clone();
        Self {
            tenants: TenantCommands::new(tenants.clone())
                .with_rollout_holds(table.clone())
                .with_policy(table.clone()),
            rollouts: RolloutCommands::new(tenants.clone(), table.clone()).with_drift(table.clone()),
            drift: DriftCommands::new(tenants, table.clone()),
            backend: table.clone(),
            table,
        }
    }

    /// The services over the state table `table`, with AWS configuration and
    /// credentials from the standard environment.
    pub async fn connect(table: &str) -> Self {
        let config = aws_config::load_from_env().await;
        Self::new(Arc::new(DynamoStore::new(crate::store::client(&config), table)))
    }

    /// Rollouts, new tenants and upgrades are refused when their release has no
    /// image in `registry`.
    pub fn with_release_registry(mut self, registry: Arc<dyn ReleaseRegistry>) -> Self {
        self.tenants = self.tenants.with_registry(registry.clone());
        self.rollouts = self.rollouts.with_registry(registry);
        self
    }

    /// Platform versions named for tenants, in the policy or by rollouts are checked
    /// against those published in `platforms`. Without it, tenants and the policy
    /// refuse to name one (no worker could fetch it).
    pub fn with_platform_artifacts(mut self, platforms: Arc<dyn PlatformArtifacts>) -> Self {
        self.tenants = self.tenants.with_platforms(platforms.clone());
        self.rollouts = self.rollouts.with_platforms(platforms);
        self
    }

    /// Rollouts preview their stack changes with `previewer` and refuse to replace
    /// or remove a tenant's data unless their spec allows it.
    pub fn with_change_preview(mut self, previewer: Arc<dyn crate::ports::ChangePreview>) -> Self {
        self.rollouts = self.rollouts.with_preview(previewer);
        self
    }

    /// Rollout commands wake `changed` once they changed a rollout, for the controller
    /// running in the same process (`tenantctl serve`).
    pub fn with_rollout_wakeup(mut self, changed: crate::ports::Wakeup) -> Self {
        self.rollouts = self.rollouts.with_wakeup(changed);
        self
    }

    /// Drift checks run through `checker` (the steps' view of AWS and Helm).
    pub fn with_drift_checker(mut self, checker: Arc<dyn DriftChecker>) -> Self {
        self.drift = self.drift.with_checker(checker);
        self
    }

    pub fn drift(&self) -> &DriftCommands {
        &self.drift
    }

    /// The outbox's use cases: listing events and redelivering them.
    pub fn events(&self) -> EventCommands {
        EventCommands::new(self.table.clone())
    }

    /// Subscription intake from Stripe under the mapping `config`, through the same
    /// tenant commands.
    pub fn stripe_intake(&self, config: IntakeConfig) -> StripeIntake {
        StripeIntake::new(config, self.tenants.clone(), self.table.clone())
    }

    /// The outbox itself, for building dispatchers.
    pub fn outbox(&self) -> Arc<dyn crate::ports::OutboxStore> {
        self.table.clone()
    }

    pub fn tenants(&self) -> &TenantCommands {
        &self.tenants
    }

    /// The catalog's plan and apply, through the same tenant commands.
    pub fn catalog(&self) -> CatalogCommands {
        CatalogCommands::new(self.tenants.store().clone(), self.tenants.clone())
    }

    pub fn rollouts(&self) -> &RolloutCommands {
        &self.rollouts
    }

    /// Promotion rules and their promotions (without soak checks: the controller's
    /// pass, which has the bake probe, runs those).
    pub fn promotions(&self) -> PromotionCommands {
        PromotionCommands::new(self.table.clone(), self.table.clone(), self.rollouts.clone())
    }

    /// The store's reads and writes, for what has no use case of its own (listings,
    /// reports, sessions, idempotency keys) and for building workers and controllers.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The rate limits on AWS calls, as token buckets in this table, shared by every
    /// process that steps tenants of this deployment.
    pub fn rate_limiter(&self) -> Arc<dyn crate::ports::RateLimiter> {
        Arc::new(crate::store::DynamoRateLimiter::new(self.table.clone()))
    }

    /// The state table's name.
    pub fn table_name(&self) -> &str {
        self.table.table()
    }

    /// Creates the state table if it does not exist (idempotent).
    pub async fn ensure_table(&self) -> Result<TableOutcome, TableError> {
        crate::store::table::ensure_table(self.table.client(), self.table.table()).await
    }

    /// The state table's indexes that lack what this version projects into them.
    pub async fn index_gaps(&self) -> Result<Vec<crate::store::table::IndexGap>, TableError> {
        crate::store::table::index_gaps(self.table.client(), self.table.table()).await
    }

    /// Claims the hostnames of tenants stored before hostname claims existed.
    pub async fn claim_existing_hostnames(&self) -> Result<ClaimBackfill, StoreError> {
        self.table.claim_existing_hostnames().await
    }

    /// Checks the fleet's invariants over the whole table (a scan).
    pub async fn check_fleet(&self) -> Result<FleetCheck, StoreError> {
        self.table.check_fleet().await
    }
}
