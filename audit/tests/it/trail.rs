//! The owner's view of the audit trail, end to end: requests -> outbox -> relay -> Kafka ->
//! sink -> `GET /api/v1/audit/events`. A scenario's successful mutations each have audit rows
//! carrying their request id (`testkit::Scenario`); its failed requests have none; the chain
//! verifies.

use platform::Role;
use serde_json::{Value, json};
use testkit::Scenario;

use crate::pipeline::pipeline_app;

#[tokio::test]
async fn trail_the_owner_sees_one_row_per_change_and_a_verified_chain() {
    let app = pipeline_app().await;
    let merchant = app.merchant().await;
    let manager = app.staff(&merchant, Role::Manager).await;
    let owner = merchant.owner.bearer();

    let mut scenario = Scenario::default();
    let path = format!("/api/v1/users/{}", manager.id);
    let renamed = scenario
        .send(
            &app,
            "PATCH",
            &path,
            &owner,
            Some(json!({"full_name": "Siti Rahma"})),
        )
        .await;
    assert_eq!(renamed.status(), 200);
    let refused = scenario
        .send(
            &app,
            "PATCH",
            &format!("/api/v1/users/{}", merchant.owner.id),
            &owner,
            Some(json!({"role": "cashier"})),
        )
        .await;
    assert_eq!(refused.status(), 409);
    let forbidden = scenario
        .send(
            &app,
            "POST",
            "/api/v1/users/invitations",
            &manager.bearer(),
            Some(json!({"email": "boss@example.id", "role": "owner"})),
        )
        .await;
    assert_eq!(forbidden.status(), 403);
    let invited = scenario
        .send(
            &app,
            "POST",
            "/api/v1/users/invitations",
            &owner,
            Some(json!({"email": "kasir@example.id", "role": "cashier"})),
        )
        .await;
    assert_eq!(invited.status(), 201);
    let viewed = scenario.send(&app, "GET", &path, &owner, None).await;
    assert_eq!(viewed.status(), 200);
    scenario.assert_audited(&app, merchant.tenant).await;

    // The owner reads the trail: the rename names its fields, never their values.
    let events: Value = app
        .get_as(
            &format!(
                "/api/v1/audit/events?resource_kind=staff&resource_id={}&action=staff.updated",
                manager.id
            ),
            &owner,
        )
        .await
        .json()
        .await
        .unwrap();
    let items = events["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{events}");
    assert_eq!(items[0]["changed_fields"], json!(["full_name"]));
    assert_eq!(items[0]["actor"]["id"], merchant.owner.id.to_string());
    assert!(!events.to_string().contains("Siti Rahma"));
    // The display read was recorded with its purpose.
    let reads: Value = app
        .get_as(
            &format!(
                "/api/v1/audit/events?action=pii.accessed&resource_id={}",
                manager.id
            ),
            &owner,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        reads["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["details"]["purpose"] == "staff_management")
    );

    // Paging walks the whole trail newest first without repeats.
    let mut cursor: Option<String> = None;
    let mut seqs = Vec::new();
    loop {
        let url = match &cursor {
            Some(c) => format!("/api/v1/audit/events?limit=5&cursor={c}"),
            None => "/api/v1/audit/events?limit=5".to_owned(),
        };
        let page: Value = app.get_as(&url, &owner).await.json().await.unwrap();
        seqs.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["chain_seq"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");
    assert!(seqs.len() > 10);

    let verified: Value = app
        .get_as("/api/v1/audit/verify", &owner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(verified["intact"], true, "{verified}");
    assert_eq!(
        app.get_as("/api/v1/audit/verify", &manager.bearer())
            .await
            .status(),
        403
    );

    // Another tenant's owner sees none of it.
    let other = app.merchant().await;
    let theirs: Value = app
        .get_as(
            &format!("/api/v1/audit/events?resource_id={}", manager.id),
            &other.owner.bearer(),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["items"], json!([]));
}
