//! Notifications: consumes domain events, renders bilingual templates and delivers mail over
//! SMTP with a durable delivery log.
//!
//! [`intake`] turns events into rows of `notification_deliveries` (idempotent per event and
//! template); [`sender`] sends them with retries, opening each recipient's address through
//! `users`' contact API at send time. Mail content reads `tenants` (branding) and `orders`
//! (receipts) through their public APIs; this module never reads their tables.
//!
//! Face (the same in every module crate): [`router`] for its HTTP routes under `/api/v1`,
//! [`workers`] for its background work, [`jobs`] for its scheduled jobs, [`MODULE`] for
//! `gateway` to compose; and its public API for the privacy flow: [`deliver_now`] and
//! [`cancel_for_subject`].

mod api;
mod compliance;
pub mod domain;
pub mod intake;
pub mod marketing;
pub mod privacy;
pub mod render;
pub mod repo;
pub mod sender;

use std::sync::Arc;

use platform::{
    AppState, Module, Result, Worker,
    db::{SystemDb, TenantTx},
    events::{self, Actor, AuditRecord, Resource},
    health::Dependency,
    id::TenantId,
    jobs::Job,
    permission,
    pii::SubjectId,
};
use serde_json::Value;
use tokio::sync::Notify;
use utoipa_axum::router::OpenApiRouter;

pub use domain::{Recipient, Template};

permission!(pub ReadDeliveries = "notifications.read", [Owner, Manager], "See the mail log (who, which template, status; never an address or a body)");
permission!(pub RetryDeliveries = "notifications.retry", [Owner, Manager], "Retry a dead or cancelled mail");

pub const MODULE: Module = Module {
    name: "notifications",
    needs: &[
        Dependency::Postgres,
        Dependency::Vault,
        Dependency::Kafka,
        Dependency::Smtp,
    ],
    router,
    workers,
    jobs,
    permissions: &[
        ReadDeliveries::INFO,
        RetryDeliveries::INFO,
        marketing::SendMarketing::INFO,
    ],
    subject_data: Some(&privacy::Provider),
    compliance: Some(&compliance::Probe),
};

/// HTTP routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    api::router().merge(marketing::router())
}

/// The intake (one consumer per process in the `warung-notifications` group) and the sender
/// (senders in several processes share the queue through leases). The intake wakes the
/// sender of its own process when it queues mail.
pub fn workers(state: &AppState) -> Vec<Worker> {
    let wake = Arc::new(Notify::new());
    let intake = {
        let (state, wake) = (state.clone(), wake.clone());
        Worker::new("notifications-intake", move |ctx| {
            intake::run(ctx, state.clone(), wake.clone())
        })
    };
    let state = state.clone();
    let sender = Worker::new("notifications-sender", move |ctx| {
        let (state, wake) = (state.clone(), wake.clone());
        async move {
            sender::Sender::new(state, ctx.system.clone())?
                .run(ctx, wake)
                .await
        }
    });
    vec![intake, sender]
}

/// Scheduled jobs of this module: retention of the mail log.
pub fn jobs(state: &AppState) -> Vec<Job> {
    vec![platform::retention::job(
        "retention.notifications",
        "0 30 3 * * *",
        state.config.jobs.retention_batch_size,
        retention_tasks(),
    )]
}

/// What `retention.notifications` sweeps: the mail log.
pub fn retention_tasks() -> Vec<std::sync::Arc<dyn platform::retention::RetentionTask>> {
    use platform::retention::TableSweep;
    use std::sync::Arc;
    vec![Arc::new(TableSweep {
        category: "notification_logs",
        table: "notification_deliveries",
        key: "id",
        age: "updated_at",
        condition: "status in ('sent', 'dead', 'cancelled')",
    })]
}

/// Sends `template` to `recipient` now, without waiting for an event: for the mail that must
/// leave before something irreversible happens. The erasure flow is: [`cancel_for_subject`],
/// then `deliver_now(ErasureCompleted)` while the subject's key still exists, and shred the
/// key only once this returned `true`; on `false` (SMTP refused or down) try again later with
/// the same `key`.
///
/// `key` identifies the occasion (e.g. the erasure request's id): calling again with the same
/// key sends the same mail, never a second one, and answers `true` once it was accepted. The
/// mail is held out of the background queue, so no other sender races this call for it.
pub async fn deliver_now(
    state: &AppState,
    system: &SystemDb,
    tenant: TenantId,
    key: uuid::Uuid,
    recipient: Recipient,
    template: Template,
    context: Value,
) -> anyhow::Result<bool> {
    let plan = domain::Plan {
        template,
        recipient,
    };
    let id = match repo::queue(
        system,
        tenant,
        key,
        "direct",
        &plan,
        &context,
        Some(repo::held()),
    )
    .await?
    {
        Some(id) => id,
        None => match repo::find(system, tenant, key, template.name()).await? {
            Some((_, status, _)) if status == "sent" => return Ok(true),
            Some((id, _, _)) => id,
            None => return Ok(false),
        },
    };
    sender::Sender::new(state.clone(), system.clone())?
        .send_now(tenant, id)
        .await
}

/// Cancels every mail still waiting for `subject` (at erasure: nothing more may be read for
/// them, and no mail may follow the erasure-completed one), except the erasure-completed mail. Audited as `notification.cancelled` with the
/// count. Returns how many were cancelled.
pub async fn cancel_for_subject(
    tx: &mut TenantTx,
    actor: Actor,
    subject: SubjectId,
) -> Result<usize> {
    let cancelled = repo::cancel_waiting(
        tx,
        subject,
        &[Template::ErasureCompleted.name()],
        "subject_erased",
    )
    .await?;
    if !cancelled.is_empty() {
        let record = AuditRecord::new(
            actor,
            "notification.cancelled",
            Resource::new("subject", subject),
        )
        .fields(&["status"])
        .details(serde_json::json!({ "count": cancelled.len(), "reason": "subject_erased" }));
        events::emit_audit(tx, &record).await?;
    }
    Ok(cancelled.len())
}
