//! The operator's routes: only a `platform_admin` token from `warung admin token` opens them,
//! and that token opens nothing of any shop.

use chrono::Utc;
use platform::id::UserId;
use serde_json::{Value, json};
use testkit::TestApp;

fn operator(app: &TestApp) -> String {
    let token = auth::Service::from_state(&app.state)
        .unwrap()
        .operator_token(UserId::new(), Utc::now(), 600)
        .unwrap();
    format!("Bearer {token}")
}

#[tokio::test]
async fn the_operator_lists_and_runs_jobs_and_reaches_no_shop() {
    let app = TestApp::spawn().await;
    let bearer = operator(&app);
    let jobs: Value = app
        .get_as("/api/v1/admin/jobs", &bearer)
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = jobs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    for expected in ["privacy.requests", "retention.auth", "audit.partitions"] {
        assert!(names.contains(&expected), "{names:?}");
    }

    let run = |body: Value| {
        let (app, bearer) = (&app, bearer.clone());
        async move {
            app.client
                .post(app.url("/api/v1/admin/jobs/run"))
                .header("authorization", bearer)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let mut ran = None;
    for _ in 0..40 {
        let response = run(json!({"name": "retention.orders", "dry_run": true})).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        if body["outcome"] != "busy" {
            ran = Some(body);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let ran = ran.expect("the job stayed busy");
    assert_eq!(ran["outcome"], "succeeded", "{ran}");
    assert_eq!(ran["dry_run"], true);
    assert!(ran["counts"]["idempotency_keys"].is_i64(), "{ran}");
    assert_eq!(run(json!({"name": "no.such.job"})).await.status(), 422);

    // The operator is nobody in any shop.
    for path in [
        "/api/v1/customers",
        "/api/v1/users",
        "/api/v1/privacy/requests",
    ] {
        assert_eq!(app.get_as(path, &bearer).await.status(), 403, "{path}");
    }
    // And a shop's owner is no operator.
    let merchant = app.merchant().await;
    assert_eq!(
        app.get_as("/api/v1/admin/jobs", &merchant.owner.bearer())
            .await
            .status(),
        403
    );
}
