//! `POST /v1/intake/stripe`: Stripe's subscription webhooks. No bearer token: Stripe
//! authenticates by the `Stripe-Signature` header, checked on the raw body before
//! anything parses it. Errors follow what Stripe does with answers: 2xx ends its
//! retries (so a replay is a 200 `duplicate`), anything else is retried for days.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use chrono::Utc;

use super::{ApiError, ApiState};
use crate::app::intake::{IntakeError, IntakeReply, MappingError, SignatureError};

/// A Stripe event as Stripe sends it; only these fields are read (of a subscription
/// event's `data.object`: `id`, `status`, `metadata`, `items.data[0].price.id`).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)] // the body is read raw and verified first; this type only documents it
pub struct StripeEventBody {
    /// The event's id, unique per event; a second delivery of it changes nothing.
    #[schema(example = "evt_1QxAcme", pattern = "^evt_")]
    id: String,
    /// `customer.subscription.created`, `…updated` or `…deleted`; others are ignored.
    #[serde(rename = "type")]
    event_type: String,
    /// `{"object": <the subscription>}`.
    #[schema(value_type = Object)]
    data: serde_json::Value,
}

#[utoipa::path(operation_id = "intake_stripe", post, path = "/v1/intake/stripe", tag = "intake",
    params(("Stripe-Signature" = String, Header, description = "`t=<unix seconds>,v1=<hex HMAC-SHA256 of \"{t}.{raw body}\" under the endpoint secret>`; several `v1` during a secret rotation")),
    request_body(content = StripeEventBody, description = "The event exactly as Stripe sent it (the signature covers the raw bytes)"),
    responses((status = 200, body = IntakeReply, description = "Handled (`created`, `tier_changed`, `unchanged`, `deprovision_scheduled`), `ignored` (another event type or status) or `duplicate` (a replay: nothing changed)"),
        (status = 400, body = super::error::ErrorBody, description = "`invalid_signature` (missing, malformed or matching no endpoint secret), `stale_timestamp` (outside the tolerance) or `invalid_request` (not a Stripe event): nothing changed"),
        (status = 404, body = super::error::ErrorBody, description = "`intake_not_configured`: the server was started without --stripe-intake"),
        (status = 409, body = super::error::ErrorBody, description = "The tenant command refused (`tenant_exists`, `hostname_taken`, `refused_by_state`, `held_by_rollout`, `tenant_in_other_environment`, …) or the same event is being handled by another request (`in_progress`); Stripe retries"),
        (status = 422, body = super::error::ErrorBody, description = "`unknown_price` (add it to the mapping file) or `invalid_metadata` (fix the subscription's metadata): nothing changed, so Stripe's retry succeeds once fixed"),
        (status = 503, body = super::error::ErrorBody, description = "`unavailable`: the table is busy or unreachable; Stripe retries")))]
pub async fn stripe(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<IntakeReply>, ApiError> {
    let Some(intake) = state.stripe_intake() else {
        return Err(ApiError::NotFound {
            code: "intake_not_configured",
            message: "Stripe intake is not enabled on this server; start `tenantctl serve` with \
                      --stripe-intake FILE (a mapping file, see the README's \"Subscription intake\")"
                .into(),
        });
    };
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    Ok(Json(intake.receive(signature, &body, Utc::now()).await?))
}

impl From<IntakeError> for ApiError {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::Signature(stale @ SignatureError::Stale { .. }) => ApiError::BadRequest {
                code: "stale_timestamp",
                message: stale.to_string(),
            },
            IntakeError::Signature(other) => ApiError::BadRequest {
                code: "invalid_signature",
                message: other.to_string(),
            },
            IntakeError::Mapping(MappingError::Malformed(message)) => ApiError::InvalidRequest(format!(
                "the event is not a Stripe event of the expected shape: {message}"
            )),
            IntakeError::Mapping(unknown @ MappingError::UnknownPrice { .. }) => ApiError::Unprocessable {
                code: "unknown_price",
                message: unknown.to_string(),
            },
            IntakeError::Mapping(invalid @ MappingError::InvalidMetadata { .. }) => ApiError::Unprocessable {
                code: "invalid_metadata",
                message: invalid.to_string(),
            },
            other @ IntakeError::OtherEnvironment { .. } => ApiError::Conflict {
                code: "tenant_in_other_environment",
                message: other.to_string(),
            },
            in_progress @ IntakeError::InProgress(_) => ApiError::Conflict {
                code: "in_progress",
                message: in_progress.to_string(),
            },
            IntakeError::Command(e) => e.into(),
            IntakeError::Store(e) => e.into(),
        }
    }
}
