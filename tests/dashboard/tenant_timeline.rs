//! A tenant's page as a person sees it: an upgrade whose Deploy failed (after a
//! retried attempt) and was rolled back shows on the step timeline; a read session sees
//! no action and its forged posts, like a deploy session's post without the form's
//! token, are refused and change nothing; a deploy session retries the upgrade with
//! the page's confirmed form, and the history names it. With
//! `TENANTCTL_SCREENSHOTS=docs` the page is saved as `docs/dashboard-tenant.png`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tenant_orchestrator::domain::TenantId;
use tenant_orchestrator::machine::{StepKind, TenantState};
use tenant_orchestrator::ports::TenantStore;
use tenant_orchestrator::record::TenantRecord;
use tenant_orchestrator::step::StepOutcome;

use crate::api_support::{DEPLOY, READ};
use crate::browser::wait_for_text;
use crate::browser_support::{skipped, Browser};
use crate::rollout_support::Fleet;
use crate::support::{page_client, serve, sign_in, sign_in_in_chromium};

const WAIT: Duration = Duration::from_secs(20);

/// Polls the tenant until `done` holds.
async fn wait_until(fleet: &Fleet, what: &str, done: impl Fn(&TenantRecord) -> bool) -> TenantRecord {
    let id = TenantId::parse("acme").unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let record = fleet.store.load(&id).await.unwrap();
        if done(&record) {
            return record;
        }
        assert!(
            Instant::now() < deadline,
            "acme did not reach {what} within {WAIT:?}: it is {}",
            record.state.label()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rolled_back(r: &TenantRecord) -> bool {
    matches!(
        &r.state,
        TenantState::Active {
            failed_upgrade: Some(_),
            ..
        }
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_chromium_a_tenants_timeline_shows_the_failure_and_rollback_and_a_deploy_session_retries() {
    if skipped("in_chromium_a_tenants_timeline_shows_the_failure_and_rollback_and_a_deploy_session_retries") {
        return;
    }
    // Arrange: acme's upgrade to 1.1.0 fails at Deploy on its second attempt and is
    // rolled back to 1.0.0.
    let mut fleet = Fleet::new(&[("acme".to_owned(), "eu-west-1")], "1.0.0").await;
    let base = serve(fleet.store.clone()).await;
    fleet.steps.delay(StepKind::Deploy, Duration::from_millis(300));
    fleet.steps.script(
        "acme",
        StepKind::Deploy,
        vec![
            StepOutcome::retry("helm: timed out waiting for the condition"),
            StepOutcome::fail("helm: release acme failed: <b>pods crash-looping</b>"),
        ],
    );
    fleet.start_workers(1);
    let upgrade = reqwest::Client::new()
        .post(format!("{base}/v1/tenants/acme/upgrade"))
        .bearer_auth(DEPLOY)
        .json(&json!({"release": "1.1.0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(upgrade.status(), StatusCode::ACCEPTED);
    let before = wait_until(&fleet, "Active after the rollback", rolled_back).await;

    // A read session sees the timeline, and no action.
    let browser = Browser::launch().await;
    sign_in_in_chromium(&browser, &base, READ).await;
    browser.goto(&format!("{base}/tenants/acme")).await;
    browser.wait_for("svg#timeline", WAIT).await;
    let failed = browser
        .text_of("svg#timeline g.bar.failed")
        .await
        .expect("the failed Deploy is a bar");
    assert!(
        failed.contains("Deploy") && failed.contains("2 attempts") && failed.contains("\u{2717} failed"),
        "{failed}"
    );
    let rollback = browser
        .text_of("svg#timeline g.bar.rollback")
        .await
        .expect("the rollback's steps are bars");
    assert!(rollback.contains("\u{21a9} rollback"), "{rollback}");
    let history = browser.text_of("#history-table").await.unwrap();
    assert!(
        history.contains("\u{21a9} rollback") && history.contains("<b>pods crash-looping</b>"),
        "{history}"
    );
    assert!(browser.find("#tenant-actions").await.is_none());
    assert!(browser
        .find("form[action=\"/tenants/acme/retry\"]")
        .await
        .is_none());

    // Forged posts are refused and change nothing: a read session's, even with a
    // token, and a deploy session's without the form's token.
    let read = sign_in(&base, READ).await;
    let deploy = sign_in(&base, DEPLOY).await;
    for (cookie, csrf) in [(&read, "forged"), (&deploy, "")] {
        let forged = page_client()
            .post(format!("{base}/tenants/acme/retry"))
            .header("cookie", cookie)
            .header("sec-fetch-site", "same-origin")
            .form(&[("csrf", csrf), ("confirm", "yes")])
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::FORBIDDEN, "{cookie}");
    }
    let unchanged = fleet.store.load(&TenantId::parse("acme").unwrap()).await.unwrap();
    assert_eq!(unchanged.event_seq, before.event_seq);

    // A deploy session retries through the page's confirmed form.
    sign_in_in_chromium(&browser, &base, DEPLOY).await;
    browser.goto(&format!("{base}/tenants/acme")).await;
    let open = browser.wait_for("details#action-retry summary", WAIT).await;
    browser.click(&open).await;
    let sure = browser
        .wait_for("details#action-retry input[name=\"confirm\"]", WAIT)
        .await;
    browser.click(&sure).await;
    let retry = browser.wait_for("details#action-retry button", WAIT).await;
    browser.click(&retry).await;
    wait_for_text(&browser, "#notice", "retry accepted").await;
    let after = wait_until(&fleet, "Active on 1.1.0", |r| {
        matches!(&r.state, TenantState::Active { release, failed_upgrade: None } if release.to_string() == "1.1.0")
    })
    .await;
    let id = TenantId::parse("acme").unwrap();
    let events = fleet.store.history(&id, 0, 100).await.unwrap().items;
    let retried = events
        .iter()
        .find(|e| e.cause == "Retry")
        .expect("the retry is in the history");
    assert_eq!(retried.actor, "dashboard:pipeline");
    assert!(after.event_seq > before.event_seq);

    // The page shows the whole story: the failure, the rollback, the retry and the
    // upgrade that went through.
    browser.goto(&format!("{base}/tenants/acme#history")).await;
    browser.wait_for("svg#timeline g.command", WAIT).await;
    let timeline = browser.text_of("svg#timeline").await.unwrap();
    assert!(timeline.contains("Retry \u{b7} dashboard:pipeline"), "{timeline}");
    let shot = match std::env::var("TENANTCTL_SCREENSHOTS").is_ok_and(|dir| dir == "docs") {
        true => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard-tenant.png"),
        false => PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-tenant-timeline.png"),
    };
    browser.screenshot(&shot).await;
    eprintln!("screenshot: {}", shot.display());

    browser.quit().await;
    fleet.stop().await;
}
