//! `tenantctl audit`: the audit trail, through `--server` with an admin token and on
//! the table directly.

use std::process::Output;

use reqwest::{Method, StatusCode};

use crate::api_support::{spawn_with_tenants, TestApi, ADMIN, DEPLOY, EU_DEPLOYER, READ};
use crate::{stderr, stdout};

async fn tenantctl(api: &TestApi, server: Option<&str>, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tenantctl"));
    match server {
        Some(token) => {
            command
                .arg("--server")
                .arg(&api.base)
                .env("TENANTCTL_TOKEN", token);
        }
        None => {
            command
                .args(["--table", api.store.table()])
                .env_remove("TENANTCTL_TOKEN");
        }
    }
    command
        .args(args)
        .env_remove("TENANTCTL_SERVER")
        .env("TENANTCTL_LOG", "warn")
        .output()
        .await
        .expect("tenantctl runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_refused_prints_the_refusals_remotely_and_from_the_table() {
    let api = spawn_with_tenants(&[("us-one", "us-east-1")]).await;
    let started = api.start_rollout(DEPLOY, "r-us", &["us-east-1"]).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let refused = api
        .call(Method::POST, "/v1/rollouts/r-us/approve", Some(EU_DEPLOYER), None)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);

    for server in [Some(ADMIN), None] {
        let out = tenantctl(&api, server, &["audit", "--refused", "--since", "1h"]).await;
        assert!(out.status.success(), "{server:?}: {}", stderr(&out));
        let text = stdout(&out);
        assert_eq!(text.lines().count(), 1, "{server:?}: only the refusal: {text}");
        assert!(
            text.contains("refused")
                && text.contains("eu-deployer")
                && text.contains("(token eu-deployer)")
                && text.contains("approve rollout r-us")
                && text.contains("on rollout/r-us"),
            "{server:?}: {text}"
        );
        let granted = tenantctl(&api, server, &["audit", "--principal", "pipeline"]).await;
        assert!(granted.status.success(), "{}", stderr(&granted));
        assert!(stdout(&granted).contains("granted"), "{}", stdout(&granted));
    }

    let reader = tenantctl(&api, Some(READ), &["audit"]).await;
    assert_eq!(reader.status.code(), Some(9), "{}", stderr(&reader));
    let bad = tenantctl(&api, None, &["audit", "--since", "last week"]).await;
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("--since \"last week\" is neither a duration before now"),
        "{}",
        stderr(&bad)
    );
}
