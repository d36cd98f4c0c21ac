//! Tax and service charge through the API (#21): shops with prices with or without tax, an
//! exempt product, a service charge, settings changed under past orders, refunds of taxed
//! lines, who may change the settings, and one shop's settings never touching another's orders.

use platform::Role;
use serde_json::{Value, json};
use testkit::{Staff, TestApp};

async fn put_settings(app: &TestApp, staff: &Staff, settings: &Value) -> reqwest::Response {
    app.send("PUT", "/api/v1/sales/settings", staff, None, Some(settings))
        .await
}

fn settings(inclusive: bool, rate_bp: Option<i64>, service: Option<(i64, bool)>) -> Value {
    json!({
        "prices_include_tax": inclusive,
        "standard_rate": rate_bp.map(|bp| json!({
            "name": if bp == 1100 { "PPN" } else { "PPN 12" },
            "rate_bp": bp,
        })),
        "service_charge": service.map(|(rate_bp, taxable)| json!({"rate_bp": rate_bp, "taxable": taxable})),
    })
}

async fn product(app: &TestApp, staff: &Staff, price_minor: i64, exempt: bool) -> Value {
    let body = json!({
        "name": if exempt { "Beras 5 kg" } else { "Kopi Susu" },
        "sku": format!("SKU-{}", uuid::Uuid::now_v7().simple()),
        "price_minor": price_minor, "currency": "IDR", "stock": 1000,
        "tax_category": if exempt { "exempt" } else { "standard" },
    });
    let response = app
        .send("POST", "/api/v1/products", staff, None, Some(&body))
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

async fn read_settings(app: &TestApp, staff: &Staff) -> Value {
    let response = app
        .send("GET", "/api/v1/sales/settings", staff, None, None)
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

use crate::read_order as get;

/// What an order must show: its total, tax, service charge and tax lines.
struct Billed {
    total: i64,
    tax: i64,
    service: i64,
    /// (name, rate, taxable base, tax)
    tax_lines: Vec<(&'static str, i64, i64, i64)>,
}

impl Billed {
    fn check(&self, case: &str, order: &Value) {
        assert_eq!(
            (
                order["total_minor"].as_i64(),
                order["tax_minor"].as_i64(),
                order["service_charge_minor"].as_i64()
            ),
            (Some(self.total), Some(self.tax), Some(self.service)),
            "{case}: {order}"
        );
        let tax_lines: Vec<Value> = self
            .tax_lines
            .iter()
            .map(|(n, bp, base, tax)| {
                json!({"name": n, "rate_bp": bp, "taxable_base_minor": base, "tax_minor": tax})
            })
            .collect();
        assert_eq!(order["tax_lines"], json!(tax_lines), "{case}");
        let line_sum: i64 = order["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["line_total_minor"].as_i64().unwrap())
            .sum();
        assert_eq!(
            line_sum, self.total,
            "{case}: the lines add up to the total"
        );
    }
}

/// Settings and lines → what the order shows: the figures of the money unit tests, now through
/// the API; then every past order read back after the settings changed again.
#[tokio::test]
async fn orders_are_billed_by_the_shops_settings_and_keep_them_when_the_settings_change() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let cashier = app.staff(&merchant, Role::Cashier).await;
    let kopi = product(&app, owner, 18_000, false).await;
    let beras = product(&app, owner, 20_000, true).await;
    let five = product(&app, owner, 5, false).await;
    let cases = [
        (
            "no tax",
            settings(true, None, None),
            vec![(&kopi, 2)],
            Billed {
                total: 36_000,
                tax: 0,
                service: 0,
                tax_lines: vec![],
            },
        ),
        (
            "inclusive 11%: 18 000 holds 1 784 of tax",
            settings(true, Some(1100), None),
            vec![(&kopi, 1)],
            Billed {
                total: 18_000,
                tax: 1_784,
                service: 0,
                tax_lines: vec![("PPN", 1100, 16_216, 1_784)],
            },
        ),
        (
            "exclusive 12%, with an exempt line",
            settings(false, Some(1200), None),
            vec![(&kopi, 1), (&beras, 1)],
            Billed {
                total: 18_000 + 2_160 + 20_000,
                tax: 2_160,
                service: 0,
                tax_lines: vec![("PPN 12", 1200, 18_000, 2_160)],
            },
        ),
        (
            "exclusive 11%, rounded half up per line: 3 lines of 5 owe 1 each",
            settings(false, Some(1100), None),
            vec![(&five, 1), (&five, 1), (&five, 1)],
            Billed {
                total: 18,
                tax: 3,
                service: 0,
                tax_lines: vec![("PPN", 1100, 15, 3)],
            },
        ),
        (
            "exclusive 11% with a taxed 5% service charge",
            settings(false, Some(1100), Some((500, true))),
            vec![(&kopi, 1), (&beras, 1)],
            // kopi: 18 000 + 1 980 tax + 900 service + 99; beras: 20 000 + 1 000 service + 110.
            Billed {
                total: 18_000 + 1_980 + 900 + 99 + 20_000 + 1_000 + 110,
                tax: 1_980 + 99 + 110,
                service: 1_900,
                tax_lines: vec![("PPN", 1100, 18_000 + 900 + 1_000, 1_980 + 99 + 110)],
            },
        ),
        (
            "inclusive 11% with an untaxed 10% service charge",
            settings(true, Some(1100), Some((1000, false))),
            vec![(&kopi, 1)],
            Billed {
                total: 18_000 + 1_622,
                tax: 1_784,
                service: 1_622,
                tax_lines: vec![("PPN", 1100, 16_216, 1_784)],
            },
        ),
    ];
    let mut sold = Vec::new();
    for (case, rules, lines, billed) in &cases {
        let response = put_settings(&app, owner, rules).await;
        assert_eq!(
            response.status(),
            200,
            "{case}: {}",
            response.text().await.unwrap()
        );
        let body = json!({"lines": lines
            .iter()
            .map(|(p, q)| json!({"product_id": p["id"], "quantity": q}))
            .collect::<Vec<_>>()});
        let order = app.order(&cashier, &body).await;
        billed.check(case, &order);
        assert_eq!(
            order["due_minor"], billed.total,
            "{case}: the customer pays the total"
        );
        sold.push(order);
    }
    // The settings change again: every past order stays exactly as it was sold.
    put_settings(
        &app,
        owner,
        &settings(false, Some(1200), Some((2000, true))),
    )
    .await;
    for ((case, _, _, billed), order) in cases.iter().zip(&sold) {
        let stored = get(&app, owner, order).await;
        billed.check(&format!("{case}, read back"), &stored);
        assert_eq!(stored["pricing"], order["pricing"], "{case}");
    }
    let exempt_line = &sold[2]["lines"][1];
    assert_eq!(exempt_line["tax_category"], "exempt");
    assert_eq!(exempt_line["tax_rate"], Value::Null);
    assert_eq!(exempt_line["tax_minor"], 0);
}

#[tokio::test]
async fn a_refund_of_a_taxed_line_gives_back_its_share_with_the_tax_split_out() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    put_settings(&app, owner, &settings(false, Some(1100), None)).await;
    let kopi = product(&app, owner, 18_000, false).await;
    let order = app
        .order(
            owner,
            &json!({"lines": [{"product_id": kopi["id"], "quantity": 3}]}),
        )
        .await;
    assert_eq!(order["total_minor"], 59_940);
    let id = order["id"].as_str().unwrap();
    let paid = app
        .send(
            "POST",
            &format!("/api/v1/orders/{id}/payments"),
            owner,
            Some(&uuid::Uuid::now_v7().to_string()),
            Some(&json!({"method": "cash", "amount_minor": 60_000})),
        )
        .await;
    assert!(paid.status().is_success(), "{}", paid.text().await.unwrap());
    let refund = |quantity: Option<i64>| {
        let body = match quantity {
            Some(q) => {
                json!({"reason": "customer_return", "lines": [{"line_no": 1, "quantity": q}]})
            }
            None => json!({"reason": "customer_return"}),
        };
        let path = format!("/api/v1/orders/{id}/refunds");
        let app = &app;
        async move {
            let response = app
                .send(
                    "POST",
                    &path,
                    owner,
                    Some(&uuid::Uuid::now_v7().to_string()),
                    Some(&body),
                )
                .await;
            assert!(
                response.status().is_success(),
                "{}",
                response.text().await.unwrap()
            );
        }
    };
    refund(Some(1)).await;
    let after_one = get(&app, owner, &order).await;
    let first = &after_one["refunds"][0]["lines"][0];
    assert_eq!(
        (first["amount_minor"].as_i64(), first["tax_minor"].as_i64()),
        (Some(19_980), Some(1_980))
    );
    assert_eq!(after_one["refunded_minor"], 19_980);
    refund(None).await;
    let all = get(&app, owner, &order).await;
    assert_eq!(all["status"], "refunded");
    assert_eq!(all["refunded_minor"], 59_940, "everything paid came back");
    let tax_back: i64 = all["refunds"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["lines"].as_array().unwrap().clone())
        .map(|l| l["tax_minor"].as_i64().unwrap())
        .sum();
    assert_eq!(tax_back, 5_940, "and all of the tax");
}

#[tokio::test]
async fn only_the_owner_changes_the_sales_settings_and_a_refusal_changes_nothing() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let manager = app.staff(&merchant, Role::Manager).await;
    let cashier = app.staff(&merchant, Role::Cashier).await;
    let taxed = settings(false, Some(1100), None);
    for staff in [&manager, &cashier] {
        assert_eq!(put_settings(&app, staff, &taxed).await.status(), 403);
    }
    let before = read_settings(&app, &cashier).await;
    assert_eq!(
        before["standard_rate"],
        Value::Null,
        "a new shop charges no tax"
    );
    for (field, bad) in [
        (
            "standard_rate.rate_bp",
            json!({"prices_include_tax": true, "standard_rate": {"name": "PPN", "rate_bp": 10001}, "service_charge": null}),
        ),
        (
            "standard_rate.name",
            json!({"prices_include_tax": true, "standard_rate": {"name": " PPN", "rate_bp": 1100}, "service_charge": null}),
        ),
        (
            "service_charge.rate_bp",
            json!({"prices_include_tax": true, "standard_rate": null, "service_charge": {"rate_bp": 0, "taxable": true}}),
        ),
    ] {
        let refused = put_settings(&app, owner, &bad).await;
        assert_eq!(refused.status(), 422);
        let problem: Value = refused.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    assert_eq!(
        read_settings(&app, owner).await,
        before,
        "a refused change wrote nothing"
    );
    assert_eq!(put_settings(&app, owner, &taxed).await.status(), 200);
    assert_eq!(
        read_settings(&app, &manager).await["standard_rate"]["name"],
        "PPN"
    );

    // Another shop's orders are not taxed by this shop's settings.
    let other = app.merchant().await;
    let kopi = product(&app, &other.owner, 18_000, false).await;
    let order = app
        .order(
            &other.owner,
            &json!({"lines": [{"product_id": kopi["id"], "quantity": 1}]}),
        )
        .await;
    assert_eq!(
        (order["total_minor"].as_i64(), order["tax_minor"].as_i64()),
        (Some(18_000), Some(0))
    );
}

fn discounted(lines: Value, order: Option<Value>) -> Value {
    let mut body = json!({"lines": lines});
    if let Some(discount) = order {
        body["discount"] = discount;
    }
    body
}

/// A cashier may give up to the shop's limit, a manager or owner more; beyond it the order is
/// refused with 403 and nothing is taken from stock. Discounts come off before tax, and a
/// refund of a discounted line gives back the discounted price with its tax split out.
#[tokio::test]
async fn discounts_are_limited_for_cashiers_taken_before_tax_and_refunded_as_paid() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let manager = app.staff(&merchant, Role::Manager).await;
    let cashier = app.staff(&merchant, Role::Cashier).await;
    let mut rules = settings(false, Some(1100), None);
    rules["cashier_discount_limit_bp"] = json!(1000);
    assert_eq!(put_settings(&app, owner, &rules).await.status(), 200);
    let kopi = product(&app, owner, 18_000, false).await;
    let teh = product(&app, owner, 5_000, false).await;

    // 10 % off one line: within a cashier's 10 %.
    let line_off = json!([
        {"product_id": kopi["id"], "quantity": 1,
         "discount": {"type": "percent", "rate_bp": 1000, "reason": "promo"}},
        {"product_id": teh["id"], "quantity": 1},
    ]);
    let order = app.order(&cashier, &discounted(line_off, None)).await;
    // 18 000 − 1 800 = 16 200 → tax 1 782; 5 000 → tax 550.
    assert_eq!(order["discount_minor"], 1_800);
    assert_eq!(order["lines"][0]["discount_minor"], 1_800);
    assert_eq!(order["lines"][0]["net_minor"], 16_200);
    assert_eq!(order["tax_minor"], 1_782 + 550);
    assert_eq!(order["total_minor"], 16_200 + 1_782 + 5_000 + 550);

    // 5 000 off the order (22 % of 23 000): too much for a cashier, fine for a manager.
    let order_off = Some(json!({"type": "amount", "amount_minor": 5000, "reason": "loyalty"}));
    let plain = json!([
        {"product_id": kopi["id"], "quantity": 1},
        {"product_id": teh["id"], "quantity": 1},
    ]);
    let before = app
        .send(
            "GET",
            &format!("/api/v1/products/{}", kopi["id"].as_str().unwrap()),
            owner,
            None,
            None,
        )
        .await
        .json::<Value>()
        .await
        .unwrap()["on_hand"]
        .clone();
    let refused = app
        .send(
            "POST",
            "/api/v1/orders",
            &cashier,
            Some(&uuid::Uuid::now_v7().to_string()),
            Some(&discounted(plain.clone(), order_off.clone())),
        )
        .await;
    assert_eq!(refused.status(), 403, "{}", refused.text().await.unwrap());
    let after = app
        .send(
            "GET",
            &format!("/api/v1/products/{}", kopi["id"].as_str().unwrap()),
            owner,
            None,
            None,
        )
        .await
        .json::<Value>()
        .await
        .unwrap()["on_hand"]
        .clone();
    assert_eq!(before, after, "a refused order took stock");
    let order = app
        .order(&manager, &discounted(plain.clone(), order_off.clone()))
        .await;
    // Shared 18 000 : 5 000 → 3 913 and 1 087; tax on 14 087 and 3 913.
    assert_eq!(order["discount_minor"], 5_000);
    assert_eq!(order["lines"][0]["discount_minor"], 3_913);
    assert_eq!(order["lines"][1]["discount_minor"], 1_087);
    assert_eq!(order["discount"]["reason"], "loyalty");
    assert_eq!(order["tax_minor"], 1_550 + 430);
    assert_eq!(order["total_minor"], 18_000 + 5_000 - 5_000 + 1_550 + 430);

    // Never below zero: more off a line than it costs is refused, naming the line.
    let too_much = app
        .send(
            "POST",
            "/api/v1/orders",
            owner,
            Some(&uuid::Uuid::now_v7().to_string()),
            Some(&json!({"lines": [{"product_id": teh["id"], "quantity": 1,
                "discount": {"type": "amount", "amount_minor": 5001, "reason": "damaged"}}]})),
        )
        .await;
    assert_eq!(too_much.status(), 422);
    let problem: Value = too_much.json().await.unwrap();
    assert_eq!(
        problem["errors"][0]["field"], "lines[0].discount",
        "{problem}"
    );

    // The manager's order, paid and refunded: the discounted price comes back, tax split out.
    let id = order["id"].as_str().unwrap();
    let paid = app
        .send(
            "POST",
            &format!("/api/v1/orders/{id}/payments"),
            owner,
            Some(&uuid::Uuid::now_v7().to_string()),
            Some(&json!({"method": "card", "amount_minor": order["total_minor"]})),
        )
        .await;
    assert!(paid.status().is_success(), "{}", paid.text().await.unwrap());
    let refunded = app
        .send(
            "POST",
            &format!("/api/v1/orders/{id}/refunds"),
            owner,
            Some(&uuid::Uuid::now_v7().to_string()),
            Some(&json!({"reason": "customer_return", "lines": [{"line_no": 1, "quantity": 1}]})),
        )
        .await;
    assert!(
        refunded.status().is_success(),
        "{}",
        refunded.text().await.unwrap()
    );
    let stored = get(&app, owner, &order).await;
    let back = &stored["refunds"][0]["lines"][0];
    assert_eq!(back["amount_minor"], 14_087 + 1_550);
    assert_eq!(back["tax_minor"], 1_550);
}
