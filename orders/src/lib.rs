//! Point-of-sale orders: lines, payments, refunds, cancellations and idempotency keys.
//!
//! An order takes its stock through `products::stock` and names its customer through
//! `users::customers`, inside its own transaction: the order, the stock movements, a guest
//! customer and every audit record commit together or not at all. It never reads those
//! modules' tables.
//!
//! Face (the same in every module crate): [`router`] for its HTTP routes under `/api/v1`,
//! [`workers`] for its background work, [`jobs`] for its scheduled jobs, [`MODULE`] for
//! `gateway` to compose; [`domain`] holds the rules (totals, payments, refunds, statuses),
//! [`money`] the tax and service charge, [`settings`] the shop's sales settings.

mod api;
mod compliance;
pub mod domain;
pub mod idempotency;
pub mod money;
pub mod privacy;
pub mod receipts;
pub mod repo;
pub mod reports;
pub mod settings;
pub mod shifts;

use platform::{AppState, Module, Worker, health::Dependency, jobs::Job, permission};
use utoipa_axum::router::OpenApiRouter;

permission!(pub ReadOrders = "orders.read", [Owner, Manager, Cashier], "See orders with their lines, payments and refunds");
permission!(pub WriteOrders = "orders.write", [Owner, Manager, Cashier], "Ring up orders, take payments, cancel unpaid orders");
permission!(pub RefundOrders = "orders.refund", [Owner, Manager], "Refund paid orders");
permission!(pub ReadReports = "reports.read", [Owner, Manager], "See sales reports (totals by day, payment method, cashier, product and category)");
permission!(pub ConfigureSales = "sales.configure", [Owner], "Change the sales settings (tax rates, prices with or without tax, service charge)");

pub const MODULE: Module = Module {
    name: "orders",
    needs: &[Dependency::Postgres, Dependency::Vault],
    router,
    workers,
    jobs,
    permissions: &[
        ReadOrders::INFO,
        WriteOrders::INFO,
        RefundOrders::INFO,
        ConfigureSales::INFO,
        ReadReports::INFO,
    ],
    subject_data: Some(&privacy::Provider),
    compliance: Some(&compliance::Probe),
};

/// HTTP routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    api::router()
}

/// Long-running consumers and scheduled jobs of this module.
pub fn workers(_state: &AppState) -> Vec<Worker> {
    Vec::new()
}

/// Scheduled jobs of this module: retention of idempotency keys.
pub fn jobs(state: &AppState) -> Vec<Job> {
    vec![platform::retention::job(
        "retention.orders",
        "0 20 3 * * *",
        state.config.jobs.retention_batch_size,
        retention_tasks(),
    )]
}

/// What `retention.orders` sweeps: idempotency keys.
pub fn retention_tasks() -> Vec<std::sync::Arc<dyn platform::retention::RetentionTask>> {
    use platform::retention::TableSweep;
    use std::sync::Arc;
    vec![Arc::new(TableSweep {
        category: "idempotency_keys",
        table: "idempotency_keys",
        key: "key",
        age: "created_at",
        condition: "true",
    })]
}
