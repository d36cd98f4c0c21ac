//! Audit volume: one access record for a page of a list, which a person's export and the
//! owner's trail still find by each person it showed.

use platform::{
    Role,
    authz::BoxFuture,
    pii::{Subject, SubjectId, SubjectKind},
    privacy::{Section, SubjectDataProvider},
};
use serde_json::{Value, json};
use testkit::{TestApp, customer_body};

fn export<'a>(
    app: &'a TestApp,
    tx: &'a mut platform::db::TenantTx,
    id: &str,
) -> BoxFuture<'a, platform::Result<Vec<Section>>> {
    let subject = Subject {
        id: SubjectId(id.parse().unwrap()),
        kind: SubjectKind::Customer,
    };
    audit::privacy::Provider.export(&app.state, tx, subject)
}

#[tokio::test]
async fn a_page_of_customers_is_one_access_record_that_each_of_them_finds() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let cashier = app.staff(&merchant, Role::Cashier).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let email = format!("page{i}.{}@example.id", uuid::Uuid::now_v7().simple());
        let customer = app.customer(&cashier, &customer_body(&email)).await;
        ids.push(customer["id"].as_str().unwrap().to_owned());
    }
    ids.sort();
    let listed = app
        .send("GET", "/api/v1/customers?limit=50", &cashier, None, None)
        .await;
    assert_eq!(listed.status(), 200);
    let page: Value = listed.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 3, "{page}");

    // One record for the page, listing everyone on it; none per person.
    let records: Vec<Value> = sqlx::query_scalar(
        "select payload from outbox where tenant_id = $1 and event_type = 'pii.accessed'
           and payload ? 'subjects'",
    )
    .bind(merchant.tenant)
    .fetch_all(app.system.pool())
    .await
    .unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    let mut subjects: Vec<String> = serde_json::from_value(records[0]["subjects"].clone()).unwrap();
    subjects.sort();
    assert_eq!(subjects, ids);
    assert_eq!(records[0]["resource"], json!({"kind": "customer"}));
    assert_eq!(records[0]["details"]["purpose"], "customer_service");

    // The owner's trail finds the page record by any one of them. (A pipeline test's relay
    // running meanwhile may carry the record through Kafka instead: wait for it.)
    for id in &ids {
        let mut pages = 0;
        for _ in 0..50 {
            app.deliver_audit().await;
            let found: Value = app
                .get_as(
                    &format!("/api/v1/audit/events?action=pii.accessed&resource_id={id}"),
                    &merchant.owner.bearer(),
                )
                .await
                .json()
                .await
                .unwrap();
            pages = found["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["subjects"].as_array().is_some_and(|s| s.len() == 3))
                .count();
            if pages > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert_eq!(pages, 1, "the page record is not found by {id}");
    }

    // A person's export lists the opening under their own id and names nobody else.
    let mut tx = app.tenant_tx(merchant.tenant).await;
    let sections = export(&app, &mut tx, &ids[1]).await.unwrap();
    tx.rollback().await.unwrap();
    let text = serde_json::to_string(&sections).unwrap();
    let trail = &sections[0].records;
    assert!(
        trail.iter().any(|r| r["purpose"] == "customer_service"
            && r["action"] == "pii.accessed"
            && r["resource_id"] == ids[1].as_str()),
        "{text}"
    );
    assert!(!text.contains(&ids[0]) && !text.contains(&ids[2]), "{text}");
}
