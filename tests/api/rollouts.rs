//! `/v1/rollouts`: plan, start (idempotent by id and by Idempotency-Key), inspect,
//! list, operate, and a rollout carried out by a controller while the API reports it.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use tenant_orchestrator::record::RolloutRecord;

use crate::api_support::preview::ReplacingClusterPreviewDouble;
use crate::api_support::{spawn, spawn_with, TestApi, ADMIN, DEPLOY, READ};
use crate::common::ScriptedStep;

async fn fleet(api: &TestApi, ids: &[&str]) {
    for id in ids {
        api.create_tenant(id, "eu-west-1", "default").await;
    }
    api.settle().await;
}

fn spec() -> serde_json::Value {
    json!({"release": "1.1.0", "strategy": {"waves": ["1", "100%"], "bake_time": "0s", "bake_checks": 0,
        "approvals": {"after_canary": true}}})
}

#[tokio::test]
async fn plan_start_get_and_list() {
    let api = spawn().await;
    fleet(&api, &["alpha", "bravo", "charlie"]).await;

    let plan = api
        .call(Method::POST, "/v1/rollouts/plan", Some(READ), Some(spec()))
        .await;
    assert_eq!(plan.status, StatusCode::OK, "{}", plan.body);
    assert_eq!(plan.body["waves"].as_array().unwrap().len(), 2);
    assert_eq!(plan.body["waves"][0]["tenants"][0]["id"], "alpha");

    let body = json!({"id": "r-api", "spec": spec()});
    let started = api
        .call(Method::POST, "/v1/rollouts", Some(DEPLOY), Some(body.clone()))
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    assert_eq!(started.body["created"], true);
    assert_eq!(started.body["rollout"]["phase"], "running");
    assert_eq!(
        started.body["rollout"]["created_by"], "api:pipeline",
        "the token's name is the actor"
    );
    assert_eq!(started.body["members"].as_array().unwrap().len(), 3);

    // The same id and spec again: the existing rollout, not a second one.
    let again = api
        .call(Method::POST, "/v1/rollouts", Some(DEPLOY), Some(body))
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["created"], false);
    let other = json!({"id": "r-api", "spec": {"release": "1.2.0"}});
    let refused = api
        .call(Method::POST, "/v1/rollouts", Some(DEPLOY), Some(other))
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.code(), "refused_by_rollout_state");

    let got = api.get("/v1/rollouts/r-api").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["rollout"]["id"], "r-api");
    assert_eq!(got.body["members"].as_array().unwrap().len(), 3);
    // A progress poll: the waves' tallies, no members.
    let poll = api.get("/v1/rollouts/r-api?members=false").await;
    assert_eq!(poll.status, StatusCode::OK, "{}", poll.body);
    assert_eq!(poll.body["members"], json!([]));
    let pending: Vec<&serde_json::Value> = (poll.body["rollout"]["waves"].as_array().unwrap().iter())
        .map(|w| &w["tally"]["pending"])
        .collect();
    assert_eq!(pending, [&json!(1), &json!(2)], "{}", poll.body);
    let bad = api.get("/v1/rollouts/r-api?members=some").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    let list = api.get("/v1/rollouts").await;
    let ids: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["r-api"]);

    let metrics = api
        .client
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"tenantctl_rollout_tenants{rollout="r-api",release="1.1.0",phase="running",outcome="pending"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"tenantctl_rollout_waves{rollout="r-api"} 2"#),
        "{metrics}"
    );

    // A second rollout plans none of the tenants r-api holds.
    let second = api
        .call(
            Method::POST,
            "/v1/rollouts/plan",
            Some(READ),
            Some(json!({"release": "1.2.0"})),
        )
        .await;
    assert_eq!(second.body["waves"].as_array().unwrap().len(), 0);
    assert_eq!(second.body["skipped"][0]["reason"], "held_by_rollout");
}

#[tokio::test]
async fn a_path_value_that_is_not_utf8_is_refused_in_the_json_error_body() {
    let api = spawn().await;
    for (method, path) in [
        (Method::GET, "/v1/rollouts/%FF"),
        (Method::GET, "/v1/promotions/%FF"),
        (Method::DELETE, "/v1/freezes/%FF"),
        (Method::DELETE, "/v1/policy/defaults/%FF/us-east-1"),
        (Method::POST, "/v1/events/%FF/redeliver"),
    ] {
        let reply = api.call(method.clone(), path, Some(ADMIN), None).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{method} {path}: {}",
            reply.body
        );
        let message = reply.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("percent-encode"), "{method} {path}: {message}");
    }
}

#[tokio::test]
async fn an_idempotency_key_never_starts_two_rollouts() {
    let api = spawn().await;
    fleet(&api, &["delta"]).await;
    let key = [("Idempotency-Key", "pipeline-run-42")];
    let body = json!({"spec": {"release": "1.1.0"}});
    let first = api
        .send(
            Method::POST,
            "/v1/rollouts",
            Some(DEPLOY),
            Some(body.clone()),
            &key,
        )
        .await;
    let second = api
        .send(Method::POST, "/v1/rollouts", Some(DEPLOY), Some(body), &key)
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(second.status, StatusCode::CREATED, "replayed");
    assert_eq!(first.body["rollout"]["id"], second.body["rollout"]["id"]);
    let list = api.get("/v1/rollouts?all=true").await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let api = spawn().await;
    let cases = [
        (
            json!({"spec": {"release": "1.1.0", "strategy": {"waves": ["150%"]}}}),
            "150%",
        ),
        (json!({"spec": {"release": "not-a-version"}}), "not-a-version"),
        (json!({"spec": {"release": "1.1.0", "stratgey": {}}}), "stratgey"),
        (json!({"id": "Bad_Id", "spec": {"release": "1.1.0"}}), "Bad_Id"),
    ];
    for (body, mentions) in cases {
        let reply = api
            .call(Method::POST, "/v1/rollouts", Some(DEPLOY), Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(mentions),
            "{}",
            reply.body
        );
    }
    let missing = api.get("/v1/rollouts/r-missing").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "rollout_not_found");
    let bad_id = api
        .call(Method::POST, "/v1/rollouts/X/pause", Some(DEPLOY), None)
        .await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
    assert_eq!(api.get("/v1/rollouts?all=true").await.body["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operators_pause_approve_and_follow_a_rollout_through_the_api() {
    let api = spawn().await;
    fleet(&api, &["echo", "foxtrot", "golf"]).await;
    let background = api.run_worker_and_controller("api-test-controller");

    let started = api
        .call(
            Method::POST,
            "/v1/rollouts",
            Some(DEPLOY),
            Some(json!({"id": "r-ops", "spec": spec()})),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED);
    let rollout = |api: TestApi| async move {
        let body = api.get("/v1/rollouts/r-ops").await.body;
        serde_json::from_value::<RolloutRecord>(body["rollout"].clone()).unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while rollout(api.clone())
        .await
        .wave()
        .is_none_or(|w| format!("{:?}", w.status) != "AwaitingApproval")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "never reached the approval gate"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let paused = api
        .call(Method::POST, "/v1/rollouts/r-ops/pause", Some(DEPLOY), None)
        .await;
    assert_eq!(paused.body["rollout"]["phase"], "paused");
    let twice = api
        .call(Method::POST, "/v1/rollouts/r-ops/pause", Some(DEPLOY), None)
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    assert!(twice.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("already paused"));
    // The answer of an operation leaves the members out when asked to, as the CLI
    // does: a fleet-wide rollout has as many as the fleet.
    let resumed = api
        .call(
            Method::POST,
            "/v1/rollouts/r-ops/resume?members=false",
            Some(DEPLOY),
            None,
        )
        .await;
    assert_eq!(resumed.status, StatusCode::OK, "{}", resumed.body);
    assert_eq!(resumed.body["rollout"]["phase"], "running");
    assert_eq!(resumed.body["members"], json!([]));
    assert!(
        paused.body["members"].as_array().is_some_and(|m| !m.is_empty()),
        "{}",
        paused.body
    );
    let unknown = api
        .call(
            Method::POST,
            "/v1/rollouts/r-ops/pause?members=maybe",
            Some(DEPLOY),
            None,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.body);
    assert_eq!(
        rollout(api.clone()).await.phase.to_string(),
        "running",
        "a refused request acted"
    );
    let approved = api
        .call(Method::POST, "/v1/rollouts/r-ops/approve", Some(DEPLOY), None)
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    while !rollout(api.clone()).await.phase.is_finished() {
        assert!(std::time::Instant::now() < deadline, "never completed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = api.get("/v1/rollouts/r-ops").await.body;
    assert_eq!(done["rollout"]["phase"], "completed");
    assert!(done["members"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["outcome"] == "succeeded"));
    let actors: Vec<&str> = done["rollout"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert!(
        actors.iter().filter(|a| **a == "api:pipeline").count() >= 4,
        "start, pause, resume, approve: {actors:?}"
    );
    let golf = api.get("/v1/tenants/golf").await.body;
    assert_eq!(golf["current_release"], "1.1.0");
    assert_eq!(golf["rollout"], "r-ops");
    background.stop().await;
}

#[tokio::test]
async fn a_forged_rollout_page_token_is_refused_not_sent_to_the_table() {
    let api = spawn().await;
    for forged in ["e30", "eyJsaXN0X3BrIjoiUk9MTE9VVFMifQ"] {
        let reply = api
            .get(&format!("/v1/rollouts?all=true&next_token={forged}"))
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{forged}: {}", reply.body);
        assert_eq!(reply.code(), "invalid_request");
        assert_eq!(
            reply.body["error"]["message"],
            "next_token was not issued for this query; start from the first page"
        );
    }
}

#[tokio::test]
async fn a_rollout_that_would_replace_a_database_is_previewed_refused_and_started_once_allowed() {
    let api =
        spawn_with(|app| app.with_change_preview(std::sync::Arc::new(ReplacingClusterPreviewDouble))).await;
    fleet(&api, &["echo", "foxtrot"]).await;

    let plan = api
        .call(
            Method::POST,
            "/v1/rollouts/plan?diff=true",
            Some(READ),
            Some(spec()),
        )
        .await;
    assert_eq!(plan.status, StatusCode::OK, "{}", plan.body);
    let group = &plan.body["preview"]["groups"][0];
    assert_eq!(group["tenants"], json!(["echo", "foxtrot"]));
    assert_eq!(group["changes"][0]["replacement"], "always");
    assert_eq!(group["refused"][0]["logical_id"], "DatabaseCluster");
    assert_eq!(
        plan.body["waves"].as_array().unwrap().len(),
        2,
        "the plan is there too"
    );

    let refused = api
        .call(
            Method::POST,
            "/v1/rollouts",
            Some(DEPLOY),
            Some(json!({"id": "r-db", "spec": spec()})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.code(), "replacement_refused");
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("strategy.allow_replacement: [\"DatabaseCluster\"]"),
        "{message}"
    );

    let mut allowed = spec();
    allowed["strategy"]["allow_replacement"] = json!(["DatabaseCluster"]);
    let started = api
        .call(
            Method::POST,
            "/v1/rollouts",
            Some(DEPLOY),
            Some(json!({"id": "r-db", "spec": allowed})),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
}

#[tokio::test]
async fn a_preview_asked_of_a_server_without_one_says_what_to_configure() {
    let api = spawn().await;
    let plan = api
        .call(
            Method::POST,
            "/v1/rollouts/plan?diff=true",
            Some(READ),
            Some(spec()),
        )
        .await;
    assert_eq!(plan.status, StatusCode::BAD_REQUEST, "{}", plan.body);
    assert!(
        plan.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--steps-config"),
        "{}",
        plan.body
    );
}

/// `UTC <day> <HH:MM> <length>` opening at `t` (to the minute).
fn window_at(t: chrono::DateTime<chrono::Utc>, length: &str) -> String {
    format!("{} {length}", t.format("%a %H:%M"))
}

#[tokio::test]
async fn a_plan_defers_a_tenant_whose_window_closes_before_the_outage_budget_runs_out() {
    let api = spawn().await;
    fleet(&api, &["hotel", "india", "juliet"]).await;
    let now = chrono::Utc::now();
    let tomorrow = now + chrono::Duration::days(1);
    let windows = [
        // Open since five minutes ago for ten, and four hours tomorrow.
        (
            "india",
            format!(
                "UTC {}, {}",
                window_at(now - chrono::Duration::minutes(5), "10m"),
                window_at(tomorrow, "4h")
            ),
        ),
        // Never open for an hour.
        ("juliet", format!("UTC {}", window_at(tomorrow, "10m"))),
    ];
    for (id, maintenance) in windows {
        let set = api
            .call(
                Method::PATCH,
                &format!("/v1/tenants/{id}"),
                Some(ADMIN),
                Some(json!({ "maintenance": maintenance })),
            )
            .await;
        assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    }
    let spec = json!({"release": "1.1.0", "strategy": {"waves": ["100%"], "bake_time": "0s", "bake_checks": 0,
        "outage_budget": "1h"}});

    let plan = api
        .call(Method::POST, "/v1/rollouts/plan", Some(READ), Some(spec))
        .await;

    assert_eq!(plan.status, StatusCode::OK, "{}", plan.body);
    let tenants = plan.body["waves"][0]["tenants"].as_array().unwrap();
    let planned: Vec<&str> = tenants.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(planned, ["hotel", "india"], "{}", plan.body);
    assert!(tenants[0].get("deferred").is_none(), "no windows: not deferred");
    let deferred = &tenants[1]["deferred"];
    assert_eq!(deferred["budget"], "1h", "{}", plan.body);
    let next = deferred["next_window"].as_str().unwrap();
    assert!(
        next.starts_with(&tomorrow.format("%Y-%m-%dT%H:%M").to_string()),
        "the next window that holds an hour is tomorrow's: {next}"
    );
    assert_eq!(tenants[1]["earliest_start"].as_str(), Some(next));
    assert_eq!(
        plan.body["skipped"],
        json!([{"id": "juliet", "reason": "window_shorter_than_outage_budget", "longest_window": "10m", "budget": "1h"}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rollout_lists_the_upgrades_whose_outage_overran_its_budget() {
    let api = spawn().await;
    fleet(&api, &["kilo", "lima"]).await;
    // Verify measures kilo down for 15 minutes and lima for one.
    let steps = ScriptedStep::new();
    steps.outage("kilo", 900);
    steps.outage("lima", 60);
    let background = api.run_scripted_worker_and_controller("api-outage-controller", steps);
    let spec = json!({"release": "1.1.0", "strategy": {"waves": ["100%"], "bake_time": "0s", "bake_checks": 0,
        "outage_budget": "5m"}});
    let started = api
        .call(
            Method::POST,
            "/v1/rollouts",
            Some(DEPLOY),
            Some(json!({"id": "r-outage", "spec": spec})),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    assert_eq!(started.body["outage_overruns"], json!([]));

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let done = loop {
        let body = api.get("/v1/rollouts/r-outage").await.body;
        if body["rollout"]["phase"] == "completed" {
            break body;
        }
        assert!(std::time::Instant::now() < deadline, "never completed: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    background.stop().await;

    assert_eq!(
        done["outage_overruns"],
        json!([{"wave": 0, "tenant": "kilo", "seconds": 900, "budget": "5m"}])
    );
    let kilo = (done["members"].as_array().unwrap().iter())
        .find(|m| m["tenant"] == "kilo")
        .unwrap();
    assert_eq!(kilo["outcome"], "succeeded");
    assert_eq!(kilo["outage_overrun"], json!({"seconds": 900, "budget": "5m"}));
}

/// A rollout's members and skipped tenants are read a page at a time, so a
/// fleet-wide rollout is never one answer of every tenant.
#[tokio::test]
async fn a_rollouts_members_and_skipped_tenants_are_read_a_page_at_a_time() {
    let api = spawn().await;
    let ids = ["p-a", "p-b", "p-c", "p-d", "p-e"];
    fleet(&api, &ids).await;
    let mut selected: Vec<&str> = ids.to_vec();
    selected.extend(["ghost-1", "ghost-2", "ghost-3"]);
    let mut spec = spec();
    spec["selector"] = json!({"tenants": selected});
    let body = json!({"id": "r-pages", "spec": spec});
    let started = api
        .call(
            Method::POST,
            "/v1/rollouts?members=false",
            Some(DEPLOY),
            Some(body),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    assert_eq!(
        started.body["members"],
        json!([]),
        "a large start's answer stays small"
    );
    let sizes: Vec<&serde_json::Value> = (started.body["rollout"]["waves"].as_array().unwrap().iter())
        .map(|w| &w["size"])
        .collect();
    assert_eq!(sizes, [&json!(1), &json!(4)]);

    // Every page of two, then the next, until no token is given back.
    let read = |path: String| {
        let api = &api;
        async move {
            let mut all = Vec::new();
            let mut token: Option<String> = None;
            let mut pages = 0;
            loop {
                let url = match &token {
                    Some(t) => format!("{path}&next_token={t}"),
                    None => path.clone(),
                };
                let page = api.get(&url).await;
                assert_eq!(page.status, StatusCode::OK, "{url}: {}", page.body);
                let items = page.body["items"].as_array().unwrap().clone();
                assert!(items.len() <= 2, "{}", page.body);
                all.extend(items);
                pages += 1;
                match page.body["next_token"].as_str() {
                    Some(t) => token = Some(t.to_owned()),
                    None => return (all, pages),
                }
            }
        }
    };
    let (members, pages) = read("/v1/rollouts/r-pages/members?limit=2".into()).await;
    let tenants: Vec<&str> = members.iter().map(|m| m["tenant"].as_str().unwrap()).collect();
    assert_eq!(tenants, ids, "each once, by wave then id");
    assert!(pages >= 3);
    let (second, _) = read("/v1/rollouts/r-pages/members?wave=1&limit=2".into()).await;
    assert_eq!(second.len(), 4, "the canary's wave has one");
    let (skipped, _) = read("/v1/rollouts/r-pages/skipped?limit=2".into()).await;
    let names: Vec<&str> = skipped.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(names, ["ghost-1", "ghost-2", "ghost-3"]);
    assert_eq!(skipped[0]["reason"], "not_in_fleet", "{}", skipped[0]);

    let no_wave = api.get("/v1/rollouts/r-pages/members?wave=7").await;
    assert_eq!(no_wave.status, StatusCode::BAD_REQUEST);
    assert!(
        no_wave.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("has no wave 7: its waves are 0 to 1"),
        "{}",
        no_wave.body
    );
    let forged = api.get("/v1/rollouts/r-pages/members?next_token=abc.def").await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST, "{}", forged.body);
    let too_many = api.get("/v1/rollouts/r-pages/skipped?limit=5000").await;
    assert_eq!(too_many.status, StatusCode::BAD_REQUEST, "{}", too_many.body);
    let missing = api.get("/v1/rollouts/r-none/members").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
}

#[tokio::test]
async fn the_same_start_made_several_times_at_once_gets_the_one_rollout() {
    let api = spawn().await;
    fleet(&api, &["alpha", "bravo", "charlie"]).await;
    let body = json!({"id": "r-race", "spec": spec()});
    let mut starts = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (api, body) = (api.clone(), body.clone());
        starts.spawn(async move {
            api.call(Method::POST, "/v1/rollouts", Some(DEPLOY), Some(body))
                .await
        });
    }
    let answers = starts.join_all().await;
    let mut created = 0;
    for answer in &answers {
        match answer.status {
            StatusCode::CREATED => created += 1,
            StatusCode::OK => assert_eq!(answer.body["created"], false, "{}", answer.body),
            other => panic!("a start of the same rollout answered {other}: {}", answer.body),
        }
        assert_eq!(answer.body["rollout"]["id"], "r-race", "{}", answer.body);
        assert_eq!(answer.body["rollout"]["phase"], "running", "{}", answer.body);
    }
    assert_eq!(created, 1, "exactly one call created it");
}
