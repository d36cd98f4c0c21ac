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

/// Every error body the document describes as a `Problem` is `application/problem+json`, and
/// the statuses the edge can answer for any route are documented on every operation.
#[test]
fn every_operation_documents_problem_json_and_the_shared_statuses() {
    let spec = serde_json::to_value(gateway::app::openapi()).unwrap();
    let mut operations = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            let responses = operation["responses"].as_object().unwrap();
            for status in ["429", "500"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path}: no {status}"
                );
            }
            if path.starts_with("/api/") {
                assert!(responses.contains_key("503"), "{method} {path}: no 503");
            }
            if operation.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path}: no {status}"
                    );
                }
            }
            for (status, response) in responses {
                let problem_as_json = response["content"]["application/json"]["schema"]["$ref"]
                    == "#/components/schemas/Problem";
                assert!(
                    !problem_as_json,
                    "{method} {path} {status}: a Problem documented as application/json"
                );
            }
        }
    }
    assert!(operations > 50, "{operations}");
}

/// What the document says is what is sent: a body of another media type gets the 415 the
/// operation documents, as problem+json.
#[tokio::test]
async fn a_documented_error_arrives_with_the_documented_media_type() {
    let spec = serde_json::to_value(gateway::app::openapi()).unwrap();
    let documented = &spec["paths"]["/api/v1/onboarding/merchants"]["post"]["responses"]["415"];
    assert!(
        documented["content"]["application/problem+json"].is_object(),
        "{documented}"
    );
    let app = TestApp::spawn().await;
    let response = app
        .client
        .post(app.url("/api/v1/onboarding/merchants"))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}

/// Two modules' types named alike must not share one schema in the document: the privacy
/// policy once answered with the retention policy's schema (fuzzing, #17).
#[test]
fn types_named_alike_in_two_modules_keep_their_own_schemas() {
    let spec = serde_json::to_value(gateway::app::openapi()).unwrap();
    let policy = spec["paths"]["/api/v1/privacy/policy"]["get"]["responses"]["200"]["content"]
        ["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let schemas = &spec["components"]["schemas"];
    assert!(
        schemas[&policy]["properties"]["title"].is_object(),
        "{policy}"
    );
    assert!(
        schemas[&policy]["properties"]["category"].is_null(),
        "{policy}"
    );
    // Retention's policy is a schema of its own, still there.
    let retention = schemas
        .as_object()
        .unwrap()
        .values()
        .filter(|s| {
            s["properties"]["category"].is_object() && s["properties"]["legal_min_days"].is_object()
        })
        .count();
    assert_eq!(retention, 1);
}

/// No two types share a schema name anywhere in the document: a shared name leaves one of them
/// documented with the other's shape (`platform::http::doc`).
#[test]
fn every_schema_name_in_the_document_belongs_to_one_shape() {
    let _ = gateway::app::openapi();
    assert_eq!(
        platform::http::doc::schema_collisions(),
        Vec::<String>::new()
    );
}
