//! `tenantctl` refuses the same input with the same exit code against the table and
//! with `--server`, and both refuse commands on a tenant a running rollout or a freeze
//! holds.

use crate::stderr;
use std::process::Output;

use crate::api_support::holds::canary_held_by_running_rollout;
use crate::api_support::{spawn, TestApi, ADMIN, DEPLOY};

/// How a test runs `tenantctl`: against the API's table, or through the API.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Table,
    Server(&'static str),
}

async fn tenantctl(api: &TestApi, mode: Mode, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tenantctl"));
    command
        .env_remove("TENANTCTL_TOKEN")
        .env_remove("TENANTCTL_SERVER")
        .env_remove("TENANTCTL_EXTRA_REGIONS")
        .env("TENANTCTL_LOG", "warn")
        .env("TENANTCTL_ACTOR", "cli-test")
        .env("TENANTCTL_PROGRESS", "plain");
    match mode {
        Mode::Table => command.args(["--table", api.store.table()]),
        Mode::Server(token) => command
            .args(["--server", &api.base])
            .env("TENANTCTL_TOKEN", token),
    };
    command.args(args).envs(env.iter().copied());
    command.output().await.expect("tenantctl runs")
}

fn assert_exit(o: &Output, code: i32, says: &str, mode: Mode) {
    assert_eq!(o.status.code(), Some(code), "{mode:?}: {}", stderr(o));
    assert!(stderr(o).contains(says), "{mode:?}: {}", stderr(o));
}

const BOTH: [Mode; 2] = [Mode::Table, Mode::Server(ADMIN)];

fn create_args<'a>(id: &'a str, region: &'a str, hostname: &'a str, release: &'a str) -> Vec<&'a str> {
    vec![
        "tenant",
        "create",
        "--id",
        id,
        "--region",
        region,
        "--environment",
        "test",
        "--hostname",
        hostname,
        "--release",
        release,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_exits_2_in_both_modes_and_changes_nothing() {
    let api = spawn().await;
    let long_release = format!("1.0.0-{}", "a".repeat(130));
    for mode in BOTH {
        let started = std::time::Instant::now();
        let wait = tenantctl(
            &api,
            mode,
            &["tenant", "wait", "acme", "--state", "Bogus", "--timeout", "5s"],
            &[],
        )
        .await;
        assert_exit(&wait, 2, "unknown state \"Bogus\"; use one of", mode);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(4),
            "{mode:?}: refused at once"
        );

        for limit in ["0", "5000"] {
            let list = tenantctl(&api, mode, &["tenant", "list", "--limit", limit], &[]).await;
            assert_exit(
                &list,
                2,
                &format!("--limit {limit} is out of range; use 1-1000"),
                mode,
            );
        }

        let missing = tenantctl(
            &api,
            mode,
            &["rollout", "plan", "--spec", "/nonexistent/rollout.json"],
            &[],
        )
        .await;
        assert_exit(
            &missing,
            2,
            "cannot read the rollout spec /nonexistent/rollout.json",
            mode,
        );

        let restore = tenantctl(
            &api,
            mode,
            &["tenant", "restore", "acme", "--snapshot", "x; drop table"],
            &[],
        )
        .await;
        assert_exit(&restore, 2, "invalid snapshot \"x; drop table\"", mode);

        let cases = [
            (
                create_args("acme", "zz-nowhere-9", "acme.example.com", "1.0.0"),
                "not an AWS region",
            ),
            (
                create_args("acme", "eu-west-1", "acme.example.com..", "1.0.0"),
                "more than one '.'",
            ),
            (
                create_args("acme", "eu-west-1", "acme.example.com", &long_release),
                "at most 128",
            ),
        ];
        for (args, says) in cases {
            let created = tenantctl(&api, mode, &args, &[]).await;
            assert_exit(&created, 2, says, mode);
        }
        let filtered = tenantctl(&api, mode, &["tenant", "list", "--region", "zz-nowhere-9"], &[]).await;
        assert_exit(&filtered, 2, "not an AWS region", mode);
        let policy = [
            "policy",
            "set-default",
            "--environment",
            "test",
            "--region",
            "zz-nowhere-9",
            "--release",
            "1.0.0",
        ];
        assert_exit(
            &tenantctl(&api, mode, &policy, &[]).await,
            2,
            "not an AWS region",
            mode,
        );
    }
    let list = tenantctl(&api, Mode::Table, &["tenant", "list", "--output", "json"], &[]).await;
    let page: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(page["items"], serde_json::json!([]), "nothing was created");
}

#[tokio::test]
async fn a_region_newer_than_the_built_in_list_is_configured_explicitly() {
    let api = spawn().await;
    let args = create_args("acme", "ap-southeast-9", "acme.example.com", "1.0.0");
    let refused = tenantctl(&api, Mode::Table, &args, &[]).await;
    assert_exit(&refused, 2, "--extra-regions", Mode::Table);
    let configured = tenantctl(
        &api,
        Mode::Table,
        &args,
        &[("TENANTCTL_EXTRA_REGIONS", "ap-southeast-9")],
    )
    .await;
    assert!(configured.status.success(), "{}", stderr(&configured));
    let odd = tenantctl(
        &api,
        Mode::Table,
        &["tenant", "get", "acme"],
        &[("TENANTCTL_EXTRA_REGIONS", "nowhere")],
    )
    .await;
    assert_exit(&odd, 2, "invalid extra region \"nowhere\"", Mode::Table);
    // The fleet check at the end of the test reads the tenant in this process, which
    // must know the region too, as every replica reading the table must.
    tenant_orchestrator::domain::allow_extra_regions(&["ap-southeast-9"]).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_held_by_a_running_rollout_is_refused_with_exit_4_until_overridden() {
    let api = spawn().await;
    let canary = canary_held_by_running_rollout(&api, "r-cli-hold", &["alpha", "bravo"]).await;
    let upgrade = ["tenant", "upgrade", canary.as_str(), "--release", "1.2.0"];
    let held = "held by rollout r-cli-hold, which is running; pause or abort rollout r-cli-hold";
    for mode in BOTH {
        assert_exit(&tenantctl(&api, mode, &upgrade, &[]).await, 4, held, mode);
        let deprovision = ["tenant", "deprovision", canary.as_str()];
        assert_exit(&tenantctl(&api, mode, &deprovision, &[]).await, 4, held, mode);
    }
    let overriding = [
        "tenant",
        "upgrade",
        canary.as_str(),
        "--release",
        "1.2.0",
        "--override-rollout-hold",
    ];
    let not_admin = tenantctl(&api, Mode::Server(DEPLOY), &overriding, &[]).await;
    assert_exit(&not_admin, 9, "admin", Mode::Server(DEPLOY));
    let done = tenantctl(&api, Mode::Table, &overriding, &[]).await;
    assert!(done.status.success(), "{}", stderr(&done));

    let history = tenantctl(
        &api,
        Mode::Table,
        &["tenant", "history", canary.as_str(), "--output", "json"],
        &[],
    )
    .await;
    let events: Vec<serde_json::Value> = serde_json::from_slice(&history.stdout).unwrap();
    let last = events.last().unwrap();
    assert_eq!(last["actor"], "operator:cli-test");
    assert_eq!(
        last["cause"],
        "Upgrade to 1.2.0 (admin override of the hold of rollout r-cli-hold, running)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_tenant_is_refused_with_exit_4_until_an_admin_overrides_the_freeze_saying_why() {
    let api = spawn().await;
    api.create_tenant("alpha", "eu-west-1", "default").await;
    api.settle().await;
    let now = chrono::Utc::now();
    let freeze = serde_json::json!({
        "environment": "test", "region": "eu-west-1",
        "from": now - chrono::TimeDelta::minutes(1), "until": now + chrono::TimeDelta::hours(1),
        "reason": "year-end"
    });
    let added = api
        .call(reqwest::Method::POST, "/v1/freezes", Some(ADMIN), Some(freeze))
        .await;
    assert_eq!(added.status, reqwest::StatusCode::CREATED, "{}", added.body);
    let id = added.body["id"].as_str().unwrap().to_owned();

    let upgrade = ["tenant", "upgrade", "alpha", "--release", "1.2.0"];
    for mode in BOTH {
        let refused = tenantctl(&api, mode, &upgrade, &[]).await;
        assert_exit(&refused, 4, "tenant alpha is frozen until", mode);
        assert_exit(&refused, 4, "--override-freeze", mode);
        let tier = ["tenant", "update", "alpha", "--tier", "large"];
        assert_exit(&tenantctl(&api, mode, &tier, &[]).await, 4, "year-end", mode);
    }
    let overriding = [&upgrade[..], &["--override-freeze", "security fix"]].concat();
    let not_admin = tenantctl(&api, Mode::Server(DEPLOY), &overriding, &[]).await;
    assert_exit(&not_admin, 9, "admin", Mode::Server(DEPLOY));
    let blank = [&upgrade[..], &["--override-freeze", " "]].concat();
    assert_exit(
        &tenantctl(&api, Mode::Table, &blank, &[]).await,
        2,
        "must say why",
        Mode::Table,
    );
    let done = tenantctl(&api, Mode::Table, &overriding, &[]).await;
    assert!(done.status.success(), "{}", stderr(&done));

    let history = tenantctl(
        &api,
        Mode::Table,
        &["tenant", "history", "alpha", "--output", "json"],
        &[],
    )
    .await;
    let events: Vec<serde_json::Value> = serde_json::from_slice(&history.stdout).unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        last["cause"],
        format!("Upgrade to 1.2.0 (freeze {id} overridden by operator:cli-test: security fix)")
    );
}
