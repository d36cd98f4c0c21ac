//! Notifications: consumes domain events, renders bilingual templates and delivers mail over SMTP with a durable delivery log.
//!
//! Face (the same in every module crate): [`router`] for its HTTP routes under `/api/v1`,
//! [`workers`] for its background work, [`jobs`] for its scheduled jobs, [`MODULE`] for
//! `gateway` to compose.

use platform::{AppState, Module, Worker, health::Dependency, jobs::Job};
use utoipa_axum::router::OpenApiRouter;

pub const MODULE: Module = Module {
    name: "notifications",
    needs: &[
        Dependency::Postgres,
        Dependency::Vault,
        Dependency::Kafka,
        Dependency::Smtp,
    ],
    router,
    workers,
    jobs,
    permissions: &[],
};

/// HTTP routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}

/// Long-running consumers and scheduled jobs of this module.
pub fn workers(_state: &AppState) -> Vec<Worker> {
    Vec::new()
}

/// Scheduled jobs of this module.
pub fn jobs(_state: &AppState) -> Vec<Job> {
    Vec::new()
}
