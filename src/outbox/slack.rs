//! The Slack-compatible incoming-webhook sink: a message for people per event, one
//! line saying what happened to which tenant or rollout and the command to look,
//! POSTed as `{"text": …, "blocks": […]}`. A 2xx answer is delivered; 408, 429, 5xx
//! and no answer are retried; any other answer is refused for good. The URL is the
//! webhook's secret: errors and logs never show it.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::config::{EventsConfigError, SinkConfig, SinkFilter, SinkKind};
use super::Sink;
use crate::record::outbox::{
    AttemptOutcome, ROLLOUT_APPROVAL_REQUESTED, ROLLOUT_HALTED, ROLLOUT_PHASE, TENANT_DRIFT_DETECTED,
    TENANT_TRANSITION,
};
use crate::record::CloudEvent;

pub struct SlackSink {
    name: String,
    url: reqwest::Url,
    filter: SinkFilter,
    client: reqwest::Client,
}

impl SlackSink {
    pub fn from_config(config: &SinkConfig) -> Result<Self, EventsConfigError> {
        let fail = |message: String| EventsConfigError::Sink {
            sink: config.name.clone(),
            message,
        };
        let SinkKind::Slack(slack) = config.kind()? else {
            return Err(fail("is not a slack sink".into()));
        };
        let client = reqwest::Client::builder()
            .timeout(slack.timeout)
            .build()
            .map_err(|e| fail(format!("cannot build its HTTP client ({e})")))?;
        Ok(Self {
            name: config.name.clone(),
            url: slack.url(&config.name)?,
            filter: config.filter(),
            client,
        })
    }
}

/// `&`, `<` and `>` escaped as Slack's message format asks.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The message's one line for people: what happened, to what, and the command to look.
pub fn message_text(event: &CloudEvent) -> String {
    let d = &event.data;
    let field = |name: &str| escape(d.get(name).and_then(Value::as_str).unwrap_or("?"));
    let regions = |d: &Value| {
        let list: Vec<&str> = d
            .get("regions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if list.is_empty() {
            String::new()
        } else {
            format!(" ({})", escape(&list.join(", ")))
        }
    };
    let wave = d.get("wave").and_then(Value::as_u64).unwrap_or(0);
    match event.event_type.as_str() {
        ROLLOUT_HALTED => format!(
            ":rotating_light: Rollout {id} halted in wave {wave}{regions}: {reason} — `tenantctl rollout status {id}`",
            id = field("rollout"),
            regions = regions(d),
            reason = field("halt_reason"),
        ),
        ROLLOUT_APPROVAL_REQUESTED => format!(
            ":raised_hand: Rollout {id} waits for approval before wave {wave}{regions} — `tenantctl rollout approve {id}`",
            id = field("rollout"),
            regions = regions(d),
        ),
        ROLLOUT_PHASE => format!(
            ":arrows_counterclockwise: Rollout {id} {from} → {to}{regions} — `tenantctl rollout status {id}`",
            id = field("rollout"),
            from = field("from"),
            to = field("to"),
            regions = regions(d),
        ),
        TENANT_DRIFT_DETECTED => format!(
            ":warning: Tenant {id} ({env}, {region}) drifted: {summary} — `tenantctl tenant drift {id}`",
            id = field("tenant"),
            env = field("environment"),
            region = field("region"),
            summary = field("summary"),
        ),
        TENANT_TRANSITION => {
            let failed = d.get("error").is_some();
            format!(
                "{icon} Tenant {id} ({env}, {region}): {from} → {to}{error} — `tenantctl tenant get {id}`",
                icon = if failed { ":x:" } else { ":gear:" },
                id = field("tenant"),
                env = field("environment"),
                region = field("region"),
                from = d.get("from").and_then(Value::as_str).map(escape).unwrap_or_else(|| "new".into()),
                to = field("to"),
                error = if failed {
                    format!(": {}", field("error"))
                } else {
                    String::new()
                },
            )
        }
        other => format!(
            ":information_source: {} {}",
            escape(other),
            escape(&event.subject)
        ),
    }
}

/// The JSON body of the message of `event`.
pub fn message(event: &CloudEvent) -> Value {
    let text = message_text(event);
    json!({
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "context", "elements": [{
                "type": "mrkdwn",
                "text": format!("{} · {} · {}", escape(&event.event_type), escape(&event.id), event.time.to_rfc3339()),
            }]},
        ],
    })
}

#[async_trait]
impl Sink for SlackSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn filter(&self) -> &SinkFilter {
        &self.filter
    }

    async fn deliver(&self, event: &CloudEvent) -> AttemptOutcome {
        let answer = self
            .client
            .post(self.url.clone())
            .json(&message(event))
            .send()
            .await;
        match answer {
            // Without the URL: it is the webhook's secret.
            Err(e) => {
                AttemptOutcome::Retryable(format!("POST to the Slack webhook failed: {}", e.without_url()))
            }
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    AttemptOutcome::Delivered
                } else if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
                    AttemptOutcome::Permanent(format!("the Slack webhook refused it with HTTP {status}"))
                } else {
                    AttemptOutcome::Retryable(format!("the Slack webhook answered HTTP {status}"))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, data: Value) -> CloudEvent {
        CloudEvent {
            specversion: "1.0".into(),
            id: "evt_1".into(),
            source: "tenantctl/rollouts".into(),
            event_type: event_type.into(),
            subject: "rollout/r-1".into(),
            time: chrono::Utc::now(),
            datacontenttype: "application/json".into(),
            data,
        }
    }

    #[test]
    fn each_event_type_reads_as_one_line_with_the_command_to_look() {
        let halted = event(
            ROLLOUT_HALTED,
            json!({"rollout": "r-1", "wave": 2, "regions": ["eu-west-1"], "halt_reason": "3 of 10 tenants failed"}),
        );
        assert_eq!(
            message_text(&halted),
            ":rotating_light: Rollout r-1 halted in wave 2 (eu-west-1): 3 of 10 tenants failed — `tenantctl rollout status r-1`"
        );
        let waiting = event(
            ROLLOUT_APPROVAL_REQUESTED,
            json!({"rollout": "r-1", "wave": 1, "regions": ["eu-west-1", "us-east-1"]}),
        );
        assert_eq!(
            message_text(&waiting),
            ":raised_hand: Rollout r-1 waits for approval before wave 1 (eu-west-1, us-east-1) — `tenantctl rollout approve r-1`"
        );
        let drift = event(
            TENANT_DRIFT_DETECTED,
            json!({"tenant": "acme", "environment": "prod", "region": "eu-west-1", "summary": "1 drifted: stack_parameter Tier"}),
        );
        assert_eq!(
            message_text(&drift),
            ":warning: Tenant acme (prod, eu-west-1) drifted: 1 drifted: stack_parameter Tier — `tenantctl tenant drift acme`"
        );
        let failed = event(
            TENANT_TRANSITION,
            json!({"tenant": "acme", "environment": "prod", "region": "eu-west-1", "from": "Provisioning/Stack", "to": "Failed", "error": "<stack> rolled back"}),
        );
        assert_eq!(
            message_text(&failed),
            ":x: Tenant acme (prod, eu-west-1): Provisioning/Stack → Failed: &lt;stack&gt; rolled back — `tenantctl tenant get acme`"
        );
    }

    #[test]
    fn the_body_carries_the_text_and_blocks() {
        let body = message(&event(
            ROLLOUT_PHASE,
            json!({"rollout": "r-1", "from": "running", "to": "paused"}),
        ));
        assert_eq!(
            body["text"],
            ":arrows_counterclockwise: Rollout r-1 running → paused — `tenantctl rollout status r-1`"
        );
        assert_eq!(body["blocks"][0]["text"]["text"], body["text"]);
        assert_eq!(body["blocks"][1]["type"], "context");
    }
}
