//! People: staff users and customers (the data subjects), their consent records and data-subject
//! requests. Staff accounts live here; signing in is `auth`'s, which uses [`staff`]'s API.
//!
//! Face (the same in every module crate): [`router`] for its HTTP routes under `/api/v1`,
//! [`workers`] for its background work, [`jobs`] for its scheduled jobs, [`MODULE`] for
//! `gateway` to compose, and its public API: [`staff`], [`customers`], [`consent`],
//! [`invitations`], [`contact`] (addresses for mail), [`privacy`] (data-subject requests).

mod api;
mod compliance;
pub mod consent;
pub mod contact;
pub mod customers;
pub mod invitations;
pub mod privacy;
pub mod staff;

/// What a phone number may look like on the way in (`+62 812-3456-789`); the blind index
/// normalizes it to `+628123456789`.
pub static PHONE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"^\+?[0-9][0-9 \-]{5,24}$").unwrap_or_else(|_| unreachable!())
});

use platform::{AppState, Module, Worker, health::Dependency, jobs::Job, permission};
use utoipa_axum::router::OpenApiRouter;

permission!(pub ReadStaff = "users.read", [Owner, Manager], "See the tenant's staff accounts");
permission!(pub InviteStaff = "users.invite", [Owner, Manager], "Invite staff (a manager cannot invite an owner)");
permission!(pub ManageStaff = "users.manage", [Owner, Manager], "Change or delete staff accounts (a manager cannot touch an owner)");
permission!(pub ReadCustomers = "customers.read", [Owner, Manager, Cashier], "Find and open customers (each opening is audited)");
permission!(pub WriteCustomers = "customers.write", [Owner, Manager, Cashier], "Add customers with their consent, change their details");
permission!(pub FilePrivacyRequests = "privacy.file", [Owner, Manager, Cashier], "Record a customer's data-subject request (they confirm it by mail)");
permission!(pub FileWeightyPrivacyRequests = "privacy.file_weighty", [Owner, Manager], "Record a customer's access, export or erasure request: a copy of all their data, or its end (they confirm it by mail)");
permission!(pub ManagePrivacy = "privacy.manage", [Owner], "See data-subject requests and their deadlines, resolve rectifications, privacy settings, lift restrictions");

pub const MODULE: Module = Module {
    name: "users",
    needs: &[Dependency::Postgres, Dependency::Redis, Dependency::Vault],
    router,
    workers,
    jobs,
    permissions: &[
        ReadStaff::INFO,
        InviteStaff::INFO,
        ManageStaff::INFO,
        ReadCustomers::INFO,
        WriteCustomers::INFO,
        FilePrivacyRequests::INFO,
        FileWeightyPrivacyRequests::INFO,
        ManagePrivacy::INFO,
    ],
    subject_data: Some(&privacy::provider::Provider),
    compliance: Some(&compliance::Probe),
};

/// HTTP routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    api::router()
}

/// Long-running consumers and scheduled jobs of this module.
pub fn workers(_state: &AppState) -> Vec<Worker> {
    Vec::new()
}

/// Scheduled jobs of this module: data-subject requests (expiry, erasures) and retention of
/// invitations and export bundles.
pub fn jobs(state: &AppState) -> Vec<Job> {
    vec![
        privacy::erasure::job(state),
        platform::retention::job(
            "retention.users",
            "0 0 3 * * *",
            state.config.jobs.retention_batch_size,
            retention_tasks(),
        ),
    ]
}

/// What `retention.users` sweeps: invitations, inactive guests, deleted staff, unverified
/// sign-ups and export bundles.
pub fn retention_tasks() -> Vec<std::sync::Arc<dyn platform::retention::RetentionTask>> {
    use platform::retention::TableSweep;
    use std::sync::Arc;
    vec![
        Arc::new(TableSweep {
            category: "invitations",
            table: "staff_invitations",
            key: "id",
            age: "coalesce(accepted_at, expires_at)",
            condition: "true",
        }),
        Arc::new(TableSweep {
            category: "email_changes",
            table: "customer_email_changes",
            key: "id",
            age: "changed_at",
            condition: "true",
        }),
        Arc::new(TableSweep {
            category: "consent_confirmations",
            table: "consent_confirmations",
            key: "id",
            age: "coalesce(confirmed_at, expires_at)",
            condition: "true",
        }),
        Arc::new(privacy::retention::INACTIVE_GUESTS),
        Arc::new(privacy::retention::DELETED_STAFF),
        Arc::new(privacy::retention::UNVERIFIED_SIGNUPS),
        // A downloaded bundle has served its purpose; an unused one goes at expiry.
        Arc::new(TableSweep {
            category: "privacy_exports",
            table: "privacy_exports",
            key: "id",
            age: "least(coalesce(downloaded_at, expires_at), expires_at)",
            condition: "true",
        }),
    ]
}
