//! `tenantctl --server URL …`: the CLI as a client of the API (the router on
//! 127.0.0.1:0 against DynamoDB Local), with the token from TENANTCTL_TOKEN: exit codes,
//! output, scopes, and a rollout followed with `--wait` in Azure Pipelines mode.

use crate::{stderr, stdout};
use std::process::Output;

use crate::api_support::preview::ReplacingClusterPreviewDouble;
use crate::api_support::{spawn, spawn_with, TestApi, ADMIN, DEPLOY, EU_DEPLOYER, EU_TEAM, READ};

async fn tenantctl(api: &TestApi, token: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tenantctl"));
    command
        .arg("--server")
        .arg(&api.base)
        .args(args)
        .env_remove("TENANTCTL_TOKEN")
        .env("TENANTCTL_PROGRESS", "plain");
    if let Some(t) = token {
        command.env("TENANTCTL_TOKEN", t);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().await.expect("tenantctl runs")
}

const CREATE: &[&str] = &[
    "tenant",
    "create",
    "--id",
    "remote-one",
    "--region",
    "eu-west-1",
    "--environment",
    "test",
    "--hostname",
    "remote-one.example.com",
    "--release",
    "1.0.0",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenant_commands_go_through_the_api_with_the_callers_scope() {
    let api = spawn().await;

    let no_token = tenantctl(&api, None, &["tenant", "list"], &[]).await;
    assert_eq!(no_token.status.code(), Some(2), "{}", stderr(&no_token));
    assert!(stderr(&no_token).contains("TENANTCTL_TOKEN"));

    let read_only = tenantctl(&api, Some(READ), CREATE, &[]).await;
    assert_eq!(read_only.status.code(), Some(9), "{}", stderr(&read_only));
    assert!(stderr(&read_only).contains("scope"), "{}", stderr(&read_only));
    let missing = tenantctl(&api, Some(READ), &["tenant", "get", "remote-one"], &[]).await;
    assert_eq!(
        missing.status.code(),
        Some(3),
        "the refused create created nothing"
    );

    let created = tenantctl(&api, Some(DEPLOY), CREATE, &[]).await;
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(stdout(&created).contains("Provisioning"), "{}", stdout(&created));
    api.settle().await;

    let got = tenantctl(
        &api,
        Some(READ),
        &["--output", "json", "tenant", "get", "remote-one"],
        &[],
    )
    .await;
    let view: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(view["state"], "Active");
    assert_eq!(view["current_release"], "1.0.0");
    let list = tenantctl(
        &api,
        Some(READ),
        &["tenant", "list", "--region", "eu-west-1"],
        &[],
    )
    .await;
    assert!(stdout(&list).contains("remote-one"));
    let history = tenantctl(&api, Some(READ), &["tenant", "history", "remote-one"], &[]).await;
    assert!(
        stdout(&history).contains("api:pipeline"),
        "the token's name is the actor"
    );

    let bad = tenantctl(
        &api,
        Some(DEPLOY),
        &["tenant", "upgrade", "remote-one", "--release", "x.y"],
        &[],
    )
    .await;
    assert_eq!(
        bad.status.code(),
        Some(2),
        "bad input fails before anything is sent"
    );
    let refused = tenantctl(&api, Some(DEPLOY), &["tenant", "retry", "remote-one"], &[]).await;
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    let reconciled = tenantctl(&api, Some(DEPLOY), &["tenant", "reconcile", "remote-one"], &[]).await;
    assert!(reconciled.status.success(), "{}", stderr(&reconciled));
    assert!(
        stdout(&reconciled).contains("Upgrading/"),
        "a reconcile runs the upgrade's steps: {}",
        stdout(&reconciled)
    );
    api.settle().await;

    let policy = tenantctl(
        &api,
        Some(ADMIN),
        &[
            "policy",
            "set-default",
            "--environment",
            "test",
            "--region",
            "eu-west-1",
            "--release",
            "1.1.0",
        ],
        &[],
    )
    .await;
    assert!(policy.status.success(), "{}", stderr(&policy));
    let shown = tenantctl(&api, Some(READ), &["policy", "get"], &[]).await;
    assert!(stdout(&shown).contains("1.1.0"));

    let local_only = tenantctl(&api, Some(ADMIN), &["table", "create"], &[]).await;
    assert_eq!(local_only.status.code(), Some(2));
    let bad_server = tokio::process::Command::new(env!("CARGO_BIN_EXE_tenantctl"))
        .args(["--server", "ftp://nowhere", "tenant", "list"])
        .env("TENANTCTL_TOKEN", READ)
        .output()
        .await
        .unwrap();
    assert_eq!(bad_server.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pipeline_starts_and_follows_a_rollout_through_the_api() {
    let api = spawn().await;
    for id in ["pipe-a", "pipe-b"] {
        api.create_tenant(id, "eu-west-1", "default").await;
    }
    api.settle().await;
    let background = api.run_worker_and_controller("cli-remote-test");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("rollout.json");
    std::fs::write(
        &spec,
        r#"{"release": "1.1.0", "strategy": {"waves": ["1", "100%"], "bake_time": "0s", "bake_checks": 0,
            "approvals": {"after_canary": false}}}"#,
    )
    .unwrap();
    let spec = spec.to_str().unwrap();

    let plan = tenantctl(&api, Some(READ), &["rollout", "plan", "--spec", spec], &[]).await;
    assert!(plan.status.success(), "{}", stderr(&plan));
    assert!(
        stdout(&plan).contains("2 tenants in 2 waves"),
        "{}",
        stdout(&plan)
    );
    let read_only = tenantctl(
        &api,
        Some(READ),
        &["rollout", "start", "--spec", spec, "--id", "r-cli"],
        &[],
    )
    .await;
    assert_eq!(read_only.status.code(), Some(9), "{}", stderr(&read_only));

    let started = tenantctl(
        &api,
        Some(DEPLOY),
        &[
            "rollout", "start", "--spec", spec, "--id", "r-cli", "--wait", "--poll", "200ms",
        ],
        &[("TF_BUILD", "True"), ("TENANTCTL_PROGRESS", "")],
    )
    .await;
    let err = stderr(&started);
    assert!(started.status.success(), "{err}");
    assert!(err.contains("##[group]Rollout r-cli of 1.1.0"), "{err}");
    assert!(err.contains("##vso[task.setprogress value=100;]"), "{err}");
    assert!(
        stdout(&started).contains("phase:     completed"),
        "{}",
        stdout(&started)
    );

    // A re-run of the pipeline step finds the same rollout instead of starting another.
    let again = tenantctl(
        &api,
        Some(DEPLOY),
        &["rollout", "start", "--spec", spec, "--id", "r-cli"],
        &[],
    )
    .await;
    assert!(
        stdout(&again).contains("was already started"),
        "{}",
        stdout(&again)
    );
    let listed = tenantctl(&api, Some(READ), &["rollout", "list", "--all"], &[]).await;
    assert_eq!(
        stdout(&listed).lines().filter(|l| l.starts_with("r-cli")).count(),
        1
    );
    let status = tenantctl(&api, Some(READ), &["rollout", "status", "r-cli"], &[]).await;
    assert!(stdout(&status).contains("pipe-b"), "{}", stdout(&status));
    // The tenants a page at a time, each page saying how to read the next.
    let first = tenantctl(
        &api,
        Some(READ),
        &["rollout", "members", "r-cli", "--limit", "1"],
        &[],
    )
    .await;
    let out = stdout(&first);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(out.contains("pipe-a") && !out.contains("pipe-b"), "{out}");
    let hint = "next page: tenantctl rollout members r-cli --limit 1 --next-token ";
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix(hint))
        .unwrap_or_else(|| panic!("no next page in {out}"));
    let second = tenantctl(
        &api,
        Some(READ),
        &[
            "rollout",
            "members",
            "r-cli",
            "--limit",
            "1",
            "--next-token",
            token,
        ],
        &[],
    )
    .await;
    let out = stdout(&second);
    assert!(out.contains("pipe-b") && !out.contains("pipe-a"), "{out}");
    let no_wave = tenantctl(
        &api,
        Some(READ),
        &["rollout", "members", "r-cli", "--wave", "5"],
        &[],
    )
    .await;
    assert_eq!(no_wave.status.code(), Some(2), "{}", stderr(&no_wave));
    assert!(stderr(&no_wave).contains("has no wave 5"), "{}", stderr(&no_wave));
    let too_many = tenantctl(
        &api,
        Some(READ),
        &["rollout", "members", "r-cli", "--limit", "0"],
        &[],
    )
    .await;
    assert_eq!(too_many.status.code(), Some(2), "{}", stderr(&too_many));
    // The tenants a rollout skipped, a page at a time too.
    let ghosts = dir.path().join("ghosts.json");
    std::fs::write(
        &ghosts,
        r#"{"release": "1.1.0", "selector": {"tenants": ["ghost-1", "ghost-2", "ghost-3"]}}"#,
    )
    .unwrap();
    let ghosts = ghosts.to_str().unwrap();
    let started = tenantctl(
        &api,
        Some(DEPLOY),
        &["rollout", "start", "--spec", ghosts, "--id", "r-ghosts"],
        &[],
    )
    .await;
    assert!(stdout(&started).contains("3 skipped"), "{}", stdout(&started));
    let first = tenantctl(
        &api,
        Some(READ),
        &["rollout", "skipped", "r-ghosts", "--limit", "2"],
        &[],
    )
    .await;
    let out = stdout(&first);
    assert!(
        out.contains("ghost-1") && out.contains("ghost-2") && !out.contains("ghost-3"),
        "{out}"
    );
    assert!(
        out.contains("named in the selector but not in the fleet"),
        "{out}"
    );
    let hint = "next page: tenantctl rollout skipped r-ghosts --limit 2 --next-token ";
    let token =
        (out.lines().find_map(|l| l.strip_prefix(hint))).unwrap_or_else(|| panic!("no next page in {out}"));
    let second = tenantctl(
        &api,
        Some(READ),
        &[
            "rollout",
            "skipped",
            "r-ghosts",
            "--limit",
            "2",
            "--next-token",
            token,
        ],
        &[],
    )
    .await;
    let out = stdout(&second);
    assert!(out.contains("ghost-3") && !out.contains("ghost-1"), "{out}");
    let unknown = tenantctl(&api, Some(READ), &["rollout", "status", "r-nope"], &[]).await;
    assert_eq!(unknown.status.code(), Some(3));
    let finished = tenantctl(&api, Some(DEPLOY), &["rollout", "pause", "r-cli"], &[]).await;
    assert_eq!(
        finished.status.code(),
        Some(4),
        "a completed rollout cannot be paused"
    );
    background.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forged_page_token_is_invalid_input_through_the_api() {
    let api = spawn().await;
    for id in ["alpha", "bravo"] {
        api.create_tenant(id, "eu-west-1", "default").await;
    }
    let first = tenantctl(
        &api,
        Some(READ),
        &["tenant", "list", "--limit", "1", "--output", "json"],
        &[],
    )
    .await;
    let page: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let token = page["next_token"].as_str().unwrap();
    let next = tenantctl(
        &api,
        Some(READ),
        &["tenant", "list", "--next-token", token, "--output", "json"],
        &[],
    )
    .await;
    let page: serde_json::Value = serde_json::from_slice(&next.stdout).unwrap();
    assert_eq!(page["items"][0]["id"], "bravo");

    let hand_built = {
        use base64::Engine;
        let store_token = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"region":"eu-west-1","key":{"list_pk":"REGION#eu-west-1"}}"#);
        let digest = {
            use sha2::Digest;
            let d = sha2::Sha256::digest("tenants\0\0\0\0".as_bytes());
            d[..8].iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::json!({"t": store_token, "q": digest}).to_string())
    };
    let out = tenantctl(
        &api,
        Some(READ),
        &["tenant", "list", "--next-token", &hand_built],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("next_token was not issued for this query; start from the first page"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hostname_another_tenant_uses_is_a_conflict_through_the_api() {
    let api = spawn().await;
    assert!(tenantctl(&api, Some(DEPLOY), CREATE, &[]).await.status.success());
    let mut copycat = CREATE.to_vec();
    copycat[3] = "remote-two";
    let refused = tenantctl(&api, Some(DEPLOY), &copycat, &[]).await;
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("hostname remote-one.example.com is already used by tenant remote-one"),
        "{}",
        stderr(&refused)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenant_update_changes_the_spec_through_the_api_and_windows_travel_as_text() {
    let api = spawn().await;
    let mut create = CREATE.to_vec();
    create.extend(["--maintenance", "Europe/Berlin Sun 02:00 4h"]);
    let created = tenantctl(&api, Some(DEPLOY), &create, &[]).await;
    assert!(created.status.success(), "{}", stderr(&created));
    let view: serde_json::Value = serde_json::from_str(&stdout(
        &tenantctl(
            &api,
            Some(READ),
            &["--output", "json", "tenant", "get", "remote-one"],
            &[],
        )
        .await,
    ))
    .unwrap();
    assert_eq!(view["maintenance"], "Europe/Berlin Sun 02:00 4h");
    api.settle().await;

    let nothing = tenantctl(&api, Some(ADMIN), &["tenant", "update", "remote-one"], &[]).await;
    assert_eq!(nothing.status.code(), Some(2), "{}", stderr(&nothing));
    assert!(
        stderr(&nothing).contains("nothing to change"),
        "{}",
        stderr(&nothing)
    );

    let args = [
        "--output",
        "json",
        "tenant",
        "update",
        "remote-one",
        "--tier",
        "large",
        "--maintenance",
        "UTC Sat 01:00 2h",
        "--pin",
        "1.0.0",
    ];
    let updated = tenantctl(&api, Some(ADMIN), &args, &[]).await;
    assert!(updated.status.success(), "{}", stderr(&updated));
    let view: serde_json::Value = serde_json::from_str(&stdout(&updated)).unwrap();
    assert_eq!(view["tier"], "large");
    assert_eq!(view["pinned_release"], "1.0.0");

    assert_eq!(view["maintenance"], "UTC Sat 01:00 2h");

    let unpublished = tenantctl(
        &api,
        Some(ADMIN),
        &["tenant", "update", "remote-one", "--platform", "2.0.0"],
        &[],
    )
    .await;
    assert_eq!(unpublished.status.code(), Some(4), "{}", stderr(&unpublished));
    assert!(
        stderr(&unpublished).contains("no platform bucket is configured"),
        "{}",
        stderr(&unpublished)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plan_diff_shows_each_groups_change_set_and_exits_4_on_a_refused_replacement() {
    let api =
        spawn_with(|app| app.with_change_preview(std::sync::Arc::new(ReplacingClusterPreviewDouble))).await;
    for id in ["diff-a", "diff-b"] {
        api.create_tenant(id, "eu-west-1", "default").await;
    }
    api.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let refused_spec = dir.path().join("refused.json");
    std::fs::write(&refused_spec, r#"{"release": "1.1.0"}"#).unwrap();
    let allowed_spec = dir.path().join("allowed.json");
    std::fs::write(
        &allowed_spec,
        r#"{"release": "1.1.0", "strategy": {"allow_replacement": ["DatabaseCluster"]}}"#,
    )
    .unwrap();

    let refused = tenantctl(
        &api,
        Some(READ),
        &[
            "rollout",
            "plan",
            "--diff",
            "--spec",
            refused_spec.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    let out = stdout(&refused);
    assert!(out.contains("change preview: 1 group(s), 1 refused"), "{out}");
    assert!(
        out.contains("2 tenant(s) (diff-a, diff-b), previewed on diff-a"),
        "{out}"
    );
    assert!(out.contains("replacement always"), "{out}");
    assert!(
        out.contains("REFUSED: the change would replace DatabaseCluster"),
        "{out}"
    );
    assert!(
        stderr(&refused).contains("strategy.allow_replacement"),
        "{}",
        stderr(&refused)
    );

    let start = tenantctl(
        &api,
        Some(DEPLOY),
        &[
            "rollout",
            "start",
            "--spec",
            refused_spec.to_str().unwrap(),
            "--id",
            "r-diff",
        ],
        &[],
    )
    .await;
    assert_eq!(start.status.code(), Some(4), "{}", stderr(&start));

    let allowed = tenantctl(
        &api,
        Some(READ),
        &[
            "rollout",
            "plan",
            "--diff",
            "--spec",
            allowed_spec.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(allowed.status.success(), "{}", stderr(&allowed));
    let out = stdout(&allowed);
    assert!(
        out.contains("1 group(s), 0 refused") && out.contains("replacement always"),
        "{out}"
    );
    assert!(!out.contains("REFUSED"), "{out}");
}

#[tokio::test]
async fn the_plan_table_says_why_a_tenant_waits_for_a_later_window() {
    let api = spawn().await;
    for id in ["plan-free", "plan-windowed"] {
        api.create_tenant(id, "eu-west-1", "default").await;
    }
    api.settle().await;
    let now = chrono::Utc::now();
    let tomorrow = now + chrono::Duration::days(1);
    let at = |t: chrono::DateTime<chrono::Utc>, length: &str| format!("{} {length}", t.format("%a %H:%M"));
    // Open since five minutes ago for ten, and four hours tomorrow.
    let maintenance = format!(
        "UTC {}, {}",
        at(now - chrono::Duration::minutes(5), "10m"),
        at(tomorrow, "4h")
    );
    let set = tenantctl(
        &api,
        Some(ADMIN),
        &["tenant", "update", "plan-windowed", "--maintenance", &maintenance],
        &[],
    )
    .await;
    assert!(set.status.success(), "{}", stderr(&set));
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("rollout.json");
    std::fs::write(
        &spec,
        r#"{"release": "1.1.0", "strategy": {"waves": ["100%"], "bake_time": "0s", "bake_checks": 0, "outage_budget": "1h"}}"#,
    )
    .unwrap();

    let plan = tenantctl(
        &api,
        Some(READ),
        &["rollout", "plan", "--spec", spec.to_str().unwrap()],
        &[],
    )
    .await;

    assert!(plan.status.success(), "{}", stderr(&plan));
    let out = stdout(&plan);
    let line = |id: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(id))
            .unwrap_or_default()
    };
    let next = tomorrow.format("%Y-%m-%d %H:%M UTC").to_string();
    assert!(
        line("plan-windowed").contains("deferred: window closes in ")
            && line("plan-windowed").ends_with(&format!("budget 1h; next window {next}")),
        "{out}"
    );
    assert!(!line("plan-free").contains("deferred"), "{out}");
}

#[tokio::test]
async fn a_principal_bound_to_one_region_lists_and_acts_there_only() {
    let api = spawn().await;
    api.create_tenant("eu-one", "eu-west-1", "default").await;
    api.create_tenant("us-one", "us-east-1", "default").await;
    api.settle().await;

    let listed = tenantctl(&api, Some(EU_TEAM), &["tenant", "list", "--output", "json"], &[]).await;
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    assert!(stdout(&listed).contains("eu-one"), "{}", stdout(&listed));
    assert!(!stdout(&listed).contains("us-one"), "{}", stdout(&listed));

    let hidden = tenantctl(&api, Some(EU_TEAM), &["tenant", "get", "us-one"], &[]).await;
    assert_eq!(hidden.status.code(), Some(3), "{}", stderr(&hidden));

    let refused = tenantctl(
        &api,
        Some(EU_DEPLOYER),
        &["tenant", "upgrade", "us-one", "--release", "1.1.0"],
        &[],
    )
    .await;
    assert_eq!(refused.status.code(), Some(9), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("eu-deployer may not upgrade tenant us-one")
            && stderr(&refused).contains("deploy on regions [eu-west-1]"),
        "the API's message: {}",
        stderr(&refused)
    );

    let upgraded = tenantctl(
        &api,
        Some(EU_TEAM),
        &["tenant", "upgrade", "eu-one", "--release", "1.1.0"],
        &[],
    )
    .await;
    assert_eq!(upgraded.status.code(), Some(0), "{}", stderr(&upgraded));
}

/// A server that answers every request 503 with the API's error body, as `serve`
/// does when its table is unreachable.
async fn unavailable_server() -> String {
    let app = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"error": {"code": "unavailable",
                "message": "the state store is busy or unreachable; try again"}})),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

#[tokio::test]
async fn a_server_that_stays_unavailable_is_reported_with_what_it_said() {
    let base = unavailable_server().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tenantctl"))
        .args(["--server", &base, "tenant", "get", "acme"])
        .env("TENANTCTL_TOKEN", READ)
        .output()
        .await
        .expect("tenantctl runs");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("answered 503: the state store is busy or unreachable; try again (after 4 attempts)"),
        "{said}"
    );
}
