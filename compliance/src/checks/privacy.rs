//! Completed erasures really erased: the tombstone reached the audit store, the key is gone,
//! and no blind index still links the row to an address. (The request clocks are the users
//! module's own check.) These read three modules' tables, which only the verifier may do.

use futures::FutureExt;
use platform::compliance::{Check, Ctx, Finding, Group::DataSubjectRequests, Severity};

use super::check;

pub(super) fn checks() -> Vec<Check> {
    vec![
        check(
            "privacy.erased_tombstone",
            DataSubjectRequests,
            "Every completed erasure has its tombstone in the audit store",
            Severity::High,
            0.7,
            true,
            |c| tombstone(c).boxed(),
        ),
        check(
            "privacy.erased_keyless",
            DataSubjectRequests,
            "No erased person still has a data key",
            Severity::Critical,
            1.0,
            true,
            |c| keyless(c).boxed(),
        ),
        check(
            "privacy.erased_unlinkable",
            DataSubjectRequests,
            "No erased person's row keeps a blind index",
            Severity::High,
            0.8,
            true,
            |c| unlinkable(c).boxed(),
        ),
    ]
}

const ERASED: &str = "select tenant_id, subject_id, subject_kind, id from privacy_requests
     where type = 'erasure' and status = 'completed' and outcome = 'erased' and tenant_id = any($1)";

async fn tombstone(ctx: &Ctx) -> anyhow::Result<Finding> {
    let missing: Vec<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select e.tenant_id, e.id from ({ERASED}) e
         where not exists (select 1 from audit_events a where a.tenant_id = e.tenant_id
             and a.event_type = 'subject.erased' and a.resource_id = e.subject_id::text)
         order by 1, 2"
    )))
    .bind(ctx.tenant_ids().await?)
    .fetch_all(&ctx.read)
    .await?;
    Ok(Finding::from_violations(
        missing
            .iter()
            .map(|(t, r)| format!("tenant {t}: erasure request {r} has no subject.erased record"))
            .collect(),
        "every completed erasure has its tombstone",
        |n| format!("{n} completed erasures left no tombstone in the audit store"),
    ))
}

async fn keyless(ctx: &Ctx) -> anyhow::Result<Finding> {
    let keyed: Vec<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select e.tenant_id, e.subject_id from ({ERASED}) e
         where exists (select 1 from subject_keys k where k.tenant_id = e.tenant_id
             and k.subject_id = e.subject_id)
         order by 1, 2"
    )))
    .bind(ctx.tenant_ids().await?)
    .fetch_all(&ctx.read)
    .await?;
    Ok(Finding::from_violations(
        keyed
            .iter()
            .map(|(t, s)| format!("tenant {t}: erased subject {s} still has a data key"))
            .collect(),
        "no erased person has a data key: their sealed values open as erased",
        |n| format!("{n} erased people still have a data key: their data can be opened"),
    ))
}

async fn unlinkable(ctx: &Ctx) -> anyhow::Result<Finding> {
    let linked: Vec<(uuid::Uuid, uuid::Uuid, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select e.tenant_id, e.subject_id, 'customers' from ({ERASED}) e
         join customers c on c.tenant_id = e.tenant_id and c.id = e.subject_id
         where e.subject_kind = 'customer' and (c.email_index is not null or c.phone_index is not null)
         union all
         select e.tenant_id, e.subject_id, 'staff_users' from ({ERASED}) e
         join staff_users s on s.tenant_id = e.tenant_id and s.id = e.subject_id
         where e.subject_kind = 'staff' and s.email_index is not null
         order by 1, 2"
    )))
    .bind(ctx.tenant_ids().await?)
    .fetch_all(&ctx.read)
    .await?;
    Ok(Finding::from_violations(
        linked
            .iter()
            .map(|(t, s, table)| {
                format!("tenant {t}: erased subject {s} is still findable in {table}")
            })
            .collect(),
        "no erased person can be found by email or phone",
        |n| format!("{n} erased people can still be found through a blind index"),
    ))
}
