//! Notifications against the real stack: outbox → relay → Kafka → intake → delivery log →
//! sender → the SMTP sink. Every `mail::` test runs the relay and the workers on an isolated app
//! (a database, Redis prefix and broker of its own), so no other test's mail or clock reaches
//! them. `lease::` checks claims on the log at the SQL level.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod lease;
mod mail;
