//! `tenantctl` as a user runs it, against DynamoDB Local.

use crate::{stderr, stdout};
use std::process::{Command, Output};

use crate::common::*;

fn tenantctl(table: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tenantctl"))
        .args(["--table", table])
        .args(args)
        .env("TENANTCTL_LOG", "warn")
        .env("TENANTCTL_ACTOR", "cli-test")
        .output()
        .unwrap()
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
    assert_eq!(record["hostnames"][0], "acme.example.com");
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

/// Moves a freshly created tenant straight to Active, as if every step had run.
async fn settle(store: &tenant_orchestrator::store::DynamoStore, id: &str) {
    use tenant_orchestrator::machine::TenantEvent;
    use tenant_orchestrator::store::{TenantStore, WriteGuard};
    let mut r = store.load(&tenant_id(id)).await.unwrap();
    while r.state.step().is_some() {
        let next = r.state.apply(&TenantEvent::StepSucceeded).unwrap();
        r.enter(next, chrono::Utc::now());
    }
    store.save(&r, WriteGuard::Version, None).await.unwrap();
}

#[tokio::test]
async fn rollout_plan_is_a_dry_run_that_shows_waves_and_skipped_tenants() {
    use tenant_orchestrator::app::TenantCommands;
    use tenant_orchestrator::record::Actor;
    let store = fresh_store().await;
    let commands = TenantCommands::new(store.clone());
    for (id, region) in [
        ("east-a", "us-east-1"),
        ("east-b", "us-east-1"),
        ("west-a", "eu-west-1"),
        ("west-b", "eu-west-1"),
    ] {
        commands
            .create(spec(id, region), release("1.0.0"), &Actor::operator("t"))
            .await
            .unwrap();
        settle(&store, id).await;
    }
    let mut pinned = spec("pinned", "us-east-1");
    pinned.pinned_release = Some(release("1.0.0"));
    commands
        .create(pinned, release("1.0.0"), &Actor::operator("t"))
        .await
        .unwrap();
    settle(&store, "pinned").await;

    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("spec.json");
    std::fs::write(
        &spec_path,
        r#"{"release":"1.1.0","strategy":{"region_order":["eu-west-1","us-east-1"],"waves":["1","100%"]}}"#,
    )
    .unwrap();
    let out = tenantctl(
        store.table(),
        &["rollout", "plan", "--spec", spec_path.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("release 1.1.0: 4 tenants in 4 waves, regions in order eu-west-1, us-east-1"),
        "{text}"
    );
    assert!(
        text.contains("pinned                       pinned to 1.0.0"),
        "{text}"
    );
    let west_canary = text.find("west-a").unwrap();
    let east = text.find("east-a").unwrap();
    assert!(
        west_canary < east,
        "the first region in the order goes first: {text}"
    );
    // Nothing was started.
    let list = tenantctl(
        store.table(),
        &["tenant", "list", "--state", "Upgrading", "--output", "json"],
    );
    let page: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert!(page["items"].as_array().unwrap().is_empty());

    std::fs::write(
        &spec_path,
        r#"{"release":"1.1.0","strategy":{"waves":["1","150%"]}}"#,
    )
    .unwrap();
    let bad = tenantctl(
        store.table(),
        &["rollout", "plan", "--spec", spec_path.to_str().unwrap()],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("\"150%\": is over 100%"),
        "{}",
        stderr(&bad)
    );

    // The target flags make a spec of their own, or replace the file's target.
    let tier = tenantctl(
        store.table(),
        &["rollout", "plan", "--tier", "large", "--reconcile"],
    );
    assert!(tier.status.success(), "{}", stderr(&tier));
    assert!(
        stdout(&tier).starts_with("tier large, reconcile: 4 tenants"),
        "every unpinned tenant, on the release it runs: {}",
        stdout(&tier)
    );
    let none = tenantctl(store.table(), &["rollout", "plan"]);
    assert_eq!(none.status.code(), Some(2));
    assert!(
        stderr(&none).contains("\"target\": is missing; give at least one of `release`, `platform`")
            && stderr(&none).contains("--release, --platform, --tier or --reconcile"),
        "{}",
        stderr(&none)
    );
    let bad_tier = tenantctl(
        store.table(),
        &[
            "rollout",
            "plan",
            "--spec",
            spec_path.to_str().unwrap(),
            "--tier",
            "huge",
        ],
    );
    assert_eq!(bad_tier.status.code(), Some(2));
    assert!(
        stderr(&bad_tier).contains("unknown variant `huge`"),
        "{}",
        stderr(&bad_tier)
    );
}

#[tokio::test]
async fn new_tenants_get_the_release_the_version_policy_gives_them() {
    let store = fresh_store().await;
    let table = store.table();
    let create = |id: &str, group: &str| {
        tenantctl(
            table,
            &[
                "tenant",
                "create",
                "--id",
                id,
                "--region",
                "us-east-1",
                "--environment",
                "prod",
                "--group",
                group,
                "--hostname",
                &format!("{id}.example.com"),
                "--output",
                "json",
            ],
        )
    };
    // Like the API's 409 no_release: the request is well formed, the stored policy
    // has nothing for it.
    let refused = create("no-policy", "default");
    assert_eq!(refused.status.code(), Some(4));
    assert!(
        stderr(&refused).contains("pass --release or set one with `tenantctl policy set-default`"),
        "{}",
        stderr(&refused)
    );

    let set = tenantctl(
        table,
        &[
            "policy",
            "set-default",
            "--environment",
            "prod",
            "--region",
            "us-east-1",
            "--release",
            "1.4.0",
        ],
    );
    assert!(set.status.success(), "{}", stderr(&set));
    let set = tenantctl(
        table,
        &[
            "policy",
            "set-group",
            "--environment",
            "prod",
            "--group",
            "canary",
            "--release",
            "1.5.0",
        ],
    );
    assert!(set.status.success(), "{}", stderr(&set));

    let release_of = |out: &Output| {
        assert!(out.status.success(), "{}", stderr(out));
        let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(record["state"], "Provisioning");
        record["target_release"].as_str().unwrap().to_owned()
    };
    assert_eq!(release_of(&create("regular", "default")), "1.4.0");
    assert_eq!(release_of(&create("early", "canary")), "1.5.0");

    let bad = tenantctl(
        table,
        &[
            "policy",
            "set-default",
            "--environment",
            "prod",
            "--region",
            "us-east-1",
            "--release",
            "latest",
        ],
    );
    assert_eq!(bad.status.code(), Some(2));
    let policy = tenantctl(table, &["policy", "get"]);
    assert!(
        stdout(&policy).contains("1.4.0"),
        "a refused change left the policy as it was: {}",
        stdout(&policy)
    );
}

#[tokio::test]
async fn a_config_file_sets_options_below_the_environment_and_flags() {
    let store = fresh_store().await;
    let created = tenantctl(store.table(), CREATE);
    assert!(created.status.success(), "{}", stderr(&created));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tenantctl.yaml");
    std::fs::write(&config, format!("table: {}\noutput: json\n", store.table())).unwrap();
    let run = |extra_env: &[(&str, &str)], args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tenantctl"));
        c.args(args)
            .env("TENANTCTL_LOG", "warn")
            .env_remove("TENANTCTL_TABLE");
        for (k, v) in extra_env {
            c.env(k, v);
        }
        c.output().unwrap()
    };

    let listed = run(&[], &["--config", config.to_str().unwrap(), "tenant", "list"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let page: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("output: json from the file");
    assert_eq!(page["items"][0]["id"], "acme");

    // The environment wins over the file, and a flag over both.
    let env_wins = run(
        &[
            ("TENANTCTL_CONFIG", config.to_str().unwrap()),
            ("TENANTCTL_OUTPUT", "table"),
        ],
        &["tenant", "list"],
    );
    assert!(stdout(&env_wins).starts_with("TENANT"), "{}", stdout(&env_wins));
    let flag_wins = run(
        &[],
        &[
            "--config",
            config.to_str().unwrap(),
            "--table",
            "no-such-table",
            "tenant",
            "list",
        ],
    );
    assert!(!flag_wins.status.success());

    std::fs::write(&config, "tabel: oops\n").unwrap();
    let unknown = run(&[], &["--config", config.to_str().unwrap(), "tenant", "list"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("unknown option \"tabel\""),
        "{}",
        stderr(&unknown)
    );
}

#[tokio::test]
async fn a_tenant_is_created_with_maintenance_windows_or_the_error_says_how_to_write_them() {
    let store = fresh_store().await;
    let mut args = CREATE.to_vec();
    args.extend(["--maintenance", "America/New_York Sat 22:00 6h"]);
    let created = tenantctl(store.table(), &args);
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(
        stdout(&created).contains("maintenance:   America/New_York Sat 22:00 6h"),
        "{}",
        stdout(&created)
    );

    let mut bad = CREATE.to_vec();
    bad[3] = "other";
    bad.extend(["--maintenance", "Sat 22:00"]);
    let refused = tenantctl(store.table(), &bad);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("invalid maintenance window"),
        "{}",
        stderr(&refused)
    );
}

#[tokio::test]
async fn fleet_check_passes_a_sound_fleet_and_names_a_stranded_tenant() {
    require_local_aws();
    let table = format!("cli-{}", uuid::Uuid::new_v4().simple());
    assert!(tenantctl(&table, &["table", "create"]).status.success());
    let created = tenantctl(&table, CREATE);
    assert!(created.status.success(), "{}", stderr(&created));

    let sound = tenantctl(&table, &["fleet", "check"]);
    assert!(sound.status.success(), "{}", stderr(&sound));
    assert!(stdout(&sound).contains("checked tenants: 1, rollouts: 0; every invariant holds"));

    // Take the provisioning tenant out of the work index, as the lost-release race did.
    dynamodb_client()
        .await
        .update_item()
        .table_name(&table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("TENANT#acme".into()),
        )
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("TENANT".into()))
        .update_expression("REMOVE work_sk")
        .send()
        .await
        .unwrap();
    let broken = tenantctl(&table, &["fleet", "check", "--output", "json"]);
    assert_eq!(broken.status.code(), Some(7), "{}", stderr(&broken));
    let report: serde_json::Value = serde_json::from_slice(&broken.stdout).unwrap();
    assert_eq!(report["violations"][0]["invariant"], "missing_work_entry");
    assert_eq!(report["violations"][0]["subject"], "acme");
    assert!(stderr(&broken).contains("1 fleet invariants are broken"));
}

const NOT_ISSUED: &str = "next_token was not issued for this query; start from the first page";

#[tokio::test]
async fn a_page_token_the_table_did_not_issue_is_invalid_input() {
    require_local_aws();
    let store = fresh_store().await;
    let table = store.table();
    for id in ["alpha", "bravo"] {
        let hostname = format!("{id}.example.com");
        let created = tenantctl(
            table,
            &[
                "tenant",
                "create",
                "--id",
                id,
                "--region",
                "us-east-1",
                "--environment",
                "prod",
                "--hostname",
                &hostname,
                "--release",
                "1.0.0",
            ],
        );
        assert!(created.status.success(), "{}", stderr(&created));
    }
    let first = tenantctl(table, &["tenant", "list", "--limit", "1", "--output", "json"]);
    let page: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let token = page["next_token"].as_str().unwrap();
    let next = tenantctl(
        table,
        &["tenant", "list", "--next-token", token, "--output", "json"],
    );
    let page: serde_json::Value = serde_json::from_slice(&next.stdout).unwrap();
    assert_eq!(page["items"][0]["id"], "bravo");

    // A start key of the right shape that this table never issued: it used to reach
    // DynamoDB, and the CLI printed the SDK's validation error with exit code 1.
    let hand_built = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"region":"us-east-1","key":{"list_pk":"REGION#us-east-1"}}"#)
    };
    for forged in [hand_built.as_str(), "e30"] {
        let out = tenantctl(table, &["tenant", "list", "--next-token", forged]);
        assert_eq!(out.status.code(), Some(2), "{forged}: {}", stderr(&out));
        assert!(stderr(&out).contains(NOT_ISSUED), "{}", stderr(&out));
        assert!(!stderr(&out).contains("ValidationException"), "{}", stderr(&out));
    }
    let other_filter = tenantctl(
        table,
        &["tenant", "list", "--state", "Active", "--next-token", token],
    );
    assert_eq!(other_filter.status.code(), Some(2), "{}", stderr(&other_filter));
    assert!(stderr(&other_filter).contains(NOT_ISSUED));
}

#[tokio::test]
async fn a_hostname_another_tenant_uses_is_a_conflict_and_table_create_claims_old_ones() {
    require_local_aws();
    let table = format!("cli-{}", uuid::Uuid::new_v4().simple());
    assert!(tenantctl(&table, &["table", "create"]).status.success());
    assert!(tenantctl(&table, CREATE).status.success());
    let mut copycat = CREATE.to_vec();
    copycat[3] = "globex";
    copycat[9] = "Acme.Example.com";
    let refused = tenantctl(&table, &copycat);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains(
            "hostname acme.example.com is already used by tenant acme; choose another hostname or remove it from acme first"
        ),
        "{}",
        stderr(&refused)
    );

    // A tenant recorded before hostnames were claimed: `table create` claims its names.
    let client = dynamodb_client().await;
    client
        .delete_item()
        .table_name(&table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("HOST#acme.example.com".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("HOSTNAME".into()),
        )
        .send()
        .await
        .unwrap();
    let again = tenantctl(&table, &["table", "create"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("hostnames of existing tenants: 1 claimed"),
        "{}",
        stdout(&again)
    );
    assert_eq!(tenantctl(&table, &copycat).status.code(), Some(4));
}
