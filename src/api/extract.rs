//! Extractors that parse request parts into domain values and turn every rejection
//! into an [`ApiError`], so malformed input always gets the JSON error body.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::{ApiError, ApiState};
use crate::domain::TenantId;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON object body, parsed (and so validated: the request types use the domain
/// newtypes and refuse unknown fields). Every request body of the API is an object;
/// serde would also read a struct from an array of its fields, so anything else is
/// refused before that can happen.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(SEND_JSON.into()));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| json_rejection(JsonRejection::from(e)))?;
        let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        if !object {
            if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                return Err(ApiError::InvalidRequest(format!(
                    "the body is a JSON {}; send a JSON object with the fields named, e.g. {{\"release\": \"1.4.2\"}}",
                    json_kind(&value)
                )));
            }
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes).map_err(json_rejection)?;
        Ok(ApiJson(value))
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

const SEND_JSON: &str = "send the body as JSON with `Content-Type: application/json`";

/// `Content-Type: application/json`, or another JSON type (`application/…+json`).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(SEND_JSON.into()),
        JsonRejection::JsonDataError(e) => {
            ApiError::InvalidRequest(format!("the body does not fit this request: {}", e.body_text()))
        }
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::InvalidRequest(format!("the body is not valid JSON: {}", e.body_text()))
        }
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge(format!(
                "the body is larger than {} KiB; send a smaller request",
                MAX_BODY_BYTES / 1024
            ))
        }
        other => ApiError::InvalidRequest(format!("could not read the body: {}", other.body_text())),
    }
}

/// Query parameters, parsed; unknown parameters are refused by the target types.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(ApiError::InvalidRequest(format!(
                "invalid query parameters: {}",
                e.body_text()
            ))),
            Err(other) => Err(ApiError::InvalidRequest(other.body_text())),
        }
    }
}

/// Path parameters, as axum's `Path`, with a refusal (a parameter that is not UTF-8
/// once decoded, or that does not parse) in the JSON error body.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(value) = Path::<T>::from_request_parts(parts, state).await.map_err(|e| {
            ApiError::InvalidRequest(format!(
                "{}; percent-encode the path's values as UTF-8",
                e.body_text()
            ))
        })?;
        Ok(ApiPath(value))
    }
}

/// The `{id}` of a tenant path, parsed as a [`TenantId`].
pub struct TenantPath(pub TenantId);

impl FromRequestParts<ApiState> for TenantPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Self::Rejection> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::InvalidRequest(e.body_text()))?;
        Ok(TenantPath(TenantId::parse(&id)?))
    }
}

/// The optional `Idempotency-Key` header.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let key = value
            .to_str()
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= 255 && k.chars().all(|c| c.is_ascii_graphic()))
            .ok_or_else(|| {
                ApiError::InvalidRequest(
                    "Idempotency-Key must be 1-255 visible ASCII characters (a UUID is a good choice)".into(),
                )
            })?;
        Ok(IdempotencyKey(Some(key.to_owned())))
    }
}

/// The header's value as the document publishes it: what the extractor above accepts.
impl utoipa::PartialSchema for IdempotencyKey {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        // No example: one fixed key would make every request that used it a replay.
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[!-~]{1,255}$"))
            .min_length(Some(1))
            .max_length(Some(255))
            .description(Some("1-255 visible ASCII characters; a UUID is a good choice."))
            .into()
    }
}
impl utoipa::ToSchema for IdempotencyKey {}
