//! What follows a rollout's completion: the version policy of its environment moves
//! to its release and platform (`on_complete.advance_policy`), and promotion rules
//! from its environment start a promotion. The controller runs both before it saves
//! the completion, so a controller that dies in between runs them again: setting the
//! policy to the same versions and recording the same promotion change nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::{Environment, Group, PlatformVersion, Region, ReleaseVersion, VersionPolicy};
use crate::ports::{PolicyStore, PromotionStore, RolloutStore, StoreError};
use crate::record::{Outcome, Promotion, RolloutRecord};

/// Attempts at recording a promotion when a rule changes at the same moment.
const PROMOTION_ATTEMPTS: usize = 3;
/// Time between soak checks when the completed rollout did not bake.
const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// Which entries of the policy a completed rollout sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyAdvance {
    pub environment: Environment,
    pub keys: AdvancedKeys,
    pub release: Option<ReleaseVersion>,
    pub platform: Option<PlatformVersion>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdvancedKeys {
    /// The selector names exactly one group: that group's override.
    Group(Group),
    /// Otherwise the default of every region: the selector's, else those its waves covered.
    Regions(BTreeSet<Region>),
}

impl PolicyAdvance {
    /// What `record` advances, if its spec asks for it; `None` also when it covered
    /// no region (nothing to set).
    pub fn of(record: &RolloutRecord) -> Option<Self> {
        let spec = &record.spec;
        if !spec.on_complete.advance_policy {
            return None;
        }
        let environment = spec.selector.environment.clone()?;
        let keys = match (spec.selector.groups.len(), spec.selector.groups.first()) {
            (1, Some(group)) => AdvancedKeys::Group(group.clone()),
            _ => {
                let regions: BTreeSet<Region> = if spec.selector.regions.is_empty() {
                    record
                        .waves
                        .iter()
                        .flat_map(|w| w.regions.iter().cloned())
                        .collect()
                } else {
                    spec.selector.regions.clone()
                };
                if regions.is_empty() {
                    return None;
                }
                AdvancedKeys::Regions(regions)
            }
        };
        Some(Self {
            environment,
            keys,
            release: spec.release.clone(),
            platform: spec.platform,
        })
    }

    pub fn apply(&self, policy: &mut VersionPolicy) {
        let env = &self.environment;
        match &self.keys {
            AdvancedKeys::Group(group) => {
                if let Some(release) = &self.release {
                    policy.set_group_override(env.clone(), group.clone(), release.clone());
                }
                if let Some(platform) = self.platform {
                    policy.set_platform_group_override(env.clone(), group.clone(), platform);
                }
            }
            AdvancedKeys::Regions(regions) => {
                for region in regions {
                    if let Some(release) = &self.release {
                        policy.set_default(env.clone(), region.clone(), release.clone());
                    }
                    if let Some(platform) = self.platform {
                        policy.set_platform_default(env.clone(), region.clone(), platform);
                    }
                }
            }
        }
    }

    /// `prod/eu-west-1, prod/us-east-1 → release 1.5.0, platform 2026.12.1`; a group
    /// override reads `prod/group canary → …`.
    pub fn describe(&self) -> String {
        let env = &self.environment;
        let keys = match &self.keys {
            AdvancedKeys::Group(group) => format!("{env}/group {group}"),
            AdvancedKeys::Regions(regions) => regions
                .iter()
                .map(|r| format!("{env}/{r}"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let mut target = Vec::new();
        if let Some(release) = &self.release {
            target.push(format!("release {release}"));
        }
        if let Some(platform) = &self.platform {
            target.push(format!("platform {platform}"));
        }
        format!("{keys} → {}", target.join(", "))
    }
}

/// Runs what follows the completion of `record`; returns the lines to record in its
/// events.
pub(super) async fn follow_up(
    record: &RolloutRecord,
    policy: Option<&dyn PolicyStore>,
    promotions: Option<&dyn PromotionStore>,
    rollouts: &dyn RolloutStore,
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let mut done = Vec::new();
    if record.spec.on_complete.advance_policy {
        match (PolicyAdvance::of(record), policy) {
            (Some(advance), Some(policy)) => {
                // A completion decided again (its save lost to a concurrent write)
                // finds the policy advanced already and leaves its audit trail alone.
                let (current, _) = policy.load_policy().await?;
                let mut advanced = current.clone();
                advance.apply(&mut advanced);
                if advanced != current {
                    let actor = format!("rollout:{}", record.id);
                    let what = format!("advance {}", advance.describe());
                    policy
                        .update_policy(&actor, &what, &|p: &mut VersionPolicy| advance.apply(p))
                        .await?;
                }
                done.push(format!("policy advanced: {}", advance.describe()));
            }
            (None, _) => done.push("policy not advanced: the rollout covered no region".into()),
            (Some(_), None) => done.push("policy not advanced: this controller has no policy store".into()),
        }
    }
    if let (Some(environment), Some(promotions)) = (&record.spec.selector.environment, promotions) {
        done.extend(record_promotions(record, environment, promotions, rollouts, now).await?);
    }
    Ok(done)
}

/// Starts a promotion of `record` on every rule from its environment (replacing an
/// older promotion of the rule); a rule already promoting it is left as it is.
async fn record_promotions(
    record: &RolloutRecord,
    environment: &Environment,
    promotions: &dyn PromotionStore,
    rollouts: &dyn RolloutStore,
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let mut done = Vec::new();
    let rules: Vec<_> = promotions
        .list_promotions()
        .await?
        .into_iter()
        .filter(|r| r.rule.from == *environment)
        .collect();
    if rules.is_empty() {
        return Ok(done);
    }
    let tenants: Vec<_> = rollouts
        .members(&record.id, None)
        .await?
        .into_iter()
        .filter(|m| m.outcome == Outcome::Succeeded)
        .map(|m| m.tenant)
        .collect();
    let interval = match record.spec.strategy.bake.check_interval() {
        Duration::ZERO => DEFAULT_CHECK_INTERVAL,
        interval => interval,
    };
    for mut stored in rules {
        let name = stored.rule.name.clone();
        for attempt in 1..=PROMOTION_ATTEMPTS {
            if stored.promotion.as_ref().is_some_and(|p| p.source == record.id) {
                break;
            }
            let mut promotion = Promotion::of_completed(
                &stored.rule,
                &record.id,
                record.spec.release.clone(),
                record.spec.platform,
                tenants.clone(),
                now,
                interval,
            );
            if let Some(old) = stored.promotion.as_ref().filter(|p| p.state.is_open()) {
                promotion.events.insert(
                    0,
                    crate::record::RolloutEvent {
                        at: now,
                        actor: format!("rollout:{}", record.id),
                        what: format!("replaces the promotion of {} ({})", old.source, old.state),
                    },
                );
            }
            let soak_until = promotion.soak_until;
            stored.promotion = Some(promotion);
            stored.updated_by = format!("rollout:{}", record.id);
            match promotions.save_promotion(&stored).await {
                Ok(_) => {
                    done.push(format!(
                        "promotion {name} to {}: soaking until {}",
                        stored.rule.to,
                        soak_until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ));
                    break;
                }
                Err(StoreError::Conflict { .. }) if attempt < PROMOTION_ATTEMPTS => {
                    stored = promotions.load_promotion(&name).await?;
                }
                Err(StoreError::NotFound { .. }) => break,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RolloutId, RolloutSpec};

    fn record(spec: serde_json::Value, wave_regions: &[&str]) -> RolloutRecord {
        let spec: RolloutSpec = serde_json::from_value(spec).unwrap();
        let mut record: RolloutRecord = serde_json::from_value(serde_json::json!({
            "id": "r-prod", "spec": spec, "phase": "completed", "waves": [], "current_wave": 0,
            "skipped": [], "not_selected": 0, "created_by": "test",
            "created_at": "2026-12-01T00:00:00Z", "updated_at": "2026-12-01T00:00:00Z",
        }))
        .unwrap();
        record.id = RolloutId::parse("r-prod").unwrap();
        if !wave_regions.is_empty() {
            let wave = serde_json::json!({
                "index": 0, "kind": "canary", "target": 1, "regions": wave_regions, "size": 1,
                "allowed_failures": 0, "approval_before": false, "status": "succeeded",
            });
            record.waves.push(serde_json::from_value(wave).unwrap());
        }
        record
    }

    #[test]
    fn region_defaults_advance_for_the_regions_the_rollout_covered() {
        let r = record(
            serde_json::json!({"release": "1.5.0", "selector": {"environment": "prod"},
                "on_complete": {"advance_policy": true}}),
            &["eu-west-1", "us-east-1"],
        );
        let advance = PolicyAdvance::of(&r).unwrap();
        assert_eq!(
            advance.describe(),
            "prod/eu-west-1, prod/us-east-1 → release 1.5.0"
        );
        let mut policy = VersionPolicy::default();
        advance.apply(&mut policy);
        let prod = Environment::parse("prod").unwrap();
        let eu = Region::parse("eu-west-1").unwrap();
        assert_eq!(policy.default_for(&prod, &eu).unwrap().to_string(), "1.5.0");
        let again = policy.clone();
        advance.apply(&mut policy);
        assert_eq!(policy, again, "advancing twice changes nothing");
    }

    #[test]
    fn one_selected_group_advances_its_override_and_no_option_nothing() {
        let r = record(
            serde_json::json!({"release": "1.5.0", "platform": "2026.12.1",
                "selector": {"environment": "prod", "groups": ["canary"], "regions": ["eu-west-1"]},
                "on_complete": {"advance_policy": true}}),
            &["eu-west-1"],
        );
        let advance = PolicyAdvance::of(&r).unwrap();
        assert_eq!(
            advance.describe(),
            "prod/group canary → release 1.5.0, platform 2026.12.1"
        );
        let plain = record(
            serde_json::json!({"release": "1.5.0", "selector": {"environment": "prod"}}),
            &["eu-west-1"],
        );
        assert_eq!(PolicyAdvance::of(&plain), None);
    }
}
