//! A promotion rule: once a rollout of one environment (`staging`) completes and its
//! tenants stay healthy for a soak time, the same release and platform roll out to the
//! next environment (`prod`) from a stored rollout template, optionally behind an
//! operator's approval.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration::as_text;
use super::rollout::{OnComplete, Selector, Strategy};
use super::schema::{string, string_schema};
use super::{dns_label_problem, string_newtype, Environment, InvalidValue, PlatformVersion, ReleaseVersion};
use super::{RolloutId, RolloutSpec};

/// A promotion rule's name: a DNS label of 2-40 characters (`staging-to-prod`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PromotionName(String);

impl PromotionName {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        match dns_label_problem(s, 2, 40) {
            Some(problem) => Err(InvalidValue::new(
                "promotion name",
                s,
                format!("{problem} (example: staging-to-prod)"),
            )),
            None => Ok(Self(s.to_owned())),
        }
    }

    fn json_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string(
            "^[a-z0-9][a-z0-9-]{0,38}[a-z0-9]$",
            (2, Some(40)),
            "A promotion rule's name: a DNS label of 2-40 characters.",
            "staging-to-prod",
        )
    }
}
string_newtype!(PromotionName);
string_schema!(PromotionName);

/// The rollout a promotion starts, without its target: the release and platform come
/// from the completed rollout of the `from` environment. Its selector's environment is
/// the rule's `to` (set when left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TemplateFields", into = "TemplateFields")]
pub struct RolloutTemplate {
    pub selector: Selector,
    pub strategy: Strategy,
    pub on_complete: OnComplete,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFields {
    #[serde(default, skip_serializing)]
    release: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    platform: Option<serde_json::Value>,
    #[serde(default)]
    selector: Selector,
    #[serde(default)]
    strategy: Strategy,
    #[serde(default)]
    on_complete: OnComplete,
}

impl TryFrom<TemplateFields> for RolloutTemplate {
    type Error = InvalidValue;
    fn try_from(f: TemplateFields) -> Result<Self, Self::Error> {
        for (field, given) in [("release", &f.release), ("platform", &f.platform)] {
            if given.is_some() {
                return Err(InvalidValue::new(
                    "promotion rollout template",
                    field,
                    format!(
                        "is taken from the completed rollout being promoted; remove `{field}` from the template"
                    ),
                ));
            }
        }
        Ok(Self {
            selector: f.selector,
            strategy: f.strategy,
            on_complete: f.on_complete,
        })
    }
}

impl From<RolloutTemplate> for TemplateFields {
    fn from(t: RolloutTemplate) -> Self {
        TemplateFields {
            release: None,
            platform: None,
            selector: t.selector,
            strategy: t.strategy,
            on_complete: t.on_complete,
        }
    }
}

/// A stored promotion rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionRule {
    pub name: PromotionName,
    pub from: Environment,
    pub to: Environment,
    /// How long the completed rollout's tenants must stay healthy.
    #[serde(with = "as_text")]
    pub soak: Duration,
    /// Whether an operator approves the start after the soak.
    pub approval: bool,
    pub template: RolloutTemplate,
}

/// The longest soak a rule may ask for.
const MAX_SOAK: Duration = Duration::from_secs(30 * 24 * 3600);

impl PromotionRule {
    /// A rule, checked: two different environments, a soak of at most 30 days, and a
    /// template whose selector is the `to` environment (set when it names none).
    pub fn new(
        name: PromotionName,
        from: Environment,
        to: Environment,
        soak: Duration,
        approval: bool,
        mut template: RolloutTemplate,
    ) -> Result<Self, InvalidValue> {
        if from == to {
            return Err(InvalidValue::new(
                "promotion rule",
                to.as_str(),
                "promotes an environment to itself; give a different target (--to, `to` in the API; e.g. from staging to prod)",
            ));
        }
        if soak > MAX_SOAK {
            return Err(InvalidValue::new(
                "promotion soak",
                &super::duration::format_duration(soak),
                "is longer than 30 days; give a shorter soak",
            ));
        }
        match &template.selector.environment {
            None => template.selector.environment = Some(to.clone()),
            Some(env) if *env == to => {}
            Some(env) => {
                return Err(InvalidValue::new(
                    "promotion rollout template",
                    env.as_str(),
                    format!("selects environment {env} but the rule promotes to {to}; make them agree"),
                ))
            }
        }
        Ok(Self {
            name,
            from,
            to,
            soak,
            approval,
            template,
        })
    }

    /// The rollout spec the promotion starts with the promoted release and platform.
    pub fn spec_for(
        &self,
        release: Option<ReleaseVersion>,
        platform: Option<PlatformVersion>,
    ) -> RolloutSpec {
        RolloutSpec {
            release,
            platform,
            change: None,
            reconcile: false,
            selector: self.template.selector.clone(),
            strategy: self.template.strategy.clone(),
            on_complete: self.template.on_complete,
        }
    }

    /// The id of the rollout promoting `source`: `<source>-to-<to>`, so a promotion
    /// started twice (a controller that crashed after starting it) names one rollout.
    pub fn rollout_id(&self, source: &RolloutId) -> RolloutId {
        let suffix = format!("-to-{}", self.to);
        let keep = 63 - suffix.len();
        let base: String = source.as_str().chars().take(keep).collect();
        RolloutId::parse(&format!("{}{suffix}", base.trim_end_matches('-')))
            .expect("a rollout id with a DNS-label suffix is a rollout id")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(s: &str) -> Environment {
        Environment::parse(s).unwrap()
    }

    fn template(json: &str) -> Result<RolloutTemplate, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn a_template_takes_no_target_and_gets_the_rules_environment() {
        let err = template(r#"{"release": "1.5.0"}"#).unwrap_err();
        assert!(err.contains("remove `release` from the template"), "{err}");
        let t = template(r#"{"strategy": {"waves": ["1", "100%"]}}"#).unwrap();
        let name = PromotionName::parse("staging-to-prod").unwrap();
        let rule = PromotionRule::new(
            name.clone(),
            env("staging"),
            env("prod"),
            Duration::from_secs(7200),
            false,
            t,
        )
        .unwrap();
        assert_eq!(rule.template.selector.environment, Some(env("prod")));
        let spec = rule.spec_for(Some(ReleaseVersion::parse("1.5.0").unwrap()), None);
        assert_eq!(spec.selector.environment, Some(env("prod")));
        let back: PromotionRule = serde_json::from_value(serde_json::to_value(&rule).unwrap()).unwrap();
        assert_eq!(back, rule);

        let other = template(r#"{"selector": {"environment": "dev"}}"#).unwrap();
        let err = PromotionRule::new(
            name.clone(),
            env("staging"),
            env("prod"),
            Duration::ZERO,
            false,
            other,
        )
        .unwrap_err();
        assert!(err.to_string().contains("make them agree"), "{err}");
        let same = template("{}").unwrap();
        let err =
            PromotionRule::new(name, env("prod"), env("prod"), Duration::ZERO, false, same).unwrap_err();
        assert!(err.to_string().contains("give a different target"), "{err}");
    }

    #[test]
    fn the_promoted_rollouts_id_is_derived_from_the_source() {
        let rule = PromotionRule::new(
            PromotionName::parse("staging-to-prod").unwrap(),
            env("staging"),
            env("prod"),
            Duration::ZERO,
            false,
            template("{}").unwrap(),
        )
        .unwrap();
        let source = RolloutId::parse("r-2026-12-01-1-5-0").unwrap();
        assert_eq!(rule.rollout_id(&source).as_str(), "r-2026-12-01-1-5-0-to-prod");
        let long = RolloutId::parse(&format!("r{}", "-x".repeat(31))).unwrap();
        let id = rule.rollout_id(&long);
        assert!(
            id.as_str().len() <= 63 && id.as_str().ends_with("-to-prod"),
            "{id}"
        );
        assert_eq!(rule.rollout_id(&long), id);
    }
}
