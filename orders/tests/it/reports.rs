//! Sales reports: their totals are the sums of what the orders stored, split by the shop's
//! local days, payment methods, cashiers, products and categories; another shop never shows.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use platform::{Role, clock::ManualClock};
use serde_json::{Value, json};
use testkit::{Staff, TestApp};

async fn call(
    app: &TestApp,
    staff: &Staff,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Value {
    let key = uuid::Uuid::now_v7().to_string();
    let response = app
        .send(method, path, staff, Some(&key), body.as_ref())
        .await;
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.text().await.unwrap()
    );
    response.json().await.unwrap()
}

async fn sell(app: &TestApp, staff: &Staff, body: Value, method: &str) -> Value {
    let order = call(app, staff, "POST", "/api/v1/orders", Some(body)).await;
    let id = order["id"].as_str().unwrap().to_owned();
    call(
        app,
        staff,
        "POST",
        &format!("/api/v1/orders/{id}/payments"),
        Some(json!({"method": method, "amount_minor": order["total_minor"]})),
    )
    .await;
    call(app, staff, "GET", &format!("/api/v1/orders/{id}"), None).await
}

#[tokio::test]
async fn a_report_adds_up_what_the_orders_stored_by_local_day_method_cashier_product_and_category()
{
    // 16:30 UTC tomorrow: 23:30 in Jakarta (UTC+7). Ahead of the real time.
    let start: DateTime<Utc> = (Utc::now().date_naive() + TimeDelta::days(1))
        .and_hms_opt(16, 30, 0)
        .unwrap()
        .and_utc();
    let day1 = (start + TimeDelta::hours(7)).date_naive();
    let clock = Arc::new(ManualClock::new(start));
    let app = TestApp::builder().clock(clock.clone()).start().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let cashier = app.staff(&merchant, Role::Cashier).await;
    let manager = app.staff(&merchant, Role::Manager).await;
    call(
        &app,
        owner,
        "PUT",
        "/api/v1/sales/settings",
        Some(json!({
        "prices_include_tax": false, "standard_rate": {"name": "PPN", "rate_bp": 1100},
        "service_charge": null, "cashier_discount_limit_bp": 1000})),
    )
    .await;
    let drinks = call(
        &app,
        owner,
        "POST",
        "/api/v1/categories",
        Some(json!({"name": "Minuman"})),
    )
    .await;
    let kopi = app.product(owner, 18_000, 100).await;
    let kopi_id = kopi["id"].as_str().unwrap().to_owned();
    call(
        &app,
        owner,
        "PATCH",
        &format!("/api/v1/products/{kopi_id}"),
        Some(json!({"category_id": drinks["id"]})),
    )
    .await;
    let roti = app.product(owner, 5_000, 100).await;

    // Day 1 (local): two orders.
    let first = sell(
        &app,
        &cashier,
        json!({"lines": [
        {"product_id": kopi["id"], "quantity": 2,
         "discount": {"type": "percent", "rate_bp": 1000, "reason": "promo"}},
        {"product_id": roti["id"], "quantity": 1}]}),
        "cash",
    )
    .await;
    let second = sell(
        &app,
        owner,
        json!({"lines": [
        {"product_id": roti["id"], "quantity": 3}]}),
        "qr",
    )
    .await;
    // The product moves to no category and is renamed: the report keeps what was sold.
    call(
        &app,
        owner,
        "PATCH",
        &format!("/api/v1/products/{kopi_id}"),
        Some(json!({"category_id": null, "name": "Kopi Baru"})),
    )
    .await;
    // Day 2 (local): one order, and a refund of part of the first order.
    clock.advance(TimeDelta::hours(24));
    let third = sell(
        &app,
        &cashier,
        json!({"lines": [
        {"product_id": kopi["id"], "quantity": 1}]}),
        "card",
    )
    .await;
    let first_id = first["id"].as_str().unwrap();
    call(
        &app,
        owner,
        "POST",
        &format!("/api/v1/orders/{first_id}/refunds"),
        Some(json!({"reason": "customer_return", "lines": [{"line_no": 2, "quantity": 1}]})),
    )
    .await;
    let refunded = call(
        &app,
        owner,
        "GET",
        &format!("/api/v1/orders/{first_id}"),
        None,
    )
    .await;
    let refund = &refunded["refunds"][0];

    // Another shop sells the same day: never in this shop's report.
    let other = app.merchant().await;
    let teh = app.product(&other.owner, 7_000, 10).await;
    sell(
        &app,
        &other.owner,
        json!({"lines": [{"product_id": teh["id"], "quantity": 1}]}),
        "cash",
    )
    .await;

    let day2 = day1 + TimeDelta::days(1);
    let path = format!("/api/v1/reports/sales?from={day1}&to={day2}");
    let report = call(&app, &manager, "GET", &path, None).await;
    let sum = |orders: &[&Value], key: &str| -> i64 {
        orders.iter().map(|o| o[key].as_i64().unwrap()).sum()
    };
    let all = [&first, &second, &third];
    let totals = &report["totals"];
    assert_eq!(totals["orders"], 3);
    assert_eq!(totals["sales_minor"], sum(&all, "total_minor"));
    assert_eq!(totals["tax_minor"], sum(&all, "tax_minor"));
    assert_eq!(totals["discount_minor"], sum(&all, "discount_minor"));
    assert_eq!(
        totals["gross_minor"],
        2 * 18_000 + 5_000 + 3 * 5_000 + 18_000
    );
    assert_eq!(totals["refunds_minor"], refund["amount_minor"]);
    assert_eq!(
        totals["refunded_tax_minor"],
        refund["lines"][0]["tax_minor"]
    );
    assert_eq!(
        totals["net_minor"].as_i64().unwrap(),
        sum(&all, "total_minor") - refund["amount_minor"].as_i64().unwrap()
    );
    let days = report["days"].as_array().unwrap();
    assert_eq!(days.len(), 2, "{report}");
    assert_eq!(days[0]["day"], day1.to_string());
    assert_eq!(days[0]["orders"], 2);
    assert_eq!(
        days[0]["sales_minor"],
        sum(&[&first, &second], "total_minor")
    );
    assert_eq!(days[1]["orders"], 1);
    assert_eq!(
        days[1]["refunds_minor"], refund["amount_minor"],
        "the refund counts on its own day"
    );

    let methods: Vec<(String, i64)> = report["payment_methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["method"].as_str().unwrap().to_owned(),
                m["amount_minor"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        methods,
        [
            ("card".to_owned(), third["total_minor"].as_i64().unwrap()),
            ("cash".to_owned(), first["total_minor"].as_i64().unwrap()),
            ("qr".to_owned(), second["total_minor"].as_i64().unwrap()),
        ]
    );
    let cashier_row = report["cashiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cashier_id"] == first["cashier_id"])
        .unwrap();
    assert_eq!(cashier_row["orders"], 2);
    let kopi_row = report["products"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["product_id"] == kopi["id"])
        .unwrap();
    assert_eq!(kopi_row["quantity"], 3);
    assert_eq!(
        kopi_row["name"], "Kopi Baru",
        "the latest name it was sold under"
    );
    let in_drinks = report["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["category_id"] == drinks["id"])
        .unwrap();
    assert_eq!(
        in_drinks["quantity"], 2,
        "only what was sold while in the category"
    );
    let text = report.to_string();
    assert!(
        !text.contains("7000") && !text.contains("7_000"),
        "another shop's sale: {text}"
    );

    // CSV, one table; cashiers are refused; a backwards range is empty.
    let csv = app
        .send(
            "GET",
            &format!("{path}&format=csv&by=day"),
            owner,
            None,
            None,
        )
        .await;
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.text().await.unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 4, "{csv}");
    assert!(rows[0].starts_with("day,orders,gross_minor"));
    assert!(rows[3].starts_with("total,3,"));
    assert_eq!(
        app.send("GET", &path, &cashier, None, None).await.status(),
        403
    );
    let backwards = format!("/api/v1/reports/sales?from={day2}&to={day1}");
    let empty = call(&app, owner, "GET", &backwards, None).await;
    assert_eq!(
        empty["totals"]["orders"], 0,
        "a backwards range holds nothing"
    );
}
