//! Orders against the real stack: stock taken exactly once, idempotent retries, totals from the
//! catalog, payments, refunds, cancellations, tenancy, and the audit trail of it all.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod money;
mod orders;
mod receipts;
mod reports;
mod shifts;
mod trail;

/// The order as `GET /api/v1/orders/{id}` shows it to `staff`.
pub(crate) async fn read_order(
    app: &testkit::TestApp,
    staff: &testkit::Staff,
    order: &serde_json::Value,
) -> serde_json::Value {
    let id = order["id"].as_str().unwrap();
    app.send("GET", &format!("/api/v1/orders/{id}"), staff, None, None)
        .await
        .json()
        .await
        .unwrap()
}
