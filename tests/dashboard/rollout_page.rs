//! A rollout's page over HTTP: its timeline and tables for any reader, its actions
//! behind confirmations for a deploy session only. Approving from it goes through
//! the same command as the overview's button (recorded as `dashboard:<token name>`)
//! and comes back to the page; a read session sees no forms and its forged post is
//! refused and changes nothing.

use reqwest::header::LOCATION;
use reqwest::StatusCode;

use crate::actions::{dashboard_entries, form_token, page, post, unchanged};
use crate::api_support::{DEPLOY, EU_DEPLOYER, EU_TEAM, READ};
use crate::support::{page_client, seeded, sign_in, ROLLOUT};

#[tokio::test]
async fn a_rollouts_page_draws_its_waves_and_tenants_and_lists_the_same_facts() {
    let seeded = seeded().await;
    let base = &seeded.base;
    let cookie = sign_in(base, READ).await;

    let html = page(base, &format!("/rollouts/{ROLLOUT}"), &cookie).await;

    assert!(html.contains("<title>Rollout r-dashboard</title>"), "{html}");
    assert!(html.contains("id=\"timeline-chart\" role=\"img\""), "{html}");
    // The canary deployed; wave 1 waits at its gate, drawn and listed as such.
    assert!(html.contains("<g class=\"wave\" data-wave=\"1\" data-status=\"awaiting approval\">"));
    assert!(html.contains("data-segment=\"approval\""), "{html}");
    assert!(html.contains("data-segment=\"deploying\""), "{html}");
    assert!(html.contains("<tr data-member=\"alpha\"") || html.contains("<tr data-member=\"bravo\""));
    assert!(html.contains("data-outcome=\"succeeded\""), "{html}");
    assert!(html.contains("data-outcome=\"pending\""), "{html}");
    assert!(html.contains("<caption class=\"muted\">The timeline above, as a table.</caption>"));
    assert!(!html.contains("<script"), "no script on the page");
    // A reader gets no forms.
    assert!(!html.contains("id=\"actions\""), "{html}");
    assert!(form_token(&html, "approve").is_none());

    // The overview links to it.
    let overview = page(base, "/", &cookie).await;
    assert!(overview.contains(&format!("<a href=\"/rollouts/{ROLLOUT}\">{ROLLOUT}</a>")));
    seeded.fleet.stop().await;
}

#[tokio::test]
async fn a_rollout_that_does_not_exist_is_a_404_page_and_a_bad_id_a_400() {
    let seeded = seeded().await;
    let base = &seeded.base;
    let cookie = sign_in(base, READ).await;
    let get = |path: String| {
        page_client()
            .get(format!("{base}{path}"))
            .header("cookie", cookie.clone())
            .send()
    };
    let missing = get("/rollouts/r-nowhere".into()).await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.text().await.unwrap().contains("id=\"page-error\""));
    let bad = get("/rollouts/%3Cb%3Eid%3C%2Fb%3E".into()).await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let text = bad.text().await.unwrap();
    assert!(!text.contains("<b>id"), "{text}");
    seeded.fleet.stop().await;
}

#[tokio::test]
async fn a_deploy_session_approves_from_the_rollouts_page_behind_a_confirmation() {
    let seeded = seeded().await;
    let base = &seeded.base;
    let cookie = sign_in(base, DEPLOY).await;
    let path = format!("/rollouts/{ROLLOUT}");
    let html = page(base, &path, &cookie).await;
    assert!(
        html.contains(
            "<details class=\"confirm\" data-action=\"approve\"><summary>Approve wave 1\u{2026}</summary>"
        ),
        "{html}"
    );
    assert!(html.contains(">Confirm: Approve wave 1</button>"), "{html}");
    assert!(html.contains("data-action=\"pause\""));
    assert!(
        !html.contains("data-action=\"resume\""),
        "a running rollout has no Resume"
    );
    let token = form_token(&html, "approve").expect("the approve form");

    let response = post(
        base,
        "approve",
        &cookie,
        &[("csrf", &token), ("back", "rollout")],
        &[],
    )
    .await;

    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()[LOCATION],
        format!("{path}?done=approve").as_str()
    );
    let record = seeded.fleet.rollout(ROLLOUT).await;
    assert_eq!(record.waves[1].approved_by.as_deref(), Some("dashboard:pipeline"));
    assert!(dashboard_entries(&record)
        .iter()
        .any(|e| e == "dashboard:pipeline: wave 1 approved"));
    let after = page(base, &format!("{path}?done=approve"), &cookie).await;
    assert!(
        after.contains(&format!("id=\"action-done\">Rollout {ROLLOUT} approved")),
        "{after}"
    );
    assert!(
        after.contains("<td class=\"actor\">dashboard:pipeline</td><td>wave 1 approved</td>"),
        "{after}"
    );
    seeded.fleet.stop().await;
}

#[tokio::test]
async fn a_read_sessions_forged_approval_is_refused_and_changes_nothing() {
    let seeded = seeded().await;
    let base = &seeded.base;
    let deploy = sign_in(base, DEPLOY).await;
    let reader = sign_in(base, READ).await;
    // Even with a deploy session's valid token, the read session may not act.
    let html = page(base, &format!("/rollouts/{ROLLOUT}"), &deploy).await;
    let token = form_token(&html, "approve").expect("the deploy session's form");

    let forged = post(
        base,
        "approve",
        &reader,
        &[("csrf", &token), ("back", "rollout")],
        &[],
    )
    .await;

    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    unchanged(&seeded.fleet, "a read session's approval").await;
    seeded.fleet.stop().await;
}

#[tokio::test]
async fn a_rollout_reaching_regions_outside_a_principals_bindings_is_hidden_or_shown_without_actions() {
    let seeded = seeded().await;
    let base = &seeded.base;
    let path = format!("/rollouts/{ROLLOUT}");
    let get = |token: &'static str| {
        page_client()
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
    };

    // The rollout reaches eu-west-1 and us-east-1: one region's team may not see it.
    let hidden = get(EU_TEAM).await.unwrap();
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
    let text = hidden.text().await.unwrap();
    assert!(!text.contains("timeline-chart"), "{text}");
    let shown = get(READ).await.unwrap();
    assert_eq!(shown.status(), StatusCode::OK);
    // Read on the fleet but deploy on eu-west-1 only: the page, without actions.
    let cookie = sign_in(base, EU_DEPLOYER).await;
    let html = page(base, &path, &cookie).await;
    assert!(html.contains("id=\"timeline-chart\""), "{html}");
    assert!(!html.contains("id=\"actions\""), "{html}");
    assert!(form_token(&html, "approve").is_none());
    seeded.fleet.stop().await;
}
