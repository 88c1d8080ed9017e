//! What a verified Stripe event asks for, decided without I/O: the event's JSON and
//! the mapping file in, an [`Intent`] (or why it cannot be mapped) out.
//!
//! - `customer.subscription.created` and `…updated` with a live status (`active`,
//!   `trialing`, `past_due`) mean the tenant should exist on the price's tier: create
//!   it, or change its tier, and cancel a deprovision its cancellation scheduled.
//! - `customer.subscription.deleted`, and an update to `canceled`, `unpaid` or
//!   `incomplete_expired`, schedule its deprovision after the grace period.
//! - Any other status (`incomplete`, `paused`) and any other event type change nothing.
//!   `cancel_at_period_end` changes nothing either: Stripe sends `…deleted` when the
//!   period ends. An update's other changes (hostnames, region, group) are not applied.

use serde::Deserialize;
use serde_json::Value;

use super::config::IntakeConfig;
use crate::domain::{Group, Hostname, Region, TenantId, TenantSpec, Tier};

/// Why a verified event cannot be acted on. Nothing is stored for it, so Stripe's
/// retry succeeds once the mapping file or the subscription is fixed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("the event is not a Stripe event of the expected shape: {0}")]
    Malformed(String),
    #[error("price {price} is not mapped to a tier; add `{price}: <small|medium|large>` under prices in {file} and restart, then Stripe's retry creates the tenant")]
    UnknownPrice { price: String, file: String },
    #[error("subscription {subscription}: metadata {key}: {message}")]
    InvalidMetadata {
        subscription: String,
        key: String,
        message: String,
    },
}

/// What the event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Nothing to do; the reason is answered to Stripe.
    Ignored(String),
    /// The subscription is live: the tenant exists on this spec's tier (a new tenant
    /// gets the whole spec).
    Subscribe {
        subscription: String,
        spec: Box<TenantSpec>,
    },
    /// The subscription ended: the tenant is deprovisioned after the grace period.
    Cancel { subscription: String, tenant: TenantId },
}

#[derive(Debug, Deserialize)]
pub struct StripeEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub data: EventData,
}

#[derive(Debug, Deserialize)]
pub struct EventData {
    /// Read only for the subscription events; other types are ignored whatever they hold.
    #[serde(default)]
    pub object: Value,
}

#[derive(Debug, Deserialize)]
struct SubscriptionObject {
    id: String,
    status: String,
    #[serde(default)]
    metadata: std::collections::BTreeMap<String, String>,
    items: Items,
}

#[derive(Debug, Deserialize)]
struct Items {
    data: Vec<Item>,
}

#[derive(Debug, Deserialize)]
struct Item {
    price: Price,
}

#[derive(Debug, Deserialize)]
struct Price {
    id: String,
}

impl StripeEvent {
    pub fn parse(body: &[u8]) -> Result<Self, MappingError> {
        let event: StripeEvent =
            serde_json::from_slice(body).map_err(|e| MappingError::Malformed(e.to_string()))?;
        if !event.id.starts_with("evt_") || event.id.len() > 255 {
            return Err(MappingError::Malformed(format!(
                "event id {:?} is not a Stripe event id (evt_…)",
                event.id.chars().take(40).collect::<String>()
            )));
        }
        Ok(event)
    }
}

/// Decides what `event` asks for under `config`.
pub fn decide(event: &StripeEvent, config: &IntakeConfig) -> Result<Intent, MappingError> {
    let live = match event.event_type.as_str() {
        "customer.subscription.created" | "customer.subscription.updated" => true,
        "customer.subscription.deleted" => false,
        other => return Ok(Intent::Ignored(format!("event type {other} is not handled"))),
    };
    let sub: SubscriptionObject = serde_json::from_value(event.data.object.clone())
        .map_err(|e| MappingError::Malformed(format!("data.object is not a subscription: {e}")))?;
    let metadata = |key: &str| sub.metadata.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    let invalid = |key: &str, message: String| MappingError::InvalidMetadata {
        subscription: sub.id.clone(),
        key: key.to_owned(),
        message,
    };
    let keys = &config.metadata;
    let tenant = match metadata(&keys.tenant_id) {
        Some(id) => TenantId::parse(id).map_err(|e| invalid(&keys.tenant_id, e.to_string()))?,
        None => {
            return Err(invalid(
                &keys.tenant_id,
                "missing; set the tenant's id in the subscription's metadata".into(),
            ))
        }
    };
    let cancel = || Intent::Cancel {
        subscription: sub.id.clone(),
        tenant: tenant.clone(),
    };
    if !live {
        return Ok(cancel());
    }
    match sub.status.as_str() {
        "active" | "trialing" | "past_due" => {}
        "canceled" | "unpaid" | "incomplete_expired" => return Ok(cancel()),
        other => {
            return Ok(Intent::Ignored(format!(
                "subscription {} is {other}; nothing changes until it is active",
                sub.id
            )))
        }
    }
    let price = match sub.items.data.as_slice() {
        [item, ..] => &item.price.id,
        [] => {
            return Err(MappingError::Malformed(format!(
                "subscription {} has no items",
                sub.id
            )))
        }
    };
    let tier: Tier = *config
        .prices
        .get(price)
        .ok_or_else(|| MappingError::UnknownPrice {
            price: price.clone(),
            file: config.path.display().to_string(),
        })?;
    let region = match metadata(&keys.region) {
        Some(r) => Region::parse(r).map_err(|e| invalid(&keys.region, e.to_string()))?,
        None => config.default_region.clone().ok_or_else(|| {
            invalid(
                &keys.region,
                "missing, and the intake file has no defaults.region".into(),
            )
        })?,
    };
    let group = match metadata(&keys.group) {
        Some(g) => Group::parse(g).map_err(|e| invalid(&keys.group, e.to_string()))?,
        None => config.default_group.clone(),
    };
    let hostnames = metadata(&keys.hostnames)
        .ok_or_else(|| {
            invalid(
                &keys.hostnames,
                "missing; list the tenant's hostnames, comma-separated".into(),
            )
        })?
        .split(',')
        .map(|h| Hostname::parse(h.trim()).map_err(|e| invalid(&keys.hostnames, e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let spec = TenantSpec {
        id: tenant,
        region,
        environment: config.environment.clone(),
        group,
        tier,
        hostnames,
        pinned_release: None,
        maintenance: None,
        platform: None,
        pinned_platform: None,
    };
    spec.validate()
        .map_err(|e| invalid(&keys.hostnames, e.to_string()))?;
    Ok(Intent::Subscribe {
        subscription: sub.id,
        spec: Box::new(spec),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;

    fn config() -> IntakeConfig {
        IntakeConfig::parse(
            Path::new("intake.yaml"),
            "environment: prod\nsecret_env: S\nprices: {price_s: small, price_l: large}\ndefaults: {region: eu-west-1}\n",
            |_| Some("whsec_x".into()),
        )
        .unwrap()
    }

    fn event(kind: &str, status: &str, price: &str, metadata: Value) -> StripeEvent {
        let body = json!({
            "id": "evt_1", "type": kind,
            "data": {"object": {"id": "sub_1", "status": status, "metadata": metadata,
                                "items": {"data": [{"price": {"id": price}}]}}}
        });
        StripeEvent::parse(body.to_string().as_bytes()).unwrap()
    }

    fn acme() -> Value {
        json!({"tenant_id": "acme", "hostnames": "acme.example.com, shop.acme.example.com", "group": "canary"})
    }

    #[test]
    fn a_live_subscription_maps_to_the_prices_tier_and_the_metadata() {
        let Intent::Subscribe { subscription, spec } = decide(
            &event("customer.subscription.created", "active", "price_l", acme()),
            &config(),
        )
        .unwrap() else {
            panic!("expected a subscribe")
        };
        assert_eq!(subscription, "sub_1");
        assert_eq!(spec.id.as_str(), "acme");
        assert_eq!(spec.tier, Tier::Large);
        assert_eq!(spec.region.as_str(), "eu-west-1");
        assert_eq!(spec.group.as_str(), "canary");
        assert_eq!(spec.environment.as_str(), "prod");
        assert_eq!(spec.hostnames.len(), 2);
    }

    #[test]
    fn deletion_and_a_canceled_update_cancel_and_other_things_are_ignored() {
        let config = config();
        let cancel = Intent::Cancel {
            subscription: "sub_1".into(),
            tenant: TenantId::parse("acme").unwrap(),
        };
        // A deletion needs no known price.
        assert_eq!(
            decide(
                &event("customer.subscription.deleted", "canceled", "price_gone", acme()),
                &config
            ),
            Ok(cancel.clone())
        );
        assert_eq!(
            decide(
                &event("customer.subscription.updated", "canceled", "price_s", acme()),
                &config
            ),
            Ok(cancel)
        );
        assert!(matches!(
            decide(
                &event("customer.subscription.updated", "incomplete", "price_s", acme()),
                &config
            ),
            Ok(Intent::Ignored(_))
        ));
        assert!(matches!(
            decide(&event("invoice.paid", "active", "price_s", acme()), &config),
            Ok(Intent::Ignored(_))
        ));
    }

    #[test]
    fn an_unknown_price_or_bad_metadata_says_what_to_fix() {
        let config = config();
        let unknown = decide(
            &event("customer.subscription.created", "active", "price_x", acme()),
            &config,
        )
        .unwrap_err()
        .to_string();
        assert!(
            unknown.contains("price_x") && unknown.contains("intake.yaml"),
            "{unknown}"
        );
        let bad_id = json!({"tenant_id": "Acme Corp", "hostnames": "acme.example.com"});
        let bad_host = json!({"tenant_id": "acme", "hostnames": "not a host"});
        for metadata in [bad_id, bad_host, json!({"hostnames": "acme.example.com"})] {
            assert!(matches!(
                decide(
                    &event("customer.subscription.created", "active", "price_s", metadata),
                    &config
                ),
                Err(MappingError::InvalidMetadata { .. })
            ));
        }
        assert!(StripeEvent::parse(br#"{"id": "x", "type": "t", "data": {"object": {}}}"#).is_err());
        let other = StripeEvent::parse(br#"{"id": "evt_2", "type": "invoice.paid", "data": {}}"#).unwrap();
        assert!(matches!(decide(&other, &config), Ok(Intent::Ignored(_))));
    }
}
