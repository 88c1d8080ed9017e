use serde::{Deserialize, Serialize};

use super::schema::{string, string_schema};
use super::{dns_label_problem, string_newtype, InvalidValue};

/// A tenant's identifier: a DNS label of 3–40 characters that starts with a letter,
/// because it becomes part of stack names, namespaces, hostnames and bucket names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let kind = "tenant id";
        if let Some(problem) = dns_label_problem(s, 3, 40) {
            return Err(InvalidValue::new(
                kind,
                s,
                format!("{problem} (example: acme-corp)"),
            ));
        }
        if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(InvalidValue::new(
                kind,
                s,
                "must start with a lowercase letter (example: acme-corp)",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    fn json_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string(
            "^[a-z][a-z0-9-]{1,38}[a-z0-9]$",
            (3, Some(40)),
            "A DNS label of 3-40 characters starting with a lowercase letter.",
            "acme-corp",
        )
    }
}
string_newtype!(TenantId);
string_schema!(TenantId);

/// An AWS region that exists: one of [`super::regions::KNOWN_REGIONS`] or a region
/// configured on top of them (`--extra-regions`), such as `us-east-1`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

impl Region {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if super::regions::is_region(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidValue::new(
                "region",
                s,
                "not an AWS region; use a region name like us-east-1 or eu-central-2, \
                 or configure a region newer than tenantctl with --extra-regions (TENANTCTL_EXTRA_REGIONS)",
            ))
        }
    }

    /// An enum of the regions tenantctl knows and those configured with
    /// `--extra-regions`: exactly what `parse` accepts.
    fn json_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(super::regions::all_regions()))
            .description(Some(
                "An AWS region: one tenantctl knows, or one configured with --extra-regions.",
            ))
            .examples([serde_json::Value::from("eu-west-1")])
            .into()
    }
}
string_newtype!(Region);
string_schema!(Region);

/// A deployment environment (`prod`, `staging`, …): a short DNS label, because it is
/// part of table names, SSM paths and stack names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Environment(String);

impl Environment {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        match dns_label_problem(s, 2, 20) {
            Some(problem) => Err(InvalidValue::new(
                "environment",
                s,
                format!("{problem} (example: prod, staging)"),
            )),
            None => Ok(Self(s.to_owned())),
        }
    }

    fn json_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string(
            "^[a-z0-9][a-z0-9-]{0,18}[a-z0-9]$",
            (2, Some(20)),
            "A DNS label of 2-20 characters.",
            "prod",
        )
    }
}
string_newtype!(Environment);
string_schema!(Environment);

/// A rollout group or ring (`canary`, `ring-1`, `default`): tenants in one group move
/// together and can have their own release override.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Group(String);

impl Group {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        match dns_label_problem(s, 1, 40) {
            Some(problem) => Err(InvalidValue::new(
                "group",
                s,
                format!("{problem} (example: canary, ring-1)"),
            )),
            None => Ok(Self(s.to_owned())),
        }
    }

    pub fn default_group() -> Self {
        Self("default".into())
    }

    fn json_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string(
            "^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$",
            (1, Some(40)),
            "A rollout group (ring): a DNS label of 1-40 characters.",
            "canary",
        )
    }
}
string_newtype!(Group);
string_schema!(Group);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tenant_ids_follow_dns_label_rules() {
        for ok in ["acme", "acme-corp", "a1b", &"a".repeat(40)] {
            assert!(TenantId::parse(ok).is_ok(), "{ok}");
        }
        let cases = [
            ("ab", "3 to 40"),
            ("Acme", "lowercase"),
            ("acme_corp", "'_'"),
            ("-acme", "start or end"),
            ("acme-", "start or end"),
            ("1acme", "start with a lowercase letter"),
        ];
        for (bad, expected) in cases {
            let err = TenantId::parse(bad).unwrap_err().to_string();
            assert!(err.contains(expected), "{bad}: {err}");
            assert!(err.contains("tenant id"), "{err}");
        }
        assert!(TenantId::parse(&"a".repeat(41)).is_err());
    }

    #[test]
    fn regions_must_be_real_aws_regions() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "ap-southeast-4",
            "cn-north-1",
        ] {
            assert!(Region::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "us-east",
            "US-EAST-1",
            "useast1",
            "us-east-0",
            "",
            "u-east-1",
            "zz-nowhere-9",
            "eu-west-9",
        ] {
            let err = Region::parse(bad).unwrap_err().to_string();
            assert!(err.contains("us-east-1"), "{err}");
        }
    }

    #[test]
    fn deserializing_revalidates() {
        let err = serde_json::from_str::<TenantId>("\"NOT_VALID\"").unwrap_err();
        assert!(err.to_string().contains("invalid tenant id"));
        let id: TenantId = serde_json::from_str("\"acme\"").unwrap();
        assert_eq!(id.as_str(), "acme");
    }

    proptest! {
        #[test]
        fn any_accepted_tenant_id_is_a_dns_label(s in "\\PC{0,50}") {
            if let Ok(id) = TenantId::parse(&s) {
                let id = id.as_str();
                prop_assert!((3..=40).contains(&id.len()));
                prop_assert!(id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
                prop_assert!(!id.ends_with('-'));
            }
        }

        #[test]
        fn generated_labels_are_accepted(s in "[a-z][a-z0-9-]{1,38}[a-z0-9]") {
            prop_assert!(TenantId::parse(&s).is_ok());
        }
    }
}
