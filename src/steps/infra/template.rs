//! The tenant stack's template, embedded so `tenantctl` needs no file next to it, and
//! the parameter values each kind of stack operation passes.

use std::collections::BTreeMap;

use crate::domain::TenantSpec;
use crate::steps::{names, RegionSettings};

/// `templates/cloudformation/tenant.yaml`, the template cfn-lint checks in CI.
pub const TEMPLATE: &str = include_str!("../../../templates/cloudformation/tenant.yaml");

/// Parameter names of [`TEMPLATE`].
pub mod param {
    pub const TENANT_ID: &str = "TenantId";
    pub const ENVIRONMENT: &str = "Environment";
    pub const TIER: &str = "Tier";
    pub const DB_SUBNET_GROUP: &str = "DBSubnetGroupName";
    pub const DB_SECURITY_GROUPS: &str = "DBSecurityGroupIds";
    pub const OIDC_PROVIDER_ARN: &str = "OidcProviderArn";
    pub const OIDC_PROVIDER_HOST: &str = "OidcProviderHost";
    pub const NAMESPACE: &str = "KubernetesNamespace";
    /// Set only by a restore, and kept on every later update: clearing it would
    /// replace the cluster with an empty one.
    pub const RESTORE_SNAPSHOT: &str = "RestoreSnapshotIdentifier";
}

/// Outputs later steps read (configuration, backups).
pub const OUTPUTS: [&str; 6] = [
    "DatabaseEndpoint",
    "DatabasePort",
    "DatabaseReaderEndpoint",
    "DatabaseClusterIdentifier",
    "BucketName",
    "WorkloadRoleArn",
];

/// The output naming the database cluster, which a restore replaces.
pub const CLUSTER_OUTPUT: &str = "DatabaseClusterIdentifier";

/// A region setting the template needs is missing from the steps configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "region {region}: {field} is not set; set regions.\"{region}\".{field} in the steps configuration, then retry"
)]
pub struct MissingRegionSetting {
    pub region: String,
    pub field: &'static str,
}

/// How one parameter is passed to `UpdateStack`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamValue {
    Value(String),
    /// `UsePreviousValue`: whatever the stack has now.
    Previous,
}

/// The values the orchestrator owns, from the spec and the region's settings. The
/// restore parameter is not among them: only RestoreDatabase chooses it.
pub fn owned_parameters(
    spec: &TenantSpec,
    settings: &RegionSettings,
) -> Result<BTreeMap<String, String>, MissingRegionSetting> {
    let missing = |field| MissingRegionSetting {
        region: spec.region.to_string(),
        field,
    };
    if settings.db_subnet_group.trim().is_empty() {
        return Err(missing("db_subnet_group"));
    }
    if settings.db_security_group_ids.iter().all(|g| g.trim().is_empty()) {
        return Err(missing("db_security_group_ids"));
    }
    if settings.oidc_provider_arn.trim().is_empty() {
        return Err(missing("oidc_provider_arn"));
    }
    if settings.oidc_provider_host.trim().is_empty() {
        return Err(missing("oidc_provider_host"));
    }
    let security_groups: Vec<&str> = settings
        .db_security_group_ids
        .iter()
        .map(|g| g.trim())
        .filter(|g| !g.is_empty())
        .collect();
    Ok(BTreeMap::from([
        (param::TENANT_ID.into(), spec.id.to_string()),
        (param::ENVIRONMENT.into(), spec.environment.to_string()),
        (param::TIER.into(), spec.tier.to_string()),
        (
            param::DB_SUBNET_GROUP.into(),
            settings.db_subnet_group.trim().into(),
        ),
        (param::DB_SECURITY_GROUPS.into(), security_groups.join(",")),
        (
            param::OIDC_PROVIDER_ARN.into(),
            settings.oidc_provider_arn.trim().into(),
        ),
        (
            param::OIDC_PROVIDER_HOST.into(),
            settings.oidc_provider_host.trim().into(),
        ),
        (param::NAMESPACE.into(), names::namespace(spec)),
    ]))
}

/// Parameters of a new stack: every one explicit (a later `UsePreviousValue` needs a
/// value the stack was given), and no restore.
pub fn create_parameters(owned: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut all = owned.clone();
    all.insert(param::RESTORE_SNAPSHOT.into(), String::new());
    all
}

/// Parameters of an update to the embedded template: the owned values, and the
/// restore snapshot the stack already has.
pub fn update_parameters(
    owned: &BTreeMap<String, String>,
    current: &BTreeMap<String, String>,
) -> Vec<(String, ParamValue)> {
    let mut out: Vec<(String, ParamValue)> = owned
        .iter()
        .map(|(k, v)| (k.clone(), ParamValue::Value(v.clone())))
        .collect();
    let restore = if current.contains_key(param::RESTORE_SNAPSHOT) {
        ParamValue::Previous
    } else {
        // A stack from a template without restores has never been restored.
        ParamValue::Value(String::new())
    };
    out.push((param::RESTORE_SNAPSHOT.into(), restore));
    out
}

/// Parameters that put a stack back on `previous`: values that did not change are
/// passed as `UsePreviousValue` (CloudFormation then reuses its own, exact value),
/// and the restore snapshot always stays what it is now.
pub fn rollback_parameters(
    previous: &BTreeMap<String, String>,
    current: &BTreeMap<String, String>,
) -> Vec<(String, ParamValue)> {
    previous
        .iter()
        .map(|(key, value)| {
            let unchanged = current.get(key) == Some(value);
            let keep_restore = key == param::RESTORE_SNAPSHOT && current.contains_key(key);
            if unchanged || keep_restore {
                (key.clone(), ParamValue::Previous)
            } else {
                (key.clone(), ParamValue::Value(value.clone()))
            }
        })
        .collect()
}

/// Does the stack have `previous`'s parameters (the restore snapshot aside)?
pub fn same_parameters(previous: &BTreeMap<String, String>, current: &BTreeMap<String, String>) -> bool {
    let relevant = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.iter()
            .filter(|(k, _)| k.as_str() != param::RESTORE_SNAPSHOT)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    relevant(previous) == relevant(current)
}

/// Parameters of a restore: the template and every value as they are, but the snapshot.
pub fn restore_parameters(current: &BTreeMap<String, String>, snapshot: &str) -> Vec<(String, ParamValue)> {
    let mut out: Vec<(String, ParamValue)> = current
        .keys()
        .filter(|k| k.as_str() != param::RESTORE_SNAPSHOT)
        .map(|k| (k.clone(), ParamValue::Previous))
        .collect();
    out.push((param::RESTORE_SNAPSHOT.into(), ParamValue::Value(snapshot.into())));
    out
}

/// Outputs later steps need that the stack does not have.
pub fn missing_outputs(outputs: &BTreeMap<String, String>) -> Vec<&'static str> {
    OUTPUTS
        .iter()
        .copied()
        .filter(|name| !outputs.contains_key(*name))
        .collect()
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
            group: Group::default_group(),
            tier: Tier::Medium,
            hostnames: vec![Hostname::parse("acme.example.com").unwrap()],
            pinned_release: None,
            maintenance: None,
            platform: None,
            pinned_platform: None,
        }
    }

    fn settings() -> RegionSettings {
        RegionSettings {
            db_subnet_group: "tenants-db".into(),
            db_security_group_ids: vec!["sg-0a".into(), " sg-0b ".into()],
            oidc_provider_arn:
                "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/X".into(),
            oidc_provider_host: "oidc.eks.eu-west-1.amazonaws.com/id/X".into(),
            ..Default::default()
        }
    }

    fn section(name: &str) -> Vec<String> {
        // Top-level keys of one section: lines indented by exactly two spaces.
        TEMPLATE
            .lines()
            .skip_while(|l| *l != format!("{name}:"))
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with(' ') || l.starts_with('#'))
            .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':'))
            .map(|l| l.trim().trim_end_matches(':').to_owned())
            .collect()
    }

    #[test]
    fn parameters_come_from_the_spec_and_the_region() {
        let p = owned_parameters(&spec(), &settings()).unwrap();
        assert_eq!(p[param::TENANT_ID], "acme");
        assert_eq!(p[param::ENVIRONMENT], "prod");
        assert_eq!(p[param::TIER], "medium");
        assert_eq!(p[param::DB_SUBNET_GROUP], "tenants-db");
        assert_eq!(p[param::DB_SECURITY_GROUPS], "sg-0a,sg-0b");
        assert_eq!(p[param::NAMESPACE], "tenant-acme");
        assert!(
            !p.contains_key(param::RESTORE_SNAPSHOT),
            "only a restore picks the snapshot"
        );
    }

    #[test]
    fn the_template_declares_every_parameter_passed_and_every_output_read() {
        let declared = section("Parameters");
        let mut passed: Vec<String> = create_parameters(&owned_parameters(&spec(), &settings()).unwrap())
            .into_keys()
            .collect();
        passed.sort();
        let mut declared_sorted = declared.clone();
        declared_sorted.sort();
        assert_eq!(
            passed, declared_sorted,
            "a new stack gets every parameter explicitly"
        );
        let outputs = section("Outputs");
        for name in OUTPUTS {
            assert!(outputs.contains(&name.to_owned()), "template lacks output {name}");
        }
    }

    #[test]
    fn the_template_names_no_iam_resource_so_capability_iam_is_enough() {
        for named in [
            "RoleName:",
            "UserName:",
            "GroupName:",
            "InstanceProfileName:",
            "ManagedPolicyName:",
        ] {
            let sets = TEMPLATE.lines().any(|l| l.trim_start().starts_with(named));
            assert!(!sets, "template sets {named} so it needs CAPABILITY_NAMED_IAM");
        }
        assert!(
            TEMPLATE.contains("AWS::IAM::Role"),
            "template creates IAM resources"
        );
    }

    #[test]
    fn a_missing_region_setting_says_what_to_set() {
        let mut s = settings();
        s.db_security_group_ids = vec![" ".into()];
        let err = owned_parameters(&spec(), &s).unwrap_err().to_string();
        assert!(
            err.contains("regions.\"eu-west-1\".db_security_group_ids"),
            "{err}"
        );
        let mut s = settings();
        s.oidc_provider_host.clear();
        let err = owned_parameters(&spec(), &s).unwrap_err();
        assert_eq!(err.field, "oidc_provider_host");
    }

    #[test]
    fn updates_keep_the_restore_snapshot_of_the_stack() {
        let owned = owned_parameters(&spec(), &settings()).unwrap();
        let current = create_parameters(&owned);
        let plan = update_parameters(&owned, &current);
        assert!(plan.contains(&(param::RESTORE_SNAPSHOT.into(), ParamValue::Previous)));
        assert!(plan.contains(&(param::TIER.into(), ParamValue::Value("medium".into()))));
        // A stack from before restores existed gets the empty value explicitly.
        let plan = update_parameters(&owned, &owned);
        assert!(plan.contains(&(param::RESTORE_SNAPSHOT.into(), ParamValue::Value(String::new()))));
    }

    #[test]
    fn a_rollback_passes_only_changed_values_and_never_touches_the_restore() {
        let previous = BTreeMap::from([
            ("Tier".to_owned(), "small".to_owned()),
            ("DBSubnetGroupName".to_owned(), "old".to_owned()),
            (param::RESTORE_SNAPSHOT.to_owned(), String::new()),
        ]);
        let current = BTreeMap::from([
            ("Tier".to_owned(), "small".to_owned()),
            ("DBSubnetGroupName".to_owned(), "new".to_owned()),
            (param::RESTORE_SNAPSHOT.to_owned(), "snap-1".to_owned()),
            ("AddedByTheUpgrade".to_owned(), "x".to_owned()),
        ]);
        let plan = rollback_parameters(&previous, &current);
        assert_eq!(
            plan,
            vec![
                ("DBSubnetGroupName".into(), ParamValue::Value("old".into())),
                (param::RESTORE_SNAPSHOT.into(), ParamValue::Previous),
                ("Tier".into(), ParamValue::Previous),
            ]
        );
        assert!(!same_parameters(&previous, &current));
        let mut back = previous.clone();
        back.insert(param::RESTORE_SNAPSHOT.into(), "snap-1".into());
        assert!(
            same_parameters(&previous, &back),
            "the restore snapshot is not compared"
        );
    }

    #[test]
    fn a_restore_changes_only_the_snapshot() {
        let current = BTreeMap::from([
            ("Tier".to_owned(), "small".to_owned()),
            (param::RESTORE_SNAPSHOT.to_owned(), String::new()),
        ]);
        assert_eq!(
            restore_parameters(&current, "snap-2"),
            vec![
                ("Tier".into(), ParamValue::Previous),
                (param::RESTORE_SNAPSHOT.into(), ParamValue::Value("snap-2".into())),
            ]
        );
    }

    #[test]
    fn missing_outputs_are_named() {
        let mut outputs: BTreeMap<String, String> =
            OUTPUTS.iter().map(|o| (o.to_string(), "v".to_string())).collect();
        assert!(missing_outputs(&outputs).is_empty());
        outputs.remove("BucketName");
        assert_eq!(missing_outputs(&outputs), vec!["BucketName"]);
    }
}
