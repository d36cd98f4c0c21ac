//! The `warung` binary's library half: module composition, the HTTP edge (request ids, tracing,
//! RED metrics, timeouts, body limits, CORS, panics as problem+json), health and OpenAPI, the
//! server lifecycle, and the demo shop. Tests start the same application through [`server::start`].

pub mod admin;
pub mod app;
pub mod cli;
pub mod contract;
pub mod demo;
pub mod edge;
pub mod modules;
pub mod server;
pub mod verify;
