//! Which parameters a tenant's configuration consists of, and what it takes to bring
//! the parameter store there. Pure: the I/O is in the steps.

use std::collections::BTreeMap;

use crate::domain::TenantSpec;

/// How a parameter is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    StringList,
    /// Encrypted with the account's SSM key; generated once, never rotated by a re-run.
    Secret,
}

impl Kind {
    pub fn parameter_type(self) -> aws_sdk_ssm::types::ParameterType {
        use aws_sdk_ssm::types::ParameterType;
        match self {
            Kind::String => ParameterType::String,
            Kind::StringList => ParameterType::StringList,
            Kind::Secret => ParameterType::SecureString,
        }
    }
}

/// A parameter as the store holds it. A secret's value is whatever the store returns
/// without decryption: only its type is ever compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub value: String,
    pub kind: Kind,
}

/// The secrets every tenant has, relative to its prefix.
pub const SECRETS: &[&str] = &["secrets/session-key"];

/// Stack outputs the configuration is derived from, with the parameter each becomes.
const FROM_STACK: &[(&str, &str)] = &[
    ("DatabaseEndpoint", "config/database-endpoint"),
    ("DatabasePort", "config/database-port"),
    ("DatabaseReaderEndpoint", "config/database-reader-endpoint"),
    ("BucketName", "config/bucket"),
];

/// The non-secret configuration of a tenant, by name relative to its prefix, or the
/// stack outputs that are missing to derive it.
pub fn configuration(
    spec: &TenantSpec,
    stack_outputs: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, (String, Kind)>, Vec<&'static str>> {
    let mut params = BTreeMap::new();
    let mut put = |name: &str, value: String, kind: Kind| {
        params.insert(name.to_owned(), (value, kind));
    };
    put("config/tenant-id", spec.id.to_string(), Kind::String);
    put("config/environment", spec.environment.to_string(), Kind::String);
    put("config/region", spec.region.to_string(), Kind::String);
    put("config/tier", spec.tier.to_string(), Kind::String);
    put("config/group", spec.group.to_string(), Kind::String);
    let hostnames: Vec<String> = spec.hostnames.iter().map(|h| h.to_string()).collect();
    put("config/hostnames", hostnames.join(","), Kind::StringList);
    let mut missing = Vec::new();
    for (output, name) in FROM_STACK {
        match stack_outputs.get(*output) {
            Some(value) => put(name, value.clone(), Kind::String),
            None => missing.push(*output),
        }
    }
    if missing.is_empty() {
        Ok(params)
    } else {
        Err(missing)
    }
}

/// One write to the parameter store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// A parameter that does not exist yet (created with the tenant's tags).
    Create { name: String, value: String, kind: Kind },
    /// A parameter whose value or type differs from what it should be.
    Overwrite { name: String, value: String, kind: Kind },
    /// A secret that does not exist yet; its value is generated when it is written.
    CreateSecret { name: String },
}

impl Write {
    pub fn name(&self) -> &str {
        match self {
            Write::Create { name, .. } | Write::Overwrite { name, .. } | Write::CreateSecret { name } => name,
        }
    }
}

/// The writes that bring `existing` (relative name → stored parameter) to `wanted`
/// plus the secrets. Equal parameters are left alone, so a re-run writes nothing and
/// no version is added; an existing secret keeps its value, and is only rewritten (with
/// the same value) if it was somehow stored unencrypted.
pub fn plan(wanted: &BTreeMap<String, (String, Kind)>, existing: &BTreeMap<String, Stored>) -> Vec<Write> {
    let mut writes = Vec::new();
    for (name, (value, kind)) in wanted {
        match existing.get(name) {
            None => writes.push(Write::Create {
                name: name.clone(),
                value: value.clone(),
                kind: *kind,
            }),
            Some(stored) if stored.value != *value || stored.kind != *kind => writes.push(Write::Overwrite {
                name: name.clone(),
                value: value.clone(),
                kind: *kind,
            }),
            Some(_) => {}
        }
    }
    for name in SECRETS {
        match existing.get(*name) {
            None => writes.push(Write::CreateSecret {
                name: (*name).to_owned(),
            }),
            Some(stored) if stored.kind != Kind::Secret => writes.push(Write::Overwrite {
                name: (*name).to_owned(),
                value: stored.value.clone(),
                kind: Kind::Secret,
            }),
            Some(_) => {}
        }
    }
    writes
}

/// Whether DeleteConfig removes the parameter `name` found under `prefix`: everything
/// below the prefix except what the CloudFormation stack owns (`infra/`), which goes
/// with the stack. The check on the separator keeps tenant `acme` away from
/// `acme-corp`'s parameters whatever the store's path matching does.
pub fn owned_by_config(prefix: &str, name: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with("infra/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Environment, Group, Hostname, Region, TenantId, Tier};

    fn spec() -> TenantSpec {
        TenantSpec {
            id: TenantId::parse("acme").unwrap(),
            region: Region::parse("eu-west-1").unwrap(),
            environment: Environment::parse("prod").unwrap(),
            group: Group::parse("canary").unwrap(),
            tier: Tier::Medium,
            hostnames: ["acme.example.com", "shop.acme.example.com"]
                .iter()
                .map(|h| Hostname::parse(h).unwrap())
                .collect(),
            pinned_release: None,
            maintenance: None,
            platform: None,
            pinned_platform: None,
        }
    }

    fn outputs() -> BTreeMap<String, String> {
        [
            ("DatabaseEndpoint", "db.acme.internal"),
            ("DatabasePort", "5432"),
            ("DatabaseReaderEndpoint", "db-ro.acme.internal"),
            ("BucketName", "tenant-prod-acme-bucket"),
            ("WorkloadRoleArn", "arn:aws:iam::1:role/x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn configuration_comes_from_the_spec_and_the_stack() {
        let c = configuration(&spec(), &outputs()).unwrap();
        assert_eq!(c["config/tier"], ("medium".into(), Kind::String));
        assert_eq!(c["config/group"], ("canary".into(), Kind::String));
        assert_eq!(
            c["config/hostnames"],
            ("acme.example.com,shop.acme.example.com".into(), Kind::StringList)
        );
        assert_eq!(c["config/database-endpoint"].0, "db.acme.internal");
        assert_eq!(c["config/bucket"].0, "tenant-prod-acme-bucket");
        assert!(
            c.keys().all(|k| k.starts_with("config/")),
            "no secret is derived: {c:?}"
        );
    }

    #[test]
    fn missing_stack_outputs_are_named() {
        let mut o = outputs();
        o.remove("DatabaseEndpoint");
        o.remove("BucketName");
        assert_eq!(
            configuration(&spec(), &o).unwrap_err(),
            vec!["DatabaseEndpoint", "BucketName"]
        );
    }

    #[test]
    fn only_differences_are_written_and_secrets_are_kept() {
        let wanted = configuration(&spec(), &outputs()).unwrap();
        let mut existing: BTreeMap<String, Stored> = wanted
            .iter()
            .map(|(k, (v, kind))| {
                (
                    k.clone(),
                    Stored {
                        value: v.clone(),
                        kind: *kind,
                    },
                )
            })
            .collect();
        existing.insert(
            "secrets/session-key".into(),
            Stored {
                value: "s3cret".into(),
                kind: Kind::Secret,
            },
        );
        assert!(plan(&wanted, &existing).is_empty());

        existing.get_mut("config/tier").unwrap().value = "small".into();
        existing.remove("config/bucket");
        existing.get_mut("secrets/session-key").unwrap().kind = Kind::String;
        let writes = plan(&wanted, &existing);
        assert_eq!(
            writes,
            vec![
                Write::Create {
                    name: "config/bucket".into(),
                    value: "tenant-prod-acme-bucket".into(),
                    kind: Kind::String
                },
                Write::Overwrite {
                    name: "config/tier".into(),
                    value: "medium".into(),
                    kind: Kind::String
                },
                Write::Overwrite {
                    name: "secrets/session-key".into(),
                    value: "s3cret".into(),
                    kind: Kind::Secret
                },
            ]
        );
        existing.remove("secrets/session-key");
        assert!(plan(&wanted, &existing).contains(&Write::CreateSecret {
            name: "secrets/session-key".into()
        }));
    }

    #[test]
    fn delete_config_leaves_the_stacks_parameters_and_other_tenants() {
        let p = "/prod/tenants/acme";
        assert!(owned_by_config(p, "/prod/tenants/acme/config/tier"));
        assert!(owned_by_config(p, "/prod/tenants/acme/secrets/session-key"));
        assert!(!owned_by_config(p, "/prod/tenants/acme/infra/database-endpoint"));
        assert!(!owned_by_config(p, "/prod/tenants/acme-corp/config/tier"));
        assert!(!owned_by_config(p, "/prod/tenants/acme"));
    }
}
