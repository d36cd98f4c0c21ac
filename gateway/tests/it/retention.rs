//! Retention jobs against the real stack: each shop's choice within the legal bounds, never
//! inside the legal minimum, dry runs that change nothing, an audit record of what went, and a
//! run stopped midway finished by the next.

use std::time::Duration;

use platform::{Role, id::TenantId};
use serde_json::{Value, json};
use testkit::TestApp;

/// A finished (or waiting) mail of `tenant`, last touched `days_ago`.
async fn delivery(app: &TestApp, tenant: TenantId, status: &str, days_ago: i32) -> uuid::Uuid {
    let id = uuid::Uuid::now_v7();
    sqlx::query(
        "insert into notification_deliveries (tenant_id, id, event_id, event_type, template,
             recipient_kind, recipient_id, context, status, created_at, updated_at)
         values ($1, $2, $2, 'direct', 'password_reset', 'staff', $2, '{}', $3,
                 now() - make_interval(days => $4), now() - make_interval(days => $4))",
    )
    .bind(tenant)
    .bind(id)
    .bind(status)
    .bind(days_ago)
    .execute(app.system.pool())
    .await
    .unwrap();
    id
}

async fn exists(app: &TestApp, id: uuid::Uuid) -> bool {
    sqlx::query_scalar("select exists (select 1 from notification_deliveries where id = $1)")
        .bind(id)
        .fetch_one(app.system.pool())
        .await
        .unwrap()
}

async fn swept(app: &TestApp, tenant: TenantId, category: &str) -> Vec<i64> {
    sqlx::query_scalar(
        "select (payload->'details'->>'removed')::bigint from outbox
         where tenant_id = $1 and event_type = 'retention.swept'
           and payload->'details'->>'category' = $2 order by seq",
    )
    .bind(tenant)
    .bind(category)
    .fetch_all(app.system.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn retention_follows_each_shops_choice_and_never_goes_inside_the_legal_minimum() {
    let app = TestApp::spawn().await;
    let short = app.merchant().await;
    let default = app.merchant().await;
    let choose = |body: Value, who: &testkit::Staff| {
        let (app, who) = (&app, who.clone());
        async move {
            app.send("PUT", "/api/v1/retention/policies", &who, None, Some(&body))
                .await
        }
    };
    let cashier = app.staff(&short, Role::Cashier).await;
    assert_eq!(
        choose(
            json!({"category": "notification_logs", "days": 30}),
            &cashier
        )
        .await
        .status(),
        403
    );
    for refused in [
        json!({"category": "notification_logs", "days": 10}),
        json!({"category": "notification_logs", "days": 5000}),
        json!({"category": "no_such_thing", "days": 30}),
    ] {
        let response = choose(refused.clone(), &short.owner).await;
        assert_eq!(response.status(), 422, "{refused}");
    }
    let chosen = choose(
        json!({"category": "notification_logs", "days": 30}),
        &short.owner,
    )
    .await;
    assert_eq!(chosen.status(), 200);
    let policies: Value = chosen.json().await.unwrap();
    let logs = policies["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["category"] == "notification_logs")
        .unwrap();
    assert_eq!(logs["days"], 30);
    assert_eq!(logs["legal_min_days"], 30);
    assert_eq!(logs["overridden"], true);
    let theirs: Value = app
        .get_as("/api/v1/retention/policies", &default.owner.bearer())
        .await
        .json()
        .await
        .unwrap();
    assert!(
        theirs["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["category"] == "notification_logs" && p["days"] == 180),
        "one shop's choice is not another's"
    );

    let old_sent = delivery(&app, short.tenant, "sent", 40).await;
    let young_sent = delivery(&app, short.tenant, "sent", 20).await;
    let old_waiting = delivery(&app, short.tenant, "pending", 40).await;
    let kept_by_default = delivery(&app, default.tenant, "dead", 40).await;
    let past_default = delivery(&app, default.tenant, "cancelled", 200).await;
    let all = [
        old_sent,
        young_sent,
        old_waiting,
        kept_by_default,
        past_default,
    ];

    let dry = app
        .run_job_to_completion("retention.notifications", true)
        .await;
    assert!(dry.get("notification_logs") >= 2, "{dry:?}");
    for id in all {
        assert!(exists(&app, id).await, "a dry run removed {id}");
    }

    let report = app
        .run_job_to_completion("retention.notifications", false)
        .await;
    assert!(report.get("notification_logs") >= 2, "{report:?}");
    assert!(!exists(&app, old_sent).await, "past the shop's 30 days");
    assert!(exists(&app, young_sent).await, "inside the legal minimum");
    assert!(
        exists(&app, old_waiting).await,
        "mail still waiting is not a log"
    );
    assert!(
        exists(&app, kept_by_default).await,
        "the default is 180 days"
    );
    assert!(!exists(&app, past_default).await);
    assert_eq!(swept(&app, short.tenant, "notification_logs").await, [1]);
    assert_eq!(swept(&app, default.tenant, "notification_logs").await, [1]);

    // A stored value below the minimum (say, a bound raised after it was chosen) still counts
    // as the minimum: the cutoff is never inside it.
    let owner = app.owner_pool().await;
    let mut tx = owner.begin().await.unwrap();
    sqlx::query("alter table retention_overrides disable row level security")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("update retention_overrides set days = 1 where tenant_id = $1")
        .bind(short.tenant)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("alter table retention_overrides enable row level security")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    app.run_job_to_completion("retention.notifications", false)
        .await;
    assert!(
        exists(&app, young_sent).await,
        "20 days < the 30-day legal minimum"
    );
}

#[tokio::test]
async fn a_retention_run_stopped_midway_is_finished_by_the_next_run() {
    // A database of its own: the runs counted below are this test's and no one else's.
    let app = TestApp::builder()
        .isolated()
        .set("WARUNG_JOBS__RETENTION_BATCH_SIZE", "2")
        .set("WARUNG_JOBS__LOCK_TTL_MS", "3000")
        .start()
        .await;
    let t = app.tenant().await;
    let mut tx = app.tenant_tx(t.id).await;
    sqlx::query(
        "insert into auth_tokens (tenant_id, token_hash, purpose, user_id, created_at, expires_at)
         select $1, sha256(gen_random_uuid()::text::bytea), 'password_reset', gen_random_uuid(),
                now() - interval '20 days', now() - interval '10 days'
         from generate_series(1, 400)",
    )
    .bind(t.id)
    .execute(&mut *tx)
    .await
    .unwrap();
    testkit::audited(&mut tx, "test.seeded").await;
    tx.commit().await.unwrap();
    let left = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from auth_tokens where tenant_id = $1")
            .bind(t.id)
            .fetch_one(app.system.pool())
            .await
            .unwrap()
    };

    // The process dies mid-run: the run's future is dropped after its first batches.
    let runner = app.job_runner();
    let job = auth::jobs(&app.state).remove(0);
    let killed = tokio::spawn(async move {
        runner
            .run(
                &job,
                platform::jobs::Trigger::Manual,
                false,
                &Default::default(),
            )
            .await
    });
    while swept(&app, t.id, "auth_tokens").await.is_empty() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    killed.abort();
    let _ = killed.await;
    let after_kill = left().await;
    assert!(
        (1..400).contains(&after_kill),
        "stopped midway: {after_kill} left"
    );
    let removed: i64 = swept(&app, t.id, "auth_tokens").await.iter().sum();
    assert_eq!(
        removed,
        400 - after_kill,
        "every batch that went is on record"
    );

    app.run_job_to_completion("retention.auth", false).await;
    assert_eq!(left().await, 0, "the next run finished the work");
    let removed: i64 = swept(&app, t.id, "auth_tokens").await.iter().sum();
    assert_eq!(removed, 400, "and the records add up");
    let runs: Vec<(String, Option<String>)> = sqlx::query_as(
        "select outcome, error from job_runs where job = 'retention.auth' order by id",
    )
    .fetch_all(app.system.pool())
    .await
    .unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0].0, "failed", "the killed run is closed: {runs:?}");
    assert!(
        runs[0]
            .1
            .as_deref()
            .is_some_and(|e| e.starts_with("abandoned")),
        "as abandoned: {runs:?}"
    );
    assert_eq!(runs[1].0, "succeeded", "{runs:?}");
}

/// Every table each module's retention job sweeps is swept: a shop in ordinary use leaves a
/// row in each (a session, a verification token, an accepted invitation, an email change, a
/// marketing confirmation, an export bundle, an idempotency key); ten years on, the jobs
/// remove them all, each with its audit record.
#[tokio::test]
async fn each_swept_table_is_emptied_once_its_rows_are_past_retention() {
    let clock = std::sync::Arc::new(platform::clock::ManualClock::new(chrono::Utc::now()));
    let app = TestApp::builder()
        .isolated()
        .clock(clock.clone())
        .start()
        .await;
    let merchant = app.verified_merchant().await;
    let owner = &merchant.owner;
    app.staff(&merchant, Role::Cashier).await;
    let email = format!("sweep.{}@example.id", uuid::Uuid::now_v7().simple());
    let mut body = testkit::customer_body(&email);
    body["consents"][2]["granted"] = json!(true); // marketing: a confirmation is mailed
    let customer = app.customer(owner, &body).await;
    let id = customer["id"].as_str().unwrap();
    let changed = app
        .send(
            "PATCH",
            &format!("/api/v1/customers/{id}"),
            owner,
            None,
            Some(&json!({"email": format!("new.{email}")})),
        )
        .await;
    assert_eq!(changed.status(), 200, "{}", changed.text().await.unwrap());
    let filed = app
        .send(
            "POST",
            "/api/v1/privacy/requests",
            owner,
            None,
            Some(&json!({"type": "export", "subject": {"kind": "customer", "id": id}})),
        )
        .await;
    assert_eq!(filed.status(), 201);
    let token = app
        .subject_token(
            merchant.tenant,
            id.parse().unwrap(),
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
    let product = app.product(owner, 1_000, 5).await;
    app.order(
        owner,
        &json!({"lines": [{"product_id": product["id"], "quantity": 1}]}),
    )
    .await;

    let tables = [
        ("sessions", "sessions"),
        ("auth_tokens", "auth_tokens"),
        ("invitations", "staff_invitations"),
        ("email_changes", "customer_email_changes"),
        ("consent_confirmations", "consent_confirmations"),
        ("privacy_exports", "privacy_exports"),
        ("idempotency_keys", "idempotency_keys"),
    ];
    let rows = |table: &'static str| {
        let sql = format!("select count(*) from {table} where tenant_id = $1");
        let (app, tenant) = (&app, merchant.tenant);
        async move {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .fetch_one(app.system.pool())
                .await
                .unwrap()
        }
    };
    for (_, table) in tables {
        assert!(rows(table).await >= 1, "the shop left no row in {table}");
    }

    clock.advance(chrono::TimeDelta::days(3_650));
    for job in ["retention.auth", "retention.users", "retention.orders"] {
        app.run_job_to_completion(job, false).await;
    }
    for (category, table) in tables {
        assert_eq!(rows(table).await, 0, "{table} kept rows past retention");
        let removed: i64 = swept(&app, merchant.tenant, category).await.iter().sum();
        assert!(removed >= 1, "no audit record of what {category} removed");
    }
}
