//! Bearer tokens with scopes `read` < `deploy` < `admin`. Tokens are configured as
//! SHA-256 hashes (a file or an SSM SecureString holding a JSON/YAML list of
//! `{name, scope, sha256}`); a presented token is hashed and compared with every
//! configured hash in constant time. The token's name is the caller recorded in the
//! tenant history. Token values are never stored, logged or echoed. An entry's scope
//! holds on the whole fleet unless `on` narrows it (environments, regions, groups,
//! tenant ids), and `bindings: [{scope, on}]` gives one token several grants; see
//! [`crate::domain::access`] and [`super::access`] for how endpoints apply them.
//! A token that is not a configured one and has the shape of a JWT is verified as an
//! OpenID Connect token when `serve --oidc-config` is given ([`super::oidc`]); its
//! claims map to bindings of the same shape.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, ApiState};
use crate::record::Actor;

pub use crate::domain::Scope;
use crate::domain::{Access, Binding, Reach};

/// Why a token configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenConfigError {
    #[error("the token list is not valid JSON/YAML: {0}; expected a list of {{name, scope, sha256}} (with an optional `on: {{environments, regions, groups, tenants}}`, or `bindings: [{{scope, on}}]` instead of `scope`)")]
    Format(String),
    #[error("token entry {index}: {problem}")]
    Entry { index: usize, problem: String },
    #[error("the token list is empty; add at least one {{name, scope, sha256}} entry (hash a token with `tenantctl token hash`)")]
    Empty,
    #[error("could not read SSM parameter {name}: {message}")]
    Ssm { name: String, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    /// The scope, on the whole fleet or on `on`; or else `bindings`.
    #[serde(default)]
    scope: Option<Scope>,
    #[serde(default)]
    on: Option<Reach>,
    #[serde(default)]
    bindings: Option<Vec<Binding>>,
    sha256: String,
}

impl TokenEntry {
    /// What the entry grants: `scope` (on `on`, or everywhere) or its `bindings`.
    fn access(&mut self) -> Result<Access, String> {
        let name = &self.name;
        match (self.scope, self.on.take(), self.bindings.take()) {
            (Some(_), _, Some(_)) => Err(format!(
                "{name} has both `scope` and `bindings`; give either `scope` (with an optional `on`) or a list of `bindings: [{{scope, on}}]`"
            )),
            (None, Some(_), Some(_)) => Err(format!(
                "{name} has `on` beside `bindings`; put each `on` inside its binding: `bindings: [{{scope, on}}]`"
            )),
            (Some(scope), on, None) => Ok(Access::new(vec![Binding {
                scope,
                on: on.unwrap_or_default(),
            }])
            .expect("one binding")),
            (None, _, Some(bindings)) => Access::new(bindings).ok_or_else(|| {
                format!("{name} has an empty `bindings` list; give at least one {{scope, on}}, or a plain `scope`")
            }),
            (None, _, None) => Err(format!(
                "{name} has no scope; add `scope: read|deploy|admin` (optionally with `on`), or `bindings: [{{scope, on}}]`"
            )),
        }
    }
}

#[derive(Clone)]
struct KnownToken {
    name: String,
    access: Access,
    hash: [u8; 32],
}

/// The configured tokens (hashes only).
#[derive(Clone, Default)]
pub struct Tokens {
    known: Vec<KnownToken>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.known.iter().map(|t| t.name.as_str()).collect();
        f.debug_struct("Tokens").field("names", &names).finish()
    }
}

/// The SHA-256 of a token, as hex: what a token list stores.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Tokens {
    /// Parses a JSON or YAML list of `{name, scope, sha256}`.
    pub fn parse(text: &str) -> Result<Self, TokenConfigError> {
        let entries: Vec<TokenEntry> =
            serde_norway::from_str(text).map_err(|e| TokenConfigError::Format(e.to_string()))?;
        if entries.is_empty() {
            return Err(TokenConfigError::Empty);
        }
        let mut known: Vec<KnownToken> = Vec::new();
        for (index, mut entry) in entries.into_iter().enumerate() {
            let problem = |problem: String| TokenConfigError::Entry { index, problem };
            let name_ok = !entry.name.is_empty()
                && entry.name.len() <= 64
                && entry
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
            if !name_ok {
                return Err(problem(format!(
                    "name {:?} must be 1-64 characters of letters, digits, '.', '_', '@' or '-'",
                    entry.name
                )));
            }
            let hash = parse_hex(&entry.sha256.to_ascii_lowercase()).ok_or_else(|| {
                problem(format!(
                    "sha256 of {} must be 64 hex characters (the token's SHA-256, from `tenantctl token hash`), not the token itself",
                    entry.name
                ))
            })?;
            if known.iter().any(|k| k.name == entry.name) {
                return Err(problem(format!(
                    "name {} is used twice; names must be unique",
                    entry.name
                )));
            }
            if known.iter().any(|k| k.hash == hash) {
                return Err(problem(format!(
                    "{} has the same token as another entry; give each caller its own token",
                    entry.name
                )));
            }
            let access = entry.access().map_err(problem)?;
            known.push(KnownToken {
                name: entry.name,
                access,
                hash,
            });
        }
        Ok(Self { known })
    }

    /// Reads the list from an SSM SecureString parameter.
    pub async fn from_ssm(client: &aws_sdk_ssm::Client, name: &str) -> Result<Self, TokenConfigError> {
        let out = client
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| TokenConfigError::Ssm {
                name: name.to_owned(),
                message: aws_sdk_ssm::error::DisplayErrorContext(&e).to_string(),
            })?;
        let value = out.parameter().and_then(|p| p.value()).unwrap_or_default();
        Self::parse(value)
    }

    /// The caller a token belongs to. Every configured hash is compared, in constant
    /// time, whether or not an earlier one matched.
    pub(super) fn identify(&self, token: &str) -> Option<(&str, &Access)> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for known in &self.known {
            if bool::from(known.hash.ct_eq(&presented)) {
                found = Some((known.name.as_str(), &known.access));
            }
        }
        found
    }

    /// The bindings and configured hash of the token named `name`: what a dashboard
    /// session re-checks on every page, so a token that was removed or replaced ends
    /// its sessions and a changed binding applies to them at once.
    pub(super) fn configured(&self, name: &str) -> Option<(&Access, [u8; 32])> {
        self.known
            .iter()
            .find(|k| k.name == name)
            .map(|k| (&k.access, k.hash))
    }

    pub fn names(&self) -> Vec<&str> {
        self.known.iter().map(|t| t.name.as_str()).collect()
    }
}

/// A scope an endpoint requires, as a type: `Caller<Deploy>`.
pub trait RequiredScope: Send + Sync + 'static {
    const SCOPE: Scope;
}

pub struct Read;
pub struct Deploy;
pub struct Admin;

impl RequiredScope for Read {
    const SCOPE: Scope = Scope::Read;
}
impl RequiredScope for Deploy {
    const SCOPE: Scope = Scope::Deploy;
}
impl RequiredScope for Admin {
    const SCOPE: Scope = Scope::Admin;
}

/// An authenticated caller holding scope `S` somewhere. Extracting it answers 401
/// for a missing or unknown token and 403 for a token with scope `S` nowhere, before
/// the handler runs, so a refused request never acts. Which tenants the scope holds
/// on is checked by the handler against what it touches ([`super::access`]).
pub struct Caller<S> {
    pub name: String,
    /// The highest scope the caller holds anywhere.
    pub scope: Scope,
    pub access: Access,
    /// How the caller was identified (`token <name>`, `OpenID Connect <issuer>,
    /// subject <sub>`), for the audit trail.
    pub identity: String,
    _scope: PhantomData<S>,
}

impl<S> Caller<S> {
    pub fn actor(&self) -> Actor {
        Actor::api(&self.name)
    }
}

impl<S: RequiredScope> FromRequestParts<ApiState> for Caller<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::Unauthenticated("no bearer token; send `Authorization: Bearer <token>`".into())
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthenticated(
                    "the Authorization header is not `Bearer <token>`; send the token as a bearer token"
                        .into(),
                )
            })?;
        let (name, access, kind, identity) = match (state.tokens().identify(token), state.oidc()) {
            (Some((name, access)), _) => (name.to_owned(), access.clone(), "token", format!("token {name}")),
            (None, Some(oidc)) if super::oidc::looks_like_jwt(token) => {
                let principal = oidc.verify(token).await?;
                let identity = format!("OpenID Connect {}, subject {}", oidc.issuer(), principal.subject);
                (
                    principal.name,
                    principal.access,
                    "OpenID Connect principal",
                    identity,
                )
            }
            _ => {
                return Err(ApiError::Unauthenticated(
                    "the bearer token is not known here; ask an administrator for a token".into(),
                ))
            }
        };
        let scope = access.highest();
        if scope < S::SCOPE {
            let refused = ApiError::Forbidden(format!(
                "{kind} {name} has scope {}; this request needs scope {} or higher",
                scope.as_str(),
                S::SCOPE.as_str()
            ));
            // A refused change goes to the audit trail, as a refusal by role bindings
            // does; a refused read does not (it would let a reader write).
            if !parts.method.is_safe() {
                let path = parts.uri.path();
                let entry = crate::record::AuditEntry {
                    at: chrono::Utc::now(),
                    principal: name,
                    identified_by: identity,
                    scope: S::SCOPE,
                    action: format!("{} {path}", parts.method),
                    target: path.trim_start_matches("/v1/").to_owned(),
                    outcome: crate::record::AuditOutcome::Refused,
                    reason: refused.to_string(),
                };
                super::access::append_audit(state, &entry).await;
            }
            return Err(refused);
        }
        Ok(Caller {
            name,
            scope,
            access,
            identity,
            _scope: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_known_by_their_hash_only() {
        let list = format!(
            "- {{name: ci, scope: deploy, sha256: {}}}\n- {{name: ops, scope: admin, sha256: {}}}\n",
            token_hash("secret-ci"),
            token_hash("secret-ops")
        );
        let tokens = Tokens::parse(&list).unwrap();
        assert_eq!(
            tokens.identify("secret-ci"),
            Some(("ci", &Access::everywhere(Scope::Deploy)))
        );
        assert_eq!(
            tokens.identify("secret-ops"),
            Some(("ops", &Access::everywhere(Scope::Admin)))
        );
        assert_eq!(tokens.identify("secret"), None);
        assert!(!format!("{tokens:?}").contains(&token_hash("secret-ci")));
    }

    #[test]
    fn bad_lists_say_what_to_fix() {
        let err = Tokens::parse("[]").unwrap_err().to_string();
        assert!(err.contains("tenantctl token hash"), "{err}");
        let err = Tokens::parse(r#"[{"name": "ci", "scope": "deploy", "sha256": "my-token"}]"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("64 hex characters"), "{err}");
        let err = Tokens::parse(r#"[{"name": "ci", "scope": "root", "sha256": "00"}]"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not valid"), "{err}");
        let h = token_hash("x");
        let twice = format!(
            r#"[{{"name":"a","scope":"read","sha256":"{h}"}},{{"name":"a","scope":"read","sha256":"{}"}}]"#,
            token_hash("y")
        );
        assert!(Tokens::parse(&twice)
            .unwrap_err()
            .to_string()
            .contains("used twice"));
    }

    #[test]
    fn bindings_narrow_a_scope_to_part_of_the_fleet() {
        let list = format!(
            "- {{name: eu, scope: deploy, on: {{regions: [eu-west-1]}}, sha256: {}}}\n\
             - name: blue\n  sha256: {}\n  bindings:\n    - {{scope: read}}\n    - {{scope: admin, on: {{environments: [prod], groups: [blue]}}}}\n",
            token_hash("eu"),
            token_hash("blue")
        );
        let tokens = Tokens::parse(&list).unwrap();
        let (_, eu) = tokens.identify("eu").unwrap();
        assert_eq!(eu.highest(), Scope::Deploy);
        assert!(!eu.is_unrestricted(Scope::Read));
        assert_eq!(eu.describe(Scope::Deploy), "deploy on regions [eu-west-1]");
        let (_, blue) = tokens.identify("blue").unwrap();
        assert_eq!(blue.highest(), Scope::Admin);
        assert!(blue.is_unrestricted(Scope::Read));
        assert_eq!(
            blue.describe(Scope::Admin),
            "admin on environments [prod], groups [blue]"
        );
    }

    #[test]
    fn bad_bindings_say_what_to_fix() {
        let h = token_hash("x");
        let parse = |entry: &str| {
            Tokens::parse(&format!("- {{name: ci, sha256: {h}, {entry}}}"))
                .unwrap_err()
                .to_string()
        };
        let err = parse("scope: deploy, bindings: [{scope: read}]");
        assert!(
            err.contains("token entry 0: ci has both `scope` and `bindings`"),
            "{err}"
        );
        let err = parse("on: {regions: [eu-west-1]}, bindings: [{scope: read}]");
        assert!(err.contains("put each `on` inside its binding"), "{err}");
        let err = parse("bindings: []");
        assert!(err.contains("empty `bindings` list"), "{err}");
        let err = parse("on: {regions: [eu-west-1]}");
        assert!(
            err.contains("ci has no scope; add `scope: read|deploy|admin`"),
            "{err}"
        );
        let err = parse("scope: read, on: {regions: []}");
        assert!(err.contains("`regions` is empty; leave it out"), "{err}");
        let err = parse("scope: read, on: {zones: [a]}");
        assert!(err.contains("unknown field `zones`"), "{err}");
        let err = parse("bindings: [{scope: owner}]");
        assert!(err.contains("not valid"), "{err}");
    }

    #[test]
    fn scopes_are_ordered() {
        assert!(Scope::Read < Scope::Deploy && Scope::Deploy < Scope::Admin);
    }
}
