//! Customers against the real stack: sealed at rest, found through blind indexes, every opening
//! audited, consent required and changed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod consents;
mod customers;
mod erasure;
mod privacy;
