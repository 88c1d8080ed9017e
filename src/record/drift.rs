//! What a drift check found: where a tenant's live stack, configuration or Helm
//! release differs from what its spec and release ask for. Kept per tenant (the last
//! check) so fleet reports and rollout selectors read it without checking again.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::TenantId;

/// What part of the tenant a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// The stack does not exist (or cannot be described as the tenant's).
    Stack,
    /// A stack parameter the orchestrator sets has another value.
    StackParameter,
    /// The stack's template is not the one the tenant's platform gives.
    StackTemplate,
    /// An SSM parameter of the configuration is missing or has another value or type.
    SsmParameter,
    /// The Helm release is missing.
    HelmRelease,
    /// A value of the deployed Helm revision differs (by JSON path).
    HelmValues,
}

impl DriftKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::Stack => "stack",
            DriftKind::StackParameter => "stack_parameter",
            DriftKind::StackTemplate => "stack_template",
            DriftKind::SsmParameter => "ssm_parameter",
            DriftKind::HelmRelease => "helm_release",
            DriftKind::HelmValues => "helm_values",
        }
    }
}

impl std::fmt::Display for DriftKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One difference between the desired and the live revision. Secrets are never
/// carried: their values read `<redacted>`, templates are shown by digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DriftFinding {
    pub kind: DriftKind,
    /// The parameter's name, the value's JSON path, or the stack's name.
    pub name: String,
    /// What the tenant's spec and release ask for (`None`: should not exist).
    pub desired: Option<String>,
    /// What is there (`None`: missing).
    pub live: Option<String>,
}

impl DriftFinding {
    /// `stack_parameter Tier: desired "small", live "large"`.
    pub fn describe(&self) -> String {
        let show = |v: &Option<String>| match v {
            Some(v) => format!("{v:?}"),
            None => "(none)".to_owned(),
        };
        format!(
            "{} {}: desired {}, live {}",
            self.kind,
            self.name,
            show(&self.desired),
            show(&self.live)
        )
    }
}

/// The result of one drift check of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftCheck {
    pub tenant: TenantId,
    pub checked_at: DateTime<Utc>,
    /// Empty when the tenant matches its desired revision.
    pub findings: Vec<DriftFinding>,
}

impl DriftCheck {
    pub fn drifted(&self) -> bool {
        !self.findings.is_empty()
    }

    /// One line for history and listings: `in sync`, or the findings' kinds and names.
    pub fn summary(&self) -> String {
        if self.findings.is_empty() {
            return "in sync".to_owned();
        }
        let names: Vec<String> = self
            .findings
            .iter()
            .map(|f| format!("{} {}", f.kind, f.name))
            .collect();
        format!("{} drifted: {}", self.findings.len(), names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(kind: DriftKind, name: &str) -> DriftFinding {
        DriftFinding {
            kind,
            name: name.into(),
            desired: Some("small".into()),
            live: Some("large".into()),
        }
    }

    #[test]
    fn a_check_without_findings_is_in_sync_and_one_with_findings_names_them() {
        let mut check = DriftCheck {
            tenant: TenantId::parse("acme").unwrap(),
            checked_at: Utc::now(),
            findings: vec![],
        };
        assert!(!check.drifted());
        assert_eq!(check.summary(), "in sync");
        check.findings = vec![
            finding(DriftKind::StackParameter, "Tier"),
            finding(DriftKind::SsmParameter, "config/tier"),
        ];
        assert!(check.drifted());
        assert_eq!(
            check.summary(),
            "2 drifted: stack_parameter Tier, ssm_parameter config/tier"
        );
        assert_eq!(
            check.findings[0].describe(),
            "stack_parameter Tier: desired \"small\", live \"large\""
        );
        assert_eq!(
            serde_json::to_value(&check.findings[0]).unwrap()["kind"],
            "stack_parameter"
        );
    }
}
