//! The owner's view of the audit trail, end to end: requests -> outbox -> relay -> Kafka ->
//! sink -> `GET /api/v1/audit/events`. A scenario's successful mutations each have audit rows
//! carrying their request id; its failed requests have none; the chain verifies.

use std::collections::{BTreeMap, BTreeSet};

use platform::Role;
use serde_json::{Value, json};
use testkit::{Merchant, TestApp};

use crate::pipeline::pipeline_app;

/// The requests of a scenario, by the request id each was sent with.
#[derive(Default)]
struct Scenario {
    requests: BTreeMap<String, (String, u16)>,
}

impl Scenario {
    async fn send(
        &mut self,
        app: &TestApp,
        method: &str,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let id = format!("scn-{}", uuid::Uuid::now_v7().simple());
        let mut request = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .header("authorization", bearer)
            .header("x-request-id", &id);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        self.requests
            .insert(id, (format!("{method} {path}"), response.status().as_u16()));
        response
    }

    /// Every successful mutation has at least one audit row with its request id, every failed
    /// request none, and no audit row names a request the scenario did not make.
    async fn assert_audited(&self, app: &TestApp, merchant: &Merchant) {
        let expected: BTreeSet<&str> = self
            .requests
            .iter()
            .filter(|(_, (what, status))| !what.starts_with("GET") && *status < 300)
            .map(|(id, _)| id.as_str())
            .collect();
        let mut seen: BTreeMap<String, i64> = BTreeMap::new();
        for _ in 0..150 {
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "select request_id, count(*) from audit_events
                 where tenant_id = $1 and request_id like 'scn-%' group by request_id",
            )
            .bind(merchant.tenant)
            .fetch_all(app.system.pool())
            .await
            .unwrap();
            seen = rows.into_iter().collect();
            if expected.iter().all(|id| seen.contains_key(*id)) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        for (id, (what, status)) in &self.requests {
            let rows = seen.get(id).copied().unwrap_or(0);
            if what.starts_with("GET") {
                continue;
            }
            if *status < 300 {
                assert!(rows >= 1, "{what} ({status}) has no audit row");
            } else {
                assert_eq!(rows, 0, "{what} failed ({status}) but left audit rows");
            }
        }
        for id in seen.keys() {
            assert!(
                self.requests.contains_key(id),
                "audit row for unknown request {id}"
            );
        }
    }
}

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
    scenario.assert_audited(&app, &merchant).await;

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
