//! Claims on the delivery log, at the SQL level (no SMTP): only the holder of a live claim
//! sends and records an outcome.

use std::time::Duration;

use notifications::{
    Recipient, Template,
    domain::Plan,
    repo::{self, Outcome},
};
use platform::{events::Actor, pii::SubjectKind};
use serde_json::json;
use testkit::TestApp;

/// A mail queued held (never due for the background senders), so only this test claims it.
async fn held(app: &TestApp, merchant: &testkit::Merchant, plan: &Plan) -> repo::DeliveryId {
    repo::queue(
        &app.system,
        merchant.tenant,
        uuid::Uuid::now_v7(),
        "direct",
        plan,
        &json!({}),
        Some(repo::held()),
    )
    .await
    .unwrap()
    .unwrap()
}

#[tokio::test]
async fn a_claim_taken_over_after_its_lease_can_neither_send_nor_settle() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let plan = Plan {
        template: Template::PasswordReset,
        recipient: Recipient {
            kind: SubjectKind::Staff,
            id: merchant.owner.id.into(),
        },
    };
    let lease = Duration::from_secs(60);
    let id = held(&app, &merchant, &plan).await;
    let only = Some((merchant.tenant, id));
    let first = repo::claim(&app.system, 1, lease, only)
        .await
        .unwrap()
        .remove(0);
    assert!(repo::renew(&app.system, &first, lease).await.unwrap());
    assert!(
        repo::claim(&app.system, 1, lease, only)
            .await
            .unwrap()
            .is_empty(),
        "a live claim is not taken"
    );

    // The first sender stalls past its lease; a second takes the mail over.
    sqlx::query("update notification_deliveries set lease_until = now() - interval '1 second' where tenant_id = $1 and id = $2")
        .bind(merchant.tenant)
        .bind(id.0)
        .execute(app.system.pool())
        .await
        .unwrap();
    let second = repo::claim(&app.system, 1, lease, only)
        .await
        .unwrap()
        .remove(0);
    assert_ne!(second.lease_token, first.lease_token);
    assert_eq!(second.attempts, 2);
    assert!(
        !repo::renew(&app.system, &first, lease).await.unwrap(),
        "the stale sender must not send"
    );
    assert!(
        !repo::settle(&app.system, &first, &Outcome::Sent)
            .await
            .unwrap()
    );
    assert!(
        repo::settle(&app.system, &second, &Outcome::Sent)
            .await
            .unwrap()
    );
    let status: String = sqlx::query_scalar(
        "select status from notification_deliveries where tenant_id = $1 and id = $2",
    )
    .bind(merchant.tenant)
    .bind(id.0)
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    assert_eq!(status, "sent");

    // Erasure cancels what waits, not what is being sent by a live claim.
    let waiting = held(&app, &merchant, &plan).await;
    let sending = held(&app, &merchant, &plan).await;
    let in_flight = repo::claim(&app.system, 1, lease, Some((merchant.tenant, sending)))
        .await
        .unwrap()
        .remove(0);
    let mut tx = app.tenant_tx(merchant.tenant).await;
    let cancelled = notifications::cancel_for_subject(
        &mut tx,
        Actor::System { name: "test" },
        merchant.owner.id.into(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // At least the waiting one (a mail test's intake may have queued the owner's own mail too).
    assert!(cancelled >= 1);
    let status: String =
        sqlx::query_scalar("select status from notification_deliveries where id = $1")
            .bind(waiting.0)
            .fetch_one(app.system.pool())
            .await
            .unwrap();
    assert_eq!(status, "cancelled");
    assert!(repo::renew(&app.system, &in_flight, lease).await.unwrap());
    let done = Outcome::Cancelled {
        reason: "test".into(),
    };
    assert!(repo::settle(&app.system, &in_flight, &done).await.unwrap());
    assert!(
        repo::claim(&app.system, 1, lease, Some((merchant.tenant, waiting)))
            .await
            .unwrap()
            .is_empty(),
        "a cancelled mail is not claimed"
    );
}
