//! Subscription intake: Stripe's `customer.subscription.*` webhooks become tenant
//! commands. A delivery is verified ([`signature`]) on its raw body before anything
//! reads it, mapped to an [`Intent`] by the mapping file ([`config`], [`event`]),
//! claimed by its event id so a replay changes nothing, then carried out through the
//! same [`TenantCommands`] an operator uses, as actor `stripe:<event id>`.
//!
//! The claim comes first, is completed once the change is made, and is given back when
//! the change fails, so Stripe's retry acts again. A claim whose process died before it
//! completed (a crash between the claim and the change) is taken over by a retry once
//! it is [`CLAIM_TAKEOVER`] old; a retry before then is answered 409 `in_progress`, which
//! Stripe retries later. A delivery that cannot be mapped (an unknown price, bad
//! metadata) is refused before the claim, so a retry after the fix acts.

pub mod config;
pub mod event;
pub mod signature;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use config::{EndpointSecret, IntakeConfig, IntakeConfigError};
pub use event::{Intent, MappingError, StripeEvent};
pub use signature::SignatureError;

use super::tenants::{CommandError, RolloutHold, SpecChange, TenantCommands};
use crate::domain::{TenantId, TenantSpec};
use crate::machine::TenantEvent;
use crate::ports::{Claim, IntakeStore, ScheduledDeprovision, StoreError, WriteGuard};
use crate::record::{Actor, Cause, TenantRecord, Transition};

/// How long past the signature tolerance a delivery's id is kept: well beyond any
/// retry Stripe makes of a delivery it still considers fresh.
const DELIVERY_RETENTION: chrono::Duration = chrono::Duration::days(3);
/// How old an uncompleted claim must be before a retry takes it over: longer than any
/// change takes (a few table writes), shorter than Stripe's first retry.
pub const CLAIM_TAKEOVER: Duration = Duration::from_secs(60);
const HISTORY_RETRIES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error("tenant {tenant} belongs to environment {actual}, not {expected} (this intake's); fix the subscription's metadata")]
    OtherEnvironment {
        tenant: TenantId,
        actual: String,
        expected: String,
    },
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("Stripe event {0} is being handled by another request; retry in a minute (Stripe does)")]
    InProgress(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the intake did with a delivery, as answered to Stripe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct IntakeReply {
    /// `created`, `tier_changed`, `unchanged`, `deprovision_scheduled`, `ignored` or
    /// `duplicate` (a replay of a delivery already acted on: nothing changed).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// When a scheduled deprovision falls due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deprovision_at: Option<DateTime<Utc>>,
    /// For people reading Stripe's delivery log.
    pub message: String,
}

impl IntakeReply {
    fn new(status: &'static str, tenant: Option<&TenantId>, message: String) -> Self {
        Self {
            status,
            tenant: tenant.map(|t| t.to_string()),
            deprovision_at: None,
            message,
        }
    }
}

/// The Stripe intake of one deployment.
#[derive(Clone)]
pub struct StripeIntake {
    config: Arc<IntakeConfig>,
    tenants: TenantCommands,
    store: Arc<dyn IntakeStore>,
}

impl StripeIntake {
    pub fn new(config: IntakeConfig, tenants: TenantCommands, store: Arc<dyn IntakeStore>) -> Self {
        Self {
            config: Arc::new(config),
            tenants,
            store,
        }
    }

    pub fn config(&self) -> &IntakeConfig {
        &self.config
    }

    /// Handles one delivery: `signature` is the `Stripe-Signature` header, `body` the
    /// raw request body, `now` the time the signature is judged at.
    pub async fn receive(
        &self,
        signature: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<IntakeReply, IntakeError> {
        signature::verify(signature, body, &self.config.secrets, self.config.tolerance, now)?;
        let event = StripeEvent::parse(body)?;
        let intent = event::decide(&event, &self.config)?;
        if let Intent::Ignored(reason) = intent {
            tracing::info!(event = %event.id, kind = %event.event_type, %reason, "stripe delivery ignored");
            return Ok(IntakeReply::new("ignored", None, reason));
        }
        let keep_until =
            now + chrono::Duration::from_std(self.config.tolerance).unwrap_or_default() + DELIVERY_RETENTION;
        match self
            .store
            .claim_delivery(&event.id, now, CLAIM_TAKEOVER, keep_until)
            .await?
        {
            Claim::New => {}
            Claim::Replay => {
                tracing::info!(event = %event.id, "stripe delivery replayed; nothing changes");
                return Ok(IntakeReply::new(
                    "duplicate",
                    None,
                    format!("event {} was handled before; nothing changed", event.id),
                ));
            }
            Claim::InProgress => return Err(IntakeError::InProgress(event.id)),
        }
        let outcome = self.act(&event.id, intent, now).await;
        if outcome.is_ok() {
            // Not completed (a lost answer): the claim goes stale and a retry acts
            // again, which finds the change made and answers `unchanged`.
            if let Err(e) = self.store.complete_delivery(&event.id).await {
                tracing::warn!(event = %event.id, error = %e.detailed(), "could not mark a stripe delivery handled; a retry after the takeover time acts again");
            }
        }
        if let Err(e) = &outcome {
            tracing::warn!(event = %event.id, error = %e, "stripe delivery failed; giving its id back so Stripe's retry acts");
            if let Err(release) = self.store.release_delivery(&event.id).await {
                tracing::error!(event = %event.id, error = %release.detailed(), "could not forget a failed delivery; its retries will be answered as duplicates");
            }
        }
        outcome
    }

    async fn act(
        &self,
        event_id: &str,
        intent: Intent,
        now: DateTime<Utc>,
    ) -> Result<IntakeReply, IntakeError> {
        let actor = Actor::stripe(event_id);
        match intent {
            Intent::Ignored(reason) => Ok(IntakeReply::new("ignored", None, reason)),
            Intent::Subscribe { subscription, spec } => self.subscribe(&subscription, *spec, &actor).await,
            Intent::Cancel { subscription, tenant } => {
                self.cancel(event_id, &subscription, &tenant, &actor, now).await
            }
        }
    }

    /// The tenant should exist on `spec`'s tier, with no deprovision scheduled.
    async fn subscribe(
        &self,
        subscription: &str,
        spec: TenantSpec,
        actor: &Actor,
    ) -> Result<IntakeReply, IntakeError> {
        let id = spec.id.clone();
        let record = match self.tenants.store().load(&id).await {
            Err(StoreError::NotFound { .. }) => {
                let record = self
                    .tenants
                    .provision(spec, self.config.release.clone(), false, actor)
                    .await?;
                tracing::info!(tenant = %id, subscription, "tenant created for a subscription");
                return Ok(IntakeReply::new(
                    "created",
                    Some(&id),
                    format!("tenant {id} is being provisioned ({})", record.state.label()),
                ));
            }
            other => other?,
        };
        self.check_environment(&record)?;
        if let Some(canceled) = self.store.cancel_deprovision(&id).await? {
            let said = format!(
                "the deprovision scheduled for {} is canceled: subscription {subscription} is active again",
                canceled.due_at.to_rfc3339()
            );
            self.note(&id, said, actor).await?;
        }
        if record.spec.tier == spec.tier {
            return Ok(IntakeReply::new(
                "unchanged",
                Some(&id),
                format!("tenant {id} already runs tier {}", spec.tier),
            ));
        }
        let change = SpecChange {
            tier: Some(spec.tier),
            ..SpecChange::default()
        };
        self.tenants
            .update_spec(&id, &change, None, actor, RolloutHold::Respect)
            .await?;
        tracing::info!(tenant = %id, subscription, tier = %spec.tier, "tenant re-tiered for a subscription");
        Ok(IntakeReply::new(
            "tier_changed",
            Some(&id),
            format!(
                "tenant {id} moves from tier {} to {} at its next deployment",
                record.spec.tier, spec.tier
            ),
        ))
    }

    /// The subscription ended: schedule the tenant's deprovision after the grace period.
    async fn cancel(
        &self,
        event_id: &str,
        subscription: &str,
        id: &TenantId,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<IntakeReply, IntakeError> {
        let record = match self.tenants.store().load(id).await {
            Err(StoreError::NotFound { .. }) => {
                return Ok(IntakeReply::new(
                    "ignored",
                    Some(id),
                    format!("no tenant {id}; nothing to deprovision"),
                ))
            }
            other => other?,
        };
        self.check_environment(&record)?;
        if record.state.is_terminal() {
            return Ok(IntakeReply::new(
                "ignored",
                Some(id),
                format!("tenant {id} is deleted already"),
            ));
        }
        let due_at =
            now + chrono::Duration::from_std(self.config.grace_period).unwrap_or(chrono::Duration::MAX);
        let wanted = ScheduledDeprovision {
            tenant: id.clone(),
            due_at,
            subscription: subscription.to_owned(),
            event: event_id.to_owned(),
        };
        let (scheduled, new) = self.store.schedule_deprovision(&wanted).await?;
        if new {
            let said = format!(
                "deprovision scheduled for {}: subscription {subscription} was canceled",
                scheduled.due_at.to_rfc3339()
            );
            self.note(id, said, actor).await?;
        }
        Ok(IntakeReply {
            deprovision_at: Some(scheduled.due_at),
            ..IntakeReply::new(
                "deprovision_scheduled",
                Some(id),
                format!(
                    "tenant {id} is deprovisioned at {} unless the subscription is renewed before",
                    scheduled.due_at.to_rfc3339()
                ),
            )
        })
    }

    fn check_environment(&self, record: &TenantRecord) -> Result<(), IntakeError> {
        if record.spec.environment != self.config.environment {
            return Err(IntakeError::OtherEnvironment {
                tenant: record.id().clone(),
                actual: record.spec.environment.to_string(),
                expected: self.config.environment.to_string(),
            });
        }
        Ok(())
    }

    /// Appends `said` to the tenant's history without changing its state.
    async fn note(&self, id: &TenantId, said: String, actor: &Actor) -> Result<(), StoreError> {
        let store = self.tenants.store();
        for _ in 0..HISTORY_RETRIES {
            let record = store.load(id).await?;
            let transition = Transition::new(&record.state, Cause::Subscription(said.clone()), actor.clone());
            match store.save(&record, WriteGuard::Version, Some(transition)).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. }) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(StoreError::Conflict {
            what: format!("recording a subscription change of tenant {id}"),
            detail: "the tenant kept changing; Stripe's retry records it".into(),
            kind: crate::ports::Conflict::Version,
        })
    }

    /// Deprovisions every tenant whose scheduled deprovision is due at `now`, through
    /// the deprovision command (actor `stripe:<subscription>`). A schedule is taken
    /// before the command, so a renewal that cancels it in between wins; one the
    /// tenant's state, a rollout's hold or a freeze refuses is put back for the next pass.
    /// Answers the tenants deprovisioned.
    pub async fn deprovision_due(&self, now: DateTime<Utc>) -> Result<Vec<TenantId>, StoreError> {
        let mut started = Vec::new();
        for due in self.store.scheduled_deprovisions().await? {
            if due.due_at > now {
                break;
            }
            let Some(taken) = self.store.cancel_deprovision(&due.tenant).await? else {
                continue; // renewed meanwhile
            };
            match self.tenants.store().load(&taken.tenant).await {
                Ok(record)
                    if record.state.is_terminal()
                        || matches!(record.state, crate::machine::TenantState::Deprovisioning { .. }) =>
                {
                    continue; // deprovisioned already
                }
                Err(StoreError::NotFound { .. }) => continue,
                _ => {}
            }
            let actor = Actor::stripe(&taken.subscription);
            match self
                .tenants
                .command(&taken.tenant, TenantEvent::Deprovision, &actor)
                .await
            {
                Ok(_) => {
                    tracing::info!(tenant = %taken.tenant, subscription = %taken.subscription, "deprovisioning the tenant of a canceled subscription");
                    started.push(taken.tenant);
                }
                Err(CommandError::Store(StoreError::NotFound { .. })) => {}
                Err(e @ CommandError::Frozen { .. }) => {
                    // A freeze holds deprovisions too; the schedule waits it out.
                    tracing::info!(tenant = %taken.tenant, reason = %e, "a due deprovision waits for a freeze to end; it is tried again at the next pass");
                    self.store.schedule_deprovision(&taken).await?;
                }
                Err(e) => {
                    tracing::warn!(tenant = %taken.tenant, error = %e, "a due deprovision cannot run yet; it is tried again at the next pass");
                    self.store.schedule_deprovision(&taken).await?;
                }
            }
        }
        Ok(started)
    }

    /// Runs [`StripeIntake::deprovision_due`] every `interval` until `stop` turns true.
    pub async fn sweep(self, interval: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.deprovision_due(Utc::now()).await {
                tracing::warn!(error = %e.detailed(), "checking scheduled deprovisions failed; trying again at the next pass");
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}
