//! The dashboard as a person sees it: headless Chromium signs in through the form,
//! sees the fleet, the rollout waiting at its approval gate and the failed tenant,
//! and follows the link to the tenant's history; the release × region matrix counts,
//! marks trouble, narrows to a filter and pages; an operator with a deploy token pauses
//! and aborts the rollout with the overview's buttons. Screenshots are left in the
//! target's tmp directory; with `TENANTCTL_SCREENSHOTS=docs` the overview's is saved
//! as `docs/dashboard-overview.png` for the README.

use std::path::PathBuf;
use std::time::Duration;

use tenant_orchestrator::record::Phase;

use crate::api_support::{DEPLOY, READ};
use crate::browser_support::{skipped, Browser};
use crate::support::{seeded, sign_in_in_chromium, ROLLOUT};

const WAIT: Duration = Duration::from_secs(15);

fn screenshot(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_chromium_an_operator_signs_in_and_sees_tenants_and_the_rollout_in_progress() {
    if skipped("in_chromium_an_operator_signs_in_and_sees_tenants_and_the_rollout_in_progress") {
        return;
    }
    let seeded = seeded().await;
    let browser = Browser::launch().await;

    // Not signed in: the overview sends the browser to the form.
    browser.goto(&format!("{}/", seeded.base)).await;
    let field = browser.wait_for("input#token", WAIT).await;
    assert_eq!(browser.url().await, format!("{}/login", seeded.base));
    browser.type_into(&field, READ).await;
    let submit = browser.wait_for("button#sign-in", WAIT).await;
    browser.click(&submit).await;

    // Signed in: back on the overview, with the cookie out of scripts' reach.
    browser.wait_for("#fleet-total", WAIT).await;
    assert_eq!(browser.url().await, format!("{}/", seeded.base));
    let cookie = browser
        .cookie("tenantctl_session")
        .await
        .expect("the session cookie");
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
    assert_eq!(browser.text_of("#viewer").await.as_deref(), Some("viewer"));
    assert_eq!(browser.text_of("#fleet-total").await.as_deref(), Some("4"));

    let rollout = browser
        .text_of(&format!("section.rollout[data-rollout=\"{ROLLOUT}\"]"))
        .await
        .expect("the running rollout is shown");
    assert!(
        rollout.contains("release 1.1.0") && rollout.contains("running"),
        "{rollout}"
    );
    assert!(rollout.contains(&format!(
        "Wave 1 is waiting for approval: tenantctl rollout approve {ROLLOUT}"
    )));
    let canary = browser
        .text_of(&format!(
            "section[data-rollout=\"{ROLLOUT}\"] tr[data-wave=\"0\"]"
        ))
        .await
        .unwrap();
    assert!(
        canary.contains("canary") && canary.contains("succeeded"),
        "{canary}"
    );
    let gated = browser
        .text_of(&format!(
            "section[data-rollout=\"{ROLLOUT}\"] tr[data-wave=\"1\"]"
        ))
        .await
        .unwrap();
    assert!(gated.contains("awaiting approval"), "{gated}");

    let broken = browser
        .text_of("tr[data-tenant=\"broken\"]")
        .await
        .expect("the failed tenant is listed as trouble");
    assert!(broken.contains("Failed"), "{broken}");
    // The error shows as the text it is; none of its markup ran.
    assert!(
        broken.contains("<script>document.title='pwned'</script>"),
        "{broken}"
    );
    assert_eq!(browser.title().await, "Fleet");
    assert!(browser.find("tr[data-tenant=\"alpha\"]").await.is_none());
    browser.screenshot(&screenshot("dashboard-overview.png")).await;

    // The tenant's page, through its link.
    let link = browser.wait_for("tr[data-tenant=\"broken\"] a", WAIT).await;
    browser.click(&link).await;
    let state = browser.wait_for("#tenant-state", WAIT).await;
    assert_eq!(browser.text(&state).await, "Failed");
    assert_eq!(browser.url().await, format!("{}/tenants/broken", seeded.base));
    let history = browser.text_of("#history").await.unwrap();
    assert!(
        history.contains("StepFailed") && history.contains("ProvisionInfra"),
        "{history}"
    );
    assert_eq!(browser.title().await, "Tenant broken");
    browser.screenshot(&screenshot("dashboard-tenant.png")).await;
    eprintln!("screenshots: {}", screenshot("dashboard-*.png").display());

    browser.quit().await;
    seeded.fleet.stop().await;
}

/// Polls the text of `css` until it contains `text` (the page is replaced after a post).
pub(crate) async fn wait_for_text(browser: &Browser, css: &str, text: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(found) = browser.text_of(css).await {
            if found.contains(text) {
                return found;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{css} did not say {text:?} within {WAIT:?}; the page is:\n{}",
            browser.text_of("body").await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_chromium_a_deploy_operator_pauses_and_aborts_the_rollout_with_its_buttons() {
    if skipped("in_chromium_a_deploy_operator_pauses_and_aborts_the_rollout_with_its_buttons") {
        return;
    }
    let seeded = seeded().await;
    let browser = Browser::launch().await;
    sign_in_in_chromium(&browser, &seeded.base, DEPLOY).await;

    // The browser's own post (its Sec-Fetch-Site and Origin) passes the forgery checks.
    let pause = browser
        .wait_for(
            &format!("form[action=\"/rollouts/{ROLLOUT}/pause\"] button"),
            WAIT,
        )
        .await;
    browser.click(&pause).await;
    wait_for_text(&browser, "#action-done", "paused").await;
    assert_eq!(seeded.fleet.rollout(ROLLOUT).await.phase, Phase::Paused);
    browser.screenshot(&screenshot("dashboard-paused.png")).await;

    let abort = format!("form[action=\"/rollouts/{ROLLOUT}/abort\"]");
    let sure = browser
        .wait_for(&format!("{abort} input[name=\"confirm\"]"), WAIT)
        .await;
    browser.click(&sure).await;
    let button = browser.wait_for(&format!("{abort} button"), WAIT).await;
    browser.click(&button).await;
    wait_for_text(&browser, "#action-done", "aborted").await;
    let record = seeded.fleet.rollout(ROLLOUT).await;
    assert_eq!(record.phase, Phase::Aborted);
    assert!(record.events.iter().any(|e| e.actor == "dashboard:pipeline"));

    browser.quit().await;
    seeded.fleet.stop().await;
}

/// The number a matrix cell writes, and its trouble mark if any.
async fn matrix_cell(browser: &Browser, release: &str, region: &str) -> Option<String> {
    browser
        .text_of(&format!(
            "#matrix tr[data-matrix-release=\"{release}\"] td[data-region=\"{region}\"]"
        ))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_chromium_the_release_matrix_counts_marks_trouble_filters_and_pages() {
    if skipped("in_chromium_the_release_matrix_counts_marks_trouble_filters_and_pages") {
        return;
    }
    let seeded = seeded().await;
    let browser = Browser::launch().await;
    sign_in_in_chromium(&browser, &seeded.base, READ).await;

    // charlie alone runs 1.0.0 in us-east-1; the canary moved one eu-west-1 tenant to
    // 1.1.0; broken is the one tenant in trouble, marked in words, not colour alone.
    assert_eq!(
        matrix_cell(&browser, "1.0.0", "us-east-1").await.as_deref(),
        Some("1")
    );
    assert_eq!(
        matrix_cell(&browser, "1.1.0", "eu-west-1").await.as_deref(),
        Some("1")
    );
    assert_eq!(
        matrix_cell(&browser, "1.1.0", "us-east-1").await.as_deref(),
        Some("0")
    );
    let marked = browser
        .text_of("#matrix td[data-trouble=\"1\"]")
        .await
        .expect("a cell marks the failed tenant");
    assert!(marked.contains("\u{26a0} 1 in trouble"), "{marked}");
    assert!(browser
        .find("#matrix td[data-region=\"us-east-1\"][data-trouble=\"1\"]")
        .await
        .is_none());
    assert!(browser.find("#matrix caption").await.is_some());
    let bar = browser
        .text_of("#state-bars div.bar[data-region=\"eu-west-1\"]")
        .await
        .expect("eu-west-1's bar");
    assert!(bar.contains("2 Active") && bar.contains("1 Failed"), "{bar}");
    // Beside the releases, the platform versions: every seeded tenant runs the one
    // built into tenantctl, so one row holds them all, trouble marked there too.
    let platform = |region: &'static str| {
        let browser = &browser;
        async move {
            browser
                .text_of(&format!(
                    "#platform-matrix tr[data-matrix-platform=\"built-in\"] td[data-region=\"{region}\"]"
                ))
                .await
                .unwrap_or_else(|| panic!("the platform matrix has no built-in cell for {region}"))
        }
    };
    let eu = platform("eu-west-1").await;
    assert!(
        eu.starts_with('3') && eu.contains("\u{26a0} 1 in trouble"),
        "{eu}"
    );
    assert_eq!(platform("us-east-1").await, "1");
    if std::env::var("TENANTCTL_SCREENSHOTS").is_ok_and(|dir| dir == "docs") {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard-overview.png");
        browser.screenshot(&docs).await;
    }

    // The form narrows the matrix, the bars and the list to one region.
    let option = browser
        .wait_for(
            "#filters select[name=\"region\"] option[value=\"us-east-1\"]",
            WAIT,
        )
        .await;
    browser.click(&option).await;
    let apply = browser.wait_for("#apply-filters", WAIT).await;
    browser.click(&apply).await;
    wait_for_text(&browser, "#fleet-selected", "1 of them match").await;
    assert!(browser.url().await.contains("region=us-east-1"));
    assert!(browser
        .find("#matrix td[data-region=\"eu-west-1\"]")
        .await
        .is_none());
    assert_eq!(
        matrix_cell(&browser, "1.0.0", "us-east-1").await.as_deref(),
        Some("1")
    );
    assert!(browser
        .find("#state-bars div.bar[data-region=\"eu-west-1\"]")
        .await
        .is_none());
    assert!(browser.find("tr[data-listed=\"charlie\"]").await.is_some());
    assert!(browser.find("tr[data-listed=\"alpha\"]").await.is_none());

    // Two tenants a page: the next page lists two others, and keeps the page size.
    browser.goto(&format!("{}/?limit=2", seeded.base)).await;
    browser.wait_for("#tenants", WAIT).await;
    let listed = |text: &str| -> Vec<&'static str> {
        ["alpha", "bravo", "broken", "charlie"]
            .into_iter()
            .filter(|id| text.split_whitespace().any(|word| word == *id))
            .collect()
    };
    let first = listed(&browser.text_of("#tenants tbody").await.unwrap());
    assert_eq!(first.len(), 2, "{first:?}");
    let next = browser.wait_for("#next-page", WAIT).await;
    browser.click(&next).await;
    browser.wait_for("#first-page", WAIT).await;
    assert!(browser.url().await.contains("limit=2"));
    let second = listed(&browser.text_of("#tenants tbody").await.unwrap());
    assert_eq!(second.len(), 2, "{second:?}");
    assert!(
        first.iter().all(|id| !second.contains(id)),
        "{first:?} then {second:?}"
    );

    // A search by id or by hostname finds the one tenant.
    browser.goto(&format!("{}/?q=broken", seeded.base)).await;
    browser.wait_for("tr[data-listed=\"broken\"]", WAIT).await;
    assert!(browser.find("tr[data-listed=\"alpha\"]").await.is_none());
    browser
        .goto(&format!("{}/?q=broken.example.com", seeded.base))
        .await;
    browser.wait_for("tr[data-listed=\"broken\"]", WAIT).await;
    browser
        .goto(&format!("{}/?q=nobody.example.com", seeded.base))
        .await;
    browser.wait_for("#no-tenants", WAIT).await;

    browser.quit().await;
    seeded.fleet.stop().await;
}
