//! Identity against the real stack: onboarding, sign-in, sessions, mailed tokens, throttling.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod onboarding;
mod sessions;
mod staff;
mod tokens;
