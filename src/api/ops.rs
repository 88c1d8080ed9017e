//! Operational endpoints: liveness, readiness, metrics, the OpenAPI document, and the
//! JSON answers for unknown routes and methods.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, ApiState};

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// The process is alive. No token needed.
#[utoipa::path(operation_id = "ops_healthz", get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// How long `/readyz` waits for DynamoDB before it answers 503.
const READINESS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// DynamoDB answers for the state table (DescribeTable). No token needed.
#[utoipa::path(operation_id = "ops_readyz", get, path = "/readyz", tag = "ops", responses((status = 200, body = Health), (status = 503, body = super::error::ErrorBody)))]
pub async fn readyz(State(state): State<ApiState>) -> Result<Json<Health>, ApiError> {
    let (store, table) = (state.store(), state.table_name());
    match store.ping(READINESS_TIMEOUT).await {
        Ok(()) => Ok(Json(Health { status: "ready" })),
        Err(e) => {
            tracing::warn!(table, error = %e, "not ready");
            Err(ApiError::Unavailable(format!(
                "the state table {} cannot be reached; check the DynamoDB endpoint, credentials and that the table exists",
                table
            )))
        }
    }
}

/// Prometheus text. Open (no token): it names no tenant, only counts.
#[utoipa::path(operation_id = "ops_metrics", get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<ApiState>) -> Response {
    let fleet = match state.fleet_summary().await {
        Ok((f, _)) => Some(f),
        Err(e) => {
            tracing::warn!(error = %e, "tenant counts unavailable for /metrics");
            None
        }
    };
    let rollouts = match state.cached_rollout_progress().await {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "rollout progress unavailable for /metrics");
            None
        }
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        super::metrics::render(fleet.as_ref(), rollouts.as_deref()),
    )
        .into_response()
}

/// This document. Open (no token).
pub async fn openapi() -> Json<&'static serde_json::Value> {
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    Json(DOCUMENT.get_or_init(super::openapi::document))
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound {
        code: "not_found",
        message: "no such endpoint; see /openapi.json for the API".into(),
    }
}

pub async fn method_not_allowed() -> Response {
    let mut response =
        ApiError::MethodNotAllowed("this endpoint does not take that method; see /openapi.json".into())
            .into_response();
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}
