//! `/v1/promotions`: promotion rules (staging → prod after a soak) and their latest
//! promotion, as `tenantctl promotion` shows and edits them. Reading and approving
//! need deploy scope; setting and deleting a rule, admin.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Admin, Caller, Deploy};
use super::extract::{ApiJson, ApiPath, IdempotencyKey};
use super::{idempotency, ApiError, ApiState};
use crate::app::{PromotionError, RuleRequest};
use crate::domain::{Environment, PromotionName, RolloutTemplate, Scope};
use crate::record::PromotionRecord;

impl From<PromotionError> for ApiError {
    fn from(e: PromotionError) -> Self {
        match e {
            PromotionError::Invalid(message) => ApiError::InvalidRequest(message),
            PromotionError::Refused { .. } => ApiError::Conflict {
                code: "promotion_refused",
                message: e.to_string(),
            },
            PromotionError::Start(e) => ApiError::Internal(format!("starting a promoted rollout: {e}")),
            PromotionError::Store(e) => e.into(),
        }
    }
}

/// Body of `PUT /v1/promotions/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "from": "staging", "to": "prod", "soak": "2h", "approval": true,
    "template": {"strategy": {"waves": ["1", "100%"]}, "on_complete": {"advance_policy": true}}
}))]
pub struct SetPromotion {
    pub from: Environment,
    pub to: Environment,
    /// How long the completed rollout's tenants must stay healthy, at most 30 days.
    #[schema(example = "2h")]
    pub soak: String,
    /// Wait for `POST /v1/promotions/{name}/approve` after the soak.
    #[serde(default)]
    pub approval: bool,
    /// A rollout spec without `release` and `platform` (selector, strategy,
    /// on_complete); its selector's environment is `to`.
    #[schema(value_type = Object)]
    #[serde(deserialize_with = "template_object")]
    pub template: RolloutTemplate,
}

/// A template is a JSON object; serde would also take its fields as an array.
fn template_object<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RolloutTemplate, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    if !value.is_object() {
        return Err(serde::de::Error::custom(
            "template must be a JSON object: a rollout spec without release and platform \
             (selector, strategy, on_complete)",
        ));
    }
    serde_json::from_value(value).map_err(serde::de::Error::custom)
}

/// A rule and its latest promotion.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromotionView {
    pub name: String,
    pub from: String,
    pub to: String,
    pub soak: String,
    pub approval: bool,
    #[schema(value_type = Object)]
    pub template: serde_json::Value,
    /// The latest promotion: `state` is `soaking`, `blocked` (with the tenant and
    /// reason), `awaiting_approval` (an approval request), `started` or `cancelled`;
    /// absent until a rollout of `from` completes.
    #[schema(value_type = Option<Object>)]
    pub promotion: Option<serde_json::Value>,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

impl From<&PromotionRecord> for PromotionView {
    fn from(r: &PromotionRecord) -> Self {
        Self {
            name: r.rule.name.to_string(),
            from: r.rule.from.to_string(),
            to: r.rule.to.to_string(),
            soak: humantime::format_duration(r.rule.soak).to_string(),
            approval: r.rule.approval,
            template: serde_json::to_value(&r.rule.template).expect("templates serialize"),
            promotion: r
                .promotion
                .as_ref()
                .map(|p| serde_json::to_value(p).expect("promotions serialize")),
            updated_by: r.updated_by.clone(),
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PromotionList {
    pub promotions: Vec<PromotionView>,
}

fn name(raw: &str) -> Result<PromotionName, ApiError> {
    PromotionName::parse(raw).map_err(|e| ApiError::InvalidRequest(e.to_string()))
}

/// A change to the rule named `raw`, or to its promotion, acts on the whole fleet:
/// refused (and recorded in the audit trail) unless `caller` holds `scope` on all of it.
async fn check_rule_action<S: Sync>(
    state: &ApiState,
    caller: &Caller<S>,
    scope: Scope,
    action: &str,
    raw: &str,
) -> Result<(), ApiError> {
    caller
        .principal()
        .check_fleet_action(state, scope, action, &format!("promotion/{raw}"))
        .await
}

#[utoipa::path(operation_id = "promotions_list", get, path = "/v1/promotions", tag = "promotions",
    responses((status = 200, body = PromotionList, description = "Every rule with its latest promotion")),
    security(("bearer" = ["deploy"])))]
pub async fn list(State(state): State<ApiState>, _: Caller<Deploy>) -> Result<Json<PromotionList>, ApiError> {
    let records = state.promotions().list().await?;
    Ok(Json(PromotionList {
        promotions: records.iter().map(PromotionView::from).collect(),
    }))
}

#[utoipa::path(operation_id = "promotion_get", get, path = "/v1/promotions/{name}", tag = "promotions",
    params(("name" = PromotionName, Path, description = "The rule's name")),
    responses((status = 200, body = PromotionView, description = "The rule and its latest promotion"),
        (status = 404, body = super::error::ErrorBody, description = "`promotion_not_found`")),
    security(("bearer" = ["deploy"])))]
pub async fn get(
    State(state): State<ApiState>,
    _: Caller<Deploy>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<PromotionView>, ApiError> {
    let record = state.promotions().get(&name(&raw)?).await?;
    Ok(Json(PromotionView::from(&record)))
}

#[utoipa::path(operation_id = "promotion_set", put, path = "/v1/promotions/{name}", tag = "promotions",
    params(("name" = PromotionName, Path, description = "The rule's name (a DNS label, e.g. staging-to-prod)")),
    request_body = SetPromotion,
    responses((status = 200, body = PromotionView, description = "The rule as stored; its latest promotion is kept")),
    security(("bearer" = ["admin"])))]
pub async fn set(
    State(state): State<ApiState>,
    caller: Caller<Admin>,
    ApiPath(raw): ApiPath<String>,
    ApiJson(body): ApiJson<SetPromotion>,
) -> Result<Json<PromotionView>, ApiError> {
    check_rule_action(&state, &caller, Scope::Admin, "set a promotion rule", &raw).await?;
    let soak = humantime::parse_duration(body.soak.trim()).map_err(|e| {
        ApiError::InvalidRequest(format!(
            "soak {:?} is not a duration: {e}; use e.g. 30m, 2h or 1h30m",
            body.soak
        ))
    })?;
    let request = RuleRequest {
        name: name(&raw)?,
        from: body.from,
        to: body.to,
        soak,
        approval: body.approval,
        template: body.template,
    };
    let record = state.promotions().set(request, &caller.actor().0).await?;
    Ok(Json(PromotionView::from(&record)))
}

#[utoipa::path(operation_id = "promotion_delete", delete, path = "/v1/promotions/{name}", tag = "promotions",
    params(("name" = PromotionName, Path, description = "The rule's name")),
    responses((status = 204, description = "Deleted"),
        (status = 404, body = super::error::ErrorBody, description = "`promotion_not_found`")),
    security(("bearer" = ["admin"])))]
pub async fn delete(
    State(state): State<ApiState>,
    caller: Caller<Admin>,
    ApiPath(raw): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    check_rule_action(&state, &caller, Scope::Admin, "delete a promotion rule", &raw).await?;
    state.promotions().delete(&name(&raw)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(operation_id = "promotion_approve", post, path = "/v1/promotions/{name}/approve", tag = "promotions",
    params(("name" = PromotionName, Path, description = "The rule's name"),
        ("Idempotency-Key" = Option<IdempotencyKey>, Header, description = "Replays the first response for a repeated key")),
    responses((status = 200, body = PromotionView, description = "Approved: the controllers start the rollout on their next pass"),
        (status = 409, body = super::error::ErrorBody, description = "`promotion_refused`: its promotion is not awaiting approval; `idempotency_key_in_progress`"),
        (status = 404, body = super::error::ErrorBody, description = "`promotion_not_found`: no rule has this name")),
    security(("bearer" = ["deploy"])))]
pub async fn approve(
    State(state): State<ApiState>,
    caller: Caller<Deploy>,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(raw): ApiPath<String>,
) -> axum::response::Response {
    promotion_command(&state, &caller, key, &raw, PromotionCommand::Approve).await
}

/// What an operator does to a rule's open promotion.
#[derive(Debug, Clone, Copy)]
enum PromotionCommand {
    Approve,
    Cancel,
}

impl PromotionCommand {
    /// The verb, as the route ends and as a refusal names the action.
    fn verb(self) -> &'static str {
        match self {
            PromotionCommand::Approve => "approve",
            PromotionCommand::Cancel => "cancel",
        }
    }
}

/// Approves or cancels rule `raw`'s open promotion (`what`), at most once per
/// `Idempotency-Key`: a retry after a lost answer gets the first answer again rather
/// than a refusal because the promotion has moved on.
async fn promotion_command(
    state: &ApiState,
    caller: &Caller<Deploy>,
    key: Option<String>,
    raw: &str,
    what: PromotionCommand,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let action = format!("{} a promotion", what.verb());
    if let Err(refused) = check_rule_action(state, caller, Scope::Deploy, &action, raw).await {
        return refused.into_response();
    }
    let request = format!("POST /v1/promotions/{raw}/{}", what.verb());
    idempotency::run(state, &caller.name, key, &request, &(), || async {
        let (rule, actor) = (name(raw)?, caller.actor().0);
        let record = match what {
            PromotionCommand::Approve => state.promotions().approve(&rule, &actor).await?,
            PromotionCommand::Cancel => state.promotions().cancel(&rule, &actor).await?,
        };
        let view = serde_json::to_value(PromotionView::from(&record)).expect("views serialize");
        Ok((StatusCode::OK, view))
    })
    .await
}

#[utoipa::path(operation_id = "promotion_cancel", post, path = "/v1/promotions/{name}/cancel", tag = "promotions",
    params(("name" = PromotionName, Path, description = "The rule's name"),
        ("Idempotency-Key" = Option<IdempotencyKey>, Header, description = "Replays the first response for a repeated key")),
    responses((status = 200, body = PromotionView, description = "Cancelled: nothing is started for it"),
        (status = 409, body = super::error::ErrorBody, description = "`promotion_refused`: it has no open promotion; `idempotency_key_in_progress`"),
        (status = 404, body = super::error::ErrorBody, description = "`promotion_not_found`: no rule has this name")),
    security(("bearer" = ["deploy"])))]
pub async fn cancel(
    State(state): State<ApiState>,
    caller: Caller<Deploy>,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(raw): ApiPath<String>,
) -> axum::response::Response {
    promotion_command(&state, &caller, key, &raw, PromotionCommand::Cancel).await
}
