//! Tenant actions from the dashboard: `POST /tenants/{id}/{retry|rollback|reconcile}`,
//! the forms the tenant page shows a session that may deploy to the tenant. Each runs
//! the same command as `tenantctl tenant retry|rollback|reconcile` and the API
//! (`TenantCommands::command_with_hold`: same checks, same history entry and events),
//! recorded as `dashboard:<token name>`, and never overrides a rollout's hold or a
//! freeze (that stays an admin's API call). Each form sits behind a confirmation: it
//! opens from a `<details>` summary and needs its "I am sure" box ticked (enforced by
//! the browser without script, and checked again here). The forgery defences are the
//! rollout actions': a same-origin check, then a form token bound to the session, the
//! action and the tenant; a bearer header needs no form token. Done, the browser goes
//! back to the tenant's page, which says what was done.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::actions::{forged_form, posted_action, refused, ActionForm, ActionKind};
use super::csrf::tenant_form_token;
use super::session::Viewer;
use super::PageError;
use crate::api::auth::{Deploy, Scope};
use crate::api::ApiState;
use crate::app::RolloutHold;
use crate::domain::TenantId;
use crate::machine::{TenantEvent, TenantState};
use crate::record::TenantRecord;

/// What a dashboard button does to a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantAction {
    Retry,
    Rollback,
    Reconcile,
}

impl TenantAction {
    pub const ALL: [TenantAction; 3] = [Self::Retry, Self::Rollback, Self::Reconcile];

    /// The action named by the last segment of its path.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Rollback => "rollback",
            Self::Reconcile => "reconcile",
        }
    }

    fn event(self) -> TenantEvent {
        match self {
            Self::Retry => TenantEvent::Retry,
            Self::Rollback => TenantEvent::Rollback,
            Self::Reconcile => TenantEvent::Reconcile,
        }
    }

    fn button(self) -> &'static str {
        match self {
            Self::Retry => "Retry",
            Self::Rollback => "Roll back",
            Self::Reconcile => "Reconcile",
        }
    }

    /// What the confirmation says the action will do.
    fn explains(self) -> &'static str {
        match self {
            Self::Retry => "Runs the failed operation again from the step that failed.",
            Self::Rollback => "Undoes the upgrade: the tenant goes back to the release it ran before.",
            Self::Reconcile => "Applies the tenant's template, chart and spec again on the release it runs.",
        }
    }

    /// What the tenant page says once it is done.
    pub fn done(self) -> &'static str {
        match self {
            Self::Retry => "retry accepted: a worker runs the failed step again",
            Self::Rollback => "rollback accepted: a worker rolls the upgrade back",
            Self::Reconcile => "reconcile accepted: a worker applies the tenant's spec again",
        }
    }

    /// Whether the tenant's state takes this action, so the page offers only those
    /// (the machine decides again when the form is posted).
    pub fn offered(self, state: &TenantState) -> bool {
        state.apply(&self.event()).is_ok()
    }
}

impl ActionKind for TenantAction {
    const SUBJECT: &'static str = "tenant";
    const BUTTONS_ON: &'static str = "the tenant's page";
    const KNOWN: &'static str = "the dashboard's tenant actions are retry, rollback and reconcile";
    const FORM_PAGE: &'static str = "the tenant's page";

    fn parse(name: &str) -> Option<Self> {
        TenantAction::parse(name)
    }
}

/// The tenant action forms a viewer may post: a session allowed to deploy to the
/// tenant. A bearer header posts the actions without forms.
pub struct TenantForms<'a> {
    pub(super) session_id: &'a str,
}

impl TenantForms<'_> {
    /// The anti-CSRF token of the form doing `action` to `tenant`.
    pub fn token(&self, action: TenantAction, tenant: &str) -> String {
        tenant_form_token(self.session_id, action.as_str(), tenant)
    }

    /// The page's section with a confirmation form per action the tenant's state takes.
    pub fn render(&self, record: &TenantRecord) -> Markup {
        let id = record.id().to_string();
        let offered: Vec<TenantAction> = TenantAction::ALL
            .into_iter()
            .filter(|a| a.offered(&record.state))
            .collect();
        html! {
            section #tenant-actions {
                h2 { "Actions" }
                @if offered.is_empty() {
                    p.muted { "No action applies in state " (record.state.label()) "." }
                }
                @for action in offered {
                    details.action #(format!("action-{}", action.as_str())) {
                        summary { (action.button()) "\u{2026}" }
                        form.action method="post" action=(format!("/tenants/{id}/{}", action.as_str())) {
                            p { (action.explains()) }
                            input type="hidden" name="csrf" value=(self.token(action, &id));
                            label {
                                input type="checkbox" name="confirm" value="yes" required;
                                " I am sure"
                            }
                            " "
                            button type="submit" { (action.button()) " tenant " (id) }
                        }
                    }
                }
            }
        }
    }
}

/// `POST /tenants/{id}/{action}`.
pub async fn tenant_action(
    State(state): State<ApiState>,
    viewer: Viewer<Deploy>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (action, form) = match posted_action::<TenantAction>(&headers, &viewer.name, &action, form) {
        Ok(posted) => posted,
        Err(page) => return Ok(*page),
    };
    let tenant = TenantId::parse(&id)?;
    // The same check as the API's: 404 for a tenant the viewer may not see, 403 (and
    // a history entry naming the viewer) for one it may see but not deploy to.
    let principal = viewer.principal();
    let record = principal
        .tenant(&state, &tenant, Scope::Deploy, action.as_str())
        .await?;
    if let Some(forms) = viewer.tenant_forms(&record) {
        if let Some(page) = forged_form::<TenantAction>(&form, &forms.token(action, &id)) {
            tracing::warn!(caller = %viewer.name, tenant = %id, action = action.as_str(),
                "dashboard tenant action refused: the form's anti-CSRF token did not match");
            return Ok(page);
        }
        if !form.confirmed() {
            return Ok(refused(
                StatusCode::BAD_REQUEST,
                &format!(
                    "Tenant {id} was not changed: tick \"I am sure\" beside the {} button to confirm.",
                    action.button()
                ),
            ));
        }
    }
    let id = tenant;
    let record = state
        .commands()
        .command_with_hold(&id, action.event(), &principal.actor, RolloutHold::Respect)
        .await?;
    tracing::info!(tenant = %id, caller = %viewer.name, action = action.as_str(), to = %record.state.label(),
        "tenant commanded from the dashboard");
    let location = format!("/tenants/{id}?done={}", action.as_str());
    Ok(Redirect::to(&location).into_response())
}

/// What the tenant page's `?done=…` says was done, when it names a known action.
#[derive(Deserialize, Default)]
pub struct TenantDone {
    done: Option<String>,
}

impl TenantDone {
    pub fn notice(&self) -> Option<TenantAction> {
        TenantAction::parse(self.done.as_deref()?)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::domain::{ReleaseVersion, TenantSpec};

    #[test]
    fn actions_are_named_by_their_path_segment() {
        for action in TenantAction::ALL {
            assert_eq!(TenantAction::parse(action.as_str()), Some(action));
        }
        assert_eq!(TenantAction::parse("deprovision"), None);
        assert_eq!(TenantAction::parse("Retry"), None);
    }

    #[test]
    fn the_page_offers_what_the_state_takes_each_behind_a_confirmation() {
        let active = TenantState::Active {
            release: ReleaseVersion::parse("1.0.0").unwrap(),
            failed_upgrade: None,
        };
        let record = TenantRecord::new(TenantSpec::example("acme", "eu-west-1"), active, Utc::now());
        let forms = TenantForms { session_id: "s1" };
        let html = forms.render(&record).into_string();
        assert!(html.contains("action=\"/tenants/acme/reconcile\""), "{html}");
        assert!(
            !html.contains("/tenants/acme/retry"),
            "an Active tenant has nothing to retry"
        );
        assert!(html.contains("name=\"confirm\" value=\"yes\" required"));
        assert!(html.contains(&forms.token(TenantAction::Reconcile, "acme")));
        assert_ne!(
            forms.token(TenantAction::Reconcile, "acme"),
            forms.token(TenantAction::Retry, "acme"),
            "a token is bound to its action"
        );
    }
}
