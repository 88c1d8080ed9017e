//! A fleet worth looking at: Active tenants in two regions, one tenant whose
//! provisioning failed with a hostile error message, and a rollout stopped at an
//! approval gate after its canary, with the API and dashboard serving it.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::json;
use tenant_orchestrator::api::{router, ApiState};
use tenant_orchestrator::machine::StepKind;
use tenant_orchestrator::record::WaveStatus;
use tenant_orchestrator::step::StepOutcome;
use tenant_orchestrator::store::DynamoStore;

use crate::api_support::{tenant_body, tokens, DEPLOY};
use crate::browser_support::Browser;
use crate::common::{tenant_id, wait_for_state};
use crate::rollout_support::Fleet;

/// What the failing step reports: markup that would run if a page did not escape it.
pub const HOSTILE: &str =
    r#"<img src=x onerror="document.title='pwned'"><script>document.title='pwned'</script> & "quotes""#;
pub const ROLLOUT: &str = "r-dashboard";

/// The API and dashboard on 127.0.0.1:0 over `store`; returns the base URL.
pub async fn serve(store: Arc<DynamoStore>) -> String {
    let app = router(ApiState::new(store, tokens()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A client that shows redirects and cookies instead of following and keeping them.
pub fn page_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The sign-in form's anti-CSRF pair: the cookie (`name=value`) `GET /login` set and
/// the hidden field's value.
pub async fn login_form(base: &str) -> (String, String) {
    let response = page_client().get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = set_cookie(&response, "tenantctl_login").expect("the form's cookie");
    let html = response.text().await.unwrap();
    (cookie, hidden_csrf(&html).expect("the form's hidden token"))
}

/// The value of the hidden `csrf` field of the first form in `html`.
pub fn hidden_csrf(html: &str) -> Option<String> {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker)? + marker.len();
    let end = start + html[start..].find('"')?;
    Some(html[start..end].to_owned())
}

/// The `name=value` pair of the `Set-Cookie` header for cookie `name`, if any.
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap().to_owned())
        .find(|pair| pair.starts_with(&format!("{name}=")))
}

/// Posts the sign-in form with `token`, as a browser on the form's page would.
pub async fn post_login(base: &str, token: &str) -> reqwest::Response {
    let (cookie, csrf) = login_form(base).await;
    page_client()
        .post(format!("{base}/login"))
        .header("cookie", cookie)
        .form(&[("token", token), ("csrf", &csrf)])
        .send()
        .await
        .unwrap()
}

/// Signs in with `token` and returns the session cookie (`name=value`) the server set.
pub async fn sign_in(base: &str, token: &str) -> String {
    let response = post_login(base, token).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/");
    set_cookie(&response, "tenantctl_session").expect("the session cookie")
}

/// Signs `browser` in through the form with `token`, as a person would, and waits for
/// the overview it lands on.
pub async fn sign_in_in_chromium(browser: &Browser, base: &str, token: &str) {
    const WAIT: Duration = Duration::from_secs(15);
    browser.goto(&format!("{base}/login")).await;
    let field = browser.wait_for("input#token", WAIT).await;
    browser.type_into(&field, token).await;
    let submit = browser.wait_for("button#sign-in", WAIT).await;
    browser.click(&submit).await;
    browser.wait_for("#fleet-total", WAIT).await;
}

pub struct Seeded {
    pub fleet: Fleet,
    pub base: String,
}

/// alpha and bravo in eu-west-1 and charlie in us-east-1, Active on 1.0.0; broken
/// Failed while provisioning with [`HOSTILE`] in its error; rollout [`ROLLOUT`] to
/// 1.1.0 with its eu-west-1 canary done and its next wave waiting for approval.
pub async fn seeded() -> Seeded {
    let tenants = [
        ("alpha".to_owned(), "eu-west-1"),
        ("bravo".to_owned(), "eu-west-1"),
        ("charlie".to_owned(), "us-east-1"),
    ];
    let mut fleet = Fleet::new(&tenants, "1.0.0").await;
    let base = serve(fleet.store.clone()).await;
    fleet.steps.script(
        "broken",
        StepKind::ProvisionInfra,
        vec![StepOutcome::fail(HOSTILE)],
    );
    let created = reqwest::Client::new()
        .post(format!("{base}/v1/tenants"))
        .bearer_auth(DEPLOY)
        .json(&tenant_body("broken", "eu-west-1", "default"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    fleet.start_workers(1);
    wait_for_state(
        fleet.store.as_ref(),
        &tenant_id("broken"),
        "Failed",
        Duration::from_secs(20),
    )
    .await;

    fleet.start_controller("controller-0");
    fleet
        .start(
            ROLLOUT,
            json!({
                "release": "1.1.0",
                "strategy": {
                    "region_order": ["eu-west-1", "us-east-1"],
                    "waves": ["1", "100%"],
                    "bake_time": "0s", "bake_checks": 0,
                    "approvals": {"after_canary": true, "between_regions": false}
                }
            }),
        )
        .await;
    fleet
        .wait_for(
            ROLLOUT,
            Duration::from_secs(30),
            "the approval gate after the canary",
            |r| {
                r.waves
                    .get(1)
                    .is_some_and(|w| w.status == WaveStatus::AwaitingApproval)
            },
        )
        .await;
    Seeded { fleet, base }
}

pub const HALTED: &str = "r-halted";

/// halt-00 to halt-03 in eu-west-1, Active on 1.0.0, and rollout [`HALTED`] to 1.1.0
/// halted in its second wave: halt-02's upgrade failed verification, breaching a
/// budget of no failures, and was rolled back; the canary halt-00 succeeded.
pub async fn halted() -> Seeded {
    let tenants: Vec<(String, &str)> = (0..4).map(|i| (format!("halt-0{i}"), "eu-west-1")).collect();
    let mut fleet = Fleet::new(&tenants, "1.0.0").await;
    let base = serve(fleet.store.clone()).await;
    fleet.steps.script(
        "halt-02",
        StepKind::Verify,
        vec![StepOutcome::fail("halt-02.example.com answered 503")],
    );
    fleet.start_workers(1);
    fleet.start_controller("controller-0");
    fleet
        .start(
            HALTED,
            json!({
                "release": "1.1.0",
                "strategy": {
                    "waves": ["1", "100%"],
                    "failure_budget": 0,
                    "on_breach": {"rollback": "failed"},
                    "bake_time": "0s", "bake_checks": 0,
                    "approvals": {"after_canary": false, "between_regions": false}
                }
            }),
        )
        .await;
    fleet
        .wait_for(HALTED, Duration::from_secs(60), "halted and rolled back", |r| {
            r.is_settled()
        })
        .await;
    Seeded { fleet, base }
}
