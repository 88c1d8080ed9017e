//! What the API refuses before acting: bodies that are not JSON objects, and values
//! that could never work (an invented region, a release no image tag can carry, a
//! hostname with stray dots).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::api_support::{spawn, tenant_body, Reply, TestApi, ADMIN, DEPLOY, READ};

fn assert_object_expected(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(reply.code(), "invalid_request");
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("the body is a JSON array; send a JSON object"),
        "{message}"
    );
}

fn assert_invalid(reply: &Reply, says: &str) {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(reply.code(), "invalid_request");
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(message.contains(says), "{message}");
}

async fn call(api: &TestApi, method: Method, path: &str, token: &str, body: Value) -> Reply {
    api.call(method, path, Some(token), Some(body)).await
}

#[tokio::test]
async fn json_arrays_are_refused_as_bodies_and_change_nothing() {
    let api = spawn().await;
    api.create_tenant("acme", "eu-west-1", "default").await;
    api.settle().await;
    let before = api.get("/v1/tenants/acme").await.body;

    let positional_tenant = json!([
        "globex",
        "eu-west-1",
        "test",
        "default",
        "small",
        ["globex.example.com"],
        "1.0.0",
        false,
        null
    ]);
    assert_object_expected(&call(&api, Method::POST, "/v1/tenants", DEPLOY, positional_tenant).await);
    assert_eq!(api.get("/v1/tenants/globex").await.status, StatusCode::NOT_FOUND);

    let cases = [
        (Method::PATCH, "/v1/tenants/acme", ADMIN, json!([null, null])),
        (Method::POST, "/v1/tenants/acme/upgrade", DEPLOY, json!(["1.1.0"])),
        (
            Method::POST,
            "/v1/tenants/acme/restore",
            ADMIN,
            json!(["acme-snapshot-1"]),
        ),
        (
            Method::PUT,
            "/v1/policy/defaults/test/eu-west-1",
            ADMIN,
            json!(["1.0.0"]),
        ),
        (
            Method::PUT,
            "/v1/policy/groups/test/canary",
            ADMIN,
            json!(["1.0.0"]),
        ),
        (
            Method::POST,
            "/v1/rollouts",
            DEPLOY,
            json!(["r-array", {"release": "1.1.0"}]),
        ),
        (Method::POST, "/v1/rollouts/plan", READ, json!(["1.1.0"])),
    ];
    for (method, path, token, body) in cases {
        let reply = call(&api, method.clone(), path, token, body).await;
        assert_object_expected(&reply);
    }
    let other_kinds = [
        (json!("1.1.0"), "string"),
        (json!(7), "number"),
        (json!(null), "null"),
    ];
    for (body, kind) in other_kinds {
        let reply = call(&api, Method::POST, "/v1/tenants/acme/upgrade", DEPLOY, body).await;
        assert_invalid(&reply, &format!("the body is a JSON {kind}; send a JSON object"));
    }

    let after = api.get("/v1/tenants/acme").await.body;
    assert_eq!(after["version"], before["version"], "the tenant was not touched");
    assert_eq!(after["state"], "Active");
    let policy = api.get("/v1/policy").await.body;
    assert!(
        !policy.to_string().contains("1.0.0"),
        "policy unchanged: {policy}"
    );
    assert_eq!(api.get("/v1/rollouts?all=true").await.body["items"], json!([]));
}

#[tokio::test]
async fn an_invented_region_is_refused_everywhere() {
    let api = spawn().await;
    let created = call(
        &api,
        Method::POST,
        "/v1/tenants",
        DEPLOY,
        tenant_body("acme", "zz-nowhere-9", "default"),
    )
    .await;
    assert_invalid(&created, "invalid region \"zz-nowhere-9\": not an AWS region");
    assert_eq!(api.get("/v1/tenants/acme").await.status, StatusCode::NOT_FOUND);

    assert_invalid(
        &api.get("/v1/tenants?region=zz-nowhere-9").await,
        "not an AWS region",
    );
    let policy = call(
        &api,
        Method::PUT,
        "/v1/policy/defaults/test/zz-nowhere-9",
        ADMIN,
        json!({"release": "1.0.0"}),
    )
    .await;
    assert_invalid(&policy, "not an AWS region");
    let plan = json!({"release": "1.1.0", "strategy": {"region_order": ["eu-west-1", "zz-nowhere-9"]}});
    assert_invalid(
        &call(&api, Method::POST, "/v1/rollouts/plan", READ, plan.clone()).await,
        "not an AWS region",
    );
    let start = call(
        &api,
        Method::POST,
        "/v1/rollouts",
        DEPLOY,
        json!({"id": "r-nowhere", "spec": plan}),
    )
    .await;
    assert_invalid(&start, "not an AWS region");

    use tenant_orchestrator::store::TenantStore;
    assert!(
        api.store.regions().await.unwrap().is_empty(),
        "no region was registered"
    );
}

#[tokio::test]
async fn releases_must_fit_an_image_tag_and_hostnames_take_one_trailing_dot() {
    let api = spawn().await;
    let mut body = tenant_body("acme", "eu-west-1", "default");
    body["release"] = json!(format!("1.0.0-{}", "a".repeat(123)));
    assert_invalid(
        &call(&api, Method::POST, "/v1/tenants", DEPLOY, body).await,
        "at most 128",
    );
    let mut body = tenant_body("acme", "eu-west-1", "default");
    body["release"] = json!("1.0.0+build.5");
    assert_invalid(
        &call(&api, Method::POST, "/v1/tenants", DEPLOY, body).await,
        "build metadata",
    );
    let mut body = tenant_body("acme", "eu-west-1", "default");
    body["hostnames"] = json!(["acme.example.com..."]);
    assert_invalid(
        &call(&api, Method::POST, "/v1/tenants", DEPLOY, body).await,
        "more than one '.'",
    );
    assert_eq!(api.get("/v1/tenants/acme").await.status, StatusCode::NOT_FOUND);

    let mut body = tenant_body("acme", "eu-west-1", "default");
    body["hostnames"] = json!(["Acme.Example.com."]);
    let created = call(&api, Method::POST, "/v1/tenants", DEPLOY, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["hostnames"], json!(["acme.example.com"]));
}

fn names(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}{i}.example.com")).collect()
}

/// A tenant answers on at most 40 hostnames: each is a claim in its transactions, and
/// at 40 the largest of them (a change replacing every name, a removal giving them all
/// up) still fits DynamoDB's 100 items.
#[tokio::test]
async fn a_tenant_has_at_most_forty_hostnames_and_every_change_of_them_fits_one_write() {
    let api = spawn().await;
    let mut body = tenant_body("acme", "eu-west-1", "default");
    body["hostnames"] = json!(names("a", 41));
    assert_invalid(
        &call(&api, Method::POST, "/v1/tenants", DEPLOY, body).await,
        "has 41 hostnames, more than the 40 a tenant may answer on",
    );
    assert_eq!(api.get("/v1/tenants/acme").await.status, StatusCode::NOT_FOUND);

    let mut body = tenant_body("acme", "eu-west-1", "default");
    body["hostnames"] = json!(names("a", 40));
    let created = call(&api, Method::POST, "/v1/tenants", DEPLOY, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    api.settle().await;

    let too_many = json!({"hostnames": names("b", 41)});
    let refused = call(&api, Method::PATCH, "/v1/tenants/acme", ADMIN, too_many).await;
    assert_invalid(&refused, "at most 40");
    let unchanged = api.get("/v1/tenants/acme").await;
    assert_eq!(unchanged.body["hostnames"], json!(names("a", 40)));

    // Forty claims made and forty given up in the one write of the change.
    let replaced = call(
        &api,
        Method::PATCH,
        "/v1/tenants/acme",
        ADMIN,
        json!({"hostnames": names("b", 40)}),
    )
    .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    assert_eq!(replaced.body["hostnames"], json!(names("b", 40)));
    let mut taker = tenant_body("globex", "eu-west-1", "default");
    taker["hostnames"] = json!(["a39.example.com"]);
    let took = call(&api, Method::POST, "/v1/tenants", DEPLOY, taker).await;
    assert_eq!(
        took.status,
        StatusCode::CREATED,
        "a given-up name is free: {}",
        took.body
    );
    let mut clash = tenant_body("initech", "eu-west-1", "default");
    clash["hostnames"] = json!(["b39.example.com"]);
    let clashed = call(&api, Method::POST, "/v1/tenants", DEPLOY, clash).await;
    assert_eq!(
        clashed.status,
        StatusCode::CONFLICT,
        "a claimed name is taken: {}",
        clashed.body
    );
    api.settle().await;

    // The removal's last write gives all forty up.
    let removing = call(
        &api,
        Method::POST,
        "/v1/tenants/acme/deprovision",
        ADMIN,
        json!({}),
    )
    .await;
    assert_eq!(removing.status, StatusCode::ACCEPTED, "{}", removing.body);
    api.settle().await;
    let removed = api.get("/v1/tenants/acme").await;
    assert_eq!(removed.body["state"], json!("Deleted"), "{}", removed.body);
    let mut after = tenant_body("initech", "eu-west-1", "default");
    after["hostnames"] = json!(names("b", 40));
    let reused = call(&api, Method::POST, "/v1/tenants", DEPLOY, after).await;
    assert_eq!(
        reused.status,
        StatusCode::CREATED,
        "every name is free again: {}",
        reused.body
    );
}
