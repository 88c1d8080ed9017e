//! Fleet rollouts on the local DynamoDB: the controller in process, and `tenantctl
//! controller` processes killed in the middle of a rollout.

#[path = "../common/mod.rs"]
mod common;
#[path = "../rollout_support/mod.rs"]
mod rollout_support;

mod controller;
mod crash;
mod draw;
mod events;
mod freeze;
mod outage_budget;
mod promotion;
mod relay;
mod revision;
mod start;
