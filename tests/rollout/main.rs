//! Fleet rollouts on the local DynamoDB: the controller in process, and `tenantctl
//! controller` processes killed in the middle of a rollout.

#[path = "../common/mod.rs"]
mod common;
#[path = "../fault_proxy_support/mod.rs"]
#[allow(dead_code)] // the relay tests lose answers to DynamoDB only
mod fault_proxy_support;
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
