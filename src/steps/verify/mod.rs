//! Verify and VerifyRollback: every hostname of the tenant must report, over HTTPS,
//! that it serves the expected release healthy, and no alarm of the tenant may be in
//! ALARM, several checks in a row, before a deadline. One round of checks per run; between rounds the step is `Pending`, with
//! the count in `facts.progress`, so the worker's lease is free and a crash loses
//! nothing. In an upgrade or rollback a round that finds the tenant down opens its
//! outage window (`facts.outage`), and the verification that passes ends it at the
//! first healthy round of its streak.

mod alarms;
mod probe;
mod tally;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tracing::instrument;

use crate::domain::ReleaseVersion;
use crate::machine::{StepKind, TenantState};
use crate::record::OutageCause;
use crate::step::{Step, StepContext, StepOutcome};

use super::{AwsClients, StepsConfig};

pub use alarms::{AlarmArn, AlarmNameTemplate, AlarmReading, AlarmReport, AlarmState, AlarmWatch};
pub use probe::{Answer, HealthProbe, HealthReport, Observation};
pub use tally::{tenant_down, Rules, Verdict, VerifyProgress};

/// How tenant health is checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerifyConfig {
    /// `https` (default) or `http`.
    pub scheme: String,
    /// Port of the health endpoint (default 443).
    pub port: u16,
    /// Path of the health endpoint (default `/healthz`).
    pub path: String,
    /// Connect to this address instead of resolving the hostname, still sending the
    /// hostname as Host header and TLS server name (like `curl --resolve`): checks a
    /// load balancer before DNS points at it, or a local server. Default: use DNS.
    pub resolve_to: Option<IpAddr>,
    /// Consecutive rounds in which every hostname must pass (default 3).
    pub required_passes: u32,
    /// Time between rounds, in milliseconds (default 2000).
    pub interval_ms: u64,
    /// How long verification may take, counted from its first check (default 300).
    pub deadline_seconds: u64,
    /// Time allowed for one request, in milliseconds (default 5000).
    pub request_timeout_ms: u64,
    /// CloudWatch alarms checked besides the tenant stack's own (those named under
    /// `tenant-<environment>-<id>/`): name templates in which `{tenant}` stands for the
    /// tenant id, e.g. `{tenant}-custom-latency` (default none, at most 100). A named
    /// alarm that does not exist fails the check.
    pub extra_alarms: Vec<String>,
    /// Whether an alarm without data (`INSUFFICIENT_DATA`) fails the check (default
    /// false: a new tenant's alarms have no data yet).
    pub insufficient_data_fails: bool,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        Self {
            scheme: "https".into(),
            port: 443,
            path: "/healthz".into(),
            resolve_to: None,
            required_passes: 3,
            interval_ms: 2000,
            deadline_seconds: 300,
            request_timeout_ms: 5000,
            extra_alarms: Vec::new(),
            insufficient_data_fails: false,
        }
    }
}

impl VerifyConfig {
    fn rules(&self) -> Result<Rules, String> {
        if self.required_passes == 0 {
            return Err("verify.required_passes must be at least 1".into());
        }
        Ok(Rules {
            required_passes: self.required_passes,
            interval: Duration::from_millis(self.interval_ms),
            deadline: Duration::from_secs(self.deadline_seconds),
        })
    }
}

/// Checks that the tenant serves the release its state expects: the target release
/// for Verify (provisioning, upgrade, restore), the previous one for VerifyRollback.
pub struct VerifyRelease {
    probe: Result<Arc<HealthProbe>, String>,
    rules: Result<Rules, String>,
}

impl VerifyRelease {
    pub fn new(config: Arc<StepsConfig>, aws: Arc<AwsClients>) -> Self {
        Self {
            probe: HealthProbe::new(&config.verify, aws).map(Arc::new),
            rules: config.verify.rules(),
        }
    }
}

/// The release this step must find, by step and state.
fn expected_release(step: StepKind, state: &TenantState) -> Result<&ReleaseVersion, String> {
    match (step, state) {
        (StepKind::VerifyRollback, TenantState::RollingBack { previous, .. }) => Ok(previous),
        (StepKind::VerifyRollback, other) => Err(format!("VerifyRollback cannot run in {}", other.label())),
        (_, state) => state
            .working_release()
            .ok_or_else(|| format!("{} has no release to verify", state.label())),
    }
}

#[async_trait]
impl Step for VerifyRelease {
    #[instrument(skip_all, fields(tenant = %ctx.tenant.id(), step = %ctx.step))]
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
        let (probe, rules) = match (&self.probe, &self.rules) {
            (Ok(probe), Ok(rules)) => (probe, rules),
            (Err(e), _) | (_, Err(e)) => return StepOutcome::fail(e.clone()),
        };
        let release = match expected_release(ctx.step, &ctx.tenant.state) {
            Ok(r) => r,
            Err(e) => return StepOutcome::fail(e),
        };
        let mut facts = ctx.tenant.facts.clone();
        let mut progress = VerifyProgress::read(&facts, release)
            .unwrap_or_else(|| VerifyProgress::start(release, Utc::now()));
        if let Some(wait) = progress.not_due_for(rules, Utc::now()) {
            return StepOutcome::Pending {
                poll_after: wait,
                facts,
                note: format!(
                    "{}/{} passes; next check not due yet",
                    progress.passes, rules.required_passes
                ),
            };
        }
        // In maintenance, users see the maintenance page; the token reaches the release.
        let bypass = facts.maintenance.as_ref().map(|m| m.token.as_str());
        let observations = probe.check_all(&ctx.tenant.spec.hostnames, bypass).await;
        let alarms = match observations.iter().all(|o| o.serves(release)) {
            true => Some(probe.alarms(&ctx.tenant.spec).await),
            false => None,
        };
        let now = Utc::now();
        let measures_outage = matches!(
            ctx.tenant.state,
            TenantState::Upgrading { .. } | TenantState::RollingBack { .. }
        );
        if measures_outage && tenant_down(&observations, alarms.as_ref()) {
            facts.begin_outage(now, OutageCause::FailedProbe);
        }
        let verdict = progress.record(&observations, alarms.as_ref(), release, rules, now);
        progress.write(&mut facts);
        match verdict {
            Verdict::Verified(summary) => {
                if let Some(healthy_since) = progress.streak_since.filter(|_| measures_outage) {
                    facts.end_outage(healthy_since);
                }
                facts.progress = None;
                StepOutcome::done(summary, facts)
            }
            Verdict::CheckAgain(poll_after) => StepOutcome::Pending {
                poll_after,
                note: format!(
                    "{}/{} passes; {}",
                    progress.passes,
                    rules.required_passes,
                    progress.last.as_deref().unwrap_or_default()
                ),
                facts,
            },
            Verdict::Failed(reason) => StepOutcome::fail(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_rollback_expects_the_previous_release_and_verify_the_target() {
        let v = |s| ReleaseVersion::parse(s).unwrap();
        let rolling_back = TenantState::RollingBack {
            step: crate::machine::RollbackStep::VerifyRollback,
            abandoned: v("1.1.0"),
            previous: v("1.0.0"),
            cause: "verify failed".into(),
        };
        assert_eq!(
            expected_release(StepKind::VerifyRollback, &rolling_back),
            Ok(&v("1.0.0"))
        );
        let upgrading = TenantState::Upgrading {
            step: crate::machine::UpgradeStep::Verify,
            from: v("1.0.0"),
            to: v("1.1.0"),
        };
        assert_eq!(expected_release(StepKind::Verify, &upgrading), Ok(&v("1.1.0")));
        assert!(expected_release(StepKind::VerifyRollback, &upgrading).is_err());
    }

    #[test]
    fn defaults_match_the_documented_ones_and_zero_passes_is_refused() {
        let config: VerifyConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, VerifyConfig::default());
        assert_eq!(
            (config.scheme.as_str(), config.port, config.path.as_str()),
            ("https", 443, "/healthz")
        );
        let config: VerifyConfig =
            serde_json::from_str(r#"{"resolve_to":"127.0.0.1","required_passes":0}"#).unwrap();
        assert_eq!(config.resolve_to, Some("127.0.0.1".parse().unwrap()));
        assert!(config.rules().is_err());
        assert!(serde_json::from_str::<VerifyConfig>(r#"{"resolve_to":"not-an-ip"}"#).is_err());
    }
}
