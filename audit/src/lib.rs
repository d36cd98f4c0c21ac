//! Audit store: consumes audit records from Kafka into a partitioned, append-only, hash-chained
//! table (`audit_events`). Query and verification arrive with the read side.
//!
//! Face (the same in every module crate): [`router`] for its HTTP routes under `/api/v1`,
//! [`workers`] for its background work, [`MODULE`] for `gateway` to compose.

pub mod chain;
pub mod sink;
pub mod verify;

use platform::{AppState, Module, Worker, health::Dependency};
use utoipa_axum::router::OpenApiRouter;

pub const MODULE: Module = Module {
    name: "audit",
    needs: &[Dependency::Postgres, Dependency::Kafka],
    router,
    workers,
};

/// HTTP routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}

/// The sink: one consumer per process in the `warung-audit-sink` group (partitions bound how
/// many share the work).
pub fn workers(state: &AppState) -> Vec<Worker> {
    let kafka = state.config.kafka.clone();
    vec![Worker::new("audit-sink", move |ctx| {
        sink::run(ctx, kafka.clone())
    })]
}
