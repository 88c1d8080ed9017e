//! Rollout actions from the dashboard: a deploy session approves, pauses, resumes and
//! aborts with the overview's buttons (the same commands as the CLI and the API,
//! recorded as `dashboard:<token name>`); a read session sees no buttons and is
//! refused; forms without their token, or posted from another site, change nothing.
//! The change's outbox event names the dashboard's actor like its history does.

use reqwest::header::LOCATION;
use reqwest::StatusCode;
use tenant_orchestrator::ports::OutboxStore;
use tenant_orchestrator::record::{Phase, RolloutRecord};

use crate::api_support::{DEPLOY, READ};
use crate::rollout_support::Fleet;
use crate::support::{page_client, seeded, sign_in, ROLLOUT};

/// The overview as `cookie` sees it.
async fn overview(base: &str, cookie: &str) -> String {
    page(base, "/", cookie).await
}

/// The page at `path` (with its query) as `cookie` sees it.
pub(crate) async fn page(base: &str, path: &str, cookie: &str) -> String {
    let response = page_client()
        .get(format!("{base}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

/// The anti-CSRF token of the form doing `action` to [`ROLLOUT`] in `html`, if shown.
pub(crate) fn form_token(html: &str, action: &str) -> Option<String> {
    let marker =
        format!("action=\"/rollouts/{ROLLOUT}/{action}\"><input type=\"hidden\" name=\"csrf\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = start + html[start..].find('"')?;
    Some(html[start..end].to_owned())
}

/// Posts `fields` to `/rollouts/{ROLLOUT}/{action}` with the headers a browser on the
/// dashboard's page sends, plus `extra`.
pub(crate) async fn post(
    base: &str,
    action: &str,
    cookie: &str,
    fields: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let host = base.trim_start_matches("http://");
    let mut request = page_client()
        .post(format!("{base}/rollouts/{ROLLOUT}/{action}"))
        .header("cookie", cookie)
        .header("origin", base)
        .header("host", host)
        .form(fields);
    if !extra.iter().any(|(name, _)| *name == "sec-fetch-site") {
        request = request.header("sec-fetch-site", "same-origin");
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// Posts the overview's own form for `action` (its token read from the page).
async fn press(base: &str, cookie: &str, action: &str, confirm: bool) -> reqwest::Response {
    let html = overview(base, cookie).await;
    let token = form_token(&html, action).unwrap_or_else(|| panic!("no {action} button: {html}"));
    let mut fields = vec![("csrf", token.as_str())];
    if confirm {
        fields.push(("confirm", "yes"));
    }
    post(base, action, cookie, &fields, &[]).await
}

pub(crate) fn dashboard_entries(record: &RolloutRecord) -> Vec<String> {
    record
        .events
        .iter()
        .filter(|e| e.actor.starts_with("dashboard:"))
        .map(|e| format!("{}: {}", e.actor, e.what))
        .collect()
}

/// Asserts the rollout is still running at its approval gate, untouched by the dashboard.
pub(crate) async fn unchanged(fleet: &Fleet, why: &str) {
    let record = fleet.rollout(ROLLOUT).await;
    assert_eq!(record.phase, Phase::Running, "{why}");
    assert_eq!(record.waves[1].approved_by, None, "{why}");
    assert!(
        dashboard_entries(&record).is_empty(),
        "{why}: {:?}",
        record.events
    );
}

fn assert_done(response: &reqwest::Response, action: &str) {
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{action}");
    assert_eq!(
        response.headers()[LOCATION],
        format!("/?done={action}&rollout={ROLLOUT}").as_str()
    );
}

#[tokio::test]
async fn a_deploy_session_approves_the_waiting_wave_from_the_overview() {
    let seeded = seeded().await;
    let base = &seeded.base;
    let cookie = sign_in(base, DEPLOY).await;
    let html = overview(base, &cookie).await;
    assert!(html.contains(">Approve wave 1</button>"), "{html}");

    let response = press(base, &cookie, "approve", false).await;

    assert_done(&response, "approve");
    let record = seeded.fleet.rollout(ROLLOUT).await;
    assert_eq!(record.waves[1].approved_by.as_deref(), Some("dashboard:pipeline"));
    assert!(
        dashboard_entries(&record)
            .iter()
            .any(|e| e == "dashboard:pipeline: wave 1 approved"),
        "{:?}",
        record.events
    );
    let after = page(base, &format!("/?done=approve&rollout={ROLLOUT}"), &cookie).await;
    assert!(
        after.contains(&format!(
            "<p class=\"ok\" id=\"action-done\">Rollout {ROLLOUT} approved"
        )),
        "{after}"
    );
    seeded.fleet.stop().await;
}

#[tokio::test]
async fn a_deploy_session_pauses_resumes_and_aborts_and_a_wrong_phase_is_explained() {
    let seeded = seeded().await;
    let base = &seeded.base;
    let cookie = sign_in(base, DEPLOY).await;
    let html = overview(base, &cookie).await;
    assert!(
        form_token(&html, "resume").is_none(),
        "a running rollout has no Resume"
    );

    let paused = press(base, &cookie, "pause", false).await;
    assert_done(&paused, "pause");
    assert_eq!(seeded.fleet.rollout(ROLLOUT).await.phase, Phase::Paused);
    let html = page(base, &format!("/?done=pause&rollout={ROLLOUT}"), &cookie).await;
    assert!(html.contains(&format!("Rollout {ROLLOUT} paused")), "{html}");
    assert!(
        form_token(&html, "pause").is_none(),
        "a paused rollout has no Pause"
    );

    let resumed = press(base, &cookie, "resume", false).await;
    assert_done(&resumed, "resume");
    assert_eq!(seeded.fleet.rollout(ROLLOUT).await.phase, Phase::Running);

    // A stale page's Resume, posted again with its (valid) token: the phase refuses it.
    let token = form_token(&html, "resume").expect("the paused page's Resume");
    let again = post(base, "resume", &cookie, &[("csrf", &token)], &[]).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let page = again.text().await.unwrap();
    assert!(page.contains("is already running"), "{page}");
    assert!(page.contains("Back to the overview"), "{page}");

    // Abort without ticking the box changes nothing.
    let html = overview(base, &cookie).await;
    let token = form_token(&html, "abort").expect("the Abort button");
    let unconfirmed = post(base, "abort", &cookie, &[("csrf", &token)], &[]).await;
    assert_eq!(unconfirmed.status(), StatusCode::BAD_REQUEST);
    assert!(unconfirmed
        .text()
        .await
        .unwrap()
        .contains("tick &quot;I am sure&quot;"));
    assert_eq!(seeded.fleet.rollout(ROLLOUT).await.phase, Phase::Running);

    let aborted = press(base, &cookie, "abort", true).await;
    assert_done(&aborted, "abort");
    let record = seeded.fleet.rollout(ROLLOUT).await;
    assert_eq!(record.phase, Phase::Aborted);
    let entries = dashboard_entries(&record);
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert!(
        entries[0].starts_with("dashboard:pipeline: paused"),
        "{entries:?}"
    );
    assert!(
        entries[1].starts_with("dashboard:pipeline: resumed"),
        "{entries:?}"
    );
    assert!(
        entries[2].starts_with("dashboard:pipeline: aborted"),
        "{entries:?}"
    );
    seeded.fleet.stop().await;
}

#[tokio::test]
async fn a_read_session_sees_no_buttons_and_its_posts_are_forbidden() {
    let seeded = seeded().await;
    let base = &seeded.base;
    let deploy = sign_in(base, DEPLOY).await;
    let read = sign_in(base, READ).await;

    let html = overview(base, &read).await;
    assert!(!html.contains("action=\"/rollouts/"), "{html}");
    // Even a deploy session's valid token does nothing for a read session.
    let token = form_token(&overview(base, &deploy).await, "pause").unwrap();
    for action in ["approve", "pause", "abort"] {
        let response = post(base, action, &read, &[("csrf", &token), ("confirm", "yes")], &[]).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{action}");
        assert!(response.text().await.unwrap().contains("needs scope deploy"));
    }
    let bearer = page_client()
        .post(format!("{base}/rollouts/{ROLLOUT}/pause"))
        .bearer_auth(READ)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::FORBIDDEN);
    unchanged(&seeded.fleet, "a read token acts on nothing").await;
    seeded.fleet.stop().await;
}

#[tokio::test]
async fn forged_posts_change_nothing() {
    let seeded = seeded().await;
    let base = &seeded.base;
    let cookie = sign_in(base, DEPLOY).await;
    let other = sign_in(base, DEPLOY).await;
    let html = overview(base, &cookie).await;
    let pause = form_token(&html, "pause").unwrap();
    let approve = form_token(&html, "approve").unwrap();
    let others = form_token(&overview(base, &other).await, "pause").unwrap();

    // (why, form fields, extra headers)
    type Fields<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(&str, Fields, Fields)> = vec![
        ("no form token", vec![], vec![]),
        ("an empty form token", vec![("csrf", "")], vec![]),
        ("another action's token", vec![("csrf", &approve)], vec![]),
        ("another session's token", vec![("csrf", &others)], vec![]),
        (
            "a cross-site post",
            vec![("csrf", &pause)],
            vec![("sec-fetch-site", "cross-site")],
        ),
        (
            "a same-site (not same-origin) post",
            vec![("csrf", &pause)],
            vec![("sec-fetch-site", "same-site")],
        ),
    ];
    for (why, fields, extra) in cases {
        let response = post(base, "pause", &cookie, &fields, &extra).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{why}");
        let page = response.text().await.unwrap();
        assert!(page.contains("Refused:"), "{why}: {page}");
    }
    // A browser without Sec-Fetch-Site, posting from a foreign origin.
    let foreign = page_client()
        .post(format!("{base}/rollouts/{ROLLOUT}/pause"))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .form(&[("csrf", pause.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    assert!(foreign.text().await.unwrap().contains("https://evil.example"));
    // No session at all: sent to sign in.
    let anonymous = page_client()
        .post(format!("{base}/rollouts/{ROLLOUT}/pause"))
        .form(&[("csrf", pause.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
    assert_eq!(anonymous.headers()[LOCATION], "/login");
    unchanged(&seeded.fleet, "forged posts act on nothing").await;

    let unknown = post(base, "delete", &cookie, &[("csrf", &pause)], &[]).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert!(unknown
        .text()
        .await
        .unwrap()
        .contains("approve, pause, resume, abort and retry"));
    seeded.fleet.stop().await;
}

#[tokio::test]
async fn a_deploy_bearer_header_acts_without_a_form() {
    let seeded = seeded().await;
    let base = &seeded.base;

    let response = page_client()
        .post(format!("{base}/rollouts/{ROLLOUT}/pause"))
        .bearer_auth(DEPLOY)
        .send()
        .await
        .unwrap();

    assert_done(&response, "pause");
    let record = seeded.fleet.rollout(ROLLOUT).await;
    assert_eq!(record.phase, Phase::Paused);
    assert!(dashboard_entries(&record)[0].starts_with("dashboard:pipeline: paused"));
    // The outbox event of the change names the dashboard's actor too.
    let events = seeded.fleet.store.list_events(None, 100).await.unwrap();
    let paused = events
        .iter()
        .find(|e| e.event.subject == format!("rollout/{ROLLOUT}") && e.event.data["to"] == "paused")
        .expect("the pause's outbox event");
    assert_eq!(paused.event.data["actor"], "dashboard:pipeline");
    seeded.fleet.stop().await;
}
