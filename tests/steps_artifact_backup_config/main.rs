//! The artifact, backup and configuration steps against the local AWS: moto's ECR, RDS
//! and SSM, and DynamoDB Local for the worker. Run `eval "$(localstack/start.sh)"`
//! first (scripts/test.sh does it).

#[path = "../common/mod.rs"]
mod common;
#[path = "../fault_proxy_support/mod.rs"]
mod fault_proxy_support;
mod support;

mod artifact;
mod backup;
mod config;
mod worker;
