//! Browser sign-in for the dashboard. A browser cannot send a bearer header, so
//! `POST /login` checks a token from a form and keeps it in an `HttpOnly;
//! SameSite=Strict` cookie; [`Viewer`] accepts that cookie (or a bearer header) on
//! dashboard pages only. The JSON API's [`Caller`](crate::api::auth::Caller) stays
//! bearer-only, so a cookie can never authorise a state-changing request, and the
//! dashboard has only GET pages, so there is nothing for a cross-site form to forge.

use std::marker::PhantomData;

use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::header::{AUTHORIZATION, COOKIE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Form;
use base64::Engine;
use serde::Deserialize;

use super::html::{page, respond, Escaped};
use crate::api::auth::{RequiredScope, Scope};
use crate::api::ApiState;

/// The cookie that carries the token (base64url, so any token fits a cookie value).
pub const SESSION_COOKIE: &str = "tenantctl_session";
/// How long a browser keeps the cookie: a working day, then sign in again.
const SESSION_SECONDS: u32 = 12 * 60 * 60;

/// Someone looking at the dashboard with a token of at least scope `S`, from the
/// session cookie or a bearer header. Without a known token the page redirects to
/// `/login`; with too small a scope it answers a 403 page.
pub struct Viewer<S> {
    pub name: String,
    _scope: PhantomData<S>,
}

/// Why a page was refused: a redirect to the sign-in form, or a 403 page.
pub enum Refused {
    SignIn {
        stale_cookie: bool,
    },
    Forbidden {
        name: String,
        scope: Scope,
        needs: Scope,
    },
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::SignIn { stale_cookie } => {
                let mut response = see_other("/login");
                if stale_cookie {
                    // A token that was revoked: drop it so the browser stops sending it.
                    response.headers_mut().insert(SET_COOKIE, clear_cookie(false));
                }
                response
            }
            Refused::Forbidden { name, scope, needs } => {
                let body = format!(
                    "<p class=\"bad\">Token <b>{}</b> has scope {}; this page needs scope {} or higher.</p>\
                     <p><a href=\"/login\">Sign in with another token</a></p>",
                    Escaped(&name),
                    scope.as_str(),
                    needs.as_str()
                );
                respond(StatusCode::FORBIDDEN, page("Forbidden", None, None, &body))
            }
        }
    }
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

/// The token in the session cookie, if the request carries one that decodes.
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .and_then(|(_, value)| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(value)
                .ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

impl<S: RequiredScope> FromRequestParts<ApiState> for Viewer<S> {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Self::Rejection> {
        let from_cookie = cookie_token(&parts.headers);
        let token = match bearer(&parts.headers) {
            Some(t) => Some(t.to_owned()),
            None => from_cookie.clone(),
        };
        let Some((name, scope)) = token.as_deref().and_then(|t| state.tokens().identify(t)) else {
            return Err(Refused::SignIn {
                stale_cookie: from_cookie.is_some(),
            });
        };
        admit(name, scope, S::SCOPE)?;
        Ok(Viewer {
            name: name.to_owned(),
            _scope: PhantomData,
        })
    }
}

fn see_other(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, HeaderValue::from_static(to))]).into_response()
}

/// Whether the browser reached us over HTTPS, directly or through a proxy that says
/// so. (A client that lies only gets a `Secure` flag on its own cookie.)
fn over_https(uri: &Uri, headers: &HeaderMap) -> bool {
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

fn attributes(secure: bool) -> &'static str {
    if secure {
        "HttpOnly; SameSite=Strict; Path=/; Secure"
    } else {
        "HttpOnly; SameSite=Strict; Path=/"
    }
}

fn session_cookie(token: &str, secure: bool) -> HeaderValue {
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.as_bytes());
    HeaderValue::try_from(format!(
        "{SESSION_COOKIE}={value}; Max-Age={SESSION_SECONDS}; {}",
        attributes(secure)
    ))
    .expect("base64 and fixed attributes are a valid header value")
}

fn clear_cookie(secure: bool) -> HeaderValue {
    HeaderValue::try_from(format!("{SESSION_COOKIE}=; Max-Age=0; {}", attributes(secure)))
        .expect("fixed text is a valid header value")
}

/// The sign-in form, with a message when a previous attempt failed. The token field
/// is never filled in: a token is never sent back to the browser.
fn login_page(status: StatusCode, problem: Option<&str>) -> Response {
    let problem = problem
        .map(|p| format!("<p class=\"bad\" id=\"login-error\">{}</p>", Escaped(p)))
        .unwrap_or_default();
    let body = format!(
        "{problem}<form class=\"login\" method=\"post\" action=\"/login\">\
         <label for=\"token\">API token (scope read or higher)</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" required autofocus>\
         <p><button id=\"sign-in\" type=\"submit\">Sign in</button></p></form>\
         <p class=\"muted\">The token is kept in an HttpOnly cookie for 12 hours; \
         scripts and other sites cannot read or send it.</p>"
    );
    respond(status, page("Sign in", None, None, &body))
}

/// `GET /login`.
pub async fn login_form() -> Response {
    login_page(StatusCode::OK, None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// `POST /login`: a known token of scope read or higher sets the cookie and goes to
/// the overview; anything else shows the form again with what was wrong.
pub async fn login(
    State(state): State<ApiState>,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(LoginForm { token })) = form else {
        return login_page(
            StatusCode::BAD_REQUEST,
            Some("The form was incomplete; paste a token and sign in."),
        );
    };
    let token = token.trim();
    let Some((name, scope)) = state.tokens().identify(token) else {
        tracing::info!("dashboard sign-in refused: unknown token");
        return login_page(
            StatusCode::UNAUTHORIZED,
            Some("That token is not known here. Check it, or ask an administrator for a token."),
        );
    };
    if let Err(refused) = admit(name, scope, Scope::Read) {
        return refused.into_response();
    }
    tracing::info!(caller = %name, "dashboard sign-in");
    let mut response = see_other("/");
    response
        .headers_mut()
        .insert(SET_COOKIE, session_cookie(token, over_https(&uri, &headers)));
    response
}

/// `POST /logout`: forgets the cookie.
pub async fn logout(uri: Uri, headers: HeaderMap) -> Response {
    let mut response = see_other("/login");
    response
        .headers_mut()
        .insert(SET_COOKIE, clear_cookie(over_https(&uri, &headers)));
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
    fn the_cookie_round_trips_any_token_and_is_locked_down() {
        let token = "tok;en=with \"odd\" chars,ü";
        let cookie = session_cookie(token, false);
        let text = cookie.to_str().unwrap();
        assert!(text.ends_with("; HttpOnly; SameSite=Strict; Path=/"), "{text}");
        assert!(!text.contains(token));
        let pair = text.split(';').next().unwrap();
        let h = headers(&[("cookie", &format!("other=1; {pair}; x=y"))]);
        assert_eq!(cookie_token(&h).as_deref(), Some(token));
        assert!(session_cookie(token, true)
            .to_str()
            .unwrap()
            .ends_with("; Secure"));
        assert!(clear_cookie(false).to_str().unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn a_damaged_or_missing_cookie_is_no_token() {
        assert_eq!(
            cookie_token(&headers(&[("cookie", "tenantctl_session=!!!")])),
            None
        );
        assert_eq!(cookie_token(&headers(&[("cookie", "a=b")])), None);
        assert_eq!(cookie_token(&HeaderMap::new()), None);
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
