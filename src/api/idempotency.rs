//! `Idempotency-Key` on POSTs. The key (scoped to the caller) is reserved in DynamoDB
//! with a conditional put before the request acts, so of two concurrent requests only
//! one acts; the other is told the first is in progress. The first response is stored
//! and replayed for the same key and body; the same key with another body is refused
//! (422). A request that did not act (an error answer) releases its key.

use std::future::Future;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{ApiError, ApiState};
use crate::ports::Reservation;

/// How long a key and its response are kept (then DynamoDB's TTL removes them).
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// After this, a reservation whose request never finished (its process died) may be
/// taken by a new request with the same key.
pub const PENDING_TIMEOUT: Duration = Duration::from_secs(60);

/// The result of a request that may be replayed: a status and a JSON body.
pub type Outcome = Result<(StatusCode, serde_json::Value), ApiError>;

fn fingerprint(request: &str, body: &impl Serialize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(request.as_bytes());
    hasher.update(b"\n");
    hasher.update(serde_json::to_vec(body).expect("request bodies serialize"));
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn respond(outcome: Outcome) -> Response {
    match outcome {
        Ok((status, body)) => (status, axum::Json(body)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Runs `act` at most once per (caller, key). `request` names the method and path;
/// with `body` it makes the fingerprint a repeated key must match.
pub async fn run<F, Fut>(
    state: &ApiState,
    caller: &str,
    key: Option<String>,
    request: &str,
    body: &impl Serialize,
    act: F,
) -> Response
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Outcome>,
{
    let Some(key) = key else {
        return respond(act().await);
    };
    let store = state.store();
    let fingerprint = fingerprint(request, body);
    let reused = || {
        ApiError::IdempotencyKeyReused(format!(
            "Idempotency-Key {key:?} was used for a different request; use a new key for a new request"
        ))
        .into_response()
    };
    let reservation = store
        .reserve_idempotency_key(
            caller,
            &key,
            &fingerprint,
            chrono::Utc::now(),
            RETENTION,
            PENDING_TIMEOUT,
        )
        .await;
    match reservation {
        Err(e) => ApiError::from(e).into_response(),
        Ok(Reservation::InProgress { fingerprint: f }) if f != fingerprint => reused(),
        Ok(Reservation::Completed { fingerprint: f, .. }) if f != fingerprint => reused(),
        Ok(Reservation::InProgress { .. }) => ApiError::Conflict {
            code: "idempotency_key_in_progress",
            message: format!("a request with Idempotency-Key {key:?} is still being handled; retry in a few seconds to get its response"),
        }
        .into_response(),
        Ok(Reservation::Completed { status, body, .. }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response = (status, [("content-type", "application/json")], body).into_response();
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            response
        }
        Ok(Reservation::Reserved) => {
            let outcome = act().await;
            // Only a request that acted is remembered. A refusal (invalid, refused by
            // the tenant's state) or a failure acted on nothing, so the key is released
            // and the client may send it again once the cause is fixed.
            let saved = match &outcome {
                Ok((status, body)) => {
                    store
                        .complete_idempotency_key(caller, &key, &fingerprint, status.as_u16(), &body.to_string())
                        .await
                }
                Err(_) => store.forget_idempotency_key(caller, &key, &fingerprint).await,
            };
            if let Err(e) = saved {
                tracing::warn!(caller, error = %e, "could not record the idempotent response; a retry with this key may act again");
            }
            respond(outcome)
        }
    }
}
