//! Where the steps take a tenant's template and chart from: the published platform
//! version its spec names, fetched (and checked against its digest) through the
//! [`PlatformArtifacts`] port, or, when it names none, those built into `tenantctl`.

use std::sync::Arc;

use crate::domain::{PlatformVersion, TenantSpec};
use crate::ports::{ArtifactError, PlatformArtifacts};
use crate::step::StepOutcome;

/// Why a tenant's platform version cannot be fetched, and whether a retry may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct PlatformUnavailable {
    pub reason: String,
    pub retryable: bool,
}

impl PlatformUnavailable {
    pub fn into_outcome(self) -> StepOutcome {
        StepOutcome::Failed {
            retryable: self.retryable,
            reason: self.reason,
        }
    }
}

/// The published platform versions the steps deploy from; `None` when the worker was
/// started without a platform bucket.
#[derive(Clone, Default)]
pub struct PlatformSource(Option<Arc<dyn PlatformArtifacts>>);

impl PlatformSource {
    pub fn new(artifacts: Option<Arc<dyn PlatformArtifacts>>) -> Self {
        Self(artifacts)
    }

    /// The template of `version`.
    pub async fn template(
        &self,
        spec: &TenantSpec,
        version: PlatformVersion,
    ) -> Result<String, PlatformUnavailable> {
        let store = self.store(spec, version)?;
        store
            .template(&version)
            .await
            .map_err(|e| unavailable(spec, version, "template", e))
    }

    /// The packaged chart (`.tgz`) of `version`.
    pub async fn chart(
        &self,
        spec: &TenantSpec,
        version: PlatformVersion,
    ) -> Result<Vec<u8>, PlatformUnavailable> {
        let store = self.store(spec, version)?;
        store
            .chart(&version)
            .await
            .map_err(|e| unavailable(spec, version, "chart", e))
    }

    fn store(
        &self,
        spec: &TenantSpec,
        version: PlatformVersion,
    ) -> Result<&Arc<dyn PlatformArtifacts>, PlatformUnavailable> {
        self.0.as_ref().ok_or_else(|| PlatformUnavailable {
            reason: format!(
                "tenant {} asks for platform version {version}, but this worker has no platform bucket; \
                 start the worker with --platform-bucket (or TENANTCTL_PLATFORM_BUCKET), then retry",
                spec.id
            ),
            retryable: false,
        })
    }
}

fn unavailable(
    spec: &TenantSpec,
    version: PlatformVersion,
    what: &str,
    err: ArtifactError,
) -> PlatformUnavailable {
    let (retryable, reason) = match err {
        ArtifactError::NotFound(_) => (
            false,
            format!(
                "tenant {} asks for platform version {version}, which is not published; publish it \
                 (tenantctl platform publish --version {version}) or change the tenant's platform, then retry",
                spec.id
            ),
        ),
        ArtifactError::Retryable { .. } => (true, format!("fetching the {what} of platform version {version}: {err}")),
        other => (false, format!("fetching the {what} of platform version {version}: {other}")),
    };
    PlatformUnavailable { reason, retryable }
}
