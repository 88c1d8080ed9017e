//! The audit trail: access decisions that have no tenant history to go to (rollout
//! and fleet-wide actions), each with who asked, how they were identified, what they
//! asked for and what was decided.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::Scope;

/// What the role bindings decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    Refused,
    Granted,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Refused => "refused",
            AuditOutcome::Granted => "granted",
        }
    }

    /// `refused` or `granted`; anything else says what is accepted.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "refused" => Ok(AuditOutcome::Refused),
            "granted" => Ok(AuditOutcome::Granted),
            other => Err(format!("outcome {other:?} is not one of refused, granted")),
        }
    }
}

/// One access decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    /// The principal's name, as recorded as an actor elsewhere.
    pub principal: String,
    /// How the principal was identified: `token <name>`, `OpenID Connect <issuer>,
    /// subject <sub>`, `dashboard session of token <name>`.
    pub identified_by: String,
    /// The scope the action needs: read, deploy or admin.
    #[schema(value_type = String)]
    pub scope: Scope,
    /// What was asked (`approve rollout r-1`, `add a freeze`).
    pub action: String,
    /// What it acts on: `rollout/<id>`, `policy`, `freeze/<id>`, `promotion/<name>`,
    /// `catalog`, `event/<id>`.
    pub target: String,
    pub outcome: AuditOutcome,
    /// Why: the bindings that allowed it, or what was missing.
    pub reason: String,
}
