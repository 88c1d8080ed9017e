//! The Stripe intake's mapping file (`tenantctl serve --stripe-intake FILE`, YAML or
//! JSON): which environment subscriptions create tenants in, which price is which
//! tier, where a subscription's metadata names the tenant, and the signing secrets.
//! Everything is checked when the file is read, so a bad file stops `serve` at start-up
//! rather than refusing Stripe's events one by one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::domain::{Environment, Group, Region, ReleaseVersion, Tier};

/// Stripe's own default: a signature older or newer than this is refused.
const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);
/// How long a canceled subscription's tenant is kept before it is deprovisioned.
const DEFAULT_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum IntakeConfigError {
    #[error("reading the Stripe intake file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the Stripe intake file {path} is not valid YAML or JSON of the expected shape: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("the Stripe intake file {path}: {field}: {message}")]
    Field {
        path: PathBuf,
        field: String,
        message: String,
    },
}

/// One name or several, as `secret_env: NAME` or `secret_env: [NEW, OLD]`.
#[derive(Debug, Deserialize, Default)]
#[serde(untagged)]
enum OneOrMany<T> {
    #[default]
    None,
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::None => Vec::new(),
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    environment: String,
    /// Stripe price id → tier.
    prices: BTreeMap<String, String>,
    #[serde(default)]
    defaults: DefaultsShape,
    #[serde(default)]
    metadata: MetadataShape,
    /// Release of a new tenant; left out: the version policy's.
    #[serde(default)]
    release: Option<String>,
    #[serde(default)]
    grace_period: Option<String>,
    #[serde(default)]
    tolerance: Option<String>,
    /// Environment variables holding endpoint secrets (`whsec_…`); several during a rotation.
    #[serde(default)]
    secret_env: OneOrMany<String>,
    /// Files holding endpoint secrets.
    #[serde(default)]
    secret_file: OneOrMany<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DefaultsShape {
    region: Option<String>,
    group: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MetadataShape {
    tenant_id: Option<String>,
    hostnames: Option<String>,
    region: Option<String>,
    group: Option<String>,
}

/// The subscription metadata keys that describe the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataKeys {
    pub tenant_id: String,
    /// Comma-separated hostnames.
    pub hostnames: String,
    pub region: String,
    pub group: String,
}

/// An endpoint secret; it never prints.
#[derive(Clone)]
pub struct EndpointSecret(Vec<u8>);

impl EndpointSecret {
    pub fn new(secret: &str) -> Self {
        Self(secret.as_bytes().to_vec())
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for EndpointSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EndpointSecret(…)")
    }
}

/// The mapping file, checked.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// Where it was read from, for messages that tell the operator what to edit.
    pub path: PathBuf,
    pub environment: Environment,
    pub prices: BTreeMap<String, Tier>,
    pub default_region: Option<Region>,
    pub default_group: Group,
    pub metadata: MetadataKeys,
    pub release: Option<ReleaseVersion>,
    pub grace_period: Duration,
    pub tolerance: Duration,
    /// Every secret a signature may match (Stripe signs with each live one during a
    /// rotation).
    pub secrets: Vec<EndpointSecret>,
}

impl IntakeConfig {
    /// Reads and checks the file at `path`, and the secrets it names.
    pub fn load(path: &Path) -> Result<Self, IntakeConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| IntakeConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text, |var| std::env::var(var).ok())
    }

    /// Checks `text` (the file at `path`); `env` reads an environment variable.
    pub fn parse(
        path: &Path,
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, IntakeConfigError> {
        let shape: FileShape = serde_norway::from_str(text).map_err(|e| IntakeConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let field = |field: &str, message: String| IntakeConfigError::Field {
            path: path.to_owned(),
            field: field.to_owned(),
            message,
        };
        let environment =
            Environment::parse(&shape.environment).map_err(|e| field("environment", e.to_string()))?;
        if shape.prices.is_empty() {
            return Err(field(
                "prices",
                "no prices are mapped; add `price_id: tier` entries (tiers: small, medium, large)".into(),
            ));
        }
        let mut prices = BTreeMap::new();
        for (price, tier) in shape.prices {
            let tier: Tier = tier
                .parse()
                .map_err(|e: crate::domain::InvalidValue| field(&format!("prices.{price}"), e.to_string()))?;
            prices.insert(price, tier);
        }
        let default_region = shape
            .defaults
            .region
            .as_deref()
            .map(Region::parse)
            .transpose()
            .map_err(|e| field("defaults.region", e.to_string()))?;
        let default_group = match shape.defaults.group.as_deref() {
            Some(g) => Group::parse(g).map_err(|e| field("defaults.group", e.to_string()))?,
            None => Group::default_group(),
        };
        let release = shape
            .release
            .as_deref()
            .map(ReleaseVersion::parse)
            .transpose()
            .map_err(|e| field("release", e.to_string()))?;
        let duration = |name: &str, value: Option<String>, default: Duration| match value {
            None => Ok(default),
            Some(text) => humantime::parse_duration(text.trim())
                .map_err(|e| field(name, format!("{text:?}: {e}; use a duration like 7d, 12h or 5m"))),
        };
        let grace_period = duration("grace_period", shape.grace_period, DEFAULT_GRACE)?;
        let tolerance = duration("tolerance", shape.tolerance, DEFAULT_TOLERANCE)?;
        if tolerance.is_zero() {
            return Err(field(
                "tolerance",
                "must be more than 0s (Stripe's default is 5m)".into(),
            ));
        }
        let m = shape.metadata;
        let metadata = MetadataKeys {
            tenant_id: m.tenant_id.unwrap_or_else(|| "tenant_id".into()),
            hostnames: m.hostnames.unwrap_or_else(|| "hostnames".into()),
            region: m.region.unwrap_or_else(|| "region".into()),
            group: m.group.unwrap_or_else(|| "group".into()),
        };
        let mut secrets = Vec::new();
        for var in shape.secret_env.into_vec() {
            let value = env(&var)
                .ok_or_else(|| field("secret_env", format!("the environment variable {var} is not set")))?;
            secrets.push(secret(value.trim()).map_err(|m| field("secret_env", format!("{var}: {m}")))?);
        }
        for file in shape.secret_file.into_vec() {
            let value = std::fs::read_to_string(&file)
                .map_err(|e| field("secret_file", format!("cannot read {}: {e}", file.display())))?;
            secrets.push(
                secret(value.trim()).map_err(|m| field("secret_file", format!("{}: {m}", file.display())))?,
            );
        }
        if secrets.is_empty() {
            return Err(field(
                "secret_env",
                "no endpoint secret; name the variable (secret_env) or file (secret_file) holding the \
                 endpoint's signing secret (whsec_…), several during a rotation"
                    .into(),
            ));
        }
        Ok(Self {
            path: path.to_owned(),
            environment,
            prices,
            default_region,
            default_group,
            metadata,
            release,
            grace_period,
            tolerance,
            secrets,
        })
    }
}

fn secret(value: &str) -> Result<EndpointSecret, String> {
    if value.is_empty() {
        return Err("the secret is empty".into());
    }
    Ok(EndpointSecret::new(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<IntakeConfig, IntakeConfigError> {
        IntakeConfig::parse(Path::new("intake.yaml"), text, |var| {
            (var == "STRIPE_SECRET").then(|| "whsec_test".to_owned())
        })
    }

    const GOOD: &str =
        "environment: prod\nsecret_env: STRIPE_SECRET\nprices: {price_s: small, price_l: large}\n\
                        defaults: {region: eu-west-1}\ngrace_period: 3d\n";

    #[test]
    fn a_good_file_reads_with_defaults_for_what_it_leaves_out() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.prices["price_l"], Tier::Large);
        assert_eq!(config.default_region.as_ref().unwrap().as_str(), "eu-west-1");
        assert_eq!(config.grace_period, Duration::from_secs(3 * 24 * 3600));
        assert_eq!(config.tolerance, Duration::from_secs(300));
        assert_eq!(config.metadata.tenant_id, "tenant_id");
        assert_eq!(config.secrets.len(), 1);
        assert!(
            !format!("{config:?}").contains("whsec_test"),
            "secrets never print"
        );
    }

    #[test]
    fn bad_files_are_refused_naming_the_field() {
        let cases = [
            (
                GOOD.replace("large", "huge"),
                "prices.price_l",
                "small, medium, large",
            ),
            (GOOD.replace("eu-west-1", "mars-1"), "defaults.region", "mars-1"),
            (GOOD.replace("3d", "soon"), "grace_period", "like 7d"),
            (
                GOOD.replace("STRIPE_SECRET", "UNSET_VAR"),
                "secret_env",
                "UNSET_VAR is not set",
            ),
            (
                "environment: prod\nsecret_env: STRIPE_SECRET\nprices: {}\n".into(),
                "prices",
                "no prices",
            ),
        ];
        for (text, field, words) in cases {
            let message = parse(&text).unwrap_err().to_string();
            assert!(message.contains(field) && message.contains(words), "{message}");
        }
        let unknown = parse(&format!("{GOOD}colour: blue\n")).unwrap_err().to_string();
        assert!(unknown.contains("colour"), "{unknown}");
    }
}
