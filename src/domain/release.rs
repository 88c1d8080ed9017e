use std::fmt;

use serde::{Deserialize, Serialize};

use super::schema::string;
use super::InvalidValue;

/// A release of the tenant application, named by its semantic version (`1.4.2`,
/// `2.0.0-rc.1`). The image tag in the registry is the same string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReleaseVersion(semver::Version);

impl ReleaseVersion {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let trimmed = s.strip_prefix('v').unwrap_or(s);
        semver::Version::parse(trimmed).map(Self).map_err(|e| {
            InvalidValue::new(
                "release version",
                s,
                format!("{e}; expected a semantic version like 1.4.2 or 2.0.0-rc.1"),
            )
        })
    }

    /// A semantic version, with an optional leading `v`. Numbers have at most 19 digits
    /// (they must fit 64 bits).
    fn json_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let number = r"(0|[1-9][0-9]{0,18})";
        let pre = r"(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)";
        let build = r"[0-9A-Za-z-]+";
        string(
            &format!(r"^v?{number}\.{number}\.{number}(-{pre}(\.{pre})*)?(\+{build}(\.{build})*)?$"),
            (5, None),
            "A release: a semantic version, e.g. 1.4.2 or 2.0.0-rc.1.",
            "1.4.2",
        )
    }

    /// The image tag this release is published under.
    pub fn image_tag(&self) -> String {
        self.0.to_string()
    }
}

impl utoipa::PartialSchema for ReleaseVersion {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        Self::json_schema()
    }
}
impl utoipa::ToSchema for ReleaseVersion {}

impl fmt::Display for ReleaseVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for ReleaseVersion {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for ReleaseVersion {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ReleaseVersion> for String {
    fn from(v: ReleaseVersion) -> String {
        v.0.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_semver_and_accepts_a_leading_v() {
        assert_eq!(ReleaseVersion::parse("1.4.2").unwrap().to_string(), "1.4.2");
        assert_eq!(
            ReleaseVersion::parse("v2.0.0-rc.1").unwrap().image_tag(),
            "2.0.0-rc.1"
        );
        assert!(ReleaseVersion::parse("1.2.0").unwrap() < ReleaseVersion::parse("1.10.0").unwrap());
    }

    #[test]
    fn rejects_non_semver_with_an_example() {
        for bad in ["latest", "1.2", "", "1.2.3.4"] {
            let err = ReleaseVersion::parse(bad).unwrap_err().to_string();
            assert!(err.contains("semantic version like 1.4.2"), "{err}");
        }
    }
}
