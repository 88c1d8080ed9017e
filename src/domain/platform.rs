use std::fmt;

use serde::{Deserialize, Serialize};

use super::InvalidValue;

/// A published version of the platform: the tenant's CloudFormation template and Helm
/// chart, released together. Three dot-separated numbers, `MAJOR.MINOR.PATCH`, each
/// `0` or without leading zeros and at most 9 digits: `1.4.0` and calendar versions
/// like `2026.12.1` both fit. No `v` prefix, pre-release or build suffix: a platform
/// version names content that is published once and never changes, so there is no
/// candidate to tell apart. Versions order numerically (`1.10.0` > `1.9.3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PlatformVersion {
    major: u32,
    minor: u32,
    patch: u32,
}

/// Most digits one number of a platform version may have.
const MAX_DIGITS: usize = 9;

impl PlatformVersion {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let invalid = |problem: String| {
            InvalidValue::new(
                "platform version",
                s,
                format!("{problem}; expected MAJOR.MINOR.PATCH, e.g. 1.4.0 or 2026.12.1"),
            )
        };
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() != 3 {
            return Err(invalid(format!("has {} dot-separated parts, not 3", parts.len())));
        }
        let mut numbers = [0u32; 3];
        for (slot, (part, name)) in numbers
            .iter_mut()
            .zip(parts.iter().zip(["major", "minor", "patch"]))
        {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(format!("the {name} part {part:?} is not a number")));
            }
            if part.len() > 1 && part.starts_with('0') {
                return Err(invalid(format!("the {name} part {part:?} has a leading zero")));
            }
            if part.len() > MAX_DIGITS {
                return Err(invalid(format!(
                    "the {name} part has {} digits, at most {MAX_DIGITS} are allowed",
                    part.len()
                )));
            }
            *slot = part
                .parse()
                .map_err(|e| invalid(format!("the {name} part: {e}")))?;
        }
        let [major, minor, patch] = numbers;
        Ok(Self { major, minor, patch })
    }

    /// The schema of [`Self::parse`]'s grammar, as the OpenAPI document publishes it.
    fn json_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let number = format!("(0|[1-9][0-9]{{0,{}}})", MAX_DIGITS - 1);
        super::schema::string(
            &format!(r"^{number}\.{number}\.{number}$"),
            (5, Some(3 * MAX_DIGITS + 2)),
            "A platform version (template and chart published together): MAJOR.MINOR.PATCH, \
             each 0 or a number of at most 9 digits without a leading zero, e.g. 1.4.0 or 2026.12.1.",
            "2026.12.1",
        )
    }
}

super::schema::string_schema!(PlatformVersion);

impl fmt::Display for PlatformVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl std::str::FromStr for PlatformVersion {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for PlatformVersion {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<PlatformVersion> for String {
    fn from(v: PlatformVersion) -> String {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_semver_like_and_calendar_versions_and_orders_them_numerically() {
        assert_eq!(PlatformVersion::parse("1.4.0").unwrap().to_string(), "1.4.0");
        assert_eq!(
            PlatformVersion::parse("2026.12.1").unwrap().to_string(),
            "2026.12.1"
        );
        assert_eq!(PlatformVersion::parse("0.0.0").unwrap().to_string(), "0.0.0");
        assert!(PlatformVersion::parse("1.9.3").unwrap() < PlatformVersion::parse("1.10.0").unwrap());
        assert!(PlatformVersion::parse("2026.1.9").unwrap() < PlatformVersion::parse("2026.12.0").unwrap());
    }

    #[test]
    fn refuses_other_shapes_saying_what_is_wrong_and_what_fits() {
        for (bad, problem) in [
            ("", "has 1 dot-separated parts"),
            ("1.4", "has 2 dot-separated parts"),
            ("1.4.0.1", "has 4 dot-separated parts"),
            ("v1.4.0", "the major part \"v1\" is not a number"),
            ("1.4.0-rc1", "the patch part \"0-rc1\" is not a number"),
            ("1..0", "the minor part \"\" is not a number"),
            ("01.4.0", "the major part \"01\" has a leading zero"),
            ("1.4.+1", "the patch part \"+1\" is not a number"),
            ("1.4.1234567890", "the patch part has 10 digits"),
        ] {
            let err = PlatformVersion::parse(bad).unwrap_err().to_string();
            assert!(err.contains(problem), "{bad:?}: {err}");
            assert!(
                err.contains("expected MAJOR.MINOR.PATCH, e.g. 1.4.0 or 2026.12.1"),
                "{err}"
            );
        }
    }

    #[test]
    fn round_trips_through_json_and_revalidates() {
        let v = PlatformVersion::parse("2026.12.1").unwrap();
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, "\"2026.12.1\"");
        assert_eq!(serde_json::from_str::<PlatformVersion>(&json).unwrap(), v);
        assert!(serde_json::from_str::<PlatformVersion>("\"1.4\"").is_err());
    }

    proptest::proptest! {
        #[test]
        fn every_accepted_version_prints_back_as_typed(s in "[0-9]{1,10}\\.[0-9]{1,3}\\.[0-9]{1,3}") {
            if let Ok(v) = PlatformVersion::parse(&s) {
                proptest::prop_assert_eq!(v.to_string(), s);
            }
        }
    }
}
