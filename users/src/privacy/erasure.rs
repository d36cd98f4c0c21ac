//! The `privacy.requests` job: expires identity checks nobody answered, and carries out
//! erasures whose grace period has ended, across every module (see `platform::privacy`).
//!
//! One erasure, resumable at each step (the request row remembers how far it got):
//! 1. every module's `erase` in one tenant transaction (sessions revoked, orders anonymized,
//!    waiting mail cancelled, blind indexes dropped), then `erasure_step = anonymized`;
//! 2. every module's `farewell` (the completion mail, sent while the key still opens the
//!    address; idempotent on the request id). SMTP down: stop here, try on the next run;
//! 3. shred the subject's key (idempotent), then close the request and write the PII-free
//!    tombstone `subject.erased` in one transaction.
//!
//! The job's fencing epoch is checked before each erasure starts. Every step is idempotent,
//! so a stale holder that slipped past the check repeats work, it never undoes it.

use chrono::{DateTime, Utc};
use platform::{
    AppState,
    events::{self, Actor, AuditRecord, Resource},
    id::TenantId,
    jobs::{Job, JobContext, JobReport},
    pii::{Subject, SubjectId, SubjectKind},
    privacy::{Erasure, Farewell},
};

use super::{
    Status,
    requests::{self, RequestId},
};

pub const NAME: &str = "privacy.requests";
const ACTOR: Actor = Actor::System { name: NAME };
/// Erasures per run: each is several transactions and a mail.
const BATCH: i64 = 20;

pub fn job(state: &AppState) -> Job {
    let state = state.clone();
    Job::new(
        NAME,
        "0 * * * * *",
        "Expires unconfirmed data-subject requests; carries out erasures whose grace period ended",
        move |ctx| run(state.clone(), ctx),
    )
}

async fn run(state: AppState, ctx: JobContext) -> anyhow::Result<JobReport> {
    let mut report = JobReport::default();
    let now = ctx.clock.now();
    expire(&state, &ctx, now, &mut report).await?;
    // Least recently tried first: erasures waiting for SMTP or failing go to the back.
    let due = sqlx::query!(
        "select tenant_id, id, subject_kind, subject_id, erasure_step, due_at from privacy_requests
         where status in ('scheduled', 'erasing') and scheduled_for <= $1
         order by updated_at, scheduled_for limit $2",
        now,
        BATCH
    )
    .fetch_all(ctx.system.pool())
    .await?;
    for row in due {
        if ctx.stop.is_cancelled() {
            break;
        }
        let Some(kind) = SubjectKind::parse_person(&row.subject_kind) else {
            continue;
        };
        if ctx.dry_run {
            report.add("erasures_due", 1);
            continue;
        }
        // The fence: a run whose lock has passed on starts nothing new.
        ctx.begin().await?.commit().await?;
        let erasure = Erasure {
            tenant: TenantId(row.tenant_id),
            request: row.id,
            subject: Subject {
                id: SubjectId(row.subject_id),
                kind,
            },
            actor: ACTOR,
            due_at: row.due_at,
        };
        match erase(&state, &ctx, &erasure, row.erasure_step.is_some()).await {
            Ok(true) => report.add("erasures_completed", 1),
            Ok(false) => {
                report.add("erasures_waiting", 1);
                to_the_back(&ctx, &erasure).await?;
            }
            Err(err) => {
                // One person's failure must not hold up everyone else's erasure.
                tracing::warn!(request = %row.id, error = format!("{err:#}"), "erasure step failed; retried next run");
                report.add("erasures_failed", 1);
                to_the_back(&ctx, &erasure).await?;
            }
        }
    }
    Ok(report)
}

/// An erasure that could not finish now waits behind the others.
async fn to_the_back(ctx: &JobContext, erasure: &Erasure) -> anyhow::Result<()> {
    sqlx::query!(
        "update privacy_requests set updated_at = now() where tenant_id = $1 and id = $2",
        erasure.tenant.0,
        erasure.request
    )
    .execute(ctx.system.pool())
    .await?;
    Ok(())
}

/// Marks identity checks that ran out as `expired`, tenant by tenant (each with its audit).
async fn expire(
    state: &AppState,
    ctx: &JobContext,
    now: DateTime<Utc>,
    report: &mut JobReport,
) -> anyhow::Result<()> {
    let stale = sqlx::query!(
        "select tenant_id, id from privacy_requests
         where status = 'awaiting_verification' and token_expires_at <= $1 limit 500",
        now
    )
    .fetch_all(ctx.system.pool())
    .await?;
    if ctx.dry_run {
        report.add(
            "requests_expired",
            i64::try_from(stale.len()).unwrap_or(i64::MAX),
        );
        return Ok(());
    }
    for row in stale {
        ctx.begin().await?.commit().await?;
        let expired = async {
            let mut tx = state.db.tenant(TenantId(row.tenant_id)).begin().await?;
            let expired = requests::expire(&mut tx, ACTOR, RequestId(row.id), now).await?;
            tx.commit().await?;
            Ok::<_, anyhow::Error>(expired)
        };
        match expired.await {
            Ok(true) => report.add("requests_expired", 1),
            Ok(false) => {}
            // One shop's trouble must not stop the run (the erasures come next).
            Err(err) => {
                tracing::warn!(request = %row.id, error = format!("{err:#}"), "could not expire a request");
            }
        }
    }
    Ok(())
}

/// Runs the erasure from where it stopped. `Ok(false)`: waiting for the farewell mail.
pub async fn erase(
    state: &AppState,
    ctx: &JobContext,
    erasure: &Erasure,
    anonymized: bool,
) -> anyhow::Result<bool> {
    let request = RequestId(erasure.request);
    let subject = erasure.subject;
    if !anonymized {
        let mut tx = state.db.tenant(erasure.tenant).begin().await?;
        let status = sqlx::query_scalar!(
            "select status from privacy_requests where id = $1 for update",
            request.0
        )
        .fetch_optional(&mut *tx)
        .await?;
        if !matches!(status.as_deref(), Some("scheduled" | "erasing")) {
            return Ok(true);
        }
        // Checked again now, under the owners' lock: another owner may have left (or been
        // erased) since this request was filed.
        if subject.kind == SubjectKind::Staff
            && let Err(platform::Error::Conflict { .. }) =
                requests::refuse_last_owner(&mut tx, subject.id).await
        {
            let now = ctx.clock.now();
            requests::close(&mut tx, ACTOR, request, Status::Rejected, "last_owner", now).await?;
            tx.commit().await?;
            return Ok(true);
        }
        for provider in state.subjects.iter() {
            provider.erase(state, &mut tx, erasure).await?;
        }
        sqlx::query!(
            "update privacy_requests set status = 'erasing', erasure_step = 'anonymized',
                 updated_at = now()
             where id = $1",
            request.0
        )
        .execute(&mut *tx)
        .await?;
        let record = AuditRecord::new(
            ACTOR,
            "privacy.request_updated",
            Resource::new("privacy_request", request),
        )
        .fields(&["status", "erasure_step"])
        .details(serde_json::json!({ "status": "erasing", "erasure_step": "anonymized" }));
        events::emit_audit(&mut tx, &record).await?;
        tx.commit().await?;
    }
    let mut farewell = "sent".to_owned();
    for provider in state.subjects.iter() {
        match provider.farewell(state, &ctx.system, erasure).await {
            Farewell::Done => {}
            Farewell::Undeliverable(reason) => farewell = reason,
            Farewell::Later => return Ok(false),
        }
    }
    state
        .pii
        .shred(&state.db, erasure.tenant, subject.id, ACTOR)
        .await?;
    let mut tx = state.db.tenant(erasure.tenant).begin().await?;
    requests::close(
        &mut tx,
        ACTOR,
        request,
        Status::Completed,
        "erased",
        ctx.clock.now(),
    )
    .await?;
    let modules: Vec<&str> = state.subjects.iter().map(|p| p.module()).collect();
    let tombstone = AuditRecord::new(
        ACTOR,
        "subject.erased",
        Resource::new(subject.kind.as_str(), subject.id),
    )
    .details(serde_json::json!({
        "request_id": request,
        "modules": modules,
        "farewell": farewell,
    }));
    events::emit_audit(&mut tx, &tombstone).await?;
    tx.commit().await?;
    Ok(true)
}
