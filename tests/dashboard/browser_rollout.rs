//! A rollout's timeline page as a person sees it in headless Chromium: a halted
//! rollout shows its halted wave as a halted segment and its tenants as marks with
//! their outcomes; a deploy session approves a waiting wave through the page's
//! confirmation, the rollout moves on and its history names the principal; a read
//! session gets the page without any action. With `TENANTCTL_SCREENSHOTS=docs` the
//! halted rollout's page is saved as `docs/dashboard-rollout.png` for the README.

use std::path::PathBuf;
use std::time::Duration;

use tenant_orchestrator::record::Phase;

use crate::api_support::{DEPLOY, READ};
use crate::browser_support::{skipped, Browser};
use crate::support::{halted, seeded, sign_in_in_chromium, HALTED, ROLLOUT};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_chromium_a_halted_rollout_shows_its_halted_wave_and_its_tenants_outcomes() {
    if skipped("in_chromium_a_halted_rollout_shows_its_halted_wave_and_its_tenants_outcomes") {
        return;
    }
    let seeded = halted().await;
    let browser = Browser::launch().await;
    sign_in_in_chromium(&browser, &seeded.base, DEPLOY).await;

    browser.goto(&format!("{}/rollouts/{HALTED}", seeded.base)).await;
    browser.wait_for("#timeline-chart", WAIT).await;

    assert_eq!(browser.title().await, format!("Rollout {HALTED}"));
    assert_eq!(browser.text_of("#rollout-phase").await.as_deref(), Some("halted"));
    let halt = browser.text_of("#halt-reason").await.expect("the halt's reason");
    assert!(halt.contains("halt-02"), "{halt}");
    // Wave 1 deployed, then halted: drawn as segments, the halted one still open.
    let wave = "#timeline-chart g.wave[data-wave=\"1\"]";
    assert!(browser
        .find(&format!("{wave}[data-status=\"breached\"]"))
        .await
        .is_some());
    assert!(browser
        .find(&format!("{wave} rect[data-segment=\"deploying\"]"))
        .await
        .is_some());
    let halted_segment = browser
        .find(&format!("{wave} rect[data-segment=\"halted\"]"))
        .await
        .expect("wave 1's halted segment");
    assert!(browser.text(&halted_segment).await.contains("halted"));
    // Its tenants: halt-02 failed and was rolled back, the others succeeded; the
    // canary's one tenant succeeded in wave 0.
    let mark = |tenant: &str, outcome: &str| {
        format!("#timeline-chart g[data-tenant=\"{tenant}\"][data-outcome=\"{outcome}\"]")
    };
    for (tenant, outcome) in [
        ("halt-00", "succeeded"),
        ("halt-01", "succeeded"),
        ("halt-02", "rolled-back"),
        ("halt-03", "succeeded"),
    ] {
        let found = browser.find(&mark(tenant, outcome)).await;
        assert!(found.is_some(), "{tenant} is marked {outcome}");
    }
    let rolled_back = browser.find(&mark("halt-02", "rolled-back")).await.unwrap();
    assert!(
        browser.text(&rolled_back).await.contains('R'),
        "a letter, not colour alone"
    );
    let row = browser
        .text_of("tr[data-member=\"halt-02\"]")
        .await
        .expect("halt-02 in the table");
    assert!(
        row.contains("rolled back") && row.contains("answered 503"),
        "{row}"
    );
    let budget = browser.text_of("td[data-budget=\"1\"]").await.unwrap();
    assert_eq!(budget, "1 / 0");
    // A halted rollout may be resumed, retried or aborted, not paused or approved.
    for action in ["resume", "retry", "abort"] {
        assert!(
            browser
                .find(&format!("details[data-action=\"{action}\"]"))
                .await
                .is_some(),
            "{action}"
        );
    }
    assert!(browser.find("details[data-action=\"pause\"]").await.is_none());
    if std::env::var("TENANTCTL_SCREENSHOTS").is_ok_and(|dir| dir == "docs") {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard-rollout.png");
        browser.screenshot(&docs).await;
    }
    browser
        .screenshot(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-rollout.png"))
        .await;

    browser.quit().await;
    seeded.fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_chromium_approve_goes_through_for_a_deploy_session_and_not_for_a_read_session() {
    if skipped("in_chromium_approve_goes_through_for_a_deploy_session_and_not_for_a_read_session") {
        return;
    }
    let seeded = seeded().await;
    let page = format!("{}/rollouts/{ROLLOUT}", seeded.base);

    // A read session sees the waiting wave but no action.
    let reader = Browser::launch().await;
    sign_in_in_chromium(&reader, &seeded.base, READ).await;
    reader.goto(&page).await;
    reader.wait_for("#timeline-chart", WAIT).await;
    assert!(reader
        .find("#timeline-chart g.wave[data-wave=\"1\"] rect[data-segment=\"approval\"]")
        .await
        .is_some());
    assert!(reader.find("#actions").await.is_none());
    assert!(reader.find("details[data-action=\"approve\"]").await.is_none());
    reader.quit().await;
    assert_eq!(seeded.fleet.rollout(ROLLOUT).await.waves[1].approved_by, None);

    // A deploy session opens the confirmation and confirms.
    let browser = Browser::launch().await;
    sign_in_in_chromium(&browser, &seeded.base, DEPLOY).await;
    browser.goto(&page).await;
    let summary = browser
        .wait_for("details[data-action=\"approve\"] summary", WAIT)
        .await;
    browser.click(&summary).await;
    let confirm = browser.wait_for("button[data-confirm=\"approve\"]", WAIT).await;
    browser.click(&confirm).await;
    let done = browser.wait_for("#action-done", WAIT).await;
    assert!(browser.text(&done).await.contains("approved"));
    assert_eq!(browser.url().await, format!("{page}?done=approve"));

    let record = seeded.fleet.rollout(ROLLOUT).await;
    assert_eq!(record.waves[1].approved_by.as_deref(), Some("dashboard:pipeline"));
    assert_eq!(record.phase, Phase::Running);
    let history = browser.text_of("#events").await.expect("the rollout's history");
    assert!(
        history.contains("dashboard:pipeline") && history.contains("wave 1 approved"),
        "{history}"
    );

    browser.quit().await;
    seeded.fleet.stop().await;
}
