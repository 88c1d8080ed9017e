use serde::{Deserialize, Serialize};

use super::{string_newtype, InvalidValue};

/// The OCI annotation on a release image's manifest that declares the database schema
/// the release needs. A release without it declares no schema and runs no migration.
pub const SCHEMA_ANNOTATION: &str = "io.tenant-orchestrator.schema-version";

/// A database schema version as a release declares it: dot-separated groups of digits
/// (`42`, `2026.11.3`), at most 40 characters. Compared for equality only: the product
/// runs the migration whenever the target differs from what the database is on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SchemaVersion(String);

impl SchemaVersion {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let ok = !s.is_empty()
            && s.len() <= 40
            && s.split('.')
                .all(|group| !group.is_empty() && group.bytes().all(|b| b.is_ascii_digit()));
        match ok {
            true => Ok(Self(s.to_owned())),
            false => Err(InvalidValue::new(
                "schema version",
                s,
                format!(
                    "set the image annotation {SCHEMA_ANNOTATION} to dot-separated digits such as \
                     \"42\" or \"2026.11.3\" (at most 40 characters)"
                ),
            )),
        }
    }

    fn json_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        super::schema::string(
            "^[0-9]+(\\.[0-9]+)*$",
            (1, Some(40)),
            "A database schema version, as a release image declares it in its annotation \
             io.tenant-orchestrator.schema-version.",
            "2026.11.3",
        )
    }
}
string_newtype!(SchemaVersion);
super::schema::string_schema!(SchemaVersion);

/// What happens to the database when an upgrade whose migration ran fails: a Helm
/// rollback cannot undo a migration, so the pre-upgrade snapshot is restored either
/// at once by the rollback, or once an operator approves it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationRestore {
    /// The rollback restores the snapshot itself.
    Automatic,
    /// The rollback stops (the tenant goes Failed) until an operator restores the
    /// snapshot with `tenantctl tenant restore`.
    #[default]
    Approval,
}

impl MigrationRestore {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationRestore::Automatic => "automatic",
            MigrationRestore::Approval => "approval",
        }
    }
}

impl std::fmt::Display for MigrationRestore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The schema version an image manifest (OCI image manifest or index, or Docker v2)
/// declares in its annotations: `Ok(None)` when it declares none, an error when the
/// manifest is not JSON or the annotation is not a schema version.
pub fn declared_schema(manifest: &str) -> Result<Option<SchemaVersion>, InvalidValue> {
    let parsed: serde_json::Value = serde_json::from_str(manifest).map_err(|e| {
        InvalidValue::new(
            "image manifest",
            manifest,
            format!("is not JSON ({e}); push an OCI or Docker v2 manifest"),
        )
    })?;
    match parsed.get("annotations").and_then(|a| a.get(SCHEMA_ANNOTATION)) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(version)) => SchemaVersion::parse(version).map(Some),
        Some(other) => Err(InvalidValue::new(
            "schema version",
            &other.to_string(),
            format!("the annotation {SCHEMA_ANNOTATION} must be a string such as \"42\""),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn schema_versions_are_dotted_digits() {
        for ok in ["42", "2026.11.3", "0", "1.0"] {
            assert_eq!(SchemaVersion::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "v42", "1..2", ".1", "1.", "1.2-beta", "4 2", &"1".repeat(41)] {
            let err = SchemaVersion::parse(bad).unwrap_err().to_string();
            assert!(err.contains(SCHEMA_ANNOTATION), "{bad}: {err}");
        }
        let err = serde_json::from_str::<SchemaVersion>("\"latest\"").unwrap_err();
        assert!(err.to_string().contains("invalid schema version"), "{err}");
    }

    #[test]
    fn the_restore_policy_reads_and_defaults_to_approval() {
        assert_eq!(MigrationRestore::default(), MigrationRestore::Approval);
        let p: MigrationRestore = serde_json::from_str("\"automatic\"").unwrap();
        assert_eq!(p, MigrationRestore::Automatic);
        assert!(serde_json::from_str::<MigrationRestore>("\"never\"").is_err());
    }

    #[test]
    fn a_manifest_declares_its_schema_in_an_annotation() {
        let oci = r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "annotations": {"io.tenant-orchestrator.schema-version": "2026.11.3", "other": "x"}}"#;
        assert_eq!(declared_schema(oci).unwrap().unwrap().as_str(), "2026.11.3");
        let docker =
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json"}"#;
        assert_eq!(declared_schema(docker).unwrap(), None);
        let other = r#"{"schemaVersion": 2, "annotations": {"org.opencontainers.image.created": "2026"}}"#;
        assert_eq!(declared_schema(other).unwrap(), None);
    }

    #[test]
    fn a_bad_manifest_or_annotation_says_what_is_wrong() {
        let err = declared_schema("not json").unwrap_err().to_string();
        assert!(err.contains("is not JSON"), "{err}");
        let bad = r#"{"annotations": {"io.tenant-orchestrator.schema-version": "next"}}"#;
        let err = declared_schema(bad).unwrap_err().to_string();
        assert!(err.contains("invalid schema version \"next\""), "{err}");
        let number = r#"{"annotations": {"io.tenant-orchestrator.schema-version": 42}}"#;
        let err = declared_schema(number).unwrap_err().to_string();
        assert!(err.contains("must be a string"), "{err}");
    }

    proptest! {
        #[test]
        fn an_accepted_version_is_digits_and_dots(s in "\\PC{0,20}") {
            if let Ok(v) = SchemaVersion::parse(&s) {
                prop_assert!(v.as_str().bytes().all(|b| b.is_ascii_digit() || b == b'.'));
            }
        }
    }
}
