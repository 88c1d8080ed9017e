//! The Amazon EventBridge sink: each event is one `PutEvents` entry on the configured
//! bus, with `Source` the CloudEvent's source, `DetailType` its type, `Detail` the
//! whole CloudEvent JSON (its `id` is there to deduplicate on) and `Time` its time.
//! An entry the bus did not take (`FailedEntryCount` > 0), throttling, a 5xx and no
//! answer are retried; any other refusal (access denied, a missing bus, validation)
//! and an event over EventBridge's 256 KB entry limit are refused for good.

use async_trait::async_trait;
use aws_sdk_eventbridge::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::config::{EventsConfigError, SinkConfig, SinkFilter, SinkKind};
use super::Sink;
use crate::record::outbox::AttemptOutcome;
use crate::record::CloudEvent;

/// The largest entry `PutEvents` takes, counted as EventBridge counts it.
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;

/// Error codes of EventBridge that may pass when tried again.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "InternalException",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
];

pub struct EventBridgeSink {
    name: String,
    bus: String,
    filter: SinkFilter,
    client: aws_sdk_eventbridge::Client,
}

impl EventBridgeSink {
    /// The sink of `config` on the process's AWS configuration `aws`, with the
    /// sink's own region and endpoint when it names them.
    pub fn from_config(config: &SinkConfig, aws: &aws_config::SdkConfig) -> Result<Self, EventsConfigError> {
        let SinkKind::EventBridge(bus) = config.kind()? else {
            return Err(EventsConfigError::Sink {
                sink: config.name.clone(),
                message: "is not an eventbridge sink".into(),
            });
        };
        let mut builder = aws_sdk_eventbridge::config::Builder::from(aws)
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(bus.timeout)
                    .build(),
            );
        if let Some(region) = &bus.region {
            builder = builder.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &bus.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Ok(Self {
            name: config.name.clone(),
            bus: bus.event_bus.clone(),
            filter: config.filter(),
            client: aws_sdk_eventbridge::Client::from_conf(
                builder
                    .interceptor(crate::ports::aws_calls::AwsCallMetrics::new("eventbridge"))
                    .build(),
            ),
        })
    }
}

/// The size of an entry as EventBridge counts it: source, detail type, detail, the
/// resources (none) and 14 bytes for the time.
fn entry_size(event: &CloudEvent, detail: &str) -> usize {
    event.source.len() + event.event_type.len() + detail.len() + 14
}

/// What a failed `PutEvents` call comes to.
fn call_outcome<R>(
    bus: &str,
    err: &SdkError<aws_sdk_eventbridge::operation::put_events::PutEventsError, R>,
) -> AttemptOutcome
where
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("unknown");
            let message = service.err().message().unwrap_or("no message");
            let text = format!("PutEvents on bus {bus} failed: {code}: {message}");
            if RETRYABLE_CODES.contains(&code) {
                AttemptOutcome::Retryable(text)
            } else {
                AttemptOutcome::Permanent(text)
            }
        }
        SdkError::ConstructionFailure(_) => {
            AttemptOutcome::Permanent(format!("PutEvents on bus {bus} could not be built: {err:?}"))
        }
        // No answer, a timeout, or an answer that could not be read (a 5xx page).
        other => AttemptOutcome::Retryable(format!(
            "PutEvents on bus {bus} failed: {}",
            aws_smithy_types::error::display::DisplayErrorContext(other)
        )),
    }
}

#[async_trait]
impl Sink for EventBridgeSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn filter(&self) -> &SinkFilter {
        &self.filter
    }

    async fn deliver(&self, event: &CloudEvent) -> AttemptOutcome {
        let detail = serde_json::to_string(event).expect("events serialize to JSON");
        let size = entry_size(event, &detail);
        if size > MAX_ENTRY_BYTES {
            return AttemptOutcome::Permanent(format!(
                "the event is {size} bytes, over EventBridge's {MAX_ENTRY_BYTES}-byte entry limit; it is not sent"
            ));
        }
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(&event.source)
            .detail_type(&event.event_type)
            .detail(detail)
            .time(aws_smithy_types::DateTime::from_millis(
                event.time.timestamp_millis(),
            ))
            .build();
        let answer = self.client.put_events().entries(entry).send().await;
        match answer {
            Err(err) => call_outcome(&self.bus, &err),
            Ok(out) if out.failed_entry_count() > 0 => {
                let failed = out.entries().iter().find(|e| e.error_code().is_some());
                AttemptOutcome::Retryable(format!(
                    "bus {} did not take the event: {}: {}",
                    self.bus,
                    failed.and_then(|e| e.error_code()).unwrap_or("unknown"),
                    failed.and_then(|e| e.error_message()).unwrap_or("no message"),
                ))
            }
            Ok(_) => AttemptOutcome::Delivered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_event_over_the_entry_limit_is_refused_for_good_without_a_call() {
        let config: SinkConfig = serde_json::from_value(serde_json::json!({
            "name": "bus",
            // Nothing listens here: a call would be retryable, not permanent.
            "eventbridge": {"event_bus": "tenant-events", "region": "eu-west-1", "endpoint": "http://127.0.0.1:9"},
        }))
        .unwrap();
        let aws = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let sink = EventBridgeSink::from_config(&config, &aws).unwrap();
        let event = CloudEvent {
            specversion: "1.0".into(),
            id: "evt_1".into(),
            source: "tenantctl/prod".into(),
            event_type: crate::record::outbox::TENANT_TRANSITION.into(),
            subject: "tenant/acme".into(),
            time: chrono::Utc::now(),
            datacontenttype: "application/json".into(),
            data: serde_json::json!({"error": "x".repeat(MAX_ENTRY_BYTES)}),
        };
        match sink.deliver(&event).await {
            AttemptOutcome::Permanent(error) => {
                assert!(error.contains("entry limit"), "{error}")
            }
            other => panic!("expected a permanent refusal, got {other:?}"),
        }
    }
}
