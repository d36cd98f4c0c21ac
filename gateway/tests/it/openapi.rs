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
