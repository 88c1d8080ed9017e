//! Browser sign-in for the dashboard. A browser cannot send a bearer header, so
//! `POST /login` checks a token from a form and opens a server-side session: a random
//! 256-bit id in an `HttpOnly; SameSite=Strict` cookie, stored in the table only as
//! its SHA-256 with the token's name, scope and an expiry 12 hours on (the table's
//! TTL removes it later). The cookie reveals nothing of the token. [`Viewer`] accepts
//! the session (or a bearer header) on dashboard pages only; every page view checks
//! that the session is live and that the token it was made from is still configured,
//! so removing a token ends its sessions. A single sign-on through the issuer (see
//! [`super::oidc_sign_in`]) opens the same kind of session, which keeps the bindings
//! granted at sign-in and ends when that issuer's browser sign-in is no longer
//! configured. `POST /logout` revokes the session. Every form refuses cross-site posts and carries an anti-CSRF token (see [`super::csrf`]).
//! The JSON API's [`Caller`](crate::api::auth::Caller) stays bearer-only, so a cookie
//! never authorises an API request.

use std::marker::PhantomData;

use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::header::{AUTHORIZATION, COOKIE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Form;
use chrono::Utc;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::actions::RolloutForms;
use super::csrf::{cross_site, logout_token, looks_random, random_token, sha256_hex, tokens_match};
use super::tenant_actions::TenantForms;
use maud::html;

use super::html::{page, respond, Who};
use crate::api::access::Principal;
use crate::api::auth::{RequiredScope, Scope};
use crate::api::ApiState;
use crate::domain::Access;
use crate::ports::{StoreError, StoredSession};
use crate::record::Actor;

/// The cookie that carries the session id.
pub const SESSION_COOKIE: &str = "tenantctl_session";
/// The cookie that carries the sign-in form's anti-CSRF token (sent to `/login` only).
pub const LOGIN_COOKIE: &str = "tenantctl_login";
/// How long a session lasts: a working day, then sign in again.
const SESSION_SECONDS: u32 = 12 * 60 * 60;
/// How long a sign-in form may be left open before it is submitted.
const LOGIN_FORM_SECONDS: u32 = 60 * 60;

/// Someone looking at the dashboard with a token of at least scope `S`, from a
/// session or a bearer header. Without either the page redirects to `/login`; with
/// too small a scope it answers a 403 page.
pub struct Viewer<S> {
    pub name: String,
    /// The highest scope the token has now (at least `S`).
    scope: Scope,
    /// The token's role bindings as configured now: every page and action applies
    /// them, so a changed binding applies to a session at once.
    pub access: Access,
    /// How the viewer was recognised, for the audit trail: the token, or the identity
    /// provider and the name it gave.
    identity: String,
    /// The session's id, from which its forms' tokens are derived; `None` for a bearer
    /// header. Never shown on a page.
    session_id: Option<String>,
    /// The sign-out form's token; `None` for a bearer header (there is no session).
    logout_token: Option<String>,
    _scope: PhantomData<S>,
}

impl<S> Viewer<S> {
    /// The viewer as the bindings see it, acting as `dashboard:<name>`.
    pub fn principal(&self) -> Principal<'_> {
        Principal {
            name: &self.name,
            access: &self.access,
            actor: Actor::dashboard(&self.name),
            identity: self.identity.clone(),
        }
    }

    /// Who the page header names, with the sign-out form when there is a session.
    pub fn who(&self) -> Who<'_> {
        Who {
            name: &self.name,
            logout_token: self.logout_token.as_deref(),
        }
    }

    /// The rollout action forms this viewer gets: a session of scope deploy or higher.
    /// A bearer header posts the actions without forms.
    pub fn rollout_forms(&self) -> Option<RolloutForms<'_>> {
        let session_id = self.session_id.as_deref()?;
        (self.scope >= Scope::Deploy).then_some(RolloutForms { session_id })
    }

    /// The action forms of tenant `record` this viewer gets: a session whose bindings
    /// grant deploy on the tenant.
    pub fn tenant_forms(&self, record: &crate::record::TenantRecord) -> Option<TenantForms<'_>> {
        let session_id = self.session_id.as_deref()?;
        let place = crate::domain::TenantPlace::from(&record.spec);
        self.access
            .allows(Scope::Deploy, place)
            .then_some(TenantForms { session_id })
    }
}

/// Why a page was refused: a redirect to the sign-in form, a 403 page, or a 503 page
/// when the session could not be read.
pub enum Refused {
    SignIn {
        stale_cookie: bool,
    },
    Forbidden {
        name: String,
        scope: Scope,
        needs: Scope,
    },
    Unavailable(StoreError),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::SignIn { stale_cookie } => {
                let mut response = see_other("/login");
                if stale_cookie {
                    // An ended session: drop the cookie so the browser stops sending it.
                    response
                        .headers_mut()
                        .insert(SET_COOKIE, clear_cookie(SESSION_COOKIE, "/", false));
                }
                response
            }
            Refused::Forbidden { name, scope, needs } => {
                let body = html! {
                    p.bad {
                        "Token " b { (name) } " has scope " (scope.as_str())
                        "; this page needs scope " (needs.as_str()) " or higher."
                    }
                    p { a href="/login" { "Sign in with another token" } }
                };
                respond(StatusCode::FORBIDDEN, page("Forbidden", None, None, body))
            }
            Refused::Unavailable(error) => unavailable(&error),
        }
    }
}

fn unavailable(error: &StoreError) -> Response {
    tracing::error!(error = %error.detailed(), "dashboard session store failed");
    let body = html! {
        p.bad #page-error {
            "The sign-in could not be checked because the store is not answering; reload in a moment."
        }
    };
    respond(
        StatusCode::SERVICE_UNAVAILABLE,
        page("Service Unavailable", None, None, body),
    )
}

/// The scope check of a page, apart from where the token came from.
pub fn admit(name: &str, scope: Scope, needs: Scope) -> Result<(), Refused> {
    if scope < needs {
        return Err(Refused::Forbidden {
            name: name.to_owned(),
            scope,
            needs,
        });
    }
    Ok(())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The value of cookie `name`, if the request carries it.
pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// The key a session is stored under: the SHA-256 of its id.
fn session_key(id: &str) -> String {
    sha256_hex(&[id.as_bytes()])
}

/// What a session keeps of its token: a hash of the configured hash, so a session
/// made from a token that was since replaced under the same name ends.
fn token_check(configured_hash: &[u8; 32]) -> String {
    sha256_hex(&[b"tenantctl session token\0", configured_hash])
}

/// What a single sign-on session keeps in place of a token check: it names the issuer
/// and client, so the session ends when sign-in with them is no longer configured.
pub(super) fn sign_on_check(issuer: &str, client_id: &str) -> String {
    sha256_hex(&[
        b"tenantctl single sign-on session\0",
        issuer.as_bytes(),
        b"\0",
        client_id.as_bytes(),
    ])
}

/// The name and current bindings of the live session `id`, or `None` when there is
/// no such session, it expired, or its token (or single sign-on) is no longer
/// configured.
/// A live session's name, bindings and how its viewer was recognised.
async fn live_session(state: &ApiState, id: &str) -> Result<Option<(String, Access, String)>, StoreError> {
    if !looks_random(id) {
        return Ok(None);
    }
    let Some(session) = state.store().load_session(&session_key(id)).await? else {
        return Ok(None);
    };
    if !session.is_live(Utc::now()) {
        return Ok(None);
    }
    if let Some(bindings) = session.bindings {
        let configured = state.oidc().and_then(|v| {
            v.sign_in()
                .map(|s| sign_on_check(v.issuer(), &s.config().client_id))
        });
        if !configured.is_some_and(|check| tokens_match(&check, &session.token_check)) {
            return Ok(None);
        }
        let identity = format!(
            "dashboard session signed in with {}, as {}",
            state.oidc().map(|v| v.issuer().to_owned()).unwrap_or_default(),
            session.token_name
        );
        return Ok(Access::new(bindings).map(|access| (session.token_name, access, identity)));
    }
    let Some((access, hash)) = state.tokens().configured(&session.token_name) else {
        return Ok(None);
    };
    if !tokens_match(&token_check(&hash), &session.token_check) {
        return Ok(None);
    }
    let access = access.clone();
    let identity = format!("dashboard session of token {}", session.token_name);
    Ok(Some((session.token_name, access, identity)))
}

impl<S: RequiredScope> FromRequestParts<ApiState> for Viewer<S> {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Self::Rejection> {
        if let Some(token) = bearer(&parts.headers) {
            // An unknown header refuses this request only: a session cookie sent
            // beside it is left alone, so a stray header cannot end a valid session.
            let Some((name, access)) = state.tokens().identify(token) else {
                return Err(Refused::SignIn { stale_cookie: false });
            };
            let scope = access.highest();
            admit(name, scope, S::SCOPE)?;
            return Ok(Viewer {
                name: name.to_owned(),
                scope,
                access: access.clone(),
                identity: format!("token {name}"),
                session_id: None,
                logout_token: None,
                _scope: PhantomData,
            });
        }
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(Refused::SignIn { stale_cookie: false });
        };
        let Some((name, access, identity)) = live_session(state, id).await.map_err(Refused::Unavailable)?
        else {
            return Err(Refused::SignIn { stale_cookie: true });
        };
        let scope = access.highest();
        admit(&name, scope, S::SCOPE)?;
        Ok(Viewer {
            name,
            scope,
            access,
            identity,
            session_id: Some(id.to_owned()),
            logout_token: Some(logout_token(id)),
            _scope: PhantomData,
        })
    }
}

pub(super) fn see_other(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, HeaderValue::from_static(to))]).into_response()
}

/// Marks a request that came over a TLS connection `tenantctl serve` terminated
/// itself (`--tls-cert`): its cookies are `Secure` although the request line, in
/// origin form, names no scheme.
#[derive(Debug, Clone, Copy)]
pub struct OverTls;

/// Whether the browser reached us over HTTPS: on a TLS connection of this server's
/// ([`OverTls`]), or through a proxy that says so.
pub struct Https(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for Https {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let tls = parts.extensions.get::<OverTls>().is_some();
        Ok(Https(tls || over_https(&parts.uri, &parts.headers)))
    }
}

/// Whether the request says it came over HTTPS: an absolute URI with that scheme, or
/// a proxy's header. (A client that lies only gets a `Secure` flag on its own cookie.)
pub(super) fn over_https(uri: &Uri, headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let forwarded_proto = header("x-forwarded-proto")
        .and_then(|v| v.split(',').next())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    let forwarded = header("forwarded").is_some_and(|v| {
        v.split([';', ','])
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(k, v)| {
                k.eq_ignore_ascii_case("proto") && v.trim_matches('"').eq_ignore_ascii_case("https")
            })
    });
    uri.scheme_str() == Some("https") || forwarded_proto || forwarded
}

fn attributes(path: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("HttpOnly; SameSite=Strict; Path={path}{secure}")
}

/// A cookie `name=value` (a [`random_token`]) for `seconds` on `path`.
fn set_cookie(name: &str, value: &str, seconds: u32, path: &str, secure: bool) -> HeaderValue {
    HeaderValue::try_from(format!(
        "{name}={value}; Max-Age={seconds}; {}",
        attributes(path, secure)
    ))
    .expect("base64url and fixed attributes are a valid header value")
}

fn clear_cookie(name: &str, path: &str, secure: bool) -> HeaderValue {
    HeaderValue::try_from(format!("{name}=; Max-Age=0; {}", attributes(path, secure)))
        .expect("fixed text is a valid header value")
}

/// The name of the identity provider the sign-in page offers, if any.
pub(super) fn sign_on_name(state: &ApiState) -> Option<&str> {
    state
        .oidc()
        .and_then(|v| v.sign_in())
        .map(|s| s.config().name.as_str())
}

/// The sign-in form, with a message when a previous attempt failed, and a fresh
/// anti-CSRF token in a hidden field and in a cookie. The token field is never
/// filled in: a token is never sent back to the browser. With `sign_on`, it also
/// offers to sign in with that identity provider.
pub(super) fn login_page(
    status: StatusCode,
    problem: Option<&str>,
    secure: bool,
    sign_on: Option<&str>,
) -> Response {
    let form_token = random_token();
    let body = html! {
        @if let Some(problem) = problem {
            p.bad #login-error { (problem) }
        }
        @if let Some(provider) = sign_on {
            p { a #sign-in-sso href="/login/oidc/start" { "Sign in with " (provider) } }
            p.muted { "or with an API token:" }
        }
        form.login method="post" action="/login" {
            input type="hidden" name="csrf" value=(form_token);
            label for="token" { "API token (scope read or higher)" }
            input #token name="token" type="password" autocomplete="off" required autofocus;
            p { button #sign-in type="submit" { "Sign in" } }
        }
        p.muted {
            "Signing in opens a session of 12 hours, kept in an HttpOnly cookie that holds \
             no token; scripts and other sites cannot read or send it."
        }
    };
    let mut response = respond(status, page("Sign in", None, None, body));
    response.headers_mut().insert(
        SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &form_token, LOGIN_FORM_SECONDS, "/login", secure),
    );
    response
}

/// `GET /login`.
pub async fn login_form(State(state): State<ApiState>, Https(secure): Https) -> Response {
    login_page(StatusCode::OK, None, secure, sign_on_name(&state))
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    /// The form's anti-CSRF token; missing is refused like a wrong one.
    #[serde(default)]
    csrf: String,
}

/// `POST /login`: a known token of scope read or higher, posted from this server's
/// own form, opens a session and goes to the overview; anything else shows the form
/// again with what was wrong.
pub async fn login(
    State(state): State<ApiState>,
    Https(secure): Https,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let sign_on = sign_on_name(&state);
    if let Some(reason) = cross_site(&headers) {
        tracing::warn!(%reason, "dashboard sign-in refused: cross-site");
        return login_page(
            StatusCode::FORBIDDEN,
            Some(&format!("Sign-in refused: {reason}. Sign in from this page.")),
            secure,
            sign_on,
        );
    }
    let Ok(Form(LoginForm { token, csrf })) = form else {
        return login_page(
            StatusCode::BAD_REQUEST,
            Some("The form was incomplete; paste a token and sign in."),
            secure,
            sign_on,
        );
    };
    if !tokens_match(&csrf, cookie(&headers, LOGIN_COOKIE).unwrap_or_default()) {
        tracing::info!("dashboard sign-in refused: the form's anti-CSRF token did not match");
        return login_page(
            StatusCode::FORBIDDEN,
            Some("The sign-in form had expired or did not come from this server; sign in again from this page."),
            secure,
            sign_on,
        );
    }
    let token = token.trim();
    let Some((name, access)) = state.tokens().identify(token) else {
        tracing::info!("dashboard sign-in refused: unknown token");
        return login_page(
            StatusCode::UNAUTHORIZED,
            Some("That token is not known here. Check it, or ask an administrator for a token."),
            secure,
            sign_on,
        );
    };
    let scope = access.highest();
    if let Err(refused) = admit(name, scope, Scope::Read) {
        return refused.into_response();
    }
    // The token matched its configured hash, so this is that hash.
    let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let session = StoredSession {
        token_name: name.to_owned(),
        scope: scope.as_str().to_owned(),
        token_check: token_check(&hash),
        created_at: Utc::now(),
        expires_at: Utc::now(),
        bindings: None,
    };
    let response = match open_session(
        &state,
        session,
        secure,
        see_other("/"),
        clear_cookie(LOGIN_COOKIE, "/login", secure),
    )
    .await
    {
        Ok(response) => response,
        Err(refused) => return refused,
    };
    tracing::info!(caller = %name, "dashboard sign-in");
    response
}

/// Stores `session` (its times set here: from now, for [`SESSION_SECONDS`]) under a
/// fresh id and gives `signed_in`, the response that goes on to the dashboard, with
/// the cookie that carries the id and `spent`, the sign-in's own cookie cleared; or
/// the page saying the store failed.
pub(super) async fn open_session(
    state: &ApiState,
    mut session: StoredSession,
    secure: bool,
    mut signed_in: Response,
    spent: HeaderValue,
) -> Result<Response, Response> {
    let id = random_token();
    let now = Utc::now();
    session.created_at = now;
    session.expires_at = now + chrono::Duration::seconds(SESSION_SECONDS.into());
    if let Err(error) = state.store().create_session(&session_key(&id), &session).await {
        return Err(unavailable(&error));
    }
    let cookies = signed_in.headers_mut();
    cookies.append(
        SET_COOKIE,
        set_cookie(SESSION_COOKIE, &id, SESSION_SECONDS, "/", secure),
    );
    cookies.append(SET_COOKIE, spent);
    Ok(signed_in)
}

#[derive(Deserialize)]
pub struct LogoutForm {
    /// The sign-out form's anti-CSRF token; missing is refused like a wrong one.
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`: revokes the session, posted from a page of this server, and
/// forgets the cookie.
pub async fn logout(
    State(state): State<ApiState>,
    Https(secure): Https,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    let refuse = |reason: &str| {
        tracing::warn!(%reason, "dashboard sign-out refused");
        let body = html! {
            p.bad #page-error { "Sign-out refused: " (reason) ". Use the Log out button of the dashboard." }
            p { a href="/" { "Back to the overview" } }
        };
        respond(StatusCode::FORBIDDEN, page("Forbidden", None, None, body))
    };
    if let Some(reason) = cross_site(&headers) {
        return refuse(&reason);
    }
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
        if !tokens_match(&csrf, &logout_token(id)) {
            return refuse("the form's anti-CSRF token did not match this session");
        }
        if looks_random(id) {
            if let Err(error) = state.store().delete_session(&session_key(id)).await {
                return unavailable(&error);
            }
        }
    }
    let mut response = see_other("/login");
    response
        .headers_mut()
        .insert(SET_COOKIE, clear_cookie(SESSION_COOKIE, "/", secure));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn cookies_are_locked_down_and_read_back() {
        let id = random_token();
        let cookie_header = set_cookie(SESSION_COOKIE, &id, SESSION_SECONDS, "/", false);
        let text = cookie_header.to_str().unwrap();
        assert!(text.ends_with("; HttpOnly; SameSite=Strict; Path=/"), "{text}");
        assert!(text.contains("Max-Age=43200"), "{text}");
        let pair = text.split(';').next().unwrap();
        let h = headers(&[("cookie", &format!("other=1; {pair}; x=y"))]);
        assert_eq!(cookie(&h, SESSION_COOKIE), Some(id.as_str()));
        assert!(set_cookie(LOGIN_COOKIE, &id, 60, "/login", true)
            .to_str()
            .unwrap()
            .ends_with("; Path=/login; Secure"));
        assert!(clear_cookie(SESSION_COOKIE, "/", false)
            .to_str()
            .unwrap()
            .contains("Max-Age=0"));
        assert_eq!(cookie(&headers(&[("cookie", "a=b")]), SESSION_COOKIE), None);
        assert_eq!(cookie(&HeaderMap::new(), SESSION_COOKIE), None);
    }

    #[test]
    fn the_stored_key_and_token_check_are_one_way() {
        let id = random_token();
        let key = session_key(&id);
        assert_eq!(key.len(), 64);
        assert!(!key.contains(&id));
        let hash = [7u8; 32];
        assert_eq!(token_check(&hash), token_check(&hash));
        assert_ne!(token_check(&hash), token_check(&[8u8; 32]));
        assert_ne!(token_check(&hash), sha256_hex(&[&hash]));
    }

    #[test]
    fn https_is_recognised_directly_or_from_the_proxy() {
        let plain: Uri = "/login".parse().unwrap();
        assert!(!over_https(&plain, &HeaderMap::new()));
        assert!(over_https(&plain, &headers(&[("x-forwarded-proto", "https")])));
        assert!(over_https(
            &plain,
            &headers(&[("x-forwarded-proto", "HTTPS, http")])
        ));
        assert!(!over_https(&plain, &headers(&[("x-forwarded-proto", "http")])));
        assert!(over_https(
            &plain,
            &headers(&[("forwarded", "for=1.2.3.4;proto=https")])
        ));
        assert!(over_https(
            &"https://ops.example.com/login".parse().unwrap(),
            &HeaderMap::new()
        ));
    }

    #[test]
    fn a_scope_below_the_page_is_forbidden() {
        assert!(admit("viewer", Scope::Read, Scope::Read).is_ok());
        assert!(admit("ops", Scope::Admin, Scope::Read).is_ok());
        let refused = admit("<viewer>", Scope::Read, Scope::Deploy).unwrap_err();
        let response = refused.into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn bearer_headers_are_read_like_the_api_does() {
        assert_eq!(bearer(&headers(&[("authorization", "Bearer abc")])), Some("abc"));
        assert_eq!(
            bearer(&headers(&[("authorization", "bearer  abc ")])),
            Some("abc")
        );
        assert_eq!(bearer(&headers(&[("authorization", "Basic abc")])), None);
    }
}
