//! The audit trail (`GET /v1/audit`): refused and granted rollout and fleet-wide
//! actions, with the principal, how it was identified and why; admin on the whole
//! fleet only; paged newest first; bad bounds answered 400.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::api_support::{
    spawn, spawn_with_tenants, TestApi, ADMIN, DEPLOY, EU_ADMIN, EU_DEPLOYER, EU_TEAM, READ,
};

fn entries(body: &Value) -> &Vec<Value> {
    body["items"].as_array().expect("a page of entries")
}

/// eu-one in eu-west-1 and us-one in us-east-1, Active on 1.0.0; rollout `r-us`
/// (us-east-1) started by `pipeline`, `r-eu` (eu-west-1) by `eu-team`.
async fn two_rollouts() -> TestApi {
    let api = spawn_with_tenants(&[("eu-one", "eu-west-1"), ("us-one", "us-east-1")]).await;
    for (token, id, region) in [(DEPLOY, "r-us", "us-east-1"), (EU_TEAM, "r-eu", "eu-west-1")] {
        let started = api.start_rollout(token, id, &[region]).await;
        assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    }
    api
}

#[tokio::test]
async fn refusals_and_grants_of_rollout_and_fleet_actions_are_in_the_audit_trail() {
    let api = two_rollouts().await;

    let approve = api
        .call(Method::POST, "/v1/rollouts/r-us/approve", Some(EU_DEPLOYER), None)
        .await;
    assert_eq!(approve.status, StatusCode::FORBIDDEN, "{}", approve.body);
    let pause = api
        .call(Method::POST, "/v1/rollouts/r-eu/pause", Some(EU_TEAM), None)
        .await;
    assert_eq!(pause.status, StatusCode::OK, "{}", pause.body);
    let policy = api
        .call(
            Method::PUT,
            "/v1/policy/defaults/test/eu-west-1",
            Some(EU_ADMIN),
            Some(json!({"release": "1.1.0"})),
        )
        .await;
    assert_eq!(policy.status, StatusCode::FORBIDDEN, "{}", policy.body);

    let refused = api
        .call(Method::GET, "/v1/audit?outcome=refused", Some(ADMIN), None)
        .await;
    assert_eq!(refused.status, StatusCode::OK, "{}", refused.body);
    let refused = entries(&refused.body);
    assert_eq!(refused.len(), 2, "{refused:?}");
    // Newest first: the policy change came last.
    assert_eq!(refused[0]["principal"], "eu-admin");
    assert_eq!(refused[0]["identified_by"], "token eu-admin");
    assert_eq!(refused[0]["scope"], "admin");
    assert_eq!(refused[0]["target"], "policy/defaults/test/eu-west-1");
    assert_eq!(refused[0]["outcome"], "refused");
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .contains("acts on the whole fleet"),
        "{}",
        refused[0]
    );
    assert_eq!(refused[1]["principal"], "eu-deployer");
    assert_eq!(refused[1]["identified_by"], "token eu-deployer");
    assert_eq!(refused[1]["scope"], "deploy");
    assert_eq!(refused[1]["action"], "approve rollout r-us");
    assert_eq!(refused[1]["target"], "rollout/r-us");
    assert!(
        refused[1]["reason"]
            .as_str()
            .unwrap()
            .contains("deploy on regions [eu-west-1]"),
        "the reason names the bindings held: {}",
        refused[1]
    );

    let granted = api
        .call(
            Method::GET,
            "/v1/audit?outcome=granted&principal=eu-team",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.body);
    let granted = entries(&granted.body);
    let actions: Vec<&str> = granted.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        ["pause rollout r-eu", "start this rollout"],
        "{granted:?}"
    );
    assert_eq!(granted[0]["outcome"], "granted");
    assert_eq!(granted[0]["target"], "rollout/r-eu");
    assert!(granted.iter().all(|e| e["principal"] == "eu-team"));

    // An unrestricted deployer's grants are recorded too, without a check of the selector.
    let by_pipeline = api
        .call(Method::GET, "/v1/audit?principal=pipeline", Some(ADMIN), None)
        .await;
    assert_eq!(entries(&by_pipeline.body).len(), 1, "{}", by_pipeline.body);
    assert_eq!(entries(&by_pipeline.body)[0]["target"], "rollout/r-us");
}

#[tokio::test]
async fn changes_refused_for_too_low_a_scope_are_in_the_audit_trail_and_reads_are_not() {
    let api = spawn().await;
    let refusals = [
        (Method::POST, "/v1/rollouts/r-x/abort", READ, None),
        (
            Method::PUT,
            "/v1/policy/defaults/test/eu-west-1",
            DEPLOY,
            Some(json!({"release": "1.1.0"})),
        ),
        (Method::GET, "/v1/audit", DEPLOY, None),
    ];
    for (method, path, token, body) in refusals {
        let refused = api.call(method, path, Some(token), body).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}: {}", refused.body);
    }
    let trail = api
        .call(Method::GET, "/v1/audit?outcome=refused", Some(ADMIN), None)
        .await;
    let mut seen: Vec<(&str, &str, &str)> = entries(&trail.body)
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["target"].as_str().unwrap(),
                e["scope"].as_str().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("POST /v1/rollouts/r-x/abort", "rollouts/r-x/abort", "deploy"),
            (
                "PUT /v1/policy/defaults/test/eu-west-1",
                "policy/defaults/test/eu-west-1",
                "admin"
            ),
        ],
        "the refused read left out: {}",
        trail.body
    );
    for entry in entries(&trail.body) {
        let reason = entry["reason"].as_str().unwrap();
        assert!(reason.contains("; this request needs scope"), "{reason}");
    }
}

#[tokio::test]
async fn only_an_admin_of_the_whole_fleet_reads_the_audit_trail() {
    let api = spawn().await;
    for token in [READ, DEPLOY, EU_ADMIN] {
        let refused = api.call(Method::GET, "/v1/audit", Some(token), None).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    }
    let none = api.call(Method::GET, "/v1/audit", None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    let empty = api.call(Method::GET, "/v1/audit", Some(ADMIN), None).await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.body);
    assert!(entries(&empty.body).is_empty());
    // Reading the trail is not itself an entry in it.
    let again = api.call(Method::GET, "/v1/audit", Some(ADMIN), None).await;
    assert!(entries(&again.body).is_empty(), "{}", again.body);
}

#[tokio::test]
async fn the_audit_trail_pages_newest_first_without_gaps_or_repeats() {
    let api = two_rollouts().await;
    for op in ["pause", "resume", "pause", "resume"] {
        let done = api
            .call(
                Method::POST,
                &format!("/v1/rollouts/r-eu/{op}"),
                Some(EU_TEAM),
                None,
            )
            .await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.body);
        let refused = api
            .call(
                Method::POST,
                &format!("/v1/rollouts/r-us/{op}"),
                Some(EU_DEPLOYER),
                None,
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    }

    let whole = api.call(Method::GET, "/v1/audit", Some(ADMIN), None).await;
    let whole = entries(&whole.body).clone();
    assert_eq!(whole.len(), 10, "2 starts, 4 grants, 4 refusals: {whole:?}");
    let times: Vec<&str> = whole.iter().map(|e| e["at"].as_str().unwrap()).collect();
    let mut newest_first = times.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, newest_first);

    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/audit?limit=3&cursor={c}"),
            None => "/v1/audit?limit=3".to_owned(),
        };
        let page = api.call(Method::GET, &path, Some(ADMIN), None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(entries(&page.body).len() <= 3);
        paged.extend(entries(&page.body).iter().cloned());
        pages += 1;
        match page.body["next_token"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(paged, whole);
    assert_eq!(pages, 4);

    // A cursor is bound to its filters.
    let first = api
        .call(Method::GET, "/v1/audit?limit=3", Some(ADMIN), None)
        .await;
    let token = first.body["next_token"].as_str().unwrap().to_owned();
    let other = api
        .call(
            Method::GET,
            &format!("/v1/audit?limit=3&outcome=refused&cursor={token}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST, "{}", other.body);
}

#[tokio::test]
async fn bad_bounds_are_refused_saying_what_is_accepted() {
    let api = spawn().await;
    let cases = [
        (
            "/v1/audit?since=yesterday",
            "since \"yesterday\" is neither a duration before now",
        ),
        ("/v1/audit?until=soon", "until \"soon\" is neither"),
        ("/v1/audit?since=1h&until=2h", "is after until"),
        ("/v1/audit?since=2000d", "read at most 1100 days"),
        (
            "/v1/audit?outcome=denied",
            "outcome \"denied\" is not one of refused, granted",
        ),
        ("/v1/audit?limit=0", "use 1-1000"),
        ("/v1/audit?cursor=abc", "start from the first page"),
    ];
    for (path, says) in cases {
        let bad = api.call(Method::GET, path, Some(ADMIN), None).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{path}: {}", bad.body);
        let message = bad.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{path}: {message}");
    }
}
