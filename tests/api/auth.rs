//! The auth matrix: every endpoint × no token, an unknown token, each scope. Refused
//! calls (401/403) must leave the tenant, its history and the policy unchanged.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::api_support::{spawn, tenant_body, TestApi, ADMIN, DEPLOY, READ};

#[derive(Clone, Copy, PartialEq, PartialOrd, Debug)]
enum Needs {
    Read,
    Deploy,
    Admin,
}

fn endpoints() -> Vec<(Method, &'static str, Option<Value>, Needs)> {
    vec![
        (Method::GET, "/v1/tenants", None, Needs::Read),
        (
            Method::POST,
            "/v1/tenants",
            Some(tenant_body("newcomer", "eu-west-1", "default")),
            Needs::Deploy,
        ),
        (Method::GET, "/v1/tenants/acme", None, Needs::Read),
        (
            Method::PATCH,
            "/v1/tenants/acme",
            Some(json!({"pinned_release": "1.0.0"})),
            Needs::Admin,
        ),
        (Method::GET, "/v1/tenants/acme/history", None, Needs::Read),
        (
            Method::POST,
            "/v1/tenants/acme/upgrade",
            Some(json!({"release": "1.1.0"})),
            Needs::Deploy,
        ),
        (Method::POST, "/v1/tenants/acme/retry", None, Needs::Deploy),
        (Method::POST, "/v1/tenants/acme/rollback", None, Needs::Deploy),
        (
            Method::POST,
            "/v1/tenants/acme/restore",
            Some(json!({"snapshot": "snap-1"})),
            Needs::Admin,
        ),
        (Method::POST, "/v1/tenants/acme/deprovision", None, Needs::Admin),
        (Method::GET, "/v1/policy", None, Needs::Read),
        (
            Method::PUT,
            "/v1/policy/defaults/test/eu-west-1",
            Some(json!({"release": "1.2.0"})),
            Needs::Admin,
        ),
        (
            Method::DELETE,
            "/v1/policy/defaults/test/eu-west-1",
            None,
            Needs::Admin,
        ),
        (
            Method::PUT,
            "/v1/policy/groups/test/canary",
            Some(json!({"release": "1.2.0"})),
            Needs::Admin,
        ),
        (
            Method::DELETE,
            "/v1/policy/groups/test/canary",
            None,
            Needs::Admin,
        ),
        (Method::GET, "/v1/rollouts", None, Needs::Read),
        (
            Method::POST,
            "/v1/rollouts/plan",
            Some(json!({"release": "1.1.0"})),
            Needs::Read,
        ),
        (
            Method::POST,
            "/v1/rollouts",
            Some(json!({"id": "r-new", "spec": {"release": "1.1.0", "selector": {"tenants": ["newcomer"]}}})),
            Needs::Deploy,
        ),
        (Method::GET, "/v1/rollouts/r-auth", None, Needs::Read),
        (Method::POST, "/v1/rollouts/r-auth/pause", None, Needs::Deploy),
        (Method::POST, "/v1/rollouts/r-auth/resume", None, Needs::Deploy),
        (Method::POST, "/v1/rollouts/r-auth/approve", None, Needs::Deploy),
        (Method::POST, "/v1/rollouts/r-auth/retry", None, Needs::Deploy),
        (Method::POST, "/v1/rollouts/r-auth/abort", None, Needs::Deploy),
        (Method::GET, "/v1/fleet/summary", None, Needs::Read),
        (
            Method::GET,
            "/v1/reports/deployments?from=2026-01-01&to=2026-01-31",
            None,
            Needs::Read,
        ),
    ]
}

/// Everything a refused call must not change.
async fn snapshot(api: &TestApi) -> (Value, Value, Value, StatusCode, Value, Value) {
    let tenant = api.get("/v1/tenants/acme").await.body;
    let history = api.get("/v1/tenants/acme/history").await.body;
    let policy = api.get("/v1/policy").await.body;
    let newcomer = api.get("/v1/tenants/newcomer").await.status;
    let rollouts = api.get("/v1/rollouts?all=true").await.body;
    let rollout = api.get("/v1/rollouts/r-auth").await.body;
    (tenant, history, policy, newcomer, rollouts, rollout)
}

#[tokio::test]
async fn every_endpoint_checks_the_token_and_its_scope_before_acting() {
    let api = spawn().await;
    api.create_tenant("acme", "eu-west-1", "default").await;
    api.settle().await;
    api.call(
        Method::PUT,
        "/v1/policy/groups/test/canary",
        Some(ADMIN),
        Some(json!({"release": "1.0.0"})),
    )
    .await;
    // A rollout that stays at its first wave (no controller runs here).
    let started = api
        .call(
            Method::POST,
            "/v1/rollouts",
            Some(DEPLOY),
            Some(json!({"id": "r-auth", "spec": {"release": "1.1.0"}})),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let before = snapshot(&api).await;

    for (method, path, body, needs) in endpoints() {
        let callers: [(&str, Option<&str>, Option<Needs>); 5] = [
            ("no token", None, None),
            ("unknown token", Some("not-a-known-token"), None),
            ("read", Some(READ), Some(Needs::Read)),
            ("deploy", Some(DEPLOY), Some(Needs::Deploy)),
            ("admin", Some(ADMIN), Some(Needs::Admin)),
        ];
        for (who, token, holds) in callers {
            if holds.is_some_and(|h| h >= needs) {
                continue; // allowed calls act; checked below, one by one
            }
            let reply = api.call(method.clone(), path, token, body.clone()).await;
            let expected = if holds.is_none() {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(reply.status, expected, "{method} {path} as {who}: {}", reply.body);
            if expected == StatusCode::UNAUTHORIZED {
                assert_eq!(reply.headers["www-authenticate"], "Bearer");
                assert_eq!(reply.code(), "unauthenticated");
            } else {
                assert_eq!(reply.code(), "forbidden");
            }
            assert_eq!(
                snapshot(&api).await,
                before,
                "{method} {path} as {who} changed state"
            );
        }
    }

    // Each scope is enough for what it names (and any larger scope is too).
    for (method, path, body, needs) in endpoints() {
        let token = match needs {
            Needs::Read => READ,
            Needs::Deploy => DEPLOY,
            Needs::Admin => ADMIN,
        };
        let reply = api.call(method.clone(), path, Some(token), body.clone()).await;
        assert!(
            !matches!(reply.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
                && reply.status.as_u16() < 500,
            "{method} {path} with scope {needs:?}: {} {}",
            reply.status,
            reply.body
        );
    }
    let history = api.get("/v1/tenants/acme/history").await;
    let actors: Vec<&str> = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert!(
        actors.contains(&"api:ops"),
        "the token's name is the actor: {actors:?}"
    );
}

#[tokio::test]
async fn health_is_open_and_a_malformed_authorization_is_refused() {
    let api = spawn().await;
    assert_eq!(
        api.call(Method::GET, "/healthz", None, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        api.call(Method::GET, "/readyz", None, None).await.status,
        StatusCode::OK
    );
    let basic = api
        .send(
            Method::GET,
            "/v1/tenants",
            None,
            None,
            &[("authorization", "Basic dXNlcjpwYXNz")],
        )
        .await;
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
    assert!(
        !basic.body.to_string().contains("dXNlcjpwYXNz"),
        "never echoes credentials"
    );
}
