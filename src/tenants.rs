//! Operator commands on tenants: create, upgrade, retry, roll back, restore,
//! deprovision. Each loads the tenant, asks the machine, and saves conditionally on
//! the version it read, retrying a few times if a worker wrote in between.

use std::sync::Arc;

use chrono::Utc;

use crate::domain::{ReleaseVersion, TenantId, TenantSpec};
use crate::machine::{Rejected, TenantEvent, TenantState};
use crate::store::{Actor, StoreError, TenantRecord, TenantStore, Transition, WriteGuard};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Invalid(#[from] crate::domain::InvalidValue),
    #[error("tenant {id}: {rejected}")]
    Rejected { id: TenantId, rejected: Rejected },
    #[error(transparent)]
    Store(#[from] StoreError),
}

const CONFLICT_RETRIES: usize = 5;

#[derive(Clone)]
pub struct TenantCommands {
    store: Arc<dyn TenantStore>,
}

impl TenantCommands {
    pub fn new(store: Arc<dyn TenantStore>) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &Arc<dyn TenantStore> {
        &self.store
    }

    /// Records a new tenant and starts provisioning it on `release`.
    pub async fn create(
        &self,
        spec: TenantSpec,
        release: ReleaseVersion,
        actor: &Actor,
    ) -> Result<TenantRecord, CommandError> {
        spec.validate()?;
        let event = TenantEvent::Provision { release };
        let state = TenantState::initial()
            .apply(&event)
            .map_err(|rejected| CommandError::Rejected {
                id: spec.id.clone(),
                rejected,
            })?;
        let record = TenantRecord::new(spec, state, Utc::now());
        let first = Transition {
            from: TenantState::initial().label(),
            cause: describe(&event),
            actor: actor.0.clone(),
            ..Transition::default()
        };
        Ok(self.store.create(&record, first).await?)
    }

    /// Applies an operator event, e.g. `Upgrade`, `Retry`, `Deprovision`.
    pub async fn command(
        &self,
        id: &TenantId,
        event: TenantEvent,
        actor: &Actor,
    ) -> Result<TenantRecord, CommandError> {
        let mut attempt = 0;
        loop {
            let mut record = self.store.load(id).await?;
            let next = record
                .state
                .apply(&event)
                .map_err(|rejected| CommandError::Rejected {
                    id: id.clone(),
                    rejected,
                })?;
            let transition = Transition {
                from: record.state.label(),
                cause: describe(&event),
                actor: actor.0.clone(),
                ..Transition::default()
            };
            record.last_error = None;
            record.enter(next, Utc::now());
            match self
                .store
                .save(&record, WriteGuard::Version, Some(transition))
                .await
            {
                Err(StoreError::Conflict { .. }) if attempt < CONFLICT_RETRIES => attempt += 1,
                other => return Ok(other?),
            }
        }
    }
}

/// The history's wording of an operator event.
fn describe(event: &TenantEvent) -> String {
    match event {
        TenantEvent::Provision { release } => format!("Provision {release}"),
        TenantEvent::Upgrade { release } => format!("Upgrade to {release}"),
        TenantEvent::Restore { snapshot } => format!("Restore from {snapshot}"),
        other => other.name().to_owned(),
    }
}
