//! The HTTP API end to end: the router on 127.0.0.1:0, a fresh table on the local
//! DynamoDB per test, called with reqwest.

mod api_support;
mod common;

#[path = "api/auth.rs"]
mod auth;
#[path = "api/fleet.rs"]
mod fleet;
#[path = "api/idempotency.rs"]
mod idempotency;
#[path = "api/ops.rs"]
mod ops;
#[path = "api/request_bodies.rs"]
mod request_bodies;
#[path = "api/rollout_holds.rs"]
mod rollout_holds;
#[path = "api/rollouts.rs"]
mod rollouts;
#[path = "api/tenants.rs"]
mod tenants;
