//! The store is append-only for the application roles.

use testkit::TestApp;

/// `sql` must be refused with 42501 (permission denied, or the append-only trigger).
async fn refused<'c, E: sqlx::PgExecutor<'c>>(executor: E, who: &str, sql: &'static str) {
    let err = sqlx::query(sql)
        .execute(executor)
        .await
        .err()
        .unwrap_or_else(|| panic!("{who} could: {sql}"));
    let code = err
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.to_string());
    assert_eq!(code.as_deref(), Some("42501"), "{who}: {sql}: {err}");
}

#[tokio::test]
async fn the_app_roles_cannot_rewrite_the_audit_store() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    for sql in [
        "update audit_events set event_type = 'forged'",
        "delete from audit_events",
        "truncate audit_events",
        "delete from audit_events_default",
        "update audit_chain_heads set chain_seq = 0",
    ] {
        let mut tx = app.tenant_tx(t.id).await;
        refused(&mut *tx, "app role", sql).await;
    }
    for sql in [
        "update audit_events set event_type = 'forged'",
        "delete from audit_events",
        "truncate audit_events",
    ] {
        refused(app.system.pool(), "system role", sql).await;
    }
}
