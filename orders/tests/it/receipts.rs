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

async fn read(app: &TestApp, staff: &Staff, order: &Value) -> Value {
    let id = order["id"].as_str().unwrap();
    app.send("GET", &format!("/api/v1/orders/{id}"), staff, None, None)
        .await
        .json()
        .await
        .unwrap()
}

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
