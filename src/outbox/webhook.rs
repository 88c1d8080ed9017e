//! The HTTPS webhook sink, signed as Standard Webhooks sign: each POST carries the
//! CloudEvent JSON and the headers `webhook-id` (the event id), `webhook-timestamp`
//! (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "<id>.<timestamp>.<body>">`. A 2xx answer is delivered; 408, 429, 5xx and no
//! answer are retried; any other answer is refused for good (dead letter).

use async_trait::async_trait;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2_hmac::Sha256;

use super::config::{EventsConfigError, Secret, SinkConfig, SinkFilter, SinkKind};
use super::Sink;
use crate::record::outbox::AttemptOutcome;
use crate::record::CloudEvent;

pub struct WebhookSink {
    name: String,
    url: reqwest::Url,
    secret: Secret,
    filter: SinkFilter,
    client: reqwest::Client,
}

impl WebhookSink {
    pub fn from_config(config: &SinkConfig) -> Result<Self, EventsConfigError> {
        let fail = |message: String| EventsConfigError::Sink {
            sink: config.name.clone(),
            message,
        };
        let SinkKind::Webhook(webhook) = config.kind()? else {
            return Err(fail("is not a webhook sink".into()));
        };
        let url = reqwest::Url::parse(&webhook.url)
            .map_err(|e| fail(format!("url {:?} is not a URL ({e})", webhook.url)))?;
        let client = reqwest::Client::builder()
            .timeout(webhook.timeout)
            .build()
            .map_err(|e| fail(format!("cannot build its HTTP client ({e})")))?;
        Ok(Self {
            name: config.name.clone(),
            url,
            secret: webhook.secret(&config.name)?,
            filter: config.filter(),
            client,
        })
    }
}

/// The `webhook-signature` value of `body` sent as event `id` at `timestamp`.
pub fn signature(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(tag))
}

#[async_trait]
impl Sink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn filter(&self) -> &SinkFilter {
        &self.filter
    }

    async fn deliver(&self, event: &CloudEvent) -> AttemptOutcome {
        let body = serde_json::to_vec(event).expect("events serialize to JSON");
        let timestamp = chrono::Utc::now().timestamp();
        let answer = self
            .client
            .post(self.url.clone())
            .header("content-type", "application/cloudevents+json")
            .header("webhook-id", &event.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                signature(self.secret.expose(), &event.id, timestamp, &body),
            )
            .body(body)
            .send()
            .await;
        match answer {
            Err(e) => AttemptOutcome::Retryable(format!("POST {} failed: {e}", self.url)),
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    AttemptOutcome::Delivered
                } else if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
                    AttemptOutcome::Permanent(format!("the receiver refused it with HTTP {status}"))
                } else {
                    AttemptOutcome::Retryable(format!("the receiver answered HTTP {status}"))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_follows_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let secret = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
