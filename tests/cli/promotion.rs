//! `tenantctl promotion` and `rollout plan --environment` against DynamoDB Local.

use std::process::{Command, Output};

use crate::common::*;
use crate::{stderr, stdout};

fn tenantctl(table: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tenantctl"))
        .args(["--table", table])
        .args(args)
        .env("TENANTCTL_LOG", "warn")
        .env("TENANTCTL_ACTOR", "cli-test")
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_promotion_rule_is_set_listed_and_refused_with_what_to_do() {
    require_local_aws();
    let table = format!("cli-{}", uuid::Uuid::new_v4().simple());
    assert!(tenantctl(&table, &["table", "create"]).status.success());
    let dir = std::env::temp_dir().join(format!("promotion-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let template = dir.join("prod-rollout.json");
    std::fs::write(&template, r#"{"strategy": {"waves": ["1", "100%"]}}"#).unwrap();
    let with_release = dir.join("with-release.json");
    std::fs::write(&with_release, r#"{"release": "1.5.0"}"#).unwrap();
    let set = |file: &std::path::Path| {
        tenantctl(
            &table,
            &[
                "promotion",
                "set",
                "staging-to-prod",
                "--from",
                "staging",
                "--to",
                "prod",
                "--soak",
                "2h",
                "--approval",
                "-f",
                file.to_str().unwrap(),
            ],
        )
    };

    let stored = set(&template);
    assert!(stored.status.success(), "{}", stderr(&stored));
    let listed = tenantctl(&table, &["promotion", "list"]);
    assert!(
        stdout(&listed).contains("staging-to-prod\tstaging\tprod\t2h\tyes\tidle"),
        "{}",
        stdout(&listed)
    );
    let json = tenantctl(&table, &["--output", "json", "promotion", "list"]);
    let rules: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(rules[0]["rule"]["template"]["selector"]["environment"], "prod");
    assert_eq!(rules[0]["updated_by"], "operator:cli-test");

    let bad = set(&with_release);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("remove `release` from the template"),
        "{}",
        stderr(&bad)
    );
    let early = tenantctl(&table, &["promotion", "approve", "staging-to-prod"]);
    assert_eq!(early.status.code(), Some(4), "{}", stderr(&early));
    assert!(
        stderr(&early).contains("has no promotion yet"),
        "{}",
        stderr(&early)
    );
    let missing = tenantctl(&table, &["promotion", "get", "nope"]);
    assert_eq!(missing.status.code(), Some(3), "{}", stderr(&missing));

    let plan = tenantctl(
        &table,
        &[
            "rollout",
            "plan",
            "--release",
            "1.2.0",
            "--environment",
            "staging",
        ],
    );
    assert!(plan.status.success(), "{}", stderr(&plan));
    let bad_env = tenantctl(
        &table,
        &["rollout", "plan", "--release", "1.2.0", "--environment", "S"],
    );
    assert_eq!(bad_env.status.code(), Some(2), "{}", stderr(&bad_env));
    assert!(
        stderr(&bad_env).contains("invalid environment"),
        "{}",
        stderr(&bad_env)
    );

    let deleted = tenantctl(&table, &["promotion", "delete", "staging-to-prod"]);
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    std::fs::remove_dir_all(&dir).unwrap();
}
