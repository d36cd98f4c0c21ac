//! Warung's shared kernel: configuration, telemetry, errors, ids, the clock, PostgreSQL access
//! with tenant transactions, infrastructure clients, health checks, HTTP building blocks and the
//! module/worker face. It knows no module; every module depends on it.

pub mod authz;
pub mod clients;
pub mod clock;
pub mod compliance;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod health;
pub mod http;
pub mod id;
pub mod jobs;
pub mod locks;
pub mod metrics;
pub mod module;
pub mod pii;
pub mod privacy;
pub mod retention;
pub mod state;
pub mod telemetry;
pub mod throttle;
pub mod tokens;

pub use authz::{Authorized, Principal, Role};
pub use error::{Error, Result};
pub use module::{Module, Worker, WorkerContext};
pub use state::AppState;
