//! The verifier's own checks, by group. Each is a [`CheckSpec`] and one async function; the
//! modules' checks come from their probes.

use platform::compliance::{Check, CheckFn, CheckSpec, Group, Severity};

mod keys;
mod logs;
mod outbox;
mod pii;
mod privacy;
mod retention;
mod tenancy;
mod transport;

/// A check from its parts (keeps the tables below one line per fact).
pub(crate) fn check(
    id: &'static str,
    group: Group,
    title: &'static str,
    severity: Severity,
    impact: f32,
    tenant_data: bool,
    run: CheckFn,
) -> Check {
    Check {
        spec: CheckSpec {
            id,
            group,
            title,
            severity,
            impact,
            tenant_data,
        },
        run,
    }
}

pub fn builtin() -> Vec<Check> {
    [
        tenancy::checks(),
        pii::checks(),
        outbox::checks(),
        keys::checks(),
        privacy::checks(),
        retention::checks(),
        transport::checks(),
        logs::checks(),
    ]
    .concat()
}

/// The tables of the public schema that hold tenant rows (a `tenant_id` column, or `tenants`
/// itself), with the column that names the tenant. Partitions are read through their parent.
pub(crate) async fn tenant_tables(
    read: &sqlx::PgPool,
) -> anyhow::Result<Vec<(String, &'static str)>> {
    let rows: Vec<(String, bool)> = sqlx::query_as(
        "select c.relname::text, exists (select 1 from pg_attribute a where a.attrelid = c.oid
                 and a.attname = 'tenant_id' and not a.attisdropped)
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relispartition
         order by 1",
    )
    .fetch_all(read)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(name, has_tenant)| match (name.as_str(), has_tenant) {
            ("tenants", _) => Some((name, "id")),
            (_, true) => Some((name, "tenant_id")),
            _ => None,
        })
        .collect())
}

/// The role a database URL logs in as.
pub(crate) fn role_of(url: &secrecy::SecretString) -> Option<String> {
    use secrecy::ExposeSecret;
    let url = url::Url::parse(url.expose_secret()).ok()?;
    Some(url.username().to_owned()).filter(|u| !u.is_empty())
}

/// The deployment's roles: the app's, the workers' and the verifier's own.
pub(crate) fn deployment_roles(ctx: &platform::compliance::Ctx) -> Vec<String> {
    let db = &ctx.config.database;
    let mut roles: Vec<String> = [
        Some(&db.app_url),
        Some(&db.system_url),
        db.compliance_url.as_ref(),
    ]
    .into_iter()
    .flatten()
    .filter_map(role_of)
    .collect();
    roles.sort();
    roles.dedup();
    roles
}
