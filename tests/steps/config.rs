//! WriteConfig and DeleteConfig against moto's SSM.

use std::collections::BTreeMap;

use aws_sdk_ssm::types::{ParameterType, ResourceTypeForTagging};
use tenant_orchestrator::domain::{Hostname, TenantSpec, Tier};
use tenant_orchestrator::record::TenantFacts;
use tenant_orchestrator::steps::config::{DeleteConfig, WriteConfig};
use tenant_orchestrator::steps::{names, AwsClients};

use crate::aws_support::*;
use crate::fault_proxy_support::{sdk_config_through, FaultProxy};

/// A parameter as read back with decryption.
#[derive(Debug, Clone, PartialEq)]
struct Param {
    value: String,
    kind: ParameterType,
    version: i64,
}

/// Every parameter under `prefix`, by name relative to it.
async fn read_back(prefix: &str) -> BTreeMap<String, Param> {
    let client = ssm().await;
    let mut found = BTreeMap::new();
    let mut token = None;
    loop {
        let page = client
            .get_parameters_by_path()
            .path(prefix)
            .recursive(true)
            .with_decryption(true)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        for p in page.parameters() {
            let name = p.name().unwrap();
            let relative = name
                .strip_prefix(&format!("{prefix}/"))
                .unwrap_or(name)
                .to_owned();
            found.insert(
                relative,
                Param {
                    value: p.value().unwrap().to_owned(),
                    kind: p.r#type().unwrap().clone(),
                    version: p.version(),
                },
            );
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return found;
        }
    }
}

fn configuring(spec: &TenantSpec) -> tenant_orchestrator::record::TenantRecord {
    let facts = TenantFacts {
        stack_outputs: stack_outputs(&format!("db-{}", spec.id)),
        ..TenantFacts::default()
    };
    // CheckArtifact and ProvisionInfra done: WriteConfig is due.
    record(spec, provisioning("1.0.0", 2), facts)
}

async fn put(name: &str, value: &str) {
    ssm()
        .await
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(ParameterType::String)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn write_config_stores_configuration_and_an_encrypted_generated_secret() {
    let spec = tenant_spec();
    let step = WriteConfig::new(aws().await);
    let tenant = configuring(&spec);

    let output = expect_done(run(&step, &tenant).await);

    let prefix = names::ssm_prefix(&spec);
    assert_eq!(prefix, format!("/test/tenants/{}", spec.id));
    let stored = read_back(&prefix).await;
    let value = |name: &str| stored.get(name).map(|p| p.value.as_str());
    assert_eq!(value("config/tier"), Some("small"));
    assert_eq!(value("config/group"), Some("default"));
    assert_eq!(value("config/region"), Some(REGION));
    assert_eq!(
        value("config/hostnames"),
        Some(format!("{}.example.com", spec.id).as_str())
    );
    assert_eq!(stored["config/hostnames"].kind, ParameterType::StringList);
    assert_eq!(
        value("config/database-endpoint"),
        Some(tenant.facts.stack_outputs["DatabaseEndpoint"].as_str())
    );
    assert_eq!(
        value("config/bucket"),
        Some(tenant.facts.stack_outputs["BucketName"].as_str())
    );

    let secret = &stored["secrets/session-key"];
    assert_eq!(secret.kind, ParameterType::SecureString);
    let decoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &secret.value)
        .expect("the secret is base64");
    assert_eq!(decoded.len(), 32, "a 256-bit secret");
    for (name, p) in &stored {
        assert!(
            name.starts_with("config/") || name.starts_with("secrets/"),
            "{name}"
        );
        assert_eq!(
            p.kind == ParameterType::SecureString,
            name.starts_with("secrets/"),
            "{name} is {:?}: secrets and only secrets are encrypted",
            p.kind
        );
    }
    assert!(
        !output.summary.contains(&secret.value),
        "the summary must not leak the secret"
    );

    let arn_name = format!("{prefix}/secrets/session-key");
    let tags = ssm()
        .await
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id(&arn_name)
        .send()
        .await
        .unwrap();
    let tags: Vec<(&str, &str)> = tags.tag_list().iter().map(|t| (t.key(), t.value())).collect();
    assert!(tags.contains(&("tenant", spec.id.as_str())), "{tags:?}");
    assert!(tags.contains(&("managed-by", "tenant-orchestrator")), "{tags:?}");
}

/// SSM applies a create but its answer is lost; the SDK sends the request again and
/// gets `ParameterAlreadyExists`. The parameter holds what the step wrote: done.
#[tokio::test]
async fn a_create_whose_answer_was_lost_is_done_when_the_parameter_holds_our_value() {
    let proxy = FaultProxy::for_aws(1).await;
    proxy
        .set_rules(serde_json::json!([
            {"fault": "drop_answer", "service": "ssm", "operation": "PutParameter", "count": 1}
        ]))
        .await;
    let spec = tenant_spec();
    let step = WriteConfig::new(std::sync::Arc::new(AwsClients::new(
        sdk_config_through(&proxy).await,
    )));
    let tenant = configuring(&spec);

    let outcome = run(&step, &tenant).await;

    assert_eq!(proxy.injected("drop_answer").await, 1, "the fault was injected");
    expect_done(outcome);
    let stored = read_back(&names::ssm_prefix(&spec)).await;
    assert_eq!(stored.len(), 11, "every parameter written once: {stored:?}");
    assert!(stored.values().all(|p| p.version == 1), "{stored:?}");
    assert_eq!(
        stored["config/bucket"].value,
        tenant.facts.stack_outputs["BucketName"]
    );
}

#[tokio::test]
async fn a_rerun_keeps_the_secret_and_adds_no_version() {
    let spec = tenant_spec();
    let step = WriteConfig::new(aws().await);
    let tenant = configuring(&spec);
    expect_done(run(&step, &tenant).await);
    let before = read_back(&names::ssm_prefix(&spec)).await;

    let again = expect_done(run(&step, &tenant).await);

    let after = read_back(&names::ssm_prefix(&spec)).await;
    assert_eq!(after, before, "values, types and versions are unchanged");
    assert!(after.values().all(|p| p.version == 1), "{after:?}");
    assert!(again.summary.contains("up to date"), "{}", again.summary);
}

#[tokio::test]
async fn a_changed_spec_rewrites_only_what_changed() {
    let mut spec = tenant_spec();
    let step = WriteConfig::new(aws().await);
    expect_done(run(&step, &configuring(&spec)).await);
    let before = read_back(&names::ssm_prefix(&spec)).await;

    spec.tier = Tier::Large;
    spec.hostnames
        .push(Hostname::parse(&format!("www.{}.example.com", spec.id)).unwrap());
    let output = expect_done(run(&step, &configuring(&spec)).await);

    let after = read_back(&names::ssm_prefix(&spec)).await;
    assert_eq!(after["config/tier"].value, "large");
    assert_eq!(after["config/tier"].version, 2);
    assert_eq!(after["config/hostnames"].version, 2);
    assert!(after["config/hostnames"]
        .value
        .ends_with(&format!(",www.{}.example.com", spec.id)));
    let unchanged: Vec<&String> = before
        .keys()
        .filter(|k| !matches!(k.as_str(), "config/tier" | "config/hostnames"))
        .collect();
    for name in unchanged {
        assert_eq!(after[name], before[name], "{name} changed");
    }
    assert!(output.summary.contains("wrote 2 of"), "{}", output.summary);
}

#[tokio::test]
async fn a_secret_stored_unencrypted_is_encrypted_without_rotation() {
    let spec = tenant_spec();
    let prefix = names::ssm_prefix(&spec);
    put(&format!("{prefix}/secrets/session-key"), "left-in-plain-text").await;

    expect_done(run(&WriteConfig::new(aws().await), &configuring(&spec)).await);

    let secret = &read_back(&prefix).await["secrets/session-key"];
    assert_eq!(secret.kind, ParameterType::SecureString);
    assert_eq!(secret.value, "left-in-plain-text");
}

#[tokio::test]
async fn write_config_without_the_stack_outputs_fails_and_names_them() {
    let spec = tenant_spec();
    let mut tenant = configuring(&spec);
    tenant.facts.stack_outputs.remove("DatabaseEndpoint");

    let reason = expect_final_failure(run(&WriteConfig::new(aws().await), &tenant).await);

    assert!(
        reason.contains("DatabaseEndpoint") && reason.contains(&names::stack(&spec)),
        "{reason}"
    );
    assert!(
        read_back(&names::ssm_prefix(&spec)).await.is_empty(),
        "nothing half-written"
    );
}

#[tokio::test]
async fn delete_config_removes_configuration_and_secrets_but_leaves_the_stacks_and_neighbours() {
    let spec = tenant_spec();
    let prefix = names::ssm_prefix(&spec);
    let aws = aws().await;
    expect_done(run(&WriteConfig::new(aws.clone()), &configuring(&spec)).await);
    put(&format!("{prefix}/infra/database-endpoint"), "db.internal").await;
    // A tenant whose id starts with this one's: its parameters are not under our prefix.
    let neighbour = format!("{prefix}-corp/config/tier");
    put(&neighbour, "small").await;
    let written = read_back(&prefix).await.len();
    assert!(
        written > 10,
        "enough parameters to need two DeleteParameters batches: {written}"
    );

    let leaving = record(&spec, deprovisioning("1.0.0"), TenantFacts::default());
    let output = expect_done(run(&DeleteConfig::new(aws.clone()), &leaving).await);

    let left: Vec<String> = read_back(&prefix).await.into_keys().collect();
    assert_eq!(left, vec!["infra/database-endpoint".to_owned()]);
    assert_eq!(
        read_back(&format!("{prefix}-corp")).await.len(),
        1,
        "{neighbour} was deleted"
    );
    assert!(
        output
            .summary
            .contains(&format!("deleted {} parameters", written - 1)),
        "{}",
        output.summary
    );

    let again = expect_done(run(&DeleteConfig::new(aws), &leaving).await);
    assert!(
        again.summary.contains("no configuration left"),
        "{}",
        again.summary
    );
}
