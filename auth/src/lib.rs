//! Identity: merchant onboarding, sign-in, sessions and their rotating refresh tokens, mailed
//! single-use tokens (email verification, password reset), invitation acceptance, and the
//! access-token keys. Its [`Service`] is installed into `AppState` by gateway as the platform's
//! session service: the edge verifies every bearer token with it.
//!
//! Onboarding lives here because it is the one module allowed to use both `tenants` and
//! `users` (DESIGN §1): it creates the tenant, its owner and the owner's credentials in one
//! transaction. For the same reason the intake of data-subject requests lives here
//! ([`intake`]): a person who writes in names their shop by its slug.
//!
//! Face (the same in every module crate): [`router`] for its HTTP routes, [`workers`] for its
//! background work, [`jobs`] for its scheduled jobs, [`MODULE`] for `gateway` to compose.

mod api;
mod compliance;
pub mod credentials;
mod intake;
pub mod keys;
pub mod password;
mod privacy;
pub mod service;
pub mod sessions;

use platform::{AppState, Module, Worker, health::Dependency, jobs::Job};
use utoipa_axum::router::OpenApiRouter;

pub use service::Service;

pub const MODULE: Module = Module {
    name: "auth",
    needs: &[Dependency::Postgres, Dependency::Redis, Dependency::Vault],
    router,
    workers,
    jobs,
    permissions: &[],
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

/// Scheduled jobs of this module.
pub fn jobs(state: &AppState) -> Vec<Job> {
    vec![platform::retention::job(
        "retention.auth",
        "0 10 3 * * *",
        state.config.jobs.retention_batch_size,
        retention_tasks(),
    )]
}

/// What `retention.auth` sweeps: sessions and single-use tokens.
pub fn retention_tasks() -> Vec<std::sync::Arc<dyn platform::retention::RetentionTask>> {
    use platform::retention::TableSweep;
    use std::sync::Arc;
    vec![
        // Refresh tokens go with their session (on delete cascade).
        Arc::new(TableSweep {
            category: "sessions",
            table: "sessions",
            key: "id",
            age: "coalesce(revoked_at, expires_at)",
            condition: "true",
        }),
        Arc::new(TableSweep {
            category: "auth_tokens",
            table: "auth_tokens",
            key: "token_hash",
            age: "coalesce(used_at, expires_at)",
            condition: "true",
        }),
    ]
}
