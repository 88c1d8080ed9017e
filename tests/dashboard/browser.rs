//! The dashboard as a person sees it: headless Chromium signs in through the form,
//! sees the fleet, the rollout waiting at its approval gate and the failed tenant,
//! and follows the link to the tenant's history; an operator with a deploy token pauses
//! and aborts the rollout with the overview's buttons. Screenshots are left in the
//! target's tmp directory.

use std::path::PathBuf;
use std::time::Duration;

use tenant_orchestrator::record::Phase;

use crate::api_support::{DEPLOY, READ};
use crate::browser_support::{skipped, Browser};
use crate::support::{seeded, ROLLOUT};

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
async fn wait_for_text(browser: &Browser, css: &str, text: &str) -> String {
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
    browser.goto(&format!("{}/login", seeded.base)).await;
    let field = browser.wait_for("input#token", WAIT).await;
    browser.type_into(&field, DEPLOY).await;
    let submit = browser.wait_for("button#sign-in", WAIT).await;
    browser.click(&submit).await;

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
