//! The small tenant the integration tests and the benchmarks build their fleets of.
//! The benchmarks include this file with `#[path]` (see `benches/common/fleet_spec.rs`),
//! so it needs nothing but the crate.

use tenant_orchestrator::domain::{Environment, Group, Hostname, Region, TenantId, TenantSpec, Tier};

/// Tenant `id` in `region` and `environment`: a small tenant of the default group,
/// served on `<id>.example.com`, nothing pinned.
pub fn small_tenant(environment: &str, id: &str, region: &str) -> TenantSpec {
    TenantSpec {
        id: TenantId::parse(id).unwrap(),
        region: Region::parse(region).unwrap(),
        environment: Environment::parse(environment).unwrap(),
        group: Group::default_group(),
        tier: Tier::Small,
        hostnames: vec![Hostname::parse(&format!("{id}.example.com")).unwrap()],
        pinned_release: None,
        maintenance: None,
        platform: None,
        pinned_platform: None,
    }
}
