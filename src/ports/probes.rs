//! What fleet rollouts need from the outside world: `rollout` calls these and `steps`
//! implements them on AWS and HTTPS, so neither depends on the other. `src/cli` picks
//! the implementations.

use async_trait::async_trait;

use crate::domain::{Region, ReleaseVersion, TenantSpec};
use crate::record::AlarmSeen;

/// Where release images are published; starting a rollout refuses a release that is
/// not published for every region it visits.
#[async_trait]
pub trait ReleaseRegistry: Send + Sync {
    /// `Err` when `release` has no image for `region`, or when the registry could not
    /// be asked; the error says which, and what to do.
    async fn check_published(
        &self,
        release: &ReleaseVersion,
        region: &Region,
    ) -> Result<(), ReleaseCheckError>;
}

/// Why a release could not be confirmed as published. Callers refuse the first as bad
/// input and answer the second as a dependency that is down: a throttled or
/// unreachable registry says nothing about the release.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseCheckError {
    /// The registry answered that there is no image for the release in the region's
    /// repository (or no repository); the message says what to publish.
    #[error("{0}")]
    Unpublished(String),
    /// The registry could not be asked (throttled, unreachable, failing); the same
    /// request may succeed later.
    #[error("{0}")]
    Unavailable(String),
}

/// What one probe found of a tenant, with the alarms it read as evidence (empty
/// when the probe reads none, or could not read them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantHealth {
    /// Every hostname answered healthy and reported the release asked about.
    Healthy { alarms: Vec<AlarmSeen> },
    /// A hostname did not (the first in the spec's order, so the reason names the same
    /// hostname every time), or an alarm counts against the tenant: `reported_release`
    /// is the release it reported, if any, and `reason` says what was wrong.
    Unhealthy {
        reported_release: Option<String>,
        reason: String,
        alarms: Vec<AlarmSeen>,
    },
}

impl TenantHealth {
    /// The alarms checked and their states.
    pub fn alarms(&self) -> &[AlarmSeen] {
        match self {
            Self::Healthy { alarms } | Self::Unhealthy { alarms, .. } => alarms,
        }
    }
}

/// Checks that a tenant serves a release healthy; the rollout controller's bake
/// checks ask it about every tenant of a baking wave that reached the release.
#[async_trait]
pub trait TenantProbe: Send + Sync {
    async fn probe(&self, tenant: &TenantSpec, release: &ReleaseVersion) -> TenantHealth;
}
