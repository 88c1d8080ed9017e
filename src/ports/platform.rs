//! Where platform versions (the tenant's template and chart) are published and read
//! back from. `src/platform` implements it on S3; `src/cli` picks it.

use async_trait::async_trait;

use crate::domain::PlatformVersion;
use crate::record::PlatformManifest;

/// The artifacts of one platform version, as read from disk, before publishing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformBundle {
    pub version: PlatformVersion,
    /// The CloudFormation template, as-is.
    pub template: String,
    pub chart: ChartArchive,
}

/// A packaged Helm chart (`.tgz`) and what its `Chart.yaml` calls it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartArchive {
    pub name: String,
    pub chart_version: String,
    pub bytes: Vec<u8>,
}

/// What `publish` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// The version is new and now published.
    Created(PlatformManifest),
    /// The version was already published with this content (an earlier run, or this
    /// one whose answer was lost); nothing changed.
    AlreadyPublished(PlatformManifest),
}

impl Published {
    pub fn manifest(&self) -> &PlatformManifest {
        match self {
            Published::Created(m) | Published::AlreadyPublished(m) => m,
        }
    }
}

/// Why a platform artifact call failed, split by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("platform version {0} is not published; see `tenantctl platform list`")]
    NotFound(PlatformVersion),
    /// A version's content never changes once published.
    #[error(
        "platform version {version} is already published with other content ({detail}); publish a new version"
    )]
    VersionTaken {
        version: PlatformVersion,
        detail: String,
    },
    /// A stored object does not hash to the digest its manifest names: it was changed
    /// or damaged after publishing, and is not used.
    #[error(
        "{what} of platform version {version} at {key} is corrupt: its SHA-256 is {actual}, the manifest says \
         {expected}; do not use this version; restore the object from the bucket's versions or publish a new version"
    )]
    Corrupt {
        version: PlatformVersion,
        what: &'static str,
        key: String,
        expected: String,
        actual: String,
    },
    /// The input cannot be published (e.g. an empty or oversized template).
    #[error("{0}")]
    Invalid(String),
    /// Throttling, timeouts, 5xx: the same call may succeed later.
    #[error("temporary failure of the artifact store ({context}): {message}")]
    Retryable { context: String, message: String },
    /// Anything a retry cannot fix: a missing bucket, denied access, an unreadable manifest.
    #[error("artifact store failure ({context}): {message}")]
    Fatal { context: String, message: String },
}

/// Published platform versions, each stored by version and content digest so any
/// replica can fetch exactly what a tenant was given.
#[async_trait]
pub trait PlatformArtifacts: Send + Sync {
    /// Publishes `bundle` as its version, recording `actor`. Idempotent: the same
    /// content again is `AlreadyPublished`; other content under a published version
    /// is `VersionTaken`.
    async fn publish(&self, bundle: &PlatformBundle, actor: &str) -> Result<Published, ArtifactError>;
    /// The manifest of a published version.
    async fn manifest(&self, version: &PlatformVersion) -> Result<PlatformManifest, ArtifactError>;
    /// The version's template, checked against its manifest's digest.
    async fn template(&self, version: &PlatformVersion) -> Result<String, ArtifactError>;
    /// The version's packaged chart, checked against its manifest's digest.
    async fn chart(&self, version: &PlatformVersion) -> Result<Vec<u8>, ArtifactError>;
    /// Every published version, lowest first.
    async fn versions(&self) -> Result<Vec<PlatformVersion>, ArtifactError>;
}
