//! Dashboard sessions: an opaque id in the cookie, kept server-side as its hash,
//! revoked at sign-out and ended with its token; forms that refuse cross-site posts
//! and carry anti-CSRF tokens; a stray bearer header that leaves a session alone.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use reqwest::header::{LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use tenant_orchestrator::api::{router, token_hash, ApiState, Tokens};
use tenant_orchestrator::store::DynamoStore;

use crate::api_support::{DEPLOY, READ};
use crate::common::fresh_store;
use crate::support::{hidden_csrf, login_form, page_client, serve, set_cookie, sign_in};

async fn get_page(base: &str, cookie: &str) -> reqwest::Response {
    page_client()
        .get(format!("{base}/"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

/// Whether `cookie` opens the overview (else it is sent to sign in).
async fn opens_the_overview(base: &str, cookie: &str) -> bool {
    let response = get_page(base, cookie).await;
    match response.status() {
        StatusCode::OK => true,
        StatusCode::SEE_OTHER => {
            assert_eq!(response.headers()[LOCATION], "/login");
            false
        }
        other => panic!("unexpected {other}"),
    }
}

/// The Log out form's token on the overview that `cookie` opens.
async fn logout_token(base: &str, cookie: &str) -> String {
    let html = get_page(base, cookie).await.text().await.unwrap();
    hidden_csrf(&html).expect("the Log out form carries a token")
}

/// The API and dashboard over `store` with the token list `yaml`.
async fn serve_with_tokens(store: Arc<DynamoStore>, yaml: &str) -> String {
    let app = router(ApiState::new(store, Tokens::parse(yaml).unwrap()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn session_items(store: &DynamoStore) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    let out = store
        .client()
        .scan()
        .table_name(store.table())
        .filter_expression("begins_with(pk, :p)")
        .expression_attribute_values(":p", AttributeValue::S("SESSION#".into()))
        .send()
        .await
        .unwrap();
    out.items().to_vec()
}

fn text(item: &std::collections::HashMap<String, AttributeValue>, key: &str) -> String {
    match &item[key] {
        AttributeValue::S(s) => s.clone(),
        AttributeValue::N(n) => n.clone(),
        other => panic!("{key}: {other:?}"),
    }
}

#[tokio::test]
async fn the_cookie_holds_an_opaque_id_that_the_table_keeps_only_as_its_hash() {
    let store = fresh_store().await;
    let base = serve(store.clone()).await;

    let cookie = sign_in(&base, READ).await;

    let id = cookie.strip_prefix("tenantctl_session=").unwrap();
    assert_eq!(id.len(), 43, "256 random bits, base64url: {id}");
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(id)
        .unwrap();
    assert_ne!(decoded, READ.as_bytes(), "the cookie is not the token");
    assert!(!String::from_utf8_lossy(&decoded).contains(READ));
    let items = session_items(&store).await;
    assert_eq!(items.len(), 1);
    let item = &items[0];
    let id_hash: String = Sha256::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(text(item, "pk"), format!("SESSION#{id_hash}"));
    assert_eq!(text(item, "token_name"), "viewer");
    assert_eq!(text(item, "scope"), "read");
    let created: i64 = text(item, "created_at").parse().unwrap();
    let expires: i64 = text(item, "expires_at").parse().unwrap();
    assert_eq!(
        expires - created,
        12 * 60 * 60,
        "the TTL attribute ends it after 12 h"
    );
    for (key, value) in item {
        let value = format!("{value:?}");
        assert!(
            !value.contains(id) && !value.contains(READ) && !value.contains(&token_hash(READ)),
            "{key} reveals the id or the token: {value}"
        );
    }
    assert!(opens_the_overview(&base, &cookie).await);
}

#[tokio::test]
async fn a_session_past_its_expiry_is_refused_before_the_ttl_removes_it() {
    let store = fresh_store().await;
    let base = serve(store.clone()).await;
    let cookie = sign_in(&base, READ).await;
    let pk = text(&session_items(&store).await[0], "pk");
    let past = chrono::Utc::now().timestamp() - 1;

    store
        .client()
        .update_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(pk))
        .key("sk", AttributeValue::S("SESSION".into()))
        .update_expression("SET expires_at = :past")
        .expression_attribute_values(":past", AttributeValue::N(past.to_string()))
        .send()
        .await
        .unwrap();

    assert!(!opens_the_overview(&base, &cookie).await);
    assert_eq!(session_items(&store).await.len(), 1, "the item is still there");
}

#[tokio::test]
async fn logging_out_revokes_the_session_so_a_copied_cookie_stops_working() {
    let store = fresh_store().await;
    let base = serve(store.clone()).await;
    let cookie = sign_in(&base, READ).await;
    let token = logout_token(&base, &cookie).await;

    let logout = page_client()
        .post(format!("{base}/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();

    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    assert!(
        !opens_the_overview(&base, &cookie).await,
        "the session ended on the server, not only in the browser"
    );
    assert!(session_items(&store).await.is_empty());
}

#[tokio::test]
async fn removing_or_replacing_a_token_ends_the_sessions_made_from_it() {
    let store = fresh_store().await;
    let base = serve(store.clone()).await;
    let cookie = sign_in(&base, READ).await;
    let deployer = sign_in(&base, DEPLOY).await;

    // The same table served with viewer removed, and with viewer's token replaced.
    let removed = serve_with_tokens(
        store.clone(),
        &format!(
            "- {{name: pipeline, scope: deploy, sha256: {}}}\n",
            token_hash(DEPLOY)
        ),
    )
    .await;
    let replaced = serve_with_tokens(
        store.clone(),
        &format!(
            "- {{name: viewer, scope: read, sha256: {}}}\n- {{name: pipeline, scope: deploy, sha256: {}}}\n",
            token_hash("a-new-viewer-token-42"),
            token_hash(DEPLOY)
        ),
    )
    .await;

    for server in [&removed, &replaced] {
        let response = get_page(server, &cookie).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{server}");
        assert!(response.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0"));
        assert!(
            opens_the_overview(server, &deployer).await,
            "other tokens' sessions go on"
        );
    }
    assert!(opens_the_overview(&base, &cookie).await);
}

#[tokio::test]
async fn cross_site_sign_in_is_refused() {
    let base = serve(fresh_store().await.arc()).await;
    let host = base.strip_prefix("http://").unwrap().to_owned();

    for (header, value) in [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let (form_cookie, csrf) = login_form(&base).await;
        let response = page_client()
            .post(format!("{base}/login"))
            .header("cookie", form_cookie)
            .header(header, value)
            .form(&[("token", READ), ("csrf", &csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{header}: {value}");
        assert_eq!(set_cookie(&response, "tenantctl_session"), None);
        let html = response.text().await.unwrap();
        assert!(html.contains("Sign-in refused"), "{html}");
    }

    // The same form from this server's own page, as a browser sends it, signs in.
    let (form_cookie, csrf) = login_form(&base).await;
    let response = page_client()
        .post(format!("{base}/login"))
        .header("cookie", form_cookie)
        .header("origin", format!("http://{host}"))
        .header("sec-fetch-site", "same-origin")
        .form(&[("token", READ), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie(&response, "tenantctl_session").is_some());
}

#[tokio::test]
async fn a_sign_in_without_the_forms_own_token_is_refused() {
    let base = serve(fresh_store().await.arc()).await;
    let (form_cookie, csrf) = login_form(&base).await;
    let (_, other_csrf) = login_form(&base).await;

    let attempts = [
        (None, None),
        (Some(form_cookie.as_str()), None),
        (None, Some(csrf.as_str())),
        (Some(form_cookie.as_str()), Some(other_csrf.as_str())),
    ];
    for (cookie, field) in attempts {
        let mut request = page_client().post(format!("{base}/login"));
        if let Some(c) = cookie {
            request = request.header("cookie", c);
        }
        let mut form = vec![("token", READ)];
        if let Some(f) = field {
            form.push(("csrf", f));
        }
        let response = request.form(&form).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "cookie {cookie:?}, field {field:?}"
        );
        assert_eq!(set_cookie(&response, "tenantctl_session"), None);
        let html = response.text().await.unwrap();
        assert!(html.contains("sign in again from this page"), "{html}");
        assert!(hidden_csrf(&html).is_some(), "a fresh form to try again");
    }
}

#[tokio::test]
async fn sign_out_needs_the_sessions_token_and_a_same_site_post() {
    let base = serve(fresh_store().await.arc()).await;
    let cookie = sign_in(&base, READ).await;
    let token = logout_token(&base, &cookie).await;

    let forged = [
        (None, None),
        (Some("not-the-token"), None),
        (Some(token.as_str()), Some("https://evil.example")),
    ];
    for (field, origin) in forged {
        let mut request = page_client()
            .post(format!("{base}/logout"))
            .header("cookie", &cookie);
        if let Some(o) = origin {
            request = request.header("origin", o);
        }
        let form: Vec<(&str, &str)> = field.map(|f| ("csrf", f)).into_iter().collect();
        let response = request.form(&form).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "field {field:?}, origin {origin:?}"
        );
        assert!(response.headers().get(SET_COOKIE).is_none());
        assert!(
            opens_the_overview(&base, &cookie).await,
            "a forged sign-out leaves the session"
        );
    }
}

#[tokio::test]
async fn a_wrong_authorization_header_beside_a_valid_cookie_leaves_the_session() {
    let base = serve(fresh_store().await.arc()).await;
    let cookie = sign_in(&base, READ).await;

    let response = page_client()
        .get(format!("{base}/"))
        .header("cookie", &cookie)
        .bearer_auth("not-a-known-token")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(
        response.headers().get(SET_COOKIE).is_none(),
        "the cookie must not be cleared: {:?}",
        response.headers().get(SET_COOKIE)
    );
    assert!(opens_the_overview(&base, &cookie).await);
}
