//! `POST /api/v1/onboarding/merchants` and the purposes/policy the portal builds it from.

use serde_json::{Value, json};
use testkit::{TestApp, signup_body};

#[tokio::test]
async fn the_portal_reads_purposes_and_policy_in_both_languages() {
    let app = TestApp::spawn().await;
    let id: Value = app
        .get("/api/v1/privacy/purposes?audience=merchant&lang=id")
        .await
        .json()
        .await
        .unwrap();
    let en: Value = app
        .get("/api/v1/privacy/purposes?audience=merchant&lang=en")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(id["policy_version"], "1.0");
    let codes = |v: &Value| -> Vec<(String, bool)> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["code"].as_str().unwrap().to_owned(),
                    p["required"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(codes(&id), codes(&en));
    assert!(codes(&id).contains(&("account".into(), true)));
    assert!(codes(&id).contains(&("marketing".into(), false)));
    assert_ne!(
        id["items"][0]["title"], en["items"][0]["title"],
        "titles are translated"
    );

    let policy: Value = app
        .get("/api/v1/privacy/policy?lang=en")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(policy["version"], "1.0");
    assert!(policy["body"].as_str().unwrap().contains("GDPR"));
    let bad = app.get("/api/v1/privacy/policy?lang=fr").await;
    assert_eq!(bad.status(), 422);
}

#[tokio::test]
async fn onboarding_stores_sealed_pii_consent_evidence_and_a_verification_event() {
    let app = TestApp::spawn().await;
    let body = signup_body();
    let response = app
        .post_json("/api/v1/onboarding/merchants", None, &body)
        .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let tenant: platform::id::TenantId = created["tenant"]["id"].as_str().unwrap().parse().unwrap();
    let owner = created["owner"]["id"].as_str().unwrap();
    let email = body["owner"]["email"].as_str().unwrap();

    // Person fields are ciphertext at rest.
    let row = sqlx::query_as::<_, (Vec<u8>, Option<Vec<u8>>, String)>(
        "select email, full_name, role from staff_users where tenant_id = $1",
    )
    .bind(tenant)
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    assert_eq!(row.2, "owner");
    assert!(!String::from_utf8_lossy(&row.0).contains("example.id"));
    assert!(!String::from_utf8_lossy(row.1.as_ref().unwrap()).contains("Budi"));
    let hash: String =
        sqlx::query_scalar("select password_hash from credentials where tenant_id = $1")
            .bind(tenant)
            .fetch_one(app.system.pool())
            .await
            .unwrap();
    assert!(hash.starts_with("$argon2id$"));

    // Consent evidence: one record per choice, with the policy version; IP kept only hashed.
    let consents = sqlx::query_as::<_, (String, bool, String, String, Option<Vec<u8>>)>(
        "select purpose, granted, policy_version, method, ip_hash from consent_records
         where tenant_id = $1 order by purpose",
    )
    .bind(tenant)
    .fetch_all(app.system.pool())
    .await
    .unwrap();
    let summary: Vec<_> = consents
        .iter()
        .map(|c| (c.0.as_str(), c.1, c.2.as_str(), c.3.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("account", true, "1.0", "signup"),
            ("marketing", false, "1.0", "signup")
        ]
    );
    assert_eq!(consents[0].4.as_ref().map(Vec::len), Some(32));

    // The verification mail's event: ids and a sealed token, no plaintext email or token.
    let payloads: Vec<Value> =
        sqlx::query_scalar("select payload from outbox where tenant_id = $1")
            .bind(tenant)
            .fetch_all(app.system.pool())
            .await
            .unwrap();
    let text = serde_json::to_string(&payloads).unwrap();
    assert!(!text.contains(email) && !text.contains("Budi"), "{text}");
    let actions: Vec<&str> = payloads
        .iter()
        .filter_map(|p| p["action"].as_str())
        .collect();
    for expected in [
        "tenant.created",
        "staff.created",
        "credentials.set",
        "consent.granted",
        "consent.withdrawn",
        "auth_token.issued",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let token = app
        .mailed_token(
            tenant,
            owner.parse().unwrap(),
            "staff.email_verification_requested",
            "events.email_verification_token",
        )
        .await;
    assert!(!text.contains(&token));
}

#[tokio::test]
async fn a_missing_required_consent_is_422_naming_it_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let mut body = signup_body();
    body["consents"] = json!([{"purpose": "account", "granted": false}, {"purpose": "marketing", "granted": true}]);
    let response = app
        .post_json("/api/v1/onboarding/merchants", None, &body)
        .await;
    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "consents");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("account"),
        "{problem}"
    );
    let exists: bool = sqlx::query_scalar("select exists(select 1 from tenants where slug = $1)")
        .bind(body["slug"].as_str().unwrap())
        .fetch_one(app.system.pool())
        .await
        .unwrap();
    assert!(!exists);

    // Unknown purpose, bad slug, short password, bad email: each named.
    let mut body = signup_body();
    body["slug"] = json!("-Bad Slug");
    body["owner"]["password"] = json!("short");
    body["owner"]["email"] = json!("not-an-email");
    body["consents"] =
        json!([{"purpose": "account", "granted": true}, {"purpose": "telepathy", "granted": true}]);
    let response = app
        .post_json("/api/v1/onboarding/merchants", None, &body)
        .await;
    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["owner.email", "owner.password", "slug"],
        "{problem}"
    );
    assert!(!problem.to_string().contains("not-an-email"));
}

#[tokio::test]
async fn a_taken_slug_is_409_and_the_first_merchant_is_untouched() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let mut body = signup_body();
    body["slug"] = json!(merchant.slug);
    let response = app
        .post_json("/api/v1/onboarding/merchants", None, &body)
        .await;
    assert_eq!(response.status(), 409);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "slug_taken");
    let owners: i64 = sqlx::query_scalar("select count(*) from staff_users where tenant_id = $1")
        .bind(merchant.tenant)
        .fetch_one(app.system.pool())
        .await
        .unwrap();
    assert_eq!(owners, 1);
}

#[tokio::test]
async fn sign_ups_are_limited_per_client_address_across_processes() {
    // Two processes, one Redis counter; this test alone calls from 127.0.0.2.
    let a = TestApp::builder()
        .set("WARUNG_RATE_LIMIT__PUBLIC_WRITES_PER_IP_PER_HOUR", "2")
        .start()
        .await;
    let b = TestApp::builder()
        .set("WARUNG_RATE_LIMIT__PUBLIC_WRITES_PER_IP_PER_HOUR", "2")
        .start()
        .await;
    let mut conn = a.state.redis.conn();
    let key = a.state.redis.key("public-writes:127.0.0.2");
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let signup = |app: &TestApp| {
        app.client_from([127, 0, 0, 2])
            .post(app.url("/api/v1/onboarding/merchants"))
            .json(&signup_body())
            .send()
    };
    assert_eq!(signup(&a).await.unwrap().status(), 201);
    assert_eq!(signup(&b).await.unwrap().status(), 201);
    let refused = signup(&a).await.unwrap();
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&wait), "{wait}");
    testkit::rate_limited(refused, "public_writes").await;
    let _: i64 = redis::cmd("DEL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn consent_evidence_and_the_public_budget_name_the_client_behind_a_trusted_proxy() {
    let app = TestApp::builder()
        .set("WARUNG_HTTP__TRUSTED_PROXIES", r#"["127.0.0.0/8"]"#)
        .start()
        .await;
    let client = "203.0.113.50";
    let budget = app.state.redis.key(format_args!("public-writes:{client}"));
    let mut conn = app.state.redis.conn();
    let _: i64 = redis::cmd("DEL")
        .arg(&budget)
        .query_async(&mut conn)
        .await
        .unwrap();
    let response = app
        .client
        .post(app.url("/api/v1/onboarding/merchants"))
        .header("x-forwarded-for", format!("10.9.8.7, {client}"))
        .json(&signup_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let tenant: platform::id::TenantId = created["tenant"]["id"].as_str().unwrap().parse().unwrap();

    let counted: Option<u64> = redis::cmd("GET")
        .arg(&budget)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(counted, Some(1));
    let mut tx = app.tenant_tx(tenant).await;
    let expected = app
        .state
        .pii
        .blind_index(&mut tx, platform::pii::IndexKind::ClientAddress, client)
        .await
        .unwrap();
    let hashes: Vec<Option<Vec<u8>>> =
        sqlx::query_scalar("select ip_hash from consent_records where tenant_id = $1")
            .bind(tenant)
            .fetch_all(app.system.pool())
            .await
            .unwrap();
    assert!(!hashes.is_empty());
    assert!(hashes.iter().all(|h| h.as_deref() == Some(&expected.0[..])));
}
