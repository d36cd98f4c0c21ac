//! `warung compliance verify` against the real stack. Every test runs on a database of its own
//! ([`testkit::FreshDatabase`]) and a Transit KEK of its own, so that it can assert that the
//! violation it injects fails its check **and no other**: the shared database, where other
//! tests tamper with chains and build scratch tables side by side, could not show that.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod harness;
mod injections;
mod owner;
mod passing;
