//! `tenantctl` as a user and a pipeline run it: against the table on DynamoDB Local,
//! as a client of the API (`--server`), and `tenant wait` in Azure Pipelines mode.

#[path = "../api_support/mod.rs"]
mod api_support;
#[path = "../common/mod.rs"]
mod common;

use std::process::Output;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

mod audit;
mod drift;
mod input;
mod promotion;
mod remote;
mod table;
mod wait;
