//! The `warung` binary's library half: module composition, the HTTP edge (request ids, tracing,
//! RED metrics, timeouts, body limits, CORS, panics as problem+json), health and OpenAPI, and
//! the server lifecycle. Tests start the same application through [`server::start`].

pub mod admin;
pub mod app;
pub mod cli;
pub mod contract;
pub mod edge;
pub mod modules;
pub mod server;
pub mod verify;
