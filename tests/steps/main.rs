//! The steps against the local AWS and local stand-ins, run through the `Step` trait:
//! artifact, backup and configuration on moto's ECR, RDS and SSM; infrastructure on
//! moto's CloudFormation and RDS; certificates on ACM, Route 53 and ELBv2; Helm and
//! verify against `localstack/helm-standin` and local health endpoints; DynamoDB Local
//! for the worker. Run `eval "$(localstack/start.sh)"` first (scripts/test.sh does it).

#[path = "../common/child_worker.rs"]
mod child_worker;
#[path = "../common/mod.rs"]
mod common;
#[path = "../fault_proxy_support/mod.rs"]
mod fault_proxy_support;
// Shared with tests/platform.rs; these tests need only part of it.
#[allow(dead_code)]
#[path = "../common/platform.rs"]
mod platform_support;

mod aws_support;
mod helm_support;
mod infra_support;

mod artifact;
mod backup;
mod bake_alarms;
mod certificates;
mod chart_preview;
mod config;
mod drift;
mod helm;
mod infra;
mod infra_triggers;
mod maintenance;
mod migration;
mod outage;
mod platform;
mod preview;
mod revision_rollout;
mod targets;
mod verify;
mod verify_alarms;
mod worker;
