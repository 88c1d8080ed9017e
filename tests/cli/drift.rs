//! `tenantctl tenant drift` through the API: its exit code says whether the tenant
//! drifted, and a tenant that is not Active is refused like any command its state
//! does not allow.

use std::process::Output;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tenant_orchestrator::ports::{DriftCheckFailed, DriftChecker};
use tenant_orchestrator::record::{DriftFinding, DriftKind, TenantRecord};

use crate::api_support::{spawn_with, TestApi, READ};
use crate::{stderr, stdout};

/// Test double for the drift checker: reports drift for the tenants it names.
#[derive(Default)]
struct DriftCheckerDouble {
    drifted: Mutex<Vec<String>>,
}

#[async_trait]
impl DriftChecker for DriftCheckerDouble {
    async fn check(&self, tenant: &TenantRecord) -> Result<Vec<DriftFinding>, DriftCheckFailed> {
        if !self.drifted.lock().unwrap().contains(&tenant.id().to_string()) {
            return Ok(vec![]);
        }
        Ok(vec![DriftFinding {
            kind: DriftKind::StackParameter,
            name: "Tier".into(),
            desired: Some("small".into()),
            live: Some("large".into()),
        }])
    }
}

async fn drift(api: &TestApi, id: &str) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_tenantctl"))
        .env_remove("TENANTCTL_EXTRA_REGIONS")
        .env("TENANTCTL_LOG", "warn")
        .env("TENANTCTL_TOKEN", READ)
        .args(["--server", &api.base, "tenant", "drift", id])
        .output()
        .await
        .expect("tenantctl runs")
}

#[tokio::test]
async fn tenant_drift_exits_8_when_drifted_0_in_sync_and_4_before_the_tenant_is_active() {
    let checker = Arc::new(DriftCheckerDouble::default());
    checker.drifted.lock().unwrap().push("alpha".into());
    let double = checker.clone();
    let api = spawn_with(move |state| state.with_drift_checker(double)).await;
    api.create_tenant("alpha", "eu-west-1", "default").await;
    api.create_tenant("bravo", "eu-west-1", "default").await;

    let early = drift(&api, "alpha").await;
    assert_eq!(early.status.code(), Some(4), "{}", stderr(&early));
    assert!(
        stderr(&early).contains("Active tenants only"),
        "{}",
        stderr(&early)
    );

    api.settle().await;
    let drifted = drift(&api, "alpha").await;
    assert_eq!(drifted.status.code(), Some(8), "{}", stderr(&drifted));
    assert!(
        stdout(&drifted).contains("stack_parameter") && stdout(&drifted).contains("Tier"),
        "{}",
        stdout(&drifted)
    );
    assert!(
        stderr(&drifted).contains("tenant reconcile alpha"),
        "{}",
        stderr(&drifted)
    );
    let clean = drift(&api, "bravo").await;
    assert_eq!(clean.status.code(), Some(0), "{}", stderr(&clean));
    assert!(stdout(&clean).contains("in sync"), "{}", stdout(&clean));
}
