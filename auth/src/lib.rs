//! Authentication and authorization: login, access tokens (JWT, JWKS), refresh tokens, server-side sessions, email verification, password reset, roles and the permission check.
//!
//! Face (the same in every module crate): [`router`] for its HTTP routes under `/api/v1`,
//! [`workers`] for its background work, [`jobs`] for its scheduled jobs, [`MODULE`] for
//! `gateway` to compose.

use platform::{AppState, Module, Worker, health::Dependency, jobs::Job};
use utoipa_axum::router::OpenApiRouter;

pub const MODULE: Module = Module {
    name: "auth",
    needs: &[Dependency::Postgres, Dependency::Redis, Dependency::Vault],
    router,
    workers,
    jobs,
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
