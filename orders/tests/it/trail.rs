//! Every change a shop makes in a day lands in the audit store with its request id; the
//! requests that failed left nothing (`testkit::Scenario`, relay and sink running).

use platform::Role;
use serde_json::{Value, json};
use testkit::{Scenario, TestApp, customer_body};

#[tokio::test]
async fn trail_every_commerce_mutation_is_audited_and_failures_leave_nothing() {
    let app = TestApp::builder()
        .isolated()
        .set("WARUNG_OUTBOX__RELAY", "true")
        .with_module_workers()
        .start()
        .await;
    let merchant = app.merchant().await;
    let cashier = app.staff(&merchant, Role::Cashier).await;
    let (owner, till) = (merchant.owner.bearer(), cashier.bearer());
    let mut s = Scenario::default();
    let mut ok = async |method: &str, path: &str, bearer: &str, body: Value, status: u16| {
        let response = s.send(&app, method, path, bearer, Some(body)).await;
        assert_eq!(response.status(), status, "{method} {path}");
        response.json::<Value>().await.unwrap_or(Value::Null)
    };

    let category = ok(
        "POST",
        "/api/v1/categories",
        &owner,
        json!({"name": "Minuman"}),
        201,
    )
    .await;
    ok(
        "POST",
        "/api/v1/categories",
        &owner,
        json!({"name": "minuman"}),
        409,
    )
    .await;
    let product = ok(
        "POST",
        "/api/v1/products",
        &owner,
        json!({"name": "Es Teh", "sku": "ET-1", "price_minor": 5000, "currency": "IDR",
               "stock": 3, "category_id": category["id"]}),
        201,
    )
    .await;
    ok(
        "POST",
        "/api/v1/products",
        &till,
        json!({"name": "X", "sku": "X", "price_minor": 1, "currency": "IDR"}),
        403,
    )
    .await;
    let id = product["id"].as_str().unwrap().to_owned();
    ok(
        "PATCH",
        &format!("/api/v1/products/{id}"),
        &owner,
        json!({"price_minor": 6000}),
        200,
    )
    .await;
    ok(
        "POST",
        &format!("/api/v1/products/{id}/stock-adjustments"),
        &owner,
        json!({"delta": 2}),
        201,
    )
    .await;
    ok(
        "POST",
        &format!("/api/v1/products/{id}/stock-adjustments"),
        &owner,
        json!({"delta": -50}),
        409,
    )
    .await;
    let customer = ok(
        "POST",
        "/api/v1/customers",
        &till,
        customer_body("ani@example.id"),
        201,
    )
    .await;
    let order = ok(
        "POST",
        "/api/v1/orders",
        &till,
        json!({"lines": [{"product_id": id, "quantity": 2}], "customer_id": customer["id"]}),
        201,
    )
    .await;
    ok(
        "POST",
        "/api/v1/orders",
        &till,
        json!({"lines": [{"product_id": id, "quantity": 99}]}),
        409,
    )
    .await;
    let order_id = order["id"].as_str().unwrap();
    ok(
        "POST",
        &format!("/api/v1/orders/{order_id}/payments"),
        &till,
        json!({"method": "cash", "amount_minor": 20000}),
        201,
    )
    .await;
    ok(
        "POST",
        &format!("/api/v1/orders/{order_id}/refunds"),
        &owner,
        json!({"reason": "customer_return", "lines": [{"line_no": 1, "quantity": 1}]}),
        201,
    )
    .await;
    let other = ok(
        "POST",
        "/api/v1/orders",
        &till,
        json!({"lines": [{"product_id": id, "quantity": 1}]}),
        201,
    )
    .await;
    let other_id = other["id"].as_str().unwrap();
    ok(
        "POST",
        &format!("/api/v1/orders/{other_id}/cancel"),
        &till,
        json!({}),
        200,
    )
    .await;
    ok(
        "DELETE",
        &format!("/api/v1/products/{id}"),
        &owner,
        json!({}),
        204,
    )
    .await;

    s.assert_audited(&app, merchant.tenant).await;
}
