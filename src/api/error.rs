//! The one error type of the HTTP layer. Every failure becomes
//! `{"error": {"code": "...", "message": "..."}}` with a stable code and a status; a
//! message says what was wrong and what to do. Internal failures are logged with an
//! id and answered with that id only, never with their details.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::CommandError;
use crate::ports::{Entity, StoreError};

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid_request`, `unauthenticated`, `forbidden`,
    /// `tenant_not_found`, `rollout_not_found`, `not_found`, `method_not_allowed`,
    /// `tenant_exists`, `no_release`, `no_platform`, `unknown_platform_version`, `platform_unavailable`, `hostname_taken`, `refused_by_state`, `refused_by_rollout_state`,
    /// `held_by_rollout`, `replacement_refused`, `drift_check_failed`, `drift_unavailable`, `version_conflict`,
    /// `idempotency_key_in_progress`,
    /// `payload_too_large`, `unsupported_media_type`, `idempotency_key_reused`,
    /// `unavailable`, `internal`; the Stripe intake's `invalid_signature`,
    /// `stale_timestamp`, `unknown_price`, `invalid_metadata`, `intake_not_configured`,
    /// `tenant_in_other_environment`, `in_progress`; `event_not_found`, `nothing_to_redeliver`,
    /// `too_many_deletions`, `promotion_not_found`, `promotion_refused`,
    /// `freeze_not_found`, `invalid_freeze`, `frozen`.
    pub code: String,
    /// For people: what was wrong and what to do about it.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    /// A 400 with its own code (`invalid_signature`, `stale_timestamp`).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    IdempotencyKeyReused(String),
    /// Well-formed and authentic, but not something this server can act on as it is
    /// configured (`unknown_price`, `invalid_metadata`).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// A dependency is down or throttling; the same request may succeed later.
    #[error("{0}")]
    Unavailable(String),
    /// Something the caller cannot fix; the detail goes to the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) | ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::IdempotencyKeyReused(_) | ApiError::Unprocessable { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::BadRequest { code, .. }
            | ApiError::Unprocessable { code, .. } => code,
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::IdempotencyKeyReused(_) => "idempotency_key_reused",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn tenant_not_found(id: &str) -> Self {
        ApiError::NotFound {
            code: "tenant_not_found",
            message: format!("tenant {id} does not exist; list tenants with GET /v1/tenants"),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound {
                what,
                entity: Entity::Rollout,
            } => ApiError::NotFound {
                code: "rollout_not_found",
                message: format!("{what} does not exist; list rollouts with GET /v1/rollouts"),
            },
            StoreError::NotFound {
                what,
                entity: Entity::Tenant,
            } => ApiError::NotFound {
                code: "tenant_not_found",
                message: format!("{what} does not exist"),
            },
            StoreError::NotFound {
                what,
                entity: Entity::Event,
            } => ApiError::NotFound {
                code: "event_not_found",
                message: format!("{what} does not exist (or expired); list events with GET /v1/events"),
            },
            StoreError::NotFound {
                what,
                entity: Entity::Promotion,
            } => ApiError::NotFound {
                code: "promotion_not_found",
                message: format!("{what} does not exist; list promotion rules with GET /v1/promotions"),
            },
            StoreError::NotFound {
                what,
                entity: Entity::Freeze,
            } => ApiError::NotFound {
                code: "freeze_not_found",
                message: format!("{what} does not exist; list freezes with GET /v1/freezes"),
            },
            StoreError::Conflict { detail, .. } => ApiError::Conflict {
                code: "version_conflict",
                message: detail,
            },
            e @ StoreError::HostnameTaken { .. } => ApiError::Conflict {
                code: "hostname_taken",
                message: e.to_string(),
            },
            StoreError::Invalid { message, .. } => ApiError::InvalidRequest(message),
            StoreError::Retryable { ref context, .. } => {
                tracing::warn!(error = %e.detailed(), "store temporarily unavailable");
                ApiError::Unavailable(format!(
                    "the state store is busy or unreachable while {context}; try again shortly"
                ))
            }
            StoreError::Fatal { .. } => ApiError::Internal(e.detailed()),
        }
    }
}

impl From<crate::app::RolloutError> for ApiError {
    fn from(e: crate::app::RolloutError) -> Self {
        match e {
            crate::app::RolloutError::Refused { id, message } => ApiError::Conflict {
                code: "refused_by_rollout_state",
                message: format!("rollout {id}: {message}"),
            },
            crate::app::RolloutError::Held { id, message } => ApiError::Conflict {
                code: "held_by_rollout",
                message: format!("rollout {id}: {message}"),
            },
            crate::app::RolloutError::UnknownRelease(message) => ApiError::InvalidRequest(message),
            crate::app::RolloutError::ReleaseCheck(message) => ApiError::Unavailable(message),
            crate::app::RolloutError::UnknownPlatform(message) => ApiError::InvalidRequest(message),
            e @ crate::app::RolloutError::PlatformCheck(_) => ApiError::Unavailable(e.to_string()),
            crate::app::RolloutError::ReplacementRefused(message) => ApiError::Conflict {
                code: "replacement_refused",
                message: format!("refused: {message}"),
            },
            crate::app::RolloutError::Preview(message) => ApiError::Unavailable(message),
            e @ crate::app::RolloutError::NoPreview => ApiError::InvalidRequest(e.to_string()),
            crate::app::RolloutError::Frozen { id, message } => ApiError::Conflict {
                code: "frozen",
                message: format!("rollout {id}: {message}"),
            },
            crate::app::RolloutError::BadSchedule(message) => ApiError::InvalidRequest(message),
            crate::app::RolloutError::Store(s) => s.into(),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Invalid(v) => ApiError::InvalidRequest(v.to_string()),
            CommandError::Rejected { id, rejected } => ApiError::Conflict {
                code: "refused_by_state",
                message: format!("tenant {id}: {rejected}"),
            },
            held @ CommandError::HeldByRollout { .. } => ApiError::Conflict {
                code: "held_by_rollout",
                message: held.to_string(),
            },
            frozen @ CommandError::Frozen { .. } => ApiError::Conflict {
                code: "frozen",
                message: frozen.to_string(),
            },
            none @ CommandError::NoRelease { .. } => ApiError::Conflict {
                code: "no_release",
                message: none.to_string(),
            },
            none @ CommandError::NoPlatformToPin { .. } => ApiError::Conflict {
                code: "no_platform",
                message: none.to_string(),
            },
            unknown @ CommandError::UnknownPlatform { .. } => ApiError::Conflict {
                code: "unknown_platform_version",
                message: unknown.to_string(),
            },
            unavailable @ CommandError::PlatformUnavailable { .. } => ApiError::Conflict {
                code: "platform_unavailable",
                message: unavailable.to_string(),
            },
            unknown @ CommandError::UnknownSnapshot { .. } => ApiError::InvalidRequest(unknown.to_string()),
            CommandError::UnknownRelease(message) => ApiError::InvalidRequest(message),
            CommandError::ReleaseCheck(message) => ApiError::Unavailable(message),
            CommandError::PlatformCheck { version, source } => ApiError::Unavailable(format!(
                "checking platform version {version}: {source}; try again"
            )),
            CommandError::Store(s) => s.into(),
        }
    }
}

impl From<crate::domain::InvalidValue> for ApiError {
    fn from(e: crate::domain::InvalidValue) -> Self {
        ApiError::InvalidRequest(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Internal(detail) => {
                let incident = uuid::Uuid::new_v4().simple().to_string();
                tracing::error!(%incident, %detail, "request failed");
                format!("the server failed to handle the request (incident {incident}); try again, and report the incident id if it persists")
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
