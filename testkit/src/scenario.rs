//! A scenario's requests checked against the audit store: every mutating endpoint must leave
//! audit records, tagged with the request id, for each request that succeeded, and none for a
//! request that failed. Needs an app with the relay and the audit sink running.

use std::collections::{BTreeMap, BTreeSet};

use platform::id::TenantId;
use serde_json::Value;

use crate::TestApp;

/// The requests of a scenario, by the request id each was sent with (`scn-...`).
#[derive(Debug, Default)]
pub struct Scenario {
    requests: BTreeMap<String, (String, u16)>,
}

impl Scenario {
    pub async fn send(
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
            .header("x-request-id", &id)
            // Money-moving POSTs require one; every other route ignores it.
            .header("idempotency-key", &id);
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
    pub async fn assert_audited(&self, app: &TestApp, tenant: TenantId) {
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
            .bind(tenant)
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
