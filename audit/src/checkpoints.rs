//! `audit.verify`: verifies every tenant's chain in the background and moves its checkpoint to
//! the last link found intact, so neither the request path nor the next run walks a whole chain.
//! Every `audit.full_verify_every_days` a chain is walked from its first link instead, which is
//! what catches a record changed before its checkpoint. A broken chain keeps its checkpoint
//! where it was: every run finds the break again and says so (log, metric, job report) until
//! someone looks.

use chrono::{DateTime, TimeDelta, Utc};
use platform::{
    clients::Vault,
    id::TenantId,
    jobs::{Job, JobContext, JobReport},
};
use sqlx::PgConnection;

use crate::verify::{self, Checkpoint, Digests, RetiredRuns};

pub const VERIFY: &str = "audit.verify";

pub fn job(vault: Vault, full_every_days: u32) -> Job {
    Job::new(
        VERIFY,
        "0 */10 * * * *",
        "verify every audit chain from its checkpoint (in full every few days); move the checkpoint",
        move |ctx| run(ctx, vault.clone(), full_every_days),
    )
}

async fn run(ctx: JobContext, vault: Vault, full_every_days: u32) -> anyhow::Result<JobReport> {
    let tenants = sqlx::query_scalar!("select tenant_id from audit_chain_heads order by tenant_id")
        .fetch_all(ctx.system.pool())
        .await?;
    let now = ctx.clock.now();
    let full_every = TimeDelta::days(i64::from(full_every_days));
    let mut conn = ctx.system.pool().acquire().await?;
    let mut digests = Digests::new(&vault);
    let mut report = JobReport::default();
    for tenant in tenants.into_iter().map(TenantId) {
        if ctx.stop.is_cancelled() {
            break;
        }
        let done = advance(
            &mut conn,
            &mut digests,
            tenant,
            now,
            full_every,
            ctx.dry_run,
        )
        .await?;
        report.add("links_verified", done.chain.links);
        report.add(
            if done.in_full {
                "chains_in_full"
            } else {
                "chains_since_checkpoint"
            },
            1,
        );
        report.add("chains_broken", i64::from(!done.chain.intact()));
        report.add("checkpoints_moved", i64::from(done.moved));
    }
    Ok(report)
}

/// What verifying one tenant's chain did.
#[derive(Debug)]
pub struct Advanced {
    pub chain: verify::ChainReport,
    /// Walked from the first link (the checkpoint's full walk was due, or there was none).
    pub in_full: bool,
    /// The checkpoint now stands at the chain's last link.
    pub moved: bool,
}

/// Verifies `tenant`'s chain on the system role's `conn`, from its checkpoint unless a full
/// walk is due (`full_every` since the last), and moves the checkpoint to the last link when the
/// chain is intact (unless `dry_run`).
pub async fn advance(
    conn: &mut PgConnection,
    digests: &mut Digests<'_>,
    tenant: TenantId,
    now: DateTime<Utc>,
    full_every: TimeDelta,
    dry_run: bool,
) -> anyhow::Result<Advanced> {
    let checkpoint = Checkpoint::of(conn, tenant).await?;
    let from = checkpoint.as_ref().filter(|c| now - c.full_at < full_every);
    let retired = RetiredRuns::proven(conn, tenant, digests).await?;
    let chain = verify::chain_of(conn, tenant, from, &retired).await?;
    let in_full = from.is_none();
    if let Some(broken) = &chain.first_break {
        tracing::error!(
            tenant.id = %tenant,
            chain_seq = broken.chain_seq,
            reason = broken.reason,
            "audit chain broken; its checkpoint stays where it was"
        );
        metrics::counter!("audit_chain_breaks_total").increment(1);
    }
    let moved = match (&chain.first_break, &chain.last) {
        (None, Some((chain_seq, hash))) if !dry_run => {
            sqlx::query!(
                "insert into audit_chain_checkpoints (tenant_id, chain_seq, hash, verified_at, full_at)
                 values ($1, $2, $3, $4, $4)
                 on conflict (tenant_id) do update
                 set chain_seq = excluded.chain_seq, hash = excluded.hash,
                     verified_at = excluded.verified_at,
                     full_at = case when $5 then excluded.full_at
                                    else audit_chain_checkpoints.full_at end",
                tenant.0,
                chain_seq,
                hash,
                now,
                in_full,
            )
            .execute(&mut *conn)
            .await?;
            true
        }
        _ => false,
    };
    Ok(Advanced {
        chain,
        in_full,
        moved,
    })
}
