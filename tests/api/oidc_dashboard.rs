//! Dashboard single sign-on with the OpenID Connect issuer (authorization code flow
//! with PKCE), driven over HTTP like a browser: cookies kept per host, redirects
//! followed. The test issuer of [`super::oidc`] signs the user in at once, checks the
//! PKCE verifier at its token endpoint and signs the ID token with a key made in the
//! test. A good sign-in reaches the overview with the bindings its claims map to;
//! every bad one gives the sign-in page saying what was wrong and opens no session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::AttributeValue;
use jsonwebtoken::Algorithm;
use reqwest::header::{LOCATION, SET_COOKIE};
use reqwest::{StatusCode, Url};
use serde_json::{json, Value};
use tenant_orchestrator::api::oidc::{OidcConfig, OidcVerifier};
use tenant_orchestrator::api::{router, ApiState};
use tenant_orchestrator::app::App;
use tenant_orchestrator::store::DynamoStore;

use crate::api_support::{tenant_body, tokens, DEPLOY};
use crate::common::{fresh_store, TestStore};
use crate::oidc::{config_yaml, Issuer, SigningKey, CLIENT_ID, CLIENT_SECRET, EU_GROUP, READ_GROUP};

/// A browser without script: keeps cookies per host (honouring `Max-Age=0`) and
/// follows redirects when asked.
struct Browser {
    http: reqwest::Client,
    cookies: Mutex<HashMap<String, HashMap<String, String>>>,
}

/// Where a visit ended.
struct Visited {
    status: StatusCode,
    url: Url,
    body: String,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Mutex::default(),
        }
    }

    fn host(url: &Url) -> String {
        format!(
            "{}:{}",
            url.host_str().unwrap(),
            url.port_or_known_default().unwrap()
        )
    }

    /// One request, its cookies sent and the answer's stored.
    async fn get(&self, url: &str) -> reqwest::Response {
        let url = Url::parse(url).unwrap();
        let mut request = self.http.get(url.clone());
        let jar = self.cookies.lock().unwrap().get(&Self::host(&url)).cloned();
        if let Some(jar) = jar.filter(|j| !j.is_empty()) {
            let header: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            request = request.header("cookie", header.join("; "));
        }
        let response = request.send().await.unwrap();
        let mut cookies = self.cookies.lock().unwrap();
        let jar = cookies.entry(Self::host(&url)).or_default();
        for set in response.headers().get_all(SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attributes.contains("Max-Age=0") {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
        response
    }

    /// Goes to `url` and follows redirects to where they end.
    async fn visit(&self, url: &str) -> Visited {
        let mut url = Url::parse(url).unwrap();
        for _ in 0..10 {
            let response = self.get(url.as_str()).await;
            if response.status().is_redirection() {
                let to = response.headers()[LOCATION].to_str().unwrap();
                url = url.join(to).unwrap();
                continue;
            }
            let status = response.status();
            return Visited {
                status,
                url,
                body: response.text().await.unwrap(),
            };
        }
        panic!("more than 10 redirects from {url}");
    }

    /// The redirect `url` answers, without following it.
    async fn redirected(&self, url: &str) -> String {
        let response = self.get(url).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{url}");
        response.headers()[LOCATION].to_str().unwrap().to_owned()
    }
}

/// The API and dashboard with the static tokens and sign-in with the test issuer.
struct SignOn {
    base: String,
    issuer: Issuer,
    store: Arc<DynamoStore>,
    _table: TestStore,
}

impl SignOn {
    /// Serves the dashboard; the issuer signs in a user with `user` claims.
    async fn start(user: Value) -> Self {
        let key = SigningKey::ec("key-1", Algorithm::ES256);
        let issuer = Issuer::start(&[&key]).await;
        issuer.signs_in(&key, user);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let secret = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(secret.path(), format!("{CLIENT_SECRET}\n")).unwrap();
        let yaml = format!(
            "{}dashboard:\n  name: Entra ID\n  client_id: {CLIENT_ID}\n  client_secret_file: {}\n  \
             redirect_url: {base}/login/oidc/callback\n",
            config_yaml(&issuer),
            secret.path().display()
        );
        let verifier = Arc::new(OidcVerifier::new(OidcConfig::parse(&yaml).unwrap()));
        let table = fresh_store().await;
        let app = router(ApiState::new(App::new(table.arc()), tokens()).with_oidc(verifier));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base,
            issuer,
            store: table.arc(),
            _table: table,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The stored sessions' `bindings` attributes (absent for token sign-ins).
    async fn session_bindings(&self) -> Vec<Option<Value>> {
        let out = self
            .store
            .client()
            .scan()
            .table_name(self.store.table())
            .filter_expression("begins_with(pk, :p)")
            .expression_attribute_values(":p", AttributeValue::S("SESSION#".into()))
            .send()
            .await
            .unwrap();
        out.items()
            .iter()
            .map(|item| match item.get("bindings") {
                Some(AttributeValue::S(json)) => Some(serde_json::from_str(json).unwrap()),
                _ => None,
            })
            .collect()
    }

    /// Whether `browser` may open the overview (else it is sent to sign in).
    async fn opens_the_overview(&self, browser: &Browser) -> bool {
        let response = browser.get(&self.url("/")).await;
        match response.status() {
            StatusCode::OK => true,
            StatusCode::SEE_OTHER => false,
            other => panic!("the overview answered {other}"),
        }
    }
}

/// Asserts `visited` is the sign-in page with a message containing `expected`.
fn assert_sign_in_page(visited: &Visited, status: StatusCode, expected: &str) {
    assert_eq!(visited.status, status, "{}", visited.body);
    assert_eq!(visited.url.path(), "/login/oidc/callback");
    assert!(visited.body.contains("id=\"login-error\""), "{}", visited.body);
    assert!(visited.body.contains(expected), "{expected}: {}", visited.body);
    assert!(
        visited.body.contains("Sign in with Entra ID") && visited.body.contains("name=\"token\""),
        "both ways to sign in are offered again: {}",
        visited.body
    );
}

#[tokio::test]
async fn an_entra_user_signs_in_and_sees_the_dashboard_with_the_scope_its_group_maps_to() {
    let sign_on = SignOn::start(json!({"groups": [EU_GROUP]})).await;
    let http = reqwest::Client::new();
    for (id, region) in [("acme", "eu-west-1"), ("globex", "us-east-1")] {
        let created = http
            .post(sign_on.url("/v1/tenants"))
            .bearer_auth(DEPLOY)
            .json(&tenant_body(id, region, "default"))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
    }
    let browser = Browser::new();

    let login = browser.visit(&sign_on.url("/login")).await;
    assert!(
        login.body.contains("href=\"/login/oidc/start\"") && login.body.contains("Sign in with Entra ID"),
        "{}",
        login.body
    );
    let start = browser.get(&sign_on.url("/login/oidc/start")).await;
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let flow_cookie = start.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        flow_cookie.contains("HttpOnly; SameSite=Lax; Path=/login/oidc"),
        "{flow_cookie}"
    );
    let to_issuer = Url::parse(start.headers()[LOCATION].to_str().unwrap()).unwrap();
    assert!(to_issuer
        .as_str()
        .starts_with(&format!("{}/authorize?", sign_on.issuer.url)));
    let query: HashMap<_, _> = to_issuer.query_pairs().into_owned().collect();
    assert_eq!(query["client_id"], CLIENT_ID);
    assert_eq!(query["scope"], "openid profile");
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["redirect_uri"], sign_on.url("/login/oidc/callback"));
    let signed_in = browser.visit(to_issuer.as_str()).await;

    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    assert!(
        signed_in
            .body
            .contains("http-equiv=\"refresh\" content=\"0;url=/\""),
        "the page moves on to the overview: {}",
        signed_in.body
    );
    let overview = browser.visit(&sign_on.url("/")).await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
    assert!(
        overview.body.contains("<b id=\"viewer\">ada@contoso.com</b>"),
        "{}",
        overview.body
    );
    // The group maps to deploy on eu-west-1 only: the session keeps that binding.
    assert_eq!(
        sign_on.session_bindings().await,
        vec![Some(
            json!([{"scope": "deploy", "on": {"regions": ["eu-west-1"]}}])
        )]
    );
    assert_eq!(
        browser.visit(&sign_on.url("/tenants/acme")).await.status,
        StatusCode::OK
    );
    let hidden = browser.visit(&sign_on.url("/tenants/globex")).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{}", hidden.body);
}

#[tokio::test]
async fn a_user_whose_group_maps_to_read_is_refused_approving_a_rollout() {
    let sign_on = SignOn::start(json!({"groups": [READ_GROUP]})).await;
    let browser = Browser::new();
    let signed_in = browser.visit(&sign_on.url("/login/oidc/start")).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    assert!(sign_on.opens_the_overview(&browser).await);
    let cookie = {
        let jar = browser.cookies.lock().unwrap();
        let host = Browser::host(&Url::parse(&sign_on.base).unwrap());
        format!("tenantctl_session={}", jar[&host]["tenantctl_session"])
    };

    let refused = reqwest::Client::new()
        .post(sign_on.url("/rollouts/r-2026-01/approve"))
        .header("cookie", cookie)
        .header("origin", &sign_on.base)
        .header("sec-fetch-site", "same-origin")
        .form(&[("csrf", "any")])
        .send()
        .await
        .unwrap();

    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body = refused.text().await.unwrap();
    assert!(
        body.contains("<b>ada@contoso.com</b> has scope read; this page needs scope deploy"),
        "{body}"
    );
}

#[tokio::test]
async fn a_callback_whose_state_is_not_this_browsers_opens_no_session() {
    let sign_on = SignOn::start(json!({})).await;
    let browser = Browser::new();
    let to_issuer = browser.redirected(&sign_on.url("/login/oidc/start")).await;
    let back = browser.redirected(&to_issuer).await;
    let mut forged = Url::parse(&back).unwrap();
    let code: String = forged
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    forged
        .query_pairs_mut()
        .clear()
        .append_pair("code", &code)
        .append_pair("state", "a-state-from-elsewhere");

    let visited = browser.visit(forged.as_str()).await;

    assert_sign_in_page(&visited, StatusCode::BAD_REQUEST, "its state differs");
    assert!(!sign_on.opens_the_overview(&browser).await);
    assert!(sign_on.session_bindings().await.is_empty());
}

#[tokio::test]
async fn a_code_from_another_browsers_sign_in_fails_the_pkce_check() {
    let sign_on = SignOn::start(json!({})).await;
    let victim = Browser::new();
    let attacker = Browser::new();
    // The victim starts a sign-in; the attacker signs in at the issuer with its own
    // flow and slips its code into the victim's callback with the victim's state.
    let victim_to_issuer = victim.redirected(&sign_on.url("/login/oidc/start")).await;
    let victim_state = Url::parse(&victim_to_issuer)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let attacker_to_issuer = attacker.redirected(&sign_on.url("/login/oidc/start")).await;
    let attacker_back = attacker.redirected(&attacker_to_issuer).await;
    let mut injected = Url::parse(&attacker_back).unwrap();
    let code = injected
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    injected
        .query_pairs_mut()
        .clear()
        .append_pair("code", &code)
        .append_pair("state", &victim_state);

    let visited = victim.visit(injected.as_str()).await;

    assert_sign_in_page(&visited, StatusCode::UNAUTHORIZED, "PKCE verification failed");
    assert!(visited.body.contains("sign in again"), "{}", visited.body);
    assert!(!sign_on.opens_the_overview(&victim).await);
    assert!(sign_on.session_bindings().await.is_empty());
}

/// What the test issuer does wrong in a case.
enum Misbehaviour {
    /// Puts these claims into the ID token.
    Misissues(Value),
    DeniesConsent,
    None,
}

#[tokio::test]
async fn bad_answers_from_the_issuer_give_the_sign_in_page_saying_what_was_wrong() {
    let now = jsonwebtoken::get_current_timestamp();
    let cases: [(&str, Value, Misbehaviour, StatusCode, &str); 5] = [
        (
            "wrong nonce",
            json!({}),
            Misbehaviour::Misissues(json!({"nonce": "the-nonce-of-another-sign-in"})),
            StatusCode::UNAUTHORIZED,
            "does not carry this sign-in's nonce",
        ),
        (
            "expired ID token",
            json!({}),
            Misbehaviour::Misissues(json!({"exp": now - 600, "iat": now - 1200, "nbf": now - 1200})),
            StatusCode::UNAUTHORIZED,
            "the token has expired",
        ),
        (
            "ID token for another client",
            json!({}),
            Misbehaviour::Misissues(json!({"aud": "api://tenant-orchestrator"})),
            StatusCode::UNAUTHORIZED,
            CLIENT_ID,
        ),
        (
            "consent declined",
            json!({}),
            Misbehaviour::DeniesConsent,
            StatusCode::FORBIDDEN,
            "Entra ID did not grant access (AADSTS65004: User declined to consent)",
        ),
        (
            "no mapping",
            json!({"groups": ["someone-elses-group"]}),
            Misbehaviour::None,
            StatusCode::FORBIDDEN,
            "ada@contoso.com signed in, but no mapping grants it a scope",
        ),
    ];
    for (case, user, misbehaviour, status, expected) in cases {
        let sign_on = SignOn::start(user).await;
        match misbehaviour {
            Misbehaviour::Misissues(claims) => sign_on.issuer.misissues(claims),
            Misbehaviour::DeniesConsent => sign_on.issuer.denies_consent(),
            Misbehaviour::None => {}
        }
        let browser = Browser::new();

        let visited = browser.visit(&sign_on.url("/login/oidc/start")).await;

        assert_sign_in_page(&visited, status, expected);
        assert!(!sign_on.opens_the_overview(&browser).await, "{case}");
        assert!(sign_on.session_bindings().await.is_empty(), "{case}");
    }
}

#[tokio::test]
async fn an_issuer_that_is_down_gives_the_sign_in_page_saying_so() {
    // A port nothing listens on any more.
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), CLIENT_SECRET).unwrap();
    let yaml = format!(
        "issuer: {down}\naudience: api://x\nalgorithms: [ES256]\n\
         mappings: [{{claim: groups, value: g, scope: read}}]\n\
         dashboard:\n  client_id: {CLIENT_ID}\n  client_secret_file: {}\n  \
         redirect_url: http://localhost/login/oidc/callback\n",
        secret.path().display()
    );
    let verifier = Arc::new(OidcVerifier::new(OidcConfig::parse(&yaml).unwrap()));
    let table = fresh_store().await;
    let app = router(ApiState::new(App::new(table.arc()), tokens()).with_oidc(verifier));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let visited = Browser::new().visit(&format!("{base}/login/oidc/start")).await;

    assert_eq!(
        visited.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        visited.body
    );
    assert!(
        visited
            .body
            .contains("the identity provider 127.0.0.1 could not be reached")
            && visited.body.contains("try again in a moment")
            && visited.body.contains("name=\"token\""),
        "{}",
        visited.body
    );
}
