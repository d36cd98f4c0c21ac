//! Customers: stored as ciphertext, findable by email and phone, each opening audited.

use platform::Role;
use serde_json::{Value, json};
use testkit::{TestApp, customer_body};

async fn accesses(app: &TestApp, customer: &str) -> i64 {
    sqlx::query_scalar(
        "select count(*) from outbox where event_type = 'pii.accessed'
         and payload->'resource'->>'kind' = 'customer' and payload->'resource'->>'id' = $1",
    )
    .bind(customer)
    .fetch_one(app.system.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn a_customer_is_ciphertext_at_rest_and_found_by_email_or_phone() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let cashier = app.staff(&merchant, Role::Cashier).await;
    let created = app
        .send(
            "POST",
            "/api/v1/customers",
            &cashier,
            None,
            Some(&customer_body("Ani.W@Example.id")),
        )
        .await;
    assert_eq!(created.status(), 201);
    let customer: Value = created.json().await.unwrap();
    let id = customer["id"].as_str().unwrap().to_owned();
    assert_eq!(customer["full_name"], "Ani Wijaya");
    assert_eq!(customer["guest"], false);

    let stored: Vec<Vec<u8>> = sqlx::query_scalar(
        "select array[full_name, email, phone, address, email_index] from customers where id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    for plaintext in [
        "Ani Wijaya",
        "Ani.W@Example.id",
        "ani.w@example.id",
        "2233",
        "Melati",
    ] {
        for column in &stored {
            assert!(
                !column
                    .windows(plaintext.len())
                    .any(|w| w == plaintext.as_bytes()),
                "`{plaintext}` stored in the clear"
            );
        }
    }

    // Found by email (case and spaces ignored) and by phone (punctuation ignored).
    for query in ["email=%20ani.w%40EXAMPLE.id", "phone=%2B6281122334455"] {
        let found: Value = app
            .send(
                "GET",
                &format!("/api/v1/customers?{query}"),
                &cashier,
                None,
                None,
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(found["items"].as_array().unwrap().len(), 1, "{query}");
        assert_eq!(found["items"][0]["id"], id.as_str());
        assert_eq!(found["items"][0]["phone"], "+62 811-2233-4455");
    }
    // Each opening is an audited access with its purpose: create, two finds, this get.
    let before = accesses(&app, &id).await;
    let opened = app
        .send(
            "GET",
            &format!("/api/v1/customers/{id}"),
            &cashier,
            None,
            None,
        )
        .await;
    assert_eq!(opened.status(), 200);
    assert_eq!(accesses(&app, &id).await, before + 1);
    assert_eq!(before, 3);

    // Another tenant finds nothing and opens nothing.
    let other = app.merchant().await;
    let found: Value = app
        .send(
            "GET",
            "/api/v1/customers?email=ani.w%40example.id",
            &other.owner,
            None,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(found["items"].as_array().unwrap().is_empty());
    let opened = app
        .send(
            "GET",
            &format!("/api/v1/customers/{id}"),
            &other.owner,
            None,
            None,
        )
        .await;
    assert_eq!(opened.status(), 404);
    assert_eq!(accesses(&app, &id).await, before + 1);
}

#[tokio::test]
async fn a_customer_needs_the_required_consent_and_a_unique_email() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let outbox = app.outbox_count(merchant.tenant).await;
    let mut body = customer_body("budi@example.id");
    body["consents"] = json!([{"purpose": "marketing", "granted": true}]);
    let refused = app
        .send("POST", "/api/v1/customers", owner, None, Some(&body))
        .await;
    assert_eq!(refused.status(), 422);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "consents");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("orders")
    );
    assert_eq!(
        app.outbox_count(merchant.tenant).await,
        outbox,
        "nothing written"
    );

    let first = app
        .send(
            "POST",
            "/api/v1/customers",
            owner,
            None,
            Some(&customer_body("budi@example.id")),
        )
        .await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = app
        .send(
            "POST",
            "/api/v1/customers",
            owner,
            None,
            Some(&customer_body("BUDI@example.id")),
        )
        .await;
    assert_eq!(again.status(), 409);

    // Rectification: the new email finds them, the old one no longer does.
    let path = format!("/api/v1/customers/{}", first["id"].as_str().unwrap());
    let changed = app
        .send(
            "PATCH",
            &path,
            owner,
            None,
            Some(&json!({"email": "budi.baru@example.id"})),
        )
        .await;
    assert_eq!(changed.status(), 200);
    assert_eq!(
        changed.json::<Value>().await.unwrap()["email"],
        "budi.baru@example.id"
    );
    for (email, count) in [("budi%40example.id", 0), ("budi.baru%40example.id", 1)] {
        let found: Value = app
            .send(
                "GET",
                &format!("/api/v1/customers?email={email}"),
                owner,
                None,
                None,
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(found["items"].as_array().unwrap().len(), count, "{email}");
    }
}
