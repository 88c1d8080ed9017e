//! The HTTP API (`tenantctl serve`): tenants, rollouts, version policy, fleet summary
//! and deployment reports under `/v1`, plus `/healthz`, `/readyz`, `/metrics` and
//! `/openapi.json`. Handlers parse input into domain types, check the caller's scope
//! before acting, and answer errors with one JSON shape ([`ApiError`]).

mod access;
mod audit;
pub mod auth;
mod cache;
mod catalog;
mod dashboard;
mod drift;
mod error;
mod events;
mod extract;
mod fleet;
pub mod freezes;
mod idempotency;
mod intake;
pub mod listen;
pub mod metrics;
pub mod oidc;
pub mod openapi;
mod ops;
mod policy;
mod promotions;
mod rollouts;
mod tenants;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;
use chrono::{DateTime, Utc};

pub use auth::{token_hash, Scope, TokenConfigError, Tokens};
pub use dashboard::OverTls;
pub use error::ApiError;
pub use extract::MAX_BODY_BYTES;

use crate::app::RolloutCommands;
use crate::app::{App, Backend, TenantCommands};
use crate::ports::{FleetSummary, ReleaseRegistry, StoreError};

/// How long `/metrics` reuses the progress of running rollouts.
const ROLLOUT_CACHE: Duration = Duration::from_secs(15);

/// How old `tenantctl serve`'s fleet counts may be unless `--summary-max-age` says.
pub const DEFAULT_SUMMARY_MAX_AGE: Duration = Duration::from_secs(30);

/// What handlers share.
#[derive(Clone)]
pub struct ApiState(Arc<Inner>);

struct Inner {
    app: App,
    tokens: Tokens,
    fleet_cache: cache::Cached<FleetSummary>,
    /// Per restricted principal: its bindings and the counts over its tenants.
    scoped_fleet_cache: RestrictedCounts,
    rollout_cache: cache::Cached<Vec<metrics::RolloutProgress>>,
    stripe_intake: Option<crate::app::StripeIntake>,
    oidc: Option<Arc<oidc::OidcVerifier>>,
    /// How long audit entries are kept (the table's TTL removes them after).
    audit_retention: Duration,
}

impl ApiState {
    /// The API over `app`'s services (an `Arc<DynamoStore>` converts into one). Fleet
    /// counts are read afresh for each request (concurrent requests share a read)
    /// unless [`ApiState::with_summary_max_age`] allows older ones.
    pub fn new(app: impl Into<App>, tokens: Tokens) -> Self {
        metrics::handle();
        Self(Arc::new(Inner {
            app: app.into(),
            tokens,
            fleet_cache: cache::Cached::new(Duration::ZERO),
            scoped_fleet_cache: RestrictedCounts::default(),
            rollout_cache: cache::Cached::new(ROLLOUT_CACHE),
            stripe_intake: None,
            oidc: None,
            audit_retention: crate::ports::DEFAULT_AUDIT_RETENTION,
        }))
    }

    /// The store's reads (listings, reports, sessions, idempotency keys).
    pub fn store(&self) -> &Arc<dyn Backend> {
        self.0.app.backend()
    }

    /// The state table's name, for messages.
    pub(crate) fn table_name(&self) -> &str {
        self.0.app.table_name()
    }

    pub(crate) fn commands(&self) -> &TenantCommands {
        self.0.app.tenants()
    }

    pub(crate) fn events(&self) -> crate::app::EventCommands {
        self.0.app.events()
    }

    pub(crate) fn catalog(&self) -> crate::app::CatalogCommands {
        self.0.app.catalog()
    }

    pub(crate) fn drift(&self) -> &crate::app::DriftCommands {
        self.0.app.drift()
    }

    /// Drift checks (`/v1/tenants/{id}/drift`) run through `checker` (call before the
    /// state is shared); without one they answer 503.
    pub fn with_drift_checker(mut self, checker: Arc<dyn crate::ports::DriftChecker>) -> Self {
        let inner = Arc::get_mut(&mut self.0).expect("configured before it is shared");
        inner.app = inner.app.clone().with_drift_checker(checker);
        self
    }

    pub(crate) fn rollouts(&self) -> &RolloutCommands {
        self.0.app.rollouts()
    }

    pub(crate) fn promotions(&self) -> crate::app::PromotionCommands {
        self.0.app.promotions()
    }

    /// Rollouts, new tenants and upgrades asked for through the API are refused when
    /// their release has no image in `registry` (call before the state is shared).
    pub fn with_release_registry(mut self, registry: Arc<dyn ReleaseRegistry>) -> Self {
        let inner = Arc::get_mut(&mut self.0).expect("configured before it is shared");
        inner.app = inner.app.clone().with_release_registry(registry);
        self
    }

    /// Rollouts are previewed with `previewer` (`/v1/rollouts/plan?diff=true`) and
    /// refused when they would replace or remove a tenant's data unasked (call before
    /// the state is shared).
    pub fn with_change_preview(mut self, previewer: Arc<dyn crate::ports::ChangePreview>) -> Self {
        let inner = Arc::get_mut(&mut self.0).expect("configured before it is shared");
        inner.app = inner.app.clone().with_change_preview(previewer);
        self
    }

    /// Serves `POST /v1/intake/stripe` through `intake` (call before the state is
    /// shared); without it the endpoint answers 404 saying how to enable it.
    pub fn with_stripe_intake(mut self, intake: crate::app::StripeIntake) -> Self {
        let inner = Arc::get_mut(&mut self.0).expect("configured before it is shared");
        inner.stripe_intake = Some(intake);
        self
    }

    pub(crate) fn stripe_intake(&self) -> Option<&crate::app::StripeIntake> {
        self.0.stripe_intake.as_ref()
    }

    /// Fleet counts (`/v1/fleet/summary`, the dashboard, `/metrics`) are reused for
    /// up to `max_age` after the read that took them (call before the state is shared).
    pub fn with_summary_max_age(mut self, max_age: Duration) -> Self {
        let inner = Arc::get_mut(&mut self.0).expect("configured before it is shared");
        inner.fleet_cache = cache::Cached::new(max_age);
        self
    }

    pub(crate) fn tokens(&self) -> &Tokens {
        &self.0.tokens
    }

    /// Bearer tokens that are JWTs are also verified by `verifier` (OpenID Connect;
    /// call before the state is shared).
    pub fn with_oidc(mut self, verifier: Arc<oidc::OidcVerifier>) -> Self {
        let inner = Arc::get_mut(&mut self.0).expect("configured before it is shared");
        inner.oidc = Some(verifier);
        self
    }

    pub(crate) fn oidc(&self) -> Option<&oidc::OidcVerifier> {
        self.0.oidc.as_deref()
    }

    /// Audit entries are kept `retention` (call before the state is shared).
    pub fn with_audit_retention(mut self, retention: Duration) -> Self {
        let inner = Arc::get_mut(&mut self.0).expect("configured before it is shared");
        inner.audit_retention = retention;
        self
    }

    pub(crate) fn audit_retention(&self) -> Duration {
        self.0.audit_retention
    }

    /// Fleet counts and when the read that took them started: one pass over the
    /// fleet per bound of staleness, shared by every request in it.
    async fn fleet_summary(&self) -> Result<(FleetSummary, DateTime<Utc>), StoreError> {
        self.0.fleet_cache.get(|| self.store().fleet_summary()).await
    }

    /// Fleet counts over the tenants `principal` may read: the shared counts for a
    /// principal that may read every tenant; for a restricted one, a pass over the
    /// listing of the regions its read bindings reach (every region when one reaches
    /// all), kept per principal for the same bound of staleness, so the cost is at most
    /// one such pass per restricted principal per bound, however often it asks.
    pub(crate) async fn fleet_summary_for(
        &self,
        principal: &access::Principal<'_>,
    ) -> Result<(FleetSummary, DateTime<Utc>), StoreError> {
        if principal.access.is_unrestricted(Scope::Read) {
            return self.fleet_summary().await;
        }
        let cached = {
            let mut by_name = self.0.scoped_fleet_cache.0.lock().expect("not poisoned");
            let entry = by_name.entry(principal.name.to_owned()).or_insert_with(|| {
                (
                    principal.access.clone(),
                    Arc::new(cache::Cached::new(self.summary_max_age())),
                )
            });
            if &entry.0 != principal.access {
                // Its bindings changed: counts over its former reach no longer apply.
                *entry = (
                    principal.access.clone(),
                    Arc::new(cache::Cached::new(self.summary_max_age())),
                );
            }
            entry.1.clone()
        };
        cached.get(|| fleet::counts_for(self, principal)).await
    }

    /// How old [`ApiState::fleet_summary`]'s counts may be.
    pub(crate) fn summary_max_age(&self) -> Duration {
        self.0.fleet_cache.max_age()
    }

    /// Progress of every running rollout, reused for [`ROLLOUT_CACHE`].
    async fn cached_rollout_progress(&self) -> Result<Vec<metrics::RolloutProgress>, StoreError> {
        let read = || async {
            let mut progress = Vec::new();
            for r in self.store().list_rollouts(true, 100, None).await?.items {
                let record = self.store().load_rollout(&r.id).await?;
                let (counts, _) = dashboard::rollout_outcomes(self.store().as_ref(), &record).await?;
                let mut outcomes = std::collections::BTreeMap::new();
                for (name, count) in counts.values().flat_map(|c| c.named()) {
                    if count > 0 {
                        *outcomes.entry(name.to_owned()).or_insert(0) += count;
                    }
                }
                progress.push(metrics::RolloutProgress {
                    id: r.id.to_string(),
                    release: r.target.clone(),
                    phase: r.phase.to_string(),
                    waves_done: record.current_wave.min(record.waves.len()),
                    waves: record.waves.len(),
                    outcomes,
                });
            }
            Ok(progress)
        };
        Ok(self.0.rollout_cache.get(read).await?.0)
    }
}

/// A restricted principal's bindings and the counts over the tenants they reach.
type PrincipalCounts = (crate::domain::Access, Arc<cache::Cached<FleetSummary>>);

/// Counts over part of the fleet, per restricted principal.
#[derive(Default)]
struct RestrictedCounts(std::sync::Mutex<std::collections::HashMap<String, PrincipalCounts>>);

/// The whole application, ready to serve (tests bind it to port 0).
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/tenants", get(tenants::list).post(tenants::create))
        .route("/v1/tenants/{id}", get(tenants::get).patch(tenants::update))
        .route("/v1/tenants/{id}/history", get(tenants::history))
        .route("/v1/tenants/{id}/drift", get(drift::tenant_drift))
        .route("/v1/tenants/{id}/upgrade", post(tenants::upgrade))
        .route("/v1/tenants/{id}/reconcile", post(tenants::reconcile))
        .route("/v1/tenants/{id}/retry", post(tenants::retry))
        .route("/v1/tenants/{id}/rollback", post(tenants::rollback))
        .route("/v1/tenants/{id}/restore", post(tenants::restore))
        .route("/v1/tenants/{id}/deprovision", post(tenants::deprovision))
        .route("/v1/catalog/plan", post(catalog::plan))
        .route("/v1/catalog/apply", post(catalog::apply))
        .route("/v1/policy", get(policy::get))
        .route(
            "/v1/policy/defaults/{environment}/{region}",
            put(policy::set_default).delete(policy::unset_default),
        )
        .route(
            "/v1/policy/groups/{environment}/{group}",
            put(policy::set_group).delete(policy::unset_group),
        )
        .route("/v1/promotions", get(promotions::list))
        .route(
            "/v1/promotions/{name}",
            get(promotions::get)
                .put(promotions::set)
                .delete(promotions::delete),
        )
        .route("/v1/promotions/{name}/approve", post(promotions::approve))
        .route("/v1/promotions/{name}/cancel", post(promotions::cancel))
        .route("/v1/rollouts", get(rollouts::list).post(rollouts::start))
        .route("/v1/rollouts/plan", post(rollouts::plan))
        .route("/v1/rollouts/{id}", get(rollouts::get))
        .route("/v1/rollouts/{id}/members", get(rollouts::members))
        .route("/v1/rollouts/{id}/skipped", get(rollouts::skipped))
        .route("/v1/rollouts/{id}/pause", post(rollouts::pause))
        .route("/v1/rollouts/{id}/resume", post(rollouts::resume))
        .route("/v1/rollouts/{id}/abort", post(rollouts::abort))
        .route("/v1/rollouts/{id}/approve", post(rollouts::approve))
        .route("/v1/rollouts/{id}/retry", post(rollouts::retry))
        .route("/v1/fleet/summary", get(fleet::summary))
        .route("/v1/fleet/drift", get(drift::fleet_drift))
        .route("/v1/freezes", get(freezes::list).post(freezes::add))
        .route("/v1/freezes/{id}", axum::routing::delete(freezes::remove))
        .route("/v1/events", get(events::list))
        .route("/v1/events/{id}/redeliver", post(events::redeliver))
        .route("/v1/reports/deployments", get(fleet::deployments))
        .route("/v1/audit", get(audit::list))
        .route("/v1/intake/stripe", post(intake::stripe))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .merge(dashboard::routes())
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(state)
}

/// Sets `TCP_NODELAY` on an accepted connection, as every listener of `serve` does: an
/// answer leaves as soon as hyper writes it, instead of waiting behind Nagle's
/// algorithm for the client's delayed ACK of an earlier segment. A socket that refuses
/// the option still serves, only slower.
pub fn no_delay(tcp: &mut tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "setting TCP_NODELAY on a connection failed");
    }
}

/// `/healthz` and `/readyz` alone, for a plain-HTTP health port beside an HTTPS-only
/// API (`serve --https-only --health-listen`).
pub fn health_router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .fallback(ops::not_found)
        .with_state(state)
}

/// A page's `limit`: 1-1000, 100 when not given.
fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(100),
        Some(n @ 1..=1000) => Ok(n),
        Some(n) => Err(ApiError::InvalidRequest(format!(
            "limit {n} is out of range; use 1-1000"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use axum::serve::{Listener, ListenerExt};

    #[tokio::test]
    async fn a_connection_accepted_through_no_delay_sends_without_waiting() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut listener = listener.tap_io(super::no_delay);
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await;
        assert!(
            accepted.nodelay().unwrap(),
            "TCP_NODELAY is set on the accepted socket"
        );
    }
}
