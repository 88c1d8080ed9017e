//! Validated domain values. Every string that names a tenant, region, release or
//! hostname is parsed once at the edge; the rest of the code only sees these types.

pub mod access;
pub mod change_set;
pub(crate) mod duration;
mod freeze;
mod hostname;
mod ids;
mod migration;
mod platform;
mod policy;
pub mod promotion;
mod regions;
mod release;
pub mod rollout;
pub(crate) mod schema;
mod snapshot;
mod spec;
pub(crate) mod window;

pub use access::{Access, Binding, Reach, Scope, TenantPlace};
pub use change_set::LogicalId;
pub use freeze::{frozen_by, trim_reason, usable_reason, Freeze, FreezeHold, FREEZE_REASON_MAX};
pub use hostname::Hostname;
pub use ids::{Environment, Group, Region, TenantId};
pub use migration::{declared_schema, MigrationRestore, SchemaVersion, SCHEMA_ANNOTATION};
pub use platform::PlatformVersion;
pub use policy::{ReleaseSource, ResolvedRelease, VersionPolicy};
pub use promotion::{PromotionName, PromotionRule, RolloutTemplate};
pub use regions::{allow_extra_regions, KNOWN_REGIONS};
pub use release::ReleaseVersion;
pub use rollout::{RolloutId, RolloutSpec};
pub use snapshot::SnapshotName;
pub use spec::{TenantSpec, Tier, MAX_HOSTNAMES};
pub use window::{MaintenanceWindows, Window};

/// Why a value was rejected: names the kind of value, echoes the input and says
/// what a valid value looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {input:?}: {problem}")]
pub struct InvalidValue {
    pub kind: &'static str,
    pub input: String,
    pub problem: String,
}

impl InvalidValue {
    pub(crate) fn new(kind: &'static str, input: &str, problem: impl Into<String>) -> Self {
        Self {
            kind,
            input: input.chars().take(80).collect(),
            problem: problem.into(),
        }
    }
}

/// Implements `Display`, `FromStr`, `TryFrom<String>`, `AsRef<str>` and serde for a
/// string newtype whose `parse` validates; deserializing re-validates, so a value read
/// back from storage is as trustworthy as one typed by a user.
macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::str::FromStr for $name {
            type Err = $crate::domain::InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
        impl TryFrom<String> for $name {
            type Error = $crate::domain::InvalidValue;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}
pub(crate) use string_newtype;

/// A DNS label check shared by tenant ids, environments, groups and hostname labels.
pub(crate) fn dns_label_problem(s: &str, min: usize, max: usize) -> Option<String> {
    if s.len() < min || s.len() > max {
        return Some(format!("must be {min} to {max} characters long, got {}", s.len()));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Some(format!(
            "contains {c:?}; use only lowercase letters a-z, digits and '-'"
        ));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Some("must not start or end with '-'".into());
    }
    None
}
