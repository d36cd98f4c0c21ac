//! What `users` tells the compliance verifier: where it seals people's data, and the checks
//! only it can write (consent evidence against its own purposes and policies, request clocks
//! against its own due-time rules).

use chrono::{DateTime, Utc};
use futures::FutureExt;
use platform::{
    compliance::{
        Check, CheckSpec, ComplianceProbe, Ctx, Finding,
        Group::{Consent, DataSubjectRequests},
        SealedColumn, Severity,
    },
    pii::IndexKind,
};

use crate::privacy::{Jurisdiction, RequestType, due_at};

#[derive(Debug)]
pub struct Probe;

const SEALED: &[SealedColumn] = &[
    SealedColumn::new("customers", "full_name", "customers.full_name", "id"),
    SealedColumn::new("customers", "email", "customers.email", "id")
        .indexed("email_index", IndexKind::Email),
    SealedColumn::new("customers", "phone", "customers.phone", "id")
        .indexed("phone_index", IndexKind::Phone),
    SealedColumn::new("customers", "address", "customers.address", "id"),
    SealedColumn::new("staff_users", "full_name", "staff_users.full_name", "id"),
    SealedColumn::new("staff_users", "email", "staff_users.email", "id")
        .indexed("email_index", IndexKind::Email),
    SealedColumn::new("staff_users", "phone", "staff_users.phone", "id"),
    // Copied from `customers.email` when it changes, so still bound to that field.
    SealedColumn::new(
        "customer_email_changes",
        "previous_email",
        "customers.email",
        "customer_id",
    ),
    SealedColumn::new(
        "privacy_exports",
        "bundle",
        "privacy_exports.bundle",
        "subject_id",
    ),
];

fn spec(
    id: &'static str,
    group: platform::compliance::Group,
    title: &'static str,
    severity: Severity,
    impact: f32,
) -> CheckSpec {
    CheckSpec {
        id,
        group,
        title,
        severity,
        impact,
        tenant_data: true,
    }
}

impl ComplianceProbe for Probe {
    fn sealed_columns(&self) -> &'static [SealedColumn] {
        SEALED
    }

    fn retention_tasks(&self) -> Vec<std::sync::Arc<dyn platform::retention::RetentionTask>> {
        crate::retention_tasks()
    }

    fn checks(&self) -> Vec<Check> {
        vec![
            Check {
                spec: spec(
                    "consent.required_evidence",
                    Consent,
                    "Every active person has a grant for each required purpose under the current major policy",
                    Severity::High,
                    0.8,
                ),
                run: |c| required_evidence(c).boxed(),
            },
            Check {
                spec: spec(
                    "consent.current_policy",
                    Consent,
                    "Exactly one current privacy policy per audience, in Indonesian and in English",
                    Severity::Medium,
                    0.6,
                ),
                run: |c| current_policy(c).boxed(),
            },
            Check {
                spec: spec(
                    "consent.evidence_append_only",
                    Consent,
                    "The app role cannot change or delete consent evidence",
                    Severity::High,
                    0.8,
                ),
                run: |c| evidence_append_only(c).boxed(),
            },
            Check {
                spec: spec(
                    "privacy.requests_on_time",
                    DataSubjectRequests,
                    "No open data-subject request is past its legal due time",
                    Severity::High,
                    0.8,
                ),
                run: |c| requests_on_time(c).boxed(),
            },
            Check {
                spec: spec(
                    "privacy.due_times_lawful",
                    DataSubjectRequests,
                    "Every request's due time is no later than its shop's law allows",
                    Severity::Medium,
                    0.6,
                ),
                run: |c| due_times_lawful(c).boxed(),
            },
        ]
    }
}

/// A required purpose without current evidence.
#[derive(sqlx::FromRow)]
struct Gap {
    tenant_id: uuid::Uuid,
    subject: uuid::Uuid,
    kind: String,
    purpose: String,
    granted: Option<bool>,
    policy_version: Option<String>,
}

/// A data-subject request not closed yet.
#[derive(sqlx::FromRow)]
struct OpenRequest {
    tenant_id: uuid::Uuid,
    id: uuid::Uuid,
    #[sqlx(rename = "type")]
    kind: String,
    jurisdiction: String,
    received_at: DateTime<Utc>,
    due_at: DateTime<Utc>,
}

/// Active people and the required purposes of their audience whose latest record is missing,
/// a withdrawal, or made under an older major version of the policy in force.
async fn required_evidence(ctx: &Ctx) -> anyhow::Result<Finding> {
    let rows: Vec<Gap> = sqlx::query_as(
        "with people as (
                 select tenant_id, id, 'staff' as kind, 'merchant' as audience from staff_users
                 where status = 'active' and erased_at is null and tenant_id = any($1)
                 union all
                 select tenant_id, id, 'customer', 'customer' from customers
                 where erased_at is null and tenant_id = any($1)),
             current_major as (
                 select distinct on (audience) audience, major from privacy_policies
                 where published_at <= now() order by audience, major desc, minor desc)
             select p.tenant_id, p.id as subject, p.kind, r.code as purpose, latest.granted,
                    latest.policy_version
             from people p
             join privacy_purposes r on r.audience = p.audience and r.required
             join current_major m on m.audience = p.audience
             left join lateral (
                 select c.granted, c.policy_version from consent_records c
                 where c.tenant_id = p.tenant_id and c.subject_id = p.id and c.purpose = r.code
                 order by c.recorded_at desc, c.id desc limit 1) latest on true
             where latest.granted is null or not latest.granted
                or split_part(latest.policy_version, '.', 1)::int < m.major
             order by 1, 2, 4",
    )
    .bind(ctx.tenant_ids().await?)
    .fetch_all(&ctx.read)
    .await?;
    let violations = rows
        .iter()
        .map(|gap| {
            let Gap {
                tenant_id: tenant,
                subject,
                kind,
                purpose,
                granted,
                policy_version: version,
            } = gap;
            let why = match (granted, version) {
                (None, _) => "no consent record".to_owned(),
                (Some(false), _) => "withdrawn".to_owned(),
                (Some(true), v) => format!(
                    "granted under superseded policy {}",
                    v.as_deref().unwrap_or("?")
                ),
            };
            format!("tenant {tenant}: {kind} {subject}, purpose {purpose}: {why}")
        })
        .collect();
    Ok(Finding::from_violations(
        violations,
        "every active person's required purposes are granted under the current policy",
        |n| {
            format!(
                "{n} required purposes lack current evidence (processing without a lawful basis)"
            )
        },
    ))
}

async fn current_policy(ctx: &Ctx) -> anyhow::Result<Finding> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "with current as (
             select distinct on (audience) audience, version from privacy_policies
             where published_at <= now() order by audience, major desc, minor desc)
         select a.audience, l.lang, count(t.lang)
         from (values ('merchant'), ('customer')) a(audience)
         cross join (values ('id'), ('en')) l(lang)
         left join current c on c.audience = a.audience
         left join privacy_policy_texts t on t.audience = c.audience and t.version = c.version
              and t.lang = l.lang
         group by 1, 2 order by 1, 2",
    )
    .fetch_all(&ctx.read)
    .await?;
    let violations = rows
        .iter()
        .filter(|(_, _, n)| *n != 1)
        .map(|(audience, lang, n)| format!("{audience} policy in {lang}: {n} current texts"))
        .collect();
    Ok(Finding::from_violations(
        violations,
        "one current policy text per audience and language (id, en)",
        |n| format!("{n} audience/language pairs lack exactly one current policy text"),
    ))
}

async fn evidence_append_only(ctx: &Ctx) -> anyhow::Result<Finding> {
    let Some((tenant, id)): Option<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
        "select tenant_id, id from consent_records where tenant_id = any($1) limit 1",
    )
    .bind(ctx.tenant_ids().await?)
    .fetch_optional(&ctx.read)
    .await?
    else {
        return Ok(Finding::skip("no consent record yet to try"));
    };
    let tenant_id = platform::id::TenantId(tenant);
    let mut accepted = Vec::new();
    for (what, statement) in [
        (
            "update",
            format!(
                "update consent_records set granted = not granted where tenant_id = '{tenant}' and id = '{id}'"
            ),
        ),
        (
            "delete",
            format!("delete from consent_records where tenant_id = '{tenant}' and id = '{id}'"),
        ),
    ] {
        if !platform::compliance::refused(ctx.app.global(), Some(tenant_id), &statement).await? {
            accepted.push(format!("the app role may {what} consent evidence"));
        }
    }
    Ok(Finding::from_violations(
        accepted,
        format!("the app role was refused changing and deleting consent record {id}"),
        |n| format!("{n} ways to rewrite consent evidence are open"),
    ))
}

async fn open_requests(ctx: &Ctx) -> anyhow::Result<Vec<OpenRequest>> {
    Ok(sqlx::query_as(
        "select tenant_id, id, type, jurisdiction, received_at, due_at from privacy_requests
         where status not in ('completed', 'expired', 'rejected') and tenant_id = any($1)
         order by due_at",
    )
    .bind(ctx.tenant_ids().await?)
    .fetch_all(&ctx.read)
    .await?)
}

async fn requests_on_time(ctx: &Ctx) -> anyhow::Result<Finding> {
    let now = ctx.clock.now();
    let open = open_requests(ctx).await?;
    let violations = open
        .iter()
        .filter(|r| r.due_at < now)
        .map(|r| {
            format!(
                "tenant {}: {} request {} ({}) overdue by {} hours",
                r.tenant_id,
                r.kind,
                r.id,
                r.jurisdiction,
                (now - r.due_at).num_hours()
            )
        })
        .collect();
    Ok(Finding::from_violations(
        violations,
        format!("{} open requests, none past its due time", open.len()),
        |n| format!("{n} data-subject requests are overdue"),
    ))
}

async fn due_times_lawful(ctx: &Ctx) -> anyhow::Result<Finding> {
    let open = open_requests(ctx).await?;
    let mut violations = Vec::new();
    for r in &open {
        let (tenant, id, due) = (r.tenant_id, r.id, r.due_at);
        let (Some(law), Some(kind)) = (
            Jurisdiction::parse(&r.jurisdiction),
            RequestType::parse(&r.kind),
        ) else {
            violations.push(format!(
                "tenant {tenant}: request {id} has an unknown law or type"
            ));
            continue;
        };
        let lawful = due_at(law, kind, r.received_at);
        if due > lawful {
            violations.push(format!(
                "tenant {tenant}: {} request {id} is due {} hours after the law's limit",
                kind.as_str(),
                (due - lawful).num_hours()
            ));
        }
    }
    Ok(Finding::from_violations(
        violations,
        format!(
            "{} open requests, each due within its law's limit",
            open.len()
        ),
        |n| format!("{n} requests carry a due time later than the law allows"),
    ))
}
