//! The way into the audit store: nothing waits in the outbox longer than the bound, so every
//! mutation's record reaches the store (a stuck relay shows here before anywhere else).

use futures::FutureExt;
use platform::compliance::{Check, Ctx, Finding, Group::AuditStore, Severity};

use super::check;

pub(super) fn checks() -> Vec<Check> {
    vec![check(
        "audit.outbox_drained",
        AuditStore,
        "No audit record waits in the outbox longer than the bound",
        Severity::High,
        0.7,
        true,
        |c| outbox_drained(c).boxed(),
    )]
}

async fn outbox_drained(ctx: &Ctx) -> anyhow::Result<Finding> {
    let (waiting, oldest): (i64, Option<f64>) = sqlx::query_as(
        "select count(*), extract(epoch from $2 - min(occurred_at))::float8 from outbox
         where published_at is null and tenant_id = any($1)",
    )
    .bind(ctx.tenant_ids().await?)
    .bind(ctx.clock.now())
    .fetch_one(&ctx.read)
    .await?;
    let bound = ctx.config.compliance.outbox_max_age_secs as f64;
    let age = oldest.unwrap_or(0.0).max(0.0);
    let evidence = serde_json::json!({ "unpublished": waiting, "oldest_age_secs": age.round(), "bound_secs": bound });
    let finding = if age > bound {
        Finding::fail(format!(
            "{waiting} records wait in the outbox; the oldest for {age:.0} s (bound {bound:.0} s): the relay or the broker is stuck"
        ))
    } else {
        Finding::pass(format!(
            "{waiting} records in flight; the oldest {age:.0} s old (bound {bound:.0} s)"
        ))
    };
    Ok(finding.with(evidence))
}
