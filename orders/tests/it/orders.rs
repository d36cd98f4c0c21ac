//! The life of an order: created with stock taken, paid, refunded or cancelled.

use futures::future::join_all;
use platform::Role;
use serde_json::{Value, json};
use testkit::{Staff, TestApp, customer_body};

fn lines(product: &Value, quantity: i64) -> Value {
    json!({"lines": [{"product_id": product["id"], "quantity": quantity}]})
}

async fn on_hand(app: &TestApp, staff: &Staff, product: &Value) -> i64 {
    let path = format!("/api/v1/products/{}", product["id"].as_str().unwrap());
    let body: Value = app
        .send("GET", &path, staff, None, None)
        .await
        .json()
        .await
        .unwrap();
    body["on_hand"].as_i64().unwrap()
}

async fn order_count(app: &TestApp, staff: &Staff) -> usize {
    let body: Value = app
        .send("GET", "/api/v1/orders?status=open", staff, None, None)
        .await
        .json()
        .await
        .unwrap();
    body["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn concurrent_orders_for_the_last_unit_sell_it_exactly_once() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let cashier = app.staff(&merchant, Role::Cashier).await;
    let product = app.product(&merchant.owner, 18000, 1).await;
    let body = lines(&product, 1);

    let attempts = (0..8).map(|i| {
        let staff = if i % 2 == 0 {
            &merchant.owner
        } else {
            &cashier
        };
        let key = uuid::Uuid::now_v7().to_string();
        let (app, body) = (&app, &body);
        async move {
            let response = app
                .send("POST", "/api/v1/orders", staff, Some(&key), Some(body))
                .await;
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (status, body)
        }
    });
    let results = join_all(attempts).await;
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(created, 1, "{results:?}");
    for (status, body) in results.iter().filter(|(s, _)| *s != 201) {
        assert_eq!(*status, 409, "{body}");
        assert_eq!(body["code"], "insufficient_stock");
    }
    assert_eq!(on_hand(&app, &merchant.owner, &product).await, 0);
    let path = format!(
        "/api/v1/products/{}/stock-movements",
        product["id"].as_str().unwrap()
    );
    let ledger: Value = app
        .send("GET", &path, &merchant.owner, None, None)
        .await
        .json()
        .await
        .unwrap();
    let reasons: Vec<&str> = ledger["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["initial", "sale"]);
    assert_eq!(order_count(&app, &merchant.owner).await, 1);
}

#[tokio::test]
async fn one_idempotency_key_makes_one_order_however_often_it_is_sent() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let product = app.product(owner, 18000, 10).await;
    let body = lines(&product, 2);
    let key = uuid::Uuid::now_v7().to_string();

    // Two at once, then a late retry: one order, the same answer each time.
    let send = || app.send("POST", "/api/v1/orders", owner, Some(&key), Some(&body));
    let (first, second) = tokio::join!(send(), send());
    let retry = send().await;
    let mut ids = Vec::new();
    let mut replayed = 0;
    for response in [first, second, retry] {
        assert_eq!(response.status(), 201);
        if response.headers().get("idempotent-replayed").is_some() {
            replayed += 1;
        }
        let order: Value = response.json().await.unwrap();
        ids.push(order["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(replayed, 2);
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(on_hand(&app, owner, &product).await, 8, "stock taken once");
    assert_eq!(order_count(&app, owner).await, 1);

    // The same key with another body is refused; nothing changes.
    let other = app
        .send(
            "POST",
            "/api/v1/orders",
            owner,
            Some(&key),
            Some(&lines(&product, 3)),
        )
        .await;
    assert_eq!(other.status(), 422);
    let problem: Value = other.json().await.unwrap();
    assert_eq!(problem["code"], "idempotency_key_reused");
    assert_eq!(on_hand(&app, owner, &product).await, 8);

    // No key at all: refused before anything happens.
    let keyless = app
        .send("POST", "/api/v1/orders", owner, None, Some(&body))
        .await;
    assert_eq!(keyless.status(), 400);
    let problem: Value = keyless.json().await.unwrap();
    assert_eq!(problem["code"], "idempotency_key_required");
    assert_eq!(order_count(&app, owner).await, 1);
}

#[tokio::test]
async fn totals_come_from_the_catalog_never_from_the_client() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let kopi = app.product(owner, 18000, 10).await;
    let roti = app.product(owner, 7500, 10).await;

    let order = app
        .order(
            owner,
            &json!({"lines": [
                {"product_id": kopi["id"], "quantity": 2},
                {"product_id": roti["id"], "quantity": 1},
                {"product_id": kopi["id"], "quantity": 1},
            ]}),
        )
        .await;
    assert_eq!(order["total_minor"], 18000 * 3 + 7500);
    assert_eq!(order["currency"], "IDR");
    assert_eq!(order["status"], "open");
    assert_eq!(order["lines"][1]["unit_price_minor"], 7500);
    assert_eq!(order["lines"][2]["line_total_minor"], 18000);
    assert_eq!(on_hand(&app, owner, &kopi).await, 7);

    // Prices or totals sent by a client are refused, not trusted.
    for body in [
        json!({"lines": [{"product_id": kopi["id"], "quantity": 1, "unit_price_minor": 1}]}),
        json!({"lines": [{"product_id": kopi["id"], "quantity": 1}], "total_minor": 1}),
    ] {
        let key = uuid::Uuid::now_v7().to_string();
        let response = app
            .send("POST", "/api/v1/orders", owner, Some(&key), Some(&body))
            .await;
        assert_eq!(response.status(), 422);
    }
    assert_eq!(on_hand(&app, owner, &kopi).await, 7);

    // A later price change leaves the order as it was sold.
    let path = format!("/api/v1/products/{}", kopi["id"].as_str().unwrap());
    let changed = app
        .send(
            "PATCH",
            &path,
            owner,
            None,
            Some(&json!({"price_minor": 20000})),
        )
        .await;
    assert_eq!(changed.status(), 200);
    let path = format!("/api/v1/orders/{}", order["id"].as_str().unwrap());
    let stored: Value = app
        .send("GET", &path, owner, None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stored["lines"][0]["unit_price_minor"], 18000);
    assert_eq!(stored["total_minor"], 61500);
}

async fn pay(app: &TestApp, staff: &Staff, order: &Value, body: Value) -> reqwest::Response {
    let path = format!("/api/v1/orders/{}/payments", order["id"].as_str().unwrap());
    let key = uuid::Uuid::now_v7().to_string();
    app.send("POST", &path, staff, Some(&key), Some(&body))
        .await
}

async fn refund(app: &TestApp, staff: &Staff, order: &Value, body: Value) -> reqwest::Response {
    let path = format!("/api/v1/orders/{}/refunds", order["id"].as_str().unwrap());
    let key = uuid::Uuid::now_v7().to_string();
    app.send("POST", &path, staff, Some(&key), Some(&body))
        .await
}

#[tokio::test]
async fn payments_settle_an_order_and_refunds_put_stock_back() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let cashier = app.staff(&merchant, Role::Cashier).await;
    let product = app.product(owner, 18000, 5).await;
    let order = app.order(&cashier, &lines(&product, 2)).await;
    assert_eq!(order["due_minor"], 36000);

    // A card cannot pay more than is due; cash can, and gets change.
    let over = pay(
        &app,
        &cashier,
        &order,
        json!({"method": "card", "amount_minor": 40000}),
    )
    .await;
    assert_eq!(over.status(), 422);
    assert_eq!(over.json::<Value>().await.unwrap()["code"], "overpayment");
    let part = pay(
        &app,
        &cashier,
        &order,
        json!({"method": "card", "amount_minor": 16000}),
    )
    .await;
    assert_eq!(part.status(), 201);
    let part: Value = part.json().await.unwrap();
    assert_eq!(part["order"]["status"], "open");
    assert_eq!(part["order"]["due_minor"], 20000);
    let cash = pay(
        &app,
        &cashier,
        &order,
        json!({"method": "cash", "amount_minor": 50000}),
    )
    .await;
    assert_eq!(cash.status(), 201);
    let cash: Value = cash.json().await.unwrap();
    assert_eq!(cash["payment"]["amount_minor"], 20000);
    assert_eq!(cash["payment"]["change_minor"], 30000);
    assert_eq!(cash["order"]["status"], "paid");
    let again = pay(
        &app,
        &cashier,
        &order,
        json!({"method": "cash", "amount_minor": 1000}),
    )
    .await;
    assert_eq!(again.status(), 409);
    assert_eq!(on_hand(&app, owner, &product).await, 3);

    // Refunds: a cashier may not; a partial one restocks; the rest without restocking.
    let refused = refund(&app, &cashier, &order, json!({"reason": "customer_return"})).await;
    assert_eq!(refused.status(), 403);
    let partial = refund(
        &app,
        owner,
        &order,
        json!({"reason": "customer_return", "lines": [{"line_no": 1, "quantity": 1}]}),
    )
    .await;
    assert_eq!(partial.status(), 201);
    let partial: Value = partial.json().await.unwrap();
    assert_eq!(partial["status"], "partially_refunded");
    assert_eq!(partial["refunded_minor"], 18000);
    assert_eq!(on_hand(&app, owner, &product).await, 4, "refund restocks");
    let too_many = refund(
        &app,
        owner,
        &order,
        json!({"reason": "other", "lines": [{"line_no": 1, "quantity": 2}]}),
    )
    .await;
    assert_eq!(too_many.status(), 422);
    let rest = refund(
        &app,
        owner,
        &order,
        json!({"reason": "damaged", "restock": false}),
    )
    .await;
    assert_eq!(rest.status(), 201);
    let rest: Value = rest.json().await.unwrap();
    assert_eq!(rest["status"], "refunded");
    assert_eq!(rest["refunded_minor"], 36000);
    assert_eq!(rest["refunds"].as_array().unwrap().len(), 2);
    assert_eq!(
        on_hand(&app, owner, &product).await,
        4,
        "damaged: not restocked"
    );
    let none_left = refund(&app, owner, &order, json!({"reason": "other"})).await;
    assert_eq!(none_left.status(), 409);
}

#[tokio::test]
async fn a_cancelled_order_gives_its_stock_back_and_takes_nothing_more() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let product = app.product(owner, 5000, 3).await;
    let order = app.order(owner, &lines(&product, 3)).await;
    assert_eq!(on_hand(&app, owner, &product).await, 0);
    let path = format!("/api/v1/orders/{}/cancel", order["id"].as_str().unwrap());
    let cancelled = app.send("POST", &path, owner, None, None).await;
    assert_eq!(cancelled.status(), 200);
    assert_eq!(
        cancelled.json::<Value>().await.unwrap()["status"],
        "cancelled"
    );
    assert_eq!(on_hand(&app, owner, &product).await, 3);
    assert_eq!(
        app.send("POST", &path, owner, None, None).await.status(),
        409
    );
    let paid = pay(
        &app,
        owner,
        &order,
        json!({"method": "cash", "amount_minor": 15000}),
    )
    .await;
    assert_eq!(paid.status(), 409);
    assert_eq!(on_hand(&app, owner, &product).await, 3);

    // Partly paid orders are not cancelled: they are paid and refunded.
    let order = app.order(owner, &lines(&product, 1)).await;
    let part = pay(
        &app,
        owner,
        &order,
        json!({"method": "qr", "amount_minor": 1000}),
    )
    .await;
    assert_eq!(part.status(), 201);
    let path = format!("/api/v1/orders/{}/cancel", order["id"].as_str().unwrap());
    let refused = app.send("POST", &path, owner, None, None).await;
    assert_eq!(refused.status(), 409);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["code"],
        "order_has_payments"
    );
}

#[tokio::test]
async fn stock_cannot_go_negative_unless_the_owner_allows_backorders() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let manager = app.staff(&merchant, Role::Manager).await;
    let product = app.product(owner, 5000, 0).await;
    let key = uuid::Uuid::now_v7().to_string();
    let body = lines(&product, 2);
    let refused = app
        .send("POST", "/api/v1/orders", owner, Some(&key), Some(&body))
        .await;
    assert_eq!(refused.status(), 409);

    let allow = json!({"allow_backorders": true});
    let by_manager = app
        .send(
            "PUT",
            "/api/v1/catalog/settings",
            &manager,
            None,
            Some(&allow),
        )
        .await;
    assert_eq!(by_manager.status(), 403);
    let by_owner = app
        .send("PUT", "/api/v1/catalog/settings", owner, None, Some(&allow))
        .await;
    assert_eq!(by_owner.status(), 200);
    // The failed attempt left no key behind: the same key now goes through.
    let accepted = app
        .send("POST", "/api/v1/orders", owner, Some(&key), Some(&body))
        .await;
    assert_eq!(accepted.status(), 201);
    assert_eq!(on_hand(&app, owner, &product).await, -2);

    // With backorders off again, a delivery still books: adding stock is never refused.
    let deny = json!({"allow_backorders": false});
    let off = app
        .send("PUT", "/api/v1/catalog/settings", owner, None, Some(&deny))
        .await;
    assert_eq!(off.status(), 200);
    let path = format!(
        "/api/v1/products/{}/stock-adjustments",
        product["id"].as_str().unwrap()
    );
    let delivery = app
        .send("POST", &path, owner, None, Some(&json!({"delta": 5})))
        .await;
    assert_eq!(delivery.status(), 201);
    assert_eq!(on_hand(&app, owner, &product).await, 3);
}

#[tokio::test]
async fn a_free_order_is_paid_at_once_and_can_be_refunded() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let sample = app.product(owner, 0, 10).await;
    let order = app.order(owner, &lines(&sample, 2)).await;
    assert_eq!(order["total_minor"], 0);
    assert_eq!(order["status"], "paid");
    assert!(order["paid_at"].is_string());
    let refunded = refund(&app, owner, &order, json!({"reason": "other"})).await;
    assert_eq!(refunded.status(), 201);
    let refunded: Value = refunded.json().await.unwrap();
    assert_eq!(refunded["status"], "refunded");
    assert_eq!(on_hand(&app, owner, &sample).await, 10);
}

#[tokio::test]
async fn another_tenants_product_or_customer_is_refused_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let a = app.merchant().await;
    let b = app.merchant().await;
    let product = app.product(&a.owner, 18000, 5).await;
    let created = app
        .send(
            "POST",
            "/api/v1/customers",
            &a.owner,
            None,
            Some(&customer_body("ani@example.id")),
        )
        .await;
    assert_eq!(created.status(), 201);
    let customer: Value = created.json().await.unwrap();
    let own = app.product(&b.owner, 1000, 5).await;
    let a_before = app.outbox_count(a.tenant).await;
    let b_before = app.outbox_count(b.tenant).await;

    let key = uuid::Uuid::now_v7().to_string();
    let response = app
        .send(
            "POST",
            "/api/v1/orders",
            &b.owner,
            Some(&key),
            Some(&lines(&product, 1)),
        )
        .await;
    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "lines[0].product_id");

    let mut body = lines(&own, 1);
    body["customer_id"] = customer["id"].clone();
    let key = uuid::Uuid::now_v7().to_string();
    let response = app
        .send("POST", "/api/v1/orders", &b.owner, Some(&key), Some(&body))
        .await;
    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "customer_id");

    assert_eq!(app.outbox_count(a.tenant).await, a_before);
    // A's order cannot be paid, refunded or cancelled by B, whatever B sends.
    let order = app.order(&a.owner, &lines(&product, 1)).await;
    let a_before = app.outbox_count(a.tenant).await;
    let paid = pay(
        &app,
        &b.owner,
        &order,
        json!({"method": "cash", "amount_minor": 18000}),
    )
    .await;
    assert_eq!(paid.status(), 404);
    let refunded = refund(&app, &b.owner, &order, json!({"reason": "other"})).await;
    assert_eq!(refunded.status(), 404);
    let path = format!("/api/v1/orders/{}/cancel", order["id"].as_str().unwrap());
    assert_eq!(
        app.send("POST", &path, &b.owner, None, None).await.status(),
        404
    );

    assert_eq!(on_hand(&app, &a.owner, &product).await, 4);
    assert_eq!(on_hand(&app, &b.owner, &own).await, 5);
    assert_eq!(app.outbox_count(a.tenant).await, a_before);
    assert_eq!(app.outbox_count(b.tenant).await, b_before);
    assert_eq!(order_count(&app, &b.owner).await, 0);
}

#[tokio::test]
async fn a_guest_customer_is_made_at_checkout_with_their_consent() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let cashier = app.staff(&merchant, Role::Cashier).await;
    let product = app.product(&merchant.owner, 18000, 5).await;

    let mut guest = customer_body("tamu@example.id");
    guest["consents"] = json!([{"purpose": "orders", "granted": false}]);
    let mut body = lines(&product, 1);
    body["customer"] = guest.clone();
    let key = uuid::Uuid::now_v7().to_string();
    let refused = app
        .send("POST", "/api/v1/orders", &cashier, Some(&key), Some(&body))
        .await;
    assert_eq!(refused.status(), 422);
    let problem: Value = refused.json().await.unwrap();
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("orders"),
        "{problem}"
    );
    assert_eq!(on_hand(&app, &cashier, &product).await, 5);

    guest["consents"] = json!([{"purpose": "orders", "granted": true}, {"purpose": "receipt_email", "granted": true}]);
    body["customer"] = guest;
    let order = app.order(&cashier, &body).await;
    let customer_id = order["customer_id"].as_str().unwrap();
    let path = format!("/api/v1/customers/{customer_id}");
    let customer: Value = app
        .send("GET", &path, &cashier, None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(customer["guest"], true);
    assert_eq!(customer["email"], "tamu@example.id");
    let granted: Vec<&str> = customer["consents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["granted"] == true)
        .map(|c| c["purpose"].as_str().unwrap())
        .collect();
    assert_eq!(granted, ["orders", "receipt_email"]);
    let listed: Value = app
        .send(
            "GET",
            &format!("/api/v1/orders?customer_id={customer_id}"),
            &cashier,
            None,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["id"], order["id"]);

    // The same address again as a guest belongs to that customer now: 409 `email_taken`, no
    // second customer, no order, no stock taken (the cashier sends `customer_id` instead).
    let mut again = lines(&product, 1);
    again["customer"] = customer_body("TAMU@example.id");
    let before = on_hand(&app, &cashier, &product).await;
    let taken = app
        .send(
            "POST",
            "/api/v1/orders",
            &cashier,
            Some(&uuid::Uuid::now_v7().to_string()),
            Some(&again),
        )
        .await;
    assert_eq!(taken.status(), 409);
    let problem: Value = taken.json().await.unwrap();
    assert_eq!(problem["code"], "email_taken", "{problem}");
    assert_eq!(on_hand(&app, &cashier, &product).await, before);
    let found: Value = app
        .send(
            "GET",
            "/api/v1/customers?email=tamu@example.id",
            &cashier,
            None,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found["items"].as_array().unwrap().len(), 1, "{found}");
}
