//! Audit pipeline tests against the real PostgreSQL and broker: outbox -> relay -> Kafka ->
//! sink -> audit_events.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod maintenance;
mod pipeline;
mod store;
mod trail;
mod volume;
