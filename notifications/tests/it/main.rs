//! Notifications against the real stack: outbox → relay → Kafka → intake → delivery log →
//! sender → the SMTP sink. Every test here runs the relay and the workers, so they run one at a
//! time with the other relay tests (nextest group `outbox-relay`, `mail::` prefix). `lease::`
//! checks claims on the log at the SQL level.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod lease;
mod mail;
