//! OpenID Connect bearer tokens beside the static tokens: a JWT from the configured
//! issuer (Entra ID, an Azure DevOps workload-identity federation token, any OpenID
//! provider) is verified against the issuer's published keys, checked for issuer,
//! audience, expiry and not-before (with a small clock skew), and given the highest
//! scope its claims are mapped to. Token values are never logged or echoed.

mod config;
mod keys;
mod sign_in;
mod sign_in_config;

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

pub use config::{ClaimMapping, OidcConfig, OidcConfigError};
pub use keys::UNKNOWN_KID_COOL_DOWN;
pub use sign_in::{SignInClient, SignInError};
pub use sign_in_config::{ClientSecret, DashboardSignInConfig, CALLBACK_PATH};

use crate::domain::{Access, Binding};
use keys::{IssuerKeys, KeyError};

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The token is not valid: a 401 saying what was wrong.
    #[error("{0}")]
    Invalid(String),
    /// The token is valid but no mapping grants it a scope: a 403.
    #[error("{0}")]
    NoMapping(String),
    /// The issuer's keys could not be fetched: a 503.
    #[error("{0}")]
    Unavailable(String),
}

impl From<OidcError> for super::ApiError {
    fn from(e: OidcError) -> Self {
        match e {
            OidcError::Invalid(m) => Self::Unauthenticated(m),
            OidcError::NoMapping(m) => Self::Forbidden(m),
            OidcError::Unavailable(m) => Self::Unavailable(m),
        }
    }
}

/// A caller proven by an OpenID Connect token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcPrincipal {
    /// The name claim's value, as recorded in the history.
    pub name: String,
    /// What its matching mappings grant, read together.
    pub access: Access,
    /// The token's `sub` claim (empty when it has none), for the audit trail.
    pub subject: String,
}

/// Verifies tokens of one issuer.
pub struct OidcVerifier {
    config: OidcConfig,
    keys: IssuerKeys,
    /// The dashboard's browser sign-in, when the configuration has a `dashboard` section.
    sign_in: Option<SignInClient>,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("issuer", &self.config.issuer)
            .finish()
    }
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
}

/// Whether `token` has the shape of a JWS compact serialization (three base64url
/// parts; the signature may be empty, as in an `alg: none` token).
pub fn looks_like_jwt(token: &str) -> bool {
    let b64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3 && !parts[0].is_empty() && !parts[1].is_empty() && parts.iter().all(|p| b64url(p))
}

/// A name for the history: the characters of a user name, an e-mail address or an
/// Azure DevOps subject (`sc://org/project/connection`), others replaced by `_`, at
/// most 128.
fn history_name(value: &str) -> String {
    value
        .chars()
        .take(128)
        .map(|c| {
            if c.is_alphanumeric() || "._@-:/+#".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl OidcVerifier {
    pub fn new(config: OidcConfig) -> Self {
        let keys = IssuerKeys::new(&config.issuer, config.jwks_uri.clone(), config.jwks_max_age);
        let sign_in = config
            .dashboard
            .clone()
            .map(|d| SignInClient::new(&config.issuer, d));
        Self {
            config,
            keys,
            sign_in,
        }
    }

    /// The dashboard's browser sign-in with this issuer, if configured.
    pub fn sign_in(&self) -> Option<&SignInClient> {
        self.sign_in.as_ref()
    }

    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// The principal `token` proves, or why it proves none.
    pub async fn verify(&self, token: &str) -> Result<OidcPrincipal, OidcError> {
        let claims = self.decode(token, &self.config.audience).await?;
        self.principal(&claims)
    }

    /// The principal an ID token from the dashboard's sign-in proves: verified like a
    /// bearer token, but issued for the dashboard's client id and carrying the `nonce`
    /// the sign-in sent, so a token from another sign-in cannot be replayed into this one.
    pub async fn verify_id_token(&self, token: &str, nonce: &str) -> Result<OidcPrincipal, OidcError> {
        let Some(sign_in) = &self.sign_in else {
            return Err(OidcError::Invalid(
                "browser sign-in with the identity provider is not configured".into(),
            ));
        };
        if !looks_like_jwt(token) {
            return Err(OidcError::Invalid(
                "the identity provider's ID token is not a signed JWT".into(),
            ));
        }
        let audience = [sign_in.config().client_id.clone()];
        let claims = self.decode(token, &audience).await?;
        let carried = claims.get("nonce").and_then(|n| n.as_str());
        if !carried.is_some_and(|n| bool::from(subtle::ConstantTimeEq::ct_eq(n.as_bytes(), nonce.as_bytes())))
        {
            return Err(OidcError::Invalid(
                "the ID token does not carry this sign-in's nonce (it was issued for another sign-in)".into(),
            ));
        }
        self.principal(&claims)
    }

    /// The claims of `token` once its signature, issuer, `audience`, expiry and
    /// not-before are checked.
    async fn decode(
        &self,
        token: &str,
        audience: &[String],
    ) -> Result<serde_json::Map<String, serde_json::Value>, OidcError> {
        let invalid = |m: String| OidcError::Invalid(m);
        let header: RawHeader = token
            .split('.')
            .next()
            .and_then(|h| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).ok())
            .and_then(|h| serde_json::from_slice(&h).ok())
            .ok_or_else(|| invalid("the bearer token looks like a JWT but its header is not valid base64url JSON with an `alg`".into()))?;
        if header.alg.eq_ignore_ascii_case("none") {
            return Err(invalid(
                "the token is unsigned (alg none); only tokens signed by the issuer are accepted".into(),
            ));
        }
        let accepted = || {
            self.config
                .algorithms
                .iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let alg = header
            .alg
            .parse::<Algorithm>()
            .ok()
            .filter(|a| self.config.algorithms.contains(a))
            .ok_or_else(|| {
                invalid(format!(
                    "the token is signed with {:?}, which this service does not accept (accepted: {})",
                    header.alg.chars().take(16).collect::<String>(),
                    accepted()
                ))
            })?;

        let key = self.keys.find(header.kid.as_deref()).await.map_err(|e| match e {
            KeyError::Unavailable(_) => OidcError::Unavailable(e.to_string()),
            other => invalid(other.to_string()),
        })?;
        key.check_algorithm(alg).map_err(invalid)?;

        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.leeway = self.config.clock_skew.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(audience);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        Ok(
            jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key.key, &validation)
                .map_err(|e| invalid(self.explain(e.kind(), audience)))?
                .claims,
        )
    }

    /// The caller `claims` name, with the bindings their mappings grant.
    fn principal(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<OidcPrincipal, OidcError> {
        let name = self.principal_name(claims)?;
        let bindings: Vec<Binding> = self
            .config
            .mappings
            .iter()
            .filter(|m| m.matches(claims))
            .map(|m| Binding {
                scope: m.scope,
                on: m.on.clone(),
            })
            .collect();
        let access = Access::new(bindings).ok_or_else(|| {
            OidcError::NoMapping(format!(
                "{name} signed in, but no mapping grants it a scope (looked at its claims: {}); \
                     ask an administrator to map one of its groups, roles or subject",
                self.config.mapped_claims().join(", ")
            ))
        })?;
        let subject = claims
            .get("sub")
            .and_then(|v| v.as_str())
            .map(history_name)
            .unwrap_or_default();
        Ok(OidcPrincipal {
            name,
            access,
            subject,
        })
    }

    fn principal_name(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, OidcError> {
        let wanted: Vec<&str> = match &self.config.name_claim {
            Some(claim) => vec![claim],
            None => vec!["preferred_username", "sub"],
        };
        wanted
            .iter()
            .find_map(|c| claims.get(*c).and_then(|v| v.as_str()).filter(|v| !v.is_empty()))
            .map(history_name)
            .ok_or_else(|| {
                OidcError::Invalid(format!(
                    "the token has no {} claim to name its caller by; ask the issuer to include it or set `name_claim`",
                    wanted.join(" or ")
                ))
            })
    }

    fn explain(&self, kind: &ErrorKind, audience: &[String]) -> String {
        let skew = self.config.clock_skew.as_secs();
        match kind {
            ErrorKind::ExpiredSignature => {
                format!("the token has expired (exp is past, allowing {skew}s of clock skew); get a new token")
            }
            ErrorKind::ImmatureSignature => format!(
                "the token is not valid yet (nbf is in the future, allowing {skew}s of clock skew); check the clocks or wait"
            ),
            ErrorKind::InvalidAudience => format!(
                "the token is for another audience (aud); request a token for {}",
                audience.join(" or ")
            ),
            ErrorKind::InvalidIssuer => format!(
                "the token was issued by another issuer (iss); only tokens from {} are accepted",
                self.config.issuer
            ),
            ErrorKind::InvalidSignature => {
                "the token's signature does not verify with the issuer's key; it was altered or not signed by the issuer".into()
            }
            ErrorKind::MissingRequiredClaim(claim) => {
                format!("the token has no {claim} claim; tokens must carry exp, iss and aud")
            }
            ErrorKind::InvalidClaimFormat(claim) => format!("the token's {claim} claim is malformed"),
            _ => "the token is not a valid signed JWT".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_jws_shaped_tokens_are_taken_for_jwts() {
        assert!(looks_like_jwt("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."));
        assert!(looks_like_jwt("eyJh.eyJz.c2ln-_"));
        assert!(!looks_like_jwt("deploy-token-0123456789"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("a b.c.d"));
    }

    #[test]
    fn history_names_keep_identities_readable() {
        assert_eq!(history_name("ada@contoso.com"), "ada@contoso.com");
        assert_eq!(
            history_name("sc://contoso/web/tenants-deploy"),
            "sc://contoso/web/tenants-deploy"
        );
        assert_eq!(history_name("a b\nc"), "a_b_c");
        assert_eq!(history_name(&"x".repeat(300)).len(), 128);
    }
}
