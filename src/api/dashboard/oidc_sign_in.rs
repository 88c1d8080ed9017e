//! Dashboard sign-in with the OpenID Connect issuer (authorization code flow with
//! PKCE), for people whose identity lives there (Entra ID) rather than in a token.
//! `GET /login/oidc/start` makes one random value, keeps it in a short-lived
//! `HttpOnly; SameSite=Lax` cookie (Lax: the issuer's redirect back is a cross-site
//! navigation) and derives from it the flow's `state`, `nonce` and PKCE verifier, so
//! the cookie binds all three; the browser goes to the issuer with the state, the
//! nonce and the verifier's S256 challenge. `GET /login/oidc/callback` takes the code
//! only with the state this browser's cookie gives, exchanges it (with the verifier
//! and the client secret) for an ID token, verifies that token with the API's
//! verifier (signature from the JWKS, issuer, audience = client id, expiry, nonce),
//! maps its claims with the API's mappings and opens the dashboard's usual session,
//! which keeps those bindings. Every failure shows the sign-in page saying what went
//! wrong and what to do.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::Utc;
use maud::{html, DOCTYPE};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::csrf::{looks_random, random_token, tokens_match};
use super::html::respond;
use super::session::{cookie, login_page, open_session, sign_on_check, sign_on_name, Https};
use crate::api::oidc::{OidcError, OidcVerifier, SignInClient, SignInError};
use crate::api::ApiState;
use crate::ports::StoredSession;

/// The cookie that binds a sign-in in progress to this browser.
pub const FLOW_COOKIE: &str = "tenantctl_sign_on";
/// The path the flow cookie is sent to: the start and the callback only.
const FLOW_PATH: &str = "/login/oidc";
/// How long a sign-in at the issuer may take.
const FLOW_SECONDS: u32 = 10 * 60;

/// One sign-in's values, all derived from the random value in the flow cookie.
struct Flow {
    state: String,
    nonce: String,
    verifier: String,
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn derive(label: &str, seed: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(b"tenantctl sign-on ");
    digest.update(label.as_bytes());
    digest.update(b"\0");
    digest.update(seed.as_bytes());
    b64url(&digest.finalize())
}

impl Flow {
    fn from_seed(seed: &str) -> Self {
        Self {
            state: derive("state", seed),
            nonce: derive("nonce", seed),
            // 43 base64url characters: the shortest verifier RFC 7636 §4.1 allows,
            // carrying 256 bits.
            verifier: derive("verifier", seed),
        }
    }

    /// The PKCE challenge (S256) of the verifier.
    fn challenge(&self) -> String {
        b64url(&Sha256::digest(self.verifier.as_bytes()))
    }
}

fn flow_cookie(value: &str, seconds: u32, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::try_from(format!(
        "{FLOW_COOKIE}={value}; Max-Age={seconds}; HttpOnly; SameSite=Lax; Path={FLOW_PATH}{secure}"
    ))
    .expect("base64url and fixed attributes are a valid header value")
}

/// The sign-in page saying what went wrong, with the flow cookie forgotten.
fn failed(state: &ApiState, status: StatusCode, problem: &str, secure: bool) -> Response {
    let mut response = login_page(status, Some(problem), secure, sign_on_name(state));
    response
        .headers_mut()
        .append(SET_COOKIE, flow_cookie("", 0, secure));
    response
}

/// The issuer's verifier and sign-in client, when browser sign-in is configured.
fn sign_on(state: &ApiState) -> Option<(&OidcVerifier, &SignInClient)> {
    let verifier = state.oidc()?;
    Some((verifier, verifier.sign_in()?))
}

const NOT_CONFIGURED: &str =
    "Sign-in with an identity provider is not configured on this server; sign in with an API token.";

/// `GET /login/oidc/start`: sends the browser to the issuer.
pub async fn start(State(state): State<ApiState>, Https(secure): Https) -> Response {
    let Some((_, client)) = sign_on(&state) else {
        return failed(&state, StatusCode::NOT_FOUND, NOT_CONFIGURED, secure);
    };
    let seed = random_token();
    let flow = Flow::from_seed(&seed);
    let url = match client
        .authorization_url(&flow.state, &flow.nonce, &flow.challenge())
        .await
    {
        Ok(url) => url,
        Err(e) => {
            tracing::warn!(error = %e, "dashboard single sign-on could not start");
            let problem = format!("Could not start the sign-in: {e}. Or sign in with an API token.");
            return failed(&state, StatusCode::SERVICE_UNAVAILABLE, &problem, secure);
        }
    };
    let Ok(location) = HeaderValue::try_from(url.as_str()) else {
        let problem = "The identity provider's authorization endpoint is not a usable URL; \
                       ask an administrator to check dashboard.authorization_endpoint.";
        return failed(&state, StatusCode::SERVICE_UNAVAILABLE, problem, secure);
    };
    let mut response = (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, flow_cookie(&seed, FLOW_SECONDS, secure));
    response
}

/// What the issuer sends back: a code and the state, or an error (RFC 6749 §4.1.2).
#[derive(Deserialize)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Text from the query string, safe and short enough for a message.
fn shown(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `GET /login/oidc/callback`: completes the sign-in and opens a session.
pub async fn callback(
    State(state): State<ApiState>,
    Https(secure): Https,
    headers: HeaderMap,
    params: Result<Query<CallbackParams>, QueryRejection>,
) -> Response {
    let fail = |status, problem: &str| {
        tracing::info!(%problem, "dashboard single sign-on refused");
        failed(&state, status, problem, secure)
    };
    let Some((verifier, client)) = sign_on(&state) else {
        return fail(StatusCode::NOT_FOUND, NOT_CONFIGURED);
    };
    let provider = &client.config().name;
    let Ok(Query(params)) = params else {
        return fail(
            StatusCode::BAD_REQUEST,
            "The sign-in answer was malformed; sign in again from this page.",
        );
    };
    if let Some(error) = params.error.as_deref() {
        let detail = params
            .error_description
            .as_deref()
            .map(|d| format!(" ({})", shown(d, 300)))
            .unwrap_or_default();
        let problem = if error == "access_denied" {
            format!(
                "{provider} did not grant access{detail}: consent was declined, or you are not \
                 assigned to the dashboard's application. Ask an administrator to assign you, \
                 or sign in with an API token."
            )
        } else {
            format!(
                "{provider} did not sign you in: {}{detail}. Sign in again; if it keeps failing, \
                 ask an administrator to check the dashboard's registration there.",
                shown(error, 64)
            )
        };
        return fail(StatusCode::FORBIDDEN, &problem);
    }
    let Some(seed) = cookie(&headers, FLOW_COOKIE).filter(|s| looks_random(s)) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "No sign-in is in progress in this browser (it took longer than 10 minutes, or \
             was started elsewhere); sign in again from this page.",
        );
    };
    let flow = Flow::from_seed(seed);
    if !tokens_match(params.state.as_deref().unwrap_or_default(), &flow.state) {
        return fail(
            StatusCode::BAD_REQUEST,
            "The sign-in answer does not belong to the sign-in this browser started (its \
             state differs: an old or forged link); sign in again from this page.",
        );
    }
    let Some(code) = params.code.as_deref().filter(|c| !c.is_empty()) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "The sign-in answer carries no code; sign in again from this page.",
        );
    };
    let id_token = match client.exchange(code, &flow.verifier).await {
        Ok(token) => token,
        Err(e @ SignInError::IssuerUnavailable(_)) => {
            return fail(StatusCode::SERVICE_UNAVAILABLE, &format!("{e}."))
        }
        Err(e @ SignInError::CodeRefused(_)) => return fail(StatusCode::UNAUTHORIZED, &format!("{e}.")),
    };
    let principal = match verifier.verify_id_token(&id_token, &flow.nonce).await {
        Ok(principal) => principal,
        Err(OidcError::Invalid(m)) => {
            return fail(
                StatusCode::UNAUTHORIZED,
                &format!("{provider}'s ID token was not accepted: {m}. Sign in again from this page."),
            )
        }
        Err(OidcError::NoMapping(m)) => return fail(StatusCode::FORBIDDEN, &format!("{m}.")),
        Err(OidcError::Unavailable(m)) => return fail(StatusCode::SERVICE_UNAVAILABLE, &format!("{m}.")),
    };
    let session = StoredSession {
        token_name: principal.name.clone(),
        scope: principal.access.highest().as_str().to_owned(),
        token_check: sign_on_check(verifier.issuer(), &client.config().client_id),
        created_at: Utc::now(),
        expires_at: Utc::now(),
        bindings: Some(principal.access.bindings().to_vec()),
    };
    let spent = flow_cookie("", 0, secure);
    let response = match open_session(&state, session, secure, signed_in(&principal.name), spent).await {
        Ok(response) => response,
        Err(refused) => return refused,
    };
    tracing::info!(caller = %principal.name, issuer = %verifier.issuer(), "dashboard sign-in");
    response
}

/// The page that goes on to the overview. Not a redirect: the browser arrived here
/// from the issuer's site, and a redirect would still count as that cross-site
/// navigation, so the `SameSite=Strict` session cookie would not be sent along. A
/// page of this site that moves on is a same-site navigation.
fn signed_in(name: &str) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content="0;url=/";
                title { "Signed in" }
            }
            body {
                p { "Signed in as " b #viewer { (name) } ". " a #continue href="/" { "Continue to the overview" } }
            }
        }
    };
    respond(StatusCode::OK, markup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_seed_gives_distinct_values_and_a_valid_pkce_pair() {
        let flow = Flow::from_seed(&random_token());
        assert_eq!(flow.verifier.len(), 43, "RFC 7636 verifier length");
        assert_ne!(flow.state, flow.nonce);
        assert_ne!(flow.state, flow.verifier);
        assert_ne!(flow.challenge(), flow.verifier);
        // RFC 7636 appendix B.
        let rfc = Flow {
            state: String::new(),
            nonce: String::new(),
            verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
        };
        assert_eq!(rfc.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        let again = Flow::from_seed("seed");
        assert_eq!(again.state, Flow::from_seed("seed").state);
    }

    #[test]
    fn the_flow_cookie_is_lax_http_only_and_scoped_to_the_sign_in() {
        let text = flow_cookie("v", FLOW_SECONDS, true);
        let text = text.to_str().unwrap();
        assert!(
            text.contains("HttpOnly; SameSite=Lax; Path=/login/oidc; Secure"),
            "{text}"
        );
        assert!(text.contains("Max-Age=600"), "{text}");
    }
}
