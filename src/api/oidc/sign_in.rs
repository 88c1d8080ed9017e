//! The issuer's side of the dashboard's browser sign-in (OpenID Connect
//! authorization code flow with PKCE, RFC 7636): where to send the browser, and the
//! exchange of the code it brings back for an ID token at the token endpoint
//! (confidential client, `client_secret_post`). The endpoints come from the
//! configuration or the issuer's discovery document, read once it answers. The ID
//! token itself is verified by [`super::OidcVerifier::verify_id_token`], with the same
//! keys and checks as the API's bearer tokens.

use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::DashboardSignInConfig;

/// How long a call to the issuer may take before the sign-in page says it is down.
const ISSUER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a browser sign-in could not go on at the issuer.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The issuer could not be reached or answered nonsense: try again later.
    #[error("{0}")]
    IssuerUnavailable(String),
    /// The token endpoint refused the code: start the sign-in again.
    #[error("{0}")]
    CodeRefused(String),
}

#[derive(Debug, Clone)]
struct Endpoints {
    authorization: Url,
    token: Url,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenError {
    error: String,
    error_description: Option<String>,
}

/// The dashboard's client of one issuer.
pub struct SignInClient {
    issuer: String,
    config: DashboardSignInConfig,
    http: reqwest::Client,
    endpoints: Mutex<Option<Endpoints>>,
}

/// Text from the issuer, safe and short enough for a message.
pub(super) fn printable(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl SignInClient {
    pub fn new(issuer: &str, config: DashboardSignInConfig) -> Self {
        let configured = match (&config.authorization_endpoint, &config.token_endpoint) {
            (Some(authorization), Some(token)) => Some(Endpoints {
                authorization: authorization.clone(),
                token: token.clone(),
            }),
            _ => None,
        };
        Self {
            issuer: issuer.to_owned(),
            http: reqwest::Client::builder()
                .timeout(ISSUER_TIMEOUT)
                // The token endpoint answers; it never redirects a client secret elsewhere.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client with rustls builds"),
            config,
            endpoints: Mutex::new(configured),
        }
    }

    pub fn config(&self) -> &DashboardSignInConfig {
        &self.config
    }

    /// The configured endpoints, with the missing ones from the discovery document.
    async fn endpoints(&self) -> Result<Endpoints, SignInError> {
        let mut cached = self.endpoints.lock().await;
        if let Some(endpoints) = cached.as_ref() {
            return Ok(endpoints.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let unavailable = |problem: String| {
            SignInError::IssuerUnavailable(format!(
                "the identity provider {} could not be reached ({problem}); try again in a moment",
                self.config.name
            ))
        };
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| unavailable(format!("{url}: {e}")))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("{url} answered {}", response.status())));
        }
        let doc: Discovery = response
            .json()
            .await
            .map_err(|e| unavailable(format!("{url} is not a discovery document: {e}")))?;
        if doc.issuer != self.issuer {
            return Err(unavailable(format!(
                "{url} is for issuer {}, not the configured {}",
                printable(&doc.issuer, 200),
                self.issuer
            )));
        }
        let pick = |configured: &Option<Url>, discovered: Option<String>, name: &str| match configured {
            Some(url) => Ok(url.clone()),
            None => discovered
                .as_deref()
                .and_then(|u| Url::parse(u).ok())
                .ok_or_else(|| {
                    unavailable(format!("{url} gives no valid {name}; configure dashboard.{name}"))
                }),
        };
        let endpoints = Endpoints {
            authorization: pick(
                &self.config.authorization_endpoint,
                doc.authorization_endpoint,
                "authorization_endpoint",
            )?,
            token: pick(&self.config.token_endpoint, doc.token_endpoint, "token_endpoint")?,
        };
        *cached = Some(endpoints.clone());
        Ok(endpoints)
    }

    /// Where to send the browser to sign in: the authorization endpoint with this
    /// client's id, redirect URL and scopes, and the flow's `state`, `nonce` and PKCE
    /// `code_challenge` (S256).
    pub async fn authorization_url(
        &self,
        state: &str,
        nonce: &str,
        code_challenge: &str,
    ) -> Result<Url, SignInError> {
        let mut url = self.endpoints().await?.authorization;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", self.config.redirect_url.as_str())
            .append_pair("scope", &self.config.scopes.join(" "))
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(url)
    }

    /// The ID token the token endpoint gives for `code` and the flow's PKCE verifier.
    pub async fn exchange(&self, code: &str, code_verifier: &str) -> Result<String, SignInError> {
        let endpoint = self.endpoints().await?.token;
        let name = &self.config.name;
        let response = self
            .http
            .post(endpoint.clone())
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", self.config.redirect_url.as_str()),
                ("client_id", &self.config.client_id),
                ("client_secret", self.config.client_secret.expose()),
                ("code_verifier", code_verifier),
            ])
            .send()
            .await
            .map_err(|e| {
                SignInError::IssuerUnavailable(format!(
                    "the identity provider {name} could not be reached to complete the sign-in \
                     ({endpoint}: {e}); try again in a moment"
                ))
            })?;
        let status = response.status();
        if status.is_client_error() {
            // RFC 6749 §5.2: a refused grant says why in `error`.
            let why = match response.json::<TokenError>().await {
                Ok(TokenError {
                    error,
                    error_description,
                }) => {
                    let detail = error_description
                        .map(|d| format!(": {}", printable(&d, 300)))
                        .unwrap_or_default();
                    format!("{}{detail}", printable(&error, 64))
                }
                Err(_) => status.to_string(),
            };
            return Err(SignInError::CodeRefused(format!(
                "{name} refused to complete the sign-in ({why}); sign in again. If it keeps \
                 failing, check the dashboard's client id, secret and redirect URL"
            )));
        }
        if !status.is_success() {
            return Err(SignInError::IssuerUnavailable(format!(
                "the identity provider {name} answered {status} when completing the sign-in; \
                 try again in a moment"
            )));
        }
        let answer: TokenResponse = response.json().await.map_err(|e| {
            SignInError::IssuerUnavailable(format!(
                "the identity provider {name} gave a token response that is not JSON ({e}); try again in a moment"
            ))
        })?;
        answer.id_token.ok_or_else(|| {
            SignInError::CodeRefused(format!("{name} gave no ID token; the scopes must include openid"))
        })
    }
}
