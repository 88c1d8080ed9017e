//! The tenant-specific values of the chart (`charts/tenant`), rendered from the spec,
//! the stack outputs and the resolved image. Exactly the contract of the chart's
//! README and `values.schema.json`; everything else keeps the chart's defaults.

use serde::Serialize;

use crate::domain::{ReleaseVersion, TenantSpec};
use crate::record::TenantFacts;
use crate::steps::names;

/// The service account the stack's workload role trusts
/// (`system:serviceaccount:<namespace>:tenant-app`).
const SERVICE_ACCOUNT: &str = "tenant-app";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValuesError {
    #[error("artifact not resolved: no image digest is recorded for release {0}; CheckArtifact records it")]
    ArtifactNotResolved(String),
    #[error("image {0:?} is not a reference by digest (<repository>@sha256:<64 hex>)")]
    NotByDigest(String),
    #[error("stack output {0} is missing; the infrastructure step records the stack's outputs")]
    MissingOutput(&'static str),
    #[error("stack output DatabasePort {0:?} is not a port number")]
    BadPort(String),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TenantValues {
    tenant: TenantBlock,
    release: String,
    image: ImageBlock,
    hostnames: Vec<String>,
    service_account: ServiceAccountBlock,
    config: ConfigBlock,
    ingress: IngressBlock,
    #[serde(skip_serializing_if = "Option::is_none")]
    migration: Option<MigrationBlock>,
}

/// The schema the release declares: the chart's pre-upgrade hook Job migrates the
/// database to it (a migration tool leaves a database already on it as it is).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MigrationBlock {
    schema_version: String,
}

#[derive(Debug, Serialize)]
struct TenantBlock {
    id: String,
    environment: String,
    region: String,
    tier: String,
    group: String,
}

#[derive(Debug, Serialize)]
struct ImageBlock {
    repository: String,
    digest: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ServiceAccountBlock {
    name: &'static str,
    role_arn: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigBlock {
    ssm_prefix: String,
    database_endpoint: String,
    database_port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    database_reader_endpoint: Option<String>,
    bucket_name: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct IngressBlock {
    group_name: String,
}

/// Splits `repo@sha256:<hex>` into repository and digest.
fn split_image(image: &str) -> Result<(String, String), ValuesError> {
    let not_by_digest = || ValuesError::NotByDigest(image.to_owned());
    let (repository, digest) = image.split_once('@').ok_or_else(not_by_digest)?;
    let hex = digest.strip_prefix("sha256:").ok_or_else(not_by_digest)?;
    let is_hex = hex.len() == 64
        && hex
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    if repository.is_empty() || !is_hex {
        return Err(not_by_digest());
    }
    Ok((repository.to_owned(), digest.to_owned()))
}

/// The values for deploying `release` of the tenant, as JSON.
pub fn render(
    spec: &TenantSpec,
    release: &ReleaseVersion,
    facts: &TenantFacts,
    ingress_group_prefix: &str,
) -> Result<serde_json::Value, ValuesError> {
    let image = facts
        .image
        .as_deref()
        .ok_or_else(|| ValuesError::ArtifactNotResolved(release.to_string()))?;
    let (repository, digest) = split_image(image)?;
    let output = |name: &'static str| {
        facts
            .stack_outputs
            .get(name)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or(ValuesError::MissingOutput(name))
    };
    let port = output("DatabasePort")?;
    let database_port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or(ValuesError::BadPort(port))?;
    let values = TenantValues {
        tenant: TenantBlock {
            id: spec.id.to_string(),
            environment: spec.environment.to_string(),
            region: spec.region.to_string(),
            tier: spec.tier.to_string(),
            group: spec.group.to_string(),
        },
        release: release.to_string(),
        image: ImageBlock { repository, digest },
        hostnames: spec.hostnames.iter().map(|h| h.to_string()).collect(),
        service_account: ServiceAccountBlock {
            name: SERVICE_ACCOUNT,
            role_arn: output("WorkloadRoleArn")?,
        },
        config: ConfigBlock {
            ssm_prefix: names::ssm_prefix(spec),
            database_endpoint: output("DatabaseEndpoint")?,
            database_port,
            database_reader_endpoint: output("DatabaseReaderEndpoint").ok(),
            bucket_name: output("BucketName")?,
        },
        ingress: IngressBlock {
            group_name: format!("{ingress_group_prefix}{}", spec.region),
        },
        migration: facts.target_schema.as_ref().map(|schema| MigrationBlock {
            schema_version: schema.to_string(),
        }),
    };
    Ok(serde_json::to_value(values).expect("values serialize to JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Environment, Group, Hostname, Region, TenantId, Tier};

    const DIGEST: &str = "sha256:3f1c9a0e5b7d2c4f6a8e0b1d3c5f7a9e2b4d6f8a0c1e3b5d7f9a2c4e6b8d0f1a";

    fn globex() -> (TenantSpec, TenantFacts) {
        let spec = TenantSpec {
            id: TenantId::parse("globex").unwrap(),
            region: Region::parse("us-east-1").unwrap(),
            environment: Environment::parse("prod").unwrap(),
            group: Group::default_group(),
            tier: Tier::Medium,
            hostnames: ["globex.example.com", "app.globex.example.net"]
                .iter()
                .map(|h| Hostname::parse(h).unwrap())
                .collect(),
            pinned_release: None,
            maintenance: None,
            platform: None,
            pinned_platform: None,
        };
        let cluster = "tenant-prod-globex-databasecluster-abcdef123456";
        let outputs = [
            (
                "DatabaseEndpoint",
                format!("{cluster}.cluster-c9akciq32.us-east-1.rds.amazonaws.com"),
            ),
            (
                "DatabaseReaderEndpoint",
                format!("{cluster}.cluster-ro-c9akciq32.us-east-1.rds.amazonaws.com"),
            ),
            ("DatabasePort", "5432".into()),
            ("BucketName", "tenant-prod-globex-bucket-1a2b3c4d5e6f".into()),
            (
                "WorkloadRoleArn",
                "arn:aws:iam::123456789012:role/tenant-prod-globex-WorkloadRole-1A2B3C4D5E6F".into(),
            ),
        ];
        let facts = TenantFacts {
            image: Some(format!(
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/tenant-app@{DIGEST}"
            )),
            stack_outputs: outputs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            ..Default::default()
        };
        (spec, facts)
    }

    #[test]
    fn renders_exactly_the_charts_documented_medium_tenant() {
        let (spec, facts) = globex();
        let rendered = render(
            &spec,
            &ReleaseVersion::parse("1.4.2").unwrap(),
            &facts,
            "tenants-",
        )
        .unwrap();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/tenant/ci/medium-values.yaml");
        let documented: serde_json::Value =
            serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(rendered, documented);
    }

    #[test]
    fn the_reader_endpoint_is_optional_and_the_port_an_integer() {
        let (spec, mut facts) = globex();
        facts.stack_outputs.remove("DatabaseReaderEndpoint");
        let v = render(
            &spec,
            &ReleaseVersion::parse("2.0.0").unwrap(),
            &facts,
            "tenants-",
        )
        .unwrap();
        assert!(v["config"].get("databaseReaderEndpoint").is_none());
        assert_eq!(v["config"]["databasePort"], serde_json::json!(5432));
        assert_eq!(v["release"], "2.0.0");
    }

    #[test]
    fn a_release_declaring_a_schema_asks_the_chart_to_migrate_to_it() {
        let (spec, mut facts) = globex();
        let release = ReleaseVersion::parse("1.5.0").unwrap();
        let v = render(&spec, &release, &facts, "tenants-").unwrap();
        assert!(v.get("migration").is_none(), "{v}");
        facts.target_schema = Some(crate::domain::SchemaVersion::parse("2026.11.3").unwrap());
        let v = render(&spec, &release, &facts, "tenants-").unwrap();
        assert_eq!(
            v["migration"],
            serde_json::json!({ "schemaVersion": "2026.11.3" })
        );
    }

    #[test]
    fn missing_or_malformed_inputs_name_what_is_wrong() {
        let (spec, facts) = globex();
        let release = ReleaseVersion::parse("1.4.2").unwrap();
        let no_image = TenantFacts {
            image: None,
            ..facts.clone()
        };
        let err = render(&spec, &release, &no_image, "tenants-").unwrap_err();
        assert!(err.to_string().starts_with("artifact not resolved"), "{err}");

        let tagged = TenantFacts {
            image: Some("123456789012.dkr.ecr.us-east-1.amazonaws.com/tenant-app:1.4.2".into()),
            ..facts.clone()
        };
        assert!(matches!(
            render(&spec, &release, &tagged, "t-"),
            Err(ValuesError::NotByDigest(_))
        ));

        let mut no_role = facts.clone();
        no_role.stack_outputs.remove("WorkloadRoleArn");
        assert_eq!(
            render(&spec, &release, &no_role, "t-"),
            Err(ValuesError::MissingOutput("WorkloadRoleArn"))
        );

        let mut bad_port = facts;
        bad_port
            .stack_outputs
            .insert("DatabasePort".into(), "postgres".into());
        assert_eq!(
            render(&spec, &release, &bad_port, "t-"),
            Err(ValuesError::BadPort("postgres".into()))
        );
    }
}
