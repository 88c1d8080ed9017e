//! The tenant every benchmark fleet is made of, and waiting for a fleet to leave
//! provisioning. Each benchmark includes this file with `#[path]`.
#![allow(dead_code)] // each benchmark uses its part

use std::time::Duration;

use tenant_orchestrator::domain::{Environment, Group, Hostname, Region, TenantId, TenantSpec, Tier};
use tenant_orchestrator::store::{ListQuery, TenantStore};

/// Tenant `id` in `region`: a small tenant of the default group in environment
/// `bench`, served on `<id>.example.com`.
pub fn bench_spec(id: &str, region: &str) -> TenantSpec {
    TenantSpec {
        id: TenantId::parse(id).unwrap(),
        region: Region::parse(region).unwrap(),
        environment: Environment::parse("bench").unwrap(),
        group: Group::default_group(),
        tier: Tier::Small,
        hostnames: vec![Hostname::parse(&format!("{id}.example.com")).unwrap()],
        pinned_release: None,
        maintenance: None,
        platform: None,
        pinned_platform: None,
    }
}

/// Returns once no tenant of the table is provisioning any more, looking every 10 ms.
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
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
