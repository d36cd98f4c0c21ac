//! Cashier shifts: the drawer's expected cash is float + cash sales − cash refunds + cash in −
//! cash out; cash needs an open shift where the shop says so; X and Z reports; another shop's
//! (or another cashier's) shift answers 404.

use platform::Role;
use serde_json::{Value, json};
use testkit::{Staff, TestApp};

async fn send(
    app: &TestApp,
    staff: &Staff,
    method: &str,
    path: &str,
    body: Value,
) -> reqwest::Response {
    let key = uuid::Uuid::now_v7().to_string();
    app.send(method, path, staff, Some(&key), Some(&body)).await
}

async fn ok(response: reqwest::Response) -> Value {
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
    response.json().await.unwrap()
}

async fn pay(
    app: &TestApp,
    staff: &Staff,
    order: &Value,
    method: &str,
    amount: i64,
) -> reqwest::Response {
    let id = order["id"].as_str().unwrap();
    send(
        app,
        staff,
        "POST",
        &format!("/api/v1/orders/{id}/payments"),
        json!({"method": method, "amount_minor": amount}),
    )
    .await
}

#[tokio::test]
async fn a_drawer_holds_float_plus_cash_sales_minus_cash_refunds_plus_in_minus_out() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let cashier = app.staff(&merchant, Role::Cashier).await;
    let other_cashier = app.staff(&merchant, Role::Cashier).await;
    let manager = app.staff(&merchant, Role::Manager).await;
    ok(send(
        &app,
        owner,
        "PUT",
        "/api/v1/sales/settings",
        json!({
        "prices_include_tax": true, "standard_rate": null, "service_charge": null,
        "require_shift_for_cash": true}),
    )
    .await)
    .await;
    let kopi = app.product(owner, 18_000, 10).await;
    let roti = app.product(owner, 5_000, 10).await;

    // No shift: no cash (a card is fine).
    let early = app
        .order(
            &cashier,
            &json!({"lines": [{"product_id": roti["id"], "quantity": 1}]}),
        )
        .await;
    let refused = pay(&app, &cashier, &early, "cash", 5_000).await;
    assert_eq!(refused.status(), 409);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["code"],
        "shift_required"
    );

    let shift = ok(send(
        &app,
        &cashier,
        "POST",
        "/api/v1/shifts",
        json!({"opening_float_minor": 200_000}),
    )
    .await)
    .await;
    let id = shift["id"].as_str().unwrap().to_owned();
    assert_eq!(shift["kind"], "x");
    let again = send(
        &app,
        &cashier,
        "POST",
        "/api/v1/shifts",
        json!({"opening_float_minor": 0}),
    )
    .await;
    assert_eq!(again.status(), 409);
    assert_eq!(
        again.json::<Value>().await.unwrap()["code"],
        "shift_already_open"
    );

    // Cash 18 000 (20 000 handed over, 2 000 change), card 5 000, cash in 50 000, out 30 000.
    let a = app
        .order(
            &cashier,
            &json!({"lines": [{"product_id": kopi["id"], "quantity": 1}]}),
        )
        .await;
    ok(pay(&app, &cashier, &a, "cash", 20_000).await).await;
    let b = app
        .order(
            &cashier,
            &json!({"lines": [{"product_id": roti["id"], "quantity": 1}]}),
        )
        .await;
    ok(pay(&app, &cashier, &b, "card", 5_000).await).await;
    let moves = format!("/api/v1/shifts/{id}/cash-movements");
    ok(send(
        &app,
        &cashier,
        "POST",
        &moves,
        json!({"direction": "in", "amount_minor": 50_000, "reason": "float_top_up"}),
    )
    .await)
    .await;
    ok(send(
        &app,
        &cashier,
        "POST",
        &moves,
        json!({"direction": "out", "amount_minor": 30_000, "reason": "bank_deposit"}),
    )
    .await)
    .await;

    let x: Value = ok(app
        .send("GET", "/api/v1/shifts/current", &cashier, None, None)
        .await)
    .await;
    assert_eq!(x["kind"], "x");
    assert_eq!(
        (x["orders"].as_i64(), x["sales_minor"].as_i64()),
        (Some(2), Some(23_000))
    );
    assert_eq!(x["cash_sales_minor"], 18_000);
    assert_eq!(
        x["payments"],
        json!([{"method": "card", "amount_minor": 5_000}, {"method": "cash", "amount_minor": 18_000}])
    );
    assert_eq!(x["expected_minor"], 200_000 + 18_000 + 50_000 - 30_000);

    // A cash refund comes out of the drawer of whoever gives it: the manager's shift.
    let manager_shift = ok(send(
        &app,
        &manager,
        "POST",
        "/api/v1/shifts",
        json!({"opening_float_minor": 100_000}),
    )
    .await)
    .await;
    let a_id = a["id"].as_str().unwrap();
    ok(send(
        &app,
        &manager,
        "POST",
        &format!("/api/v1/orders/{a_id}/refunds"),
        json!({"reason": "customer_return"}),
    )
    .await)
    .await;
    let manager_id = manager_shift["id"].as_str().unwrap();
    let manager_x: Value = ok(app
        .send(
            "GET",
            &format!("/api/v1/shifts/{manager_id}/report"),
            &manager,
            None,
            None,
        )
        .await)
    .await;
    assert_eq!(manager_x["cash_refunds_minor"], 18_000);
    assert_eq!(manager_x["expected_minor"], 100_000 - 18_000);

    // Close with 1 000 short: the Z report. Closed is closed.
    let z = ok(send(
        &app,
        &cashier,
        "POST",
        &format!("/api/v1/shifts/{id}/close"),
        json!({"counted_minor": 237_000}),
    )
    .await)
    .await;
    assert_eq!(z["kind"], "z");
    assert_eq!(z["expected_minor"], 238_000);
    assert_eq!(z["counted_minor"], 237_000);
    assert_eq!(z["over_short_minor"], -1_000);
    let twice = send(
        &app,
        &cashier,
        "POST",
        &format!("/api/v1/shifts/{id}/close"),
        json!({"counted_minor": 1}),
    )
    .await;
    assert_eq!(twice.status(), 409);
    let late = send(
        &app,
        &cashier,
        "POST",
        &moves,
        json!({"direction": "in", "amount_minor": 1, "reason": "other"}),
    )
    .await;
    assert_eq!(late.json::<Value>().await.unwrap()["code"], "shift_closed");
    assert_eq!(
        app.send("GET", "/api/v1/shifts/current", &cashier, None, None)
            .await
            .status(),
        404
    );

    // Who may see it: the owner yes; another cashier of the shop and another shop, 404.
    let report = format!("/api/v1/shifts/{id}/report");
    assert_eq!(
        app.send("GET", &report, owner, None, None).await.status(),
        200
    );
    assert_eq!(
        app.send("GET", &report, &other_cashier, None, None)
            .await
            .status(),
        404
    );
    let stranger = app.merchant().await;
    assert_eq!(
        app.send("GET", &report, &stranger.owner, None, None)
            .await
            .status(),
        404
    );
    let close_theirs = send(
        &app,
        &stranger.owner,
        "POST",
        &format!("/api/v1/shifts/{manager_id}/close"),
        json!({"counted_minor": 0}),
    )
    .await;
    assert_eq!(close_theirs.status(), 404);
}
