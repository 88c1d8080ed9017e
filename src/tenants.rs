//! Operator commands on tenants: create, upgrade, retry, roll back, restore,
//! deprovision. Each loads the tenant, asks the machine, and saves conditionally on
//! the version it read, retrying a few times if a worker wrote in between.

use std::sync::Arc;

use chrono::Utc;

use crate::domain::{Hostname, MaintenanceWindows, ReleaseVersion, TenantId, TenantSpec, Tier};
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

/// A change to a tenant's spec; fields left `None` stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecChange {
    /// `Some(Some(r))` pins the tenant to `r` (rollouts skip it); `Some(None)` unpins.
    pub pinned_release: Option<Option<ReleaseVersion>>,
    /// Replaces the tenant's hostnames; they take effect at its next deployment.
    pub hostnames: Option<Vec<Hostname>>,
    /// Takes effect at the tenant's next deployment.
    pub tier: Option<Tier>,
    /// `Some(Some(w))` sets the weekly windows rollouts may start the tenant in;
    /// `Some(None)` removes them (any time).
    pub maintenance: Option<Option<MaintenanceWindows>>,
}

impl SpecChange {
    pub fn is_empty(&self) -> bool {
        self == &SpecChange::default()
    }

    /// Applies the change; `Err` says why it cannot apply in `state`.
    fn apply(&self, spec: &mut TenantSpec, state: &TenantState) -> Result<Vec<String>, String> {
        if state.is_terminal() {
            return Err("the tenant is deleted; create a new one instead".into());
        }
        let reshapes = self.hostnames.is_some() || self.tier.is_some();
        if reshapes && state.step().is_some() {
            return Err("hostnames and tier change only while no step runs; wait until the tenant is Active or Failed".into());
        }
        let mut said = Vec::new();
        if let Some(pin) = &self.pinned_release {
            spec.pinned_release = pin.clone();
            said.push(match pin {
                Some(r) => format!("pin {r}"),
                None => "unpin".into(),
            });
        }
        if let Some(hostnames) = &self.hostnames {
            spec.hostnames = hostnames.clone();
            let names: Vec<&str> = hostnames.iter().map(|h| h.as_str()).collect();
            said.push(format!("hostnames {}", names.join(",")));
        }
        if let Some(tier) = self.tier {
            spec.tier = tier;
            said.push(format!("tier {tier}"));
        }
        if let Some(maintenance) = &self.maintenance {
            spec.maintenance = maintenance.clone();
            said.push(match maintenance {
                Some(w) => format!("maintenance {w}"),
                None => "maintenance any time".into(),
            });
        }
        Ok(said)
    }
}

impl TenantCommands {
    /// Changes a tenant's spec, recording the change in its history. With
    /// `expected_version` the write only happens if the tenant is still at that
    /// version (`Conflict` otherwise); without it, a concurrent write is retried.
    pub async fn update_spec(
        &self,
        id: &TenantId,
        change: &SpecChange,
        expected_version: Option<u64>,
        actor: &Actor,
    ) -> Result<TenantRecord, CommandError> {
        let mut attempt = 0;
        loop {
            let mut record = self.store.load(id).await?;
            let before = record.spec.hostnames.clone();
            if let Some(expected) = expected_version {
                if expected != record.version {
                    return Err(CommandError::Store(StoreError::Conflict {
                        what: format!("updating tenant {id}"),
                        detail: format!(
                            "tenant {id} is at version {}, not {expected}; reload it and decide again",
                            record.version
                        ),
                    }));
                }
            }
            let said =
                change
                    .apply(&mut record.spec, &record.state)
                    .map_err(|reason| CommandError::Rejected {
                        id: id.clone(),
                        rejected: Rejected {
                            state: record.state.label(),
                            event: "UpdateSpec",
                            reason,
                        },
                    })?;
            record.spec.validate()?;
            if said.is_empty() {
                return Ok(record);
            }
            let transition = Transition {
                from: record.state.label(),
                cause: format!("UpdateSpec: {}", said.join("; ")),
                actor: actor.0.clone(),
                ..Transition::default()
            };
            record.updated_at = Utc::now();
            match self.store.save_spec(&record, &before, transition).await {
                Err(StoreError::Conflict { .. })
                    if expected_version.is_none() && attempt < CONFLICT_RETRIES =>
                {
                    attempt += 1
                }
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
