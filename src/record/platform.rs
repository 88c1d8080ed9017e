//! What a published platform version is: its manifest, naming the template and the
//! chart by key and content digest.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::PlatformVersion;

/// The SHA-256 of an artifact's bytes, as 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContentDigest(String);

impl ContentDigest {
    pub fn of(bytes: &[u8]) -> Self {
        let hash = Sha256::digest(bytes);
        Self(hash.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ContentDigest {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(s))
        } else {
            Err(format!("{s:?} is not a SHA-256 digest (64 lowercase hex digits)"))
        }
    }
}

impl From<ContentDigest> for String {
    fn from(d: ContentDigest) -> String {
        d.0
    }
}

impl std::fmt::Display for ContentDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One stored artifact of a platform version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredArtifact {
    /// Where it is stored (an S3 key), named by version and digest.
    pub key: String,
    pub sha256: ContentDigest,
    pub size: u64,
}

/// The chart as published: the packaged archive and what `Chart.yaml` calls it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChart {
    #[serde(flatten)]
    pub archive: StoredArtifact,
    /// The chart's `name` and `version` from its `Chart.yaml`.
    pub name: String,
    pub chart_version: String,
}

/// A published platform version: written once, after both artifacts, and never
/// changed, so whoever reads it can fetch exactly the bytes it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformManifest {
    pub version: PlatformVersion,
    pub template: StoredArtifact,
    pub chart: StoredChart,
    pub published_at: DateTime<Utc>,
    /// Who published it (`TENANTCTL_ACTOR`, else the user).
    pub actor: String,
}

impl PlatformManifest {
    /// Whether `other` names the same content (who published it and when aside).
    pub fn same_content(&self, other: &PlatformManifest) -> bool {
        self.version == other.version
            && self.template.sha256 == other.template.sha256
            && self.chart.archive.sha256 == other.chart.archive.sha256
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_the_sha256_of_the_bytes_in_lowercase_hex() {
        assert_eq!(
            ContentDigest::of(b"abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(ContentDigest::try_from("ABC".to_owned()).is_err());
        assert!(ContentDigest::try_from(ContentDigest::of(b"").to_string()).is_ok());
    }
}
