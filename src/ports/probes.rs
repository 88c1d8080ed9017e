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
    /// `Err` with what is missing and what to do when `release` has no image for
    /// `region`, or when the registry could not be asked.
    async fn check_published(&self, release: &ReleaseVersion, region: &Region) -> Result<(), String>;
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
