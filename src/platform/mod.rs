//! Platform versions as published artifacts: the tenant's CloudFormation template and
//! its Helm chart, stored in S3 by version and content digest with a manifest per
//! version, so any replica can fetch exactly the revision a tenant was given.
//!
//! This layer may use `domain`, `record` and `ports`.

mod chart;
mod s3;

pub use chart::{read_chart, ChartError};
pub use s3::{client, BucketOutcome, S3PlatformArtifacts, MAX_TEMPLATE_BYTES};
