//! The shop's profile against the real stack: who may change it, what is kept, what is sealed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod profile;
