//! ELBv2: a listener's rules with their tags, and the maintenance rules this product
//! creates and deletes on it.

use std::collections::HashMap;

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, FixedResponseActionConfig, HostHeaderConditionConfig, HttpHeaderConditionConfig,
    Rule, RuleCondition, Tag,
};
use aws_sdk_elasticloadbalancingv2::Client;

use super::plan::{self, Role};
use super::BYPASS_HEADER;
use crate::step::StepOutcome;
use crate::steps::aws_failure;

/// Tag keys of a maintenance rule: whose it is and which of its pair.
pub const TAG_TENANT: &str = "tenant-orchestrator:tenant";
pub const TAG_ENVIRONMENT: &str = "tenant-orchestrator:environment";
pub const TAG_ROLE: &str = "tenant-orchestrator:maintenance";

/// One rule of a listener as this product reads it.
#[derive(Debug, Clone)]
pub struct ListenerRule {
    pub arn: String,
    /// `None` for the listener's default rule.
    pub priority: Option<u32>,
    pub hosts: Vec<String>,
    pub actions: Vec<Action>,
    pub tags: HashMap<String, String>,
}

impl ListenerRule {
    /// The role tag (`bypass-0`, `page-0`) when it is a maintenance rule of `tenant`
    /// in `environment`.
    pub fn maintenance_of(&self, tenant: &str, environment: &str) -> Option<&str> {
        let ours = self.tags.get(TAG_TENANT).map(String::as_str) == Some(tenant)
            && self.tags.get(TAG_ENVIRONMENT).map(String::as_str) == Some(environment);
        self.tags.get(TAG_ROLE).map(String::as_str).filter(|_| ours)
    }
}

/// Every rule of `listener`, lowest priority first and the default rule last, with
/// its tags.
pub async fn list(elbv2: &Client, listener: &str) -> Result<Vec<ListenerRule>, StepOutcome> {
    let mut rules: Vec<Rule> = Vec::new();
    let mut marker = None;
    loop {
        let page = elbv2
            .describe_rules()
            .listener_arn(listener)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| aws_failure(&format!("ELBv2 DescribeRules of {listener}"), e))?;
        rules.extend(page.rules.unwrap_or_default());
        marker = page.next_marker.filter(|m| !m.is_empty());
        if marker.is_none() {
            break;
        }
    }
    let arns: Vec<String> = rules.iter().filter_map(|r| r.rule_arn.clone()).collect();
    let mut tags: HashMap<String, HashMap<String, String>> = HashMap::new();
    for batch in arns.chunks(20) {
        let described = elbv2
            .describe_tags()
            .set_resource_arns(Some(batch.to_vec()))
            .send()
            .await
            .map_err(|e| aws_failure("ELBv2 DescribeTags of listener rules", e))?;
        for d in described.tag_descriptions.unwrap_or_default() {
            let found = d
                .tags
                .unwrap_or_default()
                .into_iter()
                .filter_map(|t| Some((t.key?, t.value.unwrap_or_default())))
                .collect();
            if let Some(arn) = d.resource_arn {
                tags.insert(arn, found);
            }
        }
    }
    let mut out: Vec<ListenerRule> = rules
        .into_iter()
        .filter_map(|r| {
            let arn = r.rule_arn?;
            let priority = match r.is_default {
                Some(true) => None,
                _ => r.priority.as_deref().and_then(|p| p.parse().ok()),
            };
            let hosts = r
                .conditions
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.field.as_deref() == Some("host-header"))
                .flat_map(|c| {
                    let configured = c.host_header_config.and_then(|h| h.values).unwrap_or_default();
                    let plain = c.values.unwrap_or_default();
                    configured.into_iter().chain(plain)
                })
                .collect();
            Some(ListenerRule {
                tags: tags.remove(&arn).unwrap_or_default(),
                arn,
                priority,
                hosts,
                actions: r.actions.unwrap_or_default(),
            })
        })
        .collect();
    out.sort_by_key(|r| r.priority.unwrap_or(u32::MAX));
    Ok(out)
}

/// The actions that serve `host` today: those of the first rule (not a maintenance
/// rule) whose host condition matches it, else the listener's default actions.
pub fn routing_actions(rules: &[ListenerRule], host: &str) -> Vec<Action> {
    let routed = rules.iter().find(|r| {
        !r.tags.contains_key(TAG_ROLE)
            && (r.priority.is_none() || r.hosts.iter().any(|p| plan::host_matches(p, host)))
    });
    routed.map(|r| r.actions.clone()).unwrap_or_default()
}

/// What CreateRule says when it refuses.
pub enum CreateRefused {
    PriorityInUse,
    Other(Box<StepOutcome>),
}

pub struct NewRule<'a> {
    pub listener: &'a str,
    pub role: Role,
    pub chunk: usize,
    pub hosts: &'a [String],
    pub priority: u32,
    pub token: &'a str,
    /// For a bypass rule: where matching requests go.
    pub forward: Vec<Action>,
    pub tenant: &'a str,
    pub environment: &'a str,
}

/// Creates one tagged maintenance rule; returns its ARN.
pub async fn create(elbv2: &Client, rule: NewRule<'_>) -> Result<String, CreateRefused> {
    let host = RuleCondition::builder()
        .field("host-header")
        .host_header_config(
            HostHeaderConditionConfig::builder()
                .set_values(Some(rule.hosts.to_vec()))
                .build(),
        )
        .build();
    let mut conditions = vec![host];
    let actions = match rule.role {
        Role::Bypass => {
            conditions.push(
                RuleCondition::builder()
                    .field("http-header")
                    .http_header_config(
                        HttpHeaderConditionConfig::builder()
                            .http_header_name(BYPASS_HEADER)
                            .values(rule.token)
                            .build(),
                    )
                    .build(),
            );
            rule.forward
        }
        Role::Page => vec![Action::builder()
            .r#type(ActionTypeEnum::FixedResponse)
            .fixed_response_config(
                FixedResponseActionConfig::builder()
                    .status_code("503")
                    .content_type("text/html")
                    .message_body(plan::PAGE)
                    .build(),
            )
            .build()],
    };
    let tag = |k: &str, v: String| Tag::builder().key(k).value(v).build();
    let sent = elbv2
        .create_rule()
        .listener_arn(rule.listener)
        .priority(rule.priority as i32)
        .set_conditions(Some(conditions))
        .set_actions(Some(actions))
        .tags(tag(TAG_TENANT, rule.tenant.to_owned()))
        .tags(tag(TAG_ENVIRONMENT, rule.environment.to_owned()))
        .tags(tag(TAG_ROLE, rule.role.tag(rule.chunk)))
        .send()
        .await;
    match sent {
        Ok(out) => out
            .rules
            .unwrap_or_default()
            .into_iter()
            .find_map(|r| r.rule_arn)
            .ok_or_else(|| {
                CreateRefused::Other(Box::new(StepOutcome::retry(format!(
                    "ELBv2 CreateRule on {} returned no rule",
                    rule.listener
                ))))
            }),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_priority_in_use_exception()) =>
        {
            Err(CreateRefused::PriorityInUse)
        }
        Err(e) => Err(CreateRefused::Other(Box::new(aws_failure(
            &format!("ELBv2 CreateRule on {}", rule.listener),
            e,
        )))),
    }
}

/// Deletes a rule; one that is already gone counts as deleted.
pub async fn delete(elbv2: &Client, arn: &str) -> Result<(), StepOutcome> {
    match elbv2.delete_rule().rule_arn(arn).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_rule_not_found_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(aws_failure(&format!("ELBv2 DeleteRule {arn}"), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(priority: Option<u32>, hosts: &[&str], target: &str, maintenance: bool) -> ListenerRule {
        let mut tags = HashMap::new();
        if maintenance {
            tags.insert(TAG_ROLE.to_owned(), "page-0".to_owned());
        }
        ListenerRule {
            arn: format!("rule-{target}"),
            priority,
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            actions: vec![Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .target_group_arn(target)
                .build()],
            tags,
        }
    }

    fn target(actions: Vec<Action>) -> Option<String> {
        actions.first().and_then(|a| a.target_group_arn.clone())
    }

    #[test]
    fn the_bypass_forwards_where_the_host_is_routed_today_past_maintenance_rules() {
        let rules = vec![
            rule(Some(1), &["acme.example.com"], "maintenance", true),
            rule(Some(1000), &["*.globex.com"], "globex", false),
            rule(Some(1001), &["ACME.example.com"], "acme", false),
            rule(None, &[], "default", false),
        ];
        assert_eq!(
            target(routing_actions(&rules, "acme.example.com")).as_deref(),
            Some("acme")
        );
        assert_eq!(
            target(routing_actions(&rules, "shop.globex.com")).as_deref(),
            Some("globex")
        );
        assert_eq!(
            target(routing_actions(&rules, "other.example.com")).as_deref(),
            Some("default")
        );
    }

    #[test]
    fn only_this_tenants_rules_in_its_environment_are_its_maintenance_rules() {
        let mut r = rule(Some(1), &["acme.example.com"], "x", true);
        r.tags.insert(TAG_TENANT.into(), "acme".into());
        r.tags.insert(TAG_ENVIRONMENT.into(), "prod".into());
        assert_eq!(r.maintenance_of("acme", "prod"), Some("page-0"));
        assert_eq!(r.maintenance_of("acme", "staging"), None);
        assert_eq!(r.maintenance_of("acme-eu", "prod"), None);
    }
}
