//! Role bindings on the dashboard: a principal bound to one region sees that region's
//! counts, trouble and tenants only, a rollout reaching other regions is refused, and
//! a session follows the token's bindings as configured now.

use reqwest::StatusCode;
use tenant_orchestrator::api::{router, token_hash, ApiState, Tokens};
use tenant_orchestrator::record::Phase;

use crate::api_support::{EU_DEPLOYER, EU_TEAM};
use crate::support::{page_client, seeded, sign_in, ROLLOUT};

async fn get(base: &str, path: &str, token: &str) -> (StatusCode, String) {
    let response = page_client()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_principal_bound_to_one_region_sees_and_acts_on_that_region_only() {
    let seeded = seeded().await;
    let base = &seeded.base;

    let (status, overview) = get(base, "/", EU_TEAM).await;
    assert_eq!(status, StatusCode::OK);
    assert!(overview.contains("eu-west-1"), "its region is shown");
    assert!(!overview.contains("us-east-1"), "no other region: {overview}");
    assert!(overview.contains("broken"), "its tenant in trouble is listed");
    assert!(
        !overview.contains(ROLLOUT),
        "a rollout reaching another region is not shown"
    );
    let (status, _) = get(base, "/tenants/alpha", EU_TEAM).await;
    assert_eq!(status, StatusCode::OK);
    let (status, page) = get(base, "/tenants/charlie", EU_TEAM).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{page}");

    let refused = page_client()
        .post(format!("{base}/rollouts/{ROLLOUT}/pause"))
        .bearer_auth(EU_DEPLOYER)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let text = refused.text().await.unwrap();
    assert!(text.contains("narrow the selector"), "{text}");
    assert_ne!(seeded.fleet.rollout(ROLLOUT).await.phase, Phase::Paused);
    seeded.fleet.stop().await;
}

#[tokio::test]
async fn a_session_follows_a_changed_binding() {
    let seeded = seeded().await;
    let cookie = sign_in(&seeded.base, EU_TEAM).await;
    // The same token, now bound to us-east-1, served over the same table.
    let rebound = Tokens::parse(&format!(
        "- {{name: eu-team, scope: deploy, on: {{regions: [us-east-1]}}, sha256: {}}}\n",
        token_hash(EU_TEAM)
    ))
    .unwrap();
    let app = router(ApiState::new(seeded.fleet.store.clone(), rebound));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let response = page_client()
        .get(format!("http://{addr}/tenants/charlie"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "the new binding applies");
    let response = page_client()
        .get(format!("http://{addr}/tenants/alpha"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::NOT_FOUND,
        "the old one no longer does"
    );
    seeded.fleet.stop().await;
}
