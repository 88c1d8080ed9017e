//! The OpenID Connect configuration of `serve --oidc-config`: which issuer's tokens
//! are accepted, for which audience, signed how, and which claims grant which scope.
//! Everything is checked at start-up, so a typo refuses to start instead of refusing
//! every caller later.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use jsonwebtoken::{Algorithm, AlgorithmFamily};
use reqwest::Url;
use serde::Deserialize;

use crate::api::auth::Scope;
use crate::domain::Reach;

use super::sign_in_config::DashboardFile;
pub use super::sign_in_config::DashboardSignInConfig;

/// The clock skew allowed on `exp` and `nbf` unless `clock_skew_seconds` says.
const DEFAULT_CLOCK_SKEW: u64 = 60;
/// More skew than this would keep an expired token usable for too long.
const MAX_CLOCK_SKEW: u64 = 300;
/// How long a fetched key set is used before it is fetched again, unless
/// `jwks_max_age_seconds` says.
const DEFAULT_JWKS_MAX_AGE: u64 = 3600;

/// Why an OpenID Connect configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum OidcConfigError {
    #[error(
        "the OpenID Connect configuration is not valid JSON/YAML: {0}; expected \
         {{issuer, audience, algorithms, mappings: [{{claim, value, scope}}]}} and optionally \
         jwks_uri, clock_skew_seconds, jwks_max_age_seconds, name_claim, dashboard"
    )]
    Format(String),
    #[error("OpenID Connect {field}: {problem}")]
    Field { field: &'static str, problem: String },
    #[error("OpenID Connect mapping {index}: {problem}")]
    Mapping { index: usize, problem: String },
}

/// One grant: a token whose claim `claim` is `value` (or, for a list claim such as
/// `groups` or `roles`, contains it) gets scope `scope`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimMapping {
    /// The claim looked at: `groups`, `roles`, `sub`, or any other string or list claim.
    pub claim: String,
    /// The value it must be or contain (an Entra group object id, an app role, an
    /// Azure DevOps service connection's subject `sc://org/project/connection`).
    pub value: String,
    pub scope: Scope,
    /// The tenants the scope holds on, as in a token entry's `on`; left out, the whole
    /// fleet.
    #[serde(default)]
    pub on: Reach,
}

impl ClaimMapping {
    /// Whether `claims` hold this mapping's value.
    pub(super) fn matches(&self, claims: &serde_json::Map<String, serde_json::Value>) -> bool {
        match claims.get(&self.claim) {
            Some(serde_json::Value::String(s)) => *s == self.value,
            Some(serde_json::Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(&self.value)),
            _ => false,
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OidcFile {
    issuer: String,
    audience: OneOrMany,
    algorithms: Vec<String>,
    jwks_uri: Option<String>,
    clock_skew_seconds: Option<u64>,
    jwks_max_age_seconds: Option<u64>,
    name_claim: Option<String>,
    mappings: Vec<ClaimMapping>,
    dashboard: Option<DashboardFile>,
}

/// A checked OpenID Connect configuration.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The `iss` every token must carry, exactly.
    pub issuer: String,
    /// The `aud` values accepted; a token must name at least one.
    pub audience: Vec<String>,
    /// The signing algorithms accepted (never `none`, never HMAC).
    pub algorithms: Vec<Algorithm>,
    /// Where the keys are; `None` reads it from the issuer's discovery document.
    pub jwks_uri: Option<Url>,
    pub clock_skew: Duration,
    pub jwks_max_age: Duration,
    /// The claim naming the principal in the history; `None` takes
    /// `preferred_username`, then `sub`.
    pub name_claim: Option<String>,
    pub mappings: Vec<ClaimMapping>,
    /// The dashboard's browser sign-in with this issuer; `None` offers the token form
    /// only.
    pub dashboard: Option<DashboardSignInConfig>,
}

/// An issuer or key URL: https, or plain http to this machine only (a local
/// identity provider in development).
pub(super) fn endpoint_url(field: &'static str, text: &str) -> Result<Url, OidcConfigError> {
    let problem = |problem: String| OidcConfigError::Field { field, problem };
    let url = Url::parse(text).map_err(|e| problem(format!("{text:?} is not a URL ({e})")))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(problem(format!(
            "{text} must be an https URL (plain http is accepted for localhost only), \
             e.g. https://login.microsoftonline.com/<tenant-id>/v2.0"
        ))),
    }
}

/// The issuer's host, the sign-in button's name when none is configured.
fn issuer_host(issuer: &str) -> String {
    Url::parse(issuer)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| issuer.to_owned())
}

fn algorithm(name: &str) -> Result<Algorithm, String> {
    if name.eq_ignore_ascii_case("none") {
        return Err(
            "\"none\" (unsigned tokens) is never accepted; list the issuer's signing \
                    algorithms, e.g. RS256 for Entra ID"
                .into(),
        );
    }
    let alg = Algorithm::from_str(name).map_err(|_| {
        format!("{name:?} is not a JWS algorithm; use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA")
    })?;
    if alg.family() == AlgorithmFamily::Hmac {
        return Err(format!(
            "{name} is an HMAC algorithm: it needs a secret shared with the issuer, which a \
             public key set cannot hold; use the issuer's asymmetric algorithm (RS256, ES256, …)"
        ));
    }
    Ok(alg)
}

impl OidcConfig {
    /// Parses and checks a JSON or YAML configuration.
    pub fn parse(text: &str) -> Result<Self, OidcConfigError> {
        let file: OidcFile =
            serde_norway::from_str(text).map_err(|e| OidcConfigError::Format(e.to_string()))?;
        let field = |field: &'static str, problem: String| OidcConfigError::Field { field, problem };

        let issuer = file.issuer.trim().to_owned();
        endpoint_url("issuer", &issuer)?;

        let audience = match file.audience {
            OneOrMany::One(a) => vec![a],
            OneOrMany::Many(list) => list,
        };
        if audience.is_empty() || audience.iter().any(|a| a.trim().is_empty()) {
            return Err(field(
                "audience",
                "give the application (client) id or URI tokens are issued for, e.g. \
                 api://tenant-orchestrator; empty values are not accepted"
                    .into(),
            ));
        }

        if file.algorithms.is_empty() {
            return Err(field(
                "algorithms",
                "list at least one signing algorithm, e.g. [RS256] for Entra ID".into(),
            ));
        }
        let mut algorithms = Vec::new();
        for name in &file.algorithms {
            let alg = algorithm(name.trim()).map_err(|p| field("algorithms", p))?;
            if !algorithms.contains(&alg) {
                algorithms.push(alg);
            }
        }

        let jwks_uri = file
            .jwks_uri
            .as_deref()
            .map(|u| endpoint_url("jwks_uri", u.trim()))
            .transpose()?;

        let skew = file.clock_skew_seconds.unwrap_or(DEFAULT_CLOCK_SKEW);
        if skew > MAX_CLOCK_SKEW {
            return Err(field(
                "clock_skew_seconds",
                format!("{skew} is more than {MAX_CLOCK_SKEW}; an expired token would stay usable that long. Fix the clocks (NTP) instead"),
            ));
        }
        let max_age = file.jwks_max_age_seconds.unwrap_or(DEFAULT_JWKS_MAX_AGE);
        if !(60..=86_400).contains(&max_age) {
            return Err(field(
                "jwks_max_age_seconds",
                format!(
                    "{max_age} is out of range; use 60-86400 (a rotated key is picked up at once anyway)"
                ),
            ));
        }

        let name_claim = match file.name_claim {
            Some(c) if c.trim().is_empty() => {
                return Err(field(
                    "name_claim",
                    "is empty; name a claim such as preferred_username, upn, oid or sub, or leave it out"
                        .into(),
                ))
            }
            other => other.map(|c| c.trim().to_owned()),
        };

        if file.mappings.is_empty() {
            return Err(field(
                "mappings",
                "no mapping grants a scope, so every token would be refused; add \
                 {claim: groups, value: <group object id>, scope: read|deploy|admin}"
                    .into(),
            ));
        }
        let mut seen = HashSet::new();
        for (index, m) in file.mappings.iter().enumerate() {
            let problem = |problem: String| OidcConfigError::Mapping { index, problem };
            if m.claim.trim().is_empty() || m.value.trim().is_empty() {
                return Err(problem(
                    "claim and value must not be empty, e.g. {claim: roles, value: Tenant.Admin, scope: admin}".into(),
                ));
            }
            if !seen.insert((m.claim.as_str(), m.value.as_str())) {
                return Err(problem(format!(
                    "{} = {} is mapped twice; keep one entry with the scope it should grant",
                    m.claim, m.value
                )));
            }
        }

        let dashboard = file
            .dashboard
            .map(|d| DashboardSignInConfig::check(d, &issuer_host(&issuer)))
            .transpose()?;

        Ok(Self {
            issuer,
            audience,
            algorithms,
            jwks_uri,
            clock_skew: Duration::from_secs(skew),
            jwks_max_age: Duration::from_secs(max_age),
            name_claim,
            mappings: file.mappings,
            dashboard,
        })
    }

    /// The distinct claims the mappings look at, for a refusal's message.
    pub(super) fn mapped_claims(&self) -> Vec<&str> {
        let mut claims: Vec<&str> = Vec::new();
        for m in &self.mappings {
            if !claims.contains(&m.claim.as_str()) {
                claims.push(&m.claim);
            }
        }
        claims
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRA: &str = r#"
issuer: https://login.microsoftonline.com/0b5c7a8e-0000-4000-8000-000000000001/v2.0
audience: api://tenant-orchestrator
algorithms: [RS256]
mappings:
  - {claim: groups, value: 5d2f7a10-0000-4000-8000-00000000000a, scope: deploy}
  - {claim: roles, value: Tenant.Admin, scope: admin}
  - {claim: sub, value: "sc://contoso/web/tenants-deploy", scope: deploy}
"#;

    fn refused(text: &str) -> String {
        OidcConfig::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn an_entra_configuration_loads_with_its_defaults() {
        let config = OidcConfig::parse(ENTRA).unwrap();
        assert_eq!(config.audience, vec!["api://tenant-orchestrator"]);
        assert_eq!(config.algorithms, vec![Algorithm::RS256]);
        assert_eq!(config.clock_skew, Duration::from_secs(60));
        assert_eq!(config.jwks_uri, None);
        assert_eq!(config.name_claim, None);
        assert_eq!(config.mapped_claims(), vec!["groups", "roles", "sub"]);
    }

    #[test]
    fn unsigned_and_hmac_algorithms_are_refused_at_load() {
        let none = refused(&ENTRA.replace("[RS256]", "[RS256, none]"));
        assert!(
            none.contains("algorithms") && none.contains("never accepted"),
            "{none}"
        );
        let hmac = refused(&ENTRA.replace("[RS256]", "[HS256]"));
        assert!(hmac.contains("HMAC") && hmac.contains("RS256"), "{hmac}");
        let unknown = refused(&ENTRA.replace("[RS256]", "[RS257]"));
        assert!(unknown.contains("not a JWS algorithm"), "{unknown}");
        let empty = refused(&ENTRA.replace("[RS256]", "[]"));
        assert!(empty.contains("at least one"), "{empty}");
    }

    #[test]
    fn bad_fields_say_what_to_fix() {
        let http = refused(&ENTRA.replace("https://login", "http://login"));
        assert!(http.contains("issuer") && http.contains("https"), "{http}");
        let skew = refused(&format!("{ENTRA}clock_skew_seconds: 3600\n"));
        assert!(
            skew.contains("clock_skew_seconds") && skew.contains("300"),
            "{skew}"
        );
        let audience = refused(&ENTRA.replace("api://tenant-orchestrator", "[]"));
        assert!(audience.contains("audience"), "{audience}");
        let typo = refused(&format!("{ENTRA}audiences: x\n"));
        assert!(typo.contains("not valid") && typo.contains("audiences"), "{typo}");
        let no_mappings =
            refused("issuer: https://issuer.example\naudience: a\nalgorithms: [ES256]\nmappings: []\n");
        assert!(no_mappings.contains("no mapping grants"), "{no_mappings}");
        let twice = refused(&format!(
            "{ENTRA}  - {{claim: roles, value: Tenant.Admin, scope: read}}\n"
        ));
        assert!(
            twice.contains("mapping 3") && twice.contains("mapped twice"),
            "{twice}"
        );
        let scope = refused(&ENTRA.replace("scope: admin", "scope: root"));
        assert!(scope.contains("not valid"), "{scope}");
    }

    #[test]
    fn list_claims_match_when_they_contain_the_value() {
        let mapping = ClaimMapping {
            claim: "groups".into(),
            value: "g1".into(),
            scope: Scope::Read,
            on: Reach::default(),
        };
        let claims = |v: serde_json::Value| v.as_object().unwrap().clone();
        assert!(mapping.matches(&claims(serde_json::json!({"groups": ["g0", "g1"]}))));
        assert!(mapping.matches(&claims(serde_json::json!({"groups": "g1"}))));
        assert!(!mapping.matches(&claims(serde_json::json!({"groups": ["g10"]}))));
        assert!(!mapping.matches(&claims(serde_json::json!({"roles": ["g1"]}))));
    }
}
