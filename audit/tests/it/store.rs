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
        // Records reach the store only through the sink: the request path cannot forge one.
        "insert into audit_events (tenant_id, event_id, chain_seq, occurred_at, event_type, actor,
             envelope, prev_hash, hash)
         select warung_current_tenant(), gen_random_uuid(), 999999, now(), 'forged', '{}', '{}',
             '\\x00', '\\x00'",
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

/// `GET /api/v1/audit/verify` as the shop's owner.
async fn owners_verification(app: &TestApp, merchant: &testkit::Merchant) -> serde_json::Value {
    app.get_as("/api/v1/audit/verify", &merchant.owner.bearer())
        .await
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn verification_reports_a_tenants_dead_letters_as_a_break() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    app.deliver_audit().await;
    let verified = owners_verification(&app, &merchant).await;
    assert_eq!(verified["intact"], true, "{verified}");
    let other = app.merchant().await;

    sqlx::query(
        "insert into audit_dead_letters (topic, kafka_partition, kafka_offset, message_key, reason, payload, tenant_id)
         values ('warung.audit.v1', 0, 0, $1, 'not storable: test', null, $2)",
    )
    .bind(merchant.tenant.to_string())
    .bind(merchant.tenant)
    .execute(app.system.pool())
    .await
    .unwrap();
    let report = audit::verify::tenant(&app.system, &app.state.vault, merchant.tenant)
        .await
        .unwrap();
    assert_eq!(
        report.first_break.map(|b| b.reason),
        Some("records in the dead letters")
    );
    let verified = owners_verification(&app, &merchant).await;
    assert_eq!(verified["intact"], false, "{verified}");
    // Another shop's dead letter is not theirs.
    app.deliver_audit().await;
    let theirs = owners_verification(&app, &other).await;
    assert_eq!(theirs["intact"], true, "{theirs}");
}
