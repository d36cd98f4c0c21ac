use std::net::SocketAddr;

use platform::health::Dependency;
use serde_json::Value;
use testkit::{FaultProxy, TestApp, stack_env, url_addr};

fn dependency<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing from {body}"))
}

#[tokio::test]
async fn live_is_always_up() {
    let app = TestApp::spawn().await;
    let response = app.get("/health/live").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "up");
}

#[tokio::test]
async fn ready_reports_every_dependency_up_on_the_stack() {
    let app = TestApp::spawn().await;
    let response = app.get("/health/ready").await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    for dep in Dependency::ALL {
        let report = dependency(&body, dep.label());
        assert_eq!(report["status"], "up", "{body}");
        assert_eq!(report["required"], true, "all modules need {}", dep.label());
    }
}

#[tokio::test]
async fn ready_turns_503_while_redis_is_unreachable_and_recovers() {
    let proxy = FaultProxy::start(url_addr("WARUNG_REDIS__URL")).await;
    let app = TestApp::builder()
        .set("WARUNG_REDIS__URL", format!("redis://{}", proxy.addr))
        .set("WARUNG_REDIS__TIMEOUT_MS", "300")
        .start()
        .await;

    assert_eq!(app.get("/health/ready").await.status(), 200);

    proxy.cut();
    let response = app.get("/health/ready").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(dependency(&body, "redis")["status"], "down", "{body}");
    assert_eq!(dependency(&body, "postgres")["status"], "up", "{body}");
    assert!(
        !body.to_string().contains(&proxy.addr.to_string()),
        "no addresses in {body}"
    );

    proxy.restore();
    let mut recovered = false;
    for _ in 0..50 {
        if app.get("/health/ready").await.status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(recovered, "readiness did not recover after Redis came back");
}

#[tokio::test]
async fn a_dependency_no_enabled_module_needs_does_not_fail_readiness() {
    // Nothing listens on the SMTP port behind a cut proxy; only `notifications` needs SMTP.
    let env = stack_env();
    let smtp: SocketAddr = format!("{}:{}", env["WARUNG_SMTP__HOST"], env["WARUNG_SMTP__PORT"])
        .parse()
        .unwrap();
    let proxy = FaultProxy::start(smtp).await;
    proxy.cut();
    let products_only = TestApp::builder()
        .modules(vec![products::MODULE])
        .set("WARUNG_SMTP__PORT", proxy.addr.port().to_string())
        .set("WARUNG_SMTP__TIMEOUT_MS", "300")
        .start()
        .await;
    let response = products_only.get("/health/ready").await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(dependency(&body, "smtp")["status"], "down", "{body}");
    assert_eq!(dependency(&body, "smtp")["required"], false, "{body}");
    assert_eq!(body["status"], "up", "{body}");

    let with_notifications = TestApp::builder()
        .modules(vec![notifications::MODULE])
        .set("WARUNG_SMTP__PORT", proxy.addr.port().to_string())
        .set("WARUNG_SMTP__TIMEOUT_MS", "300")
        .start()
        .await;
    assert_eq!(with_notifications.get("/health/ready").await.status(), 503);
}

#[tokio::test]
async fn metrics_expose_red_metrics_by_route_template() {
    let app = TestApp::spawn().await;
    app.get("/health/live").await;
    app.get("/no/such/path/with-an-id-1234").await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/health/live",status="200"}"#),
        "{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        !text.contains("with-an-id-1234"),
        "raw paths must not become labels"
    );
}

#[tokio::test]
async fn readiness_is_checked_once_per_period_and_details_are_for_internal_callers() {
    let proxy = FaultProxy::start(url_addr("WARUNG_REDIS__URL")).await;
    let cached = TestApp::builder()
        .set("WARUNG_REDIS__URL", format!("redis://{}", proxy.addr))
        .set("WARUNG_REDIS__TIMEOUT_MS", "300")
        .set("WARUNG_HEALTH__CACHE_MS", "60000")
        .start()
        .await;
    let body: Value = cached.get("/health/ready").await.json().await.unwrap();
    assert_eq!(dependency(&body, "redis")["status"], "up", "{body}");
    proxy.cut();
    // Within the period the answer is the last check's: no new connection per call.
    assert_eq!(cached.get("/health/ready").await.status(), 200);
    let fresh = TestApp::builder()
        .set("WARUNG_REDIS__URL", format!("redis://{}", proxy.addr))
        .set("WARUNG_REDIS__TIMEOUT_MS", "300")
        .start()
        .await;
    assert_eq!(fresh.get("/health/ready").await.status(), 503);
    proxy.restore();

    // A caller outside `health.internal_networks` learns the status, not what is down or why.
    let public = TestApp::builder()
        .set("WARUNG_HEALTH__INTERNAL_NETWORKS", r#"["10.0.0.0/8"]"#)
        .start()
        .await;
    let response = public.get("/health/ready").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "up"}));
}

#[tokio::test]
async fn metrics_can_be_served_on_an_internal_listener_only() {
    let app = TestApp::builder()
        .set("WARUNG_HTTP__METRICS_BIND", "127.0.0.1:0")
        .start()
        .await;
    assert_eq!(app.get("/metrics").await.status(), 404);
    let internal = app.metrics_url().expect("an internal listener");
    let response = reqwest::get(&internal).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("# TYPE"));
}

/// Redis down: signed-in staff keep working (the session check falls back to the database),
/// while signing in and signing up, whose brute-force limits live in Redis, answer 503 rather
/// than run unguarded; both work again once Redis is back.
#[tokio::test]
async fn with_redis_down_sessions_still_work_but_sign_in_and_sign_up_answer_503() {
    let proxy = FaultProxy::start(url_addr("WARUNG_REDIS__URL")).await;
    let app = TestApp::builder()
        .set("WARUNG_REDIS__URL", format!("redis://{}", proxy.addr))
        .set("WARUNG_REDIS__TIMEOUT_MS", "300")
        .start()
        .await;
    let merchant = app.merchant().await;
    proxy.cut();

    let me = app.get_as("/api/v1/me", &merchant.owner.bearer()).await;
    assert_eq!(me.status(), 200, "{}", me.text().await.unwrap());
    let login = app
        .post_json(
            "/api/v1/auth/login",
            None,
            &serde_json::json!({
                "tenant": merchant.slug, "email": merchant.owner.email, "password": testkit::PASSWORD,
            }),
        )
        .await;
    assert_eq!(login.status(), 503);
    let problem: Value = login.json().await.unwrap();
    assert_eq!(problem["code"], "cache_unavailable", "{problem}");
    let body = testkit::signup_body();
    let signup = app
        .post_json("/api/v1/onboarding/merchants", None, &body)
        .await;
    assert_eq!(signup.status(), 503);

    proxy.restore();
    let mut back = false;
    for _ in 0..50 {
        let again = app
            .post_json("/api/v1/onboarding/merchants", None, &body)
            .await;
        if again.status() == 201 {
            back = true;
            break;
        }
        assert_eq!(again.status(), 503, "the refused sign-up wrote nothing");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(back, "sign-up did not recover after Redis came back");
}
