//! Quiesce and Reopen: an upgrade that changes the database (or every upgrade, by
//! configuration) puts the tenant in maintenance before its backup, and takes it out
//! once the new release is verified (or the upgrade rolled back).
//!
//! Maintenance is a pair of rules per group of hostnames on every HTTPS listener of
//! the tenant's region, at priorities of the reserved range `maintenance.priorities`:
//! a bypass rule (the hostnames and header `X-Tenantctl-Maintenance-Bypass` carrying
//! the upgrade's random token, forwarding where the hostnames are routed today), and
//! just after it a page rule (the hostnames, a fixed 503 maintenance page). Verify
//! sends the token, so it checks the new release while users see the page.
//!
//! Quiesce persists `facts.maintenance` (since when, the token) before it creates any
//! rule, and tags every rule with the tenant, its environment and the rule's role, so
//! a Quiesce run again after a crash finds the rules it created instead of adding
//! more, and Reopen (also run by every rollback and restore, and before
//! ReleaseCertificates when deprovisioning) finds every rule to delete.

mod plan;
mod rules;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tracing::instrument;

use crate::machine::StepKind;
use crate::record::{Maintenance, OutageCause, TenantFacts, TenantRecord};
use crate::step::{Step, StepContext, StepOutcome};

use super::{AwsClients, StepsConfig};

pub use plan::HOSTS_PER_RULE;
pub use rules::{TAG_ENVIRONMENT, TAG_ROLE, TAG_TENANT};

/// The request header that reaches the tenant past its maintenance page.
pub const BYPASS_HEADER: &str = "X-Tenantctl-Maintenance-Bypass";

/// When an upgrade puts the tenant in maintenance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuiesceWhen {
    /// Every upgrade and reconcile.
    Always,
    /// Only one that changes the database ([`changes_database`]).
    #[default]
    DatabaseChanges,
    /// Never: users reach the tenant throughout.
    Never,
}

/// The listener rule priorities reserved for maintenance rules, inclusive. The
/// rules that route the tenants' hostnames (the load balancer controller's) must
/// have priorities above `last`, so maintenance sorts before them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityRange {
    pub first: u32,
    pub last: u32,
}

/// How tenants are put in maintenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// `always`, `database_changes` (default) or `never`.
    pub quiesce: QuiesceWhen,
    /// Reserved listener rule priorities (default 1 to 999; ALB allows 1 to 50000).
    pub priorities: PriorityRange,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        Self {
            quiesce: QuiesceWhen::DatabaseChanges,
            priorities: PriorityRange { first: 1, last: 999 },
        }
    }
}

impl MaintenanceConfig {
    fn checked(&self) -> Result<PriorityRange, String> {
        let PriorityRange { first, last } = self.priorities;
        if first == 0 || last > 50_000 || first >= last {
            return Err(format!(
                "maintenance.priorities {first}..{last} is not a range of listener rule priorities; \
                 give \"first\" and \"last\" with 1 <= first < last <= 50000"
            ));
        }
        Ok(self.priorities)
    }
}

/// Why this upgrade changes the tenant's database, or `None` when it does not: the one
/// place that says what counts as a database change.
pub fn changes_database(record: &TenantRecord) -> Option<String> {
    let facts = &record.facts;
    if let Some(target) = facts
        .target_schema
        .as_ref()
        .filter(|t| facts.schema.as_ref() != Some(*t))
    {
        return Some(match &facts.schema {
            Some(from) => format!("the release migrates the schema from {from} to {target}"),
            None => format!("the release migrates the schema to {target}"),
        });
    }
    let applied = facts.applied_spec.as_ref()?;
    (applied.tier != record.spec.tier).then(|| {
        format!(
            "tier {} -> {} changes the database instance class",
            applied.tier, record.spec.tier
        )
    })
}

/// Why the tenant goes into maintenance for this upgrade, or (`Err`) why not.
fn reason_to_quiesce(when: QuiesceWhen, record: &TenantRecord) -> Result<String, String> {
    match when {
        QuiesceWhen::Always => Ok("maintenance.quiesce is always".into()),
        QuiesceWhen::Never => Err("maintenance.quiesce is never".into()),
        QuiesceWhen::DatabaseChanges => {
            changes_database(record).ok_or_else(|| "the upgrade does not change the database".to_owned())
        }
    }
}

/// Quiesce, Reopen, and the rule sweep before ReleaseCertificates.
pub struct MaintenanceSteps {
    config: Arc<StepsConfig>,
    aws: Arc<AwsClients>,
}

impl MaintenanceSteps {
    pub fn new(config: Arc<StepsConfig>, aws: Arc<AwsClients>) -> Self {
        Self { config, aws }
    }

    async fn quiesce(&self, record: &TenantRecord) -> StepOutcome {
        let range = match self.config.maintenance.checked() {
            Ok(r) => r,
            Err(e) => return StepOutcome::fail(e),
        };
        let mut facts = record.facts.clone();
        let Some(maintenance) = facts.maintenance.clone() else {
            let why = match reason_to_quiesce(self.config.maintenance.quiesce, record) {
                Ok(why) => why,
                Err(why) => return StepOutcome::done(format!("maintenance skipped: {why}"), facts),
            };
            let listeners = match self.config.region(&record.spec.region) {
                Ok(r) => &r.listener_arns,
                Err(e) => return StepOutcome::fail(e),
            };
            if listeners.is_empty() {
                return StepOutcome::done(
                    format!(
                        "maintenance skipped: region {} has no listener_arns to put rules on",
                        record.spec.region
                    ),
                    facts,
                );
            }
            // Recorded before any rule exists: a run after a crash reuses the token
            // and looks for the rules by tag.
            let since = Utc::now();
            facts.maintenance = Some(Maintenance {
                since,
                token: uuid::Uuid::new_v4().simple().to_string(),
                rules: Vec::new(),
            });
            // The tenant's outage runs from here, whatever verify sees later.
            facts.begin_outage(since, OutageCause::Maintenance);
            return StepOutcome::Pending {
                poll_after: Duration::ZERO,
                facts,
                note: format!("maintenance begins: {why}"),
            };
        };
        let region = match self.config.region(&record.spec.region) {
            Ok(r) => r,
            Err(e) => return StepOutcome::fail(e),
        };
        let elbv2 = &self.aws.platform(&record.spec.region).elbv2;
        let chunks = plan::chunks(&record.spec.hostnames);
        let (tenant, environment) = (record.spec.id.to_string(), record.spec.environment.to_string());
        let mut arns: BTreeSet<String> = maintenance.rules.iter().cloned().collect();
        let mut created = 0;
        for listener in &region.listener_arns {
            let mut taken: Vec<u32> = Vec::new();
            let mut existing = match rules::list(elbv2, listener).await {
                Ok(r) => r,
                Err(outcome) => return outcome,
            };
            for (chunk, hosts) in chunks.iter().enumerate() {
                let mut bypass_priority = None;
                for role in [plan::Role::Bypass, plan::Role::Page] {
                    let tag = role.tag(chunk);
                    if let Some(found) = existing
                        .iter()
                        .find(|r| r.maintenance_of(&tenant, &environment) == Some(tag.as_str()))
                    {
                        arns.insert(found.arn.clone());
                        bypass_priority = bypass_priority.or(found.priority);
                        continue;
                    }
                    let forward = match role {
                        plan::Role::Bypass => rules::routing_actions(&existing, &hosts[0]),
                        plan::Role::Page => Vec::new(),
                    };
                    let mut attempts = 0;
                    let arn = loop {
                        let used: Vec<u32> = existing
                            .iter()
                            .filter_map(|r| r.priority)
                            .chain(taken.iter().copied())
                            .collect();
                        let above = match role {
                            plan::Role::Bypass => None,
                            plan::Role::Page => bypass_priority,
                        };
                        let Some(priority) = plan::free_priority(&used, range.first, range.last, above)
                        else {
                            return StepOutcome::fail(format!(
                                "listener {listener} has no free priority in maintenance.priorities {}..{} \
                                 for the maintenance rules of {}; widen the range",
                                range.first,
                                range.last,
                                hosts.join(", ")
                            ));
                        };
                        let new = rules::NewRule {
                            listener,
                            role,
                            chunk,
                            hosts,
                            priority,
                            token: &maintenance.token,
                            forward: forward.clone(),
                            tenant: &tenant,
                            environment: &environment,
                        };
                        match rules::create(elbv2, new).await {
                            Ok(arn) => {
                                taken.push(priority);
                                if role == plan::Role::Bypass {
                                    bypass_priority = Some(priority);
                                }
                                break arn;
                            }
                            Err(rules::CreateRefused::PriorityInUse) if attempts < 5 => {
                                // Someone took it since the listing: list again.
                                attempts += 1;
                                existing = match rules::list(elbv2, listener).await {
                                    Ok(r) => r,
                                    Err(outcome) => return outcome,
                                };
                            }
                            Err(rules::CreateRefused::PriorityInUse) => {
                                return StepOutcome::retry(format!(
                                    "listener {listener}: every free maintenance priority was taken while creating rules"
                                ))
                            }
                            Err(rules::CreateRefused::Other(outcome)) => return *outcome,
                        }
                    };
                    created += 1;
                    arns.insert(arn);
                }
            }
        }
        let total = arns.len();
        facts.maintenance = Some(Maintenance {
            rules: arns.into_iter().collect(),
            ..maintenance
        });
        StepOutcome::done(
            format!(
                "in maintenance on {} listener(s): {total} rules ({created} created) for {}",
                region.listener_arns.len(),
                record
                    .spec
                    .hostnames
                    .iter()
                    .map(|h| h.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            facts,
        )
    }

    /// Deletes every maintenance rule of the tenant, recorded or found by tag, and
    /// clears `facts.maintenance`; returns how many rules it deleted. With
    /// `only_if_recorded` and nothing recorded it asks AWS nothing.
    async fn remove_rules(
        &self,
        record: &TenantRecord,
        facts: &mut TenantFacts,
        only_if_recorded: bool,
    ) -> Result<usize, StepOutcome> {
        if only_if_recorded && facts.maintenance.is_none() {
            return Ok(0);
        }
        // A region this worker does not know cannot hold rules it made, unless the
        // record says it did.
        let listeners = match (self.config.region(&record.spec.region), &facts.maintenance) {
            (Ok(region), _) => region.listener_arns.clone(),
            (Err(_), None) => Vec::new(),
            (Err(e), Some(_)) => return Err(StepOutcome::fail(e)),
        };
        let elbv2 = &self.aws.platform(&record.spec.region).elbv2;
        let (tenant, environment) = (record.spec.id.to_string(), record.spec.environment.to_string());
        let mut doomed: BTreeSet<String> = facts
            .maintenance
            .as_ref()
            .map(|m| m.rules.iter().cloned().collect())
            .unwrap_or_default();
        for listener in &listeners {
            for rule in rules::list(elbv2, listener).await? {
                if rule.maintenance_of(&tenant, &environment).is_some() {
                    doomed.insert(rule.arn);
                }
            }
        }
        for arn in &doomed {
            rules::delete(elbv2, arn).await?;
        }
        facts.maintenance = None;
        Ok(doomed.len())
    }

    async fn reopen(&self, record: &TenantRecord) -> StepOutcome {
        let mut facts = record.facts.clone();
        let since = facts.maintenance.as_ref().map(|m| m.since);
        match self.remove_rules(record, &mut facts, true).await {
            Ok(_) if since.is_none() => StepOutcome::done("not in maintenance", facts),
            Ok(deleted) => {
                facts.end_outage_by_reopening(Utc::now());
                let since = since
                    .map(|s| s.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_default();
                StepOutcome::done(
                    format!("maintenance over (since {since}): {deleted} rules deleted"),
                    facts,
                )
            }
            Err(outcome) => outcome,
        }
    }
}

#[async_trait]
impl Step for MaintenanceSteps {
    #[instrument(skip_all, fields(tenant = %ctx.tenant.id(), step = %ctx.step))]
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
        match ctx.step {
            StepKind::Quiesce => self.quiesce(ctx.tenant).await,
            StepKind::Reopen => self.reopen(ctx.tenant).await,
            other => StepOutcome::fail(format!("the maintenance steps do not run {other}")),
        }
    }
}

/// Runs `inner` (ReleaseCertificates) once the tenant has no maintenance rule left,
/// so a deprovisioned tenant leaves none on the shared listeners, even one a crashed
/// Quiesce created.
pub struct WithoutMaintenance {
    maintenance: Arc<MaintenanceSteps>,
    inner: Arc<dyn Step>,
}

impl WithoutMaintenance {
    pub fn new(maintenance: Arc<MaintenanceSteps>, inner: Arc<dyn Step>) -> Self {
        Self { maintenance, inner }
    }
}

#[async_trait]
impl Step for WithoutMaintenance {
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
        let mut record = ctx.tenant.clone();
        if let Err(outcome) = self
            .maintenance
            .remove_rules(ctx.tenant, &mut record.facts, false)
            .await
        {
            return outcome;
        }
        self.inner
            .run(StepContext {
                tenant: &record,
                ..ctx
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{TenantSpec, Tier};
    use crate::machine::TenantState;
    use crate::record::AppliedSpec;

    fn record(applied: Option<Tier>, desired: Tier) -> TenantRecord {
        let mut spec = TenantSpec::example("acme", "us-east-1");
        spec.tier = desired;
        let mut r = TenantRecord::new(spec.clone(), TenantState::initial(), Utc::now());
        r.facts.applied_spec = applied.map(|tier| AppliedSpec {
            tier,
            hostnames: spec.hostnames.clone(),
        });
        r
    }

    #[test]
    fn a_tier_change_changes_the_database() {
        assert_eq!(changes_database(&record(Some(Tier::Small), Tier::Small)), None);
        assert_eq!(changes_database(&record(None, Tier::Large)), None);
        let why = changes_database(&record(Some(Tier::Small), Tier::Large)).unwrap();
        assert!(why.contains("tier small -> large"), "{why}");
    }

    #[test]
    fn a_release_that_migrates_the_schema_changes_the_database() {
        let schema = |s: &str| crate::domain::SchemaVersion::parse(s).unwrap();
        let mut r = record(Some(Tier::Small), Tier::Small);
        r.facts.schema = Some(schema("41"));
        r.facts.target_schema = Some(schema("41"));
        assert_eq!(changes_database(&r), None, "the same schema migrates nothing");
        r.facts.target_schema = None;
        assert_eq!(
            changes_database(&r),
            None,
            "a release that declares no schema migrates nothing"
        );
        r.facts.target_schema = Some(schema("42"));
        let why = changes_database(&r).unwrap();
        assert!(why.contains("schema from 41 to 42"), "{why}");
        r.facts.schema = None;
        let why = changes_database(&r).unwrap();
        assert!(why.contains("schema to 42"), "{why}");
    }

    #[test]
    fn the_policy_decides_with_its_reason() {
        let same = record(Some(Tier::Small), Tier::Small);
        assert!(reason_to_quiesce(QuiesceWhen::Always, &same).is_ok());
        assert!(reason_to_quiesce(QuiesceWhen::DatabaseChanges, &same)
            .unwrap_err()
            .contains("does not change the database"));
        let bigger = record(Some(Tier::Small), Tier::Large);
        assert!(reason_to_quiesce(QuiesceWhen::Never, &bigger).is_err());
        assert!(reason_to_quiesce(QuiesceWhen::DatabaseChanges, &bigger).is_ok());
    }

    #[test]
    fn the_configuration_reads_as_documented() {
        let config: MaintenanceConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, MaintenanceConfig::default());
        let config: MaintenanceConfig =
            serde_json::from_str(r#"{"quiesce":"always","priorities":{"first":10,"last":20}}"#).unwrap();
        assert_eq!(config.quiesce, QuiesceWhen::Always);
        assert!(config.checked().is_ok());
        let bad: MaintenanceConfig = serde_json::from_str(r#"{"priorities":{"first":0,"last":20}}"#).unwrap();
        assert!(bad.checked().unwrap_err().contains("1 <= first < last <= 50000"));
        assert!(serde_json::from_str::<MaintenanceConfig>(r#"{"quiesce":"sometimes"}"#).is_err());
    }
}
