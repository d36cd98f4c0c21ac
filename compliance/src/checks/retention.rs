//! Retention: every policy and every shop's choice sits within the law's bounds, every job ran
//! in its last schedule slot (from the job-run records), and no slot ran twice.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use croner::{
    Cron,
    parser::{CronParser, Seconds},
};
use futures::FutureExt;
use platform::compliance::{Check, Ctx, Finding, Group::Retention, Severity};

use super::check;

pub(super) fn checks() -> Vec<Check> {
    vec![
        check(
            "retention.policies_within_law",
            Retention,
            "Every retention policy and shop choice is within its legal minimum and maximum",
            Severity::High,
            0.8,
            true,
            |c| policies_within_law(c).boxed(),
        ),
        check(
            "retention.nothing_overdue",
            Retention,
            "No row is kept past its retention policy by more than one run interval",
            Severity::High,
            0.8,
            true,
            |c| nothing_overdue(c).boxed(),
        ),
        check(
            "retention.jobs_on_schedule",
            Retention,
            "Every scheduled job succeeded in its last schedule slot",
            Severity::High,
            0.7,
            false,
            |c| jobs_on_schedule(c).boxed(),
        ),
        check(
            "retention.no_double_run",
            Retention,
            "No schedule slot of a job ran twice",
            Severity::Medium,
            0.6,
            false,
            |c| no_double_run(c).boxed(),
        ),
    ]
}

/// How late a run may start after its slot and still count (scheduler start-up, a lock held
/// by the previous run).
const GRACE: Duration = Duration::hours(1);

/// The slot a time belongs to: the schedule's last firing at or before it. croner carries the
/// time's fraction of a second over into what it finds, so whole seconds go in.
fn slot(cron: &Cron, at: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    Ok(cron.find_previous_occurrence(&at.trunc_subsecs(0), true)?)
}

fn parse(schedule: &str) -> anyhow::Result<Cron> {
    Ok(CronParser::builder()
        .seconds(Seconds::Required)
        .build()
        .parse(schedule)?)
}

async fn policies_within_law(ctx: &Ctx) -> anyhow::Result<Finding> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "select 'policy', category || ': legal minimum ' || legal_min_days || ', default '
                || default_days || ', maximum ' || max_days
         from retention_policies
         where not (0 <= legal_min_days and legal_min_days <= default_days and default_days <= max_days)
         union all
         select 'shop ' || o.tenant_id, o.category || ': ' || o.days || ' days, outside '
                || p.legal_min_days || '..' || p.max_days
         from retention_overrides o join retention_policies p using (category)
         where o.tenant_id = any($1) and (o.days < p.legal_min_days or o.days > p.max_days)
         order by 1, 2",
    )
    .bind(ctx.tenant_ids().await?)
    .fetch_all(&ctx.read)
    .await?;
    let policies: i64 = sqlx::query_scalar("select count(*) from retention_policies")
        .fetch_one(&ctx.read)
        .await?;
    let months = ctx.config.audit.retention_months;
    let mut violations: Vec<String> = rows
        .into_iter()
        .map(|(who, what)| format!("{who}: {what}"))
        .collect();
    if months < 12 {
        violations.push(format!(
            "audit.retention_months is {months}: the audit trail must be kept at least a year"
        ));
    }
    Ok(Finding::from_violations(
        violations,
        format!("{policies} policies and every shop's choices are within their bounds"),
        |n| format!("{n} retention periods outside what the law allows"),
    ))
}

/// How long past its cutoff a row may still be there: one run of a daily job, and its grace.
const RUN_INTERVAL: Duration = Duration::days(1);

/// Every module's sweep, dry-run as of one run interval ago: what it counts was past its
/// shop's cutoff a day ago and should be gone.
async fn nothing_overdue(ctx: &Ctx) -> anyhow::Result<Finding> {
    let at = ctx.clock.now() - RUN_INTERVAL - GRACE;
    let scope = ctx.tenant.map(|t| t.0);
    let mut conn = ctx.read.acquire().await?;
    let mut violations = Vec::new();
    for task in ctx.retention.iter() {
        let cutoffs = platform::retention::cutoffs(&mut conn, task.category(), at).await?;
        for (tenant, rows) in task.sweep(&mut conn, &cutoffs, 0, true).await? {
            if rows > 0 && scope.is_none_or(|s| s == tenant) {
                violations.push(format!(
                    "{}: {rows} rows of tenant {tenant} kept more than a day past their policy",
                    task.category()
                ));
            }
        }
    }
    Ok(Finding::from_violations(
        violations,
        format!(
            "{} categories swept (dry run): nothing kept past its policy",
            ctx.retention.len()
        ),
        |n| {
            format!(
                "{n} categories keep rows past their policy: the retention jobs are not keeping up"
            )
        },
    ))
}

/// When the deployment began (its first migration): no job was due before.
async fn deployed_at(ctx: &Ctx) -> anyhow::Result<DateTime<Utc>> {
    Ok(
        sqlx::query_scalar("select min(installed_on) from _sqlx_migrations")
            .fetch_one(&ctx.read)
            .await?,
    )
}

async fn jobs_on_schedule(ctx: &Ctx) -> anyhow::Result<Finding> {
    let now = ctx.clock.now();
    let deployed = deployed_at(ctx).await?;
    let mut violations = Vec::new();
    for (name, schedule) in ctx.jobs.iter() {
        let cron = parse(schedule)?;
        let slot = slot(&cron, now - GRACE)?;
        if slot < deployed {
            continue;
        }
        let last: Option<DateTime<Utc>> = sqlx::query_scalar(
            "select max(started_at) from job_runs
             where job = $1 and outcome = 'succeeded' and not dry_run",
        )
        .bind(name)
        .fetch_one(&ctx.read)
        .await?;
        if last.is_none_or(|last| last < slot - Duration::minutes(1)) {
            let last = last.map_or("never".to_owned(), |t| t.to_rfc3339());
            violations.push(format!(
                "{name} ({schedule}) was due at {} and last succeeded {last}",
                slot.to_rfc3339()
            ));
        }
    }
    Ok(Finding::from_violations(
        violations,
        format!(
            "{} jobs, each succeeded in its last slot (or was not due yet)",
            ctx.jobs.len()
        ),
        |n| format!("{n} jobs missed their last schedule slot"),
    ))
}

async fn no_double_run(ctx: &Ctx) -> anyhow::Result<Finding> {
    let mut violations = Vec::new();
    for (name, schedule) in ctx.jobs.iter() {
        let cron = parse(schedule)?;
        let runs: Vec<(i64, DateTime<Utc>)> = sqlx::query_as(
            "select id, started_at from job_runs
             where job = $1 and trigger = 'schedule' and outcome = 'succeeded' and not dry_run
             order by started_at",
        )
        .bind(name)
        .fetch_all(&ctx.read)
        .await?;
        let mut seen: std::collections::BTreeMap<DateTime<Utc>, i64> = Default::default();
        for (id, started) in runs {
            let slot = slot(&cron, started)?;
            if let Some(first) = seen.insert(slot, id) {
                violations.push(format!(
                    "{name}: runs {first} and {id} both carried out the slot of {}",
                    slot.to_rfc3339()
                ));
            }
        }
    }
    Ok(Finding::from_violations(
        violations,
        format!(
            "{} jobs: every schedule slot ran at most once",
            ctx.jobs.len()
        ),
        |n| format!("{n} schedule slots ran twice: the lock or the fencing epoch failed"),
    ))
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::{parse, slot};

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_run_belongs_to_the_slot_at_or_before_it() {
        let daily = parse("0 10 3 * * *").unwrap();
        let slot = |t| slot(&daily, at(t)).unwrap();
        assert_eq!(slot("2026-12-01T04:40:00Z"), at("2026-12-01T03:10:00Z"));
        assert_eq!(slot("2026-12-01T04:39:59Z"), slot("2026-12-01T04:40:00Z"));
        assert_eq!(slot("2026-12-01T03:10:00Z"), at("2026-12-01T03:10:00Z"));
        assert_eq!(slot("2026-12-01T03:09:59Z"), at("2026-11-30T03:10:00Z"));
        assert_eq!(
            slot("2026-12-01T04:40:00.123456Z"),
            at("2026-12-01T03:10:00Z")
        );
        assert_eq!(
            slot("2026-12-01T04:39:59.654321Z"),
            at("2026-12-01T03:10:00Z")
        );
    }
}
