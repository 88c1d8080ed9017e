//! The tenant every benchmark fleet is made of, and waiting for a fleet to leave
//! provisioning. Each benchmark includes this file with `#[path]`.
#![allow(dead_code)] // each benchmark uses its part

use std::time::Duration;

use tenant_orchestrator::domain::TenantSpec;
use tenant_orchestrator::store::{ListQuery, TenantStore};

#[path = "../../tests/common/tenant_spec.rs"]
mod tenant_spec;

/// Tenant `id` in `region`: a small tenant of the default group in environment
/// `bench`, served on `<id>.example.com` (the tests' tenant, in its own environment).
pub fn bench_spec(id: &str, region: &str) -> TenantSpec {
    tenant_spec::small_tenant("bench", id, region)
}

/// Returns once no tenant of the table is provisioning any more, looking every 50 ms:
/// at most 50 ms late (counted against the side measured), and a light enough load
/// on the DynamoDB Local the measured side shares (every 10 ms was a query for every
/// one or two of the engine's transactions).
pub async fn wait_until_provisioned(store: &dyn TenantStore) {
    loop {
        let left = store
            .list(&ListQuery {
                state: Some("Provisioning".into()),
                limit: Some(1),
                ..Default::default()
            })
            .await
            .unwrap();
        if left.items.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
