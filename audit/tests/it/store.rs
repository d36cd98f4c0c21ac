//! The store is append-only for the application roles.

use testkit::TestApp;

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
        let err = sqlx::query(sql)
            .execute(&mut *tx)
            .await
            .err()
            .unwrap_or_else(|| panic!("app role could: {sql}"));
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.to_string());
        assert_eq!(code.as_deref(), Some("42501"), "{sql}: {err}");
    }
    for sql in [
        "update audit_events set event_type = 'forged'",
        "delete from audit_events",
        "truncate audit_events",
    ] {
        let err = sqlx::query(sql)
            .execute(app.system.pool())
            .await
            .err()
            .unwrap_or_else(|| panic!("system role could: {sql}"));
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.to_string());
        assert_eq!(code.as_deref(), Some("42501"), "{sql}: {err}");
    }
}
