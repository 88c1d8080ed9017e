//! Delivering the outbox. Every worker process runs a [`Dispatcher`]; for each outbox
//! partition whose lease it holds, it reads the pending events oldest first and hands
//! each to every configured [`Sink`] whose filter matches and whose delivery is due,
//! then records the outcome on the event (attempts, next attempt with backoff, last
//! error, delivered or dead). An event is delivered at least once: a dispatcher that
//! dies between a delivery and its record delivers again after the lease moves on,
//! with the same event id for the receiver to deduplicate on.
//!
//! This layer may use `domain`, `record` and `ports`.

pub mod config;
pub mod eventbridge;
pub mod slack;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::ports::{OutboxStore, StoreError};
use crate::record::outbox::{AttemptOutcome, RetryPolicy, OUTBOX_PARTITIONS};
use crate::record::{CloudEvent, DeliveryState, OutboxEvent};

pub use config::{EventsConfig, EventsConfigError, SinkFilter};

/// A destination of events (an HTTPS webhook, an EventBridge bus, a Slack channel).
/// Delivering the same event twice must be harmless: receivers deduplicate
/// on the event id.
#[async_trait]
pub trait Sink: Send + Sync {
    /// The name deliveries are recorded under.
    fn name(&self) -> &str;
    /// Which events this sink is for.
    fn filter(&self) -> &SinkFilter;
    async fn deliver(&self, event: &CloudEvent) -> AttemptOutcome;
}

/// The sinks of `config`. The AWS configuration is loaded from the environment only
/// when an EventBridge sink needs it.
pub async fn sinks(config: &EventsConfig) -> Result<Vec<Arc<dyn Sink>>, EventsConfigError> {
    let mut aws = None;
    let mut sinks: Vec<Arc<dyn Sink>> = Vec::with_capacity(config.sinks.len());
    for sink in &config.sinks {
        sinks.push(match sink.kind()? {
            config::SinkKind::Webhook(_) => Arc::new(webhook::WebhookSink::from_config(sink)?),
            config::SinkKind::Slack(_) => Arc::new(slack::SlackSink::from_config(sink)?),
            config::SinkKind::EventBridge(_) => {
                if aws.is_none() {
                    aws = Some(aws_config::load_from_env().await);
                }
                let aws = aws.as_ref().expect("loaded above");
                Arc::new(eventbridge::EventBridgeSink::from_config(sink, aws)?)
            }
        });
    }
    Ok(sinks)
}

/// How a dispatcher runs.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Recorded as the partition leases' owner.
    pub owner: String,
    pub lease_ttl: Duration,
    /// Pause between passes when nothing was delivered.
    pub poll_interval: Duration,
    /// Events read from a partition per pass.
    pub batch: usize,
    pub retry: RetryPolicy,
    /// How long a delivered or dead event is kept before the table's TTL removes it.
    pub retention: Duration,
}

/// What one pass did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DispatchPass {
    pub partitions_held: u32,
    pub attempts: u32,
    pub delivered: u32,
    pub dead: u32,
}

pub struct Dispatcher {
    store: Arc<dyn OutboxStore>,
    sinks: Vec<Arc<dyn Sink>>,
    config: DispatcherConfig,
}

impl Dispatcher {
    pub fn new(store: Arc<dyn OutboxStore>, sinks: Vec<Arc<dyn Sink>>, config: DispatcherConfig) -> Self {
        Self { store, sinks, config }
    }

    /// One pass over every partition: lease it, deliver what is due, record it.
    pub async fn dispatch_once(&self) -> Result<DispatchPass, StoreError> {
        let mut pass = DispatchPass::default();
        for partition in 0..OUTBOX_PARTITIONS {
            let held = self
                .store
                .lease_partition(partition, &self.config.owner, self.config.lease_ttl, Utc::now())
                .await?;
            if !held {
                continue;
            }
            pass.partitions_held += 1;
            for event in self.store.pending_events(partition, self.config.batch).await? {
                self.deliver(event, &mut pass).await?;
            }
        }
        Ok(pass)
    }

    async fn deliver(&self, mut event: OutboxEvent, pass: &mut DispatchPass) -> Result<(), StoreError> {
        let matching: Vec<&Arc<dyn Sink>> = self
            .sinks
            .iter()
            .filter(|sink| sink.filter().matches(&event.event))
            .collect();
        let now = Utc::now();
        let mut tried = false;
        for sink in &matching {
            if !event.due_for(sink.name(), now) {
                continue;
            }
            tried = true;
            pass.attempts += 1;
            let outcome = sink.deliver(&event.event).await;
            match &outcome {
                AttemptOutcome::Delivered => {
                    info!(event = %event.event.id, sink = sink.name(), "event delivered");
                }
                AttemptOutcome::Retryable(error) | AttemptOutcome::Permanent(error) => {
                    warn!(event = %event.event.id, sink = sink.name(), error = %error, "event delivery failed");
                }
            }
            event.record_attempt(
                sink.name(),
                outcome,
                &self.config.retry,
                Utc::now(),
                rand::random(),
            );
        }
        let names: Vec<&str> = matching.iter().map(|s| s.name()).collect();
        let before = event.state;
        event.settle(&names);
        if !tried && event.state == before {
            return Ok(());
        }
        match event.state {
            DeliveryState::Delivered => pass.delivered += 1,
            DeliveryState::Dead => {
                pass.dead += 1;
                warn!(event = %event.event.id, "event dead-lettered; `tenantctl events redeliver` retries it");
            }
            DeliveryState::Pending => {}
        }
        match self.store.record_deliveries(&event, self.config.retention).await {
            // Someone redelivered it meanwhile: the next pass reads it again.
            Err(StoreError::Conflict { .. }) => Ok(()),
            other => other,
        }
    }

    /// Dispatches until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let pause = match self.dispatch_once().await {
                Ok(pass) if pass.attempts > 0 => Duration::ZERO,
                Ok(_) => self.config.poll_interval,
                Err(e) => {
                    warn!(error = %e.detailed(), "outbox dispatch failed; retrying");
                    self.config.poll_interval
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}
