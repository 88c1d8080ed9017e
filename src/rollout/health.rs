//! Bake evidence: whether a tenant of a baked wave is still healthy on the release.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::task::JoinSet;

use crate::domain::ReleaseVersion;
use crate::record::TenantRecord;
use crate::steps::verify::{HealthProbe, VerifyConfig};

#[async_trait]
pub trait BakeHealth: Send + Sync {
    /// `Err` with the reason when the tenant is not healthy on `release`.
    async fn check(&self, tenant: &TenantRecord, release: &ReleaseVersion) -> Result<(), String>;
}

/// Checks every hostname of the tenant with the verify step's health probe: each must
/// answer 2xx with status `ok` and the release.
pub struct ProbeHealth {
    probe: Arc<HealthProbe>,
}

impl ProbeHealth {
    pub fn new(config: &VerifyConfig) -> Result<Self, String> {
        Ok(Self {
            probe: Arc::new(HealthProbe::new(config)?),
        })
    }
}

#[async_trait]
impl BakeHealth for ProbeHealth {
    async fn check(&self, tenant: &TenantRecord, release: &ReleaseVersion) -> Result<(), String> {
        let mut checks = JoinSet::new();
        for (i, host) in tenant.spec.hostnames.iter().enumerate() {
            let (probe, host) = (self.probe.clone(), host.clone());
            checks.spawn(async move { (i, probe.check(&host).await) });
        }
        let mut seen = checks.join_all().await;
        seen.sort_by_key(|(i, _)| *i);
        match seen.into_iter().map(|(_, o)| o).find(|o| !o.serves(release)) {
            Some(failing) => Err(failing.to_string()),
            None => Ok(()),
        }
    }
}
