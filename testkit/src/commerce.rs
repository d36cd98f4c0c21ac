//! Commerce helpers: any request with an `Idempotency-Key`, products with stock, customers and
//! orders made through the real endpoints.

use serde_json::{Value, json};

use crate::{Staff, TestApp};

/// A customer body with every field and the required consent (`orders`) granted.
pub fn customer_body(email: &str) -> Value {
    json!({
        "full_name": "Ani Wijaya",
        "email": email,
        "phone": "+62 811-2233-4455",
        "address": "Jl. Melati 7, Bandung",
        "locale": "en",
        "consents": [
            {"purpose": "orders", "granted": true},
            {"purpose": "receipt_email", "granted": true},
            {"purpose": "marketing", "granted": false},
        ],
    })
}

impl TestApp {
    /// `method path` as `staff`, with `key` as the `Idempotency-Key` when given.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        staff: &Staff,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .request(method.parse().unwrap(), self.url(path))
            .header("authorization", staff.bearer());
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.unwrap()
    }

    /// A new active product (unique SKU) with `stock` on hand; returns its JSON.
    pub async fn product(&self, staff: &Staff, price_minor: i64, stock: i64) -> Value {
        let sku = format!("SKU-{}", uuid::Uuid::now_v7().simple());
        let body = json!({
            "name": "Kopi Susu", "sku": sku, "price_minor": price_minor,
            "currency": "IDR", "stock": stock,
        });
        let response = self
            .send("POST", "/api/v1/products", staff, None, Some(&body))
            .await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        response.json().await.unwrap()
    }

    /// `POST /api/v1/customers` with `body`; panics unless it is created; returns its JSON.
    pub async fn customer(&self, staff: &Staff, body: &Value) -> Value {
        let response = self
            .send("POST", "/api/v1/customers", staff, None, Some(body))
            .await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        response.json().await.unwrap()
    }

    /// `POST /api/v1/orders` with a fresh `Idempotency-Key`; panics unless it is created.
    pub async fn order(&self, staff: &Staff, body: &Value) -> Value {
        let key = uuid::Uuid::now_v7().to_string();
        let response = self
            .send("POST", "/api/v1/orders", staff, Some(&key), Some(body))
            .await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        response.json().await.unwrap()
    }
}
