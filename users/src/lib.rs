//! People: staff users and customers (the data subjects), their consent records and data-subject
//! requests. Staff accounts live here; signing in is `auth`'s, which uses [`staff`]'s API.
//!
//! Face (the same in every module crate): [`router`] for its HTTP routes under `/api/v1`,
//! [`workers`] for its background work, [`jobs`] for its scheduled jobs, [`MODULE`] for
//! `gateway` to compose, and its public API: [`staff`], [`consent`], [`invitations`].

mod api;
pub mod consent;
pub mod invitations;
pub mod staff;

use platform::{AppState, Module, Worker, health::Dependency, jobs::Job, permission};
use utoipa_axum::router::OpenApiRouter;

permission!(pub ReadStaff = "users.read", [Owner, Manager], "See the tenant's staff accounts");
permission!(pub InviteStaff = "users.invite", [Owner, Manager], "Invite staff (a manager cannot invite an owner)");
permission!(pub ManageStaff = "users.manage", [Owner, Manager], "Change or delete staff accounts (a manager cannot touch an owner)");

pub const MODULE: Module = Module {
    name: "users",
    needs: &[Dependency::Postgres, Dependency::Redis, Dependency::Vault],
    router,
    workers,
    jobs,
    permissions: &[ReadStaff::INFO, InviteStaff::INFO, ManageStaff::INFO],
};

/// HTTP routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    api::router()
}

/// Long-running consumers and scheduled jobs of this module.
pub fn workers(_state: &AppState) -> Vec<Worker> {
    Vec::new()
}

/// Scheduled jobs of this module.
pub fn jobs(_state: &AppState) -> Vec<Job> {
    Vec::new()
}
