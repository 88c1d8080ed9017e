//! `/v1/rollouts`: plan (dry run), start, list, inspect, and operate fleet rollouts.
//! The rollout controller (in every `tenantctl serve` / `worker` replica) carries
//! them out; these handlers only read and write rollout records.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Caller, Deploy, Read, Scope};
use super::extract::{ApiJson, ApiPath, ApiQuery, IdempotencyKey};
use super::{idempotency, ApiError, ApiState};
use crate::domain::{RolloutId, RolloutSpec};
use crate::ports::RolloutSummary;
use crate::record::{BakeCheck, RolloutMember, RolloutRecord};

/// `POST /v1/rollouts`: a rollout spec (release, selector, strategy) and an optional id.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRollout {
    /// Default: derived from today's date and the release (`r-2026-11-22-1-4-2`).
    pub id: Option<RolloutId>,
    /// The rollout spec, as `tenantctl rollout plan --spec` takes it.
    pub spec: RolloutSpec,
    /// Schedule the start (RFC 3339, at most 90 days ahead): the rollout is stored now
    /// and starts no wave before then. Not part of the spec: the same plan may be
    /// started now or later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<chrono::DateTime<Utc>>,
    /// Start although a freeze holds some of its tenants now (admin scope only); the
    /// reason is recorded in the rollout's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_freeze: Option<FreezeOverride>,
}

/// An admin's override of the freezes in force, and why.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FreezeOverride {
    /// Why the freeze is overridden (1-200 characters), recorded with the actor.
    #[schema(min_length = 1, max_length = 200)]
    pub reason: String,
}

/// The override's reason, when the caller may override a freeze at all.
pub(super) fn freeze_override<S>(
    caller: &Caller<S>,
    given: Option<&FreezeOverride>,
) -> Result<Option<String>, ApiError> {
    let Some(given) = given else { return Ok(None) };
    if caller.scope != Scope::Admin {
        return Err(ApiError::Forbidden(
            "override_freeze needs an admin token; wait until the freeze ends, schedule the start after it (start_at), or ask an admin".into(),
        ));
    }
    match crate::domain::usable_reason(&given.reason) {
        Some(reason) => Ok(Some(reason.to_owned())),
        None => Err(ApiError::InvalidRequest(
            "override_freeze.reason must say why, in 1 to 200 characters of plain text on one line".into(),
        )),
    }
}

/// A rollout with every member (tenant × wave) and its outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct RolloutView {
    #[schema(value_type = Object)]
    pub rollout: RolloutRecord,
    #[schema(value_type = Vec<Object>)]
    pub members: Vec<RolloutMember>,
    /// Per wave that baked or bakes: each tenant's latest bake check (time, result,
    /// the alarms read and their states), as `rollout.waves[].bake.checks` keeps it.
    pub bake_evidence: Vec<WaveBakeEvidence>,
    /// Members whose upgrade's measured outage was longer than the strategy's
    /// `outage_budget`, as `members[].outage_overrun` records it.
    pub outage_overruns: Vec<MemberOutageOverrun>,
    /// How many tenants it skipped at planning, also when `rollout.skipped` leaves
    /// them out (`members=false`; read them from `/v1/rollouts/{id}/skipped`).
    pub skipped_count: usize,
    /// On start: whether this call created it (false: it existed with the same spec).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
}

/// The bake evidence of one wave.
#[derive(Debug, Serialize, ToSchema)]
pub struct WaveBakeEvidence {
    pub wave: usize,
    /// The unhealthy tenants first; at most 50 tenants, at most 10 alarms each.
    pub checks: Vec<BakeCheck>,
}

impl WaveBakeEvidence {
    fn of(record: &RolloutRecord) -> Vec<Self> {
        record
            .waves
            .iter()
            .filter_map(|w| {
                w.bake.as_ref().map(|b| Self {
                    wave: w.index,
                    checks: b.checks.clone(),
                })
            })
            .collect()
    }
}

/// One member whose upgrade kept its tenant out of service longer than the budget.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberOutageOverrun {
    pub wave: usize,
    #[schema(value_type = String)]
    pub tenant: crate::domain::TenantId,
    /// The outage verify measured, in seconds.
    pub seconds: u64,
    /// The strategy's `outage_budget` (e.g. `5m`).
    #[schema(value_type = String, example = "5m")]
    pub budget: crate::domain::rollout::OutageBudget,
}

impl MemberOutageOverrun {
    fn of(members: &[RolloutMember]) -> Vec<Self> {
        members
            .iter()
            .filter_map(|m| {
                m.outage_overrun.as_ref().map(|o| Self {
                    wave: m.wave,
                    tenant: m.tenant.clone(),
                    seconds: o.seconds,
                    budget: o.budget,
                })
            })
            .collect()
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RolloutPage {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<RolloutSummary>,
    pub next_token: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RolloutFilters {
    /// Include finished rollouts (completed, aborted); default only running ones.
    pub all: Option<bool>,
    /// 1-1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    pub next_token: Option<String>,
}

fn rollout_id(id: &str) -> Result<RolloutId, ApiError> {
    Ok(RolloutId::parse(id)?)
}

/// The answer about a rollout: the record with its bake evidence, and its members,
/// skipped tenants and outage overruns only if `members`.
async fn view_of(
    state: &ApiState,
    record: RolloutRecord,
    created: Option<bool>,
    members: bool,
) -> Result<RolloutView, ApiError> {
    let (members, details) = match members {
        true => (
            state.store().members(&record.id, None).await?,
            crate::ports::Details::Everything,
        ),
        false => (Vec::new(), crate::ports::Details::BakeEvidence),
    };
    let record = state.store().with_details(record, details).await?;
    Ok(RolloutView {
        bake_evidence: WaveBakeEvidence::of(&record),
        outage_overruns: MemberOutageOverrun::of(&members),
        skipped_count: record.skipped_count(),
        rollout: record,
        members,
        created,
    })
}

fn json(view: &RolloutView) -> serde_json::Value {
    serde_json::to_value(view).expect("views serialize")
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PlanOptions {
    /// Also preview each (region, tier, platform version) group's stack change set on
    /// one representative tenant, and which replacements the guard refuses (`preview`).
    pub diff: Option<bool>,
}

/// The plan, and with `diff=true` its preview.
#[derive(Debug, Serialize)]
pub struct PlanAnswer {
    #[serde(flatten)]
    pub plan: crate::domain::rollout::Plan,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<crate::app::PlanPreview>,
}

#[utoipa::path(operation_id = "rollout_plan", post, path = "/v1/rollouts/plan", tag = "rollouts",
    params(PlanOptions),
    request_body(content = RolloutSpec, description = "A rollout spec"),
    responses((status = 200, body = Object, description = "The plan: waves, tenants and earliest starts (with `deferred` where a window closes before the outage budget runs out), skipped tenants; with diff=true also `preview`: per group the stack's resource changes (action, replacement never/conditional/always, properties), the refused replacements, and `chart_diff` (the unified diff of the release's manifests, empty when unchanged) or `chart_unavailable` (why the chart could not be rendered)"),
        (status = 400, body = super::error::ErrorBody), (status = 503, body = super::error::ErrorBody)),
    security(("bearer" = ["read"])))]
pub async fn plan(
    State(state): State<ApiState>,
    caller: Caller<Read>,
    ApiQuery(options): ApiQuery<PlanOptions>,
    ApiJson(spec): ApiJson<RolloutSpec>,
) -> Result<Json<PlanAnswer>, ApiError> {
    caller
        .principal()
        .check_rollout(&spec.selector, Scope::Read, "plan this rollout")?;
    if options.diff == Some(true) {
        let (plan, preview) = state.rollouts().preview(&spec, Utc::now()).await?;
        return Ok(Json(PlanAnswer {
            plan,
            preview: Some(preview),
        }));
    }
    Ok(Json(PlanAnswer {
        plan: state.rollouts().plan(&spec, Utc::now()).await?,
        preview: None,
    }))
}

#[utoipa::path(operation_id = "rollout_start", post, path = "/v1/rollouts", tag = "rollouts", request_body = StartRollout,
    params(("Idempotency-Key" = Option<IdempotencyKey>, Header, description = "Replays the first response for a repeated key and body"), ViewOptions),
    responses((status = 201, body = RolloutView, description = "Started; the controllers carry it out"),
        (status = 200, body = RolloutView, description = "A rollout with this id and spec already exists"),
        (status = 400, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody,
            description = "`held_by_rollout`: it would move no tenant, since running rollouts hold those it selects; `refused_by_rollout_state`: the id is taken by a rollout of another spec; `frozen`: a freeze holds tenants it would start (an admin may override it); `replacement_refused`; `idempotency_key_in_progress`")),
    security(("bearer" = ["deploy"])))]
pub async fn start(
    State(state): State<ApiState>,
    caller: Caller<Deploy>,
    IdempotencyKey(key): IdempotencyKey,
    ApiQuery(options): ApiQuery<ViewOptions>,
    ApiJson(body): ApiJson<StartRollout>,
) -> Response {
    let members = options.members.unwrap_or(true);
    let target = match &body.id {
        Some(id) => format!("rollout/{id}"),
        None => format!(
            "rollout/{}",
            RolloutId::derived_for(&body.spec, Utc::now().date_naive())
        ),
    };
    if let Err(refused) = caller
        .principal()
        .check_rollout_action(
            &state,
            &body.spec.selector,
            Scope::Deploy,
            "start this rollout",
            &target,
        )
        .await
    {
        return refused.into_response();
    }
    idempotency::run(&state, &caller.name, key, "POST /v1/rollouts", &body, || async {
        let id = body
            .id
            .clone()
            .unwrap_or_else(|| RolloutId::derived_for(&body.spec, Utc::now().date_naive()));
        let options = crate::app::StartOptions {
            at: body.start_at,
            override_freeze: freeze_override(&caller, body.override_freeze.as_ref())?,
        };
        let started = state
            .rollouts()
            .start_with(id, body.spec.clone(), &caller.actor().0, options)
            .await?;
        tracing::info!(rollout = %started.record.id, caller = %caller.name, created = started.created, "rollout started");
        let status = if started.created { StatusCode::CREATED } else { StatusCode::OK };
        let view = view_of(&state, started.record, Some(started.created), members).await?;
        Ok((status, json(&view)))
    })
    .await
}

#[utoipa::path(operation_id = "rollout_list", get, path = "/v1/rollouts", tag = "rollouts", params(RolloutFilters),
    responses((status = 200, body = RolloutPage), (status = 400, body = super::error::ErrorBody)),
    security(("bearer" = ["read"])))]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller<Read>,
    ApiQuery(q): ApiQuery<RolloutFilters>,
) -> Result<Json<RolloutPage>, ApiError> {
    let limit = super::page_limit(q.limit)?;
    let page = state
        .store()
        .list_rollouts(!q.all.unwrap_or(false), limit, q.next_token)
        .await?;
    let mut items = page.items;
    if !caller.access.is_unrestricted(Scope::Read) {
        // The listing holds no selector: a restricted caller's page costs a point
        // read per rollout listed (at most `limit`), and keeps the ones it may see.
        let principal = caller.principal();
        let mut seen = Vec::with_capacity(items.len());
        for item in items {
            match state.store().load_rollout(&item.id).await {
                Ok(record) if principal.sees_rollout(&record.spec.selector) => seen.push(item),
                Ok(_) | Err(crate::ports::StoreError::NotFound { .. }) => {}
                Err(other) => return Err(other.into()),
            }
        }
        items = seen;
    }
    Ok(Json(RolloutPage {
        items,
        next_token: page.next_token,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ViewOptions {
    /// `false`: the rollout without its members, its skipped tenants and the outage
    /// overruns its members carry, which is what a progress poll, a pipeline's start
    /// or an operator's pause, resume, abort, approval or retry needs: each wave's
    /// `size` and `tally` count its members (by outcome), read from the rollout alone
    /// however many tenants it moves; the members are read a page at a time from
    /// `/v1/rollouts/{id}/members`. Default `true`.
    pub members: Option<bool>,
}

#[utoipa::path(operation_id = "rollout_get", get, path = "/v1/rollouts/{id}", tag = "rollouts", params(("id" = RolloutId, Path, description = "The rollout's id"), ViewOptions),
    responses((status = 200, body = RolloutView), (status = 400, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)),
    security(("bearer" = ["read"])))]
pub async fn get(
    State(state): State<ApiState>,
    caller: Caller<Read>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(options): ApiQuery<ViewOptions>,
) -> Result<Json<RolloutView>, ApiError> {
    let record = caller.principal().rollout(&state, &rollout_id(&id)?).await?;
    let members = options.members.unwrap_or(true);
    Ok(Json(view_of(&state, record, None, members).await?))
}

/// A page of a rollout's members or skipped tenants.
#[derive(Debug, Serialize, ToSchema)]
pub struct RolloutPartPage {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<serde_json::Value>,
    /// Give it back as `next_token` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

impl RolloutPartPage {
    fn of<T: Serialize>(page: crate::ports::Page<T>) -> Self {
        Self {
            items: (page.items.iter())
                .map(|i| serde_json::to_value(i).expect("records serialize"))
                .collect(),
            next_token: page.next_token,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MemberPages {
    /// Only this wave's members (0 is the first wave).
    pub wave: Option<usize>,
    /// 1-1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    pub next_token: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SkippedPages {
    /// 1-1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    pub next_token: Option<String>,
}

#[utoipa::path(operation_id = "rollout_members", get, path = "/v1/rollouts/{id}/members", tag = "rollouts",
    params(("id" = RolloutId, Path, description = "The rollout's id"), MemberPages),
    responses((status = 200, body = RolloutPartPage, description = "Members (tenant × wave, with outcome), by wave then tenant id"),
        (status = 400, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)),
    security(("bearer" = ["read"])))]
pub async fn members(
    State(state): State<ApiState>,
    caller: Caller<Read>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(pages): ApiQuery<MemberPages>,
) -> Result<Json<RolloutPartPage>, ApiError> {
    let record = caller.principal().rollout(&state, &rollout_id(&id)?).await?;
    let limit = super::page_limit(pages.limit)?;
    if let Some(why) = pages.wave.and_then(|w| record.no_wave(w)) {
        return Err(ApiError::InvalidRequest(why));
    }
    let page = crate::ports::PageRequest {
        limit,
        next_token: pages.next_token,
    };
    let members = state.store().members_page(&record.id, pages.wave, page).await?;
    Ok(Json(RolloutPartPage::of(members)))
}

#[utoipa::path(operation_id = "rollout_skipped", get, path = "/v1/rollouts/{id}/skipped", tag = "rollouts",
    params(("id" = RolloutId, Path, description = "The rollout's id"), SkippedPages),
    responses((status = 200, body = RolloutPartPage, description = "The tenants skipped at planning, with why, by tenant id"),
        (status = 400, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)),
    security(("bearer" = ["read"])))]
pub async fn skipped(
    State(state): State<ApiState>,
    caller: Caller<Read>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(pages): ApiQuery<SkippedPages>,
) -> Result<Json<RolloutPartPage>, ApiError> {
    let record = caller.principal().rollout(&state, &rollout_id(&id)?).await?;
    let page = crate::ports::PageRequest {
        limit: super::page_limit(pages.limit)?,
        next_token: pages.next_token,
    };
    let skipped = state.store().skipped_page(&record, page).await?;
    Ok(Json(RolloutPartPage::of(skipped)))
}

/// What an operation does to a rollout.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
enum Operation {
    Pause,
    Resume,
    Abort,
    Approve,
    Retry,
}

impl Operation {
    fn verb(self) -> &'static str {
        match self {
            Operation::Pause => "pause",
            Operation::Resume => "resume",
            Operation::Abort => "abort",
            Operation::Approve => "approve",
            Operation::Retry => "retry",
        }
    }
}

async fn operate(
    state: ApiState,
    caller: Caller<Deploy>,
    key: Option<String>,
    id: String,
    op: Operation,
    options: ViewOptions,
) -> Response {
    let members = options.members.unwrap_or(true);
    let principal = caller.principal();
    let checked = match rollout_id(&id) {
        Ok(rollout) => {
            let (action, target) = (
                format!("{} rollout {rollout}", op.verb()),
                format!("rollout/{rollout}"),
            );
            if caller.access.is_unrestricted(Scope::Deploy) {
                // Allowed on every rollout: no need to read this one's selector.
                principal
                    .record_grant(&state, Scope::Deploy, &action, &target)
                    .await;
                Ok(())
            } else {
                match principal.rollout(&state, &rollout).await {
                    Ok(record) => {
                        principal
                            .check_rollout_action(
                                &state,
                                &record.spec.selector,
                                Scope::Deploy,
                                &action,
                                &target,
                            )
                            .await
                    }
                    Err(e) => Err(e),
                }
            }
        }
        Err(e) => Err(e),
    };
    if let Err(refused) = checked {
        return refused.into_response();
    }
    // The answer differs with the members asked for, so a key replays one shape only.
    let request = format!("POST /v1/rollouts/{id}/{op:?}?members={members}");
    idempotency::run(&state, &caller.name, key, &request, &op, || async {
        let id = rollout_id(&id)?;
        let actor = caller.actor().0;
        let commands = state.rollouts();
        let record = match op {
            Operation::Pause => commands.pause(&id, &actor).await?,
            Operation::Resume => commands.resume(&id, &actor).await?,
            Operation::Abort => commands.abort(&id, &actor).await?,
            Operation::Approve => commands.approve(&id, &actor).await?,
            Operation::Retry => commands.retry(&id, &actor).await?,
        };
        tracing::info!(rollout = %id, caller = %caller.name, operation = ?op, phase = %record.phase, "rollout operated");
        let view = view_of(&state, record, None, members).await?;
        Ok((StatusCode::OK, json(&view)))
    })
    .await
}

macro_rules! operation {
    ($name:ident, $operation_id:literal, $op:expr, $path:literal, $what:literal) => {
        #[doc = $what]
        #[utoipa::path(operation_id = $operation_id, post, path = $path, tag = "rollouts", params(("id" = RolloutId, Path, description = "The rollout's id"),
            ("Idempotency-Key" = Option<IdempotencyKey>, Header, description = "Replays the first response for a repeated key"), ViewOptions),
            responses((status = 200, body = RolloutView), (status = 400, body = super::error::ErrorBody),
                (status = 404, body = super::error::ErrorBody),
                (status = 409, body = super::error::ErrorBody, description = "Refused by the rollout's phase")),
            security(("bearer" = ["deploy"])))]
        pub async fn $name(
            State(state): State<ApiState>,
            caller: Caller<Deploy>,
            IdempotencyKey(key): IdempotencyKey,
            ApiPath(id): ApiPath<String>,
            ApiQuery(options): ApiQuery<ViewOptions>,
        ) -> Response {
            operate(state, caller, key, id, $op, options).await
        }
    };
}

operation!(
    pause,
    "rollout_pause",
    Operation::Pause,
    "/v1/rollouts/{id}/pause",
    "Stop starting tenants; those in flight finish."
);
operation!(
    resume,
    "rollout_resume",
    Operation::Resume,
    "/v1/rollouts/{id}/resume",
    "Continue a paused rollout, or a halted one accepting its failures."
);
operation!(
    abort,
    "rollout_abort",
    Operation::Abort,
    "/v1/rollouts/{id}/abort",
    "End the rollout: nothing more starts."
);
operation!(
    approve,
    "rollout_approve",
    Operation::Approve,
    "/v1/rollouts/{id}/approve",
    "Approve the wave waiting for an approval."
);
operation!(
    retry,
    "rollout_retry",
    Operation::Retry,
    "/v1/rollouts/{id}/retry",
    "Start the current wave's failed and rolled-back tenants again."
);
