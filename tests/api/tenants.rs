use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::api_support::{spawn, spawn_with, tenant_body, Reply, ADMIN, DEPLOY, READ};
use crate::common::{RegistryDouble, RegistryDownDouble};

const NOT_ISSUED: &str = "next_token was not issued for this query; start from the first page";

fn b64(value: &serde_json::Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

fn refused_as_not_issued(reply: &Reply, what: &str) {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{what}: {}", reply.body);
    assert_eq!(reply.code(), "invalid_request", "{what}");
    assert_eq!(reply.body["error"]["message"], NOT_ISSUED, "{what}");
}

#[tokio::test]
async fn a_created_tenant_shows_its_state_and_history_with_the_caller() {
    let api = spawn().await;
    let created = api.create_tenant("acme", "eu-west-1", "canary").await;
    assert_eq!(created.body["state"], "Provisioning");
    assert_eq!(created.body["target_release"], "1.0.0");

    let got = api.get("/v1/tenants/acme").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["step"], "CheckArtifact");
    assert_eq!(got.body["group"], "canary");
    assert!(got.body["lease"].is_null());

    let history = api.get("/v1/tenants/acme/history").await;
    assert_eq!(history.body["items"][0]["actor"], "api:pipeline");
    assert_eq!(history.body["items"][0]["cause"], "Provision 1.0.0");
}

#[tokio::test]
async fn without_a_release_the_version_policy_decides_or_the_error_says_how() {
    let api = spawn().await;
    let mut body = tenant_body("acme", "eu-west-1", "default");
    body.as_object_mut().unwrap().remove("release");
    let refused = api
        .call(Method::POST, "/v1/tenants", Some(DEPLOY), Some(body.clone()))
        .await;
    // Well formed, but the stored policy cannot serve it yet: a conflict, not a bad request.
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::CONFLICT, "no_release")
    );
    assert!(refused.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("PUT /v1/policy/defaults/test/eu-west-1"));

    let set = api
        .call(
            Method::PUT,
            "/v1/policy/defaults/test/eu-west-1",
            Some(ADMIN),
            Some(json!({"release": "2.1.0"})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let created = api
        .call(Method::POST, "/v1/tenants", Some(DEPLOY), Some(body))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["target_release"], "2.1.0");
}

#[tokio::test]
async fn invalid_input_is_refused_with_a_stable_code_and_a_useful_message() {
    let api = spawn().await;
    api.create_tenant("acme", "eu-west-1", "default").await;
    let cases = [
        (
            json!({"id": "Bad_Id", "region": "eu-west-1", "environment": "test", "hostnames": ["a.example.com"]}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "tenant id",
        ),
        (
            {
                let mut b = tenant_body("other", "eu-west-1", "default");
                b["colour"] = json!("red");
                b
            },
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "unknown field",
        ),
        (
            tenant_body("acme", "eu-west-1", "default"),
            StatusCode::CONFLICT,
            "tenant_exists",
            "already exists",
        ),
        (
            json!({"id": "big", "region": "eu-west-1", "environment": "test", "hostnames": ["a.example.com"], "release": "x".repeat(70_000)}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "64 KiB",
        ),
    ];
    for (body, status, code, says) in cases {
        let reply = api
            .call(Method::POST, "/v1/tenants", Some(DEPLOY), Some(body))
            .await;
        assert_eq!(reply.status, status, "{}", reply.body);
        assert_eq!(reply.code(), code);
        assert!(
            reply.body["error"]["message"].as_str().unwrap().contains(says),
            "{}",
            reply.body
        );
    }
    let not_json = api
        .send(
            Method::POST,
            "/v1/tenants",
            Some(DEPLOY),
            None,
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    let no_type = api
        .send(Method::POST, "/v1/tenants/acme/upgrade", Some(DEPLOY), None, &[])
        .await;
    assert_eq!(no_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let missing = api.get("/v1/tenants/nobody").await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::NOT_FOUND, "tenant_not_found")
    );
    let bad_path = api.get("/v1/tenants/NOPE").await;
    assert_eq!(bad_path.status, StatusCode::BAD_REQUEST);
    let unknown_query = api.get("/v1/tenants?colour=red").await;
    assert_eq!(unknown_query.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn listing_pages_through_every_tenant_and_filters() {
    let api = spawn().await;
    for (id, region, group) in [
        ("alpha", "eu-west-1", "canary"),
        ("bravo", "eu-west-1", "default"),
        ("charlie", "us-east-1", "canary"),
        ("delta", "us-east-1", "default"),
        ("echo", "us-east-1", "default"),
    ] {
        api.create_tenant(id, region, group).await;
    }
    let mut seen = Vec::new();
    let mut path = "/v1/tenants?limit=2".to_owned();
    let mut pages = 0;
    loop {
        pages += 1;
        let page = api.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        seen.extend(
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_owned()),
        );
        match page.body["next_token"].as_str() {
            Some(t) => path = format!("/v1/tenants?limit=2&next_token={t}"),
            None => break,
        }
    }
    assert_eq!(seen, ["alpha", "bravo", "charlie", "delta", "echo"]);
    assert_eq!(pages, 3);
    // A page that ends the listing exactly hands out no token to an empty page.
    let whole = api.get("/v1/tenants?region=eu-west-1&limit=2").await;
    assert_eq!(whole.body["items"].as_array().unwrap().len(), 2, "{}", whole.body);
    assert!(whole.body["next_token"].is_null(), "{}", whole.body);
    let all = api.get("/v1/tenants?limit=5").await;
    assert!(all.body["next_token"].is_null(), "{}", all.body);

    let ids = |r: &crate::api_support::Reply| -> Vec<String> {
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(&api.get("/v1/tenants?region=us-east-1&group=default").await),
        ["delta", "echo"]
    );
    assert_eq!(
        ids(&api
            .get("/v1/tenants?group=canary&limit=1&state=Provisioning")
            .await),
        ["alpha"]
    );
    assert_eq!(ids(&api.get("/v1/tenants?release=1.0.0").await).len(), 5);
    assert!(ids(&api.get("/v1/tenants?release=9.9.9").await).is_empty());
    assert!(ids(&api.get("/v1/tenants?state=Active").await).is_empty());

    let first = api.get("/v1/tenants?limit=1").await;
    let token = first.body["next_token"].as_str().unwrap();
    let other_filter = api
        .get(&format!(
            "/v1/tenants?limit=1&region=eu-west-1&next_token={token}"
        ))
        .await;
    assert_eq!(other_filter.status, StatusCode::BAD_REQUEST);
    assert_eq!(other_filter.body["error"]["message"], NOT_ISSUED);
    assert!(api.get("/v1/tenants?next_token=garbage").await.status == StatusCode::BAD_REQUEST);
    assert_eq!(
        api.get("/v1/tenants?state=Sleeping").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        api.get("/v1/tenants?limit=0").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn a_release_with_no_image_is_refused_for_a_new_tenant_and_an_upgrade() {
    let api = spawn_with(|app| {
        app.with_release_registry(std::sync::Arc::new(RegistryDouble { published: "1.0.0" }))
    })
    .await;
    let mut body = tenant_body("acme", "eu-west-1", "default");
    body["release"] = json!("9.9.9");
    let refused = api
        .call(Method::POST, "/v1/tenants", Some(DEPLOY), Some(body))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(
        refused.body["error"]["message"],
        "release 9.9.9 has no image in eu-west-1; publish it first"
    );
    assert_eq!(
        api.get("/v1/tenants/acme").await.status,
        StatusCode::NOT_FOUND,
        "nothing stored"
    );

    api.create_tenant("acme", "eu-west-1", "default").await;
    api.settle().await;
    let upgrade = |release: &'static str| {
        let api = api.clone();
        async move {
            let body = json!({"release": release});
            (api.call(Method::POST, "/v1/tenants/acme/upgrade", Some(DEPLOY), Some(body))).await
        }
    };
    let refused = upgrade("9.9.9").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    let tenant = api.get("/v1/tenants/acme").await;
    assert_eq!(
        (
            tenant.body["state"].as_str(),
            tenant.body["current_release"].as_str()
        ),
        (Some("Active"), Some("1.0.0")),
        "the refused upgrade left the tenant as it was"
    );
    let history = api.get("/v1/tenants/acme/history").await;
    assert!(
        !history.body.to_string().contains("9.9.9"),
        "nothing of the refused upgrade is in the history: {}",
        history.body
    );
}

#[tokio::test]
async fn a_policy_default_with_no_image_in_its_region_is_refused() {
    let api = spawn_with(|app| {
        app.with_release_registry(std::sync::Arc::new(RegistryDouble { published: "1.0.0" }))
    })
    .await;
    let path = "/v1/policy/defaults/test/eu-west-1";
    let refused = api
        .call(Method::PUT, path, Some(ADMIN), Some(json!({"release": "9.9.9"})))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(
        refused.body["error"]["message"],
        "release 9.9.9 has no image in eu-west-1; publish it first"
    );
    let policy = api.get("/v1/policy").await;
    assert!(
        !policy.body.to_string().contains("9.9.9"),
        "nothing stored: {}",
        policy.body
    );
    let set = api
        .call(Method::PUT, path, Some(ADMIN), Some(json!({"release": "1.0.0"})))
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
}

/// A release registry double: 1.0.0 has an image in every region, 1.1.0 only in
/// eu-west-1.
struct OneRegionRegistryDouble;

#[async_trait::async_trait]
impl tenant_orchestrator::ports::ReleaseRegistry for OneRegionRegistryDouble {
    async fn check_published(
        &self,
        release: &tenant_orchestrator::domain::ReleaseVersion,
        region: &tenant_orchestrator::domain::Region,
    ) -> Result<(), tenant_orchestrator::ports::ReleaseCheckError> {
        match (release.to_string().as_str(), region.as_str()) {
            ("1.0.0", _) | ("1.1.0", "eu-west-1") => Ok(()),
            _ => Err(tenant_orchestrator::ports::ReleaseCheckError::Unpublished(
                format!("release {release} has no image in {region}; publish it first"),
            )),
        }
    }
}

#[tokio::test]
async fn a_group_override_needs_its_release_in_every_region_of_the_fleet() {
    let api = spawn_with(|app| app.with_release_registry(std::sync::Arc::new(OneRegionRegistryDouble))).await;
    api.create_tenant("acme", "eu-west-1", "default").await;
    api.create_tenant("bravo", "us-east-1", "default").await;
    let path = "/v1/policy/groups/test/default";
    let refused = api
        .call(Method::PUT, path, Some(ADMIN), Some(json!({"release": "1.1.0"})))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("release 1.1.0 has no image in us-east-1 (a group override applies"),
        "{message}"
    );
    assert!(
        !api.get("/v1/policy").await.body.to_string().contains("1.1.0"),
        "nothing stored"
    );
    // The default of the one region that has it is accepted.
    let default = api
        .call(
            Method::PUT,
            "/v1/policy/defaults/test/eu-west-1",
            Some(ADMIN),
            Some(json!({"release": "1.1.0"})),
        )
        .await;
    assert_eq!(default.status, StatusCode::OK, "{}", default.body);
    let set = api
        .call(Method::PUT, path, Some(ADMIN), Some(json!({"release": "1.0.0"})))
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
}

#[tokio::test]
async fn a_registry_that_cannot_be_asked_is_a_503_not_a_verdict_on_the_release() {
    let api = spawn_with(|app| app.with_release_registry(std::sync::Arc::new(RegistryDownDouble))).await;
    let body = tenant_body("acme", "eu-west-1", "default");
    let refused = api
        .call(Method::POST, "/v1/tenants", Some(DEPLOY), Some(body))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.body
    );
    assert_eq!(refused.body["error"]["code"], "unavailable");
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("could not say whether release 1.0.0 is published")
            && message.ends_with("try again"),
        "{message}"
    );
    assert_eq!(
        api.get("/v1/tenants/acme").await.status,
        StatusCode::NOT_FOUND,
        "nothing stored"
    );
}

#[tokio::test]
async fn commands_move_tenants_or_are_refused_by_their_state() {
    let api = spawn().await;
    api.create_tenant("acme", "eu-west-1", "default").await;
    let early = api
        .call(
            Method::POST,
            "/v1/tenants/acme/upgrade",
            Some(DEPLOY),
            Some(json!({"release": "1.1.0"})),
        )
        .await;
    assert_eq!(
        (early.status, early.code()),
        (StatusCode::CONFLICT, "refused_by_state")
    );
    assert!(early.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("wait until"));
    api.settle().await;
    assert_eq!(api.get("/v1/tenants/acme").await.body["state"], "Active");

    let upgrade = api
        .call(
            Method::POST,
            "/v1/tenants/acme/upgrade",
            Some(DEPLOY),
            Some(json!({"release": "1.1.0"})),
        )
        .await;
    assert_eq!(upgrade.status, StatusCode::ACCEPTED, "{}", upgrade.body);
    assert_eq!(upgrade.body["state"], "Upgrading");
    let rollback = api
        .call(Method::POST, "/v1/tenants/acme/rollback", Some(DEPLOY), None)
        .await;
    // Abandoned before it touched the tenant: straight back to Active on 1.0.0.
    assert_eq!(rollback.status, StatusCode::ACCEPTED, "{}", rollback.body);
    assert_eq!(
        (
            rollback.body["state"].as_str(),
            rollback.body["current_release"].as_str()
        ),
        (Some("Active"), Some("1.0.0"))
    );
    // Retry takes the abandoned upgrade up again; once it is done there is nothing to retry.
    let retry = api
        .call(Method::POST, "/v1/tenants/acme/retry", Some(DEPLOY), None)
        .await;
    assert_eq!(
        (retry.status, retry.body["target_release"].as_str()),
        (StatusCode::ACCEPTED, Some("1.1.0"))
    );
    api.settle().await;
    let retry = api
        .call(Method::POST, "/v1/tenants/acme/retry", Some(DEPLOY), None)
        .await;
    assert_eq!(
        (retry.status, retry.code()),
        (StatusCode::CONFLICT, "refused_by_state")
    );
    let restore = api
        .call(
            Method::POST,
            "/v1/tenants/acme/restore",
            Some(ADMIN),
            Some(json!({"snapshot": "bad snapshot!"})),
        )
        .await;
    assert_eq!(restore.status, StatusCode::BAD_REQUEST);
    // A snapshot that is not one of the tenant's is refused, and the tenant left as it
    // was: restored, a typo would fail it.
    let before = api.get("/v1/tenants/acme").await.body;
    let typo = api
        .call(
            Method::POST,
            "/v1/tenants/acme/restore",
            Some(ADMIN),
            Some(json!({"snapshot": "acme-pre-1-1-O"})),
        )
        .await;
    assert_eq!(typo.status, StatusCode::BAD_REQUEST, "{}", typo.body);
    let message = typo.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("snapshot acme-pre-1-1-O is not one of tenant acme's snapshots")
            && message.contains("\"external\": true"),
        "{message}"
    );
    assert_eq!(
        api.get("/v1/tenants/acme").await.body,
        before,
        "nothing was written"
    );
    // One taken outside tenantctl is restored from when the caller says so.
    let restore = api
        .call(
            Method::POST,
            "/v1/tenants/acme/restore",
            Some(ADMIN),
            Some(json!({"snapshot": "tenant-test-acme-final-1", "external": true})),
        )
        .await;
    assert_ne!(
        restore.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        restore.body
    );
    api.settle().await;
    let gone = api
        .call(Method::POST, "/v1/tenants/acme/deprovision", Some(ADMIN), None)
        .await;
    assert_eq!(
        (gone.status, gone.body["state"].as_str()),
        (StatusCode::ACCEPTED, Some("Deprovisioning"))
    );
}

#[tokio::test]
async fn a_reconcile_runs_the_tenant_through_its_own_release_again() {
    let api = spawn().await;
    api.create_tenant("acme", "eu-west-1", "default").await;
    let reconcile = |token| api.call(Method::POST, "/v1/tenants/acme/reconcile", Some(token), None);
    let busy = reconcile(DEPLOY).await;
    assert_eq!(
        (busy.status, busy.code()),
        (StatusCode::CONFLICT, "refused_by_state"),
        "{}",
        busy.body
    );
    api.settle().await;

    let read_only = reconcile(READ).await;
    assert_eq!(read_only.status, StatusCode::FORBIDDEN, "{}", read_only.body);
    let accepted = reconcile(DEPLOY).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    assert_eq!(
        (
            accepted.body["state"].as_str(),
            accepted.body["current_release"].as_str(),
            accepted.body["target_release"].as_str()
        ),
        (Some("Upgrading"), Some("1.0.0"), Some("1.0.0"))
    );
    api.settle().await;
    let done = api.get("/v1/tenants/acme").await;
    assert_eq!(
        (done.body["state"].as_str(), done.body["current_release"].as_str()),
        (Some("Active"), Some("1.0.0"))
    );
    let history = api.get("/v1/tenants/acme/history?limit=1000").await;
    let causes: Vec<&str> = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["cause"].as_str())
        .collect();
    assert!(causes.contains(&"Reconcile"), "{causes:?}");
}

#[tokio::test]
async fn spec_updates_are_conditional_on_the_version_and_recorded() {
    let api = spawn().await;
    api.create_tenant("acme", "eu-west-1", "default").await;
    let busy = api
        .call(
            Method::PATCH,
            "/v1/tenants/acme",
            Some(ADMIN),
            Some(json!({"tier": "large"})),
        )
        .await;
    assert_eq!(busy.code(), "refused_by_state");
    api.settle().await;
    let version = api.get("/v1/tenants/acme").await.body["version"]
        .as_u64()
        .unwrap();

    let stale = api
        .call(
            Method::PATCH,
            "/v1/tenants/acme",
            Some(ADMIN),
            Some(json!({"expected_version": version - 1, "pinned_release": "1.0.0"})),
        )
        .await;
    assert_eq!(
        (stale.status, stale.code()),
        (StatusCode::CONFLICT, "version_conflict")
    );
    let pinned = api
        .call(Method::PATCH, "/v1/tenants/acme", Some(ADMIN), Some(json!({"expected_version": version, "pinned_release": "1.0.0", "tier": "large", "hostnames": ["acme.example.org"]})))
        .await;
    assert_eq!(pinned.status, StatusCode::OK, "{}", pinned.body);
    assert_eq!(
        (
            pinned.body["pinned_release"].as_str(),
            pinned.body["tier"].as_str()
        ),
        (Some("1.0.0"), Some("large"))
    );
    let unpinned = api
        .call(
            Method::PATCH,
            "/v1/tenants/acme",
            Some(ADMIN),
            Some(json!({"pinned_release": null})),
        )
        .await;
    assert!(unpinned.body["pinned_release"].is_null(), "{}", unpinned.body);
    let empty = api
        .call(Method::PATCH, "/v1/tenants/acme", Some(ADMIN), Some(json!({})))
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    let dup = api
        .call(
            Method::PATCH,
            "/v1/tenants/acme",
            Some(ADMIN),
            Some(json!({"hostnames": ["a.example.com", "a.example.com"]})),
        )
        .await;
    assert_eq!(dup.status, StatusCode::BAD_REQUEST);

    let history = api.get("/v1/tenants/acme/history?limit=1000").await;
    let causes: Vec<&str> = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cause"].as_str().unwrap())
        .collect();
    assert!(
        causes.iter().any(|c| c.starts_with("UpdateSpec: pin 1.0.0")),
        "{causes:?}"
    );
    assert!(causes.contains(&"UpdateSpec: unpin"), "{causes:?}");
}

#[tokio::test]
async fn history_is_paged() {
    let api = spawn().await;
    api.create_tenant("acme", "eu-west-1", "default").await;
    api.settle().await;
    let mut seqs = Vec::new();
    let mut path = "/v1/tenants/acme/history?limit=2".to_owned();
    loop {
        let page = api.get(&path).await;
        seqs.extend(
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_u64().unwrap()),
        );
        match page.body["next_token"].as_str() {
            Some(t) => path = format!("/v1/tenants/acme/history?limit=2&next_token={t}"),
            None => break,
        }
    }
    assert!(seqs.len() > 3, "{seqs:?}");
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        api.get("/v1/tenants/nobody/history").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn maintenance_windows_are_set_at_creation_changed_and_removed() {
    let api = spawn().await;
    let mut body = tenant_body("windowed", "eu-west-1", "default");
    body["maintenance"] = json!("Europe/Berlin Sun 02:00 4h, Wed 22:00 2h");
    let created = api
        .call(Method::POST, "/v1/tenants", Some(DEPLOY), Some(body))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(
        created.body["maintenance"],
        "Europe/Berlin Sun 02:00 4h, Wed 22:00 2h"
    );

    let mut bad = tenant_body("badwindow", "eu-west-1", "default");
    bad["maintenance"] = json!("Mars/Olympus Sun 02:00 4h");
    let refused = api
        .call(Method::POST, "/v1/tenants", Some(DEPLOY), Some(bad))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Mars/Olympus"),
        "{}",
        refused.body
    );

    let changed = api
        .call(
            Method::PATCH,
            "/v1/tenants/windowed",
            Some(ADMIN),
            Some(json!({"maintenance": "UTC Sat 00:00 6h"})),
        )
        .await;
    assert_eq!(
        changed.body["maintenance"], "UTC Sat 00:00 6h",
        "{}",
        changed.body
    );
    let removed = api
        .call(
            Method::PATCH,
            "/v1/tenants/windowed",
            Some(ADMIN),
            Some(json!({"maintenance": null})),
        )
        .await;
    assert!(removed.body["maintenance"].is_null(), "{}", removed.body);
    let history = api.get("/v1/tenants/windowed/history").await;
    let causes: Vec<&str> = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cause"].as_str().unwrap())
        .collect();
    assert!(causes.contains(&"UpdateSpec: maintenance any time"), "{causes:?}");
}

#[tokio::test]
async fn page_tokens_not_issued_for_the_query_are_refused_before_reaching_the_table() {
    let api = spawn().await;
    for id in ["alpha", "bravo", "charlie"] {
        api.create_tenant(id, "eu-west-1", "default").await;
    }
    let first = api.get("/v1/tenants?limit=1").await;
    let token = first.body["next_token"].as_str().unwrap().to_owned();
    assert_eq!(
        api.get(&format!("/v1/tenants?limit=1&next_token={token}"))
            .await
            .body["items"][0]["id"],
        "bravo"
    );

    // A store start key of the right shape with a digest anyone can compute: it used to
    // reach DynamoDB, which refused it, and the API answered 500.
    let start = json!({"region": "eu-west-1", "key": {"list_pk": "REGION#eu-west-1"}});
    let digest = {
        use sha2::Digest;
        let d = sha2::Sha256::digest("tenants\0\0\0\0".as_bytes());
        d[..8].iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let hand_built = b64(&json!({"t": b64(&start), "q": digest}));
    let (payload, tag) = token.split_once('.').unwrap();
    let mut flipped = tag.as_bytes().to_vec();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let tampered_tag = format!("{payload}.{}", String::from_utf8(flipped).unwrap());
    let other_payload = format!("{}.{tag}", b64(&start));
    for (what, forged) in [
        ("an empty object", "e30".to_owned()),
        ("a hand-built start key", hand_built),
        ("a changed tag", tampered_tag),
        ("another cursor under a real tag", other_payload),
    ] {
        refused_as_not_issued(&api.get(&format!("/v1/tenants?next_token={forged}")).await, what);
    }
    for other_query in [
        "region=eu-west-1",
        "state=Provisioning",
        "group=default",
        "release=1.0.0",
    ] {
        let reply = api
            .get(&format!("/v1/tenants?{other_query}&next_token={token}"))
            .await;
        refused_as_not_issued(&reply, other_query);
    }
    api.settle().await; // so alpha's history runs past one page of one
    let history = api.get("/v1/tenants/alpha/history?limit=1").await;
    let history_token = history.body["next_token"].as_str().unwrap();
    refused_as_not_issued(
        &api.get(&format!("/v1/tenants?next_token={history_token}")).await,
        "a history token",
    );
    refused_as_not_issued(
        &api.get(&format!("/v1/tenants/bravo/history?next_token={history_token}"))
            .await,
        "another tenant's history token",
    );
    refused_as_not_issued(
        &api.get(&format!(
            "/v1/tenants/alpha/history?next_token={}",
            b64(&json!({"t": "999999999999999", "q": "x"}))
        ))
        .await,
        "a hand-built history position",
    );

    // Another table (another deployment) has another key.
    let elsewhere = spawn().await;
    elsewhere.create_tenant("alpha", "eu-west-1", "default").await;
    elsewhere.create_tenant("bravo", "eu-west-1", "default").await;
    refused_as_not_issued(
        &elsewhere
            .get(&format!("/v1/tenants?limit=1&next_token={token}"))
            .await,
        "a token of another table",
    );
}

#[tokio::test]
async fn a_hostname_belongs_to_one_live_tenant_until_it_is_deleted() {
    let api = spawn().await;
    api.create_tenant("acme", "eu-west-1", "default").await;
    let taken = "hostname acme.example.com is already used by tenant acme; \
                 choose another hostname or remove it from acme first";

    let mut copycat = tenant_body("globex", "eu-west-1", "default");
    copycat["hostnames"] = json!(["ACME.example.com"]);
    let refused = api
        .call(Method::POST, "/v1/tenants", Some(DEPLOY), Some(copycat.clone()))
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.code(), "hostname_taken");
    assert_eq!(refused.body["error"]["message"], taken);
    assert_eq!(api.get("/v1/tenants/globex").await.status, StatusCode::NOT_FOUND);

    api.create_tenant("globex", "eu-west-1", "default").await;
    api.settle().await;
    let patch = |hostnames: serde_json::Value| {
        let api = api.clone();
        async move {
            api.call(
                Method::PATCH,
                "/v1/tenants/globex",
                Some(ADMIN),
                Some(json!({ "hostnames": hostnames })),
            )
            .await
        }
    };
    let refused = patch(json!(["globex.example.com", "acme.example.com"])).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.code(), "hostname_taken");
    assert_eq!(refused.body["error"]["message"], taken);
    assert_eq!(
        api.get("/v1/tenants/globex").await.body["hostnames"],
        json!(["globex.example.com"]),
        "nothing changed"
    );

    // Moving to a new name frees the old one for others.
    let moved = patch(json!(["www.globex.example.com"])).await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    api.create_tenant("initech", "eu-west-1", "default").await;
    let mut reuse = tenant_body("hooli", "eu-west-1", "default");
    reuse["hostnames"] = json!(["globex.example.com"]);
    let reused = api
        .call(Method::POST, "/v1/tenants", Some(DEPLOY), Some(reuse))
        .await;
    assert_eq!(reused.status, StatusCode::CREATED, "{}", reused.body);

    // A deleted tenant's hostnames are free again.
    let gone = api
        .call(Method::POST, "/v1/tenants/acme/deprovision", Some(ADMIN), None)
        .await;
    assert_eq!(gone.status, StatusCode::ACCEPTED, "{}", gone.body);
    api.settle().await;
    assert_eq!(api.get("/v1/tenants/acme").await.body["state"], "Deleted");
    let mut successor = tenant_body("acme-two", "eu-west-1", "default");
    successor["hostnames"] = json!(["acme.example.com"]);
    let created = api
        .call(Method::POST, "/v1/tenants", Some(DEPLOY), Some(successor))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
}
