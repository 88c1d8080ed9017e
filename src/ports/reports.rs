//! Deployment reports: which transitions start or end a deployment, and the counts a
//! report returns. Counting is decided here, purely from the transition; the DynamoDB
//! store adds one to a per-day counter item in the same transaction as the transition,
//! so a report can never disagree with the history it summarises.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{Group, Region};
use crate::machine::{TenantEvent, TenantState};
use crate::record::Cause;

/// What a transition means for deployments (provisionings and upgrades).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeploymentMilestone {
    /// A tenant entered Provisioning or Upgrading (also when an operator retries one).
    Started,
    /// Provisioning or an upgrade finished: the tenant is Active on its target release.
    Succeeded,
    /// A step of a provisioning or an upgrade failed for good (a rollback may follow).
    Failed,
    /// A rollback finished: the tenant is Active on its previous release again.
    RolledBack,
}

impl DeploymentMilestone {
    pub const ALL: [DeploymentMilestone; 4] = [
        DeploymentMilestone::Started,
        DeploymentMilestone::Succeeded,
        DeploymentMilestone::Failed,
        DeploymentMilestone::RolledBack,
    ];

    /// The counter attribute on the report item.
    pub fn attribute(self) -> &'static str {
        match self {
            DeploymentMilestone::Started => "started",
            DeploymentMilestone::Succeeded => "succeeded",
            DeploymentMilestone::Failed => "failed",
            DeploymentMilestone::RolledBack => "rolled_back",
        }
    }

    /// Classifies a transition from `from` to `to`, caused by `cause`.
    pub fn of(from: &TenantState, to: &TenantState, cause: &Cause) -> Option<Self> {
        let deploying = |state: &TenantState| {
            matches!(
                state,
                TenantState::Provisioning { .. } | TenantState::Upgrading { .. }
            )
        };
        if deploying(to) && from.name() != to.name() {
            return Some(DeploymentMilestone::Started);
        }
        let succeeded = matches!(cause, Cause::Event(TenantEvent::StepSucceeded));
        let failed = matches!(cause, Cause::Event(TenantEvent::StepFailed { .. }));
        let to_active = matches!(to, TenantState::Active { .. });
        match from {
            f if deploying(f) && succeeded && to_active => Some(DeploymentMilestone::Succeeded),
            f if deploying(f) && failed => Some(DeploymentMilestone::Failed),
            TenantState::RollingBack { .. } if succeeded && to_active => {
                Some(DeploymentMilestone::RolledBack)
            }
            _ => None,
        }
    }
}

/// Deployments of one region and group over a report's range.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentCounts {
    pub started: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub rolled_back: u64,
    /// Outages of the upgrades, reconciles and rollbacks that completed.
    #[serde(default)]
    pub outage: OutageCounts,
}

/// Outages as the per-day counters can add them up: a count, a sum and a count per
/// bucket. The counters are `ADD`s in the transition's own transaction, so a maximum
/// (which needs a read first) is not kept; the highest bucket bounds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutageCounts {
    /// Completed upgrades, reconciles and rollbacks whose outage was measured (a
    /// measured 0 included).
    pub measured: u64,
    /// Their outages added up, in seconds.
    pub seconds: u64,
    /// How many fell in each bucket, in the order of [`OutageBucket::ALL`].
    pub buckets: [u64; 6],
}

impl OutageCounts {
    /// Counts one measured outage of `seconds`.
    pub fn add(&mut self, seconds: u64) {
        self.measured += 1;
        self.seconds += seconds;
        self.buckets[OutageBucket::of(seconds) as usize] += 1;
    }

    /// Adds another region's, group's or day's counts.
    pub fn merge(&mut self, other: &OutageCounts) {
        self.measured += other.measured;
        self.seconds += other.seconds;
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
    }

    /// The mean outage in seconds, when any was measured.
    pub fn mean_seconds(&self) -> Option<f64> {
        (self.measured > 0).then(|| self.seconds as f64 / self.measured as f64)
    }
}

/// Where a measured outage falls: none at all, up to 30 s, 60 s, 180 s, 600 s, or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OutageBucket {
    None = 0,
    UpTo30 = 1,
    UpTo60 = 2,
    UpTo180 = 3,
    UpTo600 = 4,
    Over600 = 5,
}

impl OutageBucket {
    pub const ALL: [OutageBucket; 6] = [
        OutageBucket::None,
        OutageBucket::UpTo30,
        OutageBucket::UpTo60,
        OutageBucket::UpTo180,
        OutageBucket::UpTo600,
        OutageBucket::Over600,
    ];

    pub fn of(seconds: u64) -> Self {
        match seconds {
            0 => OutageBucket::None,
            1..=30 => OutageBucket::UpTo30,
            31..=60 => OutageBucket::UpTo60,
            61..=180 => OutageBucket::UpTo180,
            181..=600 => OutageBucket::UpTo600,
            _ => OutageBucket::Over600,
        }
    }

    /// The bucket's name in reports (`le_30s`) and on its counter attribute.
    pub fn name(self) -> &'static str {
        match self {
            OutageBucket::None => "none",
            OutageBucket::UpTo30 => "le_30s",
            OutageBucket::UpTo60 => "le_60s",
            OutageBucket::UpTo180 => "le_180s",
            OutageBucket::UpTo600 => "le_600s",
            OutageBucket::Over600 => "over_600s",
        }
    }
}

impl DeploymentCounts {
    pub fn add(&mut self, milestone: DeploymentMilestone, n: u64) {
        let slot = match milestone {
            DeploymentMilestone::Started => &mut self.started,
            DeploymentMilestone::Succeeded => &mut self.succeeded,
            DeploymentMilestone::Failed => &mut self.failed,
            DeploymentMilestone::RolledBack => &mut self.rolled_back,
        };
        *slot += n;
    }

    /// Adds another region's, group's or day's counts.
    pub fn merge(&mut self, other: &DeploymentCounts) {
        for milestone in DeploymentMilestone::ALL {
            let n = match milestone {
                DeploymentMilestone::Started => other.started,
                DeploymentMilestone::Succeeded => other.succeeded,
                DeploymentMilestone::Failed => other.failed,
                DeploymentMilestone::RolledBack => other.rolled_back,
            };
            self.add(milestone, n);
        }
        self.outage.merge(&other.outage);
    }
}

/// A deployment report: counts per (region, group), in order.
pub type DeploymentReport = BTreeMap<(Region, Group), DeploymentCounts>;

/// Days a report may span: one query per day, so the range is bounded.
pub const MAX_REPORT_DAYS: i64 = 366;

/// Filters of a deployment report; days are UTC dates, both ends included.
#[derive(Debug, Clone)]
pub struct ReportQuery {
    pub from: chrono::NaiveDate,
    pub to: chrono::NaiveDate,
    pub region: Option<Region>,
    pub group: Option<Group>,
}

/// The per-day deployment counters.
#[async_trait::async_trait]
pub trait ReportStore: Send + Sync {
    /// Deployments per region and group between two days (inclusive). The caller
    /// bounds the range to [`MAX_REPORT_DAYS`].
    async fn deployment_report(&self, query: &ReportQuery) -> Result<DeploymentReport, super::StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ReleaseVersion;
    use crate::machine::StepKind;

    fn release(v: &str) -> ReleaseVersion {
        ReleaseVersion::parse(v).unwrap()
    }

    fn upgrading() -> TenantState {
        TenantState::Active {
            release: release("1.0.0"),
            failed_upgrade: None,
        }
        .apply(&TenantEvent::Upgrade {
            release: release("1.1.0"),
        })
        .unwrap()
    }

    /// The upgrade, moved on by succeeded steps until it is at `step`.
    fn upgrading_at(step: StepKind) -> TenantState {
        let mut state = upgrading();
        while state.step() != Some(step) {
            state = state.apply(&TenantEvent::StepSucceeded).unwrap();
        }
        state
    }

    fn event(event: TenantEvent) -> Cause {
        Cause::Event(event)
    }

    #[test]
    fn entering_a_deployment_starts_one() {
        let provisioning = TenantState::initial()
            .apply(&TenantEvent::Provision {
                release: release("1.0.0"),
            })
            .unwrap();
        assert_eq!(
            DeploymentMilestone::of(
                &TenantState::initial(),
                &provisioning,
                &event(TenantEvent::Provision {
                    release: release("1.0.0")
                })
            ),
            Some(DeploymentMilestone::Started)
        );
        let active = TenantState::Active {
            release: release("1.0.0"),
            failed_upgrade: None,
        };
        assert_eq!(
            DeploymentMilestone::of(
                &active,
                &upgrading(),
                &event(TenantEvent::Upgrade {
                    release: release("1.1.0")
                })
            ),
            Some(DeploymentMilestone::Started)
        );
        // A step finishing inside the upgrade is not a new deployment.
        let next = upgrading().apply(&TenantEvent::StepSucceeded).unwrap();
        assert_eq!(
            DeploymentMilestone::of(&upgrading(), &next, &event(TenantEvent::StepSucceeded)),
            None
        );
    }

    #[test]
    fn endings_are_classified_by_cause_and_target() {
        let active = TenantState::Active {
            release: release("1.1.0"),
            failed_upgrade: None,
        };
        let succeeded = event(TenantEvent::StepSucceeded);
        let failed = event(TenantEvent::StepFailed {
            reason: "no snapshot".into(),
        });
        assert_eq!(
            DeploymentMilestone::of(&upgrading_at(StepKind::Verify), &active, &succeeded),
            Some(DeploymentMilestone::Succeeded)
        );
        assert_eq!(
            DeploymentMilestone::of(&upgrading_at(StepKind::Backup), &active, &failed),
            Some(DeploymentMilestone::Failed)
        );
        let rolling_back = upgrading_at(StepKind::Deploy)
            .apply(&TenantEvent::Rollback)
            .unwrap();
        assert_eq!(rolling_back.name(), "RollingBack");
        assert_eq!(
            DeploymentMilestone::of(&rolling_back, &active, &succeeded),
            Some(DeploymentMilestone::RolledBack)
        );
        assert_eq!(
            DeploymentMilestone::of(
                &active,
                &active,
                &Cause::SpecChange(vec!["tier small -> large".into()])
            ),
            None
        );
    }

    #[test]
    fn outages_fall_in_their_buckets_and_average() {
        let mut counts = OutageCounts::default();
        assert_eq!(counts.mean_seconds(), None);
        for seconds in [0, 30, 31, 180, 181, 601] {
            counts.add(seconds);
        }
        assert_eq!(counts.buckets, [1, 1, 1, 1, 1, 1]);
        assert_eq!((counts.measured, counts.seconds), (6, 1023));
        assert_eq!(counts.mean_seconds(), Some(170.5));
        let mut total = OutageCounts::default();
        total.merge(&counts);
        total.merge(&counts);
        assert_eq!(total.buckets, [2, 2, 2, 2, 2, 2]);
    }
}
