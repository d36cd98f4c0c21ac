use testkit::{TestApp, workspace_root};

/// docs/openapi.json is the published contract; it must match the code.
#[test]
fn committed_openapi_matches_the_code() {
    let generated = gateway::app::openapi().to_pretty_json().unwrap() + "\n";
    let path = workspace_root().join("docs/openapi.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is stale: run `cargo run -p gateway -- openapi --output docs/openapi.json`"
    );
}

#[tokio::test]
async fn the_spec_is_served() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/openapi.json").await;
    assert_eq!(response.status(), 200);
    let spec: serde_json::Value = response.json().await.unwrap();
    assert_eq!(spec["info"]["title"], "Warung API");
    assert!(spec["paths"]["/health/ready"]["get"].is_object());
}

/// The docs page works offline: Swagger UI is in the binary and reads our own spec.
#[tokio::test]
async fn the_docs_page_is_served_from_the_binary_and_reads_the_spec() {
    let app = TestApp::spawn().await;
    let redirect = app.get("/api/docs").await;
    assert_eq!(redirect.status(), 308);
    let page = app.get("/api/docs/").await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("https://"),
        "the page loads nothing from elsewhere"
    );
    let initializer = app
        .get("/api/docs/swagger-initializer.js")
        .await
        .text()
        .await
        .unwrap();
    assert!(initializer.contains("/api/openapi.json"), "{initializer}");
    let bundle = app.get("/api/docs/swagger-ui-bundle.js").await;
    assert_eq!(bundle.status(), 200);
    assert!(bundle.bytes().await.unwrap().len() > 100_000);
    assert_eq!(app.get("/api/docs/nothing-here.js").await.status(), 404);
}
