use std::fmt;

use serde::{Deserialize, Serialize};

use super::schema::string;
use super::InvalidValue;

/// A release of the tenant application, named by its semantic version (`1.4.2`,
/// `2.0.0-rc.1`). The image tag in the registry is the same string, so a release is
/// also a valid image tag: at most 128 characters of `[A-Za-z0-9_.-]`, which leaves
/// out semver build metadata (`+…`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReleaseVersion(semver::Version);

impl ReleaseVersion {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let kind = "release version";
        let trimmed = s.strip_prefix('v').unwrap_or(s);
        let version = semver::Version::parse(trimmed).map_err(|e| {
            InvalidValue::new(
                kind,
                s,
                format!("{e}; expected a semantic version like 1.4.2 or 2.0.0-rc.1"),
            )
        })?;
        if !version.build.is_empty() {
            return Err(InvalidValue::new(
                kind,
                s,
                format!(
                    "build metadata (+{}) cannot be part of an image tag; name the release without it, e.g. {}",
                    version.build,
                    semver::Version::new(version.major, version.minor, version.patch)
                ),
            ));
        }
        let tag = version.to_string();
        if let Some(problem) = image_tag_problem(&tag) {
            return Err(InvalidValue::new(kind, s, problem));
        }
        Ok(Self(version))
    }

    /// A semantic version, with an optional leading `v`. Numbers have at most 19 digits
    /// (they must fit 64 bits).
    fn json_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let number = r"(0|[1-9][0-9]{0,18})";
        let pre = r"(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)";
        // No `+build` part: a release is also its image tag, which cannot hold a '+'.
        string(
            &format!(r"^v?{number}\.{number}\.{number}(-{pre}(\.{pre})*)?$"),
            (5, Some(MAX_TAG_LEN)),
            "A release: a semantic version that is also a valid image tag (at most 128 characters), \
             e.g. 1.4.2 or 2.0.0-rc.1.",
            "1.4.2",
        )
    }

    /// The image tag this release is published under.
    pub fn image_tag(&self) -> String {
        self.0.to_string()
    }
}

/// Longest image tag a registry accepts.
const MAX_TAG_LEN: usize = 128;

/// Why `tag` is not a valid container image tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
fn image_tag_problem(tag: &str) -> Option<String> {
    if tag.len() > MAX_TAG_LEN {
        return Some(format!(
            "is {} characters long, but an image tag has at most {MAX_TAG_LEN}; use a shorter pre-release",
            tag.len()
        ));
    }
    if tag.starts_with(['.', '-']) {
        return Some("an image tag must start with a letter, digit or '_'".into());
    }
    tag.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        .map(|c| {
            format!("contains {c:?}, which an image tag cannot; use only letters, digits, '_', '.' and '-'")
        })
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
    fn a_release_is_also_a_valid_image_tag() {
        let longest = format!("1.0.0-{}", "a".repeat(122));
        assert_eq!(ReleaseVersion::parse(&longest).unwrap().image_tag().len(), 128);
        let err = ReleaseVersion::parse(&format!("{longest}b"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("129 characters long") && err.contains("at most 128"),
            "{err}"
        );
        let err = ReleaseVersion::parse("1.4.2+build.7").unwrap_err().to_string();
        assert!(
            err.contains("build metadata (+build.7)") && err.contains("e.g. 1.4.2"),
            "{err}"
        );
    }

    proptest::proptest! {
        #[test]
        fn every_accepted_release_is_a_valid_image_tag(s in "v?[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(-[A-Za-z0-9.-]{1,140})?(\\+[A-Za-z0-9.]{1,5})?") {
            if let Ok(release) = ReleaseVersion::parse(&s) {
                let tag = release.image_tag();
                proptest::prop_assert!(tag.len() <= 128, "{}", tag);
                proptest::prop_assert!(tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'));
                proptest::prop_assert!(tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')), "{}", tag);
            }
        }
    }

    #[test]
    fn rejects_non_semver_with_an_example() {
        for bad in ["latest", "1.2", "", "1.2.3.4"] {
            let err = ReleaseVersion::parse(bad).unwrap_err().to_string();
            assert!(err.contains("semantic version like 1.4.2"), "{err}");
        }
    }
}
