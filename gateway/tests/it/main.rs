//! Gateway integration tests: the whole application against the real local stack.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod admin;
mod cli;
mod demo;
mod edge;
mod health;
mod matrix;
mod openapi;
mod portal;
mod retention;
mod tenancy;
mod workers;
