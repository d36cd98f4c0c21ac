//! The catalog against the real stack: products, categories, search, the stock ledger.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod catalog;
