//! `/v1/events` (the outbox's events and their deliveries) and
//! `/v1/events/{id}/redeliver` (deliver one again).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::{Caller, Deploy, Read};
use super::extract::{ApiPath, ApiQuery, IdempotencyKey};
use super::{idempotency, ApiError, ApiState};
use crate::app::{EventError, MAX_EVENTS_LISTED};
use crate::record::{DeliveryState, OutboxEvent};

impl From<EventError> for ApiError {
    fn from(e: EventError) -> Self {
        match e {
            EventError::BadLimit(_) => ApiError::InvalidRequest(e.to_string()),
            EventError::NothingToRedeliver { ref id, .. } => ApiError::Conflict {
                code: "nothing_to_redeliver",
                message: format!(
                    "{e}; see its deliveries with GET /v1/events, or name a sink with ?sink= (event {id})"
                ),
            },
            EventError::Store(store) => store.into(),
        }
    }
}

/// One event and how its deliveries went.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    /// The event id (`evt_…`), the same in every delivery.
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// What the event is about (`tenant/<id>`).
    pub subject: String,
    pub time: DateTime<Utc>,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    /// Per sink name.
    pub deliveries: BTreeMap<String, DeliveryView>,
    /// The CloudEvents 1.0 event as sinks receive it.
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// Given up: refused for good or out of attempts.
    pub dead: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventList {
    pub events: Vec<EventView>,
}

impl From<&OutboxEvent> for EventView {
    fn from(e: &OutboxEvent) -> Self {
        Self {
            id: e.event.id.clone(),
            event_type: e.event.event_type.clone(),
            subject: e.event.subject.clone(),
            time: e.event.time,
            state: e.state.as_str().to_owned(),
            deliveries: e
                .deliveries
                .iter()
                .map(|(sink, d)| {
                    (
                        sink.clone(),
                        DeliveryView {
                            attempts: d.attempts,
                            next_attempt_at: d.next_attempt_at,
                            last_error: d.last_error.clone(),
                            delivered_at: d.delivered_at,
                            dead: d.dead,
                        },
                    )
                })
                .collect(),
            event: serde_json::to_value(&e.event).expect("events serialize"),
        }
    }
}

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only events in this state: `pending`, `delivered` or `dead`.
    #[param(pattern = "^(pending|delivered|dead)$")]
    pub state: Option<String>,
    /// 1-500; default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// Query of `POST /v1/events/{id}/redeliver`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RedeliverQuery {
    /// Deliver to this sink again; without it, to every sink that gave the event up.
    pub sink: Option<String>,
}

#[utoipa::path(operation_id = "events_list", get, path = "/v1/events", tag = "events", params(EventQuery),
    responses((status = 200, body = EventList, description = "The newest events of the outbox, newest first")),
    security(("bearer" = ["read"])))]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller<Read>,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Json<EventList>, ApiError> {
    let wanted = q
        .state
        .as_deref()
        .map(DeliveryState::parse)
        .transpose()
        .map_err(ApiError::InvalidRequest)?;
    let limit = match q.limit {
        None => 50,
        Some(n) if (1..=MAX_EVENTS_LISTED as u32).contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::InvalidRequest(format!(
                "limit {n} is out of range; use 1-{MAX_EVENTS_LISTED}"
            )))
        }
    };
    let mut events = state.events().list(wanted, limit).await?;
    if !caller.access.is_unrestricted(crate::domain::Scope::Read) {
        // A restricted caller sees the events of the tenants and rollouts it may see,
        // at a point read per event listed.
        let principal = caller.principal();
        let mut seen = Vec::with_capacity(events.len());
        for event in events {
            if principal.sees_subject(&state, &event.event.subject).await? {
                seen.push(event);
            }
        }
        events = seen;
    }
    Ok(Json(EventList {
        events: events.iter().map(EventView::from).collect(),
    }))
}

#[utoipa::path(operation_id = "event_redeliver", post, path = "/v1/events/{id}/redeliver", tag = "events",
    params(("id" = String, Path, description = "The event's id (`evt_…`)"), RedeliverQuery,
        ("Idempotency-Key" = Option<IdempotencyKey>, Header, description = "Replays the first response for a repeated key and sink")),
    responses((status = 200, body = EventView, description = "Pending again: the dispatchers deliver it on their next pass"),
        (status = 404, body = super::error::ErrorBody, description = "`event_not_found`: no event has this id (or it expired)"),
        (status = 409, body = super::error::ErrorBody, description = "`nothing_to_redeliver`: no sink gave it up, or it has no delivery to the named sink; `idempotency_key_in_progress`")),
    security(("bearer" = ["deploy"])))]
pub async fn redeliver(
    State(state): State<ApiState>,
    caller: Caller<Deploy>,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<RedeliverQuery>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let checked = caller
        .principal()
        .check_fleet_action(
            &state,
            crate::domain::Scope::Deploy,
            "redeliver an event",
            &format!("event/{id}"),
        )
        .await;
    if let Err(refused) = checked {
        return refused.into_response();
    }
    let request = format!("POST /v1/events/{id}/redeliver");
    idempotency::run(&state, &caller.name, key, &request, &q.sink, || async {
        let event = state.events().redeliver(&id, q.sink.as_deref()).await?;
        let view = serde_json::to_value(EventView::from(&event)).expect("views serialize");
        Ok((axum::http::StatusCode::OK, view))
    })
    .await
}
