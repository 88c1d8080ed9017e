//! The tenant's CloudWatch alarms as evidence of health: the tenant stack's own (named
//! under `tenant-<environment>-<id>/`) and the extra ones the verify configuration
//! names per tenant. A tenant with an alarm in ALARM is not healthy, nor, when the
//! configuration says so, one whose alarm has no data.

use std::fmt;
use std::sync::Arc;

use aws_sdk_cloudwatch::error::SdkError;
use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsError;
use aws_sdk_cloudwatch::types::{AlarmType, StateValue};
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::domain::{TenantId, TenantSpec};
use crate::record::AlarmSeen;
use crate::steps::{names, AwsClients};

use super::VerifyConfig;

/// DescribeAlarms takes at most this many names in one call.
const MAX_EXTRA_ALARMS: usize = 100;

/// An alarm name with `{tenant}` standing for the tenant id, e.g. `{tenant}-custom-latency`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmNameTemplate(String);

impl AlarmNameTemplate {
    pub fn parse(template: &str) -> Result<Self, String> {
        if !template.contains("{tenant}") {
            return Err(format!(
                "verify.extra_alarms entry {template:?} must contain {{tenant}}: without it every tenant would be judged by the same alarm"
            ));
        }
        if template.replace("{tenant}", "").contains(['{', '}']) {
            return Err(format!(
                "verify.extra_alarms entry {template:?} may use only the placeholder {{tenant}}"
            ));
        }
        Ok(Self(template.to_owned()))
    }

    pub fn for_tenant(&self, tenant: &TenantId) -> String {
        self.0.replace("{tenant}", tenant.as_str())
    }
}

/// What CloudWatch says of one alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
    /// A configured alarm that does not exist: no evidence is not good evidence.
    Missing,
}

impl fmt::Display for AlarmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ok => "OK",
            Self::Alarm => "ALARM",
            Self::InsufficientData => "INSUFFICIENT_DATA",
            Self::Missing => "missing",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmReading {
    pub name: String,
    pub state: AlarmState,
}

/// One reading of a tenant's alarms, judged by the configured policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmReport {
    /// The alarms checked in a stable order (the stack's by name, then the extra ones
    /// as configured), or why they could not be read.
    pub readings: Result<Vec<AlarmReading>, String>,
    pub insufficient_data_fails: bool,
}

impl AlarmReport {
    fn counts_against(&self, state: AlarmState) -> bool {
        match state {
            AlarmState::Ok => false,
            AlarmState::InsufficientData => self.insufficient_data_fails,
            AlarmState::Alarm | AlarmState::Missing => true,
        }
    }

    /// The alarms read and their states, as a rollout's bake evidence keeps them
    /// (none when they could not be read).
    pub fn seen(&self) -> Vec<AlarmSeen> {
        self.readings
            .iter()
            .flatten()
            .map(|a| AlarmSeen {
                name: a.name.clone(),
                state: a.state.to_string(),
            })
            .collect()
    }

    /// No alarm counts against the tenant, and the alarms could be read.
    pub fn healthy(&self) -> bool {
        self.readings
            .as_ref()
            .is_ok_and(|r| r.iter().all(|a| !self.counts_against(a.state)))
    }
}

/// `alarms: a OK, b INSUFFICIENT_DATA` when healthy; `failing alarms: b ALARM (checked
/// a OK, b ALARM)` when not, so a reason names the culprits and the whole evidence.
impl fmt::Display for AlarmReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let readings = match &self.readings {
            Ok(readings) => readings,
            Err(why) => return write!(f, "alarms could not be read: {why}"),
        };
        let list = |alarms: &mut dyn Iterator<Item = &AlarmReading>| {
            alarms
                .map(|a| format!("{} {}", a.name, a.state))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if readings.is_empty() {
            return f.write_str("alarms: none");
        }
        let all = list(&mut readings.iter());
        if self.healthy() {
            return write!(f, "alarms: {all}");
        }
        let failing = list(&mut readings.iter().filter(|a| self.counts_against(a.state)));
        write!(f, "failing alarms: {failing} (checked {all})")
    }
}

/// Reads a tenant's alarms with `DescribeAlarms` in the tenant's region.
#[derive(Clone)]
pub struct AlarmWatch {
    aws: Arc<AwsClients>,
    extra: Vec<AlarmNameTemplate>,
    insufficient_data_fails: bool,
}

impl AlarmWatch {
    pub fn new(config: &VerifyConfig, aws: Arc<AwsClients>) -> Result<Self, String> {
        if config.extra_alarms.len() > MAX_EXTRA_ALARMS {
            return Err(format!(
                "verify.extra_alarms names {} alarms; at most {MAX_EXTRA_ALARMS} are allowed",
                config.extra_alarms.len()
            ));
        }
        let extra = config
            .extra_alarms
            .iter()
            .map(|t| AlarmNameTemplate::parse(t))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            aws,
            extra,
            insufficient_data_fails: config.insufficient_data_fails,
        })
    }

    pub async fn read(&self, tenant: &TenantSpec) -> AlarmReport {
        AlarmReport {
            readings: self.readings(tenant).await,
            insufficient_data_fails: self.insufficient_data_fails,
        }
    }

    async fn readings(&self, tenant: &TenantSpec) -> Result<Vec<AlarmReading>, String> {
        let pages = self
            .pages(tenant)
            .await
            .map_err(|e| DisplayErrorContext(e).to_string())?;
        let mut stack_alarms: Vec<AlarmReading> = pages.stack.iter().flat_map(readings_of).collect();
        stack_alarms.sort_by(|a, b| a.name.cmp(&b.name));
        let found = pages.extra.as_ref().map(readings_of).unwrap_or_default();
        let extra = pages.extra_names.into_iter().map(|name| {
            let state = found
                .iter()
                .find(|a| a.name == name)
                .map_or(AlarmState::Missing, |a| a.state);
            AlarmReading { name, state }
        });
        Ok(stack_alarms.into_iter().chain(extra).collect())
    }

    /// The tenant's alarms as CloudWatch lists them: every page of the stack's (by the
    /// tenant's prefix), then the configured extra names the stack does not have and
    /// one page describing those that exist.
    async fn pages(&self, tenant: &TenantSpec) -> Result<AlarmPages, SdkError<DescribeAlarmsError>> {
        let client = self.aws.tenant(tenant).cloudwatch.clone();
        let mut stack = Vec::new();
        let mut next_token = None;
        loop {
            let page = client
                .describe_alarms()
                .alarm_name_prefix(names::alarm_prefix(tenant))
                .alarm_types(AlarmType::MetricAlarm)
                .alarm_types(AlarmType::CompositeAlarm)
                .set_next_token(next_token)
                .send()
                .await?;
            next_token = page.next_token().map(str::to_owned);
            stack.push(page);
            if next_token.is_none() {
                break;
            }
        }
        let stack_names: Vec<String> = stack.iter().flat_map(readings_of).map(|a| a.name).collect();
        let extra_names: Vec<String> = self
            .extra
            .iter()
            .map(|t| t.for_tenant(&tenant.id))
            .filter(|name| !stack_names.contains(name))
            .collect();
        let extra = match extra_names.is_empty() {
            true => None,
            false => Some(
                client
                    .describe_alarms()
                    .set_alarm_names(Some(extra_names.clone()))
                    .alarm_types(AlarmType::MetricAlarm)
                    .alarm_types(AlarmType::CompositeAlarm)
                    .send()
                    .await?,
            ),
        };
        Ok(AlarmPages {
            stack,
            extra_names,
            extra,
        })
    }
}

/// What CloudWatch answered about a tenant's alarms (see [`AlarmWatch::pages`]).
struct AlarmPages {
    stack: Vec<aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput>,
    extra_names: Vec<String>,
    extra: Option<aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput>,
}

/// An alarm as a CloudFormation rollback trigger names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmArn {
    pub arn: String,
    /// A composite alarm (`AWS::CloudWatch::CompositeAlarm`), not a metric alarm.
    pub composite: bool,
}

impl AlarmWatch {
    /// The tenant's alarms that exist, in the order verify checks them: the stack's by
    /// name, then the extra ones as configured. A configured alarm that does not exist
    /// is left out.
    pub async fn arns(&self, tenant: &TenantSpec) -> Result<Vec<AlarmArn>, SdkError<DescribeAlarmsError>> {
        let pages = self.pages(tenant).await?;
        let mut stack_alarms: Vec<(String, AlarmArn)> = pages.stack.iter().flat_map(arns_of).collect();
        stack_alarms.sort_by(|a, b| a.0.cmp(&b.0));
        let mut arns: Vec<AlarmArn> = stack_alarms.into_iter().map(|(_, arn)| arn).collect();
        let found = pages.extra.as_ref().map(arns_of).unwrap_or_default();
        arns.extend(
            pages
                .extra_names
                .iter()
                .filter_map(|name| found.iter().find(|(n, _)| n == name).map(|(_, arn)| arn.clone())),
        );
        Ok(arns)
    }
}

/// Every alarm on the page, with its name.
fn arns_of(
    page: &aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput,
) -> Vec<(String, AlarmArn)> {
    let metric = page
        .metric_alarms()
        .iter()
        .map(|a| (a.alarm_name(), a.alarm_arn(), false));
    let composite = page
        .composite_alarms()
        .iter()
        .map(|a| (a.alarm_name(), a.alarm_arn(), true));
    metric
        .chain(composite)
        .filter_map(|(name, arn, composite)| {
            let arn = AlarmArn {
                arn: arn?.to_owned(),
                composite,
            };
            Some((name?.to_owned(), arn))
        })
        .collect()
}

fn readings_of(
    page: &aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput,
) -> Vec<AlarmReading> {
    let metric = page
        .metric_alarms()
        .iter()
        .map(|a| (a.alarm_name(), a.state_value()));
    let composite = page
        .composite_alarms()
        .iter()
        .map(|a| (a.alarm_name(), a.state_value()));
    metric
        .chain(composite)
        .filter_map(|(name, state)| {
            Some(AlarmReading {
                name: name?.to_owned(),
                state: match state? {
                    StateValue::Ok => AlarmState::Ok,
                    StateValue::Alarm => AlarmState::Alarm,
                    // INSUFFICIENT_DATA, or a state newer than this SDK: not known good.
                    _ => AlarmState::InsufficientData,
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(states: &[(&str, AlarmState)], insufficient_data_fails: bool) -> AlarmReport {
        AlarmReport {
            readings: Ok(states
                .iter()
                .map(|(name, state)| AlarmReading {
                    name: (*name).into(),
                    state: *state,
                })
                .collect()),
            insufficient_data_fails,
        }
    }

    #[test]
    fn a_template_must_name_the_tenant_and_nothing_else() {
        let t = AlarmNameTemplate::parse("{tenant}-custom-latency").unwrap();
        assert_eq!(
            t.for_tenant(&TenantId::parse("acme").unwrap()),
            "acme-custom-latency"
        );
        assert!(AlarmNameTemplate::parse("shared-latency")
            .unwrap_err()
            .contains("must contain {tenant}"));
        assert!(AlarmNameTemplate::parse("{tenant}-{region}")
            .unwrap_err()
            .contains("only the placeholder"));
    }

    #[test]
    fn alarm_and_missing_fail_and_insufficient_data_follows_the_policy() {
        let ok = report(&[("a", AlarmState::Ok)], false);
        assert!(ok.healthy());
        assert_eq!(ok.to_string(), "alarms: a OK");

        let alarm = report(&[("a", AlarmState::Ok), ("b", AlarmState::Alarm)], false);
        assert!(!alarm.healthy());
        assert_eq!(
            alarm.to_string(),
            "failing alarms: b ALARM (checked a OK, b ALARM)"
        );

        assert!(!report(&[("c", AlarmState::Missing)], false).healthy());

        let no_data = [("a", AlarmState::InsufficientData)];
        assert!(report(&no_data, false).healthy());
        assert!(!report(&no_data, true).healthy());

        let unread = AlarmReport {
            readings: Err("timeout".into()),
            insufficient_data_fails: false,
        };
        assert!(!unread.healthy());
        assert_eq!(unread.to_string(), "alarms could not be read: timeout");
        assert_eq!(report(&[], false).to_string(), "alarms: none");
    }
}
