//! The outbox: an audit record commits with its change or not at all, and a transaction that
//! changed data cannot commit without one.

use platform::{
    db::CommitError,
    events::{self, Actor, AuditRecord, Resource},
    id::UserId,
};
use sqlx::AssertSqlSafe;
use testkit::TestApp;

async fn count(app: &TestApp, sql: String, tenant: platform::id::TenantId) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(tenant)
        .fetch_one(app.system.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_write_without_an_audit_record_cannot_commit() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    let table = app.scratch_table("note text").await;

    let mut tx = app.tenant_tx(t.id).await;
    sqlx::query(AssertSqlSafe(format!(
        "insert into {table} (tenant_id, id, note) values ($1, $2, 'x')"
    )))
    .bind(t.id)
    .bind(uuid::Uuid::now_v7())
    .execute(&mut *tx)
    .await
    .unwrap();
    let err = tx.commit().await.unwrap_err();
    assert!(matches!(err, CommitError::Unaudited), "{err:?}");
    assert_eq!(
        count(
            &app,
            format!("select count(*) from {table} where tenant_id = $1"),
            t.id
        )
        .await,
        0
    );
    assert_eq!(platform::Error::from(CommitError::Unaudited).status(), 500);

    // A read-only transaction commits without one.
    let mut tx = app.tenant_tx(t.id).await;
    sqlx::query("select count(*) from tenants")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    app.drop_table(&table).await;
}

#[tokio::test]
async fn the_audit_record_commits_with_its_change_and_carries_no_values() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    let table = app.scratch_table("note text").await;
    let staff = UserId::new();
    let row = uuid::Uuid::now_v7();

    let write = |commit: bool| {
        let (app, table) = (&app, &table);
        async move {
            let mut tx = app.tenant_tx(t.id).await;
            sqlx::query(AssertSqlSafe(format!("insert into {table} (tenant_id, id, note) values ($1, $2, 'secret-note@example.id')")))
                .bind(t.id)
                .bind(uuid::Uuid::now_v7())
                .execute(&mut *tx)
                .await
                .unwrap();
            let record = AuditRecord::new(
                Actor::User { id: staff },
                "note.created",
                Resource::new("note", row),
            )
            .fields(&["note"]);
            let id = events::emit_audit(&mut tx, &record).await.unwrap();
            if commit {
                tx.commit().await.unwrap()
            } else {
                tx.rollback().await.unwrap()
            }
            id
        }
    };
    let rolled_back = write(false).await;
    let committed = write(true).await;

    let outbox = |id: events::EventId| {
        let app = &app;
        async move {
            sqlx::query_as::<_, (String, String, serde_json::Value, serde_json::Value)>(
                "select topic, event_type, actor, payload from outbox where event_id = $1",
            )
            .bind(id)
            .fetch_optional(app.system.pool())
            .await
            .unwrap()
        }
    };
    assert!(
        outbox(rolled_back).await.is_none(),
        "a rolled-back change left its audit record"
    );
    let (topic, event_type, actor, payload) =
        outbox(committed).await.expect("audit record committed");
    assert_eq!(topic, events::AUDIT_TOPIC);
    assert_eq!(event_type, "note.created");
    assert_eq!(actor["kind"], "user");
    assert_eq!(actor["id"], staff.to_string());
    assert_eq!(payload["resource"]["kind"], "note");
    assert_eq!(payload["resource"]["id"], row.to_string());
    assert_eq!(payload["changed_fields"][0], "note");
    assert!(
        !payload.to_string().contains("secret-note"),
        "values must not reach the outbox: {payload}"
    );
    app.drop_table(&table).await;
}
