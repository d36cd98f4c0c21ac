use std::time::Duration;

use notifications::{Recipient, Template};
use platform::{
    events::Actor,
    id::TenantId,
    pii::{SubjectId, SubjectKind},
};
use serde_json::{Value, json};
use testkit::{
    FaultProxy, Merchant, TestApp, customer_body,
    mail::{Mail, mails_to, wait_for_mail},
    signup_body,
};

const WITHIN: Duration = Duration::from_secs(60);

/// Waits until the mail pipeline has nothing in flight (outbox sent, every event taken by the
/// intake, no mail due): absences are asserted after it, never after a sleep.
async fn settled(app: &TestApp) {
    app.mail_settled(WITHIN).await;
}

/// An app that publishes its outbox and runs the notification workers; its mail goes through
/// `proxy` when given (so a test can cut SMTP), with fast retries.
async fn mail_app(proxy: Option<&FaultProxy>, extra: &[(&'static str, &str)]) -> TestApp {
    let mut builder = TestApp::builder()
        .isolated()
        .set("WARUNG_OUTBOX__RELAY", "true")
        .set("WARUNG_NOTIFICATIONS__BACKOFF_BASE_MS", "200")
        .set("WARUNG_NOTIFICATIONS__BACKOFF_MAX_MS", "1000")
        .set("WARUNG_NOTIFICATIONS__POLL_MS", "200")
        .with_module_workers();
    if let Some(proxy) = proxy {
        builder = builder.set("WARUNG_SMTP__PORT", proxy.addr.port().to_string());
    }
    for (key, value) in extra {
        builder = builder.set(key, *value);
    }
    builder.start().await
}

async fn smtp_proxy() -> FaultProxy {
    let port = std::env::var("WARUNG_SMTP__PORT").unwrap_or_else(|_| "1025".into());
    FaultProxy::start(format!("127.0.0.1:{port}").parse().unwrap()).await
}

async fn sign_up(app: &TestApp, body: &Value) -> (TenantId, String) {
    let response = app
        .post_json("/api/v1/onboarding/merchants", None, body)
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let created: Value = response.json().await.unwrap();
    (
        created["tenant"]["id"].as_str().unwrap().parse().unwrap(),
        body["owner"]["email"].as_str().unwrap().to_owned(),
    )
}

async fn deliveries(app: &TestApp, merchant: &Merchant, query: &str) -> Vec<Value> {
    let response = app
        .get_as(
            &format!("/api/v1/notifications/deliveries?{query}"),
            &merchant.owner.bearer(),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let page: Value = response.json().await.unwrap();
    page["items"].as_array().unwrap().clone()
}

/// Polls the delivery log until `done` holds for the rows `query` selects.
async fn wait_deliveries(
    app: &TestApp,
    merchant: &Merchant,
    query: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let rows = deliveries(app, merchant, query).await;
        if done(&rows) {
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries never got there: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn invite(app: &TestApp, merchant: &Merchant, email: &str) -> SubjectId {
    let response = app
        .post_json(
            "/api/v1/users/invitations",
            Some(&merchant.owner.bearer()),
            &json!({"email": email, "role": "cashier", "locale": "id"}),
        )
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let invited: Value = response.json().await.unwrap();
    SubjectId(invited["user_id"].as_str().unwrap().parse().unwrap())
}

/// Rings up `lines` for `customer` and pays it in one payment.
async fn paid_order(
    app: &TestApp,
    merchant: &Merchant,
    lines: Value,
    customer: &Value,
    payment: Value,
) {
    let order = app
        .order(
            &merchant.owner,
            &json!({"lines": lines, "customer_id": customer}),
        )
        .await;
    let key = uuid::Uuid::now_v7().to_string();
    let response = app
        .send(
            "POST",
            &format!("/api/v1/orders/{}/payments", order["id"].as_str().unwrap()),
            &merchant.owner,
            Some(&key),
            Some(&payment),
        )
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

fn unique_email(prefix: &str) -> String {
    format!("{prefix}.{}@example.id", uuid::Uuid::now_v7().simple())
}

#[tokio::test]
async fn mail_verification_arrives_in_the_owners_language_with_a_link_that_works() {
    let app = mail_app(None, &[]).await;
    let mut english = signup_body();
    english["locale"] = json!("en");
    let (_, en_email) = sign_up(&app, &english).await;
    let indonesian = signup_body();
    let (_, id_email) = sign_up(&app, &indonesian).await;

    let en = wait_for_mail(&en_email, 1, WITHIN).await;
    let id = wait_for_mail(&id_email, 1, WITHIN).await;
    let business = english["business_name"].as_str().unwrap();
    assert_eq!(en[0].subject, format!("Verify your email for {business}"));
    assert!(
        en[0].text.starts_with("Hello Budi Santoso,"),
        "{}",
        en[0].text
    );
    assert!(
        id[0].subject.starts_with("Verifikasi email Anda untuk"),
        "{}",
        id[0].subject
    );
    assert!(id[0].html.contains("<html lang=\"id\">"));
    assert!(en[0].from.starts_with(&format!("{business} via Warung <")));
    assert!(en[0].to.ends_with(&format!("<{en_email}>")));

    // The link points at the portal with the token in the fragment; the token verifies.
    let link = en[0].link();
    assert!(
        link.starts_with(&format!(
            "{}portal/#/verify-email?token=",
            app.state.config.http.public_base_url
        )),
        "{link}"
    );
    let response = app
        .post_json(
            "/api/v1/auth/verify-email",
            None,
            &json!({"token": en[0].token()}),
        )
        .await;
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    let owner = app
        .login(
            english["slug"].as_str().unwrap(),
            &en_email,
            testkit::PASSWORD,
        )
        .await;
    let me: Value = app
        .get_as(
            "/api/v1/me",
            &format!("Bearer {}", owner["access_token"].as_str().unwrap()),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["email_verified"], true, "{me}");
    // ... and the rest of the life of a session (issue #5's flow, end to end).
    let refreshed = app
        .post_json(
            "/api/v1/auth/refresh",
            None,
            &json!({"refresh_token": owner["refresh_token"]}),
        )
        .await;
    assert_eq!(refreshed.status(), 200);
    let refreshed: Value = refreshed.json().await.unwrap();
    let bearer = format!("Bearer {}", refreshed["access_token"].as_str().unwrap());
    let response = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(app.get_as("/api/v1/me", &bearer).await.status(), 401);
    let reused = app
        .post_json(
            "/api/v1/auth/refresh",
            None,
            &json!({"refresh_token": refreshed["refresh_token"]}),
        )
        .await;
    assert_eq!(reused.status(), 401);

    // The log shows it sent, once, without the address; opening the address was audited.
    let merchant = app.verified_merchant().await;
    wait_for_mail(&merchant.owner.email, 1, WITHIN).await;
    let rows = wait_deliveries(&app, &merchant, "template=email_verification", |rows| {
        rows.iter().any(|r| r["status"] == "sent")
    })
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["attempts"], 1);
    assert_eq!(rows[0]["recipient"]["id"], merchant.owner.id.to_string());
    assert!(
        !serde_json::to_string(&rows)
            .unwrap()
            .contains(&merchant.owner.email)
    );
    let stored: Vec<String> = sqlx::query_scalar(
        "select context::text || coalesce(last_error, '') from notification_deliveries where tenant_id = $1",
    )
    .bind(merchant.tenant)
    .fetch_all(app.system.pool())
    .await
    .unwrap();
    assert!(
        stored
            .iter()
            .all(|s| !s.contains(&merchant.owner.email) && !s.contains("budi"))
    );
    let audited: i64 = sqlx::query_scalar(
        "select count(*) from outbox where tenant_id = $1 and event_type = 'pii.accessed'
           and payload->'resource'->>'id' = $2 and payload->'details'->>'purpose' = 'notification'",
    )
    .bind(merchant.tenant)
    .bind(merchant.owner.id.to_string())
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    assert_eq!(audited, 1);
    let metrics = app.state.metrics.render();
    assert!(
        metrics.contains("notification_email_sent_total{template=\"email_verification\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn mail_receipt_goes_only_to_a_customer_who_consented() {
    let app = mail_app(None, &[]).await;
    let merchant = app.verified_merchant().await;
    let product = app.product(&merchant.owner, 18_000, 10).await;
    let line = json!([{"product_id": product["id"], "quantity": 2}]);

    let declined_email = unique_email("no-receipt");
    let mut declined = customer_body(&declined_email);
    declined["consents"][1]["granted"] = json!(false);
    let consenting_email = unique_email("receipt");
    let mut ids = Vec::new();
    for body in [declined, customer_body(&consenting_email)] {
        let customer = app.customer(&merchant.owner, &body).await;
        ids.push(customer["id"].clone());
    }
    // The declining customer's order is paid first: events of one tenant keep their order, so
    // once the second receipt is queued the first event has been taken too.
    for customer in &ids {
        let cash = json!({"method": "cash", "amount_minor": 50_000});
        paid_order(&app, &merchant, line.clone(), customer, cash).await;
    }
    let mail = wait_for_mail(&consenting_email, 1, WITHIN).await;
    // The receipt the till prints on 80 mm paper, in the customer's language (English).
    assert!(
        mail[0].subject.contains("receipt INV/"),
        "{}",
        mail[0].subject
    );
    let row = |left: &str, right: &str| {
        format!("{left}{}{right}", " ".repeat(48 - left.len() - right.len()))
    };
    for line in [
        row("  2 x IDR 18,000", "IDR 36,000"),
        row("TOTAL", "IDR 36,000"),
        row("Cash", "IDR 50,000"),
        row("Change", "IDR 14,000"),
    ] {
        assert!(
            mail[0].text.contains(&line),
            "{line:?} missing: {}",
            mail[0].text
        );
    }
    let rows = wait_deliveries(&app, &merchant, "template=order_receipt", |rows| {
        rows.iter().all(|r| r["status"] == "sent") && !rows.is_empty()
    })
    .await;
    assert_eq!(
        rows.len(),
        1,
        "one receipt, for the consenting customer: {rows:#?}"
    );
    assert_eq!(rows[0]["recipient"]["id"], ids[1]);
    settled(&app).await;
    assert!(mails_to(&declined_email).is_empty());
    assert_eq!(mails_to(&consenting_email).len(), 1);
}

#[tokio::test]
async fn mail_for_an_event_delivered_twice_is_sent_once() {
    let app = mail_app(None, &[]).await;
    let merchant = app.verified_merchant().await;
    let email = unique_email("twice");
    invite(&app, &merchant, &email).await;
    let first = wait_for_mail(&email, 1, WITHIN).await;
    // Publish the same event again through the real relay, as a crash before the offset
    // commit (or a relay retry) would.
    let republished = sqlx::query(
        "update outbox set published_at = null where tenant_id = $1 and event_type = 'staff.invited'",
    )
    .bind(merchant.tenant)
    .execute(app.system.pool())
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(republished, 1);
    // Then a later event of the same tenant: once its mail is out, the repeat was consumed.
    let later = unique_email("later");
    invite(&app, &merchant, &later).await;
    wait_for_mail(&later, 1, WITHIN).await;
    let published: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "select published_at from outbox where tenant_id = $1 and event_type = 'staff.invited' order by seq limit 1",
    )
    .bind(merchant.tenant)
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    assert!(published.is_some(), "the repeat went out again");
    settled(&app).await;
    let mails = mails_to(&email);
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert_eq!(mails[0].message_id, first[0].message_id);
    let rows = deliveries(&app, &merchant, "template=staff_invitation").await;
    assert_eq!(rows.len(), 2);
}

#[tokio::test]
async fn mail_queued_while_smtp_is_down_all_arrives_once_when_it_returns() {
    let proxy = smtp_proxy().await;
    let app = mail_app(
        Some(&proxy),
        &[("WARUNG_NOTIFICATIONS__MAX_ATTEMPTS", "100")],
    )
    .await;
    let merchant = app.verified_merchant().await;
    wait_for_mail(&merchant.owner.email, 1, WITHIN).await;
    proxy.cut();
    let emails: Vec<String> = (0..8).map(|i| unique_email(&format!("burst{i}"))).collect();
    for email in &emails {
        invite(&app, &merchant, email).await;
    }
    // Every one of them fails, more than once, while SMTP is down; none arrives.
    let rows = wait_deliveries(&app, &merchant, "template=staff_invitation", |rows| {
        rows.len() == 8
            && rows.iter().all(|r| {
                r["status"] == "pending"
                    && r["attempts"].as_i64().unwrap() >= 2
                    && r["last_error"] == "smtp_connection"
            })
    })
    .await;
    assert!(rows.iter().all(|r| r["next_attempt_at"].is_string()));
    assert!(emails.iter().all(|e| mails_to(e).is_empty()));
    assert!(
        app.state
            .metrics
            .render()
            .contains("notification_email_retries_total{template=\"staff_invitation\"}")
    );

    proxy.restore();
    for email in &emails {
        wait_for_mail(email, 1, WITHIN).await;
    }
    wait_deliveries(&app, &merchant, "template=staff_invitation", |rows| {
        rows.iter().all(|r| r["status"] == "sent")
    })
    .await;
    settled(&app).await;
    for email in &emails {
        assert_eq!(
            mails_to(email).len(),
            1,
            "{email} got its mail more than once"
        );
    }
}

#[tokio::test]
async fn mail_that_gave_up_is_dead_with_its_reason_and_can_be_retried() {
    let proxy = smtp_proxy().await;
    let app = mail_app(Some(&proxy), &[("WARUNG_NOTIFICATIONS__MAX_ATTEMPTS", "2")]).await;
    let merchant = app.merchant().await;
    let other = app.merchant().await;
    wait_for_mail(&merchant.owner.email, 1, WITHIN).await;
    proxy.cut();
    let email = unique_email("dead");
    invite(&app, &merchant, &email).await;
    let rows = wait_deliveries(&app, &merchant, "status=dead", |rows| rows.len() == 1).await;
    let dead = &rows[0];
    assert_eq!(dead["attempts"], 2);
    assert_eq!(dead["last_error"], "smtp_connection");
    assert_eq!(dead["template"], "staff_invitation");
    proxy.restore();
    // The sender is at work again: a later mail goes out, and the dead one stays unsent.
    let later = unique_email("later");
    invite(&app, &merchant, &later).await;
    wait_for_mail(&later, 1, WITHIN).await;
    settled(&app).await;
    assert!(
        mails_to(&email).is_empty(),
        "dead mail is not retried by itself"
    );

    let id = dead["id"].as_str().unwrap();
    let path = format!("/api/v1/notifications/deliveries/{id}/retry");
    let cashier = app.staff(&merchant, platform::Role::Cashier).await;
    let response = app.send("POST", &path, &cashier, None, None).await;
    assert_eq!(response.status(), 403);
    let response = app.send("POST", &path, &other.owner, None, None).await;
    assert_eq!(response.status(), 404, "another tenant's mail");
    let response = app.send("POST", &path, &merchant.owner, None, None).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let retried: Value = response.json().await.unwrap();
    assert_eq!(retried["attempts"], 0);
    assert_eq!(retried["last_error"], Value::Null);
    wait_for_mail(&email, 1, WITHIN).await;
    wait_deliveries(
        &app,
        &merchant,
        &format!("event_id={}", dead["event_id"].as_str().unwrap()),
        |rows| rows[0]["status"] == "sent",
    )
    .await;
    let response = app.send("POST", &path, &merchant.owner, None, None).await;
    assert_eq!(response.status(), 409, "a sent mail is not retried");
    let audited: i64 = sqlx::query_scalar(
        "select count(*) from outbox where tenant_id = $1 and event_type = 'notification.retried'",
    )
    .bind(merchant.tenant)
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    assert_eq!(audited, 1);
    let response = app
        .get_as(
            "/api/v1/notifications/deliveries?template=nope",
            &merchant.owner.bearer(),
        )
        .await;
    assert_eq!(response.status(), 422);
    let response = app
        .get_as("/api/v1/notifications/deliveries", &cashier.bearer())
        .await;
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn mail_hostile_business_name_is_escaped_in_html() {
    let app = mail_app(None, &[]).await;
    let mut body = signup_body();
    body["business_name"] = json!("<script>alert('x')</script> & <b>Co</b>");
    let (_, email) = sign_up(&app, &body).await;
    let mail: Mail = wait_for_mail(&email, 1, WITHIN).await.remove(0);
    assert!(!mail.html.contains("<script>"), "{}", mail.html);
    assert!(!mail.html.contains("<b>Co"));
    assert!(mail.html.contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2f;script&gt; &amp; &lt;b&gt;Co&lt;&#x2f;b&gt;"), "{}", mail.html);
    assert!(
        mail.subject
            .ends_with("<script>alert('x')</script> & <b>Co</b>"),
        "a subject is text"
    );
}

#[tokio::test]
async fn mail_to_an_erased_person_is_cancelled_except_the_erasure_completed_mail() {
    let proxy = smtp_proxy().await;
    // Slow retries: a failed mail waits for the test, not for the sender.
    let app = mail_app(
        Some(&proxy),
        &[
            ("WARUNG_NOTIFICATIONS__BACKOFF_BASE_MS", "120000"),
            ("WARUNG_NOTIFICATIONS__BACKOFF_MAX_MS", "120000"),
        ],
    )
    .await;
    let merchant = app.verified_merchant().await;
    wait_for_mail(&merchant.owner.email, 1, WITHIN).await;
    proxy.cut();
    let staff_email = unique_email("erased-staff");
    let staff = invite(&app, &merchant, &staff_email).await;
    let pending = |rows: &[Value]| rows.len() == 1 && rows[0]["last_error"] == "smtp_connection";
    wait_deliveries(
        &app,
        &merchant,
        &format!("recipient_id={}", staff.0),
        pending,
    )
    .await;
    proxy.restore();

    // The privacy flow: what waits is cancelled, the completion mail leaves at once (once,
    // however often the flow is retried), then the key is shredded.
    let mut tx = app.tenant_tx(merchant.tenant).await;
    let cancelled =
        notifications::cancel_for_subject(&mut tx, Actor::System { name: "test" }, staff)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(cancelled, 1);
    let request = uuid::Uuid::now_v7();
    for _ in 0..2 {
        let sent = notifications::deliver_now(
            &app.state,
            &app.system,
            merchant.tenant,
            request,
            Recipient {
                kind: SubjectKind::Staff,
                id: staff,
            },
            Template::ErasureCompleted,
            json!({}),
        )
        .await
        .unwrap();
        assert!(sent);
    }
    app.state
        .pii
        .shred(
            &app.state.db,
            merchant.tenant,
            staff,
            Actor::System { name: "test" },
        )
        .await
        .unwrap();
    let mails = mails_to(&staff_email);
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert!(
        mails[0].subject.starts_with("Data Anda telah dihapus"),
        "{}",
        mails[0].subject
    );
    let rows = deliveries(&app, &merchant, &format!("recipient_id={}", staff.0)).await;
    let status = |template: &str| {
        rows.iter()
            .find(|r| r["template"] == template)
            .map(|r| (r["status"].clone(), r["last_error"].clone()))
            .unwrap()
    };
    assert_eq!(status("erasure_completed"), (json!("sent"), Value::Null));
    assert_eq!(
        status("staff_invitation"),
        (json!("cancelled"), json!("subject_erased"))
    );

    // A mail the privacy flow did not cancel finds the key gone when it is sent.
    let customer_email = unique_email("erased-customer");
    let customer = app
        .customer(&merchant.owner, &customer_body(&customer_email))
        .await;
    let customer_id = SubjectId(customer["id"].as_str().unwrap().parse().unwrap());
    proxy.cut();
    let product = app.product(&merchant.owner, 5_000, 5).await;
    let lines = json!([{"product_id": product["id"], "quantity": 1}]);
    let card = json!({"method": "card", "amount_minor": 5_000});
    paid_order(&app, &merchant, lines, &customer["id"], card).await;
    wait_deliveries(
        &app,
        &merchant,
        &format!("recipient_id={}", customer_id.0),
        pending,
    )
    .await;
    app.state
        .pii
        .shred(
            &app.state.db,
            merchant.tenant,
            customer_id,
            Actor::System { name: "test" },
        )
        .await
        .unwrap();
    proxy.restore();
    sqlx::query("update notification_deliveries set next_attempt_at = now() where tenant_id = $1 and recipient_id = $2")
        .bind(merchant.tenant)
        .bind(customer_id.0)
        .execute(app.system.pool())
        .await
        .unwrap();
    let rows = wait_deliveries(
        &app,
        &merchant,
        &format!("recipient_id={}", customer_id.0),
        |rows| rows[0]["status"] == "cancelled",
    )
    .await;
    assert_eq!(rows[0]["last_error"], "subject_erased");
    assert!(mails_to(&customer_email).is_empty());
}

/// The contract the privacy flow (#8) emits against: events naming a `subject`, with the facts
/// their mails show. Emitted here the way a module emits them, in a tenant transaction.
#[tokio::test]
async fn mail_for_privacy_events_follows_their_contract() {
    use platform::events::{self, AuditRecord, DomainEvent, Resource};

    let app = mail_app(None, &[]).await;
    let merchant = app.verified_merchant().await;
    let email = unique_email("subject");
    let customer = app.customer(&merchant.owner, &customer_body(&email)).await;
    let id: SubjectId = SubjectId(customer["id"].as_str().unwrap().parse().unwrap());
    let subject = json!({"kind": "customer", "id": id});
    let actor = Actor::System { name: "test" };
    let mut tx = app.tenant_tx(merchant.tenant).await;
    let sealed = app
        .state
        .pii
        .seal(
            &mut tx,
            platform::pii::Subject {
                id,
                kind: SubjectKind::Customer,
            },
            platform::events::sealed::PRIVACY_TOKEN,
            "privacy-token-123",
        )
        .await
        .unwrap();
    let expires =
        chrono::DateTime::from_timestamp((chrono::Utc::now().timestamp() / 60 + 24 * 60) * 60, 0)
            .unwrap();
    for (event_type, payload) in [
        (
            "privacy.request_received",
            json!({"subject": subject, "request_type": "export", "due_at": "2026-12-22T10:00:00Z"}),
        ),
        (
            "privacy.identity_check_requested",
            json!({"subject": subject, "request_type": "export", "token_sealed": sealed.to_base64(), "expires_at": expires.to_rfc3339()}),
        ),
        (
            "privacy.identity_check_requested",
            json!({"subject": subject, "request_type": "erasure", "token_sealed": sealed.to_base64(), "expires_at": "2020-01-01T00:00:00Z"}),
        ),
        (
            "consent.changed",
            json!({"subject": subject, "changes": [{"purpose": "marketing", "granted": false}]}),
        ),
        (
            "retention.deletion_scheduled",
            json!({"subject": {"kind": "staff", "id": merchant.owner.id}, "scheduled_for": "2027-01-31T00:00:00Z"}),
        ),
    ] {
        events::emit_event(
            &mut tx,
            &DomainEvent {
                actor,
                event_type,
                payload,
            },
        )
        .await
        .unwrap();
    }
    events::emit_audit(
        &mut tx,
        &AuditRecord::new(actor, "test.emitted", Resource::new("customer", id)),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mails = wait_for_mail(&email, 3, WITHIN).await;
    // The identity check whose link had expired before it could be sent is cancelled with the
    // reason, not mailed: only the live link reaches the person.
    let rows = wait_deliveries(&app, &merchant, &format!("recipient_id={}", id.0), |rows| {
        rows.iter()
            .any(|r| r["status"] == "cancelled" && r["last_error"] == "link_expired")
    })
    .await;
    assert_eq!(
        rows.iter()
            .filter(|r| r["last_error"] == "link_expired")
            .count(),
        1
    );
    let checks = mails_to(&email)
        .iter()
        .filter(|m| m.subject.starts_with("Confirm your personal data request"))
        .count();
    assert_eq!(checks, 1, "the expired link was mailed");
    let by_subject = |start: &str| {
        mails
            .iter()
            .find(|m| m.subject.starts_with(start))
            .unwrap_or_else(|| {
                panic!(
                    "no mail `{start}…` in {:?}",
                    mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
                )
            })
    };
    // The customer's language is English (customer_body).
    assert!(
        by_subject("Your personal data request was received")
            .text
            .contains("(export). We will answer by 2026-12-22 10:00 UTC")
    );
    let check = by_subject("Confirm your personal data request");
    assert_eq!(check.token(), "privacy-token-123");
    assert!(
        check
            .text
            .contains(&expires.format("%Y-%m-%d %H:%M UTC").to_string())
    );
    assert!(check.link().contains("/portal/#/privacy/confirm?token="));
    assert!(
        by_subject("Your consent choices were updated")
            .text
            .contains("- marketing: withdrawn")
    );
    let owner_mails = wait_for_mail(&merchant.owner.email, 2, WITHIN).await;
    let notice = owner_mails
        .iter()
        .find(|m| m.subject == "Data Anda dijadwalkan untuk dihapus")
        .expect("the owner's deletion notice, in the shop's language");
    assert!(notice.text.contains("2027-01-31 00:00 UTC"));

    // An event that should mail but names nobody is dead-lettered with the reason.
    let mut tx = app.tenant_tx(merchant.tenant).await;
    let broken = DomainEvent {
        actor,
        event_type: "privacy.export_ready",
        payload: json!({"subject": {"kind": "customer"}}),
    };
    events::emit_event(&mut tx, &broken).await.unwrap();
    events::emit_audit(
        &mut tx,
        &AuditRecord::new(actor, "test.emitted", Resource::new("customer", id)),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let reasons: Vec<String> = sqlx::query_scalar(
            "select reason from notification_dead_letters where convert_from(payload, 'UTF8')::jsonb->>'tenant_id' = $1",
        )
        .bind(merchant.tenant.to_string())
        .fetch_all(app.system.pool())
        .await
        .unwrap();
        if !reasons.is_empty() {
            assert_eq!(
                reasons,
                ["`privacy.export_ready` without a valid `subject`"]
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn mail_receipts_stop_once_the_customer_withdraws_and_each_change_is_confirmed() {
    let app = mail_app(
        None,
        &[("WARUNG_NOTIFICATIONS__CONSENT_CHANGE_EVERY_SECS", "3")],
    )
    .await;
    let merchant = app.verified_merchant().await;
    let email = unique_email("withdraws");
    let customer = app.customer(&merchant.owner, &customer_body(&email)).await;
    let consents = format!(
        "/api/v1/customers/{}/consents",
        customer["id"].as_str().unwrap()
    );
    let change = |purpose: &'static str, granted: bool| json!({"consents": [{"purpose": purpose, "granted": granted}]});
    let response = app
        .send(
            "PUT",
            &consents,
            &merchant.owner,
            None,
            Some(&change("receipt_email", false)),
        )
        .await;
    assert_eq!(response.status(), 200);
    let confirmation = wait_for_mail(&email, 1, WITHIN).await.remove(0);
    assert_eq!(confirmation.subject, "Your consent choices were updated");
    assert!(
        confirmation.text.contains("- receipt_email: withdrawn"),
        "{}",
        confirmation.text
    );

    let product = app.product(&merchant.owner, 7_000, 3).await;
    let lines = json!([{"product_id": product["id"], "quantity": 1}]);
    let qr = json!({"method": "qr", "amount_minor": 7_000});
    paid_order(&app, &merchant, lines, &customer["id"], qr).await;
    // A later change of the same tenant: once its confirmation is out, the payment's event has
    // been taken too (one tenant's events keep their order).
    let response = app
        .send(
            "PUT",
            &consents,
            &merchant.owner,
            None,
            Some(&change("marketing", true)),
        )
        .await;
    assert_eq!(response.status(), 200);
    // Marketing asked for at the till waits for the customer's own confirmation; the change
    // is confirmed no sooner than the period after the last one, with the choices as they are.
    let mails = wait_for_mail(&email, 3, WITHIN).await;
    assert!(
        mails
            .iter()
            .any(|m| m.subject.starts_with("Do you want news"))
    );
    let changed: Vec<&Mail> = mails
        .iter()
        .filter(|m| m.subject == "Your consent choices were updated")
        .collect();
    assert_eq!(changed.len(), 2);
    assert!(
        changed[1]
            .text
            .contains("- marketing: awaiting your confirmation")
            && changed[1].text.contains("- receipt_email: withdrawn"),
        "{}",
        changed[1].text
    );
    let sent: Vec<chrono::DateTime<chrono::Utc>> =
        deliveries(&app, &merchant, "template=consent_changed")
            .await
            .iter()
            .map(|d| d["sent_at"].as_str().unwrap().parse().unwrap())
            .collect();
    assert_eq!(sent.len(), 2);
    assert!(
        (sent[0] - sent[1]).num_milliseconds().abs() >= 3_000,
        "{sent:?}"
    );
    settled(&app).await;
    assert_eq!(mails_to(&email).len(), 3, "no receipt after the withdrawal");
    assert!(
        deliveries(&app, &merchant, "template=order_receipt")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn mail_a_person_who_writes_in_confirms_by_mail_and_downloads_their_data() {
    let app = mail_app(None, &[]).await;
    let merchant = app.verified_merchant().await;
    let email = format!("putri.{}@example.id", uuid::Uuid::now_v7().simple());
    app.customer(&merchant.owner, &customer_body(&email)).await;
    let filed = app
        .client_from([127, 0, 9, 9])
        .post(app.url("/api/v1/privacy/requests"))
        .json(&json!({"type": "export", "tenant": merchant.slug, "email": email}))
        .send()
        .await
        .unwrap();
    assert_eq!(filed.status(), 202);

    let mails = wait_for_mail(&email, 2, WITHIN).await;
    let received = mails
        .iter()
        .find(|m| m.subject.contains("was received"))
        .expect("the receipt with the due date");
    assert!(received.text.contains("(export)"), "{}", received.text);
    let check = mails
        .iter()
        .find(|m| m.subject.contains("Confirm your personal data request"))
        .expect("the identity check");
    assert!(
        check.link().contains("/portal/#/privacy/confirm?token="),
        "{}",
        check.link()
    );
    let confirmed = app
        .post_json(
            "/api/v1/privacy/requests/confirm",
            None,
            &json!({"token": check.token()}),
        )
        .await;
    assert_eq!(confirmed.status(), 200);
    assert_eq!(
        confirmed.json::<Value>().await.unwrap()["outcome"],
        "exported"
    );

    let ready = wait_for_mail(&email, 3, WITHIN)
        .await
        .into_iter()
        .find(|m| m.subject.contains("ready to download"))
        .expect("the download link");
    assert!(ready.link().contains("/portal/#/privacy/download?token="));
    let zip = app
        .post_json(
            "/api/v1/privacy/exports/download",
            None,
            &json!({"token": ready.token()}),
        )
        .await;
    assert_eq!(zip.status(), 200);
    let bytes = zip.bytes().await.unwrap();
    assert_eq!(&bytes[..2], b"PK");
    let again = app
        .post_json(
            "/api/v1/privacy/exports/download",
            None,
            &json!({"token": ready.token()}),
        )
        .await;
    assert_eq!(again.status(), 400, "the link works once");
    assert_eq!(
        mails_to(&email).len(),
        3,
        "received, identity check, export ready: nothing more"
    );
}

#[tokio::test]
async fn mail_marketing_reaches_only_customers_who_agreed_and_stops_when_they_withdraw() {
    let app = mail_app(None, &[]).await;
    let merchant = app.verified_merchant().await;
    let owner = &merchant.owner;
    let with_marketing = |email: &str, granted: bool| {
        let mut body = customer_body(email);
        body["consents"] = json!([
            {"purpose": "orders", "granted": true},
            {"purpose": "marketing", "granted": granted},
        ]);
        body
    };
    let stays = format!("stays.{}@example.id", uuid::Uuid::now_v7().simple());
    let leaves = format!("leaves.{}@example.id", uuid::Uuid::now_v7().simple());
    let never = format!("never.{}@example.id", uuid::Uuid::now_v7().simple());
    app.customer(owner, &with_marketing(&stays, true)).await;
    let leaver = app.customer(owner, &with_marketing(&leaves, true)).await;
    app.customer(owner, &with_marketing(&never, false)).await;

    let send = |headline: &str| {
        let (app, owner) = (&app, owner.clone());
        let body = json!({"headline": headline, "message": "Beli dua kopi susu, gratis satu."});
        async move {
            app.send(
                "POST",
                "/api/v1/marketing/messages",
                &owner,
                None,
                Some(&body),
            )
            .await
        }
    };
    // Staff said yes for them: nothing counts until each confirms from their own mailbox.
    let early = send("Belum boleh").await;
    assert_eq!(early.status(), 202);
    assert_eq!(early.json::<Value>().await.unwrap()["recipients"], 0);
    for email in [&stays, &leaves] {
        let ask = wait_for_mail(email, 1, WITHIN).await.remove(0);
        assert!(
            ask.subject.starts_with("Do you want news from"),
            "{}",
            ask.subject
        );
        assert!(
            ask.link().contains("/portal/#/consent/confirm?token="),
            "{}",
            ask.link()
        );
        let confirm = json!({"token": ask.token()});
        let confirmed = app
            .post_json("/api/v1/consents/confirm", None, &confirm)
            .await;
        assert_eq!(confirmed.status(), 200);
        let again = app
            .post_json("/api/v1/consents/confirm", None, &confirm)
            .await;
        assert_eq!(again.status(), 400, "the link works once");
    }
    let first = send("Promo minggu ini").await;
    assert_eq!(first.status(), 202);
    assert_eq!(first.json::<Value>().await.unwrap()["recipients"], 2);
    for email in [&stays, &leaves] {
        let mails = wait_for_mail(email, 2, WITHIN).await;
        let mail = mails
            .iter()
            .find(|m| m.subject == "Promo minggu ini")
            .expect("the news");
        assert!(mail.text.contains("gratis satu"));
        assert!(
            mail.text.contains("/portal/#/privacy"),
            "saying no is one link away"
        );
    }
    assert!(mails_to(&never).is_empty(), "no grant, no question");

    // One withdraws at the till: the next news does not reach them.
    let withdrawn = app
        .send(
            "PUT",
            &format!(
                "/api/v1/customers/{}/consents",
                leaver["id"].as_str().unwrap()
            ),
            owner,
            None,
            Some(&json!({"consents": [{"purpose": "marketing", "granted": false}]})),
        )
        .await;
    assert_eq!(withdrawn.status(), 200);
    let second = send("Promo bulan depan").await;
    assert_eq!(second.json::<Value>().await.unwrap()["recipients"], 1);
    let news = |email: &str| {
        mails_to(email)
            .into_iter()
            .filter(|m| m.subject.starts_with("Promo"))
            .count()
    };
    wait_for_mail(&stays, 3, WITHIN).await;
    settled(&app).await;
    assert_eq!(news(&stays), 2);
    assert_eq!(
        news(&leaves),
        1,
        "a withdrawal stops marketing mail at once"
    );
    assert_eq!(news(&never), 0, "no consent, no marketing mail");

    let cashier = app.staff(&merchant, platform::Role::Cashier).await;
    let refused = app
        .send(
            "POST",
            "/api/v1/marketing/messages",
            &cashier,
            None,
            Some(&json!({"headline": "x", "message": "y"})),
        )
        .await;
    assert_eq!(refused.status(), 403);
    let injected = send("Promo\r\nBcc: everyone@example.id").await;
    assert_eq!(injected.status(), 422, "a headline is one line");
}

#[tokio::test]
async fn mail_a_shop_whose_owner_never_verified_writes_to_no_customer_until_they_do() {
    let app = mail_app(None, &[("WARUNG_NOTIFICATIONS__HELD_RECHECK_SECS", "1")]).await;
    let merchant = app.merchant().await;
    let email = unique_email("stranger");
    let customer = app.customer(&merchant.owner, &customer_body(&email)).await;
    let product = app.product(&merchant.owner, 5_000, 5).await;
    let lines = json!([{"product_id": product["id"], "quantity": 1}]);
    let cash = json!({"method": "cash", "amount_minor": 5_000});
    paid_order(&app, &merchant, lines, &customer["id"], cash).await;

    let held = wait_deliveries(&app, &merchant, "template=order_receipt", |rows| {
        rows.iter()
            .any(|r| r["last_error"] == "owner_unverified" && r["status"] == "pending")
    })
    .await;
    assert_eq!(held[0]["attempts"], 0, "holding uses no attempt: {held:#?}");
    let news = json!({"headline": "Promo", "message": "Diskon"});
    let refused = app
        .send(
            "POST",
            "/api/v1/marketing/messages",
            &merchant.owner,
            None,
            Some(&news),
        )
        .await;
    assert_eq!(refused.status(), 409);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["code"],
        "owner_unverified"
    );
    assert!(mails_to(&email).is_empty());

    // The owner proves their address: the held receipt goes.
    app.verify_owner(&merchant).await;
    let receipt = wait_for_mail(&email, 1, WITHIN).await;
    assert!(
        receipt[0].subject.contains("receipt INV/"),
        "{}",
        receipt[0].subject
    );
}

#[tokio::test]
async fn mail_over_a_quota_waits_and_is_sent_once_the_quota_allows() {
    let quotas = [
        ("WARUNG_NOTIFICATIONS__TENANT_PER_HOUR", "3"),
        ("WARUNG_NOTIFICATIONS__RECIPIENT_PER_DAY", "2"),
        ("WARUNG_NOTIFICATIONS__HELD_RECHECK_SECS", "1"),
        ("WARUNG_NOTIFICATIONS__CONCURRENCY", "1"),
        ("WARUNG_NOTIFICATIONS__BATCH_SIZE", "1"),
    ];
    let app = mail_app(None, &quotas).await;
    // The owner's own verification mail is the shop's first of the hour.
    let merchant = app.verified_merchant().await;
    wait_deliveries(&app, &merchant, "template=email_verification", |rows| {
        rows.iter().any(|r| r["status"] == "sent")
    })
    .await;
    let product = app.product(&merchant.owner, 1_000, 50).await;
    let lines = json!([{"product_id": product["id"], "quantity": 1}]);
    let cash = json!({"method": "cash", "amount_minor": 1_000});
    let (a, b) = (unique_email("quota-a"), unique_email("quota-b"));
    let customer_a = app.customer(&merchant.owner, &customer_body(&a)).await;
    let customer_b = app.customer(&merchant.owner, &customer_body(&b)).await;
    for _ in 0..3 {
        paid_order(
            &app,
            &merchant,
            lines.clone(),
            &customer_a["id"],
            cash.clone(),
        )
        .await;
    }
    let rows = wait_deliveries(&app, &merchant, "template=order_receipt", |rows| {
        rows.len() == 3
            && rows.iter().filter(|r| r["status"] == "sent").count() == 2
            && rows.iter().any(|r| r["last_error"] == "recipient_quota")
    })
    .await;
    assert!(rows.iter().all(|r| r["status"] != "dead"), "{rows:#?}");
    // The verification mail and two receipts: the shop's hour is full.
    paid_order(
        &app,
        &merchant,
        lines.clone(),
        &customer_b["id"],
        cash.clone(),
    )
    .await;
    wait_deliveries(&app, &merchant, "template=order_receipt", |rows| {
        rows.iter()
            .any(|r| r["recipient"]["id"] == customer_b["id"] && r["last_error"] == "tenant_quota")
    })
    .await;
    assert_eq!(mails_to(&a).len(), 2);
    assert!(mails_to(&b).is_empty());
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(
            "notification_held_total{template=\"order_receipt\",reason=\"recipient_quota\"}"
        ) || metrics.contains(
            "notification_held_total{reason=\"recipient_quota\",template=\"order_receipt\"}"
        ),
        "{metrics}"
    );

    // Held is not lost: once the day is over (the sends are moved a day back), what waited is
    // sent, once each.
    sqlx::query(
        "update notification_deliveries set sent_at = sent_at - interval '25 hours'
         where tenant_id = $1 and status = 'sent'",
    )
    .bind(merchant.tenant)
    .execute(app.system.pool())
    .await
    .unwrap();
    wait_for_mail(&a, 3, WITHIN).await;
    wait_for_mail(&b, 1, WITHIN).await;
    settled(&app).await;
    assert_eq!(mails_to(&a).len(), 3);
    assert_eq!(mails_to(&b).len(), 1);
}

#[tokio::test]
async fn mail_consent_changes_in_quick_succession_are_confirmed_once_per_period() {
    let app = mail_app(
        None,
        &[("WARUNG_NOTIFICATIONS__CONSENT_CHANGE_EVERY_SECS", "4")],
    )
    .await;
    let merchant = app.verified_merchant().await;
    let email = unique_email("toggles");
    let customer = app.customer(&merchant.owner, &customer_body(&email)).await;
    let path = format!(
        "/api/v1/customers/{}/consents",
        customer["id"].as_str().unwrap()
    );
    for granted in [true, false, true, false, true] {
        let body = json!({"consents": [{"purpose": "analytics", "granted": granted}]});
        let response = app
            .send("PUT", &path, &merchant.owner, None, Some(&body))
            .await;
        assert_eq!(response.status(), 200);
    }
    // Five changes, five events: at most two mails, the last telling the final choice.
    let last = wait_for_mail(&email, 1, WITHIN).await;
    let latest = if last.iter().all(|m| m.text.contains("- analytics: granted")) {
        last
    } else {
        wait_for_mail(&email, 2, WITHIN).await
    };
    assert!(
        latest.last().unwrap().text.contains("- analytics: granted"),
        "{}",
        latest.last().unwrap().text
    );
    // Deferred confirmations wait out the period: done when none is left pending.
    wait_deliveries(&app, &merchant, "template=consent_changed", |rows| {
        rows.iter()
            .all(|r| r["status"] != "pending" && r["status"] != "sending")
    })
    .await;
    settled(&app).await;
    let mails = mails_to(&email);
    assert!(
        (1..=2).contains(&mails.len()),
        "{} mails for five changes",
        mails.len()
    );
    let outbox: i64 = sqlx::query_scalar(
        "select count(*) from outbox where tenant_id = $1 and event_type = 'consent.changed'",
    )
    .bind(merchant.tenant)
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    assert_eq!(outbox, 5);
}

#[tokio::test]
async fn mail_a_changed_address_is_told_and_a_copy_or_erasure_is_confirmed_from_the_old_one() {
    let app = mail_app(None, &[]).await;
    let merchant = app.verified_merchant().await;
    let cashier = app.staff(&merchant, platform::Role::Cashier).await;
    let (old, new) = (unique_email("own"), unique_email("cashiers"));
    let customer = app.customer(&cashier, &customer_body(&old)).await;
    let id = customer["id"].as_str().unwrap();
    let changed = app
        .send(
            "PATCH",
            &format!("/api/v1/customers/{id}"),
            &cashier,
            None,
            Some(&json!({"email": new})),
        )
        .await;
    assert_eq!(changed.status(), 200, "{}", changed.text().await.unwrap());
    let notice = wait_for_mail(&old, 1, WITHIN).await.remove(0);
    assert!(notice.subject.contains("was changed"), "{}", notice.subject);

    let filed = app
        .send(
            "POST",
            "/api/v1/privacy/requests",
            &merchant.owner,
            None,
            Some(&json!({"type": "erasure", "subject": {"kind": "customer", "id": id}})),
        )
        .await;
    assert_eq!(filed.status(), 201);
    let filed: Value = filed.json().await.unwrap();
    let filed_by: Option<uuid::Uuid> =
        sqlx::query_scalar("select filed_by from privacy_requests where id = $1::uuid")
            .bind(filed["id"].as_str().unwrap())
            .fetch_one(app.system.pool())
            .await
            .unwrap();
    assert_eq!(filed_by, Some(merchant.owner.id.0), "who filed it is kept");
    let mails = wait_for_mail(&old, 2, WITHIN).await;
    assert!(
        mails
            .iter()
            .any(|m| m.subject.contains("Confirm your personal data request")),
        "the identity check goes to the address the customer had"
    );
    wait_for_mail(&new, 1, WITHIN).await;
    settled(&app).await;
    assert!(
        mails_to(&new)
            .iter()
            .all(|m| !m.subject.contains("Confirm your personal data request")),
        "never to the address that replaced it"
    );
}

/// Consent and restriction are checked again when a mail is sent, not only when it is queued:
/// receipts waiting out an SMTP outage are cancelled, with the reason, for the customer who
/// withdrew meanwhile and for the one who restricted processing; the restricted person still
/// gets the mail that answers their request.
#[tokio::test]
async fn mail_waiting_to_be_sent_is_cancelled_when_consent_is_withdrawn_or_processing_restricted() {
    let proxy = smtp_proxy().await;
    let app = mail_app(Some(&proxy), &[]).await;
    let merchant = app.verified_merchant().await;
    let (withdraws, restricts) = (unique_email("withdraws"), unique_email("restricts"));
    let a = app
        .customer(&merchant.owner, &customer_body(&withdraws))
        .await;
    let b = app
        .customer(&merchant.owner, &customer_body(&restricts))
        .await;
    let product = app.product(&merchant.owner, 5_000, 10).await;
    // The owner's verification mail is out before SMTP goes: no connection is half-open.
    wait_for_mail(&merchant.owner.email, 1, WITHIN).await;
    proxy.cut();
    for customer in [&a, &b] {
        let lines = json!([{"product_id": product["id"], "quantity": 1}]);
        let cash = json!({"method": "cash", "amount_minor": 5_000});
        paid_order(&app, &merchant, lines, &customer["id"], cash).await;
    }
    let waiting = |rows: &[Value]| {
        rows.len() == 2 && rows.iter().all(|r| r["last_error"] == "smtp_connection")
    };
    wait_deliveries(&app, &merchant, "template=order_receipt", waiting).await;

    let withdrawn = app
        .send(
            "PUT",
            &format!("/api/v1/customers/{}/consents", a["id"].as_str().unwrap()),
            &merchant.owner,
            None,
            Some(&json!({"consents": [{"purpose": "receipt_email", "granted": false}]})),
        )
        .await;
    assert_eq!(withdrawn.status(), 200);
    let restriction = app
        .send(
            "POST",
            "/api/v1/privacy/requests",
            &merchant.owner,
            None,
            Some(&json!({"type": "restriction", "subject": {"kind": "customer", "id": b["id"]}})),
        )
        .await;
    assert_eq!(restriction.status(), 201);
    // The identity check waits for SMTP too; the person confirms from the mailed token.
    let token = app
        .subject_token(
            merchant.tenant,
            b["id"].as_str().unwrap().parse().unwrap(),
            "privacy.identity_check_requested",
        )
        .await;
    let confirmed = app
        .post_json(
            "/api/v1/privacy/requests/confirm",
            None,
            &json!({ "token": token }),
        )
        .await;
    assert_eq!(confirmed.status(), 200);

    proxy.restore();
    let rows = wait_deliveries(&app, &merchant, "template=order_receipt", |rows| {
        rows.iter().all(|r| r["status"] == "cancelled")
    })
    .await;
    let reason = |customer: &Value| {
        rows.iter()
            .find(|r| r["recipient"]["id"] == customer["id"])
            .map(|r| r["last_error"].clone())
    };
    assert_eq!(reason(&a), Some(json!("consent_withdrawn")), "{rows:#?}");
    assert_eq!(reason(&b), Some(json!("subject_restricted")), "{rows:#?}");
    // What answers the person's own request still reaches them; no receipt reaches either.
    // (the request's receipt and its identity check)
    let told = wait_for_mail(&restricts, 2, WITHIN).await;
    assert!(
        told.iter()
            .any(|m| m.subject.starts_with("Confirm your personal data request")),
        "{:?}",
        told.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    for email in [&withdraws, &restricts] {
        assert!(
            mails_to(email)
                .iter()
                .all(|m| !m.subject.contains("receipt")
                    && !m.subject.contains("Receipt")
                    && !m.subject.contains("Struk")),
            "a receipt reached {email}"
        );
    }
}
