//! tenant-orchestrator: each tenant of a single-tenant-per-stack SaaS is a durable state
//! machine persisted in DynamoDB, driven by workers that run one idempotent step at a time.

pub mod api;
pub mod app;
pub mod domain;
pub mod machine;
pub mod outbox;
pub mod platform;
pub mod ports;
pub mod record;
pub mod rollout;
pub mod step;
pub mod steps;
pub mod store;
pub mod worker;
