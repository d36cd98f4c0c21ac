//! `warung seed demo` against the real stack: the shop is made through the API (sealed,
//! audited, with consent evidence), dated over two trading days, and a second run changes
//! nothing.

use chrono::{DateTime, Utc};
use gateway::demo::{self, Outcome};
use platform::config::Environment;
use serde_json::Value;
use testkit::TestApp;

async fn list(app: &TestApp, path: &str, bearer: &str) -> Vec<Value> {
    let response = app.get_as(path, bearer).await;
    assert_eq!(response.status(), 200, "{path}");
    let body: Value = response.json().await.unwrap();
    body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_demo_shop_is_made_through_the_api_once_and_a_second_run_changes_nothing() {
    let app = TestApp::builder().isolated().start().await;
    let config = app.config();

    let Outcome::Created(made) = demo::seed(config.clone()).await.unwrap() else {
        panic!("the first run must make the shop");
    };
    let tenant = made.tenant;
    let owner = app
        .login(demo::SLUG, demo::OWNER_EMAIL, demo::OWNER_PASSWORD)
        .await;
    let owner = format!("Bearer {}", owner["access_token"].as_str().unwrap());
    let cashier = app
        .login(demo::SLUG, demo::CASHIER_EMAIL, demo::CASHIER_PASSWORD)
        .await;
    let cashier = format!("Bearer {}", cashier["access_token"].as_str().unwrap());
    let me: Value = app
        .get_as("/api/v1/me", &cashier)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["role"], "cashier", "{me}");

    let products = list(&app, "/api/v1/products?limit=100", &owner).await;
    assert_eq!(products.len(), 20);
    assert!(products.iter().all(|p| p["category_id"].is_string()));
    let categories = list(&app, "/api/v1/categories", &owner).await;
    assert_eq!(categories.len(), 4);
    let customers = list(&app, "/api/v1/customers?limit=100", &owner).await;
    assert_eq!(customers.len(), 12);

    // Two trading days before today, every sale paid but one refunded and one cancelled.
    let orders = list(&app, "/api/v1/orders?limit=100", &owner).await;
    assert_eq!(orders.len(), made.orders);
    let status = |s: &str| orders.iter().filter(|o| o["status"] == s).count();
    assert_eq!(status("cancelled"), 1);
    assert_eq!(status("partially_refunded") + status("refunded"), 1);
    assert_eq!(status("paid"), orders.len() - 2);
    // A VAT-registered shop: its receipts carry its NPWP, PPN 11 % inside the shelf prices,
    // and a number of the day it was sold.
    let paid = orders.iter().find(|o| o["status"] == "paid").unwrap();
    assert!(paid["tax_minor"].as_i64().unwrap() > 0, "{paid}");
    assert!(
        paid["receipt_no"].as_str().unwrap().starts_with("INV/"),
        "{paid}"
    );
    let receipt = app
        .get_as(
            &format!("/api/v1/orders/{}/receipt", paid["id"].as_str().unwrap()),
            &cashier,
        )
        .await
        .text()
        .await
        .unwrap();
    for printed in [
        "NPWP 01.234.567.8-901.000",
        "PPN 11%",
        "Terima kasih, sampai jumpa lagi!",
    ] {
        assert!(receipt.contains(printed), "{printed} missing: {receipt}");
    }
    let days: std::collections::BTreeSet<_> = orders
        .iter()
        .map(|o| {
            let at: DateTime<Utc> = o["created_at"].as_str().unwrap().parse().unwrap();
            (at + chrono::TimeDelta::hours(7)).date_naive()
        })
        .collect();
    let today = (Utc::now() + chrono::TimeDelta::hours(7)).date_naive();
    assert_eq!(days.len(), 2, "{days:?}");
    assert!(days.iter().all(|day| *day < today), "{days:?}");

    // Marketing consent is the customer's own, confirmed through the mailed link.
    let confirmed = customers
        .iter()
        .filter(|c| c["email"].as_str().unwrap().starts_with("ani."))
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .next()
        .unwrap();
    let consents: Value = app
        .get_as(&format!("/api/v1/customers/{confirmed}/consents"), &owner)
        .await
        .json()
        .await
        .unwrap();
    let marketing = consents["consents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["purpose"] == "marketing")
        .unwrap()
        .clone();
    assert_eq!(marketing["granted"], true, "{consents}");

    // One restriction done, one rectification waiting for the owner.
    let requests = list(&app, "/api/v1/privacy/requests", &owner).await;
    let kinds: Vec<_> = requests
        .iter()
        .map(|r| (r["type"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert!(kinds.contains(&("restriction", "completed")), "{kinds:?}");
    assert!(
        kinds.contains(&("rectification", "in_progress")),
        "{kinds:?}"
    );

    // Sealed at rest: no customer's address or name is in their row.
    let rows: Vec<String> =
        sqlx::query_scalar("select row_to_json(c)::text from customers c where tenant_id = $1")
            .bind(tenant)
            .fetch_all(app.system.pool())
            .await
            .unwrap();
    assert_eq!(rows.len(), 12);
    assert!(
        rows.iter()
            .all(|row| !row.contains("@example.id") && !row.contains("Wijaya")),
        "plaintext PII at rest"
    );
    // Audited: each kind of change has its records on the way to the audit store.
    let audited: Vec<String> = sqlx::query_scalar(
        "select distinct event_type from outbox where tenant_id = $1 and topic = $2",
    )
    .bind(tenant)
    .bind(platform::events::AUDIT_TOPIC)
    .fetch_all(app.system.pool())
    .await
    .unwrap();
    for action in [
        "customer.created",
        "order.created",
        "product.created",
        "invitation.created",
    ] {
        assert!(audited.iter().any(|a| a == action), "{action}: {audited:?}");
    }
    let written = app.outbox_count(tenant).await;

    // A second run finds the shop and changes nothing.
    let again = demo::seed(config.clone()).await.unwrap();
    assert!(matches!(again, Outcome::AlreadyThere), "{again:?}");
    assert_eq!(app.outbox_count(tenant).await, written);

    let mut production = config;
    production.environment = Environment::Production;
    let refused = demo::seed(production).await.unwrap_err().to_string();
    assert!(refused.contains("production"), "{refused}");
}
