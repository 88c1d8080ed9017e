//! The dashboard over HTTP: who may see it, how signing in works, and what the
//! pages show (escaped).

use reqwest::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;

use crate::api_support::{DEPLOY, READ};
use crate::common::fresh_store;
use crate::support::{
    hidden_csrf, login_form, page_client, post_login, seeded, serve, set_cookie, sign_in, HOSTILE, ROLLOUT,
};

async fn get(base: &str, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = page_client().get(format!("{base}{path}"));
    if let Some(c) = cookie {
        request = request.header("cookie", c);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn without_a_sign_in_every_page_sends_the_browser_to_the_login_form() {
    let base = serve(fresh_store().await.arc()).await;

    for path in ["/", "/tenants/alpha"] {
        let response = get(&base, path, None).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(response.headers()[LOCATION], "/login", "{path}");
    }
    let form = get(&base, "/login", None).await;
    assert_eq!(form.status(), StatusCode::OK);
    assert!(form.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = form.text().await.unwrap();
    assert!(
        html.contains("<form class=\"login\" method=\"post\" action=\"/login\">"),
        "{html}"
    );
}

#[tokio::test]
async fn an_unknown_token_gets_the_form_again_without_the_token_or_a_cookie() {
    let base = serve(fresh_store().await.arc()).await;

    let response = post_login(&base, "not-a-real-token-4711").await;

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(set_cookie(&response, "tenantctl_session"), None);
    let html = response.text().await.unwrap();
    assert!(html.contains("That token is not known here"), "{html}");
    assert!(
        !html.contains("not-a-real-token-4711"),
        "the token must never be echoed"
    );
}

#[tokio::test]
async fn a_read_token_signs_in_with_a_locked_down_cookie_that_opens_the_pages_only() {
    let base = serve(fresh_store().await.arc()).await;

    let response = post_login(&base, READ).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/");
    let set_cookie = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("tenantctl_session="))
        .expect("the session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(flag), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "plain HTTP gets no Secure flag: {set_cookie}"
    );
    assert!(
        !set_cookie.contains(READ),
        "the cookie holds no token: {set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap();

    let overview = get(&base, "/", Some(cookie)).await;
    assert_eq!(overview.status(), StatusCode::OK);
    assert_eq!(overview.headers()["cache-control"], "no-store");
    let html = overview.text().await.unwrap();
    assert!(
        html.contains("signed in as <b id=\"viewer\">viewer</b>"),
        "{html}"
    );
    assert!(html.contains("No tenants yet."), "{html}");

    // The JSON API stays bearer-only: a cookie cannot act for its holder there.
    let api = page_client()
        .get(format!("{base}/v1/tenants"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    let create = page_client()
        .post(format!("{base}/v1/tenants"))
        .header("cookie", cookie)
        .json(&crate::api_support::tenant_body("sneaky", "eu-west-1", "default"))
        .send()
        .await
        .unwrap();
    assert_eq!(create.status(), StatusCode::UNAUTHORIZED);

    // A bearer header opens the pages as well (for scripts and curl).
    let with_bearer = page_client()
        .get(format!("{base}/"))
        .bearer_auth(DEPLOY)
        .send()
        .await
        .unwrap();
    assert_eq!(with_bearer.status(), StatusCode::OK);
}

#[tokio::test]
async fn behind_an_https_proxy_the_cookie_is_secure_and_logout_clears_it() {
    let base = serve(fresh_store().await.arc()).await;

    let (form_cookie, csrf) = login_form(&base).await;
    let response = page_client()
        .post(format!("{base}/login"))
        .header("x-forwarded-proto", "https")
        .header("cookie", form_cookie)
        .form(&[("token", READ), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    let session = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("tenantctl_session="))
        .expect("the session cookie");
    assert!(session.contains("; Secure"), "{session}");
    let cookie = session.split(';').next().unwrap();
    let page = get(&base, "/", Some(cookie)).await.text().await.unwrap();
    let logout_token = hidden_csrf(&page).expect("the Log out form's token");

    let logout = page_client()
        .post(format!("{base}/logout"))
        .header("x-forwarded-proto", "https")
        .header("cookie", cookie)
        .form(&[("csrf", logout_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    assert_eq!(logout.headers()[LOCATION], "/login");
    let cleared = logout.headers()[SET_COOKIE].to_str().unwrap();
    assert!(
        cleared.starts_with("tenantctl_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
}

#[tokio::test]
async fn a_cookie_for_no_live_session_is_dropped_and_the_browser_signs_in_again() {
    let base = serve(fresh_store().await.arc()).await;
    for cookie in [
        // An id of the right shape that was never issued (or was revoked).
        "tenantctl_session=q9Y2wJm0Xr4T1bVn8LzK3eHcPa6sDfGu7iOkE5yQ1Zt",
        // A cookie of the old kind, which carried a token: never a session.
        "tenantctl_session=cmV2b2tlZC10b2tlbg",
    ] {
        let response = get(&base, "/", Some(cookie)).await;

        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{cookie}");
        assert_eq!(response.headers()[LOCATION], "/login");
        assert!(response.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pages_show_fleet_releases_rollout_and_trouble_and_escape_the_error() {
    let seeded = seeded().await;
    let cookie = sign_in(&seeded.base, READ).await;

    let html = get(&seeded.base, "/", Some(&cookie)).await.text().await.unwrap();

    assert!(html.contains("<meta http-equiv=\"refresh\" content=\"10\">"));
    assert!(html.contains("<span id=\"fleet-total\">4</span>"), "{html}");
    assert!(html.contains("<tr data-region=\"us-east-1\">"), "{html}");
    // alpha moved in the canary; bravo and charlie wait.
    assert!(
        html.contains("<tr data-release=\"1.1.0\"><td>1.1.0</td><td class=\"n\">1</td>"),
        "{html}"
    );
    assert!(
        html.contains("<tr data-release=\"1.0.0\"><td>1.0.0</td><td class=\"n\">2</td>"),
        "{html}"
    );
    // No tenant has a platform version deployed: all four run the built-in one.
    assert!(
        html.contains("<tr data-platform=\"built-in\"><td>built-in</td><td class=\"n\">4</td>"),
        "{html}"
    );
    assert!(html.contains("<tr data-matrix-platform=\"built-in\">"), "{html}");
    assert!(html.contains(&format!("data-rollout=\"{ROLLOUT}\"")), "{html}");
    assert!(html.contains("data-phase=\"running\""), "{html}");
    assert!(
        html.contains(&format!("tenantctl rollout approve {ROLLOUT}")),
        "{html}"
    );
    assert!(
        html.contains("<td data-status=\"succeeded\">succeeded</td><td class=\"n\">1</td>"),
        "{html}"
    );
    assert!(html.contains("<td data-status=\"awaiting approval\">"), "{html}");
    assert!(html.contains("<a href=\"/tenants/broken\">broken</a>"), "{html}");
    assert!(
        !html.contains("data-tenant=\"alpha\""),
        "a healthy tenant is not trouble"
    );
    // A single quote needs no escape: every attribute value is double-quoted.
    assert!(html.contains("&lt;img src=x onerror=&quot;document.title='pwned'&quot;&gt;"));
    assert!(html.contains("&lt;script&gt;") && html.contains("&amp; &quot;quotes&quot;"));
    assert!(!html.contains(HOSTILE) && !html.contains("<script>") && !html.contains("<img"));

    let on_version = get(&seeded.base, "/?platform=2026.12.1", Some(&cookie)).await;
    let on_version = on_version.text().await.unwrap();
    assert!(on_version.contains("id=\"no-tenants\""), "{on_version}");
    let built_in = get(&seeded.base, "/?platform=built-in", Some(&cookie)).await;
    let built_in = built_in.text().await.unwrap();
    assert!(built_in.contains("data-listed=\"broken\""), "{built_in}");
    assert!(
        built_in.contains("<option value=\"built-in\" selected>built-in</option>"),
        "{built_in}"
    );

    let tenant = get(&seeded.base, "/tenants/broken", Some(&cookie)).await;
    assert_eq!(tenant.status(), StatusCode::OK);
    let html = tenant.text().await.unwrap();
    assert!(html.contains("<b id=\"tenant-state\">Failed</b>"), "{html}");
    assert!(
        html.contains("StepFailed"),
        "the history shows the failure: {html}"
    );
    assert!(!html.contains("<script>") && !html.contains("<img"));

    let missing = get(&seeded.base, "/tenants/nobody", Some(&cookie)).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing
        .text()
        .await
        .unwrap()
        .contains("tenant nobody does not exist"));
    let invalid = get(&seeded.base, "/tenants/%3Cb%3E", Some(&cookie)).await;
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
    assert!(!invalid.text().await.unwrap().contains("<b>"));
    seeded.fleet.stop().await;
}

#[tokio::test]
async fn a_filter_the_overview_cannot_read_is_refused_with_what_to_do() {
    let base = serve(fresh_store().await.arc()).await;
    let cookie = sign_in(&base, READ).await;

    for (query, says) in [
        ("state=upgrading", "filter state"),
        ("region=Not%20A%20Region", "region"),
        ("limit=5000", "from 1 to 100"),
        ("platform=v2", "or `built-in`"),
        ("q=%3Cb%3E", "neither a tenant id nor a hostname"),
    ] {
        let page = get(&base, &format!("/?{query}"), Some(&cookie)).await;
        assert_eq!(page.status(), StatusCode::BAD_REQUEST, "{query}");
        let html = page.text().await.unwrap();
        assert!(html.contains(says), "{query}: {html}");
        assert!(!html.contains("<b>"), "{query}: {html}");
    }
    let fine = get(&base, "/?state=&region=&q=", Some(&cookie)).await;
    assert_eq!(fine.status(), StatusCode::OK, "an empty field means any");
}

#[tokio::test]
async fn tenants_in_the_middle_of_steps_are_trouble_when_rolling_back_or_retrying_an_error() {
    use chrono::Utc;
    use tenant_orchestrator::machine::TenantEvent;
    use tenant_orchestrator::record::{Actor, Cause, Transition};
    use tenant_orchestrator::store::{TenantStore, WriteGuard};

    let tenants: Vec<(String, &str)> = ["calm", "retrying", "reverting", "resting"]
        .into_iter()
        .map(|id| (id.to_owned(), "eu-west-1"))
        .collect();
    let fleet = crate::rollout_support::Fleet::new(&tenants, "1.0.0").await;
    let store = fleet.store.clone();
    let save = |record: &tenant_orchestrator::record::TenantRecord, from, event| {
        let store = store.clone();
        let record = record.clone();
        async move {
            let transition = Transition::new(&from, Cause::Event(event), Actor("test".into()));
            store
                .save(&record, WriteGuard::Version, Some(transition))
                .await
                .unwrap()
        }
    };
    // calm, retrying and reverting begin an upgrade; resting stays Active.
    for id in ["calm", "retrying", "reverting"] {
        let mut record = store.load(&crate::common::tenant_id(id)).await.unwrap();
        let from = record.state.clone();
        let upgrade = TenantEvent::Upgrade {
            release: crate::common::release("1.1.0"),
        };
        record.enter(from.apply(&upgrade).unwrap(), Utc::now());
        let mut record = save(&record, from, upgrade).await;
        match id {
            // Its step failed once and is tried again.
            "retrying" => {
                record.last_error = Some("the chart's pods answered 503".into());
                store.save(&record, WriteGuard::Version, None).await.unwrap();
            }
            "reverting" => {
                // A step that fails after the deploy began rolls the tenant back.
                let failed = TenantEvent::StepFailed {
                    reason: "verify answered 503".into(),
                };
                let from = loop {
                    let from = record.state.clone();
                    let next = from.apply(&failed).unwrap();
                    if next.name() == "RollingBack" {
                        record.enter(next, Utc::now());
                        break from;
                    }
                    record.enter(from.apply(&TenantEvent::StepSucceeded).unwrap(), Utc::now());
                };
                save(&record, from, failed).await;
            }
            _ => {}
        }
    }
    let base = serve(store.clone()).await;
    let cookie = sign_in(&base, READ).await;

    let html = get(&base, "/", Some(&cookie)).await.text().await.unwrap();

    // The trouble table marks its rows with `data-tenant`; the listing, the counts
    // and the table show each tenant as its item says, not as its listing entry.
    assert!(html.contains("<tr data-tenant=\"retrying\">"), "{html}");
    assert!(html.contains("<tr data-tenant=\"reverting\">"), "{html}");
    assert!(html.contains("the chart's pods answered 503"), "{html}");
    for calm in ["calm", "resting"] {
        assert!(
            !html.contains(&format!("<tr data-tenant=\"{calm}\">")),
            "{calm} is not in trouble: {html}"
        );
    }
    assert!(
        html.contains("<td class=\"n\" data-state=\"Upgrading\">2</td>"),
        "{html}"
    );
    assert!(
        html.contains("<td class=\"n bad\" data-state=\"RollingBack\">1</td>"),
        "{html}"
    );
    let calm = "<td><a href=\"/tenants/calm\">calm</a></td><td>eu-west-1</td><td>default</td><td>Upgrading/";
    assert!(html.contains(calm), "{html}");
}
