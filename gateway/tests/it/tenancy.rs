//! Isolation by construction: row-level security and role grants. These fail if a policy,
//! `FORCE ROW LEVEL SECURITY` or a grant is removed or widened.

use platform::id::TenantId;
use sqlx::{AssertSqlSafe, Row};
use testkit::TestApp;

fn is_permission_denied(err: &sqlx::Error) -> bool {
    // 42501 insufficient_privilege
    err.as_database_error().and_then(|e| e.code()).as_deref() == Some("42501")
}

fn is_rls_violation(err: &sqlx::Error) -> bool {
    // 42501 as well: "new row violates row-level security policy"
    is_permission_denied(err)
}

#[tokio::test]
async fn a_tenant_transaction_sees_only_its_own_tenant_row_even_without_a_where() {
    let app = TestApp::spawn().await;
    let a = app.tenant().await;
    let b = app.tenant().await;

    let mut tx = app.tenant_tx(b.id).await;
    let rows = sqlx::query("select id from tenants")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    let ids: Vec<TenantId> = rows.iter().map(|r| r.get("id")).collect();
    assert_eq!(ids, vec![b.id], "tenant B saw {ids:?} (A = {})", a.id);

    // Nor can it touch A's row by naming it.
    let updated = sqlx::query("update tenants set business_name = 'pwned' where id = $1")
        .bind(a.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 0);
    tx.rollback().await.unwrap();

    // Without a tenant transaction, the app role sees nothing at all.
    let pool =
        sqlx::PgPool::connect_lazy(&testkit::stack_env()["WARUNG_DATABASE__APP_URL"]).unwrap();
    let visible: i64 = sqlx::query_scalar("select count(*) from tenants")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(visible, 0);
}

#[tokio::test]
async fn a_tenant_transaction_cannot_create_rows_for_another_tenant() {
    let app = TestApp::spawn().await;
    let b = app.tenant().await;
    let mut tx = app.tenant_tx(b.id).await;
    let other = TenantId::new();
    let err = sqlx::query("insert into tenants (id, slug, business_name, locale, country) values ($1, $2, 'x', 'id', 'ID')")
        .bind(other)
        .bind(format!("t-{}", other.0.simple()))
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(is_rls_violation(&err), "{err}");
}

/// Every table with a `tenant_id` column follows the pattern: RLS enabled AND forced, with the
/// tenant_isolation policy. New tables are checked automatically.
#[tokio::test]
async fn every_tenant_table_has_forced_row_level_security() {
    let app = TestApp::spawn().await;
    let owner = app.owner_pool().await;
    // Every policy that applies to the app role on a table with a tenant_id column, with its
    // expressions: a policy named right but matching every row (or granted to PUBLIC) fails.
    let rows = sqlx::query(
        "select c.relname::text as name, c.relrowsecurity as enabled, c.relforcerowsecurity as forced,
                c.relispartition as partition,
                has_table_privilege('warung_app', c.oid, 'SELECT, INSERT, UPDATE, DELETE')
                    or has_table_privilege('warung_system', c.oid, 'SELECT, INSERT, UPDATE, DELETE') as granted,
                coalesce(array_agg(p.polname::text) filter (where p.polname is not null), '{}') as policies,
                coalesce(array_agg(pg_get_expr(p.polqual, p.polrelid)) filter (where p.polname is not null), '{}') as quals,
                coalesce(array_agg(pg_get_expr(p.polwithcheck, p.polrelid)) filter (where p.polname is not null), '{}') as checks
         from pg_class c
         join pg_namespace n on n.oid = c.relnamespace
         left join pg_policy p on p.polrelid = c.oid
              and (0 = any(p.polroles) or 'warung_app'::regrole = any(p.polroles))
         where n.nspname = 'public' and c.relkind in ('r', 'p')
           and exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped)
         group by c.relname, c.relrowsecurity, c.relforcerowsecurity, c.relispartition, c.oid",
    )
    .fetch_all(&owner)
    .await
    .unwrap();
    assert!(
        rows.iter()
            .any(|r| r.get::<String, _>("name") == "subject_keys"),
        "catalogue query found no tenant tables"
    );
    let isolating = "(tenant_id = warung_current_tenant())";
    for row in &rows {
        let name: String = row.get("name");
        assert!(row.get::<bool, _>("enabled"), "{name}: RLS not enabled");
        // A partition nobody but the owner can reach directly may leave FORCE to its parent
        // (the audit store's maintenance functions, run as owner, must see all its rows).
        let owner_only_partition =
            row.get::<bool, _>("partition") && !row.get::<bool, _>("granted");
        assert!(
            row.get::<bool, _>("forced") || owner_only_partition,
            "{name}: RLS not forced"
        );
        let policies: Vec<String> = row.get("policies");
        let quals: Vec<Option<String>> = row.get("quals");
        let checks: Vec<Option<String>> = row.get("checks");
        assert_eq!(
            policies,
            vec!["tenant_isolation".to_owned()],
            "{name}: the app role must meet exactly one policy"
        );
        assert_eq!(
            quals,
            vec![Some(isolating.to_owned())],
            "{name}: policy does not isolate reads"
        );
        assert_eq!(
            checks,
            vec![Some(isolating.to_owned())],
            "{name}: policy does not isolate writes"
        );
    }
    // The tenants table is keyed by `id`, and isolated the same way.
    let tenants = sqlx::query(
        "select relrowsecurity, relforcerowsecurity from pg_class where relname = 'tenants'",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    assert!(tenants.get::<bool, _>(0) && tenants.get::<bool, _>(1));
}

/// The helper every tenant table uses really isolates: a scratch table made with it hides tenant
/// A's rows from tenant B, even for a query with no `where tenant_id`.
#[tokio::test]
async fn the_tenant_table_pattern_isolates_rows() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant().await, app.tenant().await);
    let table = app.scratch_table("note text").await;

    let mut tx = app.tenant_tx(a.id).await;
    sqlx::query(AssertSqlSafe(format!(
        "insert into {table} (tenant_id, id, note) values ($1, $2, 'a')"
    )))
    .bind(a.id)
    .bind(uuid::Uuid::now_v7())
    .execute(&mut *tx)
    .await
    .unwrap();
    testkit::audited(&mut tx, "test.change").await;
    tx.commit().await.unwrap();

    let mut tx = app.tenant_tx(b.id).await;
    let seen: i64 = sqlx::query_scalar(AssertSqlSafe(format!("select count(*) from {table}")))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let forged = sqlx::query(AssertSqlSafe(format!(
        "insert into {table} (tenant_id, id, note) values ($1, $2, 'forged')"
    )))
    .bind(a.id)
    .bind(uuid::Uuid::now_v7())
    .execute(&mut *tx)
    .await;
    drop(tx);

    let mut tx = app.tenant_tx(a.id).await;
    let own: i64 = sqlx::query_scalar(AssertSqlSafe(format!("select count(*) from {table}")))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    drop(tx);
    app.drop_table(&table).await;

    assert_eq!(seen, 0, "tenant B saw tenant A's rows");
    assert!(is_rls_violation(&forged.unwrap_err()));
    assert_eq!(own, 1);
}

#[tokio::test]
async fn the_app_role_cannot_change_what_it_must_not() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    let attempts = [
        ("delete a tenant", "delete from tenants where id = $1"),
        (
            "change a tenant id",
            "update tenants set id = gen_random_uuid() where id = $1",
        ),
        (
            "change a slug",
            "update tenants set slug = 'stolen-slug' where id = $1",
        ),
        ("truncate tenants", "truncate tenants"),
        ("edit migration history", "delete from _sqlx_migrations"),
        ("create a table", "create table app_made (id int)"),
        ("drop a policy", "drop policy tenant_self on tenants"),
        (
            "turn RLS off",
            "alter table tenants no force row level security",
        ),
    ];
    for (what, sql) in attempts {
        let mut tx = app.tenant_tx(t.id).await;
        let query = sqlx::query(sql);
        let query = if sql.contains("$1") {
            query.bind(t.id)
        } else {
            query
        };
        let err = query
            .execute(&mut *tx)
            .await
            .err()
            .unwrap_or_else(|| panic!("app role could {what}"));
        let db_code = err
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.to_string());
        // 42501 permission denied; 42P01/42704 would mean the object is hidden, also a refusal,
        // but ownership checks answer 42501 ("must be owner").
        assert_eq!(db_code.as_deref(), Some("42501"), "{what}: {err}");
    }
    // What it may do, it can.
    let mut tx = app.tenant_tx(t.id).await;
    let updated = sqlx::query("update tenants set business_name = 'Toko Baru' where id = $1")
        .bind(t.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 1);
}

#[tokio::test]
async fn login_slug_lookup_answers_one_slug_only() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    let pool =
        sqlx::PgPool::connect_lazy(&testkit::stack_env()["WARUNG_DATABASE__APP_URL"]).unwrap();
    let found: Option<TenantId> = sqlx::query_scalar("select id from tenant_by_slug($1)")
        .bind(&t.slug)
        .fetch_optional(&pool)
        .await
        .unwrap();
    assert_eq!(found, Some(t.id));
    let none: Option<TenantId> = sqlx::query_scalar("select id from tenant_by_slug($1)")
        .bind("no-such-shop")
        .fetch_optional(&pool)
        .await
        .unwrap();
    assert_eq!(none, None);
}

#[tokio::test]
async fn the_system_role_reads_across_tenants_but_cannot_delete() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant().await, app.tenant().await);
    let pool = app.system.pool();
    let seen: i64 = sqlx::query_scalar("select count(*) from tenants where id = any($1)")
        .bind(vec![a.id, b.id])
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(seen, 2);
    let err = sqlx::query("delete from tenants where id = $1")
        .bind(a.id)
        .execute(pool)
        .await
        .unwrap_err();
    assert!(is_permission_denied(&err), "{err}");
}
