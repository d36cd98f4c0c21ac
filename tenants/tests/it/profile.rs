use platform::Role;
use serde_json::{Value, json};
use testkit::{Staff, TestApp};

async fn patch(app: &TestApp, staff: &Staff, body: &Value) -> reqwest::Response {
    app.send("PATCH", "/api/v1/tenant", staff, None, Some(body))
        .await
}

async fn read(app: &TestApp, staff: &Staff) -> Value {
    let response = app.send("GET", "/api/v1/tenant", staff, None, None).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The owner fills the profile in; every staff member reads it; the NPWP is kept as digits,
/// the phone sealed (never in the row as text), each change audited by field name only.
#[tokio::test]
async fn the_owner_sets_the_shop_profile_and_the_phone_is_sealed() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let cashier = app.staff(&merchant, Role::Cashier).await;
    let fresh = read(&app, &cashier).await;
    assert_eq!(fresh["time_zone"], "Asia/Jakarta");
    assert_eq!(fresh["currency"], "IDR");
    assert_eq!(fresh["phone"], Value::Null);

    let phone = "+62 812-3456-7890";
    let changed = patch(
        &app,
        owner,
        &json!({
            "business_name": "Warung Sari Rasa",
            "address": "Jl. Melati 5, Makassar",
            "phone": phone,
            "tax_id": "01.234.567.8-901.000",
            "time_zone": "Asia/Makassar",
            "receipt_header": "Warung Sari Rasa\nBuka 07.00-21.00",
            "receipt_footer": "Terima kasih!",
        }),
    )
    .await;
    assert_eq!(changed.status(), 200, "{}", changed.text().await.unwrap());
    let seen = read(&app, &cashier).await;
    assert_eq!(seen["business_name"], "Warung Sari Rasa");
    assert_eq!(seen["tax_id"], "012345678901000");
    assert_eq!(seen["time_zone"], "Asia/Makassar");
    assert_eq!(seen["phone"], phone);
    assert_eq!(seen["receipt_header"], "Warung Sari Rasa\nBuka 07.00-21.00");

    // At rest the phone is ciphertext, not the number.
    let mut tx = app.tenant_tx(merchant.tenant).await;
    let stored: Vec<u8> = sqlx::query_scalar("select phone from tenants where id = $1")
        .bind(merchant.tenant)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let text = String::from_utf8_lossy(&stored);
    assert!(!text.contains("3456"), "the phone is stored in plaintext");

    // Clearing a field, leaving the others.
    let cleared = patch(&app, owner, &json!({"phone": null, "tax_id": null})).await;
    assert_eq!(cleared.status(), 200);
    let after: Value = cleared.json().await.unwrap();
    assert_eq!(
        (after["phone"].clone(), after["tax_id"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(after["address"], "Jl. Melati 5, Makassar");

    // Audited by field name, never by value.
    let records: Vec<Value> = sqlx::query_scalar(
        "select payload from outbox where tenant_id = $1 and event_type = 'tenant.updated'
         order by seq",
    )
    .bind(merchant.tenant)
    .fetch_all(app.system.pool())
    .await
    .unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(
        records[1]["changed_fields"],
        json!(["phone", "tax_id"]),
        "{}",
        records[1]
    );
    let text = serde_json::to_string(&records).unwrap();
    assert!(
        !text.contains("3456") && !text.contains("012345678901000"),
        "{text}"
    );
}

#[tokio::test]
async fn only_the_owner_changes_the_profile_and_a_refusal_changes_nothing() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let before = read(&app, owner).await;
    for role in [Role::Manager, Role::Cashier] {
        let staff = app.staff(&merchant, role).await;
        let refused = patch(&app, &staff, &json!({"business_name": "Toko Lain"})).await;
        assert_eq!(refused.status(), 403, "{role:?}");
    }
    let refused = patch(
        &app,
        owner,
        &json!({"business_name": "Toko Baru", "tax_id": "12345", "time_zone": "WIB"}),
    )
    .await;
    assert_eq!(refused.status(), 422);
    assert_eq!(read(&app, owner).await, before, "nothing was written");
    let refused = patch(
        &app,
        owner,
        &json!({"tax_id": "12345", "currency": "rupiah"}),
    )
    .await;
    let problem: Value = refused.json().await.unwrap();
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["tax_id", "currency"], "{problem}");
    assert_eq!(read(&app, owner).await, before, "nothing was written");

    // Another shop is untouched by this one's change.
    let other = app.merchant().await;
    let other_before = read(&app, &other.owner).await;
    assert_eq!(
        patch(&app, owner, &json!({"business_name": "Toko Baru"}))
            .await
            .status(),
        200
    );
    assert_eq!(read(&app, &other.owner).await, other_before);
}
