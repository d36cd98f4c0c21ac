//! The onboarding portal: served from the binary, and a merchant signs up through it in a real
//! headless Chromium (`portal/tests/onboarding.mjs`, playwright-core), consent included.

use serde_json::Value;
use testkit::{PASSWORD, TestApp, workspace_root};

#[tokio::test]
async fn the_portal_is_served_with_a_strict_policy() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/portal").await.status(), 308);
    let page = app.get("/portal/").await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script src="app.js" defer>"#), "{html}");
    assert!(
        !html.contains("<script>"),
        "no inline script: the policy forbids it"
    );
    let script = app.get("/portal/app.js").await;
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(
        script
            .text()
            .await
            .unwrap()
            .contains("/api/v1/privacy/purposes")
    );
}

#[tokio::test]
async fn a_merchant_signs_up_through_the_portal_in_a_browser() {
    let app = TestApp::spawn().await;
    let id = uuid::Uuid::now_v7().simple().to_string();
    let slug = format!("portal-{}", &id[20..]);
    let email = format!("budi.{id}@example.id");
    browser(&app, "tests/onboarding.mjs", &[&slug, &email, PASSWORD]).await;

    // The shop exists, its owner signs in, and the consent given in the page is on record.
    let tokens = app.login(&slug, &email, PASSWORD).await;
    let bearer = format!("Bearer {}", tokens["access_token"].as_str().unwrap());
    let me: Value = app
        .get_as("/api/v1/me", &bearer)
        .await
        .json()
        .await
        .unwrap();
    let granted: Vec<(&str, bool)> = me["consents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["purpose"].as_str().unwrap(),
                c["granted"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(granted.contains(&("account", true)), "{granted:?}");
    assert!(granted.contains(&("marketing", true)), "{granted:?}");
    assert!(granted.contains(&("analytics", false)), "{granted:?}");
    assert_eq!(me["user"]["locale"], "en");
}

#[tokio::test]
async fn mailed_links_open_portal_pages_that_verify_and_reset() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let verify = app.owner_verification_token(&merchant).await;
    let response = app
        .post_json(
            "/api/v1/auth/password-reset/request",
            None,
            &serde_json::json!({"tenant": merchant.slug, "email": merchant.owner.email}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let reset = app
        .mailed_token(
            merchant.tenant,
            merchant.owner.id,
            "staff.password_reset_requested",
            platform::events::sealed::PASSWORD_RESET_TOKEN,
        )
        .await;
    // A customer for whom the till recorded "marketing: yes": they confirm it themselves.
    let mut body = testkit::customer_body(&format!(
        "optin.{}@example.id",
        uuid::Uuid::now_v7().simple()
    ));
    body["consents"][2]["granted"] = serde_json::json!(true);
    let customer = app.customer(&merchant.owner, &body).await;
    let customer_id: uuid::Uuid = customer["id"].as_str().unwrap().parse().unwrap();
    let consent = app
        .subject_token(
            merchant.tenant,
            customer_id,
            "consent.confirmation_requested",
        )
        .await;
    let new_password = "teh manis es batu 7";
    browser(
        &app,
        "tests/links.mjs",
        &[&verify, &reset, new_password, &consent],
    )
    .await;
    let mut tx = app.tenant_tx(merchant.tenant).await;
    let granted =
        users::consent::granted(&mut tx, platform::pii::SubjectId(customer_id), "marketing")
            .await
            .unwrap();
    tx.rollback().await.unwrap();
    assert!(granted, "the customer's own confirmation counts");
    let tokens = app
        .login(&merchant.slug, &merchant.owner.email, new_password)
        .await;
    let bearer = format!("Bearer {}", tokens["access_token"].as_str().unwrap());
    let me: Value = app
        .get_as("/api/v1/me", &bearer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["email_verified"], true, "{me}");
}

/// Runs a portal browser script (`node portal/SCRIPT BASE_URL ARGS...`); fails the test with
/// its output unless it passes.
async fn browser(app: &TestApp, script: &str, args: &[&str]) {
    let output = tokio::process::Command::new("node")
        .arg(script)
        .arg(&app.base)
        .args(args)
        .current_dir(workspace_root().join("portal"))
        .output()
        .await
        .expect("node is required (scripts/test installs the portal's test tools)");
    assert!(
        output.status.success(),
        "browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_customer_files_a_request_in_the_portal_confirms_it_and_downloads_the_bundle_once() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let email = format!("ayu.{}@example.id", uuid::Uuid::now_v7().simple());
    let customer = app
        .customer(&merchant.owner, &testkit::customer_body(&email))
        .await;
    let id: uuid::Uuid = customer["id"].as_str().unwrap().parse().unwrap();
    browser(
        &app,
        "tests/privacy.mjs",
        &["request", &merchant.slug, &email],
    )
    .await;
    let channel: String = sqlx::query_scalar(
        "select channel from privacy_requests where tenant_id = $1 and subject_id = $2",
    )
    .bind(merchant.tenant)
    .bind(id)
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    assert_eq!(channel, "public", "filed by the person, through the portal");
    let confirm = app
        .subject_token(merchant.tenant, id, "privacy.identity_check_requested")
        .await;
    browser(&app, "tests/privacy.mjs", &["confirm", &confirm]).await;
    let download = app
        .subject_token(merchant.tenant, id, "privacy.export_ready")
        .await;
    browser(&app, "tests/privacy.mjs", &["download", &download]).await;
}
