//! Data-subject requests against the real stack: filed three ways, confirmed by the mailed
//! token, answered within their legal clock; the export bundle; withdrawal and restriction.

use std::{io::Read, sync::Arc};

use chrono::{DateTime, TimeDelta, Utc};
use platform::{Role, clock::ManualClock, id::TenantId};
use serde_json::{Value, json};
use testkit::{Staff, TestApp, customer_body};

pub(crate) async fn file(app: &TestApp, staff: &Staff, body: Value) -> reqwest::Response {
    app.send("POST", "/api/v1/privacy/requests", staff, None, Some(&body))
        .await
}

/// Files `kind` for `customer` as `staff`; returns the request.
pub(crate) async fn file_for(app: &TestApp, staff: &Staff, kind: &str, customer: &str) -> Value {
    let response = file(
        app,
        staff,
        json!({"type": kind, "subject": {"kind": "customer", "id": customer}}),
    )
    .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

/// Confirms the latest identity check mailed to `subject`.
pub(crate) async fn confirm(app: &TestApp, tenant: TenantId, subject: &str) -> Value {
    let token = app
        .subject_token(
            tenant,
            subject.parse().unwrap(),
            "privacy.identity_check_requested",
        )
        .await;
    let response = app
        .post_json(
            "/api/v1/privacy/requests/confirm",
            None,
            &json!({"token": token}),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

fn at(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

fn unzip(bytes: &[u8]) -> Vec<(String, String)> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut file = archive.by_index(i).unwrap();
            let mut text = String::new();
            file.read_to_string(&mut text).unwrap();
            (file.name().unwrap().into_owned(), text)
        })
        .collect()
}

async fn paid_order(app: &TestApp, owner: &Staff, staff: &Staff, customer: &str) -> Value {
    let product = app.product(owner, 18_000, 10).await;
    let order = app
        .order(
            staff,
            &json!({"lines": [{"product_id": product["id"], "quantity": 2}], "customer_id": customer}),
        )
        .await;
    let id = order["id"].as_str().unwrap();
    let key = uuid::Uuid::now_v7().to_string();
    let paid = app
        .send(
            "POST",
            &format!("/api/v1/orders/{id}/payments"),
            staff,
            Some(&key),
            Some(&json!({"method": "card", "amount_minor": 36_000})),
        )
        .await;
    assert_eq!(paid.status(), 201, "{}", paid.text().await.unwrap());
    order
}

#[tokio::test]
async fn an_export_holds_the_customers_own_data_and_nothing_of_anyone_elses() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let cashier = app.staff(&merchant, Role::Cashier).await;
    let ani_email = format!("ani.{}@example.id", uuid::Uuid::now_v7().simple());
    let ani = app.customer(&cashier, &customer_body(&ani_email)).await;
    let ani_id = ani["id"].as_str().unwrap();
    let mut other_body = customer_body(&format!(
        "rudi.{}@example.id",
        uuid::Uuid::now_v7().simple()
    ));
    other_body["full_name"] = json!("Rudi Hartono");
    other_body["phone"] = json!("+62 877-9999-0000");
    other_body["address"] = json!("Jl. Kenanga 99, Medan");
    let rudi = app.customer(&cashier, &other_body).await;
    let ani_order = paid_order(&app, &merchant.owner, &cashier, ani_id).await;
    let rudi_order = paid_order(
        &app,
        &merchant.owner,
        &cashier,
        rudi["id"].as_str().unwrap(),
    )
    .await;

    let request = file_for(&app, &merchant.owner, "export", ani_id).await;
    assert_eq!(request["status"], "awaiting_verification");
    assert_eq!(request["channel"], "staff");
    assert_eq!(request["jurisdiction"], "uu_pdp", "an Indonesian shop");
    assert_eq!(
        at(&request["due_at"]) - at(&request["received_at"]),
        TimeDelta::hours(72)
    );
    let checks: i64 = sqlx::query_scalar(
        "select count(*) from outbox where tenant_id = $1 and event_type in
         ('privacy.request_received', 'privacy.identity_check_requested')",
    )
    .bind(merchant.tenant)
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    assert_eq!(
        checks, 2,
        "a receipt with the due date, and the identity check"
    );
    assert_eq!(
        app.post_json(
            "/api/v1/privacy/requests/confirm",
            None,
            &json!({"token": "nope"})
        )
        .await
        .status(),
        400
    );
    let no_bundle: i64 =
        sqlx::query_scalar("select count(*) from privacy_exports where tenant_id = $1")
            .bind(merchant.tenant)
            .fetch_one(app.system.pool())
            .await
            .unwrap();
    assert_eq!(
        no_bundle, 0,
        "nothing is disclosed before the identity check"
    );

    let confirmed = confirm(&app, merchant.tenant, ani_id).await;
    assert_eq!(confirmed["status"], "completed");
    assert_eq!(confirmed["outcome"], "exported");
    assert_eq!(confirmed["sla"], "met");
    let token = app
        .subject_token(
            merchant.tenant,
            ani_id.parse().unwrap(),
            "privacy.identity_check_requested",
        )
        .await;
    assert_eq!(
        app.post_json(
            "/api/v1/privacy/requests/confirm",
            None,
            &json!({"token": token})
        )
        .await
        .status(),
        400,
        "the identity link works once"
    );

    let download = app
        .subject_token(
            merchant.tenant,
            ani_id.parse().unwrap(),
            "privacy.export_ready",
        )
        .await;
    let response = app
        .post_json(
            "/api/v1/privacy/exports/download",
            None,
            &json!({"token": download}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/zip");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let files = unzip(&response.bytes().await.unwrap());
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "manifest.json",
        "data.json",
        "users.profile.csv",
        "users.consents.csv",
        "orders.orders.csv",
        "orders.lines.csv",
        "notifications.deliveries.csv",
        "audit.events.csv",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let data: Value =
        serde_json::from_str(&files.iter().find(|(n, _)| n == "data.json").unwrap().1).unwrap();
    let profile = &data["users.profile"][0];
    assert_eq!(profile["email"], ani_email.as_str(), "decrypted");
    assert_eq!(profile["full_name"], "Ani Wijaya");
    assert_eq!(profile["address"], "Jl. Melati 7, Bandung");
    assert_eq!(data["orders.orders"][0]["id"], ani_order["id"]);
    assert_eq!(data["orders.orders"][0]["total_minor"], 36_000);
    assert_eq!(data["orders.lines"][0]["quantity"], 2);
    assert_eq!(data["orders.payments"][0]["method"], "card");
    assert!(
        data["users.consents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["purpose"] == "receipt_email" && c["granted"] == true)
    );
    let csv = &files
        .iter()
        .find(|(n, _)| n == "users.profile.csv")
        .unwrap()
        .1;
    assert!(csv.contains(&ani_email), "the CSV carries the same data");
    for (name, text) in &files {
        for foreign in [
            rudi["id"].as_str().unwrap(),
            rudi_order["id"].as_str().unwrap(),
            "Rudi Hartono",
            "Kenanga",
            "9999",
        ] {
            assert!(
                !text.contains(foreign),
                "{name} holds someone else's `{foreign}`"
            );
        }
    }
    assert_eq!(
        app.post_json(
            "/api/v1/privacy/exports/download",
            None,
            &json!({"token": download})
        )
        .await
        .status(),
        400,
        "the download works once"
    );

    let payloads: Vec<String> = sqlx::query_scalar(
        "select payload::text from outbox where tenant_id = $1 and event_type like 'privacy.%'",
    )
    .bind(merchant.tenant)
    .fetch_all(app.system.pool())
    .await
    .unwrap();
    assert!(payloads.len() >= 3);
    for payload in payloads {
        assert!(
            !payload.contains(&ani_email)
                && !payload.contains("Ani Wijaya")
                && !payload.contains(&download)
        );
    }
}

#[tokio::test]
async fn public_requests_answer_alike_for_strangers_and_exports_are_rate_limited() {
    let app = TestApp::builder()
        .set("WARUNG_PRIVACY__EXPORTS_PER_SUBJECT_PER_DAY", "2")
        .start()
        .await;
    let merchant = app.merchant().await;
    let cashier = app.staff(&merchant, Role::Cashier).await;
    let email = format!("sari.{}@example.id", uuid::Uuid::now_v7().simple());
    let customer = app.customer(&cashier, &customer_body(&email)).await;
    let client = app.client_from([127, 0, 8, 8]);
    let public = |body: Value| {
        let client = client.clone();
        let url = app.url("/api/v1/privacy/requests");
        async move { client.post(url).json(&body).send().await.unwrap() }
    };
    let count = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from privacy_requests where tenant_id = $1")
            .bind(merchant.tenant)
            .fetch_one(app.system.pool())
            .await
            .unwrap()
    };

    for body in [
        json!({"type": "access", "tenant": merchant.slug, "email": "nobody@example.id"}),
        json!({"type": "access", "tenant": "no-such-shop", "email": email}),
    ] {
        let response = public(body).await;
        assert_eq!(response.status(), 202);
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({"status": "accepted"})
        );
    }
    assert_eq!(count().await, 0, "strangers file nothing");
    let response =
        public(json!({"type": "access", "tenant": merchant.slug, "email": email.to_uppercase()}))
            .await;
    assert_eq!(response.status(), 202);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "accepted"})
    );
    assert_eq!(count().await, 1, "a customer's own address files a request");
    let channel: String =
        sqlx::query_scalar("select channel from privacy_requests where tenant_id = $1")
            .bind(merchant.tenant)
            .fetch_one(app.system.pool())
            .await
            .unwrap();
    assert_eq!(channel, "public");
    let missing = public(json!({"type": "access"})).await;
    assert_eq!(missing.status(), 422);
    let problem: Value = missing.json().await.unwrap();
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["tenant", "email"]);
    assert_eq!(
        public(json!({"type": "gossip", "tenant": merchant.slug, "email": email}))
            .await
            .status(),
        422
    );

    let id = customer["id"].as_str().unwrap();
    // Unconfirmed requests (the public one above) do not use up the person's exports.
    for _ in 0..2 {
        file_for(&app, &merchant.owner, "export", id).await;
        confirm(&app, merchant.tenant, id).await;
    }
    let refused = file(
        &app,
        &merchant.owner,
        json!({"type": "export", "subject": {"kind": "customer", "id": id}}),
    )
    .await;
    // Two bundles a day per person.
    testkit::rate_limited(refused, "exports_per_person").await;
    assert_eq!(count().await, 3);
    // The public access request still waits for its confirmation: filing it again is that
    // request (no second request, no second mail).
    let hidden = public(json!({"type": "access", "tenant": merchant.slug, "email": email})).await;
    assert_eq!(hidden.status(), 202, "the public answer never tells");
    assert_eq!(count().await, 3);
    let restriction = file_for(&app, &cashier, "restriction", id).await;
    let again = file_for(&app, &cashier, "restriction", id).await;
    assert_eq!(
        again["id"], restriction["id"],
        "one open identity check per type"
    );
    assert_eq!(count().await, 4);
    // Anyone who knows the address can file, but cannot block the person's own requests nor
    // flood their mailbox: many filings are one request, whose link is in the person's mail.
    for _ in 0..6 {
        let response =
            public(json!({"type": "erasure", "tenant": merchant.slug, "email": email})).await;
        assert_eq!(response.status(), 202);
    }
    assert_eq!(count().await, 5);
    let identity_checks: i64 = sqlx::query_scalar(
        "select count(*) from outbox where tenant_id = $1 and event_type = 'privacy.identity_check_requested'",
    )
    .bind(merchant.tenant)
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    assert_eq!(identity_checks, 5, "one mail per request, not per filing");
    let own = confirm(&app, merchant.tenant, id).await;
    assert_eq!(own["type"], "erasure");
    assert_ne!(own["status"], "awaiting_verification");

    let stranger = app.merchant().await;
    let foreign = file(
        &app,
        &stranger.owner,
        json!({"type": "erasure", "subject": {"kind": "customer", "id": id}}),
    )
    .await;
    assert_eq!(foreign.status(), 404, "another shop's customer");
    let bad_token = app
        .client
        .post(app.url("/api/v1/privacy/requests"))
        .header("authorization", "Bearer not-a-token")
        .json(&json!({"type": "access"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        bad_token.status(),
        401,
        "a token that is sent must be valid"
    );
}

#[tokio::test]
async fn due_dates_follow_the_shops_law_and_the_owner_sees_the_clock() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = TestApp::builder().clock(clock.clone()).start().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let cashier = app.staff(&merchant, Role::Cashier).await;
    let customer = app
        .customer(
            &cashier,
            &customer_body(&format!(
                "dewi.{}@example.id",
                uuid::Uuid::now_v7().simple()
            )),
        )
        .await;
    let id = customer["id"].as_str().unwrap();

    let settings: Value = app
        .get_as("/api/v1/privacy/settings", &owner.bearer())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        settings,
        json!({"jurisdiction": "uu_pdp", "erasure_grace_hours": 0})
    );
    let access = file_for(&app, &merchant.owner, "access", id).await;
    let erasure = file_for(&app, &merchant.owner, "erasure", id).await;
    assert_eq!(
        at(&access["due_at"]) - at(&access["received_at"]),
        TimeDelta::hours(72)
    );
    let erasure_due = at(&erasure["due_at"]);
    let received = at(&erasure["received_at"]);
    assert!(
        (28..=31).contains(&(erasure_due - received).num_days()),
        "UU PDP sets no shorter bound for erasure"
    );

    let change = |body: Value, who: &Staff| {
        let body = body.clone();
        let who = who.clone();
        let app = &app;
        async move {
            app.send("PUT", "/api/v1/privacy/settings", &who, None, Some(&body))
                .await
        }
    };
    for (body, who, status) in [
        (
            json!({"jurisdiction": "gdpr", "erasure_grace_hours": 24}),
            &cashier,
            403,
        ),
        (
            json!({"jurisdiction": "gdpr", "erasure_grace_hours": 1000}),
            owner,
            422,
        ),
        (
            json!({"jurisdiction": "mars", "erasure_grace_hours": 0}),
            owner,
            422,
        ),
        (
            json!({"jurisdiction": "gdpr", "erasure_grace_hours": 24}),
            owner,
            200,
        ),
    ] {
        assert_eq!(change(body.clone(), who).await.status(), status, "{body}");
    }
    let gdpr = file_for(&app, &cashier, "withdrawal", id).await;
    assert_eq!(gdpr["jurisdiction"], "gdpr");
    let received = at(&gdpr["received_at"]);
    assert_eq!(
        at(&gdpr["due_at"]),
        received.checked_add_months(chrono::Months::new(1)).unwrap(),
        "one calendar month"
    );

    let sla = |list: &Value, request: &Value| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == request["id"])
            .unwrap()["sla"]
            .clone()
    };
    let list = |query: &'static str| {
        let bearer = owner.bearer();
        let app = &app;
        async move {
            let response = app
                .get_as(&format!("/api/v1/privacy/requests{query}"), &bearer)
                .await;
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let now = list("?open=true").await;
    assert_eq!(now["items"].as_array().unwrap().len(), 3);
    assert_eq!(sla(&now, &access), "on_time");
    clock.advance(TimeDelta::hours(50));
    assert_eq!(
        sla(&list("").await, &access),
        "due_soon",
        "22 hours left of 72"
    );
    clock.advance(TimeDelta::hours(23));
    let later = list("?open=true").await;
    assert_eq!(sla(&later, &access), "overdue");
    assert_eq!(sla(&later, &gdpr), "on_time");
    assert_eq!(
        app.get_as("/api/v1/privacy/requests", &cashier.bearer())
            .await
            .status(),
        403,
        "the clock is the owner's to watch"
    );
    let one = app
        .get_as(
            &format!(
                "/api/v1/privacy/requests/{}",
                access["id"].as_str().unwrap()
            ),
            &owner.bearer(),
        )
        .await;
    assert_eq!(one.status(), 200);
    let stranger = app.merchant().await;
    let foreign = app
        .get_as(
            &format!(
                "/api/v1/privacy/requests/{}",
                access["id"].as_str().unwrap()
            ),
            &stranger.owner.bearer(),
        )
        .await;
    assert_eq!(foreign.status(), 404);

    // The identity link outlives nobody's patience: after 48 hours it is dead.
    let token = app
        .subject_token(
            merchant.tenant,
            id.parse().unwrap(),
            "privacy.identity_check_requested",
        )
        .await;
    let expired = app
        .post_json(
            "/api/v1/privacy/requests/confirm",
            None,
            &json!({"token": token}),
        )
        .await;
    assert_eq!(expired.status(), 400);
}

async fn consents(app: &TestApp, staff: &Staff, customer: &str) -> Value {
    app.get_as(
        &format!("/api/v1/customers/{customer}/consents"),
        &staff.bearer(),
    )
    .await
    .json()
    .await
    .unwrap()
}

fn granted(overview: &Value, purpose: &str) -> bool {
    overview["consents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["purpose"] == purpose)
        .unwrap()["granted"]
        .as_bool()
        .unwrap()
}

#[tokio::test]
async fn a_withdrawal_request_withdraws_every_optional_purpose_at_once() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let cashier = app.staff(&merchant, Role::Cashier).await;
    let mut body = customer_body(&format!(
        "wati.{}@example.id",
        uuid::Uuid::now_v7().simple()
    ));
    body["consents"] = json!([
        {"purpose": "orders", "granted": true},
        {"purpose": "receipt_email", "granted": true},
        {"purpose": "marketing", "granted": true},
    ]);
    let customer = app.customer(&cashier, &body).await;
    let id = customer["id"].as_str().unwrap();
    file_for(&app, &cashier, "withdrawal", id).await;
    assert!(
        granted(&consents(&app, &cashier, id).await, "receipt_email"),
        "not before it is confirmed"
    );

    let done = confirm(&app, merchant.tenant, id).await;
    assert_eq!(done["outcome"], "withdrawn");
    let now = consents(&app, &cashier, id).await;
    assert!(!granted(&now, "marketing"));
    assert!(!granted(&now, "receipt_email"));
    assert!(
        granted(&now, "orders"),
        "a required purpose is kept: withdrawing it is erasure"
    );
    let methods: Vec<String> = sqlx::query_scalar(
        "select distinct method from consent_records where subject_id = $1::uuid and not granted",
    )
    .bind(id)
    .fetch_all(app.system.pool())
    .await
    .unwrap();
    assert_eq!(methods, ["request"]);
}

#[tokio::test]
async fn a_restricted_customer_is_stored_but_not_processed_until_lifted() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let cashier = app.staff(&merchant, Role::Cashier).await;
    let customer = app
        .customer(
            &cashier,
            &customer_body(&format!(
                "joko.{}@example.id",
                uuid::Uuid::now_v7().simple()
            )),
        )
        .await;
    let id = customer["id"].as_str().unwrap();
    let product = app.product(&merchant.owner, 5_000, 10).await;
    let order = json!({"lines": [{"product_id": product["id"], "quantity": 1}], "customer_id": id});

    file_for(&app, &cashier, "restriction", id).await;
    app.order(&cashier, &order).await;
    assert_eq!(
        confirm(&app, merchant.tenant, id).await["outcome"],
        "restricted"
    );

    let refused = app
        .send(
            "POST",
            "/api/v1/orders",
            &cashier,
            Some(&uuid::Uuid::now_v7().to_string()),
            Some(&order),
        )
        .await;
    assert_eq!(refused.status(), 409);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["code"],
        "subject_restricted"
    );
    let stored = app
        .get_as(&format!("/api/v1/customers/{id}"), &cashier.bearer())
        .await;
    assert_eq!(stored.status(), 200, "storage goes on");
    let lift = format!("/api/v1/customers/{id}/restriction");
    assert_eq!(
        app.send("DELETE", &lift, &cashier, None, None)
            .await
            .status(),
        403
    );
    assert_eq!(
        app.send("DELETE", &lift, &merchant.owner, None, None)
            .await
            .status(),
        204
    );
    // The person learns that their data is processed again (GDPR art. 18(3)).
    let told: Vec<Value> = sqlx::query_scalar(
        "select payload from outbox where tenant_id = $1 and event_type = 'privacy.restriction_lifted'",
    )
    .bind(merchant.tenant)
    .fetch_all(app.system.pool())
    .await
    .unwrap();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0]["subject"], json!({"kind": "customer", "id": id}));
    app.order(&cashier, &order).await;
}

#[tokio::test]
async fn a_staff_members_export_holds_their_sign_ins_and_never_a_hash_or_token() {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let cashier = app.staff(&merchant, Role::Cashier).await;
    let filed = file(&app, &cashier, json!({"type": "export"})).await;
    assert_eq!(filed.status(), 201);
    let id = cashier.id.to_string();
    confirm(&app, merchant.tenant, &id).await;
    let download = app
        .subject_token(merchant.tenant, cashier.id.0, "privacy.export_ready")
        .await;
    let response = app
        .post_json(
            "/api/v1/privacy/exports/download",
            None,
            &json!({"token": download}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let files = unzip(&response.bytes().await.unwrap());
    let data: Value =
        serde_json::from_str(&files.iter().find(|(n, _)| n == "data.json").unwrap().1).unwrap();
    let sessions = data["auth.sessions"].as_array().expect("auth.sessions");
    assert!(!sessions.is_empty(), "{data}");
    assert!(sessions[0]["signed_in_at"].is_string());
    assert_eq!(data["auth.password"][0]["password_set"], true);
    let hash: String =
        sqlx::query_scalar("select password_hash from credentials where user_id = $1")
            .bind(cashier.id)
            .fetch_one(app.system.pool())
            .await
            .unwrap();
    for (name, text) in &files {
        assert!(!text.contains("$argon2"), "{name} carries a password hash");
        assert!(!text.contains(&hash), "{name}");
        assert!(
            !text.contains(&cashier.refresh),
            "{name} carries a refresh token"
        );
    }
}

#[tokio::test]
async fn requests_filed_before_the_export_quota_was_used_up_build_no_more_bundles() {
    let app = TestApp::builder()
        .set("WARUNG_PRIVACY__EXPORTS_PER_SUBJECT_PER_DAY", "1")
        .start()
        .await;
    let merchant = app.merchant().await;
    let email = format!("kiki.{}@example.id", uuid::Uuid::now_v7().simple());
    let customer = app.customer(&merchant.owner, &customer_body(&email)).await;
    let id = customer["id"].as_str().unwrap();
    // Both filed while the quota is untouched; each waits for its confirmation.
    let access = file_for(&app, &merchant.owner, "access", id).await;
    let export = file_for(&app, &merchant.owner, "export", id).await;
    let subject: uuid::Uuid = id.parse().unwrap();
    let token = |request: &Value| {
        let request = request["id"].as_str().unwrap().to_owned();
        let app = &app;
        async move {
            app.request_token(
                merchant.tenant,
                subject,
                "privacy.identity_check_requested",
                Some(&request),
            )
            .await
        }
    };
    let confirm_with = |token: String| {
        let app = &app;
        async move {
            let response = app
                .post_json(
                    "/api/v1/privacy/requests/confirm",
                    None,
                    &json!({"token": token}),
                )
                .await;
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let first = confirm_with(token(&access).await).await;
    assert_eq!(first["outcome"], "exported");
    let second = confirm_with(token(&export).await).await;
    assert_eq!(second["status"], "rejected", "{second}");
    assert_eq!(second["outcome"], "export_quota");
    let bundles: i64 =
        sqlx::query_scalar("select count(*) from privacy_exports where subject_id = $1::uuid")
            .bind(id)
            .fetch_one(app.system.pool())
            .await
            .unwrap();
    assert_eq!(bundles, 1);
}

#[tokio::test]
async fn a_rectification_waits_for_the_owner_who_resolves_it_once_and_no_other_shop_can() {
    let app = TestApp::spawn().await;
    let merchant = app.verified_merchant().await;
    let other = app.verified_merchant().await;
    let email = format!("rectify.{}@example.id", uuid::Uuid::now_v7().simple());
    let customer = app.customer(&merchant.owner, &customer_body(&email)).await;
    let id = customer["id"].as_str().unwrap();
    let filed = file_for(&app, &merchant.owner, "rectification", id).await;
    let request = filed["id"].as_str().unwrap().to_owned();
    assert_eq!(filed["status"], "awaiting_verification", "{filed}");
    // Before the person confirms, there is nothing to resolve.
    let resolve = |staff: &Staff, outcome: &'static str| {
        let path = format!("/api/v1/privacy/requests/{request}/resolve");
        let body = json!({ "outcome": outcome });
        let staff = staff.clone();
        let app = &app;
        async move { app.send("POST", &path, &staff, None, Some(&body)).await }
    };
    let early = resolve(&merchant.owner, "rectified").await;
    assert_eq!(early.status(), 409);
    let problem: Value = early.json().await.unwrap();
    assert_eq!(problem["code"], "request_not_in_progress");

    confirm(&app, merchant.tenant, id).await;
    let waiting: Value = app
        .get_as(
            &format!("/api/v1/privacy/requests/{request}"),
            &merchant.owner.bearer(),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(waiting["status"], "in_progress", "{waiting}");

    // Another shop's owner finds no such request, and changes nothing.
    assert_eq!(resolve(&other.owner, "rectified").await.status(), 404);
    let cashier = app.staff(&merchant, Role::Cashier).await;
    assert_eq!(resolve(&cashier, "rectified").await.status(), 403);

    let done = resolve(&merchant.owner, "rectified").await;
    assert_eq!(done.status(), 200, "{}", done.text().await.unwrap());
    let done: Value = done.json().await.unwrap();
    assert_eq!(
        (done["status"].as_str(), done["outcome"].as_str()),
        (Some("completed"), Some("rectified")),
        "{done}"
    );
    assert!(done["completed_at"].is_string(), "{done}");
    // Once closed, it stays closed: a second resolution is refused.
    let again = resolve(&merchant.owner, "rejected").await;
    assert_eq!(again.status(), 409);
    let closed: Value = app
        .get_as(
            &format!("/api/v1/privacy/requests/{request}"),
            &merchant.owner.bearer(),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(closed["outcome"], "rectified", "{closed}");
}
