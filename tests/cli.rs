//! `tenantctl` as a user runs it, against DynamoDB Local.

mod common;

use std::process::{Command, Output};

use common::*;

fn tenantctl(table: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tenantctl"))
        .args(["--table", table])
        .args(args)
        .env("TENANTCTL_LOG", "warn")
        .env("TENANTCTL_ACTOR", "cli-test")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const CREATE: &[&str] = &[
    "tenant",
    "create",
    "--id",
    "acme",
    "--region",
    "us-east-1",
    "--environment",
    "prod",
    "--hostname",
    "acme.example.com",
    "--release",
    "1.0.0",
];

#[tokio::test]
async fn table_create_is_idempotent_and_tenants_are_created_listed_and_shown() {
    require_local_aws();
    let table = format!("cli-{}", uuid::Uuid::new_v4().simple());
    let first = tenantctl(&table, &["table", "create"]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(stdout(&first).trim(), format!("table {table}: created"));
    let again = tenantctl(&table, &["table", "create"]);
    assert_eq!(stdout(&again).trim(), format!("table {table}: already exists"));

    let created = tenantctl(&table, CREATE);
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(stdout(&created).contains("Provisioning/CheckArtifact"));

    let got = tenantctl(&table, &["tenant", "get", "acme", "--output", "json"]);
    let record: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(record["spec"]["hostnames"][0], "acme.example.com");
    assert_eq!(record["version"], 1);

    let list = tenantctl(&table, &["tenant", "list", "--region", "us-east-1"]);
    assert!(
        stdout(&list)
            .lines()
            .any(|l| l.starts_with("acme ") && l.contains("1.0.0")),
        "{}",
        stdout(&list)
    );

    let history = tenantctl(&table, &["tenant", "history", "acme", "--output", "json"]);
    let events: Vec<serde_json::Value> = serde_json::from_slice(&history.stdout).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["cause"], "Provision 1.0.0");
    assert_eq!(events[0]["actor"], "operator:cli-test");
}

#[tokio::test]
async fn bad_input_is_refused_with_a_clear_message_and_writes_nothing() {
    require_local_aws();
    let store = fresh_store().await;
    let table = store.table();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "tenant",
                "create",
                "--id",
                "Acme_Corp",
                "--region",
                "us-east-1",
                "--environment",
                "prod",
                "--hostname",
                "a.example.com",
                "--release",
                "1.0.0",
            ],
            "invalid tenant id \"Acme_Corp\"",
        ),
        (
            &[
                "tenant",
                "create",
                "--id",
                "acme",
                "--region",
                "moon-1",
                "--environment",
                "prod",
                "--hostname",
                "a.example.com",
                "--release",
                "1.0.0",
            ],
            "like us-east-1",
        ),
        (
            &[
                "tenant",
                "create",
                "--id",
                "acme",
                "--region",
                "us-east-1",
                "--environment",
                "prod",
                "--hostname",
                "a.example.com",
                "--release",
                "latest",
            ],
            "semantic version like 1.4.2",
        ),
        (
            &[
                "tenant",
                "create",
                "--id",
                "acme",
                "--region",
                "us-east-1",
                "--environment",
                "prod",
                "--hostname",
                "localhost",
                "--release",
                "1.0.0",
            ],
            "fully qualified",
        ),
        (
            &[
                "tenant",
                "create",
                "--id",
                "acme",
                "--region",
                "us-east-1",
                "--environment",
                "prod",
                "--hostname",
                "a.example.com",
                "--release",
                "1.0.0",
                "--tier",
                "huge",
            ],
            "small, medium, large",
        ),
        (
            &["tenant", "list", "--state", "Broken"],
            "use one of New, Provisioning, Active",
        ),
        (&["tenant", "get", "NOPE"], "invalid tenant id"),
    ];
    for (args, expected) in cases {
        let out = tenantctl(table, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{args:?}: {}", stderr(&out));
    }
    let list = tenantctl(table, &["tenant", "list", "--output", "json"]);
    let page: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 0, "nothing was written");
}

#[tokio::test]
async fn unknown_tenants_and_refused_commands_have_their_own_exit_codes() {
    require_local_aws();
    let store = fresh_store().await;
    let table = store.table();
    let missing = tenantctl(table, &["tenant", "get", "nobody"]);
    assert_eq!(missing.status.code(), Some(3));
    assert!(stderr(&missing).contains("tenant nobody not found"));

    assert!(tenantctl(table, CREATE).status.success());
    let duplicate = tenantctl(table, CREATE);
    assert_eq!(duplicate.status.code(), Some(4));
    assert!(
        stderr(&duplicate).contains("already exists"),
        "{}",
        stderr(&duplicate)
    );

    let busy = tenantctl(table, &["tenant", "upgrade", "acme", "--release", "2.0.0"]);
    assert_eq!(busy.status.code(), Some(4));
    assert!(
        stderr(&busy).contains("a step is in progress; wait until the tenant is Active or Failed"),
        "{}",
        stderr(&busy)
    );

    let waited = tenantctl(table, &["tenant", "wait", "acme", "--timeout", "1s"]);
    assert_eq!(waited.status.code(), Some(1));
    assert!(
        stderr(&waited).contains("still working: acme (Provisioning/CheckArtifact)"),
        "{}",
        stderr(&waited)
    );
}

#[test]
fn a_missing_table_says_how_to_create_it() {
    require_local_aws();
    let out = tenantctl("no-such-table", &["tenant", "get", "acme"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("tenantctl table create --table no-such-table"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn worker_options_are_checked_before_starting() {
    let out = Command::new(env!("CARGO_BIN_EXE_tenantctl"))
        .args(["worker", "--lease-ttl", "10s", "--heartbeat", "5s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("at most a third of the lease TTL"),
        "{}",
        stderr(&out)
    );
}
