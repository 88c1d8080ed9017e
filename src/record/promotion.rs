//! A promotion rule as stored, with its latest promotion: the completed rollout it
//! promotes, the soak, the checks, the approval and the rollout it started. The
//! decisions on it are pure (time passed in); `app::promotions` does the I/O.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::RolloutEvent;
use crate::domain::{PlatformVersion, PromotionRule, ReleaseVersion, RolloutId, TenantId};

/// The newest events a promotion keeps.
const EVENTS_KEPT: usize = 50;

/// Where a promotion stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromotionState {
    /// The source rollout completed; its tenants are checked until `soak_until`.
    Soaking,
    /// A check during the soak failed; nothing starts until it is cancelled.
    Blocked,
    /// The soak passed; the start waits for `promotion approve`.
    AwaitingApproval,
    /// The rollout of the next environment was started.
    Started,
    /// An operator cancelled it, or a newer completed rollout replaced it.
    Cancelled,
}

impl PromotionState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Soaking => "soaking",
            Self::Blocked => "blocked",
            Self::AwaitingApproval => "awaiting_approval",
            Self::Started => "started",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the promotion still waits for something (time, an approval, an operator).
    pub fn is_open(self) -> bool {
        matches!(self, Self::Soaking | Self::Blocked | Self::AwaitingApproval)
    }
}

impl std::fmt::Display for PromotionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The tenant whose check blocked a promotion, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionBlock {
    pub tenant: TenantId,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// One promotion of one completed rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    /// The completed rollout of the `from` environment.
    pub source: RolloutId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformVersion>,
    /// The tenants the source rollout moved: those checked during the soak.
    pub tenants: Vec<TenantId>,
    pub completed_at: DateTime<Utc>,
    pub soak_until: DateTime<Utc>,
    /// Time between checks (the source rollout's bake check interval).
    #[serde(with = "crate::domain::duration::as_text")]
    pub check_interval: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check: Option<DateTime<Utc>>,
    pub checks_passed: u32,
    pub state: PromotionState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<PromotionBlock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// The rollout this promotion started (also its id before it is started).
    pub rollout: RolloutId,
    #[serde(default)]
    pub events: Vec<RolloutEvent>,
    /// Until when a replica's promotion pass has taken its due check round or start:
    /// the other replicas' passes leave it alone meanwhile, so a round of checks runs
    /// once and not on every replica. Cleared when the round or start is recorded; a
    /// pass that died with it is taken over once it has passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_until: Option<DateTime<Utc>>,
}

/// How long a promotion pass holds the check round or start it took: longer than a
/// round of checks of a large environment takes.
pub const PROMOTION_CLAIM: chrono::TimeDelta = chrono::TimeDelta::minutes(2);

/// What a promotion needs next, as of a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromotionDue {
    /// Nothing now.
    Wait,
    /// A round of health checks of its tenants.
    Check,
    /// The soak passed; it needs an operator's approval.
    AskApproval,
    /// Start the next environment's rollout.
    Start,
}

impl Promotion {
    /// A promotion of `source`, completed at `completed_at`, under `rule`.
    #[allow(clippy::too_many_arguments)] // the completed rollout's facts, each needed
    pub fn of_completed(
        rule: &PromotionRule,
        source: &RolloutId,
        release: Option<ReleaseVersion>,
        platform: Option<PlatformVersion>,
        tenants: Vec<TenantId>,
        completed_at: DateTime<Utc>,
        check_interval: Duration,
    ) -> Self {
        let soak_until = completed_at + rule.soak;
        let mut promotion = Self {
            source: source.clone(),
            release,
            platform,
            tenants,
            completed_at,
            soak_until,
            check_interval,
            last_check: None,
            checks_passed: 0,
            state: PromotionState::Soaking,
            blocked: None,
            approved_by: None,
            rollout: rule.rollout_id(source),
            events: Vec::new(),
            claimed_until: None,
        };
        promotion.log(
            completed_at,
            &format!("rollout:{source}"),
            format!(
                "rollout {source} of {} completed; soaking until {}",
                rule.from,
                soak_until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        );
        promotion
    }

    /// What is due at `now`: checks every interval during the soak and one at its end,
    /// then the approval (when the rule asks for one) and the start.
    pub fn due(&self, approval: bool, now: DateTime<Utc>) -> PromotionDue {
        let interval = chrono::Duration::from_std(self.check_interval).unwrap_or(chrono::Duration::MAX);
        if self.claimed_until.is_some_and(|until| now < until) {
            return PromotionDue::Wait;
        }
        match self.state {
            PromotionState::Soaking if now < self.soak_until => match self.last_check {
                Some(last) if now < last + interval => PromotionDue::Wait,
                _ => PromotionDue::Check,
            },
            // The last check is at or after the soak's end, so a tenant that went
            // unhealthy late in the soak still blocks it.
            PromotionState::Soaking if self.last_check.is_none_or(|last| last < self.soak_until) => {
                PromotionDue::Check
            }
            PromotionState::Soaking if approval && self.approved_by.is_none() => PromotionDue::AskApproval,
            PromotionState::Soaking => PromotionDue::Start,
            PromotionState::AwaitingApproval if self.approved_by.is_some() => PromotionDue::Start,
            _ => PromotionDue::Wait,
        }
    }

    /// Records a round of checks at `now`: the first failure blocks the promotion.
    pub fn checked(&mut self, now: DateTime<Utc>, failure: Option<(TenantId, String)>) {
        match failure {
            Some((tenant, reason)) => {
                self.log(
                    now,
                    "promotion",
                    format!("blocked: {tenant} failed its check: {reason}"),
                );
                self.blocked = Some(PromotionBlock {
                    tenant,
                    reason,
                    at: now,
                });
                self.state = PromotionState::Blocked;
            }
            None => {
                self.checks_passed += 1;
                self.last_check = Some(now);
            }
        }
    }

    pub fn ask_approval(&mut self, now: DateTime<Utc>) {
        self.state = PromotionState::AwaitingApproval;
        self.log(
            now,
            "promotion",
            format!(
                "soak passed ({} checks); waiting for approval to start {}",
                self.checks_passed, self.rollout
            ),
        );
    }

    pub fn approve(&mut self, now: DateTime<Utc>, actor: &str) {
        self.approved_by = Some(actor.to_owned());
        self.log(now, actor, format!("approved the start of {}", self.rollout));
    }

    pub fn started(&mut self, now: DateTime<Utc>) {
        self.state = PromotionState::Started;
        self.log(now, "promotion", format!("started rollout {}", self.rollout));
    }

    pub fn cancel(&mut self, now: DateTime<Utc>, actor: &str, why: &str) {
        self.state = PromotionState::Cancelled;
        self.log(now, actor, format!("cancelled: {why}"));
    }

    fn log(&mut self, at: DateTime<Utc>, actor: &str, what: impl Into<String>) {
        self.events.push(RolloutEvent {
            at,
            actor: actor.to_owned(),
            what: what.into(),
        });
        let excess = self.events.len().saturating_sub(EVENTS_KEPT);
        self.events.drain(..excess);
    }
}

/// A stored rule and its latest promotion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionRecord {
    pub rule: PromotionRule,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<Promotion>,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
    /// Store bookkeeping: the version a conditional write expects.
    #[serde(skip)]
    pub version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Environment, PromotionName};

    fn rule(soak_secs: u64) -> PromotionRule {
        PromotionRule::new(
            PromotionName::parse("staging-to-prod").unwrap(),
            Environment::parse("staging").unwrap(),
            Environment::parse("prod").unwrap(),
            Duration::from_secs(soak_secs),
            false,
            serde_json::from_str("{}").unwrap(),
        )
        .unwrap()
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn promotion(soak_secs: u64) -> Promotion {
        Promotion::of_completed(
            &rule(soak_secs),
            &RolloutId::parse("r-staging").unwrap(),
            Some(ReleaseVersion::parse("1.5.0").unwrap()),
            None,
            vec![TenantId::parse("acme").unwrap()],
            at(0),
            Duration::from_secs(60),
        )
    }

    #[test]
    fn a_soak_checks_every_interval_and_once_at_its_end_then_starts() {
        let mut p = promotion(150);
        assert_eq!(p.due(false, at(0)), PromotionDue::Check);
        p.checked(at(0), None);
        assert_eq!(p.due(false, at(30)), PromotionDue::Wait);
        assert_eq!(p.due(false, at(60)), PromotionDue::Check);
        p.checked(at(60), None);
        p.checked(at(120), None);
        assert_eq!(p.due(false, at(149)), PromotionDue::Wait, "next check at 180");
        assert_eq!(
            p.due(false, at(150)),
            PromotionDue::Check,
            "the check at the soak's end"
        );
        p.checked(at(150), None);
        assert_eq!(p.due(false, at(150)), PromotionDue::Start);
        assert_eq!(p.due(true, at(151)), PromotionDue::AskApproval);
        assert_eq!(p.checks_passed, 4);
    }

    #[test]
    fn a_failed_check_blocks_and_an_approval_releases_the_start() {
        let mut p = promotion(0);
        p.checked(at(1), Some((TenantId::parse("acme").unwrap(), "503".into())));
        assert_eq!(p.state, PromotionState::Blocked);
        assert_eq!(p.due(false, at(1000)), PromotionDue::Wait);
        assert_eq!(p.blocked.as_ref().unwrap().tenant.as_str(), "acme");

        let mut p = promotion(0);
        assert_eq!(
            p.due(true, at(0)),
            PromotionDue::Check,
            "even a soak of 0s checks once"
        );
        p.checked(at(0), None);
        p.ask_approval(at(1));
        assert_eq!(p.due(true, at(2)), PromotionDue::Wait);
        p.approve(at(3), "operator:ana");
        assert_eq!(p.due(true, at(3)), PromotionDue::Start);
        p.started(at(4));
        assert_eq!(p.due(true, at(5)), PromotionDue::Wait);
        assert_eq!(p.rollout.as_str(), "r-staging-to-prod");
    }
}
