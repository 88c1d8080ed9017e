//! OpenID Connect bearer tokens: a local issuer (discovery document and JWKS on
//! 127.0.0.1:0) with EC keys made in the test signs tokens; the API accepts the good
//! ones with the scope their claims map to and refuses the bad ones with a message
//! saying what was wrong, without acting.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tenant_orchestrator::api::oidc::{OidcConfig, OidcVerifier};
use tenant_orchestrator::api::ApiState;

use crate::api_support::{spawn_with_state, tenant_body, tokens, Reply, TestApi, READ};

pub(crate) const AUDIENCE: &str = "api://tenant-orchestrator";
pub(crate) const DEPLOY_GROUP: &str = "5d2f7a10-0000-4000-8000-00000000000a";
pub(crate) const READ_GROUP: &str = "5d2f7a10-0000-4000-8000-00000000000b";
const PIPELINE_SUBJECT: &str = "sc://contoso/web/tenants-deploy";
pub(crate) const EU_GROUP: &str = "5d2f7a10-0000-4000-8000-00000000000e";

/// A key the test issuer signs with, and its public half as a JWK.
#[derive(Clone)]
pub(crate) struct SigningKey {
    kid: String,
    alg: Algorithm,
    pkcs8: Vec<u8>,
    jwk: Value,
}

impl SigningKey {
    pub(crate) fn ec(kid: &str, alg: Algorithm) -> Self {
        let (rcgen_alg, crv, half) = match alg {
            Algorithm::ES256 => (&rcgen::PKCS_ECDSA_P256_SHA256, "P-256", 32),
            Algorithm::ES384 => (&rcgen::PKCS_ECDSA_P384_SHA384, "P-384", 48),
            other => panic!("the test issuer makes EC keys only, not {other:?}"),
        };
        let pair = rcgen::KeyPair::generate_for(rcgen_alg).unwrap();
        // The uncompressed point: 0x04, x, y.
        let point = pair.public_key_raw();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        Self {
            kid: kid.to_owned(),
            alg,
            pkcs8: pair.serialize_der(),
            jwk: json!({
                "kty": "EC", "crv": crv, "use": "sig", "kid": kid,
                "x": b64(&point[1..1 + half]), "y": b64(&point[1 + half..]),
            }),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_as(self.alg, &self.kid, claims)
    }

    /// A token whose header says `alg` and `kid`, signed with this key.
    fn sign_as(&self, alg: Algorithm, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.to_owned());
        let token = jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&self.pkcs8)).unwrap();
        if alg == self.alg {
            return token;
        }
        // Same signature, another algorithm named in the header.
        let header = json!({"alg": format!("{alg:?}"), "kid": kid, "typ": "JWT"});
        let (_, rest) = token.split_once('.').unwrap();
        format!("{}.{rest}", b64_json(&header))
    }
}

fn b64_json(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// The test's identity provider: `/.well-known/openid-configuration` and `/keys`,
/// and for the dashboard's sign-in `/authorize` (signs the user in at once and sends
/// the browser back with a code, or with `error=access_denied`) and `/token` (gives
/// an ID token for a code whose PKCE challenge the verifier meets).
pub(crate) struct Issuer {
    pub(crate) url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    key_fetches: Arc<AtomicUsize>,
    sign_in: Arc<Mutex<SignInDesk>>,
}

#[derive(Clone)]
struct IssuerState {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    key_fetches: Arc<AtomicUsize>,
    sign_in: Arc<Mutex<SignInDesk>>,
}

/// The client the test issuer has registered for the dashboard.
pub(crate) const CLIENT_ID: &str = "6731de76-0000-4000-8000-000000000002";
pub(crate) const CLIENT_SECRET: &str = "dashboard-client-secret";

/// What `/authorize` was asked for, kept under the code it handed out.
struct Grant {
    redirect_uri: String,
    nonce: String,
    challenge: String,
}

/// The sign-in side of the test issuer.
#[derive(Default)]
struct SignInDesk {
    /// The key ID tokens are signed with; `None` until a test sets it.
    signer: Option<SigningKey>,
    /// Claims of the user who signs in, over the defaults.
    user: Value,
    /// Claims put in the ID token last, over everything (a wrong nonce, an old exp).
    id_token_override: Value,
    /// Whether the user declines consent.
    deny: bool,
    codes: HashMap<String, Grant>,
    next_code: usize,
}

fn b64url_sha256(text: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes()))
}

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to.to_owned())]).into_response()
}

/// `GET /authorize`: the user signs in at once (or declines).
async fn authorize(State(s): State<IssuerState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let param = |k: &str| q.get(k).cloned().unwrap_or_default();
    assert_eq!(param("client_id"), CLIENT_ID);
    assert_eq!(param("response_type"), "code");
    assert_eq!(param("code_challenge_method"), "S256");
    assert!(param("scope").split(' ').any(|s| s == "openid"), "{q:?}");
    let redirect_uri = param("redirect_uri");
    let mut back = reqwest::Url::parse(&redirect_uri).unwrap();
    let mut desk = s.sign_in.lock().unwrap();
    if desk.deny {
        back.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("error_description", "AADSTS65004: User declined to consent")
            .append_pair("state", &param("state"));
        return redirect(back.as_str());
    }
    desk.next_code += 1;
    let code = format!("code-{}", desk.next_code);
    desk.codes.insert(
        code.clone(),
        Grant {
            redirect_uri,
            nonce: param("nonce"),
            challenge: param("code_challenge"),
        },
    );
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &param("state"));
    redirect(back.as_str())
}

/// `POST /token`: an ID token for a code, once, when the client and the PKCE
/// verifier check out (RFC 6749 §4.1.3, RFC 7636 §4.6).
async fn token(State(s): State<IssuerState>, Form(f): Form<HashMap<String, String>>) -> Response {
    let field = |k: &str| f.get(k).cloned().unwrap_or_default();
    let refuse = |error: &str, description: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": error, "error_description": description})),
        )
            .into_response()
    };
    if field("client_id") != CLIENT_ID || field("client_secret") != CLIENT_SECRET {
        return refuse("invalid_client", "unknown client or wrong secret");
    }
    let mut desk = s.sign_in.lock().unwrap();
    let Some(grant) = desk.codes.remove(&field("code")) else {
        return refuse("invalid_grant", "the code is unknown or used");
    };
    if field("grant_type") != "authorization_code" || field("redirect_uri") != grant.redirect_uri {
        return refuse("invalid_grant", "wrong grant type or redirect_uri");
    }
    if b64url_sha256(&field("code_verifier")) != grant.challenge {
        return refuse(
            "invalid_grant",
            "PKCE verification failed: the code_verifier does not match the code_challenge",
        );
    }
    let mut claims = base_claims(&s.url, &json!({"aud": CLIENT_ID, "nonce": grant.nonce}));
    for extra in [desk.user.clone(), desk.id_token_override.clone()] {
        for (k, v) in extra.as_object().into_iter().flatten() {
            claims[k] = v.clone();
        }
    }
    let signer = desk
        .signer
        .as_ref()
        .expect("a test sets the key ID tokens are signed with");
    Json(json!({"token_type": "Bearer", "access_token": "opaque", "id_token": signer.sign(&claims)}))
        .into_response()
}

/// Claims of a valid token of `issuer` for a member of the deploy group, with `extra`
/// on top (a null removes a claim).
fn base_claims(issuer: &str, extra: &Value) -> Value {
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = json!({
        "iss": issuer, "aud": AUDIENCE, "sub": "8f4c-user", "preferred_username": "ada@contoso.com",
        "iat": now, "nbf": now - 5, "exp": now + 600, "groups": ["other-group", DEPLOY_GROUP],
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

impl Issuer {
    pub(crate) async fn start(keys: &[&SigningKey]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = IssuerState {
            url: url.clone(),
            keys: Arc::new(Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect())),
            key_fetches: Arc::new(AtomicUsize::new(0)),
            sign_in: Arc::default(),
        };
        let router = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(|State(s): State<IssuerState>| async move {
                    Json(json!({
                        "issuer": s.url, "jwks_uri": format!("{}/keys", s.url),
                        "authorization_endpoint": format!("{}/authorize", s.url),
                        "token_endpoint": format!("{}/token", s.url),
                    }))
                }),
            )
            .route(
                "/keys",
                get(|State(s): State<IssuerState>| async move {
                    s.key_fetches.fetch_add(1, Ordering::SeqCst);
                    Json(json!({"keys": s.keys.lock().unwrap().clone()}))
                }),
            )
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            url,
            keys: state.keys,
            key_fetches: state.key_fetches,
            sign_in: state.sign_in,
        }
    }

    /// Signs ID tokens with `key` for a user with `user` claims over the defaults.
    pub(crate) fn signs_in(&self, key: &SigningKey, user: Value) {
        let mut desk = self.sign_in.lock().unwrap();
        desk.signer = Some(key.clone());
        desk.user = user;
    }

    /// Puts `claims` into every ID token from now on, over everything else.
    pub(crate) fn misissues(&self, claims: Value) {
        self.sign_in.lock().unwrap().id_token_override = claims;
    }

    /// The user declines consent from now on.
    pub(crate) fn denies_consent(&self) {
        self.sign_in.lock().unwrap().deny = true;
    }

    /// The issuer rotates: only `keys` are published from now on.
    fn publish(&self, keys: &[&SigningKey]) {
        *self.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    fn key_fetches(&self) -> usize {
        self.key_fetches.load(Ordering::SeqCst)
    }

    /// Claims of a valid token for a member of the deploy group, with `extra` on top
    /// (a null removes a claim).
    fn claims(&self, extra: Value) -> Value {
        base_claims(&self.url, &extra)
    }
}

/// The OpenID Connect configuration accepting `issuer`'s tokens, with the test's
/// mappings.
pub(crate) fn config_yaml(issuer: &Issuer) -> String {
    format!(
        "issuer: {}\naudience: [{AUDIENCE}]\nalgorithms: [ES256, RS256]\nmappings:\n\
         - {{claim: groups, value: {DEPLOY_GROUP}, scope: deploy}}\n\
         - {{claim: groups, value: {READ_GROUP}, scope: read}}\n\
         - {{claim: sub, value: \"{PIPELINE_SUBJECT}\", scope: deploy}}\n\
         - {{claim: groups, value: {EU_GROUP}, scope: deploy, on: {{regions: [eu-west-1]}}}}\n",
        issuer.url
    )
}

/// The API with the usual static tokens and OpenID Connect tokens from `issuer`.
async fn spawn_api(issuer: &Issuer) -> TestApi {
    let config = OidcConfig::parse(&config_yaml(issuer)).unwrap();
    let verifier = Arc::new(OidcVerifier::new(config));
    spawn_with_state(|app| ApiState::new(app, tokens()).with_oidc(verifier)).await
}

/// `POST /v1/tenants` with `token`: tenant `id` in `region`, group default.
async fn create_tenant(api: &TestApi, token: &str, id: &str, region: &str) -> Reply {
    let body = tenant_body(id, region, "default");
    api.call(Method::POST, "/v1/tenants", Some(token), Some(body))
        .await
}

/// `GET /v1/tenants` with `token`.
async fn list_tenants(api: &TestApi, token: &str) -> Reply {
    api.call(Method::GET, "/v1/tenants", Some(token), None).await
}

async fn actors(api: &TestApi, tenant: &str) -> Vec<String> {
    let history = api.get(&format!("/v1/tenants/{tenant}/history")).await;
    history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_group_mapped_to_deploy_acts_and_is_named_in_the_history() {
    let key = SigningKey::ec("key-1", Algorithm::ES256);
    let issuer = Issuer::start(&[&key]).await;
    let api = spawn_api(&issuer).await;
    let token = key.sign(&issuer.claims(json!({})));

    let created = create_tenant(&api, &token, "acme", "eu-west-1").await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(actors(&api, "acme").await, vec!["api:ada@contoso.com"]);
    // The static tokens keep working beside it.
    assert_eq!(list_tenants(&api, READ).await.status, StatusCode::OK);
    assert_eq!(issuer.key_fetches(), 1, "the keys are cached");
}

#[tokio::test]
async fn a_read_mapping_reads_and_is_refused_deploying_and_no_mapping_is_refused() {
    let key = SigningKey::ec("key-1", Algorithm::ES256);
    let issuer = Issuer::start(&[&key]).await;
    let api = spawn_api(&issuer).await;
    let reader = key.sign(&issuer.claims(json!({"groups": [READ_GROUP]})));

    assert_eq!(list_tenants(&api, &reader).await.status, StatusCode::OK);
    let refused = create_tenant(&api, &reader, "acme", "eu-west-1").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("ada@contoso.com has scope read") && message.contains("deploy"),
        "{message}"
    );

    let stranger = key.sign(&issuer.claims(json!({"groups": ["someone-elses-group"]})));
    let refused = list_tenants(&api, &stranger).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("no mapping grants") && message.contains("groups, sub"),
        "{message}"
    );

    let tenants = api.get("/v1/tenants").await;
    assert_eq!(tenants.body["items"], json!([]), "refused calls do not act");
}

#[tokio::test]
async fn a_mapping_bound_to_one_region_sees_and_acts_on_that_region_only() {
    let key = SigningKey::ec("key-1", Algorithm::ES256);
    let issuer = Issuer::start(&[&key]).await;
    let api = spawn_api(&issuer).await;
    let eu_team = key.sign(&issuer.claims(json!({"groups": [EU_GROUP]})));
    let everywhere = key.sign(&issuer.claims(json!({})));
    for (id, region) in [("acme", "eu-west-1"), ("globex", "us-east-1")] {
        let created = create_tenant(&api, &everywhere, id, region).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    }

    let listed = list_tenants(&api, &eu_team).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let ids: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["acme"], "only its region is listed");
    let hidden = api
        .call(Method::GET, "/v1/tenants/globex", Some(&eu_team), None)
        .await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{}", hidden.body);
    let refused = create_tenant(&api, &eu_team, "initech", "us-east-1").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let created = create_tenant(&api, &eu_team, "initech", "eu-west-1").await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
}

#[tokio::test]
async fn invalid_tokens_are_refused_saying_what_was_wrong() {
    let key = SigningKey::ec("key-1", Algorithm::ES256);
    let issuer = Issuer::start(&[&key]).await;
    let api = spawn_api(&issuer).await;
    let now = jsonwebtoken::get_current_timestamp();
    let tampered = {
        let good = key.sign(&issuer.claims(json!({})));
        let (head, _) = good.rsplit_once('.').unwrap();
        let other = key.sign(&issuer.claims(json!({"groups": [DEPLOY_GROUP, "extra"]})));
        format!("{head}.{}", other.rsplit_once('.').unwrap().1)
    };
    let cases = [
        (
            "expired",
            key.sign(&issuer.claims(json!({"exp": now - 600}))),
            "expired",
        ),
        (
            "not yet valid",
            key.sign(&issuer.claims(json!({"nbf": now + 600}))),
            "not valid yet",
        ),
        (
            "wrong audience",
            key.sign(&issuer.claims(json!({"aud": "api://another-app"}))),
            AUDIENCE,
        ),
        (
            "wrong issuer",
            key.sign(&issuer.claims(json!({"iss": "https://evil.example"}))),
            "another issuer",
        ),
        (
            "no expiry",
            key.sign(&issuer.claims(json!({"exp": null}))),
            "no exp claim",
        ),
        ("tampered", tampered, "does not verify"),
        (
            "unknown key id",
            key.sign_as(Algorithm::ES256, "key-unknown", &issuer.claims(json!({}))),
            "key-unknown",
        ),
    ];
    for (case, token, expected) in cases {
        let reply = create_tenant(&api, &token, "acme", "eu-west-1").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{case}: {}", reply.body);
        assert_eq!(reply.code(), "unauthenticated", "{case}");
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{case}: {message}");
        assert!(!message.contains(&token), "{case}: the token is never echoed");
    }
    assert_eq!(
        api.get("/v1/tenants").await.body["items"],
        json!([]),
        "refused calls do not act"
    );
}

#[tokio::test]
async fn unsigned_tokens_and_algorithms_not_accepted_or_not_the_keys_are_refused() {
    let key = SigningKey::ec("key-1", Algorithm::ES256);
    let p384 = SigningKey::ec("key-384", Algorithm::ES384);
    let issuer = Issuer::start(&[&key, &p384]).await;
    let api = spawn_api(&issuer).await;
    let claims = issuer.claims(json!({}));

    let unsigned = format!(
        "{}.{}.",
        b64_json(&json!({"alg": "none", "typ": "JWT", "kid": "key-1"})),
        b64_json(&claims)
    );
    let cases = [
        ("alg none", unsigned, "unsigned (alg none)"),
        (
            "ES384 is not accepted",
            p384.sign(&claims),
            "\"ES384\", which this service does not accept (accepted: ES256, RS256)",
        ),
        (
            "RS256 with an EC key",
            key.sign_as(Algorithm::RS256, "key-1", &claims),
            "key key-1 is an EC P-256 key",
        ),
        (
            "HS256 with a public key as secret",
            key.sign_as(Algorithm::HS256, "key-1", &claims),
            "\"HS256\", which this service does not accept",
        ),
    ];
    for (case, token, expected) in cases {
        let reply = list_tenants(&api, &token).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{case}: {}", reply.body);
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{case}: {message}");
    }
}

#[tokio::test]
async fn a_rotated_key_is_fetched_at_once_and_unknown_key_ids_do_not_hammer_the_issuer() {
    let old = SigningKey::ec("key-2025", Algorithm::ES256);
    let new = SigningKey::ec("key-2026", Algorithm::ES256);
    let issuer = Issuer::start(&[&old]).await;
    let api = spawn_api(&issuer).await;
    let reply = list_tenants(&api, &old.sign(&issuer.claims(json!({})))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(issuer.key_fetches(), 1);

    issuer.publish(&[&new]);
    let reply = list_tenants(&api, &new.sign(&issuer.claims(json!({})))).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "a token signed with the new key works at once: {}",
        reply.body
    );
    assert_eq!(issuer.key_fetches(), 2, "the unknown kid fetched the keys again");

    // Within the cool-down, more unknown key ids are refused without a fetch.
    for kid in ["made-up-1", "made-up-2", "made-up-3"] {
        let token = new.sign_as(Algorithm::ES256, kid, &issuer.claims(json!({})));
        let reply = list_tenants(&api, &token).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    }
    let reply = list_tenants(&api, &old.sign(&issuer.claims(json!({})))).await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "the retired key no longer verifies: {}",
        reply.body
    );
    assert_eq!(issuer.key_fetches(), 2, "unknown key ids fetched nothing more");
}

#[tokio::test]
async fn an_azure_devops_service_connection_subject_maps_to_deploy() {
    let key = SigningKey::ec("key-1", Algorithm::ES256);
    let issuer = Issuer::start(&[&key]).await;
    let api = spawn_api(&issuer).await;
    // A workload-identity federation token names the service connection in `sub` and
    // carries no user name or groups.
    let token = key.sign(&issuer.claims(json!({
        "sub": PIPELINE_SUBJECT, "preferred_username": null, "groups": null,
    })));

    let created = create_tenant(&api, &token, "acme", "eu-west-1").await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(
        actors(&api, "acme").await,
        vec![format!("api:{PIPELINE_SUBJECT}")]
    );
}

/// Runs `tenantctl serve` with `args` and no token list in the environment; returns
/// its exit code and stderr.
fn serve_start_up(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tenantctl"))
        .args([
            "--table",
            "no-table-needed",
            "serve",
            "--no-worker",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(args)
        .env_remove("TENANTCTL_TOKENS_FILE")
        .env_remove("TENANTCTL_TOKENS_SSM_PARAMETER")
        .env_remove("TENANTCTL_OIDC_CONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("tenantctl runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn serve_refuses_a_bad_configuration_and_a_start_with_no_way_to_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("oidc.yaml");
    std::fs::write(
        &config,
        "issuer: https://login.example/v2.0\naudience: api://x\nalgorithms: [HS256]\n\
         mappings: [{claim: roles, value: Tenant.Read, scope: read}]\n",
    )
    .unwrap();
    let (code, stderr) = serve_start_up(&["--oidc-config".as_ref(), config.as_os_str()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("oidc.yaml") && stderr.contains("algorithms") && stderr.contains("HMAC"),
        "{stderr}"
    );

    let (code, stderr) = serve_start_up(&[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--tokens-file") && stderr.contains("--oidc-config"),
        "{stderr}"
    );
}
