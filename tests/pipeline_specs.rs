//! The rollout specs the Azure Pipelines use (`azure-pipelines/specs/*.json`) parse with
//! the same parser `tenantctl rollout plan|start --spec` uses, so a pipeline never
//! reaches production with a spec the CLI refuses. Needs no AWS.

use std::path::Path;

use tenant_orchestrator::domain::RolloutSpec;

#[test]
fn every_pipeline_spec_is_a_valid_rollout_spec() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("azure-pipelines/specs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let spec: Result<RolloutSpec, _> = serde_json::from_str(&text);
        assert!(
            spec.is_ok(),
            "{} is not a valid rollout spec: {}",
            path.display(),
            spec.unwrap_err()
        );
        checked += 1;
    }
    assert!(
        checked >= 2,
        "expected the staging and production specs in {}",
        dir.display()
    );
}

#[test]
fn a_spec_narrowed_to_one_region_as_the_rollout_stage_does_stays_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("azure-pipelines/specs/production.json");
    let mut spec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // What templates/rollout.yml does for the stage of us-east-1.
    spec["release"] = "1.4.2".into();
    spec["selector"]["regions"] = serde_json::json!(["us-east-1"]);
    spec["strategy"]["region_order"] = serde_json::json!(["us-east-1"]);
    let spec: RolloutSpec = serde_json::from_value(spec).unwrap();
    assert_eq!(spec.release.as_ref().unwrap().to_string(), "1.4.2");
    assert_eq!(spec.selector.regions.len(), 1);
}
