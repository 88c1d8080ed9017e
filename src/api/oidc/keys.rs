//! The issuer's signing keys: fetched from its JWKS (found through its discovery
//! document unless configured), cached for `jwks_max_age`, and fetched again at once
//! when a token names a key id the cache does not hold (the issuer rotated its keys),
//! at most once per [`UNKNOWN_KID_COOL_DOWN`] so tokens with made-up key ids cannot
//! make this service hammer the issuer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};
use reqwest::Url;
use serde::Deserialize;
use tokio::sync::Mutex;

/// The least time between two fetches caused by unknown key ids.
pub const UNKNOWN_KID_COOL_DOWN: Duration = Duration::from_secs(30);
/// How long one fetch of the discovery document or the key set may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// What kind of key a JWK is, which decides the algorithms it may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    Ec(Curve),
    Ed25519,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

impl KeyKind {
    fn describe(self) -> &'static str {
        match self {
            KeyKind::Rsa => "an RSA key",
            KeyKind::Ec(Curve::P256) => "an EC P-256 key",
            KeyKind::Ec(Curve::P384) => "an EC P-384 key",
            KeyKind::Ed25519 => "an Ed25519 key",
        }
    }

    /// Whether `alg` is meant for this kind of key: an RSA key verifies RS*/PS*, a
    /// P-256 key ES256, a P-384 key ES384, an Ed25519 key EdDSA.
    fn verifies(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyKind::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::Ec(Curve::P256) => alg == ES256,
            KeyKind::Ec(Curve::P384) => alg == ES384,
            KeyKind::Ed25519 => alg == EdDSA,
        }
    }
}

/// One usable public key of the issuer.
pub struct PublicKey {
    pub kid: Option<String>,
    pub key: DecodingKey,
    kind: KeyKind,
    /// The key's own `alg`, when the issuer pins one.
    alg: Option<String>,
}

impl PublicKey {
    fn from_jwk(jwk: &Jwk) -> Option<Self> {
        let kind = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyKind::Rsa,
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => KeyKind::Ec(Curve::P256),
                EllipticCurve::P384 => KeyKind::Ec(Curve::P384),
                _ => return None,
            },
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => KeyKind::Ed25519,
            // Symmetric keys have no place in a public key set.
            _ => return None,
        };
        Some(Self {
            kid: jwk.common.key_id.clone(),
            key: DecodingKey::from_jwk(jwk).ok()?,
            kind,
            alg: jwk.common.key_algorithm.map(|a| a.to_string()),
        })
    }

    /// Refuses `alg` unless it is meant for this key: a token must not choose how
    /// the issuer's key is used (an RSA key read as an HMAC secret, a P-384 key with
    /// ES256).
    pub fn check_algorithm(&self, alg: Algorithm) -> Result<(), String> {
        let kid = self.kid.as_deref().unwrap_or("(no kid)");
        if !self.kind.verifies(alg) {
            return Err(format!(
                "the token says {alg:?}, but the issuer's key {kid} is {}; the token was not signed by this issuer's key",
                self.kind.describe()
            ));
        }
        match &self.alg {
            Some(pinned) if *pinned != format!("{alg:?}") => Err(format!(
                "the token says {alg:?}, but the issuer's key {kid} is for {pinned} only"
            )),
            _ => Ok(()),
        }
    }
}

/// Why no key could be found for a token.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the token's key id {kid} is not among the issuer's current keys{}; get a new token from the issuer", if *.refetched { " (fetched again just now)" } else { "" })]
    UnknownKid { kid: String, refetched: bool },
    #[error(
        "the token names no key id (kid) and the issuer has {0} keys; tokens must say which key signed them"
    )]
    NoKid(usize),
    #[error("the identity provider's keys could not be fetched ({0}); try again shortly")]
    Unavailable(String),
}

#[derive(Default)]
struct Cache {
    keys: Vec<Arc<PublicKey>>,
    fetched: Option<Instant>,
    /// The key set URL, once read from the discovery document.
    jwks_uri: Option<Url>,
    last_unknown_kid_fetch: Option<Instant>,
}

/// The issuer's keys, fetched over HTTPS and cached.
pub struct IssuerKeys {
    http: reqwest::Client,
    issuer: String,
    max_age: Duration,
    cache: Mutex<Cache>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct RawKeySet {
    keys: Vec<serde_json::Value>,
}

impl IssuerKeys {
    pub fn new(issuer: &str, jwks_uri: Option<Url>, max_age: Duration) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .build()
                .expect("an HTTP client with rustls builds"),
            issuer: issuer.to_owned(),
            max_age,
            cache: Mutex::new(Cache {
                jwks_uri,
                ..Cache::default()
            }),
        }
    }

    /// The key a token names by `kid`. The cache lock is held through a fetch, so
    /// concurrent requests share one.
    pub async fn find(&self, kid: Option<&str>) -> Result<Arc<PublicKey>, KeyError> {
        let mut cache = self.cache.lock().await;
        let mut fetched_now = false;
        let stale = cache.fetched.is_none_or(|at| at.elapsed() >= self.max_age);
        if stale {
            match self.fetch(&mut cache).await {
                Ok(()) => fetched_now = true,
                // Keys that are merely old still verify; a down issuer should not
                // lock everyone out before its keys could have changed.
                Err(e) if !cache.keys.is_empty() => {
                    tracing::warn!(issuer = %self.issuer, error = %e, "could not refresh the issuer's keys; using the cached ones")
                }
                Err(e) => return Err(e),
            }
        }
        let Some(kid) = kid else {
            return match cache.keys.as_slice() {
                [only] => Ok(only.clone()),
                keys => Err(KeyError::NoKid(keys.len())),
            };
        };
        if let Some(key) = lookup(&cache.keys, kid) {
            return Ok(key);
        }
        let cooled = cache
            .last_unknown_kid_fetch
            .is_none_or(|at| at.elapsed() >= UNKNOWN_KID_COOL_DOWN);
        if fetched_now || !cooled {
            return Err(KeyError::UnknownKid {
                kid: printable(kid),
                refetched: fetched_now,
            });
        }
        cache.last_unknown_kid_fetch = Some(Instant::now());
        tracing::info!(issuer = %self.issuer, "a token names an unknown key id; fetching the issuer's keys again");
        self.fetch(&mut cache).await?;
        lookup(&cache.keys, kid).ok_or_else(|| KeyError::UnknownKid {
            kid: printable(kid),
            refetched: true,
        })
    }

    async fn fetch(&self, cache: &mut Cache) -> Result<(), KeyError> {
        let jwks_uri = match &cache.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let uri = self.discover().await?;
                cache.jwks_uri = Some(uri.clone());
                uri
            }
        };
        let set: RawKeySet = self.get_json(jwks_uri.as_str()).await?;
        let keys: Vec<Arc<PublicKey>> = set
            .keys
            .iter()
            .filter_map(|raw| serde_json::from_value::<Jwk>(raw.clone()).ok())
            .filter_map(|jwk| PublicKey::from_jwk(&jwk))
            .map(Arc::new)
            .collect();
        if keys.is_empty() {
            return Err(KeyError::Unavailable(format!(
                "{jwks_uri} holds no RSA, EC P-256/P-384 or Ed25519 signing key"
            )));
        }
        tracing::info!(issuer = %self.issuer, keys = keys.len(), "fetched the issuer's signing keys");
        cache.keys = keys;
        cache.fetched = Some(Instant::now());
        Ok(())
    }

    /// The key set URL from `<issuer>/.well-known/openid-configuration`, whose
    /// `issuer` must be the configured one (OpenID Connect Discovery §4.3).
    async fn discover(&self) -> Result<Url, KeyError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let doc: Discovery = self.get_json(&url).await?;
        if doc.issuer != self.issuer {
            return Err(KeyError::Unavailable(format!(
                "{url} is for issuer {}, not the configured {}; fix `issuer` (it must match exactly)",
                doc.issuer, self.issuer
            )));
        }
        Url::parse(&doc.jwks_uri)
            .map_err(|e| KeyError::Unavailable(format!("{url} gives a jwks_uri that is not a URL ({e})")))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, KeyError> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| KeyError::Unavailable(format!("{url}: {e}")))?;
        if !response.status().is_success() {
            return Err(KeyError::Unavailable(format!(
                "{url} answered {}",
                response.status()
            )));
        }
        response
            .json()
            .await
            .map_err(|e| KeyError::Unavailable(format!("{url} did not answer the expected JSON ({e})")))
    }
}

fn lookup(keys: &[Arc<PublicKey>], kid: &str) -> Option<Arc<PublicKey>> {
    keys.iter().find(|k| k.kid.as_deref() == Some(kid)).cloned()
}

/// A key id from a token, safe to put in a message: at most 64 printable characters.
fn printable(kid: &str) -> String {
    kid.chars()
        .take(64)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}
