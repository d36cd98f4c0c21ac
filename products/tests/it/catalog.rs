//! Products and categories through the API; stock moves only through the ledger.

use serde_json::{Value, json};
use testkit::{Staff, TestApp};

async fn call(app: &TestApp, staff: &Staff, method: &str, path: &str, body: Value) -> (u16, Value) {
    let body = (method != "GET" && method != "DELETE").then_some(&body);
    let response = app.send(method, path, staff, None, body).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn products_are_found_by_name_sku_and_category_and_skus_are_unique() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let (status, drinks) = call(
        &app,
        owner,
        "POST",
        "/api/v1/categories",
        json!({"name": "Minuman"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = call(
        &app,
        owner,
        "POST",
        "/api/v1/categories",
        json!({"name": " MINUMAN "}),
    )
    .await;
    assert_eq!(status, 409, "names are unique whatever their case");

    let new = |name: &str, sku: &str, category: Option<&Value>| {
        json!({"name": name, "sku": sku, "price_minor": 18000, "currency": "IDR",
               "category_id": category.map(|c| c["id"].clone())})
    };
    let (status, kopi) = call(
        &app,
        owner,
        "POST",
        "/api/v1/products",
        new("Kopi Susu 100%", "KS-1", Some(&drinks)),
    )
    .await;
    assert_eq!(status, 201, "{kopi}");
    assert_eq!(kopi["on_hand"], 0);
    let (_, teh) = call(
        &app,
        owner,
        "POST",
        "/api/v1/products",
        new("Es Teh", "ET-1", Some(&drinks)),
    )
    .await;
    let (_, roti) = call(
        &app,
        owner,
        "POST",
        "/api/v1/products",
        new("Roti Bakar", "RB-1", None),
    )
    .await;
    let (status, dup) = call(
        &app,
        owner,
        "POST",
        "/api/v1/products",
        new("Kopi Lain", "KS-1", None),
    )
    .await;
    assert_eq!((status, dup["code"].as_str()), (409, Some("sku_taken")));
    let (status, bad) = call(
        &app,
        owner,
        "POST",
        "/api/v1/products",
        json!({"name": "   ", "sku": "X", "price_minor": -1, "currency": "rupiah"}),
    )
    .await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["currency", "name", "price_minor"]);

    let search = async |query: &str| {
        let (status, page) = call(
            &app,
            owner,
            "GET",
            &format!("/api/v1/products?{query}"),
            json!(null),
        )
        .await;
        assert_eq!(status, 200, "{query}: {page}");
        ids(&page)
    };
    assert_eq!(search("q=kopi").await, [kopi["id"].as_str().unwrap()]);
    assert_eq!(search("q=et-").await, [teh["id"].as_str().unwrap()]);
    assert!(
        search("q=100%25")
            .await
            .contains(&kopi["id"].as_str().unwrap().to_owned())
    );
    assert!(
        search("q=_").await.is_empty(),
        "an underscore is not a wildcard"
    );
    assert_eq!(
        search(&format!("category_id={}", drinks["id"].as_str().unwrap()))
            .await
            .len(),
        2
    );
    // Pages follow the cursor without repeats.
    let (_, first) = call(&app, owner, "GET", "/api/v1/products?limit=2", json!(null)).await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = call(
        &app,
        owner,
        "GET",
        &format!("/api/v1/products?limit=2&cursor={cursor}"),
        json!(null),
    )
    .await;
    let mut all = ids(&first);
    all.extend(ids(&second));
    assert_eq!(
        all,
        [
            kopi["id"].as_str().unwrap(),
            teh["id"].as_str().unwrap(),
            roti["id"].as_str().unwrap()
        ]
    );

    // A category in use stays; out of it, it can go. Archived products leave the default list.
    let category_path = format!("/api/v1/categories/{}", drinks["id"].as_str().unwrap());
    let (status, body) = call(&app, owner, "DELETE", &category_path, json!(null)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("category_in_use"))
    );
    for product in [&kopi, &teh] {
        let path = format!("/api/v1/products/{}", product["id"].as_str().unwrap());
        let (status, moved) = call(&app, owner, "PATCH", &path, json!({"category_id": null})).await;
        assert_eq!(status, 200);
        assert_eq!(moved["category_id"], Value::Null);
    }
    assert_eq!(
        call(&app, owner, "DELETE", &category_path, json!(null))
            .await
            .0,
        204
    );
    let roti_path = format!("/api/v1/products/{}", roti["id"].as_str().unwrap());
    assert_eq!(
        call(&app, owner, "DELETE", &roti_path, json!(null)).await.0,
        204
    );
    assert_eq!(search("").await.len(), 2);
    assert_eq!(
        search("status=archived").await,
        [roti["id"].as_str().unwrap()]
    );
    assert_eq!(search("status=all").await.len(), 3);
}

#[tokio::test]
async fn stock_moves_only_through_the_ledger_and_never_below_zero() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let product = app.product(owner, 5000, 3).await;
    let id = product["id"].as_str().unwrap();
    let adjust = format!("/api/v1/products/{id}/stock-adjustments");

    let (status, body) = call(&app, owner, "POST", &adjust, json!({"delta": -5})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("insufficient_stock"))
    );
    let (status, moved) = call(&app, owner, "POST", &adjust, json!({"delta": 2})).await;
    assert_eq!(status, 201);
    assert_eq!(moved["on_hand_after"], 5);
    let (status, counted) = call(&app, owner, "POST", &adjust, json!({"counted": 1})).await;
    assert_eq!(status, 201);
    assert_eq!(
        (counted["delta"].as_i64(), counted["reason"].as_str()),
        (Some(-4), Some("count"))
    );
    for body in [
        json!({"delta": 1, "counted": 1}),
        json!({}),
        json!({"delta": 0}),
        json!({"counted": -1}),
    ] {
        assert_eq!(
            call(&app, owner, "POST", &adjust, body.clone()).await.0,
            422,
            "{body}"
        );
    }
    // Stock is not a field a PATCH can set.
    let (status, _) = call(
        &app,
        owner,
        "PATCH",
        &format!("/api/v1/products/{id}"),
        json!({"on_hand": 100}),
    )
    .await;
    assert_eq!(status, 422);

    let (_, ledger) = call(
        &app,
        owner,
        "GET",
        &format!("/api/v1/products/{id}/stock-movements"),
        json!(null),
    )
    .await;
    let deltas: Vec<i64> = ledger["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["delta"].as_i64().unwrap())
        .collect();
    assert_eq!(deltas, [3, 2, -4]);
    let (_, now) = call(
        &app,
        owner,
        "GET",
        &format!("/api/v1/products/{id}"),
        json!(null),
    )
    .await;
    assert_eq!(now["on_hand"].as_i64().unwrap(), deltas.iter().sum::<i64>());

    // Another tenant sees none of it.
    let other = app.merchant().await;
    assert_eq!(
        call(
            &app,
            &other.owner,
            "GET",
            &format!("/api/v1/products/{id}/stock-movements"),
            json!(null)
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(&app, &other.owner, "POST", &adjust, json!({"delta": 1}))
            .await
            .0,
        404
    );
    let (_, category) = call(
        &app,
        owner,
        "POST",
        "/api/v1/categories",
        json!({"name": "Roti"}),
    )
    .await;
    let category_path = format!("/api/v1/categories/{}", category["id"].as_str().unwrap());
    let renamed = call(
        &app,
        &other.owner,
        "PATCH",
        &category_path,
        json!({"name": "Kue"}),
    )
    .await;
    assert_eq!(renamed.0, 404);
    let (_, after) = call(
        &app,
        owner,
        "GET",
        &format!("/api/v1/products/{id}"),
        json!(null),
    )
    .await;
    assert_eq!(after["on_hand"], 1);
}
