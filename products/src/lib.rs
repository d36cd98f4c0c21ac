//! Catalog: products, categories and the stock ledger.
//!
//! Face (the same in every module crate): [`router`] for its HTTP routes under `/api/v1`,
//! [`workers`] for its background work, [`jobs`] for its scheduled jobs, [`MODULE`] for
//! `gateway` to compose, and its public API: [`catalog`] (products and categories) and
//! [`stock`] (the ledger `orders` sells and restocks through, in the order's transaction).

mod api;
pub mod catalog;
pub mod stock;

use platform::{AppState, Module, Worker, health::Dependency, jobs::Job, permission};
use utoipa_axum::router::OpenApiRouter;

permission!(pub ReadCatalog = "products.read", [Owner, Manager, Cashier], "See products, categories, stock and catalog settings");
permission!(pub WriteCatalog = "products.write", [Owner, Manager], "Add and change products and categories, adjust stock");
permission!(pub ConfigureCatalog = "catalog.configure", [Owner], "Change catalog settings (allow backorders)");

pub const MODULE: Module = Module {
    name: "products",
    needs: &[Dependency::Postgres],
    router,
    workers,
    jobs,
    permissions: &[
        ReadCatalog::INFO,
        WriteCatalog::INFO,
        ConfigureCatalog::INFO,
    ],
    // The catalog holds nothing about people.
    subject_data: None,
    compliance: None,
};

/// HTTP routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    api::router()
}

/// Long-running consumers and scheduled jobs of this module.
pub fn workers(_state: &AppState) -> Vec<Worker> {
    Vec::new()
}

/// Scheduled jobs of this module.
pub fn jobs(_state: &AppState) -> Vec<Job> {
    Vec::new()
}
