//! Audit store: consumes audit records from Kafka into a partitioned, append-only, hash-chained
//! table (`audit_events`), keeps its partitions ahead and past retention ([`maintenance`]), and verifies
//! its hash chains ([`verify`]), in the background from a checkpoint ([`checkpoints`]).
//!
//! Face (the same in every module crate): [`router`] for its HTTP routes under `/api/v1`,
//! [`workers`] for its background work, [`jobs`] for its scheduled jobs, [`MODULE`] for
//! `gateway` to compose.

mod api;
pub mod chain;
pub mod checkpoints;
mod compliance;
pub mod maintenance;
pub mod privacy;
pub mod sink;
pub mod verify;

use platform::{AppState, Module, Worker, health::Dependency, jobs::Job, permission};

permission!(pub ReadAudit = "audit.read", [Owner], "Read and verify the tenant's audit trail");
use utoipa_axum::router::OpenApiRouter;

pub const MODULE: Module = Module {
    name: "audit",
    needs: &[Dependency::Postgres, Dependency::Kafka],
    router,
    workers,
    jobs,
    permissions: &[ReadAudit::INFO],
    subject_data: Some(&privacy::Provider),
    compliance: Some(&compliance::Probe),
};

/// HTTP routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    api::router()
}

/// The sink: one consumer per process in the `warung-audit-sink` group (partitions bound how
/// many share the work).
pub fn workers(state: &AppState) -> Vec<Worker> {
    let kafka = state.config.kafka.clone();
    vec![Worker::new("audit-sink", move |ctx| {
        sink::run(ctx, kafka.clone())
    })]
}

/// Partition upkeep and retention of the audit store.
pub fn jobs(state: &AppState) -> Vec<Job> {
    let audit = &state.config.audit;
    vec![
        maintenance::partitions(audit.partitions_ahead_months),
        maintenance::retention(state.vault.clone(), audit.retention_months),
        checkpoints::job(state.vault.clone(), audit.full_verify_every_days),
    ]
}
