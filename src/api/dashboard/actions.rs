//! Rollout actions from the dashboard: `POST /rollouts/{id}/{approve|pause|resume|abort|retry}`,
//! the buttons the overview and the rollout's page show on each rollout in progress to
//! a session of scope deploy or higher. Each runs the same command as `tenantctl rollout …` and the API
//! (same checks, same history entry and events), recorded as `dashboard:<token name>`.
//! A post must come from this server's page (`Sec-Fetch-Site`/`Origin`) and carry the
//! form's token, bound to the session, the action and the rollout; a bearer header
//! needs no form token (a browser never sends one on its own). Abort ends a rollout for
//! good, so its form also needs the "I am sure" box ticked. Done, the browser is sent
//! back to the page it came from (the overview, or the rollout's page when the form
//! says `back=rollout`), which says what was done; refused, a page says why.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::csrf::{cross_site, rollout_form_token, tokens_match};
use maud::html;

use super::html::{page, respond};
use super::session::Viewer;
use super::PageError;
use crate::api::auth::{Deploy, Scope};
use crate::api::ApiState;
use crate::domain::RolloutId;
use crate::record::Actor;

/// What a dashboard button does to a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutAction {
    Approve,
    Pause,
    Resume,
    Abort,
    Retry,
}

impl RolloutAction {
    pub const ALL: [RolloutAction; 5] = [Self::Approve, Self::Pause, Self::Resume, Self::Abort, Self::Retry];

    /// The action named by the last segment of its path.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Abort => "abort",
            Self::Retry => "retry",
        }
    }

    /// What the overview says once it is done: "rollout r-1 paused".
    pub fn done(self) -> &'static str {
        match self {
            Self::Approve => "approved: its waiting wave starts on the controller's next tick",
            Self::Pause => "paused: no tenant is started until it is resumed",
            Self::Resume => "resumed",
            Self::Abort => "aborted: no further tenant is started",
            Self::Retry => "retried: its current wave's failed tenants start again",
        }
    }
}

impl ActionKind for RolloutAction {
    const SUBJECT: &'static str = "rollout";
    const BUTTONS_ON: &'static str = "the dashboard's overview";
    const KNOWN: &'static str = "the dashboard's actions are approve, pause, resume, abort and retry";
    const FORM_PAGE: &'static str = "the overview";

    fn parse(name: &str) -> Option<Self> {
        RolloutAction::parse(name)
    }
}

/// The forms of the rollout actions a viewer may post: only a session of scope deploy
/// or higher gets them (see [`Viewer::rollout_forms`]).
pub struct RolloutForms<'a> {
    pub(super) session_id: &'a str,
}

impl RolloutForms<'_> {
    /// The anti-CSRF token of the form doing `action` to `rollout`.
    pub fn token(&self, action: RolloutAction, rollout: &str) -> String {
        rollout_form_token(self.session_id, action.as_str(), rollout)
    }
}

#[derive(Deserialize, Default)]
pub(super) struct ActionForm {
    /// The form's anti-CSRF token; missing is refused like a wrong one.
    #[serde(default)]
    pub(super) csrf: String,
    /// Abort's confirmation box: `yes` when ticked.
    #[serde(default)]
    confirm: Option<String>,
    /// `rollout` when posted from the rollout's own page, which the browser is then
    /// sent back to; otherwise the overview.
    #[serde(default)]
    back: Option<String>,
}

impl ActionForm {
    /// The form's confirmation box was ticked.
    pub(super) fn confirmed(&self) -> bool {
        self.confirm.as_deref() == Some("yes")
    }
}

/// A refused action: the status and what was wrong, on a page with no refresh (a
/// reload must not post again) and a way back.
pub(super) fn refused(status: StatusCode, message: &str) -> Response {
    let body = html! {
        p.bad #page-error { (message) }
        p { a href="/" { "Back to the overview" } }
    };
    let title = status.canonical_reason().unwrap_or("Refused");
    respond(status, page(title, None, None, body))
}

/// A kind of dashboard action (on a rollout, on a tenant), for the checks all of them
/// take first.
pub(super) trait ActionKind: Sized {
    /// What the actions act on, as the refusals name it: `rollout`, `tenant`.
    const SUBJECT: &'static str;
    /// The page whose buttons post the actions, for the cross-site refusal.
    const BUTTONS_ON: &'static str;
    /// The actions there are, for the refusal of an unknown one.
    const KNOWN: &'static str;
    /// The page to reload for a fresh form, for the refusal of a forged one.
    const FORM_PAGE: &'static str;

    /// The action named by the last segment of its path.
    fn parse(name: &str) -> Option<Self>;
}

/// The checks every dashboard action takes before anything else: a post from another
/// site is refused (403), then a path naming no action of the kind (404). `Ok` is the
/// action and its form (an unreadable form reads as an empty one, refused by the token
/// or confirmation check after); `Err` is the page saying what was refused (boxed: a
/// response is large beside an action).
pub(super) fn posted_action<A: ActionKind>(
    headers: &HeaderMap,
    caller: &str,
    name: &str,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Result<(A, ActionForm), Box<Response>> {
    if let Some(reason) = cross_site(headers) {
        tracing::warn!(%reason, caller, "dashboard {} action refused: cross-site", A::SUBJECT);
        return Err(Box::new(refused(
            StatusCode::FORBIDDEN,
            &format!("Refused: {reason}. Use the buttons of {}.", A::BUTTONS_ON),
        )));
    }
    let action = A::parse(name).ok_or_else(|| {
        Box::new(refused(
            StatusCode::NOT_FOUND,
            &format!("There is no {} action {name:?}; {}.", A::SUBJECT, A::KNOWN),
        ))
    })?;
    Ok((action, form.map(|Form(f)| f).unwrap_or_default()))
}

/// The page refusing a session's post whose form token is not `expected`, the token
/// of the form doing this action to this subject; `None` when it matches.
pub(super) fn forged_form<A: ActionKind>(form: &ActionForm, expected: &str) -> Option<Response> {
    (!tokens_match(&form.csrf, expected)).then(|| {
        refused(
            StatusCode::FORBIDDEN,
            &format!(
                "Refused: the form's anti-CSRF token did not match this session, action and {}. \
                 Reload {} and use its button.",
                A::SUBJECT,
                A::FORM_PAGE
            ),
        )
    })
}

/// `POST /rollouts/{id}/{action}`.
pub async fn rollout_action(
    State(state): State<ApiState>,
    viewer: Viewer<Deploy>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (action, form) = match posted_action::<RolloutAction>(&headers, &viewer.name, &action, form) {
        Ok(posted) => posted,
        Err(page) => return Ok(*page),
    };
    if let Some(forms) = viewer.rollout_forms() {
        if let Some(page) = forged_form::<RolloutAction>(&form, &forms.token(action, &id)) {
            tracing::warn!(caller = %viewer.name, rollout = %id, action = action.as_str(),
                "dashboard rollout action refused: the form's anti-CSRF token did not match");
            return Ok(page);
        }
    }
    if action == RolloutAction::Abort && !form.confirmed() {
        return Ok(refused(
            StatusCode::BAD_REQUEST,
            &format!(
                "Rollout {id} was not aborted: aborting ends it for good, so tick \"I am sure\" beside \
                 the Abort button to confirm."
            ),
        ));
    }
    let id = RolloutId::parse(&id)?;
    let principal = viewer.principal();
    let rollout = principal.rollout(&state, &id).await?;
    principal
        .check_rollout_action(
            &state,
            &rollout.spec.selector,
            Scope::Deploy,
            &format!("{} rollout {id}", action.as_str()),
            &format!("rollout/{id}"),
        )
        .await?;
    let actor = Actor::dashboard(&viewer.name).0;
    let commands = state.rollouts();
    let record = match action {
        RolloutAction::Approve => commands.approve(&id, &actor).await,
        RolloutAction::Pause => commands.pause(&id, &actor).await,
        RolloutAction::Resume => commands.resume(&id, &actor).await,
        RolloutAction::Abort => commands.abort(&id, &actor).await,
        RolloutAction::Retry => commands.retry(&id, &actor).await,
    }?;
    tracing::info!(rollout = %id, caller = %viewer.name, action = action.as_str(), phase = %record.phase,
        "rollout operated from the dashboard");
    let location = match form.back.as_deref() {
        Some("rollout") => format!("/rollouts/{id}?done={}", action.as_str()),
        _ => format!("/?done={}&rollout={id}", action.as_str()),
    };
    Ok(Redirect::to(&location).into_response())
}

/// What the overview's `?done=…&rollout=…` says was done, when both name something real.
#[derive(Deserialize, Default)]
pub struct DoneQuery {
    done: Option<String>,
    rollout: Option<String>,
}

impl DoneQuery {
    pub fn notice(&self) -> Option<(RolloutAction, RolloutId)> {
        let action = RolloutAction::parse(self.done.as_deref()?)?;
        let rollout = RolloutId::parse(self.rollout.as_deref()?).ok()?;
        Some((action, rollout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_named_by_their_path_segment() {
        for action in RolloutAction::ALL {
            assert_eq!(RolloutAction::parse(action.as_str()), Some(action));
        }
        assert_eq!(RolloutAction::parse("rollback"), None);
        assert_eq!(RolloutAction::parse("Pause"), None);
    }

    #[test]
    fn a_notice_needs_a_known_action_and_a_valid_rollout_id() {
        let query = |done: &str, rollout: &str| DoneQuery {
            done: Some(done.into()),
            rollout: Some(rollout.into()),
        };
        assert_eq!(
            query("pause", "r-1").notice().map(|(a, r)| (a, r.to_string())),
            Some((RolloutAction::Pause, "r-1".to_owned()))
        );
        assert!(query("delete", "r-1").notice().is_none());
        assert!(query("pause", "<script>").notice().is_none());
        assert!(DoneQuery::default().notice().is_none());
    }
}
