use std::time::Duration;

use serde_json::{Value, json};
use testkit::TestApp;

/// Routes only these tests mount: a handler that panics and one slower than any deadline.
mod probe {
    use std::time::Duration;

    use axum::routing::get;
    use platform::{AppState, Module};
    use utoipa_axum::router::OpenApiRouter;

    async fn explode() -> &'static str {
        panic!("secret-9931 in a panic message")
    }

    fn router() -> OpenApiRouter<AppState> {
        OpenApiRouter::new()
            .route("/api/v1/probe/panic", get(explode))
            .route(
                "/api/v1/probe/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            )
    }

    pub const MODULE: Module = Module {
        name: "probe",
        needs: &[],
        router,
        workers: |_| Vec::new(),
        jobs: |_| Vec::new(),
        permissions: &[],
        subject_data: None,
        compliance: None,
    };
}

fn with_probe() -> Vec<platform::Module> {
    let mut modules = gateway::modules::ALL.to_vec();
    modules.push(probe::MODULE);
    modules
}

fn problem_type(response: &reqwest::Response) -> &str {
    response.headers()["content-type"].to_str().unwrap()
}

#[tokio::test]
async fn a_panic_is_a_500_problem_with_the_request_id_and_none_of_the_panic_text() {
    let app = TestApp::builder().modules(with_probe()).start().await;
    let response = app.get("/api/v1/probe/panic").await;
    assert_eq!(response.status(), 500);
    assert_eq!(problem_type(&response), "application/problem+json");
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "internal", "{body}");
    assert_eq!(body["request_id"], id.as_str(), "{body}");
    assert!(!body.to_string().contains("secret-9931"), "{body}");
    // The process serves on.
    assert_eq!(app.get("/health/live").await.status(), 200);
}

#[tokio::test]
async fn a_request_past_its_deadline_is_a_503_timeout_with_retry_after() {
    let app = TestApp::builder()
        .modules(with_probe())
        .set("WARUNG_HTTP__REQUEST_TIMEOUT_MS", "300")
        .start()
        .await;
    // The handler would take 30 s; the deadline answers long before the client gives up.
    let response = app
        .client
        .get(app.url("/api/v1/probe/slow"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(problem_type(&response), "application/problem+json");
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "timeout", "{body}");
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_problem_and_changes_nothing() {
    let app = TestApp::builder()
        .set("WARUNG_HTTP__BODY_LIMIT_BYTES", "1024")
        .start()
        .await;
    let mut body = testkit::signup_body();
    let slug = body["slug"].clone();
    body["business_name"] = json!("Toko ".repeat(400));
    let refused = app
        .post_json("/api/v1/onboarding/merchants", None, &body)
        .await;
    assert_eq!(refused.status(), 413);
    assert_eq!(problem_type(&refused), "application/problem+json");
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "payload_too_large", "{problem}");
    // The same sign-up within the limit finds its slug free: nothing was written.
    let mut fits = testkit::signup_body();
    fits["slug"] = slug;
    let created = app
        .post_json("/api/v1/onboarding/merchants", None, &fits)
        .await;
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
}

#[tokio::test]
async fn cors_answers_the_configured_origins_only() {
    let app = TestApp::builder()
        .set(
            "WARUNG_HTTP__CORS_ALLOWED_ORIGINS",
            r#"["https://portal.example"]"#,
        )
        .start()
        .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/orders"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type,idempotency-key",
            )
            .send()
    };
    let allowed = preflight("https://portal.example").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://portal.example"
    );
    let headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(headers.contains("idempotency-key"), "{headers}");
    let other = preflight("https://evil.example").await.unwrap();
    assert!(
        !other.headers().contains_key("access-control-allow-origin"),
        "{:?}",
        other.headers()
    );
    // A plain request from the allowed origin may read the request id and Retry-After.
    let simple = app
        .client
        .get(app.url("/health/live"))
        .header("origin", "https://portal.example")
        .send()
        .await
        .unwrap();
    let exposed = simple.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("x-request-id") && exposed.contains("retry-after"),
        "{exposed}"
    );
}

#[tokio::test]
async fn unknown_route_is_a_problem_json_404_with_the_request_id() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/v1/nothing-here").await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let header_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    assert_eq!(body["status"], 404);
    assert_eq!(body["request_id"], header_id);
    assert_eq!(
        uuid::Uuid::parse_str(&header_id).unwrap().get_version_num(),
        7
    );
}

#[tokio::test]
async fn a_sane_caller_request_id_is_kept_and_a_hostile_one_replaced() {
    let app = TestApp::spawn().await;
    let kept = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "pos-7.abc_1")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "pos-7.abc_1");

    let replaced = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "a b; drop table tenants")
        .send()
        .await
        .unwrap();
    let id = replaced.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "got {id}");
}

#[tokio::test]
async fn wrong_method_is_a_problem_json() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .delete(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "method_not_allowed");
}

#[tokio::test]
async fn responses_carry_security_headers() {
    let app = TestApp::spawn().await;
    let response = app.get("/health/live").await;
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn the_edge_limit_counts_each_client_behind_a_trusted_proxy_on_its_own() {
    let app = TestApp::builder()
        .set("WARUNG_RATE_LIMIT__PER_IP_PER_SECOND", "1")
        .set("WARUNG_RATE_LIMIT__PER_IP_BURST", "2")
        .set("WARUNG_HTTP__TRUSTED_PROXIES", r#"["127.0.0.1"]"#)
        .start()
        .await;
    let from = |forwarded: &'static str| {
        app.client
            .get(app.url("/health/live"))
            .header("x-forwarded-for", forwarded)
            .send()
    };
    for _ in 0..2 {
        assert_eq!(from("198.51.100.20").await.unwrap().status(), 200);
    }
    let refused = from("198.51.100.20").await.unwrap();
    testkit::rate_limited(refused, "client_requests").await;
    // The proxy's other clients are not limited by that one.
    assert_eq!(from("198.51.100.21").await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_path_id_that_is_no_id_is_a_problem_json_400_that_quotes_nothing() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    for path in [
        "/api/v1/customers/not-an-id-4711",
        "/api/v1/orders/not-an-id-4711",
        "/api/v1/products/not-an-id-4711",
    ] {
        let response = app.get_as(path, &merchant.owner.bearer()).await;
        assert_eq!(response.status(), 400, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body = response.text().await.unwrap();
        let problem: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["code"], "invalid_path");
        assert!(!body.contains("4711"), "{body}");
    }
}

#[tokio::test]
async fn a_tenant_that_spent_its_audit_budget_waits_for_the_next_minute_and_no_other_tenant_does() {
    // A fixed clock: the budget's minute cannot roll over in the middle of the test.
    let clock = std::sync::Arc::new(platform::clock::ManualClock::new(chrono::Utc::now()));
    let app = TestApp::builder()
        .set("WARUNG_RATE_LIMIT__TENANT_AUDIT_RECORDS_PER_MINUTE", "3")
        .clock(clock.clone())
        .start()
        .await;
    let merchant = app.merchant().await;
    let other = app.merchant().await;
    let owner = merchant.owner.bearer();
    let profile = format!("/api/v1/users/{}", merchant.owner.id);

    // Requests that record nothing spend nothing.
    for _ in 0..5 {
        assert_eq!(app.get_as("/api/v1/products", &owner).await.status(), 200);
    }
    // Each opening of a profile is one `pii.accessed` record: three fit the budget.
    for _ in 0..3 {
        assert_eq!(app.get_as(&profile, &owner).await.status(), 200);
    }
    let refused = app.get_as(&profile, &owner).await;
    let problem = testkit::rate_limited(refused, "tenant_audit_records").await;
    assert_eq!(problem["status"], 429, "{problem}");
    // Any request of the shop waits, even one that would record nothing.
    assert_eq!(app.get_as("/api/v1/products", &owner).await.status(), 429);
    // Another shop is untouched.
    let theirs = format!("/api/v1/users/{}", other.owner.id);
    assert_eq!(
        app.get_as(&theirs, &other.owner.bearer()).await.status(),
        200
    );
    // The next minute brings a new budget.
    clock.advance(chrono::TimeDelta::seconds(61));
    assert_eq!(app.get_as(&profile, &owner).await.status(), 200);
}

#[tokio::test]
async fn a_nul_character_in_a_query_or_a_body_is_a_422_not_a_500_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = merchant.owner.bearer();
    let listed = app
        .get_as("/api/v1/audit/events?action=pii%00accessed", &owner)
        .await;
    assert_eq!(listed.status(), 422);
    let problem: Value = listed.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "action", "{problem}");

    let products = || async {
        app.get_as("/api/v1/products", &owner)
            .await
            .json::<Value>()
            .await
            .unwrap()["items"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = products().await;
    let created = app
        .client
        .post(app.url("/api/v1/products"))
        .header("authorization", &owner)
        .header("content-type", "application/json")
        .body(r#"{"sku": "NUL-1", "name": "Kopi\u0000", "price_minor": 1000, "currency": "IDR"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 422, "{}", created.text().await.unwrap());
    assert_eq!(products().await, before);
}

#[tokio::test]
async fn a_tenant_past_its_request_quota_waits_for_the_next_minute() {
    let clock = std::sync::Arc::new(platform::clock::ManualClock::new(chrono::Utc::now()));
    let app = TestApp::builder()
        .set("WARUNG_RATE_LIMIT__TENANT_PER_MINUTE", "3")
        .clock(clock.clone())
        .start()
        .await;
    let merchant = app.merchant().await;
    let owner = merchant.owner.bearer();
    for _ in 0..3 {
        assert_eq!(app.get_as("/api/v1/products", &owner).await.status(), 200);
    }
    let refused = app.get_as("/api/v1/products", &owner).await;
    testkit::rate_limited(refused, "tenant_requests").await;
    clock.advance(chrono::TimeDelta::seconds(61));
    assert_eq!(app.get_as("/api/v1/products", &owner).await.status(), 200);
}
