//! Platform integration tests against the real local stack (OpenBao, PostgreSQL, Redis).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod jobs;
mod outbox;
mod pii;
mod relay;
mod stack;
