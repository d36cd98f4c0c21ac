//! Orders against the real stack: stock taken exactly once, idempotent retries, totals from the
//! catalog, payments, refunds, cancellations, tenancy, and the audit trail of it all.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod money;
mod orders;
mod receipts;
mod reports;
mod shifts;
mod trail;
