//! Receipt numbers: gapless and unique per shop and day under concurrent payments, restarting
//! at midnight in the shop's time zone, in the shop's format.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::join_all;
use platform::clock::ManualClock;
use serde_json::{Value, json};
use testkit::{Staff, TestApp};

async fn paid_order(app: &TestApp, staff: &Staff, product: &Value) -> Value {
    let order = app
        .order(
            staff,
            &json!({"lines": [{"product_id": product["id"], "quantity": 1}]}),
        )
        .await;
    pay(app, staff, &order).await;
    read(app, staff, &order).await
}

async fn pay(app: &TestApp, staff: &Staff, order: &Value) {
    let id = order["id"].as_str().unwrap();
    let response = app
        .send(
            "POST",
            &format!("/api/v1/orders/{id}/payments"),
            staff,
            Some(&uuid::Uuid::now_v7().to_string()),
            Some(&json!({"method": "cash", "amount_minor": order["total_minor"]})),
        )
        .await;
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
}

use crate::read_order as read;

/// Sixteen orders paid at once take the numbers 1 to 16 of the day, each once; an order only
/// partly paid takes none.
#[tokio::test]
async fn sixteen_concurrent_payments_take_the_days_numbers_one_to_sixteen_without_a_gap() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let product = app.product(owner, 18_000, 100).await;
    let mut orders = Vec::new();
    for _ in 0..16 {
        orders.push(
            app.order(
                owner,
                &json!({"lines": [{"product_id": product["id"], "quantity": 1}]}),
            )
            .await,
        );
    }
    let partly = app
        .order(
            owner,
            &json!({"lines": [{"product_id": product["id"], "quantity": 1}]}),
        )
        .await;
    let id = partly["id"].as_str().unwrap();
    let half = app
        .send(
            "POST",
            &format!("/api/v1/orders/{id}/payments"),
            owner,
            Some(&uuid::Uuid::now_v7().to_string()),
            Some(&json!({"method": "card", "amount_minor": 9_000})),
        )
        .await;
    assert!(half.status().is_success());
    join_all(orders.iter().map(|order| pay(&app, owner, order))).await;

    let today = Utc::now()
        .with_timezone(&chrono_tz::Asia::Jakarta)
        .format("%Y%m%d")
        .to_string();
    let mut numbers = Vec::new();
    for order in &orders {
        let stored = read(&app, owner, order).await;
        let number = stored["receipt_no"].as_str().unwrap().to_owned();
        let (prefix, seq) = number.rsplit_once('/').unwrap();
        assert_eq!(prefix, format!("INV/{today}"), "{number}");
        assert_eq!(seq.len(), 4, "{number}");
        numbers.push(seq.parse::<i32>().unwrap());
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=16).collect::<Vec<_>>());
    assert_eq!(read(&app, owner, &partly).await["receipt_no"], Value::Null);
}

/// The day turns at midnight where the shop is: a shop in Jayapura (UTC+9) starts again from 1
/// at 15:00 UTC, while a shop in Jakarta (UTC+7) is still on the day before.
#[tokio::test]
async fn numbers_restart_at_midnight_in_the_shops_time_zone_and_follow_its_format() {
    // 14:58 UTC tomorrow (ahead of the real time, which sessions are also held against).
    let start: DateTime<Utc> = (Utc::now().date_naive() + TimeDelta::days(1))
        .and_hms_opt(14, 58, 0)
        .unwrap()
        .and_utc();
    let day1 = start.format("%Y%m%d").to_string();
    let day2 = (start + TimeDelta::days(1)).format("%Y%m%d").to_string();
    let clock = Arc::new(ManualClock::new(start));
    let app = TestApp::builder().clock(clock.clone()).start().await;
    let papua = app.merchant().await;
    let changed = app
        .send(
            "PATCH",
            "/api/v1/tenant",
            &papua.owner,
            None,
            Some(&json!({"time_zone": "Asia/Jayapura"})),
        )
        .await;
    assert_eq!(changed.status(), 200);
    let java = app.merchant().await;
    let kopi = app.product(&papua.owner, 18_000, 100).await;
    let teh = app.product(&java.owner, 5_000, 100).await;

    // 23:58 in Jayapura.
    let first = paid_order(&app, &papua.owner, &kopi).await;
    let second = paid_order(&app, &papua.owner, &kopi).await;
    assert_eq!(first["receipt_no"], format!("INV/{day1}/0001"));
    assert_eq!(second["receipt_no"], format!("INV/{day1}/0002"));

    // 00:03 in Jayapura, 22:03 in Jakarta.
    clock.advance(TimeDelta::minutes(5));
    let after_midnight = paid_order(&app, &papua.owner, &kopi).await;
    assert_eq!(after_midnight["receipt_no"], format!("INV/{day2}/0001"));
    let jakarta = paid_order(&app, &java.owner, &teh).await;
    assert_eq!(jakarta["receipt_no"], format!("INV/{day1}/0001"));

    // The shop's own format, from the next receipt on; past receipts keep their numbers.
    let format = app
        .send(
            "PUT",
            "/api/v1/sales/settings",
            &papua.owner,
            None,
            Some(&json!({"prices_include_tax": true, "standard_rate": null,
                         "service_charge": null, "receipt_number_format": "TSR-YYYYMMDD-NNN"})),
        )
        .await;
    assert_eq!(format.status(), 200, "{}", format.text().await.unwrap());
    let own = paid_order(&app, &papua.owner, &kopi).await;
    assert_eq!(own["receipt_no"], format!("TSR-{day2}-002"));
    assert_eq!(
        read(&app, &papua.owner, &first).await["receipt_no"],
        format!("INV/{day1}/0001")
    );
    let refused = app
        .send(
            "PUT",
            "/api/v1/sales/settings",
            &papua.owner,
            None,
            Some(&json!({"prices_include_tax": true, "standard_rate": null,
                         "service_charge": null, "receipt_number_format": "INV/NNNN"})),
        )
        .await;
    assert_eq!(refused.status(), 422);
}

async fn receipt(app: &TestApp, staff: &Staff, order: &Value, query: &str) -> reqwest::Response {
    let id = order["id"].as_str().unwrap();
    app.send(
        "GET",
        &format!("/api/v1/orders/{id}/receipt{query}"),
        staff,
        None,
        None,
    )
    .await
}

/// The printed receipt, as a 58 mm printer gets it: the shop's details, each line with its
/// discount, the subtotal, the tax added, the total, what was paid and the change, the tax by
/// rate, and the shop's footer; 80 mm and HTML carry the same figures.
#[tokio::test]
async fn the_receipt_prints_what_the_order_stored_in_the_shops_words() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let profile = app
        .send(
            "PATCH",
            "/api/v1/tenant",
            owner,
            None,
            Some(&json!({
                "business_name": "Warung <Sari> Rasa",
                "address": "Jl. Melati 5, Bandung",
                "phone": "+62 812 3456 7890",
                "tax_id": "012345678901000",
                "receipt_footer": "Terima kasih!",
            })),
        )
        .await;
    assert_eq!(profile.status(), 200);
    let rules = json!({"prices_include_tax": false,
                       "standard_rate": {"name": "PPN", "rate_bp": 1100},
                       "service_charge": null, "cashier_discount_limit_bp": 0});
    let set = app
        .send("PUT", "/api/v1/sales/settings", owner, None, Some(&rules))
        .await;
    assert_eq!(set.status(), 200);
    let kopi = app.product(owner, 18_000, 10).await;
    let order = app
        .order(
            owner,
            &json!({"lines": [{"product_id": kopi["id"], "quantity": 2,
                "discount": {"type": "amount", "amount_minor": 1000, "reason": "promo"}}]}),
        )
        .await;
    // 36 000 − 1 000 = 35 000, tax 3 850: 38 850.
    assert_eq!(order["total_minor"], 38_850);
    let unpaid = receipt(&app, owner, &order, "").await;
    assert_eq!(unpaid.status(), 409);
    let id = order["id"].as_str().unwrap();
    let paid = app
        .send(
            "POST",
            &format!("/api/v1/orders/{id}/payments"),
            owner,
            Some(&uuid::Uuid::now_v7().to_string()),
            Some(&json!({"method": "cash", "amount_minor": 50_000})),
        )
        .await;
    assert!(paid.status().is_success());
    let stored = read(&app, owner, &order).await;
    let number = stored["receipt_no"].as_str().unwrap();

    let text = receipt(&app, owner, &order, "?format=text&paper=58mm").await;
    assert_eq!(text.status(), 200);
    assert!(
        text.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = text.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.iter().all(|l| l.chars().count() <= 32), "{text}");
    let expected_tail = "--------------------------------
Kopi Susu
  2 x Rp18.000          Rp36.000
  Diskon                -Rp1.000
--------------------------------
Subtotal                Rp35.000
Pajak                    Rp3.850
TOTAL                   Rp38.850
Tunai                   Rp50.000
Kembalian               Rp11.150
--------------------------------
PPN 11%                  Rp3.850
  DPP                   Rp35.000
--------------------------------
         Terima kasih!
";
    assert!(text.ends_with(expected_tail), "{text}");
    let expected_head = format!(
        "       Warung <Sari> Rasa
     Jl. Melati 5, Bandung
     Telp +62 812 3456 7890
   NPWP 01.234.567.8-901.000
--------------------------------
No. {number}
"
    );
    assert!(text.starts_with(&expected_head), "{text}");
    assert!(lines[6].ends_with("WIB"), "{text}");

    let wide = receipt(&app, owner, &order, "?paper=80mm")
        .await
        .text()
        .await
        .unwrap();
    assert!(wide.lines().all(|l| l.chars().count() <= 48), "{wide}");
    assert!(
        wide.contains(&format!("TOTAL{}Rp38.850", " ".repeat(48 - 5 - 8))),
        "{wide}"
    );

    let html = receipt(&app, owner, &order, "?format=html").await;
    assert!(
        html.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = html.text().await.unwrap();
    assert!(
        html.contains("Warung &lt;Sari&gt; Rasa"),
        "the shop name is escaped"
    );
    assert!(!html.contains("<Sari>"));
    // minijinja's HTML escaping writes `/` as `&#x2f;`.
    let escaped_number = number.replace('/', "&#x2f;");
    for figure in ["Rp38.850", "Rp11.150", "Rp3.850", &escaped_number] {
        assert!(
            html.contains(figure),
            "{figure} missing from the HTML receipt: {html}"
        );
    }

    // No customer on this order: no name. Another shop's staff: 404.
    assert!(!text.contains("Pelanggan"));
    let other = app.merchant().await;
    assert_eq!(receipt(&app, &other.owner, &order, "").await.status(), 404);
    assert_eq!(
        receipt(&app, owner, &order, "?format=pdf").await.status(),
        422
    );
}

/// A customer who asked for receipts is named on them; one who did not is not.
#[tokio::test]
async fn the_receipt_names_only_a_customer_who_asked_for_receipts() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let kopi = app.product(owner, 18_000, 10).await;
    let mut names = Vec::new();
    for wants_receipts in [true, false] {
        let mut body =
            testkit::customer_body(&format!("c.{}@example.id", uuid::Uuid::now_v7().simple()));
        body["full_name"] = json!(if wants_receipts {
            "Ani Wijaya"
        } else {
            "Budi Santoso"
        });
        body["consents"][1]["granted"] = json!(wants_receipts);
        let created = app
            .send("POST", "/api/v1/customers", owner, None, Some(&body))
            .await;
        assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
        let customer: Value = created.json().await.unwrap();
        let order = app
            .order(
                owner,
                &json!({"customer_id": customer["id"],
                        "lines": [{"product_id": kopi["id"], "quantity": 1}]}),
            )
            .await;
        pay(&app, owner, &order).await;
        let text = receipt(&app, owner, &order, "").await.text().await.unwrap();
        names.push(
            text.lines()
                .find(|l| l.starts_with("Pelanggan"))
                .map(str::to_owned),
        );
    }
    assert_eq!(names, [Some("Pelanggan: Ani Wijaya".to_owned()), None]);
}
