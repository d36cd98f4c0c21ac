//! Erasure end to end: confirmed by the person, carried out by the `privacy.requests` job
//! across every module, the farewell mail sent before the key is shredded, resumable when SMTP
//! is down. Each app is isolated (`TestAppBuilder::isolated`): the job carries out every
//! tenant's due erasures, which must be only this test's.

use std::{sync::Arc, time::Duration};

use chrono::{TimeDelta, Utc};
use platform::{Role, clock::ManualClock, id::TenantId, pii::Opened};
use serde_json::{Value, json};
use testkit::{FaultProxy, Staff, TestApp, customer_body, mail::wait_for_mail};

use crate::privacy::{confirm, file, file_for};

const JOB: &str = "privacy.requests";

async fn request(app: &TestApp, owner: &Staff, id: &Value) -> Value {
    app.get_as(
        &format!("/api/v1/privacy/requests/{}", id.as_str().unwrap()),
        &owner.bearer(),
    )
    .await
    .json()
    .await
    .unwrap()
}

/// Runs the job until the request is closed (another run may hold the lock for a moment).
async fn run_until_closed(app: &TestApp, owner: &Staff, id: &Value) -> Value {
    for _ in 0..60 {
        app.run_job_to_completion(JOB, false).await;
        let now = request(app, owner, id).await;
        if now["status"] == "completed" {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("request {id} never completed");
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    )
}

/// Every text form of every row of every table that has a `tenant_id`, of this tenant: what a
/// plaintext scan reads (bytea as hex, so a plaintext byte string is found too).
async fn tenant_rows(app: &TestApp, tenant: TenantId) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "select c.table_name from information_schema.columns c
         join information_schema.tables t using (table_schema, table_name)
         where c.table_schema = 'public' and c.column_name = 'tenant_id' and t.table_type = 'BASE TABLE'
           and has_table_privilege('warung_system', format('%I', c.table_name), 'select')",
    )
    .fetch_all(app.system.pool())
    .await
    .unwrap();
    assert!(tables.len() > 20, "the scan covers the schema: {tables:?}");
    let mut all = String::new();
    for table in tables {
        let sql = format!(
            "select coalesce(string_agg(t::text, ' '), '') from {table} t where tenant_id = $1"
        );
        let text: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .fetch_one(app.system.pool())
            .await
            .unwrap();
        all.push_str(&text);
    }
    all
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_customers_erasure_leaves_nothing_readable_and_keeps_the_books() {
    // The whole pipeline runs: the tombstone must reach the audit store, and the mails go out.
    let app = TestApp::builder()
        .isolated()
        .set("WARUNG_OUTBOX__RELAY", "true")
        .with_module_workers()
        .start()
        .await;
    let merchant = app.verified_merchant().await;
    let cashier = app.staff(&merchant, Role::Cashier).await;
    let email = format!("{}@example.id", unique("kartini."));
    let name = unique("Kartini ");
    let address = unique("Jl. Mawar ");
    let mut body = customer_body(&email);
    body["full_name"] = json!(name);
    body["address"] = json!(address);
    body["phone"] = json!("+62 812-7070-4242");
    let customer = app.customer(&cashier, &body).await;
    let id = customer["id"].as_str().unwrap().to_owned();
    let product = app.product(&merchant.owner, 12_500, 10).await;
    let order = app
        .order(
            &cashier,
            &json!({"lines": [{"product_id": product["id"], "quantity": 3}], "customer_id": id}),
        )
        .await;
    let scan = tenant_rows(&app, merchant.tenant).await;
    let sku = product["sku"].as_str().unwrap();
    assert!(
        scan.contains(sku),
        "the scan finds plaintext where there is some"
    );

    for kind in ["erasure", "export", "access"] {
        let refused = file(
            &app,
            &cashier,
            json!({"type": kind, "subject": {"kind": "customer", "id": id}}),
        )
        .await;
        assert_eq!(
            refused.status(),
            403,
            "a cashier cannot ask for a customer's {kind}"
        );
    }
    let filed = file_for(&app, &merchant.owner, "erasure", &id).await;
    let confirmed = confirm(&app, merchant.tenant, &id).await;
    assert_eq!(confirmed["status"], "scheduled");
    assert!(
        confirmed["scheduled_for"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<Utc>>()
            .unwrap()
            <= Utc::now()
    );
    let done = run_until_closed(&app, &merchant.owner, &filed["id"]).await;
    assert_eq!(done["outcome"], "erased");

    // Mail about the request still waiting when the erasure ran was cancelled with it; the
    // farewell goes out once.
    let farewells = || {
        testkit::mail::mails_to(&email)
            .into_iter()
            .filter(|m| m.subject == "Your data has been erased")
            .count()
    };
    for _ in 0..120 {
        if farewells() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Nothing is left in flight that could send a second one.
    app.mail_settled(Duration::from_secs(60)).await;
    assert_eq!(
        farewells(),
        1,
        "one farewell: {:?}",
        testkit::mail::mails_to(&email)
            .iter()
            .map(|m| (&m.subject, &m.message_id))
            .collect::<Vec<_>>()
    );

    let shown: Value = app
        .get_as(&format!("/api/v1/customers/{id}"), &cashier.bearer())
        .await
        .json()
        .await
        .unwrap();
    for field in ["full_name", "email", "phone", "address"] {
        assert!(shown[field].is_null(), "{field} still readable: {shown}");
    }
    let sealed: Vec<u8> = sqlx::query_scalar("select full_name from customers where id = $1::uuid")
        .bind(&id)
        .fetch_one(app.system.pool())
        .await
        .unwrap();
    let mut tx = app.tenant_tx(merchant.tenant).await;
    let opened = app
        .state
        .pii
        .open(
            &mut tx,
            platform::pii::SubjectId(id.parse().unwrap()),
            "customers.full_name",
            &platform::pii::Sealed(sealed),
        )
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(matches!(opened, Opened::Erased), "the key is gone");
    let found = app
        .get_as(
            &format!("/api/v1/customers?email={email}"),
            &cashier.bearer(),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(found["items"], json!([]), "no blind index leads to them");

    let kept: Value = app
        .get_as(
            &format!("/api/v1/orders/{}", order["id"].as_str().unwrap()),
            &cashier.bearer(),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(kept["total_minor"], 37_500, "the books keep the amounts");
    assert_eq!(kept["lines"][0]["quantity"], 3);
    assert!(kept["customer_id"].is_null(), "and lose the person: {kept}");

    let tombstone: Value = sqlx::query_scalar(
        "select payload from outbox where tenant_id = $1 and event_type = 'subject.erased'
           and payload->'resource'->>'id' = $2",
    )
    .bind(merchant.tenant)
    .bind(&id)
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    assert_eq!(tombstone["details"]["farewell"], "sent");
    let mut stored = 0;
    for _ in 0..120 {
        stored = sqlx::query_scalar::<_, i64>(
            "select count(*) from audit_events where tenant_id = $1 and event_type = 'subject.erased'
               and resource_id = $2",
        )
        .bind(merchant.tenant)
        .bind(&id)
        .fetch_one(app.system.pool())
        .await
        .unwrap();
        if stored > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(stored, 1, "the tombstone is in the audit store");
    assert_eq!(
        tombstone["details"]["modules"],
        json!(["users", "auth", "orders", "notifications", "audit"])
    );

    let scan = tenant_rows(&app, merchant.tenant).await;
    for plaintext in [
        email.as_str(),
        name.as_str(),
        address.as_str(),
        "7070-4242",
        "+6281270704242",
    ] {
        assert!(!scan.contains(plaintext), "`{plaintext}` left in the clear");
        assert!(
            !scan.contains(&hex(plaintext)),
            "`{plaintext}` left as bytes"
        );
    }
    let again = file(
        &app,
        &merchant.owner,
        json!({"type": "access", "subject": {"kind": "customer", "id": id}}),
    )
    .await;
    assert_eq!(again.status(), 404, "an erased person is gone");
}

#[tokio::test]
async fn an_erasure_waits_for_its_farewell_mail_and_finishes_when_smtp_returns() {
    let port = std::env::var("WARUNG_SMTP__PORT").unwrap_or_else(|_| "1025".into());
    let proxy = FaultProxy::start(format!("127.0.0.1:{port}").parse().unwrap()).await;
    let app = TestApp::builder()
        .isolated()
        .set("WARUNG_SMTP__PORT", proxy.addr.port().to_string())
        .set("WARUNG_SMTP__TIMEOUT_MS", "2000")
        .set("WARUNG_NOTIFICATIONS__MAX_ATTEMPTS", "2")
        .start()
        .await;
    let merchant = app.verified_merchant().await;
    let cashier = app.staff(&merchant, Role::Cashier).await;
    let email = format!("{}@example.id", unique("tuti."));
    let customer = app.customer(&cashier, &customer_body(&email)).await;
    let id = customer["id"].as_str().unwrap().to_owned();
    let product = app.product(&merchant.owner, 1_000, 5).await;
    let order = app
        .order(
            &cashier,
            &json!({"lines": [{"product_id": product["id"], "quantity": 1}], "customer_id": id}),
        )
        .await;
    let filed = file_for(&app, &merchant.owner, "erasure", &id).await;
    confirm(&app, merchant.tenant, &id).await;

    proxy.cut();
    // More runs than the mail has attempts: an outage uses none of them.
    for _ in 0..4 {
        app.run_job_to_completion(JOB, false).await;
    }
    let waiting = request(&app, &merchant.owner, &filed["id"]).await;
    assert_eq!(waiting["status"], "erasing", "{waiting}");
    let (attempts, reason): (i32, Option<String>) = sqlx::query_as(
        "select attempts, last_error from notification_deliveries
         where tenant_id = $1 and template = 'erasure_completed' and event_id = $2::uuid",
    )
    .bind(merchant.tenant)
    .bind(filed["id"].as_str().unwrap())
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    assert_eq!(attempts, 0);
    assert_eq!(reason.as_deref(), Some("smtp_connection"));
    let kept: Value = app
        .get_as(
            &format!("/api/v1/orders/{}", order["id"].as_str().unwrap()),
            &cashier.bearer(),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(kept["customer_id"].is_null(), "anonymized before the mail");
    let keys: i64 = sqlx::query_scalar(
        "select count(*) from subject_keys where tenant_id = $1 and subject_id = $2::uuid",
    )
    .bind(merchant.tenant)
    .bind(&id)
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    assert_eq!(keys, 1, "the key stays until the farewell is sent");
    // While the erasure runs, the customer is shown to nobody.
    assert_eq!(
        app.get_as(&format!("/api/v1/customers/{id}"), &cashier.bearer())
            .await
            .status(),
        409
    );

    proxy.restore();
    let done = run_until_closed(&app, &merchant.owner, &filed["id"]).await;
    assert_eq!(done["outcome"], "erased");
    let mails = wait_for_mail(&email, 1, Duration::from_secs(30)).await;
    // The job sends the farewell itself and the request is closed: no mail worker runs here,
    // so nothing else could send another.
    assert_eq!(testkit::mail::mails_to(&email).len(), 1, "{mails:?}");
    let anonymized: i64 = sqlx::query_scalar(
        "select count(*) from outbox where tenant_id = $1 and event_type = 'orders.anonymized'",
    )
    .bind(merchant.tenant)
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    assert_eq!(anonymized, 1, "resuming did not redo the first step");
}

#[tokio::test]
async fn a_staff_members_erasure_ends_their_sessions_and_the_last_owner_stays() {
    let app = TestApp::builder().isolated().start().await;
    let merchant = app.verified_merchant().await;
    let owner = &merchant.owner;
    let refused = file(&app, owner, json!({"type": "erasure"})).await;
    assert_eq!(refused.status(), 409);
    assert_eq!(refused.json::<Value>().await.unwrap()["code"], "last_owner");

    let cashier = app.staff(&merchant, Role::Cashier).await;
    let filed = file(&app, &cashier, json!({"type": "erasure"})).await;
    assert_eq!(filed.status(), 201);
    let filed: Value = filed.json().await.unwrap();
    assert_eq!(filed["channel"], "self");
    assert_eq!(filed["subject"], json!({"kind": "staff", "id": cashier.id}));
    confirm(&app, merchant.tenant, &cashier.id.to_string()).await;
    assert_eq!(
        app.get_as("/api/v1/me", &cashier.bearer()).await.status(),
        200
    );

    run_until_closed(&app, owner, &filed["id"]).await;
    assert_eq!(
        app.get_as("/api/v1/me", &cashier.bearer()).await.status(),
        401,
        "sessions end"
    );
    let hashes: i64 = sqlx::query_scalar("select count(*) from credentials where user_id = $1")
        .bind(cashier.id)
        .fetch_one(app.system.pool())
        .await
        .unwrap();
    assert_eq!(hashes, 0, "no password hash outlives the person");
    let open: i64 = sqlx::query_scalar(
        "select count(*) from auth_tokens where user_id = $1 and used_at is null",
    )
    .bind(cashier.id)
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    assert_eq!(open, 0);
    let refresh = app
        .post_json(
            "/api/v1/auth/refresh",
            None,
            &json!({"refresh_token": cashier.refresh}),
        )
        .await;
    assert_eq!(refresh.status(), 401);
    let login = app
        .post_json(
            "/api/v1/auth/login",
            None,
            &json!({"tenant": merchant.slug, "email": cashier.email, "password": testkit::PASSWORD}),
        )
        .await;
    assert_eq!(login.status(), 401);
    let staff: Value = app
        .get_as("/api/v1/users", &owner.bearer())
        .await
        .json()
        .await
        .unwrap();
    assert!(
        staff["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["id"] != json!(cashier.id))
    );
    wait_for_mail(&cashier.email, 1, Duration::from_secs(30)).await;
}

#[tokio::test]
async fn an_erasure_waits_out_the_shops_grace_period() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = TestApp::builder()
        .isolated()
        .clock(clock.clone())
        .start()
        .await;
    let merchant = app.verified_merchant().await;
    let owner = &merchant.owner;
    let set = app
        .send(
            "PUT",
            "/api/v1/privacy/settings",
            owner,
            None,
            Some(&json!({"jurisdiction": "uu_pdp", "erasure_grace_hours": 24})),
        )
        .await;
    assert_eq!(set.status(), 200);
    let cashier = app.staff(&merchant, Role::Cashier).await;
    let customer = app
        .customer(
            &cashier,
            &customer_body(&format!("{}@example.id", unique("lina."))),
        )
        .await;
    let id = customer["id"].as_str().unwrap().to_owned();
    let filed = file_for(&app, &merchant.owner, "erasure", &id).await;
    let confirmed = confirm(&app, merchant.tenant, &id).await;
    let scheduled: chrono::DateTime<Utc> = confirmed["scheduled_for"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(scheduled - clock_now(&clock), TimeDelta::hours(24));
    let event: Value = sqlx::query_scalar(
        "select payload from outbox where tenant_id = $1 and event_type = 'privacy.erasure_scheduled'",
    )
    .bind(merchant.tenant)
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    assert_eq!(
        event["subject"]["id"],
        id.as_str(),
        "the person is told when"
    );

    app.run_job_to_completion(JOB, false).await;
    assert_eq!(
        request(&app, owner, &filed["id"]).await["status"],
        "scheduled",
        "not before its time"
    );
    // While it waits, and once it is done, nobody rewrites the person (fresh blind indexes on
    // an erased row would make them findable again).
    let staff = &cashier;
    let app = &app;
    let edit = || {
        let path = format!("/api/v1/customers/{id}");
        let body = json!({"email": format!("{}@example.id", unique("someone."))});
        async move { app.send("PATCH", &path, staff, None, Some(&body)).await }
    };
    let waiting = edit().await;
    assert_eq!(waiting.status(), 409);
    assert_eq!(
        waiting.json::<Value>().await.unwrap()["code"],
        "customer_erasing"
    );
    // Nor is it shown, nor put on an order, while the erasure waits.
    let shown = app
        .get_as(&format!("/api/v1/customers/{id}"), &cashier.bearer())
        .await;
    assert_eq!(shown.status(), 409);
    let product = app.product(&merchant.owner, 1_000, 5).await;
    let order = app
        .send(
            "POST",
            "/api/v1/orders",
            &cashier,
            Some(&uuid::Uuid::now_v7().to_string()),
            Some(&json!({"lines": [{"product_id": product["id"], "quantity": 1}], "customer_id": id})),
        )
        .await;
    assert_eq!(order.status(), 409, "{}", order.text().await.unwrap());
    clock.advance(TimeDelta::hours(25));
    let done = run_until_closed(app, owner, &filed["id"]).await;
    assert_eq!(done["outcome"], "erased");
    let after = edit().await;
    assert_eq!(after.status(), 409);
    // Once erased, the customer is gone from the list and from their own address.
    assert_eq!(
        app.get_as(&format!("/api/v1/customers/{id}"), &cashier.bearer())
            .await
            .status(),
        404
    );
    let listed: Value = app
        .get_as("/api/v1/customers?limit=200", &cashier.bearer())
        .await
        .json()
        .await
        .unwrap();
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"] != json!(id)),
        "{listed}"
    );
    let indexed: Option<Vec<u8>> =
        sqlx::query_scalar("select email_index from customers where id = $1::uuid")
            .bind(&id)
            .fetch_one(app.system.pool())
            .await
            .unwrap();
    assert!(indexed.is_none());
}

fn clock_now(clock: &ManualClock) -> chrono::DateTime<Utc> {
    use platform::clock::Clock;
    clock.now()
}

/// The retention requests of `tenant` about `subject`: (id, status, outcome).
async fn retention_requests(
    app: &TestApp,
    tenant: TenantId,
    subject: &str,
) -> Vec<(uuid::Uuid, String, Option<String>)> {
    sqlx::query_as(
        "select id, status, outcome from privacy_requests
         where tenant_id = $1 and subject_id = $2::uuid and channel = 'retention' order by id",
    )
    .bind(tenant)
    .bind(subject)
    .fetch_all(app.system.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn inactive_guests_are_told_then_erased_unless_they_come_back_and_deleted_staff_go_too() {
    let app = TestApp::builder().isolated().start().await;
    let merchant = app.verified_merchant().await;
    let owner = &merchant.owner;
    let cashier = app.staff(&merchant, Role::Cashier).await;
    let product = app.product(owner, 2_000, 50).await;
    let guest_order = |email: String| {
        let (app, cashier, product) = (&app, cashier.clone(), product.clone());
        async move {
            let order = app
                .order(
                    &cashier,
                    &json!({"lines": [{"product_id": product["id"], "quantity": 1}],
                            "customer": customer_body(&email)}),
                )
                .await;
            order["customer_id"].as_str().unwrap().to_owned()
        }
    };
    let gone = guest_order(format!("{}@example.id", unique("gone."))).await;
    let back = guest_order(format!("{}@example.id", unique("back."))).await;
    // A guest who restricted the processing of their data asked for it to be kept.
    let kept = guest_order(format!("{}@example.id", unique("kept."))).await;
    file_for(&app, owner, "restriction", &kept).await;
    confirm(&app, merchant.tenant, &kept).await;
    let member = app
        .customer(
            &cashier,
            &customer_body(&format!("{}@example.id", unique("member."))),
        )
        .await;
    let member = member["id"].as_str().unwrap().to_owned();
    let leaver = app.staff(&merchant, Role::Cashier).await;
    assert_eq!(
        app.send(
            "DELETE",
            &format!("/api/v1/users/{}", leaver.id),
            owner,
            None,
            None
        )
        .await
        .status(),
        204
    );
    let invited: Value = app
        .send(
            "POST",
            "/api/v1/users/invitations",
            owner,
            None,
            Some(&json!({"email": format!("{}@example.id", unique("never.")), "role": "cashier", "locale": "id"})),
        )
        .await
        .json()
        .await
        .unwrap();
    let invitee = invited["user_id"].as_str().unwrap().to_owned();
    for (category, days) in [("inactive_guests", 30), ("unverified_signups", 0)] {
        let chosen = app
            .send(
                "PUT",
                "/api/v1/retention/policies",
                owner,
                None,
                Some(&json!({"category": category, "days": days})),
            )
            .await;
        assert_eq!(chosen.status(), 200);
    }

    // Time passes: 40 days without the guests (and the member), 40 since the leaver left.
    let mut tx = app.tenant_tx(merchant.tenant).await;
    sqlx::query("update customers set last_active_at = now() - interval '40 days'")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("update staff_users set deleted_at = now() - interval '40 days' where id = $1")
        .bind(leaver.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    testkit::audited(&mut tx, "test.time_passed").await;
    tx.commit().await.unwrap();

    let dry = app.run_job_to_completion("retention.users", true).await;
    assert_eq!(
        dry.get("inactive_guests"),
        2,
        "not the restricted guest: {dry:?}"
    );
    assert!(
        retention_requests(&app, merchant.tenant, &gone)
            .await
            .is_empty(),
        "dry runs file nothing"
    );
    let report = app.run_job_to_completion("retention.users", false).await;
    assert!(
        report.get("inactive_guests") == 2
            && report.get("deleted_staff") >= 1
            && report.get("unverified_signups") >= 1,
        "{report:?}"
    );
    assert!(
        retention_requests(&app, merchant.tenant, &kept)
            .await
            .is_empty(),
        "a restricted guest is not erased for inactivity"
    );
    for guest in [&gone, &back] {
        let filed = retention_requests(&app, merchant.tenant, guest).await;
        assert_eq!(filed.len(), 1, "one request per guest");
        assert_eq!(filed[0].1, "scheduled");
        let notice: Value = sqlx::query_scalar(
            "select payload from outbox where tenant_id = $1 and event_type = 'retention.deletion_scheduled'
               and payload->'subject'->>'id' = $2",
        )
        .bind(merchant.tenant)
        .bind(guest)
        .fetch_one(app.system.pool())
        .await
        .unwrap();
        let at: chrono::DateTime<Utc> = notice["scheduled_for"].as_str().unwrap().parse().unwrap();
        assert!(at - Utc::now() > TimeDelta::days(13), "told 14 days ahead");
    }
    assert!(
        retention_requests(&app, merchant.tenant, &member)
            .await
            .is_empty(),
        "customers with an account stay"
    );
    app.run_job_to_completion("retention.users", false).await;
    assert_eq!(
        retention_requests(&app, merchant.tenant, &gone).await.len(),
        1,
        "filed once"
    );

    // One guest comes back before the date: the deletion is called off.
    app.order(
        &cashier,
        &json!({"lines": [{"product_id": product["id"], "quantity": 1}], "customer_id": back}),
    )
    .await;
    let called_off = retention_requests(&app, merchant.tenant, &back).await;
    assert_eq!(
        (called_off[0].1.as_str(), called_off[0].2.as_deref()),
        ("rejected", Some("subject_returned"))
    );

    // The notice runs out (moved to now here), and the erasure job does the rest.
    let mut tx = app.tenant_tx(merchant.tenant).await;
    sqlx::query("update privacy_requests set scheduled_for = now() where channel = 'retention' and status = 'scheduled'")
        .execute(&mut *tx)
        .await
        .unwrap();
    testkit::audited(&mut tx, "test.notice_over").await;
    tx.commit().await.unwrap();
    let (gone_request, _, _) = retention_requests(&app, merchant.tenant, &gone)
        .await
        .remove(0);
    run_until_closed(&app, owner, &json!(gone_request)).await;
    for person in [leaver.id.to_string(), invitee.clone()] {
        let (request, _, _) = retention_requests(&app, merchant.tenant, &person)
            .await
            .remove(0);
        run_until_closed(&app, owner, &json!(request)).await;
    }

    let shown = |id: String| {
        let (app, cashier) = (&app, cashier.clone());
        async move {
            app.get_as(&format!("/api/v1/customers/{id}"), &cashier.bearer())
                .await
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert!(
        shown(gone.clone()).await["full_name"].is_null(),
        "the inactive guest is erased"
    );
    assert_eq!(
        shown(back.clone()).await["full_name"],
        "Ani Wijaya",
        "the returning guest is kept"
    );
    for (person, what) in [
        (leaver.id.to_string(), "the long-deleted account"),
        (invitee, "the invitee who never came"),
    ] {
        let erased: Option<chrono::DateTime<Utc>> =
            sqlx::query_scalar("select erased_at from staff_users where id = $1::uuid")
                .bind(&person)
                .fetch_one(app.system.pool())
                .await
                .unwrap();
        assert!(erased.is_some(), "{what} is erased");
    }
}

#[tokio::test]
async fn of_two_owners_erasing_themselves_at_once_one_stays() {
    let app = TestApp::builder().isolated().start().await;
    let merchant = app.verified_merchant().await;
    let second = app.staff(&merchant, Role::Owner).await;
    let mut filed = Vec::new();
    for owner in [&merchant.owner, &second] {
        let response = file(&app, owner, json!({"type": "erasure"})).await;
        assert_eq!(response.status(), 201, "two owners: each may ask");
        filed.push(response.json::<Value>().await.unwrap());
        confirm(&app, merchant.tenant, &owner.id.to_string()).await;
    }
    for _ in 0..60 {
        app.run_job_to_completion(JOB, false).await;
        let closed: Vec<(String, Option<String>)> = sqlx::query_as(
            "select status, outcome from privacy_requests where tenant_id = $1 order by outcome",
        )
        .bind(merchant.tenant)
        .fetch_all(app.system.pool())
        .await
        .unwrap();
        if closed
            .iter()
            .all(|(status, _)| status == "completed" || status == "rejected")
        {
            let outcomes: Vec<Option<&str>> = closed.iter().map(|(_, o)| o.as_deref()).collect();
            assert_eq!(outcomes, [Some("erased"), Some("last_owner")], "{closed:?}");
            let owners: i64 = sqlx::query_scalar(
                "select count(*) from staff_users where tenant_id = $1 and role = 'owner' and status = 'active'",
            )
            .bind(merchant.tenant)
            .fetch_one(app.system.pool())
            .await
            .unwrap();
            assert_eq!(owners, 1, "the shop keeps an owner");
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the erasures never closed");
}

#[tokio::test]
async fn an_erasure_does_not_wait_for_its_farewell_past_its_margin_before_it_is_due() {
    let port = std::env::var("WARUNG_SMTP__PORT").unwrap_or_else(|_| "1025".into());
    let proxy = FaultProxy::start(format!("127.0.0.1:{port}").parse().unwrap()).await;
    let patient = TestApp::builder()
        .isolated()
        .set("WARUNG_SMTP__PORT", proxy.addr.port().to_string())
        .set("WARUNG_SMTP__TIMEOUT_MS", "2000")
        .start()
        .await;
    let merchant = patient.verified_merchant().await;
    let email = format!("{}@example.id", unique("lastday."));
    let customer = patient
        .customer(&merchant.owner, &customer_body(&email))
        .await;
    let id = customer["id"].as_str().unwrap().to_owned();
    let filed = file_for(&patient, &merchant.owner, "erasure", &id).await;
    confirm(&patient, merchant.tenant, &id).await;

    proxy.cut();
    patient.run_job_to_completion(JOB, false).await;
    assert_eq!(
        request(&patient, &merchant.owner, &filed["id"]).await["status"],
        "erasing",
        "well before the due date, the erasure waits for its mail"
    );
    // Where the due date is within the margin (here: a margin longer than the legal time),
    // the erasure goes ahead, saying why there was no mail.
    let hurried = TestApp::builder()
        .alongside(&patient)
        .set("WARUNG_SMTP__PORT", proxy.addr.port().to_string())
        .set("WARUNG_SMTP__TIMEOUT_MS", "2000")
        .set("WARUNG_PRIVACY__FAREWELL_DEADLINE_MARGIN_HOURS", "10000")
        .start()
        .await;
    let done = run_until_closed(&hurried, &merchant.owner, &filed["id"]).await;
    assert_eq!(done["outcome"], "erased");
    let farewell: String = sqlx::query_scalar(
        "select payload->'details'->>'farewell' from outbox
         where tenant_id = $1 and event_type = 'subject.erased'",
    )
    .bind(merchant.tenant)
    .fetch_one(hurried.system.pool())
    .await
    .unwrap();
    assert_eq!(farewell, "not sent before the due date: smtp_connection");
    proxy.restore();
}

/// A request whose identity check nobody answered is closed `expired` (outcome `not_verified`)
/// by the job once its link ran out, and its link no longer works; a confirmed one is untouched.
#[tokio::test]
async fn an_unconfirmed_request_is_closed_expired_when_its_link_runs_out() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = TestApp::builder()
        .isolated()
        .clock(clock.clone())
        .start()
        .await;
    let merchant = app.verified_merchant().await;
    let owner = &merchant.owner;
    let ani = app
        .customer(
            owner,
            &customer_body(&format!("{}@example.id", unique("ani."))),
        )
        .await;
    let budi = app
        .customer(
            owner,
            &customer_body(&format!("{}@example.id", unique("budi."))),
        )
        .await;
    let unanswered = file_for(&app, owner, "export", ani["id"].as_str().unwrap()).await;
    let token = app
        .subject_token(
            merchant.tenant,
            ani["id"].as_str().unwrap().parse().unwrap(),
            "privacy.identity_check_requested",
        )
        .await;
    let answered = file_for(&app, owner, "rectification", budi["id"].as_str().unwrap()).await;
    confirm(&app, merchant.tenant, budi["id"].as_str().unwrap()).await;

    // Still within the link's life (privacy.verification_ttl_hours, 48): nothing expires.
    clock.advance(TimeDelta::hours(47));
    let report = app.run_job_to_completion(JOB, false).await;
    assert_eq!(
        report.counts.get("requests_expired").copied().unwrap_or(0),
        0,
        "{report:?}"
    );
    assert_eq!(
        request(&app, owner, &unanswered["id"]).await["status"],
        "awaiting_verification"
    );

    clock.advance(TimeDelta::hours(2));
    let report = app.run_job_to_completion(JOB, false).await;
    assert_eq!(
        report.counts.get("requests_expired").copied(),
        Some(1),
        "{report:?}"
    );
    let closed = request(&app, owner, &unanswered["id"]).await;
    assert_eq!(
        (closed["status"].as_str(), closed["outcome"].as_str()),
        (Some("expired"), Some("not_verified")),
        "{closed}"
    );
    assert!(closed["completed_at"].is_string(), "{closed}");
    assert_eq!(
        request(&app, owner, &answered["id"]).await["status"],
        "in_progress"
    );
    // The late click finds a dead link.
    let late = app
        .post_json(
            "/api/v1/privacy/requests/confirm",
            None,
            &json!({ "token": token }),
        )
        .await;
    assert_eq!(late.status(), 400);
}

/// The shop's grace period never pushes an erasure past its legal due time: with the longest
/// grace (30 days) and the person confirming two days after filing, the erasure is set a day
/// before the request is due, not 30 days after the confirmation.
#[tokio::test]
async fn the_grace_period_is_cut_short_before_the_legal_due_time() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = TestApp::builder()
        .isolated()
        .clock(clock.clone())
        .start()
        .await;
    let merchant = app.verified_merchant().await;
    let owner = &merchant.owner;
    let set = app
        .send(
            "PUT",
            "/api/v1/privacy/settings",
            owner,
            None,
            Some(&json!({"jurisdiction": "gdpr", "erasure_grace_hours": 720})),
        )
        .await;
    assert_eq!(set.status(), 200);
    let customer = app
        .customer(
            owner,
            &customer_body(&format!("{}@example.id", unique("maya."))),
        )
        .await;
    let id = customer["id"].as_str().unwrap().to_owned();
    let filed = file_for(&app, owner, "erasure", &id).await;
    let due: chrono::DateTime<Utc> = filed["due_at"].as_str().unwrap().parse().unwrap();
    clock.advance(TimeDelta::hours(47));
    let confirmed = confirm(&app, merchant.tenant, &id).await;
    let scheduled: chrono::DateTime<Utc> = confirmed["scheduled_for"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let uncapped = clock_now(&clock) + TimeDelta::hours(720);
    assert!(uncapped > due, "the grace alone would miss the due time");
    assert_eq!(scheduled, due - TimeDelta::hours(24));
}
