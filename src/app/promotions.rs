//! Promotion rules and their promotions: what operators set, approve and cancel, and
//! the pass that moves each promotion on (a soak check, the approval request, the
//! start of the next environment's rollout). The controller records a promotion when
//! a rollout of the rule's `from` environment completes (`rollout::completion`).
//!
//! Every replica runs the pass; each change is a write conditional on the rule's
//! version, and the rollout a promotion starts has an id derived from the completed
//! one, so two replicas (or one that crashed after starting it) start it once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::domain::{Environment, PromotionName, PromotionRule, RolloutTemplate};
use crate::ports::{PromotionDriver, PromotionStore, StoreError, TenantHealth, TenantProbe, TenantStore};
use crate::record::{Promotion, PromotionDue, PromotionRecord, PromotionState, PROMOTION_CLAIM};

use super::rollouts::{RolloutCommands, RolloutError};

#[derive(Debug, thiserror::Error)]
pub enum PromotionError {
    /// The rule is not valid; the message says what to change.
    #[error("{0}")]
    Invalid(String),
    /// The rule's promotion is not in a state that allows the command.
    #[error("promotion {name}: {message}")]
    Refused { name: PromotionName, message: String },
    #[error("starting the promoted rollout: {0}")]
    Start(#[source] RolloutError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

const CONFLICT_RETRIES: usize = 5;

#[derive(Clone)]
pub struct PromotionCommands {
    store: Arc<dyn PromotionStore>,
    tenants: Arc<dyn TenantStore>,
    rollouts: RolloutCommands,
    probe: Option<Arc<dyn TenantProbe>>,
}

/// What `promotion set` stores.
#[derive(Debug, Clone)]
pub struct RuleRequest {
    pub name: PromotionName,
    pub from: Environment,
    pub to: Environment,
    pub soak: Duration,
    pub approval: bool,
    pub template: RolloutTemplate,
}

impl PromotionCommands {
    pub fn new(
        store: Arc<dyn PromotionStore>,
        tenants: Arc<dyn TenantStore>,
        rollouts: RolloutCommands,
    ) -> Self {
        Self {
            store,
            tenants,
            rollouts,
            probe: None,
        }
    }

    /// The health checks of the soak (the bake's probe); without one the soak only waits.
    pub fn with_probe(mut self, probe: Arc<dyn TenantProbe>) -> Self {
        self.probe = Some(probe);
        self
    }

    /// Creates or replaces a rule; its current promotion, if any, is kept.
    pub async fn set(&self, request: RuleRequest, actor: &str) -> Result<PromotionRecord, PromotionError> {
        let rule = PromotionRule::new(
            request.name.clone(),
            request.from,
            request.to,
            request.soak,
            request.approval,
            request.template,
        )
        .map_err(|e| PromotionError::Invalid(e.to_string()))?;
        self.change(&request.name, Some(&rule), actor, |record| {
            record.rule = rule.clone();
            Ok(())
        })
        .await
    }

    pub async fn get(&self, name: &PromotionName) -> Result<PromotionRecord, PromotionError> {
        Ok(self.store.load_promotion(name).await?)
    }

    pub async fn list(&self) -> Result<Vec<PromotionRecord>, PromotionError> {
        Ok(self.store.list_promotions().await?)
    }

    pub async fn delete(&self, name: &PromotionName) -> Result<(), PromotionError> {
        Ok(self.store.delete_promotion(name).await?)
    }

    /// Approves the start of a promotion that waits for it.
    pub async fn approve(
        &self,
        name: &PromotionName,
        actor: &str,
    ) -> Result<PromotionRecord, PromotionError> {
        self.change(name, None, actor, |record| match &mut record.promotion {
            Some(p) if p.state == PromotionState::AwaitingApproval && p.approved_by.is_none() => {
                p.approve(Utc::now(), actor);
                Ok(())
            }
            Some(p) if p.state == PromotionState::AwaitingApproval => Err(format!(
                "was already approved by {} (promoting {}); the next promotion pass starts {} \
                 (cancel the promotion to start nothing)",
                p.approved_by.as_deref().unwrap_or("an operator"),
                p.source,
                p.rollout
            )),
            Some(p) => Err(format!(
                "is {} (promoting {}); only a promotion awaiting approval can be approved",
                p.state, p.source
            )),
            None => Err(
                "has no promotion yet; one starts when a rollout of its source environment completes".into(),
            ),
        })
        .await
    }

    /// Cancels a soaking, blocked or waiting promotion: nothing is started for it.
    pub async fn cancel(&self, name: &PromotionName, actor: &str) -> Result<PromotionRecord, PromotionError> {
        self.change(name, None, actor, |record| match &mut record.promotion {
            Some(p) if p.state.is_open() => {
                p.cancel(Utc::now(), actor, "by an operator");
                Ok(())
            }
            Some(p) => Err(format!("is already {}; there is nothing to cancel", p.state)),
            None => Err("has no promotion to cancel".into()),
        })
        .await
    }

    /// Loads a record (or, with `create`, starts one with that rule), applies `edit`
    /// and saves it, retried when a concurrent write won.
    async fn change(
        &self,
        name: &PromotionName,
        create: Option<&PromotionRule>,
        actor: &str,
        edit: impl Fn(&mut PromotionRecord) -> Result<(), String>,
    ) -> Result<PromotionRecord, PromotionError> {
        let mut attempt = 0;
        loop {
            let mut record = match self.store.load_promotion(name).await {
                Ok(record) => record,
                Err(StoreError::NotFound { .. }) if create.is_some() => PromotionRecord {
                    rule: create.expect("checked").clone(),
                    promotion: None,
                    updated_by: actor.to_owned(),
                    updated_at: Utc::now(),
                    version: 0,
                },
                Err(e) => return Err(e.into()),
            };
            edit(&mut record).map_err(|message| PromotionError::Refused {
                name: name.clone(),
                message,
            })?;
            record.updated_by = actor.to_owned();
            match self.store.save_promotion(&record).await {
                Ok(saved) => return Ok(saved),
                Err(StoreError::Conflict { .. }) if attempt < CONFLICT_RETRIES => attempt += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// One pass over every rule as of `now`: moves each open promotion one step.
    /// Returns the promotions changed.
    pub async fn step_at(&self, now: DateTime<Utc>) -> Result<Vec<PromotionRecord>, PromotionError> {
        let mut changed = Vec::new();
        for record in self.store.list_promotions().await? {
            let name = record.rule.name.clone();
            match self.step_one(record, now).await {
                Ok(Some(saved)) => changed.push(saved),
                Ok(None) => {}
                Err(e) => {
                    warn!(promotion = %name, error = %e, "promotion step failed; trying again next pass")
                }
            }
        }
        Ok(changed)
    }

    async fn step_one(
        &self,
        mut record: PromotionRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<PromotionRecord>, PromotionError> {
        let Some(promotion) = record.promotion.as_ref() else {
            return Ok(None);
        };
        let due = promotion.due(record.rule.approval, now);
        if due == PromotionDue::Wait {
            return Ok(None);
        }
        if matches!(due, PromotionDue::Check | PromotionDue::Start) {
            // Taken first, so another replica's pass leaves the round to this one.
            match self.claim(record, now).await? {
                Some(claimed) => record = claimed,
                None => return Ok(None),
            }
        }
        let claimed = record.clone();
        if let Err(e) = self.carry_out(&mut record, due, now).await {
            // The round failed: given back, so the next pass tries again at once.
            if claimed
                .promotion
                .as_ref()
                .is_some_and(|p| p.claimed_until.is_some())
            {
                let mut released = claimed;
                if let Some(promotion) = released.promotion.as_mut() {
                    promotion.claimed_until = None;
                }
                if let Err(give_back) = self.store.save_promotion(&released).await {
                    warn!(promotion = %released.rule.name, error = %give_back, "could not give a failed round back; it is taken over when its claim runs out");
                }
            }
            return Err(e);
        }
        self.save_by_pass(record).await
    }

    /// Saves `record` as the promotion pass; `None` when another replica or an
    /// operator changed it since it was read (the next pass sees their change).
    async fn save_by_pass(
        &self,
        mut record: PromotionRecord,
    ) -> Result<Option<PromotionRecord>, PromotionError> {
        record.updated_by = "promotion".into();
        match self.store.save_promotion(&record).await {
            Ok(saved) => Ok(Some(saved)),
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Does what is `due` of `record`'s promotion, in `record`, clearing its claim.
    async fn carry_out(
        &self,
        record: &mut PromotionRecord,
        due: PromotionDue,
        now: DateTime<Utc>,
    ) -> Result<(), PromotionError> {
        let name = &record.rule.name;
        let Some(promotion) = record.promotion.as_mut() else {
            return Ok(());
        };
        promotion.claimed_until = None;
        match due {
            PromotionDue::Wait => {}
            PromotionDue::Check => {
                let failure = self.check(promotion).await?;
                promotion.checked(now, failure);
            }
            PromotionDue::AskApproval => promotion.ask_approval(now),
            PromotionDue::Start => {
                let spec = record
                    .rule
                    .spec_for(promotion.release.clone(), promotion.platform);
                let started = self
                    .rollouts
                    .start(promotion.rollout.clone(), spec, &format!("promotion:{name}"))
                    .await
                    .map_err(PromotionError::Start)?;
                info!(promotion = %name, rollout = %started.record.id, created = started.created, "promoted rollout started");
                promotion.started(now);
            }
        }
        Ok(())
    }

    /// `record` with its due round taken by this pass for [`PROMOTION_CLAIM`], or
    /// `None` when another pass (or an operator) changed it since it was read.
    async fn claim(
        &self,
        mut record: PromotionRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<PromotionRecord>, PromotionError> {
        if let Some(promotion) = record.promotion.as_mut() {
            promotion.claimed_until = Some(now + PROMOTION_CLAIM);
        }
        self.save_by_pass(record).await
    }

    /// One round of checks of the promoted rollout's tenants: the first that is
    /// unhealthy (or gone, or not serving) with why.
    async fn check(
        &self,
        promotion: &Promotion,
    ) -> Result<Option<(crate::domain::TenantId, String)>, PromotionError> {
        let Some(probe) = &self.probe else {
            return Ok(None);
        };
        // 100 tenants a read; a tenant deleted since the rollout is left out.
        for tenant in self.tenants.load_many(&promotion.tenants).await? {
            let id = tenant.id();
            let Some(release) = tenant.state.current_release().cloned() else {
                return Ok(Some((
                    id.clone(),
                    format!("is {} and serves no release", tenant.state.name()),
                )));
            };
            if let TenantHealth::Unhealthy { reason, .. } = probe.probe(&tenant.spec, &release).await {
                return Ok(Some((id.clone(), reason)));
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl PromotionDriver for PromotionCommands {
    async fn step_promotions(&self, now: DateTime<Utc>) -> Result<(), String> {
        self.step_at(now).await.map(|_| ()).map_err(|e| e.to_string())
    }
}
