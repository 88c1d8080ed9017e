//! The events configuration (`--events-config`, JSON): the sinks, each with what it
//! is for, and how deliveries are retried.
//!
//! ```json
//! {
//!   "sinks": [{
//!     "name": "ops",
//!     "webhook": { "url": "https://hooks.example.com/tenants", "secret_env": "OPS_WEBHOOK_SECRET" },
//!     "types": ["io.tenant-orchestrator.tenant."],
//!     "environments": ["prod"],
//!     "regions": ["eu-west-1"]
//!   }],
//!   "max_attempts": 8, "backoff_base": "5s", "backoff_cap": "10m", "retention": "3d"
//! }
//! ```
//!
//! Each sink is exactly one of `webhook`, `eventbridge`
//! (`{"event_bus": "tenant-events", "region": "eu-west-1"}`) or `slack`
//! (`{"url_env": "SLACK_WEBHOOK_URL"}`).
//!
//! A secret (a webhook's signing secret, a Slack webhook's URL) is read from an
//! environment variable (`secret_env`, `url_env`) or a file (`secret_file`,
//! `url_file`), never from the configuration or the command line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::record::outbox::RetryPolicy;
use crate::record::CloudEvent;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    pub sinks: Vec<SinkConfig>,
    /// Attempts per sink before an event is dead-lettered.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_base", with = "humantime_serde_compat")]
    pub backoff_base: Duration,
    #[serde(default = "default_cap", with = "humantime_serde_compat")]
    pub backoff_cap: Duration,
    /// How long delivered and dead events are kept.
    #[serde(default = "default_retention", with = "humantime_serde_compat")]
    pub retention: Duration,
}

/// One sink: its name, exactly one of `webhook`, `eventbridge` or `slack`, and its filter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    pub name: String,
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    #[serde(default)]
    pub eventbridge: Option<EventBridgeConfig>,
    #[serde(default)]
    pub slack: Option<SlackConfig>,
    /// Event type prefixes this sink is for (`io.tenant-orchestrator.tenant.`); empty: all.
    #[serde(default)]
    pub types: Vec<String>,
    /// Environments this sink is for; empty: all.
    #[serde(default)]
    pub environments: Vec<String>,
    /// Regions this sink is for; empty: all.
    #[serde(default)]
    pub regions: Vec<String>,
}

/// What kind of sink a [`SinkConfig`] is, with its kind's settings.
#[derive(Debug, Clone, Copy)]
pub enum SinkKind<'a> {
    Webhook(&'a WebhookConfig),
    EventBridge(&'a EventBridgeConfig),
    Slack(&'a SlackConfig),
}

impl SinkConfig {
    /// The sink's kind: exactly one of `webhook`, `eventbridge` or `slack` is given.
    pub fn kind(&self) -> Result<SinkKind<'_>, EventsConfigError> {
        let given: Vec<SinkKind<'_>> = [
            self.webhook.as_ref().map(SinkKind::Webhook),
            self.eventbridge.as_ref().map(SinkKind::EventBridge),
            self.slack.as_ref().map(SinkKind::Slack),
        ]
        .into_iter()
        .flatten()
        .collect();
        match given.as_slice() {
            [one] => Ok(*one),
            _ => Err(EventsConfigError::Sink {
                sink: self.name.clone(),
                message: format!(
                    "give exactly one of \"webhook\", \"eventbridge\" or \"slack\" (found {})",
                    given.len()
                ),
            }),
        }
    }

    pub fn filter(&self) -> SinkFilter {
        SinkFilter {
            types: self.types.clone(),
            environments: self.environments.clone(),
            regions: self.regions.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// How long one POST may take.
    #[serde(default = "default_timeout", with = "humantime_serde_compat")]
    pub timeout: Duration,
}

/// An Amazon EventBridge event bus, sent to with `PutEvents` using the standard AWS
/// configuration of the process (credentials, region, `AWS_ENDPOINT_URL`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBridgeConfig {
    /// The bus's name or ARN.
    #[serde(default = "default_bus")]
    pub event_bus: String,
    /// The bus's region, when not the process's.
    #[serde(default)]
    pub region: Option<String>,
    /// An endpoint other than the standard configuration's (a local EventBridge).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// How long one `PutEvents` may take.
    #[serde(default = "default_timeout", with = "humantime_serde_compat")]
    pub timeout: Duration,
}

/// A Slack-compatible incoming webhook: a message for people per event. Its URL is
/// its secret, so it is read from `url_env` or `url_file`, never the configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    #[serde(default)]
    pub url_env: Option<String>,
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// How long one POST may take.
    #[serde(default = "default_timeout", with = "humantime_serde_compat")]
    pub timeout: Duration,
}

/// Which events a sink is for; an empty list lets every value through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkFilter {
    /// Event type prefixes (`io.tenant-orchestrator.tenant.`).
    pub types: Vec<String>,
    pub environments: Vec<String>,
    pub regions: Vec<String>,
}

impl SinkFilter {
    /// Whether `event` is for this sink: its type starts with one of `types`, and its
    /// environment and region (the single `environment`/`region` of its data, or any
    /// element of its `environments`/`regions` lists) are among the filter's.
    pub fn matches(&self, event: &CloudEvent) -> bool {
        let any_or = |list: &[String], values: Vec<&str>| {
            list.is_empty() || values.iter().any(|v| list.iter().any(|l| l == v))
        };
        (self.types.is_empty()
            || self
                .types
                .iter()
                .any(|t| event.event_type.starts_with(t.as_str())))
            && any_or(&self.environments, event.environments())
            && any_or(&self.regions, event.regions())
    }
}

/// A secret that never prints.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EventsConfigError {
    #[error("cannot read the events configuration {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the events configuration {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("sink {sink}: {message}")]
    Sink { sink: String, message: String },
}

impl EventsConfig {
    pub fn load(path: &Path) -> Result<Self, EventsConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| EventsConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: Self = serde_json::from_str(&text).map_err(|source| EventsConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), EventsConfigError> {
        let mut names = std::collections::BTreeSet::new();
        for sink in &self.sinks {
            let fail = |message: String| EventsConfigError::Sink {
                sink: sink.name.clone(),
                message,
            };
            if sink.name.is_empty() || !names.insert(sink.name.as_str()) {
                return Err(fail("every sink needs a name of its own".into()));
            }
            match sink.kind()? {
                SinkKind::Webhook(webhook) => {
                    let url = reqwest::Url::parse(&webhook.url)
                        .map_err(|e| fail(format!("url {:?} is not a URL ({e})", webhook.url)))?;
                    if !matches!(url.scheme(), "https" | "http") {
                        return Err(fail(format!(
                            "url {:?} must be https (or http for a local receiver)",
                            webhook.url
                        )));
                    }
                }
                SinkKind::EventBridge(bus) => {
                    if bus.event_bus.trim().is_empty() {
                        return Err(fail(
                            "eventbridge.event_bus is empty: name the bus (or its ARN), or leave it out for \"default\"".into(),
                        ));
                    }
                }
                SinkKind::Slack(slack) => {
                    if slack.url_env.is_some() == slack.url_file.is_some() {
                        return Err(fail(
                            "give the Slack webhook URL as exactly one of url_env or url_file".into(),
                        ));
                    }
                }
            }
        }
        if self.max_attempts == 0 {
            return Err(EventsConfigError::Sink {
                sink: "*".into(),
                message: "max_attempts must be at least 1".into(),
            });
        }
        Ok(())
    }

    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            base: self.backoff_base,
            cap: self.backoff_cap,
        }
    }
}

impl WebhookConfig {
    /// The signing secret, from `secret_env` or `secret_file` (exactly one). A
    /// `whsec_` prefixed secret is base64 after the prefix, as Standard Webhooks give them.
    pub fn secret(&self, sink: &str) -> Result<Secret, EventsConfigError> {
        let fail = |message: String| EventsConfigError::Sink {
            sink: sink.to_owned(),
            message,
        };
        let text = match (&self.secret_env, &self.secret_file) {
            (Some(var), None) => std::env::var(var)
                .map_err(|_| fail(format!("the environment variable {var} (secret_env) is not set")))?,
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| fail(format!("cannot read secret_file {}: {e}", path.display())))?,
            _ => {
                return Err(fail(
                    "give the signing secret as exactly one of secret_env or secret_file".into(),
                ))
            }
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(fail("the signing secret is empty".into()));
        }
        match text.strip_prefix("whsec_") {
            Some(b64) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map(Secret::new)
                    .map_err(|e| fail(format!("the whsec_ secret is not base64 ({e})")))
            }
            None => Ok(Secret::new(text.as_bytes().to_vec())),
        }
    }
}

impl SlackConfig {
    /// The incoming-webhook URL, from `url_env` or `url_file` (exactly one).
    pub fn url(&self, sink: &str) -> Result<reqwest::Url, EventsConfigError> {
        let fail = |message: String| EventsConfigError::Sink {
            sink: sink.to_owned(),
            message,
        };
        let text = match (&self.url_env, &self.url_file) {
            (Some(var), None) => std::env::var(var)
                .map_err(|_| fail(format!("the environment variable {var} (url_env) is not set")))?,
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| fail(format!("cannot read url_file {}: {e}", path.display())))?,
            _ => {
                return Err(fail(
                    "give the Slack webhook URL as exactly one of url_env or url_file".into(),
                ))
            }
        };
        // The URL is the secret: an error names where it came from, never the URL.
        let url = reqwest::Url::parse(text.trim())
            .map_err(|e| fail(format!("the Slack webhook URL it names is not a URL ({e})")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(fail(
                "the Slack webhook URL must be https (or http for a local receiver)".into(),
            ));
        }
        Ok(url)
    }
}

fn default_bus() -> String {
    "default".to_owned()
}
fn default_attempts() -> u32 {
    8
}
fn default_base() -> Duration {
    Duration::from_secs(5)
}
fn default_cap() -> Duration {
    Duration::from_secs(600)
}
fn default_retention() -> Duration {
    Duration::from_secs(3 * 24 * 3600)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Durations written as humantime text (`5s`, `10m`).
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("{text:?} is not a duration like 5s or 10m ({e})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(env: &str, region: &str) -> CloudEvent {
        CloudEvent {
            specversion: "1.0".into(),
            id: "evt_1".into(),
            source: format!("tenantctl/{env}"),
            event_type: crate::record::outbox::TENANT_TRANSITION.into(),
            subject: "tenant/acme".into(),
            time: chrono::Utc::now(),
            datacontenttype: "application/json".into(),
            data: serde_json::json!({"environment": env, "region": region}),
        }
    }

    #[test]
    fn filters_match_type_prefix_environment_and_region() {
        let filter = SinkFilter {
            types: vec!["io.tenant-orchestrator.tenant.".into()],
            environments: vec!["prod".into()],
            regions: vec![],
        };
        assert!(filter.matches(&event("prod", "eu-west-1")));
        assert!(!filter.matches(&event("staging", "eu-west-1")));
        let rollouts_only = SinkFilter {
            types: vec!["io.tenant-orchestrator.rollout.".into()],
            ..SinkFilter::default()
        };
        assert!(!rollouts_only.matches(&event("prod", "eu-west-1")));
        assert!(SinkFilter::default().matches(&event("prod", "eu-west-1")));
    }

    #[test]
    fn environment_and_region_filters_match_any_element_of_an_events_lists() {
        let rollout = |data: serde_json::Value| CloudEvent {
            event_type: crate::record::outbox::ROLLOUT_HALTED.into(),
            subject: "rollout/r-1".into(),
            data,
            ..event("prod", "eu-west-1")
        };
        let eu = SinkFilter {
            regions: vec!["eu-west-1".into()],
            ..SinkFilter::default()
        };
        assert!(eu.matches(&rollout(
            serde_json::json!({"regions": ["us-east-1", "eu-west-1"]})
        )));
        assert!(!eu.matches(&rollout(serde_json::json!({"regions": ["us-east-1"]}))));
        assert!(
            !eu.matches(&rollout(serde_json::json!({"rollout": "r-1"}))),
            "an event naming no region is kept from a sink filtering on regions"
        );
        let prod = SinkFilter {
            environments: vec!["prod".into()],
            ..SinkFilter::default()
        };
        assert!(prod.matches(&rollout(serde_json::json!({"environments": ["staging", "prod"]}))));
        assert!(!prod.matches(&rollout(
            serde_json::json!({"environments": ["staging"], "regions": ["eu-west-1"]})
        )));
        // The single value and the list both count.
        assert!(prod.matches(&rollout(
            serde_json::json!({"environment": "prod", "environments": []})
        )));
        assert!(SinkFilter::default().matches(&rollout(serde_json::json!({}))));
    }

    #[test]
    fn a_sink_is_exactly_one_kind() {
        let err = serde_json::from_str::<SinkConfig>(r#"{"name":"a"}"#)
            .unwrap()
            .kind()
            .unwrap_err()
            .to_string();
        assert!(err.contains("give exactly one of"), "{err}");
        let both: SinkConfig = serde_json::from_str(
            r#"{"name":"a","webhook":{"url":"https://x","secret_env":"S"},"slack":{"url_env":"U"}}"#,
        )
        .unwrap();
        assert!(both.kind().is_err());
        let slack: SinkConfig = serde_json::from_str(r#"{"name":"a","slack":{"url_env":"U"}}"#).unwrap();
        assert!(matches!(slack.kind(), Ok(SinkKind::Slack(_))));
    }

    #[test]
    fn a_secret_on_the_configuration_itself_is_refused() {
        let err = serde_json::from_str::<EventsConfig>(
            r#"{"sinks":[{"name":"a","webhook":{"url":"https://x","secret":"s"}}]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `secret`"), "{err}");
    }

    #[test]
    fn a_sink_needs_exactly_one_secret_source() {
        let hook = WebhookConfig {
            url: "https://x".into(),
            secret_env: None,
            secret_file: None,
            timeout: Duration::from_secs(1),
        };
        let err = hook.secret("a").unwrap_err().to_string();
        assert!(err.contains("exactly one of secret_env or secret_file"), "{err}");
    }
}
