//! Consent changes: recorded only when they change something, required purposes kept, the
//! confirmation event PII-free, and a new major policy version asking again.

use serde_json::{Value, json};
use testkit::{TestApp, customer_body};

async fn put(
    app: &TestApp,
    path: &str,
    staff: &testkit::Staff,
    consents: Value,
) -> reqwest::Response {
    app.send(
        "PUT",
        path,
        staff,
        None,
        Some(&json!({ "consents": consents })),
    )
    .await
}

fn granted(overview: &Value, purpose: &str) -> Option<bool> {
    overview["consents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["purpose"] == purpose)
        .map(|c| c["granted"].as_bool().unwrap())
}

async fn count(app: &TestApp, sql: &'static str, tenant: platform::id::TenantId) -> i64 {
    sqlx::query_scalar(sql)
        .bind(tenant)
        .fetch_one(app.system.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_staff_member_changes_their_own_choices_and_only_changes_are_recorded() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let mine: Value = app
        .get_as("/api/v1/me/consents", &owner.bearer())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(granted(&mine, "marketing"), Some(false));
    assert_eq!(mine["reconsent_required"], false);
    let records = "select count(*) from consent_records where tenant_id = $1";
    let before = count(&app, records, merchant.tenant).await;

    let response = put(
        &app,
        "/api/v1/me/consents",
        owner,
        json!([{"purpose": "marketing", "granted": true}]),
    )
    .await;
    assert_eq!(response.status(), 200);
    let changed: Value = response.json().await.unwrap();
    assert_eq!(granted(&changed, "marketing"), Some(true));
    assert_eq!(
        granted(&changed, "account"),
        Some(true),
        "others keep theirs"
    );
    assert_eq!(count(&app, records, merchant.tenant).await, before + 1);
    let event: Value = sqlx::query_scalar(
        "select payload from outbox where tenant_id = $1 and event_type = 'consent.changed'",
    )
    .bind(merchant.tenant)
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    assert_eq!(event["subject"], json!({"kind": "staff", "id": owner.id}));
    assert_eq!(
        event["changes"],
        json!([{"purpose": "marketing", "granted": true}])
    );
    assert!(!event.to_string().contains(&owner.email));

    // The same choice again records nothing and mails nothing.
    let response = put(
        &app,
        "/api/v1/me/consents",
        owner,
        json!([{"purpose": "marketing", "granted": true}]),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(count(&app, records, merchant.tenant).await, before + 1);
    let events =
        "select count(*) from outbox where tenant_id = $1 and event_type = 'consent.changed'";
    assert_eq!(count(&app, events, merchant.tenant).await, 1);

    // A required purpose is not withdrawn here, an unknown one is refused: nothing written.
    for (consents, names) in [
        (
            json!([{"purpose": "account", "granted": false}]),
            "`account` is required",
        ),
        (
            json!([{"purpose": "astrology", "granted": true}]),
            "is not a purpose of the policy in force",
        ),
        (
            json!([{"purpose": "analytics", "granted": true}, {"purpose": "analytics", "granted": false}]),
            "given twice",
        ),
    ] {
        let response = put(&app, "/api/v1/me/consents", owner, consents).await;
        assert_eq!(response.status(), 422);
        let problem: Value = response.json().await.unwrap();
        assert!(
            problem["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(names),
            "{problem}"
        );
        // What the caller sent is never echoed back (it may be anything, personal data too).
        assert!(!problem.to_string().contains("astrology"), "{problem}");
    }
    assert_eq!(count(&app, records, merchant.tenant).await, before + 1);
    let response = app
        .client
        .put(app.url("/api/v1/me/consents"))
        .json(&json!({"consents": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn a_new_major_policy_version_asks_for_consent_again_until_it_is_given() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    // The owner's account consent as if given under an earlier major version (0.9): the
    // policy in force (1.0) is then a new major version for them.
    let mut tx = app.tenant_tx(merchant.tenant).await;
    sqlx::query(
        "insert into consent_records (tenant_id, id, subject_id, subject_kind, purpose, policy_version, granted, method, recorded_at)
         values ($1, $2, $3, 'staff', 'account', '0.9', true, 'signup', now())",
    )
    .bind(merchant.tenant)
    .bind(uuid::Uuid::now_v7())
    .bind(owner.id)
    .execute(&mut *tx)
    .await
    .unwrap();
    testkit::audited(&mut tx, "test.backdated_consent").await;
    tx.commit().await.unwrap();
    let me: Value = app
        .get_as("/api/v1/me", &owner.bearer())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["reconsent_required"], true, "{me}");

    // Confirming the same choice records it under the version in force.
    let response = put(
        &app,
        "/api/v1/me/consents",
        owner,
        json!([{"purpose": "account", "granted": true}]),
    )
    .await;
    assert_eq!(response.status(), 200);
    let overview: Value = response.json().await.unwrap();
    assert_eq!(overview["reconsent_required"], false);
    let me: Value = app
        .get_as("/api/v1/me", &owner.bearer())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["reconsent_required"], false);
}

#[tokio::test]
async fn staff_record_a_customers_changed_choices_and_another_tenant_gets_404() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let other = app.merchant().await;
    let cashier = app.staff(&merchant, platform::Role::Cashier).await;
    let response = app
        .send(
            "POST",
            "/api/v1/customers",
            &cashier,
            None,
            Some(&customer_body("consent@example.id")),
        )
        .await;
    let customer: Value = response.json().await.unwrap();
    let path = format!(
        "/api/v1/customers/{}/consents",
        customer["id"].as_str().unwrap()
    );
    let response = put(
        &app,
        &path,
        &cashier,
        json!([{"purpose": "receipt_email", "granted": false}]),
    )
    .await;
    assert_eq!(response.status(), 200);
    let overview: Value = response.json().await.unwrap();
    assert_eq!(granted(&overview, "receipt_email"), Some(false));
    assert_eq!(granted(&overview, "orders"), Some(true));
    let method: String = sqlx::query_scalar(
        "select method from consent_records where tenant_id = $1 and purpose = 'receipt_email' order by recorded_at desc limit 1",
    )
    .bind(merchant.tenant)
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    assert_eq!(method, "api");
    let response = put(
        &app,
        &path,
        &cashier,
        json!([{"purpose": "orders", "granted": false}]),
    )
    .await;
    assert_eq!(response.status(), 422);

    let before = app.outbox_count(merchant.tenant).await;
    assert_eq!(app.get_as(&path, &other.owner.bearer()).await.status(), 404);
    let response = put(
        &app,
        &path,
        &other.owner,
        json!([{"purpose": "marketing", "granted": true}]),
    )
    .await;
    assert_eq!(response.status(), 404);
    assert_eq!(app.outbox_count(merchant.tenant).await, before);
    let read: Value = app
        .get_as(&path, &cashier.bearer())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(granted(&read, "marketing"), Some(false));
}

fn awaiting(overview: &Value, purpose: &str) -> Option<bool> {
    overview["consents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["purpose"] == purpose)
        .map(|c| c["awaiting_confirmation"].as_bool().unwrap())
}

#[tokio::test]
async fn marketing_granted_by_staff_counts_only_once_the_customer_confirms_it() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let cashier = app.staff(&merchant, platform::Role::Cashier).await;
    let email = format!("optin.{}@example.id", uuid::Uuid::now_v7().simple());
    let customer = app.customer(&cashier, &customer_body(&email)).await;
    let id: uuid::Uuid = customer["id"].as_str().unwrap().parse().unwrap();
    let path = format!("/api/v1/customers/{id}/consents");
    let grant = json!([{"purpose": "marketing", "granted": true}]);
    let response = put(&app, &path, &cashier, grant.clone()).await;
    assert_eq!(response.status(), 200);
    let overview: Value = response.json().await.unwrap();
    assert_eq!(granted(&overview, "marketing"), Some(false));
    assert_eq!(awaiting(&overview, "marketing"), Some(true));
    let asked = || {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from outbox where tenant_id = $1 and event_type = 'consent.confirmation_requested'",
        )
        .bind(merchant.tenant)
        .fetch_one(app.system.pool())
    };
    assert_eq!(asked().await.unwrap(), 1);
    // Saying yes again for them records and mails nothing new.
    assert_eq!(
        put(&app, &path, &cashier, grant.clone()).await.status(),
        200
    );
    assert_eq!(asked().await.unwrap(), 1);
    let mut tx = app.tenant_tx(merchant.tenant).await;
    let recipients = users::consent::customers_granting(&mut tx, "marketing")
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(!recipients.contains(&platform::pii::SubjectId(id)));

    // Staff take it back before the customer answers: the link no longer applies.
    let token = app
        .subject_token(merchant.tenant, id, "consent.confirmation_requested")
        .await;
    let confirm = json!({"token": token});
    put(
        &app,
        &path,
        &cashier,
        json!([{"purpose": "marketing", "granted": false}]),
    )
    .await;
    let stale = app
        .post_json("/api/v1/consents/confirm", None, &confirm)
        .await;
    assert_eq!(stale.status(), 400);
    assert_eq!(
        stale.json::<Value>().await.unwrap()["code"],
        "invalid_token"
    );

    // Asked again while that link is still open: no second mail, and the link works again.
    put(&app, &path, &cashier, grant).await;
    assert_eq!(asked().await.unwrap(), 1);
    let confirmed = app
        .post_json("/api/v1/consents/confirm", None, &confirm)
        .await;
    assert_eq!(confirmed.status(), 200);
    let read: Value = app
        .get_as(&path, &cashier.bearer())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(granted(&read, "marketing"), Some(true));
    assert_eq!(awaiting(&read, "marketing"), Some(false));
    let (method, actor): (String, String) = sqlx::query_as(
        "select c.method, o.actor->>'kind' from consent_records c
         join outbox o on o.tenant_id = c.tenant_id and o.payload->'resource'->>'id' = c.id::text
         where c.tenant_id = $1 and c.purpose = 'marketing' order by c.recorded_at desc limit 1",
    )
    .bind(merchant.tenant)
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    assert_eq!(
        (method.as_str(), actor.as_str()),
        ("confirmation", "subject")
    );
    let mut tx = app.tenant_tx(merchant.tenant).await;
    let recipients = users::consent::customers_granting(&mut tx, "marketing")
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(recipients.contains(&platform::pii::SubjectId(id)));
    let garbage = app
        .post_json("/api/v1/consents/confirm", None, &json!({"token": "nope"}))
        .await;
    assert_eq!(garbage.status(), 400);
}

/// Consent evidence is append-only for the request path: what was recorded cannot be rewritten
/// or removed by the application, only added to.
#[tokio::test]
async fn consent_records_cannot_be_changed_or_removed_by_the_application() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let evidence = || async {
        sqlx::query_scalar::<_, Option<String>>(
            "select string_agg(row_to_json(c)::text, ',' order by row_to_json(c)::text)
             from consent_records c where tenant_id = $1",
        )
        .bind(merchant.tenant)
        .fetch_one(app.system.pool())
        .await
        .unwrap()
        .expect("onboarding records the owner's consent")
    };
    let before = evidence().await;
    for sql in [
        "update consent_records set granted = not granted where tenant_id = $1",
        "delete from consent_records where tenant_id = $1",
    ] {
        let mut tx = app.tenant_tx(merchant.tenant).await;
        let err = sqlx::query(sql)
            .bind(merchant.tenant)
            .execute(&mut *tx)
            .await
            .expect_err(sql);
        assert_eq!(
            err.as_database_error().and_then(|e| e.code()).as_deref(),
            Some("42501"),
            "{sql}: {err}"
        );
    }
    assert_eq!(evidence().await, before, "nothing changed");
}
