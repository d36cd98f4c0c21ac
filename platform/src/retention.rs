//! Retention (DESIGN §7): how long each category of data is kept, and the jobs that remove
//! what is past it.
//!
//! Policies are data (`retention_policies`: legal minimum, default, maximum, reason); a shop may
//! choose its own days per category within the bounds (`retention_overrides`, through
//! `tenants`' API). A module implements [`RetentionTask`] for each category it owns and lists
//! them in one [`job`] (`retention.<module>`), which runs under the jobs runner's lock and
//! fencing epoch: every batch is its own transaction, opened by [`JobContext::begin`] (the lease
//! is checked there), removing at most `jobs.retention_batch_size` rows and recording, in the
//! same transaction, one audit record per tenant with the count. A run stopped midway leaves
//! whole batches done and the rest for the next run; a dry run counts and changes nothing.
//!
//! The legal minimum is enforced twice: overrides outside the bounds are refused, and the
//! cutoff is computed from `greatest(days, legal_min_days)` whatever is stored.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgConnection;

use crate::{
    authz::BoxFuture,
    events::{self, Actor, AuditRecord, Resource},
    id::TenantId,
    jobs::{Job, JobContext, JobReport},
};

/// Where each tenant's data of one category becomes removable.
#[derive(Debug, Clone)]
pub struct Cutoffs {
    /// When they were computed (the job's clock).
    pub now: DateTime<Utc>,
    /// For tenants without an override.
    pub default: DateTime<Utc>,
    /// Tenants with an override, and their cutoffs (parallel arrays, for `unnest` in SQL).
    pub tenants: Vec<uuid::Uuid>,
    pub at: Vec<DateTime<Utc>>,
}

impl Cutoffs {
    /// The cutoff of `tenant`.
    pub fn of(&self, tenant: uuid::Uuid) -> DateTime<Utc> {
        self.tenants
            .iter()
            .position(|t| *t == tenant)
            .and_then(|i| self.at.get(i).copied())
            .unwrap_or(self.default)
    }
}

/// The category's cutoffs at `now`: `now - days`, days never below the legal minimum.
pub async fn cutoffs(
    conn: &mut PgConnection,
    category: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Cutoffs> {
    let default_days = sqlx::query_scalar!(
        "select greatest(default_days, legal_min_days) as \"days!\" from retention_policies
         where category = $1",
        category
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| anyhow::anyhow!("no retention policy for category `{category}`"))?;
    let overrides = sqlx::query!(
        "select o.tenant_id, greatest(least(o.days, p.max_days), p.legal_min_days) as \"days!\"
         from retention_overrides o join retention_policies p using (category)
         where o.category = $1",
        category
    )
    .fetch_all(&mut *conn)
    .await?;
    let before = |days: i32| now - TimeDelta::days(i64::from(days));
    Ok(Cutoffs {
        now,
        default: before(default_days),
        tenants: overrides.iter().map(|o| o.tenant_id).collect(),
        at: overrides.iter().map(|o| before(o.days)).collect(),
    })
}

/// Rows removed (or, dry, removable) per tenant.
pub type Swept = Vec<(uuid::Uuid, i64)>;

/// One category's sweep, implemented by the module that owns its tables.
pub trait RetentionTask: Send + Sync + std::fmt::Debug {
    /// The `retention_policies.category` it sweeps (also the metrics label).
    fn category(&self) -> &'static str;

    /// Removes at most `limit` rows past their tenant's cutoff, in `conn` (the batch's
    /// transaction); with `dry_run`, counts every removable row instead and removes nothing.
    fn sweep<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        cutoffs: &'a Cutoffs,
        limit: i64,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Swept, sqlx::Error>>;
}

/// The common sweep: rows of one tenant table, keyed by `(tenant_id, key)`, whose `age`
/// expression is past their tenant's cutoff (and that meet `condition`). The strings are the
/// owning module's constants, never input, so the SQL built from them is fixed per task.
#[derive(Debug, Clone, Copy)]
pub struct TableSweep {
    pub category: &'static str,
    pub table: &'static str,
    /// The column that, with `tenant_id`, identifies a row.
    pub key: &'static str,
    /// When a row started to age, e.g. `coalesce(used_at, expires_at)`.
    pub age: &'static str,
    /// Which rows may go at all, e.g. `status in ('sent', 'dead')`; `true` for all.
    pub condition: &'static str,
}

/// The cutoff of the row's tenant in SQL, for sweeps of a table aliased `t`, with the
/// [`Cutoffs`] bound as `$1` (default), `$2` (tenants) and `$3` (their cutoffs).
pub const PAST_CUTOFF: &str =
    "coalesce((select c.at from unnest($2::uuid[], $3::timestamptz[]) as c(tenant, at)
                                     where c.tenant = t.tenant_id), $1)";

impl RetentionTask for TableSweep {
    fn category(&self) -> &'static str {
        self.category
    }

    fn sweep<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        cutoffs: &'a Cutoffs,
        limit: i64,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Swept, sqlx::Error>> {
        let Self {
            table,
            key,
            age,
            condition,
            ..
        } = *self;
        let sql = if dry_run {
            format!(
                "select tenant_id, count(*) from {table} t
                 where ({condition}) and {age} < {PAST_CUTOFF} group by tenant_id"
            )
        } else {
            format!(
                "with doomed as (
                     select tenant_id, {key} as k from {table} t
                     where ({condition}) and {age} < {PAST_CUTOFF}
                     order by {age} limit $4),
                 gone as (
                     delete from {table} x using doomed d
                     where x.tenant_id = d.tenant_id and x.{key} = d.k returning x.tenant_id)
                 select tenant_id, count(*) from gone group by tenant_id"
            )
        };
        Box::pin(async move {
            let query = sqlx::query_as::<_, (uuid::Uuid, i64)>(sqlx::AssertSqlSafe(sql))
                .bind(cutoffs.default)
                .bind(&cutoffs.tenants)
                .bind(&cutoffs.at);
            let query = if dry_run { query } else { query.bind(limit) };
            query.fetch_all(conn).await
        })
    }
}

/// The job `retention.<module>` that runs `tasks` one after the other, daily at `schedule`.
pub fn job(
    name: &'static str,
    schedule: &'static str,
    batch: i64,
    tasks: Vec<Arc<dyn RetentionTask>>,
) -> Job {
    let tasks = Arc::new(tasks);
    Job::new(
        name,
        schedule,
        "Removes data past its retention period (docs/COMPLIANCE.md, Retention)",
        move |ctx| {
            let tasks = tasks.clone();
            async move { run(name, &ctx, &tasks, batch.max(1)).await }
        },
    )
}

async fn run(
    name: &'static str,
    ctx: &JobContext,
    tasks: &[Arc<dyn RetentionTask>],
    batch: i64,
) -> anyhow::Result<JobReport> {
    let mut report = JobReport::default();
    for task in tasks {
        let category = task.category();
        let now = ctx.clock.now();
        let cutoffs = {
            let mut conn = ctx.system.pool().acquire().await?;
            cutoffs(&mut conn, category, now).await?
        };
        if ctx.dry_run {
            let mut tx = ctx.begin().await?;
            let swept = task.sweep(&mut tx, &cutoffs, batch, true).await?;
            tx.rollback().await?;
            report.add(category, swept.iter().map(|(_, n)| n).sum());
            continue;
        }
        loop {
            if ctx.stop.is_cancelled() {
                return Ok(report);
            }
            let mut tx = ctx.begin().await?;
            let swept = task.sweep(&mut tx, &cutoffs, batch, false).await?;
            let total: i64 = swept.iter().map(|(_, n)| n).sum();
            for (tenant, count) in swept.iter().filter(|(_, n)| *n > 0) {
                let record = AuditRecord::new(
                    Actor::System { name },
                    "retention.swept",
                    Resource::new("retention_category", category),
                )
                .details(serde_json::json!({
                    "category": category,
                    "removed": count,
                    "cutoff": cutoffs.of(*tenant),
                    "epoch": ctx.lease.epoch(),
                }));
                events::emit_audit_for(&mut tx, TenantId(*tenant), &record).await?;
            }
            tx.commit().await?;
            report.add(category, total);
            metrics::counter!("cleanup_records_processed_total", "category" => category)
                .increment(u64::try_from(total).unwrap_or(0));
            if total < batch {
                break;
            }
        }
        metrics::gauge!("cleanup_last_run_timestamp_seconds", "category" => category)
            .set(ctx.clock.now().timestamp() as f64);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_without_an_override_gets_the_default() {
        let now = Utc::now();
        let special = uuid::Uuid::now_v7();
        let cutoffs = Cutoffs {
            now,
            default: now - TimeDelta::days(30),
            tenants: vec![special],
            at: vec![now - TimeDelta::days(90)],
        };
        assert_eq!(cutoffs.of(special), now - TimeDelta::days(90));
        assert_eq!(cutoffs.of(uuid::Uuid::now_v7()), now - TimeDelta::days(30));
    }
}
