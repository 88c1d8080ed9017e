//! The outbox: each reported change (a tenant's transition, so far) is written as a
//! CloudEvents 1.0 event in the same transaction as the change, then delivered at
//! least once to every sink whose filter matches it. An event keeps, per sink, how
//! its delivery went, so a dispatcher that dies mid-way loses nothing and the next one
//! carries on. Pure data and decisions; the dispatcher does the I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{DriftCheck, HistoryEvent, Phase, RolloutRecord, TenantRecord, WaveRecord};
use crate::domain::Region;

/// The type of the event a tenant's transition writes.
pub const TENANT_TRANSITION: &str = "io.tenant-orchestrator.tenant.transition";

/// The type of the event a rollout's phase change writes.
pub const ROLLOUT_PHASE: &str = "io.tenant-orchestrator.rollout.phase";
/// The type of the event a rollout's halt (a breached failure budget) writes.
pub const ROLLOUT_HALTED: &str = "io.tenant-orchestrator.rollout.halted";

/// The type of the event a wave's wait for an operator's approval writes.
pub const ROLLOUT_APPROVAL_REQUESTED: &str = "io.tenant-orchestrator.rollout.approval_requested";
/// The type of the event a drift check writes when it finds drift on a tenant whose
/// previous check was in sync (or that was never checked).
pub const TENANT_DRIFT_DETECTED: &str = "io.tenant-orchestrator.tenant.drift_detected";

/// How many partitions the outbox is split into; each is delivered, in order, by the
/// one dispatcher holding its lease.
pub const OUTBOX_PARTITIONS: u32 = 8;

/// How long an event waits for delivery before the table's TTL removes it anyway. A
/// process without sinks configured delivers nothing, and undelivered events must not
/// pile up in the table without bound; an event redelivered by an operator waits this
/// long again.
pub const UNDELIVERED_RETENTION: std::time::Duration = std::time::Duration::from_secs(14 * 24 * 3600);

/// An event in the CloudEvents 1.0 JSON format, as sinks receive it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    /// Stable across retries of the write and every delivery: receivers deduplicate on it.
    pub id: String,
    /// `tenantctl/<environment>`.
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// What the event is about: `tenant/<id>`.
    pub subject: String,
    pub time: DateTime<Utc>,
    pub datacontenttype: String,
    pub data: serde_json::Value,
}

impl CloudEvent {
    /// The event of a tenant's transition recorded as `history` leading to `next`.
    pub fn tenant_transition(history: &HistoryEvent, next: &TenantRecord) -> Self {
        let subject = format!("tenant/{}", next.id());
        let mut data = serde_json::json!({
            "tenant": next.id().as_str(),
            "seq": history.seq,
            "from": history.from,
            "to": history.to,
            "cause": history.cause,
            "actor": history.actor,
            "environment": next.spec.environment.as_str(),
            "region": next.spec.region.as_str(),
        });
        if let Some(revision) = &history.revision {
            data["revision"] = revision.clone().into();
        }
        if let Some(error) = &history.error {
            // A step's error can be long; the event stays small, the history keeps it all.
            data["error"] = error.chars().take(500).collect::<String>().into();
        }
        Self {
            specversion: "1.0".to_owned(),
            id: event_id(&subject, history.seq),
            source: format!("tenantctl/{}", next.spec.environment),
            event_type: TENANT_TRANSITION.to_owned(),
            subject,
            time: history.at,
            datacontenttype: "application/json".to_owned(),
            data,
        }
    }

    /// The event of `next`, a rollout whose phase was `from`, stored at `next.version`.
    pub fn rollout_phase(from: Phase, next: &RolloutRecord, at: DateTime<Utc>) -> Self {
        let subject = format!("rollout/{}", next.id);
        let mut data = serde_json::json!({
            "rollout": next.id.as_str(),
            "from": from.as_str(),
            "to": next.phase.as_str(),
            "target": next.target(),
            "wave": next.current_wave,
            "regions": rollout_regions(next.waves.iter().flat_map(|w| &w.regions)),
        });
        if let Some(environment) = &next.spec.selector.environment {
            data["environment"] = environment.as_str().into();
        }
        if let Some(release) = &next.spec.release {
            data["release"] = release.to_string().into();
        }
        if let Some(reason) = &next.halt_reason {
            data["halt_reason"] = reason.chars().take(500).collect::<String>().into();
        }
        if let Some(last) = next.events.last() {
            data["actor"] = last.actor.clone().into();
            data["cause"] = last.what.chars().take(500).collect::<String>().into();
        }
        Self {
            specversion: "1.0".to_owned(),
            id: event_id(&subject, next.version),
            source: "tenantctl/rollouts".to_owned(),
            event_type: if next.phase == Phase::Halted {
                ROLLOUT_HALTED
            } else {
                ROLLOUT_PHASE
            }
            .to_owned(),
            subject,
            time: at,
            datacontenttype: "application/json".to_owned(),
            data,
        }
    }

    /// The event of `next`'s wave `wave` starting to wait for an approval, in the
    /// save that stores `next.version`.
    pub fn rollout_approval_requested(next: &RolloutRecord, wave: &WaveRecord, at: DateTime<Utc>) -> Self {
        let subject = format!("rollout/{}", next.id);
        let mut data = serde_json::json!({
            "rollout": next.id.as_str(),
            "wave": wave.index,
            "regions": rollout_regions(&wave.regions),
            "target": next.target(),
            "approve": format!("tenantctl rollout approve {}", next.id),
        });
        if let Some(environment) = &next.spec.selector.environment {
            data["environment"] = environment.as_str().into();
        }
        Self {
            specversion: "1.0".to_owned(),
            id: event_id(&format!("{subject}/approval/{}", wave.index), next.version),
            source: "tenantctl/rollouts".to_owned(),
            event_type: ROLLOUT_APPROVAL_REQUESTED.to_owned(),
            subject,
            time: at,
            datacontenttype: "application/json".to_owned(),
            data,
        }
    }

    /// The event of `check` finding drift on `tenant` (in `environment`, `region`).
    pub fn tenant_drift_detected(check: &DriftCheck, environment: &str, region: &str) -> Self {
        let subject = format!("tenant/{}", check.tenant);
        let findings: Vec<String> = check.findings.iter().take(20).map(|f| f.describe()).collect();
        let data = serde_json::json!({
            "tenant": check.tenant.as_str(),
            "environment": environment,
            "region": region,
            "summary": check.summary(),
            "findings": findings,
        });
        Self {
            specversion: "1.0".to_owned(),
            // A check is identified by its time: a retried write has the same id.
            id: event_id(
                &format!("{subject}/drift"),
                check.checked_at.timestamp_millis().max(0) as u64,
            ),
            source: format!("tenantctl/{environment}"),
            event_type: TENANT_DRIFT_DETECTED.to_owned(),
            subject,
            time: check.checked_at,
            datacontenttype: "application/json".to_owned(),
            data,
        }
    }

    /// The environment named in the event's data.
    pub fn environment(&self) -> Option<&str> {
        self.data.get("environment").and_then(|v| v.as_str())
    }

    /// The region named in the event's data.
    pub fn region(&self) -> Option<&str> {
        self.data.get("region").and_then(|v| v.as_str())
    }

    /// Every environment the event is about: its data's `environment` and the
    /// elements of its `environments` list.
    pub fn environments(&self) -> Vec<&str> {
        self.named("environment", "environments")
    }

    /// Every region the event is about: its data's `region` and the elements of its
    /// `regions` list (a rollout's waves' regions).
    pub fn regions(&self) -> Vec<&str> {
        self.named("region", "regions")
    }

    fn named(&self, single: &str, list: &str) -> Vec<&str> {
        let one = self.data.get(single).and_then(|v| v.as_str());
        let many = self
            .data
            .get(list)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str());
        one.into_iter().chain(many).collect()
    }

    /// The outbox partition the event is written to: every event of one subject goes
    /// to the same partition, so they are delivered in order.
    pub fn partition(&self) -> u32 {
        partition_of(&self.subject)
    }
}

/// The event id of the `seq`th change of `subject`: derived, not random, so a retried
/// write carries the same id and receivers can deduplicate on it.
pub fn event_id(subject: &str, seq: u64) -> String {
    let digest = Sha256::digest(format!("{subject}#{seq}").as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("evt_{hex}")
}

/// Regions in order, each once, as a rollout event names them.
fn rollout_regions<'a>(regions: impl IntoIterator<Item = &'a Region>) -> Vec<String> {
    let set: std::collections::BTreeSet<String> = regions.into_iter().map(|r| r.to_string()).collect();
    set.into_iter().collect()
}

pub fn partition_of(subject: &str) -> u32 {
    let digest = Sha256::digest(subject.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % OUTBOX_PARTITIONS
}

/// Where an event stands over all the sinks it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Some sink still has to receive it.
    Pending,
    /// Every sink it is for received it.
    Delivered,
    /// Some sink refused it for good or ran out of attempts; `events redeliver` retries.
    Dead,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "pending" => Ok(DeliveryState::Pending),
            "delivered" => Ok(DeliveryState::Delivered),
            "dead" => Ok(DeliveryState::Dead),
            other => Err(format!(
                "unknown delivery state {other:?}: use pending, delivered or dead"
            )),
        }
    }
}

/// How delivery to one sink went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkDelivery {
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
    /// Given up: refused for good, or out of attempts.
    #[serde(default)]
    pub dead: bool,
}

impl SinkDelivery {
    /// Nothing more to do for this sink until someone redelivers.
    pub fn settled(&self) -> bool {
        self.delivered_at.is_some() || self.dead
    }

    pub fn due(&self, now: DateTime<Utc>) -> bool {
        !self.settled() && self.next_attempt_at.is_none_or(|t| t <= now)
    }
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// May succeed later (timeouts, 5xx, 408, 429).
    Retryable(String),
    /// Will not succeed as it is (other 4xx): dead-lettered at once.
    Permanent(String),
}

/// Backoff and the attempt limit of deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl RetryPolicy {
    /// The delay after the `attempts`th failed attempt: doubling from `base` up to
    /// `cap`, of which `jitter` (0..=1) keeps a random share so dispatchers spread out.
    pub fn delay(&self, attempts: u32, jitter: f64) -> Duration {
        let doubled = self
            .base
            .saturating_mul(1u32.checked_shl(attempts.saturating_sub(1)).unwrap_or(u32::MAX));
        let full = doubled.min(self.cap);
        full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

/// An event in the outbox with its delivery bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    pub event: CloudEvent,
    pub state: DeliveryState,
    /// Per sink name: how delivery went (absent: not tried yet).
    pub deliveries: BTreeMap<String, SinkDelivery>,
    /// Optimistic-concurrency version of the delivery bookkeeping.
    pub version: u64,
    /// Where the event is kept when it was written with others in one item (the
    /// transitions of a worker's steps written together); `None`: in its own.
    pub batch: Option<BatchSlot>,
}

/// An event's place among the events written together in one outbox item: the item
/// is named by its first event, and keeps each event's bookkeeping under its index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSlot {
    pub first_at: DateTime<Utc>,
    pub first_id: String,
    pub index: u32,
}

impl OutboxEvent {
    pub fn new(event: CloudEvent) -> Self {
        Self {
            event,
            state: DeliveryState::Pending,
            deliveries: BTreeMap::new(),
            version: 0,
            batch: None,
        }
    }

    /// Whether the sink called `sink` still has to receive the event at `now`.
    pub fn due_for(&self, sink: &str, now: DateTime<Utc>) -> bool {
        self.deliveries.get(sink).is_none_or(|d| d.due(now))
    }

    /// Records the outcome of an attempt to deliver to `sink`; `jitter` in 0..=1.
    pub fn record_attempt(
        &mut self,
        sink: &str,
        outcome: AttemptOutcome,
        policy: &RetryPolicy,
        now: DateTime<Utc>,
        jitter: f64,
    ) {
        let delivery = self.deliveries.entry(sink.to_owned()).or_default();
        delivery.attempts += 1;
        match outcome {
            AttemptOutcome::Delivered => {
                delivery.delivered_at = Some(now);
                delivery.next_attempt_at = None;
                delivery.last_error = None;
            }
            AttemptOutcome::Permanent(error) => {
                delivery.dead = true;
                delivery.next_attempt_at = None;
                delivery.last_error = Some(error);
            }
            AttemptOutcome::Retryable(error) => {
                delivery.last_error = Some(error);
                if delivery.attempts >= policy.max_attempts {
                    delivery.dead = true;
                    delivery.next_attempt_at = None;
                } else {
                    let delay = policy.delay(delivery.attempts, jitter);
                    delivery.next_attempt_at =
                        Some(now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX));
                }
            }
        }
    }

    /// Settles the event's state once `sinks` (the sinks whose filter matches it) have
    /// been tried: pending while one of them has more to do, else dead if one gave up.
    pub fn settle(&mut self, sinks: &[&str]) {
        let entries = sinks.iter().map(|s| self.deliveries.get(*s));
        self.state = if entries.clone().any(|d| d.is_none_or(|d| !d.settled())) {
            DeliveryState::Pending
        } else if entries.flatten().any(|d| d.dead) {
            DeliveryState::Dead
        } else {
            DeliveryState::Delivered
        };
    }

    /// Gives the sink `sink` (or, with `None`, every sink that gave up) a fresh set of
    /// attempts. Returns the sinks reset; none means there was nothing to redeliver.
    pub fn redeliver(&mut self, sink: Option<&str>) -> Vec<String> {
        let mut reset = Vec::new();
        for (name, delivery) in self.deliveries.iter_mut() {
            let chosen = match sink {
                Some(s) => s == name,
                None => delivery.dead,
            };
            if chosen {
                *delivery = SinkDelivery::default();
                reset.push(name.clone());
            }
        }
        if !reset.is_empty() {
            self.state = DeliveryState::Pending;
        }
        reset
    }

    /// When the earliest retry of a sink is due, if one is waiting.
    pub fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        self.deliveries
            .values()
            .filter(|d| !d.settled())
            .filter_map(|d| d.next_attempt_at)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> OutboxEvent {
        OutboxEvent::new(CloudEvent {
            specversion: "1.0".into(),
            id: event_id("tenant/acme", 3),
            source: "tenantctl/prod".into(),
            event_type: TENANT_TRANSITION.into(),
            subject: "tenant/acme".into(),
            time: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            datacontenttype: "application/json".into(),
            data: serde_json::json!({"environment": "prod", "region": "eu-west-1"}),
        })
    }

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        base: Duration::from_secs(2),
        cap: Duration::from_secs(60),
    };

    #[test]
    fn event_ids_are_stable_per_subject_and_sequence() {
        assert_eq!(event_id("tenant/acme", 3), event_id("tenant/acme", 3));
        assert_ne!(event_id("tenant/acme", 3), event_id("tenant/acme", 4));
        assert_ne!(event_id("tenant/acme", 3), event_id("tenant/acmf", 3));
        assert_eq!(event_id("tenant/acme", 3).len(), 4 + 32);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_keeps_half_at_least() {
        assert_eq!(POLICY.delay(1, 1.0), Duration::from_secs(2));
        assert_eq!(POLICY.delay(3, 1.0), Duration::from_secs(8));
        assert_eq!(POLICY.delay(30, 1.0), Duration::from_secs(60));
        assert_eq!(POLICY.delay(1, 0.0), Duration::from_secs(1));
    }

    #[test]
    fn a_retryable_failure_waits_then_gives_up_after_the_last_attempt() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let mut e = event();
        e.record_attempt("hook", AttemptOutcome::Retryable("500".into()), &POLICY, now, 1.0);
        e.settle(&["hook"]);
        assert_eq!(e.state, DeliveryState::Pending);
        assert!(!e.due_for("hook", now));
        assert!(e.due_for("hook", now + chrono::Duration::seconds(2)));
        e.record_attempt("hook", AttemptOutcome::Retryable("500".into()), &POLICY, now, 1.0);
        e.record_attempt("hook", AttemptOutcome::Retryable("503".into()), &POLICY, now, 1.0);
        e.settle(&["hook"]);
        assert_eq!(e.state, DeliveryState::Dead);
        assert_eq!(e.deliveries["hook"].last_error.as_deref(), Some("503"));
    }

    #[test]
    fn the_event_is_delivered_only_when_every_matching_sink_has_it() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let mut e = event();
        e.record_attempt("a", AttemptOutcome::Delivered, &POLICY, now, 0.5);
        e.settle(&["a", "b"]);
        assert_eq!(e.state, DeliveryState::Pending);
        e.record_attempt("b", AttemptOutcome::Delivered, &POLICY, now, 0.5);
        e.settle(&["a", "b"]);
        assert_eq!(e.state, DeliveryState::Delivered);
    }

    #[test]
    fn a_permanent_refusal_dead_letters_and_redelivery_resets_only_that_sink() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let mut e = event();
        e.record_attempt("a", AttemptOutcome::Delivered, &POLICY, now, 0.5);
        e.record_attempt("b", AttemptOutcome::Permanent("400".into()), &POLICY, now, 0.5);
        e.settle(&["a", "b"]);
        assert_eq!(e.state, DeliveryState::Dead);
        assert_eq!(e.redeliver(None), vec!["b".to_owned()]);
        assert_eq!(e.state, DeliveryState::Pending);
        assert!(e.due_for("b", now));
        assert!(!e.due_for("a", now));
    }
}
