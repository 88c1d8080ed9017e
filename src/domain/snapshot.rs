use serde::{Deserialize, Serialize};

use super::{string_newtype, InvalidValue};

/// An RDS cluster snapshot identifier a tenant is restored from (one of its
/// `facts.snapshots`): a letter, then letters, digits, '-' or ':', at most 255
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SnapshotName(String);

impl SnapshotName {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let ok = !s.is_empty()
            && s.len() <= 255
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':');
        match ok {
            true => Ok(Self(s.to_owned())),
            false => Err(InvalidValue::new(
                "snapshot",
                s,
                "use an RDS snapshot identifier from the tenant's facts.snapshots \
                 (a letter, then letters, digits, '-' or ':'; at most 255)",
            )),
        }
    }

    fn json_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        super::schema::string(
            "^[A-Za-z][A-Za-z0-9:-]{0,254}$",
            (1, Some(255)),
            "An RDS cluster snapshot identifier (one of the tenant's facts.snapshots).",
            "tenant-prod-acme-preupgrade-1-4-2-7",
        )
    }
}
string_newtype!(SnapshotName);
super::schema::string_schema!(SnapshotName);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn snapshot_names_are_rds_identifiers() {
        for ok in ["tenant-prod-acme-preupgrade-1-4-2-7", "rds:acme-2026-01-01", "a"] {
            assert_eq!(SnapshotName::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "1abc",
            "acme backup",
            "acme;drop",
            "acme/../x",
            &"a".repeat(256),
        ] {
            let err = SnapshotName::parse(bad).unwrap_err().to_string();
            assert!(err.contains("RDS snapshot identifier"), "{bad}: {err}");
        }
        let err = serde_json::from_str::<SnapshotName>("\"not a snapshot\"").unwrap_err();
        assert!(err.to_string().contains("invalid snapshot"), "{err}");
    }

    proptest! {
        #[test]
        fn an_accepted_name_has_only_identifier_characters(s in "\\PC{0,40}") {
            if let Ok(name) = SnapshotName::parse(&s) {
                prop_assert!(name.as_str().chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':'));
            }
        }
    }
}
