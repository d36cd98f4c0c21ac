//! Tenant isolation: the catalog says RLS is forced and the roles are weak, and probes run as
//! the app role show that it really sees one tenant at a time.

use futures::FutureExt;
use platform::compliance::{Check, Ctx, Finding, Group::TenantIsolation, Severity};
use sqlx::Row;

use super::{check, deployment_roles, role_of, tenant_tables};

pub(super) fn checks() -> Vec<Check> {
    vec![
        check(
            "tenancy.rls_forced",
            TenantIsolation,
            "Row-level security is enabled and forced on every tenant table",
            Severity::Critical,
            1.0,
            false,
            |c| rls_forced(c).boxed(),
        ),
        check(
            "tenancy.policies_isolate",
            TenantIsolation,
            "The app role meets exactly the tenant policy; the verifier's policy only reads",
            Severity::Critical,
            1.0,
            false,
            |c| policies_isolate(c).boxed(),
        ),
        check(
            "tenancy.roles_own_nothing",
            TenantIsolation,
            "The app, worker and verifier roles own no object",
            Severity::High,
            0.8,
            false,
            |c| roles_own_nothing(c).boxed(),
        ),
        check(
            "tenancy.roles_unprivileged",
            TenantIsolation,
            "The deployment's roles are not superusers, cannot bypass RLS, create roles or databases",
            Severity::Critical,
            1.0,
            false,
            |c| roles_unprivileged(c).boxed(),
        ),
        check(
            "tenancy.no_rls_bypass",
            TenantIsolation,
            "No other role that can bypass row-level security holds a privilege on a tenant table",
            Severity::High,
            0.9,
            false,
            |c| no_rls_bypass(c).boxed(),
        ),
        check(
            "tenancy.security_definer_allowlist",
            TenantIsolation,
            "Every SECURITY DEFINER function is allowed and pins its search_path",
            Severity::High,
            0.8,
            false,
            |c| security_definer(c).boxed(),
        ),
        check(
            "tenancy.app_sees_one_tenant",
            TenantIsolation,
            "A tenant transaction of the app role sees no row of another tenant",
            Severity::Critical,
            1.0,
            false,
            |c| app_sees_one_tenant(c).boxed(),
        ),
        check(
            "tenancy.app_without_tenant_sees_nothing",
            TenantIsolation,
            "The app role without a tenant sees no tenant row at all",
            Severity::Critical,
            1.0,
            false,
            |c| app_without_tenant(c).boxed(),
        ),
        check(
            "tenancy.verifier_read_only",
            TenantIsolation,
            "The verifier's role can read every table and write none",
            Severity::High,
            0.7,
            false,
            |c| verifier_read_only(c).boxed(),
        ),
        check(
            "tenancy.no_public_grants",
            TenantIsolation,
            "No table grants anything to PUBLIC",
            Severity::High,
            0.8,
            false,
            |c| no_public_grants(c).boxed(),
        ),
    ]
}

/// The SECURITY DEFINER functions Warung defines on purpose (docs/ARCHITECTURE.md, Tenancy).
pub const SECURITY_DEFINER_ALLOWED: [&str; 3] = [
    "tenant_by_slug",
    "audit_ensure_partitions",
    "audit_drop_partition",
];

async fn rls_forced(ctx: &Ctx) -> anyhow::Result<Finding> {
    let app = role_of(&ctx.config.database.app_url).unwrap_or_default();
    let system = role_of(&ctx.config.database.system_url).unwrap_or_default();
    let rows = sqlx::query(
        "select c.relname::text as name, c.relrowsecurity as enabled, c.relforcerowsecurity as forced,
                c.relispartition as partition,
                (has_table_privilege($1, c.oid, 'SELECT, INSERT, UPDATE, DELETE')
                 or has_table_privilege($2, c.oid, 'SELECT, INSERT, UPDATE, DELETE')) as granted
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'public' and c.relkind in ('r', 'p')
           and (c.relname = 'tenants' or exists (select 1 from pg_attribute a where a.attrelid = c.oid
                and a.attname = 'tenant_id' and not a.attisdropped))
         order by 1",
    )
    .bind(&app)
    .bind(&system)
    .fetch_all(&ctx.read)
    .await?;
    let mut violations = Vec::new();
    for row in &rows {
        let name: String = row.get("name");
        if !row.get::<bool, _>("enabled") {
            violations.push(format!("{name}: row-level security not enabled"));
        } else if !row.get::<bool, _>("forced") {
            // A partition that no service role can reach directly is read through its parent,
            // where RLS is forced (the audit store's maintenance functions need the owner's view).
            let owner_only = row.get::<bool, _>("partition") && !row.get::<bool, _>("granted");
            if !owner_only {
                violations.push(format!("{name}: row-level security not forced"));
            }
        }
    }
    Ok(Finding::from_violations(
        violations,
        format!("{} tenant tables, every one enabled and forced", rows.len()),
        |n| format!("{n} tenant tables are not protected by forced row-level security"),
    )
    .with_field("tables", rows.len()))
}

async fn policies_isolate(ctx: &Ctx) -> anyhow::Result<Finding> {
    let app = role_of(&ctx.config.database.app_url).unwrap_or_default();
    let compliance = ctx
        .config
        .database
        .compliance_url
        .as_ref()
        .and_then(role_of)
        .unwrap_or_else(|| "warung_compliance".into());
    let rows = sqlx::query(
        "select c.relname::text as name, p.polname::text as policy, p.polcmd::text as cmd,
                0 = any(p.polroles) as public,
                $1::regrole = any(p.polroles) as app,
                $2::regrole = any(p.polroles) as verifier,
                pg_get_expr(p.polqual, p.polrelid) as qual,
                pg_get_expr(p.polwithcheck, p.polrelid) as checks,
                p.polpermissive as permissive
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
         join pg_policy p on p.polrelid = c.oid
         where n.nspname = 'public' and c.relkind in ('r', 'p')",
    )
    .bind(&app)
    .bind(&compliance)
    .fetch_all(&ctx.read)
    .await?;
    let tables = tenant_tables(&ctx.read).await?;
    let mut violations = Vec::new();
    for (table, column) in &tables {
        let isolating = format!("({column} = warung_current_tenant())");
        let mine: Vec<_> = rows
            .iter()
            .filter(|r| &r.get::<String, _>("name") == table)
            .collect();
        let app_policies: Vec<_> = mine
            .iter()
            .filter(|r| r.get::<bool, _>("app") || r.get::<bool, _>("public"))
            .collect();
        let exact = app_policies.len() == 1
            && app_policies.iter().all(|r| {
                r.get::<bool, _>("permissive")
                    && !r.get::<bool, _>("public")
                    && r.get::<Option<String>, _>("qual").as_deref() == Some(&isolating)
                    && matches!(r.get::<Option<String>, _>("checks").as_deref(), Some(c) if c == isolating)
            });
        if !exact {
            violations.push(format!(
                "{table}: the app role meets {} policies, not exactly the tenant one",
                app_policies.len()
            ));
        }
        for r in mine.iter().filter(|r| r.get::<bool, _>("verifier")) {
            if r.get::<String, _>("cmd") != "r" {
                violations.push(format!(
                    "{table}: policy {} lets the verifier do more than read",
                    r.get::<String, _>("policy")
                ));
            }
        }
    }
    Ok(Finding::from_violations(
        violations,
        format!(
            "{} tenant tables: one isolating policy for the app role each",
            tables.len()
        ),
        |n| format!("{n} policy problems on tenant tables"),
    ))
}

async fn roles_own_nothing(ctx: &Ctx) -> anyhow::Result<Finding> {
    let roles = deployment_roles(ctx);
    let owned: Vec<(String, String)> = sqlx::query_as(
        "select r.rolname::text, o.kind || ' ' || o.name
         from pg_roles r
         join (select relowner as owner, 'relation' as kind, relname::text as name from pg_class
               union all select proowner, 'function', proname::text from pg_proc
               union all select nspowner, 'schema', nspname::text from pg_namespace
               union all select typowner, 'type', typname::text from pg_type where typrelid = 0
               union all select datdba, 'database', datname::text from pg_database
                   where datname = current_database()) o on o.owner = r.oid
         where r.rolname = any($1)
         order by 1, 2",
    )
    .bind(&roles)
    .fetch_all(&ctx.read)
    .await?;
    Ok(Finding::from_violations(
        owned
            .into_iter()
            .map(|(r, o)| format!("{r} owns {o}"))
            .collect(),
        format!("{} own nothing", roles.join(", ")),
        |n| {
            format!(
                "the deployment's roles own {n} objects (an owner escapes FORCE'd RLS and grants)"
            )
        },
    ))
}

async fn roles_unprivileged(ctx: &Ctx) -> anyhow::Result<Finding> {
    let roles = deployment_roles(ctx);
    let rows = sqlx::query(
        "select r.rolname::text as name, r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolcreatedb,
                r.rolreplication,
                coalesce((select array_agg(p.rolname::text order by p.rolname) from pg_roles p
                          where p.oid <> r.oid and (p.rolsuper or p.rolbypassrls)
                            and pg_has_role(r.oid, p.oid, 'MEMBER')), '{}') as powerful_memberships
         from pg_roles r where r.rolname = any($1) order by 1",
    )
    .bind(&roles)
    .fetch_all(&ctx.read)
    .await?;
    let mut violations = Vec::new();
    for name in &roles {
        if !rows.iter().any(|r| &r.get::<String, _>("name") == name) {
            violations.push(format!("{name}: role does not exist"));
        }
    }
    for row in &rows {
        let name: String = row.get("name");
        for (attr, label) in [
            ("rolsuper", "SUPERUSER"),
            ("rolbypassrls", "BYPASSRLS"),
            ("rolcreaterole", "CREATEROLE"),
            ("rolcreatedb", "CREATEDB"),
            ("rolreplication", "REPLICATION"),
        ] {
            if row.get::<bool, _>(attr) {
                violations.push(format!("{name}: {label}"));
            }
        }
        for role in row.get::<Vec<String>, _>("powerful_memberships") {
            violations.push(format!(
                "{name}: member of {role}, which is superuser or BYPASSRLS"
            ));
        }
    }
    Ok(Finding::from_violations(
        violations,
        format!(
            "{}: no superuser, BYPASSRLS, CREATEROLE, CREATEDB or REPLICATION",
            roles.join(", ")
        ),
        |n| format!("{n} dangerous role attributes"),
    ))
}

async fn no_rls_bypass(ctx: &Ctx) -> anyhow::Result<Finding> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "select r.rolname::text, count(*)
         from pg_roles r
         cross join pg_class c join pg_namespace n on n.oid = c.relnamespace
         where r.rolbypassrls and not r.rolsuper and n.nspname = 'public'
           and c.relkind in ('r', 'p') and c.relowner <> r.oid and c.relrowsecurity
           and has_table_privilege(r.oid, c.oid, 'SELECT, INSERT, UPDATE, DELETE')
         group by 1 order by 1",
    )
    .fetch_all(&ctx.read)
    .await?;
    Ok(Finding::from_violations(
        rows.into_iter()
            .map(|(role, n)| {
                format!("{role} bypasses RLS and holds privileges on {n} tenant tables")
            })
            .collect(),
        "no role bypasses row-level security on a tenant table",
        |n| format!("{n} roles can read or write every tenant's rows past RLS"),
    ))
}

async fn security_definer(ctx: &Ctx) -> anyhow::Result<Finding> {
    let rows: Vec<(String, Option<Vec<String>>)> = sqlx::query_as(
        "select p.proname::text, p.proconfig::text[]
         from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname = 'public' and p.prosecdef order by 1",
    )
    .fetch_all(&ctx.read)
    .await?;
    let mut violations = Vec::new();
    for (name, config) in &rows {
        if !SECURITY_DEFINER_ALLOWED.contains(&name.as_str()) {
            violations.push(format!(
                "{name}: SECURITY DEFINER but not on the allow-list"
            ));
        }
        let pinned = config.iter().flatten().any(|setting| {
            setting
                .strip_prefix("search_path=")
                .is_some_and(|path| !path.contains("$user"))
        });
        if !pinned {
            violations.push(format!("{name}: search_path not pinned"));
        }
    }
    Ok(Finding::from_violations(
        violations,
        format!(
            "{} SECURITY DEFINER functions, all allowed, each with a pinned search_path",
            rows.len()
        ),
        |n| format!("{n} SECURITY DEFINER problems"),
    ))
}

/// The tenant tables the app role may read.
async fn app_readable(ctx: &Ctx) -> anyhow::Result<Vec<(String, &'static str)>> {
    let app = role_of(&ctx.config.database.app_url).unwrap_or_default();
    let mut tables = Vec::new();
    for (table, column) in tenant_tables(&ctx.read).await? {
        let readable: bool =
            sqlx::query_scalar("select has_table_privilege($1, $2::regclass, 'SELECT')")
                .bind(&app)
                .bind(&table)
                .fetch_one(&ctx.read)
                .await?;
        if readable {
            tables.push((table, column));
        }
    }
    Ok(tables)
}

async fn app_sees_one_tenant(ctx: &Ctx) -> anyhow::Result<Finding> {
    // A random tenant that exists (or a fresh id, on an empty deployment).
    let probe: uuid::Uuid = sqlx::query_scalar(
        "select coalesce((select id from tenants order by random() limit 1), gen_random_uuid())",
    )
    .fetch_one(&ctx.read)
    .await?;
    let tables = app_readable(ctx).await?;
    let mut tx = ctx.app.global().begin().await?;
    sqlx::query("select set_config('app.tenant_id', $1, true)")
        .bind(probe.to_string())
        .execute(&mut *tx)
        .await?;
    let mut violations = Vec::new();
    for (table, column) in &tables {
        let foreign: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "select count(*) from {table} where {column} is distinct from $1"
        )))
        .bind(probe)
        .fetch_one(&mut *tx)
        .await?;
        if foreign > 0 {
            violations.push(format!("{table}: {foreign} rows of other tenants visible"));
        }
    }
    tx.rollback().await?;
    Ok(Finding::from_violations(
        violations,
        format!(
            "as tenant {probe}, the app role saw no other tenant's row in {} tables",
            tables.len()
        ),
        |n| format!("the app role sees other tenants' rows in {n} tables"),
    )
    .with_field("probe_tenant", probe))
}

async fn app_without_tenant(ctx: &Ctx) -> anyhow::Result<Finding> {
    let tables = app_readable(ctx).await?;
    let mut tx = ctx.app.global().begin().await?;
    let mut violations = Vec::new();
    for (table, _) in &tables {
        let visible: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select count(*) from {table}")))
                .fetch_one(&mut *tx)
                .await?;
        if visible > 0 {
            violations.push(format!("{table}: {visible} rows visible without a tenant"));
        }
    }
    tx.rollback().await?;
    Ok(Finding::from_violations(
        violations,
        format!(
            "without a tenant the app role saw nothing in {} tables",
            tables.len()
        ),
        |n| format!("{n} tables show rows to the app role with no tenant set"),
    ))
}

async fn verifier_read_only(ctx: &Ctx) -> anyhow::Result<Finding> {
    let me: String = sqlx::query_scalar("select current_user::text")
        .fetch_one(&ctx.read)
        .await?;
    let rows: Vec<(String, bool, bool)> = sqlx::query_as(
        "select c.relname::text,
                has_table_privilege(c.oid, 'SELECT'),
                has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm') order by 1",
    )
    .fetch_all(&ctx.read)
    .await?;
    let mut violations = Vec::new();
    for (table, read, write) in &rows {
        if *write {
            violations.push(format!("{table}: {me} may write"));
        }
        if !read {
            violations.push(format!(
                "{table}: {me} cannot read it, so no check can look inside"
            ));
        }
    }
    Ok(Finding::from_violations(
        violations,
        format!("{me} reads all {} tables and writes none", rows.len()),
        |n| format!("{n} problems with the verifier's own role"),
    ))
}

async fn no_public_grants(ctx: &Ctx) -> anyhow::Result<Finding> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "select c.relname::text, a.privilege_type::text
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
         cross join lateral aclexplode(c.relacl) a
         where n.nspname = 'public' and a.grantee = 0 order by 1, 2",
    )
    .fetch_all(&ctx.read)
    .await?;
    Ok(Finding::from_violations(
        rows.into_iter()
            .map(|(t, p)| format!("{t}: {p} to PUBLIC"))
            .collect(),
        "no table privilege is granted to PUBLIC",
        |n| format!("{n} privileges granted to every role (PUBLIC)"),
    ))
}
