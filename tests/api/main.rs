//! The HTTP API end to end: the router on 127.0.0.1:0, a fresh table on the local
//! DynamoDB per test, called with reqwest.

#[path = "../api_support/mod.rs"]
mod api_support;
#[path = "../common/mod.rs"]
mod common;
#[path = "../common/platform.rs"]
#[allow(dead_code)] // the platform tests use the rest
mod platform_support;

mod audit;
mod auth;
mod drift;
mod events;
mod fleet;
mod freezes;
mod idempotency;
mod intake;
mod oidc;
mod oidc_dashboard;
mod ops;
mod promotions;
mod request_bodies;
mod rollout_holds;
mod rollouts;
mod scopes;
mod tenant_freezes;
mod tenants;
