//! `/v1/tenants`: create, inspect, list, change and command tenants.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::auth::{Admin, Caller, Deploy, Read, RequiredScope, Scope};
use super::extract::{ApiJson, ApiQuery, IdempotencyKey, TenantPath};
use super::views::{
    CreateTenant, HistoryPage, HoldOverride, PageParams, Restore, TenantFilters, TenantPage, TenantView,
    UpdateTenant, Upgrade,
};
use super::{idempotency, ApiError, ApiState};
use crate::app::{CommandError, Overrides, RolloutHold, SpecChange};
use crate::domain::{Group, Region, ReleaseVersion, TenantId, TenantSpec};
use crate::machine::{TenantEvent, TenantState};
use crate::ports::{ListFilter, ListQuery, StoreError};

/// The caller's choices about a running rollout's hold and the freezes in force:
/// overriding either takes an admin.
fn rollout_hold<S>(caller: &Caller<S>, q: &HoldOverride) -> Result<Overrides, ApiError> {
    let hold = match (q.override_rollout_hold, caller.scope) {
        (false, _) => RolloutHold::Respect,
        (true, Scope::Admin) => RolloutHold::Override,
        (true, _) => return Err(ApiError::Forbidden(
            "override_rollout_hold needs an admin token; pause or abort the rollout instead, or ask an admin"
                .into(),
        )),
    };
    let freeze = match (q.override_freeze.as_deref(), caller.scope) {
        (None, _) => None,
        (Some(_), scope) if scope != Scope::Admin => {
            return Err(ApiError::Forbidden(
                "override_freeze needs an admin token; wait until the freeze ends, or ask an admin".into(),
            ))
        }
        (Some(given), _) => match crate::domain::usable_reason(given) {
            Some(reason) => Some(reason.to_owned()),
            None => {
                return Err(ApiError::InvalidRequest(
                    "override_freeze must say why, in 1 to 200 characters of plain text on one line".into(),
                ))
            }
        },
    };
    Ok(Overrides {
        hold,
        freeze,
        external_snapshot: false,
    })
}

fn view(record: &crate::record::TenantRecord) -> serde_json::Value {
    serde_json::to_value(TenantView::from(record)).expect("views serialize")
}

#[utoipa::path(operation_id = "tenant_create", post, path = "/v1/tenants", tag = "tenants", request_body = CreateTenant,
    params(("Idempotency-Key" = Option<IdempotencyKey>, Header, description = "Replays the first response for a repeated key and body")),
    responses((status = 201, body = TenantView, description = "Recorded; provisioning starts"), (status = 400, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "`tenant_exists`: the id is taken; `no_release`: no release given and the version policy has none for the tenant; `no_platform`: `pin_platform` with no platform given or in the policy; `unknown_platform_version`: the platform version is not published; `platform_unavailable`: no platform bucket is configured; `hostname_taken`: another tenant serves a hostname; `idempotency_key_in_progress`"),
        (status = 503, body = super::error::ErrorBody, description = "`unavailable`: the artifact registry could not say whether the release is published (throttled or unreachable); nothing was stored, try again")),
    security(("bearer" = ["deploy"])))]
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller<Deploy>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Response {
    let place = crate::domain::TenantPlace {
        id: &body.id,
        environment: Some(&body.environment),
        region: &body.region,
        group: body.group.as_str(),
    };
    if let Err(refused) = caller
        .principal()
        .check_new_tenant(place, Scope::Deploy, "create")
    {
        return refused.into_response();
    }
    idempotency::run(&state, &caller.name, key, "POST /v1/tenants", &body, || async {
        let spec = TenantSpec {
            id: body.id.clone(),
            region: body.region.clone(),
            environment: body.environment.clone(),
            group: body.group.clone(),
            tier: body.tier,
            hostnames: body.hostnames.clone(),
            pinned_release: None,
            maintenance: body.maintenance.clone(),
            platform: body.platform,
            pinned_platform: None,
        };
        let created = state
            .commands()
            .provision_pinned(spec, body.release.clone(), body.pin, body.pin_platform, &caller.actor())
            .await;
        let record = match created {
            Err(CommandError::NoRelease {
                environment,
                region,
                group,
            }) => {
                // The request is well formed; whether it can be served depends on the
                // stored policy, as whether an id is free depends on the stored tenants.
                return Err(ApiError::Conflict {
                    code: "no_release",
                    message: format!(
                        "no release given and the version policy has none for environment {environment} in {region} \
                         (group {group}); pass \"release\" or set one with PUT /v1/policy/defaults/{environment}/{region}"
                    ),
                });
            }
            Err(CommandError::Store(StoreError::Conflict { .. })) => {
                // Only a principal that may read the tenant is pointed at it.
                let message = match caller.principal().sees_tenant(&state, &body.id).await {
                    Ok(true) => format!(
                        "tenant {} already exists; pick another id or GET /v1/tenants/{}",
                        body.id, body.id
                    ),
                    _ => format!("tenant id {} is taken; pick another id", body.id),
                };
                return Err(ApiError::Conflict {
                    code: "tenant_exists",
                    message,
                });
            }
            Err(CommandError::Store(taken @ StoreError::HostnameTaken { .. })) => {
                return Err(caller.principal().unseen_hidden(&state, taken).await)
            }
            other => other?,
        };
        tracing::info!(tenant = %body.id, caller = %caller.name, "tenant created");
        Ok((StatusCode::CREATED, view(&record)))
    })
    .await
}

#[utoipa::path(operation_id = "tenant_get", get, path = "/v1/tenants/{id}", tag = "tenants", params(("id" = TenantId, Path, description = "The tenant's id")),
    responses((status = 200, body = TenantView), (status = 404, body = super::error::ErrorBody)),
    security(("bearer" = ["read"])))]
pub async fn get(
    State(state): State<ApiState>,
    caller: Caller<Read>,
    TenantPath(id): TenantPath,
) -> Result<Response, ApiError> {
    let record = caller
        .principal()
        .tenant(&state, &id, Scope::Read, "view")
        .await?;
    Ok(tenant_answer(&record))
}

/// The hot read's answer: the view written straight from the record into a buffer
/// sized for a tenant's view (about 1 KB), rather than grown by doubling from the 128
/// bytes `Json` starts with, a copy at each step.
fn tenant_answer(record: &crate::record::TenantRecord) -> Response {
    let mut body = Vec::with_capacity(1024);
    serde_json::to_writer(&mut body, &crate::app::views::TenantViewOf::from(record))
        .expect("a tenant view serializes");
    let json = axum::http::HeaderValue::from_static("application/json");
    ([(axum::http::header::CONTENT_TYPE, json)], body).into_response()
}

#[utoipa::path(operation_id = "tenant_list", get, path = "/v1/tenants", tag = "tenants", params(TenantFilters),
    responses((status = 200, body = TenantPage), (status = 400, body = super::error::ErrorBody)),
    security(("bearer" = ["read"])))]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller<Read>,
    ApiQuery(q): ApiQuery<TenantFilters>,
) -> Result<Json<TenantPage>, ApiError> {
    let region = q.region.as_deref().map(Region::parse).transpose()?;
    if let Some(s) = &q.state {
        TenantState::parse_name(s).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    }
    let filter = ListFilter {
        release: q.release.as_deref().map(ReleaseVersion::parse).transpose()?,
        group: q.group.as_deref().map(Group::parse).transpose()?,
        platform: None,
    };
    let query = ListQuery {
        region,
        state: q.state.clone(),
        limit: Some(super::page_limit(q.limit)?),
        next_token: q.next_token,
    };
    let page = state.store().list_matching(&query, &filter).await?;
    // A restricted caller's page holds only its tenants, so it may be shorter than
    // `limit`; `next_token` goes on where the unfiltered page ended.
    let items = caller.principal().visible(&state, page.items).await?;
    Ok(Json(TenantPage {
        items: items.into_iter().map(Into::into).collect(),
        next_token: page.next_token,
    }))
}

#[utoipa::path(operation_id = "tenant_update", patch, path = "/v1/tenants/{id}", tag = "tenants", params(("id" = TenantId, Path, description = "The tenant's id"), HoldOverride), request_body = UpdateTenant,
    responses((status = 200, body = TenantView), (status = 409, body = super::error::ErrorBody,
        description = "`version_conflict`: not at `expected_version`; `unknown_platform_version`: the platform version is not published; `platform_unavailable`: no platform bucket is configured; `hostname_taken`: another tenant serves a hostname; `held_by_rollout`: a running rollout holds the tenant; `frozen`: a freeze holds the tenant's environment and region (an admin may pass `override_freeze`)")),
    security(("bearer" = ["admin"])))]
pub async fn update(
    State(state): State<ApiState>,
    caller: Caller<Admin>,
    TenantPath(id): TenantPath,
    ApiQuery(q): ApiQuery<HoldOverride>,
    ApiJson(body): ApiJson<UpdateTenant>,
) -> Result<Json<TenantView>, ApiError> {
    let change = SpecChange {
        pinned_release: body.pinned_release,
        hostnames: body.hostnames,
        tier: body.tier,
        maintenance: body.maintenance,
        platform: body.platform,
        pinned_platform: body.pinned_platform,
    };
    if change.is_empty() {
        return Err(ApiError::InvalidRequest(
            "nothing to change; send pinned_release, hostnames, tier, maintenance, platform or pinned_platform".into(),
        ));
    }
    if !caller.access.is_unrestricted(Scope::Admin) {
        caller
            .principal()
            .tenant(&state, &id, Scope::Admin, "change the spec of")
            .await?;
    }
    let record = state
        .commands()
        .update_spec(
            &id,
            &change,
            body.expected_version,
            &caller.actor(),
            rollout_hold(&caller, &q)?,
        )
        .await;
    let record = match record {
        Err(CommandError::Store(taken @ StoreError::HostnameTaken { .. })) => {
            return Err(caller.principal().unseen_hidden(&state, taken).await)
        }
        other => other?,
    };
    tracing::info!(tenant = %id, caller = %caller.name, "tenant spec updated");
    Ok(Json(TenantView::from(&record)))
}

/// What every command endpoint on one tenant takes besides its body: the tenant, the
/// `Idempotency-Key` and the hold override, read in that order.
pub struct CommandTarget {
    id: TenantId,
    key: Option<String>,
    hold: HoldOverride,
}

impl axum::extract::FromRequestParts<ApiState> for CommandTarget {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let TenantPath(id) = TenantPath::from_request_parts(parts, state).await?;
        let IdempotencyKey(key) = IdempotencyKey::from_request_parts(parts, state).await?;
        let ApiQuery(hold) = ApiQuery::<HoldOverride>::from_request_parts(parts, state).await?;
        Ok(Self { id, key, hold })
    }
}

/// Applies an operator event (`verb` names the endpoint, `POST /v1/tenants/{id}/{verb}`),
/// idempotently when the caller sent a key; a restore from a snapshot taken outside
/// tenantctl when `external_snapshot` says so.
async fn command<S: RequiredScope>(
    state: &ApiState,
    caller: &Caller<S>,
    target: CommandTarget,
    verb: &str,
    body: &impl Serialize,
    event: TenantEvent,
    external_snapshot: bool,
) -> Response {
    let CommandTarget { id, key, hold } = target;
    let hold = match rollout_hold(caller, &hold) {
        Ok(hold) => Overrides {
            external_snapshot,
            ..hold
        },
        Err(e) => return e.into_response(),
    };
    // An override of a rollout's hold or a freeze takes admin on this tenant too.
    let needs = match hold.hold == RolloutHold::Override || hold.freeze.is_some() {
        true => Scope::Admin,
        false => S::SCOPE,
    };
    if !caller.access.is_unrestricted(needs) {
        if let Err(refused) = caller.principal().tenant(state, &id, needs, verb).await {
            return refused.into_response();
        }
    }
    let mut request = match hold.hold {
        RolloutHold::Respect => format!("POST /v1/tenants/{id}/{verb}"),
        RolloutHold::Override => format!("POST /v1/tenants/{id}/{verb}?override_rollout_hold=true"),
    };
    if let Some(reason) = &hold.freeze {
        request.push_str(&format!(" override_freeze={reason}"));
    }
    let id = &id;
    idempotency::run(state, &caller.name, key, &request, body, || async {
        let name = event.name();
        let record = state
            .commands()
            .command_with_hold(id, event, &caller.actor(), hold.clone()).await?;
        tracing::info!(tenant = %id, caller = %caller.name, command = name, to = %record.state.label(), "tenant commanded");
        Ok((StatusCode::ACCEPTED, view(&record)))
    })
    .await
}

#[utoipa::path(operation_id = "tenant_upgrade", post, path = "/v1/tenants/{id}/upgrade", tag = "tenants", params(("id" = TenantId, Path, description = "The tenant's id"), ("Idempotency-Key" = Option<IdempotencyKey>, Header, description = "Replays the first response for a repeated key"), HoldOverride), request_body = Upgrade,
    responses((status = 202, body = TenantView), (status = 400, body = super::error::ErrorBody, description = "`invalid_request`: the release is malformed or has no image for the tenant's region"),
        (status = 409, body = super::error::ErrorBody,
        description = "`refused_by_state`: the tenant's state does not take this command; `held_by_rollout`: a running rollout holds the tenant; `frozen`: a freeze holds the tenant's environment and region (an admin may pass `override_freeze`); `idempotency_key_in_progress`"),
        (status = 503, body = super::error::ErrorBody, description = "`unavailable`: the artifact registry could not say whether the release is published; nothing changed, try again")), security(("bearer" = ["deploy"])))]
pub async fn upgrade(
    State(state): State<ApiState>,
    caller: Caller<Deploy>,
    target: CommandTarget,
    ApiJson(body): ApiJson<Upgrade>,
) -> Response {
    let event = TenantEvent::Upgrade {
        release: body.release.clone(),
    };
    command(&state, &caller, target, "upgrade", &body, event, false).await
}

/// Applies the tenant's template, chart and spec again on the release it runs: the
/// way a changed tier or hostname, or a platform fix, reaches one tenant without a
/// new release.
#[utoipa::path(operation_id = "tenant_reconcile", post, path = "/v1/tenants/{id}/reconcile", tag = "tenants", params(("id" = TenantId, Path, description = "The tenant's id"), ("Idempotency-Key" = Option<IdempotencyKey>, Header, description = "Replays the first response for a repeated key"), HoldOverride),
    responses((status = 202, body = TenantView, description = "Accepted: the tenant runs the upgrade's steps on its own release"), (status = 409, body = super::error::ErrorBody,
        description = "`refused_by_state`: only an Active tenant can be reconciled; `held_by_rollout`: a running rollout holds the tenant; `frozen`: a freeze holds the tenant's environment and region (an admin may pass `override_freeze`); `idempotency_key_in_progress`")), security(("bearer" = ["deploy"])))]
pub async fn reconcile(
    State(state): State<ApiState>,
    caller: Caller<Deploy>,
    target: CommandTarget,
) -> Response {
    command(
        &state,
        &caller,
        target,
        "reconcile",
        &(),
        TenantEvent::Reconcile,
        false,
    )
    .await
}

#[utoipa::path(operation_id = "tenant_retry", post, path = "/v1/tenants/{id}/retry", tag = "tenants", params(("id" = TenantId, Path, description = "The tenant's id"), ("Idempotency-Key" = Option<IdempotencyKey>, Header, description = "Replays the first response for a repeated key"), HoldOverride),
    responses((status = 202, body = TenantView), (status = 409, body = super::error::ErrorBody,
        description = "`refused_by_state`: the tenant's state does not take this command; `held_by_rollout`: a running rollout holds the tenant; `idempotency_key_in_progress`")), security(("bearer" = ["deploy"])))]
pub async fn retry(State(state): State<ApiState>, caller: Caller<Deploy>, target: CommandTarget) -> Response {
    command(&state, &caller, target, "retry", &(), TenantEvent::Retry, false).await
}

#[utoipa::path(operation_id = "tenant_rollback", post, path = "/v1/tenants/{id}/rollback", tag = "tenants", params(("id" = TenantId, Path, description = "The tenant's id"), ("Idempotency-Key" = Option<IdempotencyKey>, Header, description = "Replays the first response for a repeated key"), HoldOverride),
    responses((status = 202, body = TenantView), (status = 409, body = super::error::ErrorBody,
        description = "`refused_by_state`: the tenant's state does not take this command; `held_by_rollout`: a running rollout holds the tenant; `frozen`: a freeze holds the tenant's environment and region (an admin may pass `override_freeze`); `idempotency_key_in_progress`")), security(("bearer" = ["deploy"])))]
pub async fn rollback(
    State(state): State<ApiState>,
    caller: Caller<Deploy>,
    target: CommandTarget,
) -> Response {
    command(
        &state,
        &caller,
        target,
        "rollback",
        &(),
        TenantEvent::Rollback,
        false,
    )
    .await
}

#[utoipa::path(operation_id = "tenant_restore", post, path = "/v1/tenants/{id}/restore", tag = "tenants", params(("id" = TenantId, Path, description = "The tenant's id"), ("Idempotency-Key" = Option<IdempotencyKey>, Header, description = "Replays the first response for a repeated key"), HoldOverride), request_body = Restore,
    responses((status = 202, body = TenantView), (status = 409, body = super::error::ErrorBody,
        description = "`refused_by_state`: the tenant's state does not take this command; `held_by_rollout`: a running rollout holds the tenant; `frozen`: a freeze holds the tenant's environment and region (an admin may pass `override_freeze`); `idempotency_key_in_progress`")), security(("bearer" = ["admin"])))]
pub async fn restore(
    State(state): State<ApiState>,
    caller: Caller<Admin>,
    target: CommandTarget,
    ApiJson(body): ApiJson<Restore>,
) -> Response {
    let event = TenantEvent::Restore {
        snapshot: String::from(body.snapshot.clone()),
    };
    let external = body.external;
    command(&state, &caller, target, "restore", &body, event, external).await
}

#[utoipa::path(operation_id = "tenant_deprovision", post, path = "/v1/tenants/{id}/deprovision", tag = "tenants", params(("id" = TenantId, Path, description = "The tenant's id"), ("Idempotency-Key" = Option<IdempotencyKey>, Header, description = "Replays the first response for a repeated key"), HoldOverride),
    responses((status = 202, body = TenantView), (status = 409, body = super::error::ErrorBody,
        description = "`refused_by_state`: the tenant's state does not take this command; `held_by_rollout`: a running rollout holds the tenant; `frozen`: a freeze holds the tenant's environment and region (an admin may pass `override_freeze`); `idempotency_key_in_progress`")), security(("bearer" = ["admin"])))]
pub async fn deprovision(
    State(state): State<ApiState>,
    caller: Caller<Admin>,
    target: CommandTarget,
) -> Response {
    command(
        &state,
        &caller,
        target,
        "deprovision",
        &(),
        TenantEvent::Deprovision,
        false,
    )
    .await
}

#[utoipa::path(operation_id = "tenant_history", get, path = "/v1/tenants/{id}/history", tag = "tenants", params(("id" = TenantId, Path, description = "The tenant's id"), PageParams),
    responses((status = 200, body = HistoryPage), (status = 404, body = super::error::ErrorBody)), security(("bearer" = ["read"])))]
pub async fn history(
    State(state): State<ApiState>,
    caller: Caller<Read>,
    TenantPath(id): TenantPath,
    ApiQuery(q): ApiQuery<PageParams>,
) -> Result<Json<HistoryPage>, ApiError> {
    caller
        .principal()
        .tenant(&state, &id, Scope::Read, "read the history of")
        .await?;
    let page = state
        .store()
        .history_page(&id, q.next_token.as_deref(), super::page_limit(q.limit)?)
        .await?;
    Ok(Json(HistoryPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next_token: page.next_token,
    }))
}
