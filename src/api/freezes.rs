//! `/v1/freezes`: the freeze windows that hold rollouts and operator commands on an
//! environment (or one of its regions). Reading takes the read scope; adding and
//! removing one takes an admin.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::{Admin, Caller, Read};
use super::extract::{ApiJson, ApiPath, IdempotencyKey};
use super::{idempotency, ApiError, ApiState};
use crate::domain::{Environment, Freeze, Region};

/// `POST /v1/freezes`: freeze an environment, or one of its regions, for a while.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFreeze {
    pub environment: Environment,
    /// Default: every region of the environment.
    #[serde(default)]
    pub region: Option<Region>,
    pub from: DateTime<Utc>,
    /// After `from`, at most 366 days later.
    pub until: DateTime<Utc>,
    /// Why (1-200 characters): shown in every refusal and every held wave.
    #[schema(min_length = 1, max_length = 200, example = "year-end")]
    pub reason: String,
}

impl NewFreeze {
    /// The freeze this asks for, checked as [`Freeze::new`] checks one.
    pub fn freeze(&self) -> Result<Freeze, crate::domain::InvalidValue> {
        Freeze::new(
            self.environment.clone(),
            self.region.clone(),
            self.from,
            self.until,
            &self.reason,
        )
    }
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FreezeList {
    /// Stored freezes by start, ended ones included until removed.
    pub freezes: Vec<Freeze>,
}

#[utoipa::path(operation_id = "freeze_list", get, path = "/v1/freezes", tag = "freezes",
    responses((status = 200, body = FreezeList)),
    security(("bearer" = ["read"])))]
pub async fn list(State(state): State<ApiState>, _: Caller<Read>) -> Result<Json<FreezeList>, ApiError> {
    Ok(Json(FreezeList {
        freezes: state.store().list_freezes().await?,
    }))
}

#[utoipa::path(operation_id = "freeze_add", post, path = "/v1/freezes", tag = "freezes", request_body = NewFreeze,
    params(("Idempotency-Key" = Option<super::extract::IdempotencyKey>, Header, description = "Replays the first response for a repeated key and body: a retried request adds one freeze")),
    responses((status = 201, body = Freeze, description = "Stored; rollouts and operator commands respect it at once"),
        (status = 400, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "`idempotency_key_in_progress`"),
        (status = 422, body = super::error::ErrorBody, description = "`invalid_freeze`: `until` not after `from`, longer than 366 days, or an empty reason; or the key was used with another body")),
    security(("bearer" = ["admin"])))]
pub async fn add(
    State(state): State<ApiState>,
    caller: Caller<Admin>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<NewFreeze>,
) -> Response {
    let allowed = (caller.principal())
        .check_fleet_action(&state, crate::domain::Scope::Admin, "add a freeze", "freeze")
        .await;
    if let Err(refused) = allowed {
        return refused.into_response();
    }
    idempotency::run(&state, &caller.name, key, "POST /v1/freezes", &body, || async {
        let mut freeze = body.freeze().map_err(|e| ApiError::Unprocessable {
            code: "invalid_freeze",
            message: e.to_string(),
        })?;
        freeze.created_by = caller.actor().0;
        let freeze = state.store().add_freeze(freeze).await?;
        tracing::info!(freeze = %freeze.id, caller = %caller.name, environment = %freeze.environment, "freeze added");
        Ok((StatusCode::CREATED, serde_json::to_value(&freeze).expect("freezes serialize")))
    })
    .await
}

#[utoipa::path(operation_id = "freeze_remove", delete, path = "/v1/freezes/{id}", tag = "freezes",
    params(("id" = String, Path, description = "The freeze's id (`f-…`)")),
    responses((status = 200, body = Freeze, description = "Removed; what it held may move again"),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)),
    security(("bearer" = ["admin"])))]
pub async fn remove(
    State(state): State<ApiState>,
    caller: Caller<Admin>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Freeze>, ApiError> {
    caller
        .principal()
        .check_fleet_action(
            &state,
            crate::domain::Scope::Admin,
            "remove a freeze",
            &format!("freeze/{id}"),
        )
        .await?;
    let freeze = state.store().remove_freeze(&id).await?;
    tracing::info!(freeze = %freeze.id, caller = %caller.name, "freeze removed");
    Ok(Json(freeze))
}
