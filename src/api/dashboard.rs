//! The operators' dashboard: server-rendered HTML pages beside the JSON API, with no
//! script and no build step. `GET /` is the overview (fleet by region and state,
//! releases in use, running rollouts wave by wave, tenants in trouble) and reloads
//! itself; its GET form filters the fleet (regions, groups, releases, states), finds
//! a tenant by id or hostname and pages through the tenants it selects (see
//! [`fleet_view`]). `GET /tenants/{id}` shows one tenant and its history;
//! `GET /rollouts/{id}` one rollout as a timeline (see [`rollout_page`]). All need
//! scope read, from a sign-in session (`/login`, or single sign-on with the OpenID
//! Connect issuer, see [`oidc_sign_in`]) or a bearer header; see [`session`].
//! A viewer of scope deploy also gets buttons that approve, pause, resume, retry and
//! abort rollouts (`POST /rollouts/{id}/{action}`); see [`actions`].

mod actions;
mod csrf;
mod fleet_html;
mod fleet_view;
mod html;
mod oidc_sign_in;
mod overview;
pub(crate) use overview::rollout_outcomes;
pub use session::OverTls;
mod overview_html;
mod rollout_page;
mod rollout_timeline;
mod session;
mod tenant_actions;
mod tenant_page;
mod tenant_timeline;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use html::{page, respond};
use maud::html;
use session::Viewer;

use super::auth::Read;
use super::{ApiError, ApiState};
use crate::app::rollouts::{members_to_draw, DrawSample};
use crate::domain::{RolloutId, Scope, TenantId};

/// The dashboard's routes, merged into [`super::router`].
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(overview_page))
        .route("/tenants/{id}", get(tenant))
        .route("/rollouts/{id}", get(rollout))
        .route("/login", get(session::login_form).post(session::login))
        .route("/login/oidc/start", get(oidc_sign_in::start))
        .route(crate::api::oidc::CALLBACK_PATH, get(oidc_sign_in::callback))
        .route("/logout", post(session::logout))
        .route("/rollouts/{id}/{action}", post(actions::rollout_action))
        .route("/tenants/{id}/{action}", post(tenant_actions::tenant_action))
}

/// A page that could not be built: the API's error, shown as HTML. Internal
/// failures show an incident id only; the detail goes to the log.
struct PageError(ApiError);

impl<E: Into<ApiError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let message = match &self.0 {
            ApiError::Internal(detail) => {
                let incident = uuid::Uuid::new_v4().simple().to_string();
                tracing::error!(%incident, %detail, "dashboard page failed");
                format!("The page could not be built (incident {incident}); reload, and report the incident id if it persists.")
            }
            other => other.to_string(),
        };
        let body = html! {
            p.bad #page-error { (message) }
            p { a href="/" { "Back to the overview" } }
        };
        let title = status.canonical_reason().unwrap_or("Error");
        respond(status, page(title, None, None, body))
    }
}

async fn overview_page(
    State(state): State<ApiState>,
    viewer: Viewer<Read>,
    done: Result<Query<actions::DoneQuery>, QueryRejection>,
    form: Result<Query<fleet_view::FleetQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let filter = match form {
        Ok(Query(form)) => form.filter()?,
        Err(rejection) => {
            return Err(PageError(ApiError::InvalidRequest(format!(
                "the overview's filters could not be read ({rejection}); use the form on the overview"
            ))))
        }
    };
    let overview = overview::Overview::load(&state, &viewer.principal(), filter).await?;
    // A query that names nothing real is ignored: the page shows no notice.
    let done = done.ok().and_then(|Query(q)| q.notice());
    Ok(respond(
        StatusCode::OK,
        overview_html::render(
            &overview,
            &viewer.who(),
            viewer.rollout_forms().as_ref(),
            done.as_ref(),
        ),
    ))
}

/// `GET /tenants/{id}?before=<seq>`: the page's cursor into the tenant's history.
#[derive(serde::Deserialize, Default)]
struct TenantPageQuery {
    before: Option<u64>,
}

async fn tenant(
    State(state): State<ApiState>,
    viewer: Viewer<Read>,
    Path(id): Path<String>,
    query: Result<Query<TenantPageQuery>, QueryRejection>,
    done: Result<Query<tenant_actions::TenantDone>, QueryRejection>,
) -> Result<Response, PageError> {
    let Query(query) = query.map_err(|rejection| {
        PageError(ApiError::InvalidRequest(format!(
            "before must be a history event's number ({rejection}); use the page's Older events link"
        )))
    })?;
    let id = TenantId::parse(&id)?;
    let store = state.store();
    let record = viewer
        .principal()
        .tenant(&state, &id, crate::domain::Scope::Read, "view")
        .await?;
    let window = tenant_page::HistoryWindow::of(&record, query.before);
    let (after, limit) = window.read();
    let history = match limit {
        0 => Vec::new(),
        limit => store.history(&id, after, limit).await?.items,
    };
    // A query that names nothing real is ignored: the page shows no notice.
    let done = done.ok().and_then(|Query(q)| q.notice());
    let actions = html! {
        @if let Some(action) = done {
            p.ok #notice { "Tenant " (id) ": " (action.done()) "." }
        }
        @if let Some(forms) = viewer.tenant_forms(&record) { (forms.render(&record)) }
    };
    Ok(respond(
        StatusCode::OK,
        tenant_page::render(&record, &history, window, actions, &viewer.who()),
    ))
}

/// `?done=approve` on the rollout's page after one of its forms was posted.
#[derive(serde::Deserialize, Default)]
struct RolloutDone {
    done: Option<String>,
}

async fn rollout(
    State(state): State<ApiState>,
    viewer: Viewer<Read>,
    Path(id): Path<String>,
    done: Result<Query<RolloutDone>, QueryRejection>,
) -> Result<Response, PageError> {
    let id = RolloutId::parse(&id)?;
    // A rollout no read binding of the viewer covers is a 404, like an unknown one.
    let record = viewer.principal().rollout(&state, &id).await?;
    let record = (state.store())
        .with_details(record, crate::ports::Details::BakeEvidence)
        .await?;
    let members = members_to_draw(state.store().as_ref(), &record, DrawSample::PAGE).await?;
    let timeline = rollout_timeline::timeline(&record, &members, chrono::Utc::now());
    // A query that names no action is ignored: the page shows no notice.
    let done = done
        .ok()
        .and_then(|Query(q)| q.done)
        .and_then(|name| actions::RolloutAction::parse(&name));
    // Forms only where a deploy binding covers every tenant the rollout can reach, as
    // the action handler checks again.
    let forms = viewer
        .rollout_forms()
        .filter(|_| viewer.access.covers(Scope::Deploy, &record.spec.selector));
    let who = viewer.who();
    let cx = rollout_page::PageContext {
        viewer: &who,
        forms: forms.as_ref(),
        done,
    };
    Ok(respond(
        StatusCode::OK,
        rollout_page::render(&record, &members, &timeline, &cx),
    ))
}
