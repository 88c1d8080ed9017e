//! Target accounts: where the tenants of one environment and region live when that is
//! not the orchestrator's own AWS account. Each target names the account and the role
//! the orchestrator assumes there (STS `AssumeRole` with an external id); a tenant
//! whose environment and region have no target uses the orchestrator's own
//! credentials.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::{Environment, Region};

/// The session name when a target does not give one: it shows in the target
/// account's CloudTrail as the assumed role's session.
pub const DEFAULT_SESSION_NAME: &str = "tenant-orchestrator";

/// How long before assumed credentials expire they are replaced, so no call starts
/// with credentials about to lapse (the SDK's cache jitters it down to as little as
/// half, so replicas do not all refresh at once).
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// The account and role the tenants of one environment and region live in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub environment: Environment,
    pub region: Region,
    /// The 12-digit AWS account id the tenants' resources are created in.
    pub account: String,
    /// The role in `account` the orchestrator assumes
    /// (`arn:aws:iam::<account>:role/<name>`).
    pub role_arn: String,
    /// The external id the role's trust policy requires (`sts:ExternalId`).
    #[serde(default)]
    pub external_id: String,
    /// The assumed role's session name; `tenant-orchestrator` when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_name: Option<String>,
    /// How long assumed credentials last, 900 to 43200 seconds (and at most the
    /// role's maximum session duration); STS's default of one hour when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_seconds: Option<u32>,
}

impl Target {
    pub fn session_name(&self) -> &str {
        self.session_name.as_deref().unwrap_or(DEFAULT_SESSION_NAME)
    }

    /// What is wrong with this target, if anything; `at` says where it is.
    fn problem(&self, at: &str) -> Option<String> {
        let account_ok = self.account.len() == 12 && self.account.bytes().all(|b| b.is_ascii_digit());
        if !account_ok {
            return Some(format!(
                "{at}: account {:?} is not an AWS account id; give the 12 digits of the account the tenants live in",
                self.account
            ));
        }
        match role_arn_account(&self.role_arn) {
            None => {
                return Some(format!(
                    "{at}: role_arn {:?} is not an IAM role ARN; give it as arn:aws:iam::{}:role/NAME",
                    self.role_arn, self.account
                ))
            }
            Some(account) if account != self.account => {
                return Some(format!(
                    "{at}: role_arn {:?} is in account {account}, not in the target's account {}; \
                     name the role in the account the tenants live in",
                    self.role_arn, self.account
                ))
            }
            Some(_) => {}
        }
        if self.external_id.is_empty() {
            return Some(format!(
                "{at}: external_id is missing; set it to the value the role's trust policy requires \
                 in its sts:ExternalId condition"
            ));
        }
        let external_ok = (2..=1224).contains(&self.external_id.len())
            && self
                .external_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/-_".contains(c));
        if !external_ok {
            return Some(format!(
                "{at}: external_id must be 2 to 1224 characters of letters, digits and +=,.@:/-_"
            ));
        }
        if let Some(name) = &self.session_name {
            let name_ok = (2..=64).contains(&name.len())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c));
            if !name_ok {
                return Some(format!(
                    "{at}: session_name {name:?} must be 2 to 64 characters of letters, digits and +=,.@-_"
                ));
            }
        }
        if let Some(seconds) = self.session_seconds {
            if !(900..=43_200).contains(&seconds) {
                return Some(format!(
                    "{at}: session_seconds {seconds} is outside what STS accepts; give 900 to 43200 \
                     (and at most the role's maximum session duration)"
                ));
            }
        }
        None
    }
}

/// The account id in an IAM role ARN (`arn:<partition>:iam::<account>:role/<path/name>`).
fn role_arn_account(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (arn_prefix, partition, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let name = resource.strip_prefix("role/")?;
    let well_formed = arn_prefix == "arn"
        && partition.starts_with("aws")
        && service == "iam"
        && region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && !name.ends_with('/');
    well_formed.then_some(account)
}

/// Every target of the steps configuration (`targets`): at most one per environment
/// and region, and one account per region (the certificate and maintenance steps act
/// on the region's shared ALB and hosted zone, which live in one account).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Targets(pub Vec<Target>);

impl Targets {
    /// The first problem of the configured targets, said so that an operator can fix it.
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = BTreeSet::new();
        for (i, target) in self.0.iter().enumerate() {
            let at = format!("targets[{i}] ({} {})", target.environment, target.region);
            if let Some(problem) = target.problem(&at) {
                return Err(problem);
            }
            let shared = (self.0.iter()).find(|t| t.region == target.region && t.account != target.account);
            if let Some(other) = shared {
                return Err(format!(
                    "{at}: region {} already has a target in account {}; the region's shared ALB, hosted \
                     zone and certificates live in one account, so every target of a region names the same account",
                    target.region, other.account
                ));
            }
            if !seen.insert((&target.environment, &target.region)) {
                return Err(format!(
                    "{at}: environment {} and region {} already have a target; keep one target per \
                     environment and region",
                    target.environment, target.region
                ));
            }
        }
        Ok(())
    }

    /// The target of tenants in `environment` and `region`; none, the orchestrator's own account.
    pub fn find(&self, environment: &Environment, region: &Region) -> Option<&Target> {
        (self.0.iter()).find(|t| &t.environment == environment && &t.region == region)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(environment: &str, region: &str, account: &str, role_arn: &str) -> Target {
        Target {
            environment: Environment::parse(environment).unwrap(),
            region: Region::parse(region).unwrap(),
            account: account.into(),
            role_arn: role_arn.into(),
            external_id: "tenant-orchestrator-prod".into(),
            session_name: None,
            session_seconds: None,
        }
    }

    fn prod_eu() -> Target {
        target(
            "prod",
            "eu-west-1",
            "111111111111",
            "arn:aws:iam::111111111111:role/tenant-orchestrator",
        )
    }

    fn problem_of(targets: Vec<Target>) -> String {
        Targets(targets).validate().expect_err("the targets are refused")
    }

    #[test]
    fn a_well_formed_target_is_accepted_and_found_by_environment_and_region() {
        let other = target(
            "prod",
            "us-east-1",
            "222222222222",
            "arn:aws:iam::222222222222:role/ops/tenant-orchestrator",
        );
        let targets = Targets(vec![prod_eu(), other.clone()]);
        targets.validate().expect("valid");
        let prod = Environment::parse("prod").unwrap();
        let us = Region::parse("us-east-1").unwrap();
        assert_eq!(targets.find(&prod, &us), Some(&other));
        let staging = Environment::parse("staging").unwrap();
        assert_eq!(targets.find(&staging, &us), None, "no target: own account");
    }

    #[test]
    fn the_configuration_reads_targets_from_json() {
        let config: crate::steps::StepsConfig = serde_json::from_value(serde_json::json!({
            "targets": [{
                "environment": "prod", "region": "eu-west-1", "account": "111111111111",
                "role_arn": "arn:aws:iam::111111111111:role/tenant-orchestrator",
                "external_id": "tenant-orchestrator-prod", "session_seconds": 1800
            }]
        }))
        .unwrap();
        assert_eq!(config.targets.0[0].session_seconds, Some(1800));
        assert_eq!(config.targets.0[0].session_name(), DEFAULT_SESSION_NAME);
    }

    #[test]
    fn a_role_in_another_account_than_the_target_is_refused() {
        let mut t = prod_eu();
        t.role_arn = "arn:aws:iam::222222222222:role/tenant-orchestrator".into();
        let problem = problem_of(vec![t]);
        assert!(
            problem.contains("is in account 222222222222, not in the target's account 111111111111"),
            "{problem}"
        );
    }

    #[test]
    fn a_role_arn_that_is_not_a_role_is_refused() {
        for arn in [
            "tenant-orchestrator",
            "arn:aws:iam::111111111111:user/tenant-orchestrator",
            "arn:aws:s3::111111111111:role/tenant-orchestrator",
            "arn:aws:iam::111111111111:role/",
        ] {
            let mut t = prod_eu();
            t.role_arn = arn.into();
            let problem = problem_of(vec![t]);
            assert!(problem.contains("is not an IAM role ARN"), "{arn}: {problem}");
        }
    }

    #[test]
    fn an_account_that_is_not_twelve_digits_is_refused() {
        let mut t = prod_eu();
        t.account = "11111111111".into();
        assert!(problem_of(vec![t]).contains("is not an AWS account id"));
    }

    #[test]
    fn two_targets_for_one_environment_and_region_are_refused() {
        let problem = problem_of(vec![prod_eu(), prod_eu()]);
        assert!(problem.starts_with("targets[1] (prod eu-west-1)"), "{problem}");
        assert!(problem.contains("already have a target"), "{problem}");
    }

    #[test]
    fn targets_of_one_region_in_two_accounts_are_refused() {
        let staging = target(
            "staging",
            "eu-west-1",
            "333333333333",
            "arn:aws:iam::333333333333:role/tenant-orchestrator",
        );
        let problem = problem_of(vec![prod_eu(), staging]);
        assert!(problem.contains("already has a target in account"), "{problem}");
    }

    #[test]
    fn a_target_without_an_external_id_is_refused() {
        let config: Result<crate::steps::StepsConfig, _> = serde_json::from_value(serde_json::json!({
            "targets": [{
                "environment": "prod", "region": "eu-west-1", "account": "111111111111",
                "role_arn": "arn:aws:iam::111111111111:role/tenant-orchestrator"
            }]
        }));
        let problem = config.unwrap().targets.validate().unwrap_err();
        assert!(problem.contains("external_id is missing"), "{problem}");
    }

    #[test]
    fn a_session_length_sts_refuses_is_refused() {
        let mut t = prod_eu();
        t.session_seconds = Some(60);
        assert!(problem_of(vec![t]).contains("give 900 to 43200"));
    }
}
