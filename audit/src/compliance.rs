//! What `audit` tells the compliance verifier: the store refuses rewrites to both service
//! roles (tried on a real record), its partitions are in place, every chain verifies, nothing
//! sits in the dead letters, and every retired partition's digest carries a valid signature.

use futures::FutureExt;
use platform::{
    clients::Vault,
    compliance::{
        Check, CheckSpec, ComplianceProbe, Ctx, Finding, Group::AuditStore, Severity, refused,
    },
    id::TenantId,
};

#[derive(Debug)]
pub struct Probe;

fn spec(
    id: &'static str,
    title: &'static str,
    severity: Severity,
    impact: f32,
    tenant_data: bool,
) -> CheckSpec {
    CheckSpec {
        id,
        group: AuditStore,
        title,
        severity,
        impact,
        tenant_data,
    }
}

impl ComplianceProbe for Probe {
    fn checks(&self) -> Vec<Check> {
        vec![
            Check {
                spec: spec(
                    "audit.append_only_app",
                    "UPDATE, DELETE and TRUNCATE of audit records are refused to the app role",
                    Severity::Critical,
                    1.0,
                    false,
                ),
                run: |c| append_only(c, Role::App).boxed(),
            },
            Check {
                spec: spec(
                    "audit.append_only_system",
                    "UPDATE, DELETE and TRUNCATE of audit records are refused to the workers' role",
                    Severity::Critical,
                    1.0,
                    false,
                ),
                run: |c| append_only(c, Role::System).boxed(),
            },
            Check {
                spec: spec(
                    "audit.partitions_ahead",
                    "Partitions exist for this month and the configured months ahead",
                    Severity::Medium,
                    0.5,
                    false,
                ),
                run: |c| partitions_ahead(c).boxed(),
            },
            Check {
                spec: spec(
                    "audit.default_partition_empty",
                    "No audit record waits in the DEFAULT partition",
                    Severity::Low,
                    0.3,
                    false,
                ),
                run: |c| default_partition_empty(c).boxed(),
            },
            Check {
                spec: spec(
                    "audit.chains_intact",
                    "Every tenant's hash chain verifies",
                    Severity::Critical,
                    1.0,
                    true,
                ),
                run: |c| chains_intact(c).boxed(),
            },
            Check {
                spec: spec(
                    "audit.no_dead_letters",
                    "No audit record sits in the dead letters",
                    Severity::High,
                    0.8,
                    true,
                ),
                run: |c| no_dead_letters(c).boxed(),
            },
            Check {
                spec: spec(
                    "audit.retired_digests_signed",
                    "Every retired partition's digest carries a valid signature",
                    Severity::High,
                    0.7,
                    false,
                ),
                run: |c| retired_digests(c).boxed(),
            },
        ]
    }
}

#[derive(Debug, Clone, Copy)]
enum Role {
    App,
    System,
}

async fn append_only(ctx: &Ctx, role: Role) -> anyhow::Result<Finding> {
    let Some((tenant, event, at)): Option<(uuid::Uuid, uuid::Uuid, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("select tenant_id, event_id, occurred_at from audit_events order by occurred_at desc limit 1")
            .fetch_optional(&ctx.read)
            .await?
    else {
        return Ok(Finding::skip("the audit store holds no record yet to try"));
    };
    let (pool, tenant_setting, name) = match role {
        Role::App => (ctx.app.global(), Some(TenantId(tenant)), "app"),
        Role::System => {
            let Some(system) = &ctx.system else {
                anyhow::bail!("this run has no connection as the workers' role");
            };
            (system, None, "system")
        }
    };
    let row = format!(
        "tenant_id = '{tenant}' and event_id = '{event}' and occurred_at = '{}'",
        at.to_rfc3339()
    );
    let mut accepted = Vec::new();
    for (what, statement) in [
        (
            "UPDATE",
            format!("update audit_events set event_type = event_type || '' where {row}"),
        ),
        ("DELETE", format!("delete from audit_events where {row}")),
        ("TRUNCATE", "truncate audit_events".to_owned()),
    ] {
        if !refused(pool, tenant_setting, &statement).await? {
            accepted.push(format!(
                "the {name} role's {what} went through (rolled back)"
            ));
        }
    }
    Ok(Finding::from_violations(
        accepted,
        format!("the {name} role was refused UPDATE, DELETE and TRUNCATE on record {event}"),
        |n| format!("{n} ways to rewrite the audit store are open to the {name} role"),
    ))
}

async fn partitions_ahead(ctx: &Ctx) -> anyhow::Result<Finding> {
    let missing: Vec<String> = sqlx::query_scalar(
        "select to_char(m, 'YYYY-MM') from generate_series(
             date_trunc('month', $1::timestamptz at time zone 'UTC'),
             date_trunc('month', $1::timestamptz at time zone 'UTC') + make_interval(months => $2),
             interval '1 month') m
         where not exists (select 1 from audit_partitions() p
                           where p.range_from <= (m at time zone 'UTC') and (m at time zone 'UTC') < p.range_to)
         order by 1",
    )
    .bind(ctx.clock.now())
    .bind(ctx.config.audit.partitions_ahead_months as i32)
    .fetch_all(&ctx.read)
    .await?;
    Ok(Finding::from_violations(
        missing
            .iter()
            .map(|m| format!("no partition for {m}"))
            .collect(),
        format!(
            "partitions cover this month and {} ahead",
            ctx.config.audit.partitions_ahead_months
        ),
        |n| format!("{n} months have no partition: their records land in DEFAULT"),
    ))
}

async fn default_partition_empty(ctx: &Ctx) -> anyhow::Result<Finding> {
    let (rows, oldest): (i64, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as("select count(*), min(occurred_at) from audit_events_default")
            .fetch_one(&ctx.read)
            .await?;
    let evidence = serde_json::json!({ "rows": rows, "oldest": oldest });
    Ok(if rows > 0 {
        Finding::fail(format!(
            "{rows} records in the DEFAULT partition (a month had no partition)"
        ))
    } else {
        Finding::pass("the DEFAULT partition is empty")
    }
    .with(evidence))
}

async fn chains_intact(ctx: &Ctx) -> anyhow::Result<Finding> {
    let mut tenants = ctx.tenants().await?;
    if ctx.fast && tenants.len() > 20 {
        // A sample, different on every run.
        let start = (ctx.clock.now().timestamp() as usize) % tenants.len();
        tenants.rotate_left(start);
        tenants.truncate(20);
    }
    let mut conn = ctx.read.acquire().await?;
    let vault = Vault::connect(&ctx.config.vault)?;
    let mut digests = crate::verify::Digests::new(&vault);
    let mut links = 0;
    let mut violations = Vec::new();
    for tenant in &tenants {
        let report = crate::verify::full(&mut conn, &mut digests, *tenant).await?;
        links += report.links;
        if let Some(broken) = report.first_break {
            violations.push(format!(
                "tenant {}: broken at record {}: {}",
                tenant.0, broken.chain_seq, broken.reason
            ));
        }
    }
    Ok(Finding::from_violations(
        violations,
        format!("{} chains ({links} records) verify", tenants.len()),
        |n| format!("{n} audit chains are broken: records were changed, removed or cut"),
    ))
}

async fn no_dead_letters(ctx: &Ctx) -> anyhow::Result<Finding> {
    let keys: Option<Vec<String>> = ctx.tenant.map(|t| vec![t.0.to_string()]);
    let (count, oldest): (i64, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(
        "select count(*), min(received_at) from audit_dead_letters
         where $1::text[] is null or message_key = any($1)",
    )
    .bind(keys)
    .fetch_one(&ctx.read)
    .await?;
    let age_hours = oldest.map(|t| (ctx.clock.now() - t).num_hours());
    let evidence = serde_json::json!({ "dead_letters": count, "oldest_age_hours": age_hours });
    Ok(if count > 0 {
        Finding::fail(format!(
            "{count} audit records are in the dead letters (oldest {} hours): they are not in any chain",
            age_hours.unwrap_or(0)
        ))
    } else {
        Finding::pass("no dead letters")
    }
    .with(evidence))
}

async fn retired_digests(ctx: &Ctx) -> anyhow::Result<Finding> {
    let rows: Vec<(String, i32, serde_json::Value, String, String)> = sqlx::query_as(
        "select partition_name, retirement, digest, signature, signed_document
         from audit_retired_partitions order by 1, 2",
    )
    .fetch_all(&ctx.read)
    .await?;
    if rows.is_empty() {
        return Ok(Finding::pass("no partition has been retired yet"));
    }
    let vault = Vault::connect(&ctx.config.vault)?;
    let mut violations = Vec::new();
    for (name, retirement, digest, signature, document) in &rows {
        let partition = match retirement {
            1 => name.clone(),
            n => format!("{name} (retirement {n})"),
        };
        if serde_json::from_str::<serde_json::Value>(document)
            .ok()
            .as_ref()
            != Some(digest)
        {
            violations.push(format!(
                "{partition}: the stored digest differs from the signed document"
            ));
        } else if !vault.verify_digest(document.as_bytes(), signature).await? {
            violations.push(format!("{partition}: the signature does not verify"));
        }
    }
    Ok(Finding::from_violations(
        violations,
        format!(
            "{} retired partitions, each digest signed and verified",
            rows.len()
        ),
        |n| format!("{n} retired partitions lack a valid signed digest"),
    ))
}
