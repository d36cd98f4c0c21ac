//! Envelope encryption against the real OpenBao: round trip, binding, shredding across
//! processes, rotation + rewrap, outage behaviour, blind indexes, no plaintext at rest.

use std::time::Duration;

use platform::{
    Error,
    pii::{IndexKind, Opened, PiiError, Sealed, Subject, SubjectId, SubjectKind, rewrap},
};
use sqlx::{AssertSqlSafe, Row};
use testkit::{FaultProxy, TestApp, url_addr};

const SHREDDER: platform::events::Actor = platform::events::Actor::System { name: "test" };

fn customer() -> Subject {
    Subject {
        id: SubjectId::new(),
        kind: SubjectKind::Customer,
    }
}

/// Seals `value` for `subject` and stores it in `table`, committed.
async fn store(
    app: &TestApp,
    tenant: platform::id::TenantId,
    table: &str,
    subject: Subject,
    value: &str,
) -> Sealed {
    let mut tx = app.tenant_tx(tenant).await;
    let sealed = app
        .state
        .pii
        .seal(&mut tx, subject, "customers.email", value)
        .await
        .unwrap();
    let index = app
        .state
        .pii
        .blind_index(&mut tx, IndexKind::Email, value)
        .await
        .unwrap();
    sqlx::query(AssertSqlSafe(format!(
        "insert into {table} (tenant_id, id, email, email_index) values ($1, $2, $3, $4)"
    )))
    .bind(tenant)
    .bind(subject.id)
    .bind(&sealed)
    .bind(&index.0)
    .execute(&mut *tx)
    .await
    .unwrap();
    testkit::audited(&mut tx, "test.change").await;
    tx.commit().await.unwrap();
    sealed
}

#[tokio::test]
async fn sealed_values_round_trip_and_only_open_where_they_were_sealed() {
    let app = TestApp::spawn().await;
    let (t, other_tenant) = (app.tenant().await, app.tenant().await);
    let (alice, bob) = (customer(), customer());

    let mut tx = app.tenant_tx(t.id).await;
    let sealed = app
        .state
        .pii
        .seal(&mut tx, alice, "customers.email", "alice@example.id")
        .await
        .unwrap();
    app.state
        .pii
        .seal(&mut tx, bob, "customers.email", "bob@example.id")
        .await
        .unwrap();
    testkit::audited(&mut tx, "test.change").await;
    tx.commit().await.unwrap();

    let mut tx = app.tenant_tx(t.id).await;
    let opened = app
        .state
        .pii
        .open(&mut tx, alice.id, "customers.email", &sealed)
        .await
        .unwrap();
    assert_eq!(opened.value(), Some("alice@example.id"));

    // Moved to another column, another subject's row: refused, not opened.
    for (subject, field) in [(alice.id, "customers.phone"), (bob.id, "customers.email")] {
        let err = app
            .state
            .pii
            .open(&mut tx, subject, field, &sealed)
            .await
            .unwrap_err();
        assert!(matches!(err, PiiError::Corrupt { .. }), "{err:?}");
    }
    drop(tx);

    // Another tenant does not even have the subject's key: the value cannot be opened there.
    let mut tx = app.tenant_tx(other_tenant.id).await;
    let opened = app
        .state
        .pii
        .open(&mut tx, alice.id, "customers.email", &sealed)
        .await
        .unwrap();
    assert_eq!(opened, Opened::Erased);
}

#[tokio::test]
async fn the_database_holds_no_plaintext_after_a_create() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    let table = app
        .scratch_table("email bytea not null, email_index bytea not null")
        .await;
    let email = format!("plain-{}@example.id", uuid::Uuid::now_v7().simple());
    store(&app, t.id, &table, customer(), &email).await;

    // Scan the text of every row the system role can read, in every table, for the address in
    // plain text and in hex (how bytea prints).
    let system = app.system.pool();
    let tables: Vec<String> = sqlx::query_scalar(
        "select c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'public' and c.relkind in ('r', 'p') and has_table_privilege(c.oid, 'select')",
    )
    .fetch_all(system)
    .await
    .unwrap();
    for must in [table.as_str(), "subject_keys", "pii_index_keys", "tenants"] {
        assert!(tables.iter().any(|t| t == must), "{must} not scanned");
    }
    let hex: String = email.bytes().map(|b| format!("{b:02x}")).collect();
    for name in &tables {
        let hits: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "select count(*) from {name} x where x::text ilike '%' || $1 || '%' or x::text ilike '%' || $2 || '%'"
        )))
        .bind(&email)
        .bind(&hex)
        .fetch_one(system)
        .await
        .unwrap();
        assert_eq!(hits, 0, "plaintext email found in {name}");
    }
    app.drop_table(&table).await;
}

#[tokio::test]
async fn blind_index_finds_by_email_regardless_of_case_and_whitespace_but_never_across_tenants() {
    let app = TestApp::spawn().await;
    let (t, other) = (app.tenant().await, app.tenant().await);
    let table = app
        .scratch_table("email bytea not null, email_index bytea not null")
        .await;
    let subject = customer();
    store(&app, t.id, &table, subject, "Siti.Rahma@Example.ID").await;
    // The same address in another tenant.
    store(&app, other.id, &table, customer(), "siti.rahma@example.id").await;

    let find = |tenant| {
        let (app, table) = (&app, &table);
        async move {
            let mut tx = app.tenant_tx(tenant).await;
            let index = app
                .state
                .pii
                .blind_index(&mut tx, IndexKind::Email, "  siti.rahma@example.id ")
                .await
                .unwrap();
            let rows = sqlx::query(AssertSqlSafe(format!(
                "select id from {table} where email_index = $1"
            )))
            .bind(&index.0)
            .fetch_all(&mut *tx)
            .await
            .unwrap();
            (
                index,
                rows.iter()
                    .map(|r| r.get::<uuid::Uuid, _>("id"))
                    .collect::<Vec<_>>(),
            )
        }
    };
    let (index_t, found) = find(t.id).await;
    assert_eq!(found, vec![subject.id.0]);
    let (index_other, found_other) = find(other.id).await;
    assert_eq!(found_other.len(), 1);
    assert_ne!(found_other, vec![subject.id.0]);
    assert_ne!(
        index_t, index_other,
        "indexes of different tenants must be unrelated"
    );
    app.drop_table(&table).await;
}

#[tokio::test]
async fn shred_erases_one_subject_everywhere_and_leaves_others_readable() {
    let app = TestApp::spawn().await;
    // A second process with its own DEK cache, as another replica would have.
    let peer = TestApp::spawn().await;
    let t = app.tenant().await;
    let (gone, kept) = (customer(), customer());

    let mut tx = app.tenant_tx(t.id).await;
    let gone_email = app
        .state
        .pii
        .seal(&mut tx, gone, "customers.email", "gone@example.id")
        .await
        .unwrap();
    let gone_name = app
        .state
        .pii
        .seal(&mut tx, gone, "customers.full_name", "Gone Person")
        .await
        .unwrap();
    let kept_email = app
        .state
        .pii
        .seal(&mut tx, kept, "customers.email", "kept@example.id")
        .await
        .unwrap();
    testkit::audited(&mut tx, "test.change").await;
    tx.commit().await.unwrap();

    // The peer opens once, so it has the DEK cached.
    let mut tx = peer.tenant_tx(t.id).await;
    let warm = peer
        .state
        .pii
        .open(&mut tx, gone.id, "customers.email", &gone_email)
        .await
        .unwrap();
    assert_eq!(warm.value(), Some("gone@example.id"));
    drop(tx);

    assert!(
        app.state
            .pii
            .shred(&app.state.db, t.id, gone.id, SHREDDER)
            .await
            .unwrap()
    );
    assert!(
        !app.state
            .pii
            .shred(&app.state.db, t.id, gone.id, SHREDDER)
            .await
            .unwrap(),
        "idempotent"
    );

    let items = [
        (gone.id, "customers.email", &gone_email),
        (gone.id, "customers.full_name", &gone_name),
        (kept.id, "customers.email", &kept_email),
    ];
    let mut tx = app.tenant_tx(t.id).await;
    let opened = app.state.pii.open_many(&mut tx, &items).await.unwrap();
    assert_eq!(opened[0], Opened::Erased);
    assert_eq!(opened[1], Opened::Erased);
    assert_eq!(opened[2].value(), Some("kept@example.id"));
    drop(tx);

    // The peer learns of the shred through Redis, well before its cache TTL.
    let mut erased_at_peer = false;
    for _ in 0..50 {
        let mut tx = peer.tenant_tx(t.id).await;
        if peer
            .state
            .pii
            .open(&mut tx, gone.id, "customers.email", &gone_email)
            .await
            .unwrap()
            == Opened::Erased
        {
            erased_at_peer = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        erased_at_peer,
        "the peer process still opened a shredded subject's data"
    );
}

#[tokio::test]
async fn open_many_costs_one_transit_call_for_many_subjects_on_a_cold_cache() {
    let writer = TestApp::spawn().await;
    let t = writer.tenant().await;
    let mut tx = writer.tenant_tx(t.id).await;
    let mut items = Vec::new();
    for i in 0..100 {
        let subject = customer();
        let sealed = writer
            .state
            .pii
            .seal(
                &mut tx,
                subject,
                "customers.email",
                &format!("c{i}@example.id"),
            )
            .await
            .unwrap();
        items.push((subject.id, sealed));
    }
    testkit::audited(&mut tx, "test.change").await;
    tx.commit().await.unwrap();

    // A fresh process: nothing cached.
    let reader = TestApp::spawn().await;
    let calls_before = transit_calls(&reader, "decrypt_batch").await;
    let mut tx = reader.tenant_tx(t.id).await;
    let request: Vec<_> = items
        .iter()
        .map(|(s, sealed)| (*s, "customers.email", sealed))
        .collect();
    let opened = reader.state.pii.open_many(&mut tx, &request).await.unwrap();
    assert_eq!(opened.len(), 100);
    assert_eq!(opened[42].value(), Some("c42@example.id"));
    assert_eq!(
        transit_calls(&reader, "decrypt_batch").await - calls_before,
        1.0
    );
}

/// This process's `transit_calls_total{call}` from `/metrics` (summed over outcomes).
async fn transit_calls(app: &TestApp, call: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("transit_calls_total{") && l.contains(&format!("call=\"{call}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn rotate_and_rewrap_keep_data_readable_and_leave_no_key_on_an_old_version() {
    // A database of its own: the rewrap's counts are this test's keys and no one else's.
    let app = TestApp::builder().isolated().start().await;
    let t = app.tenant().await;
    let subjects: Vec<Subject> = (0..5).map(|_| customer()).collect();
    let mut tx = app.tenant_tx(t.id).await;
    let mut sealed = Vec::new();
    for (i, s) in subjects.iter().enumerate() {
        sealed.push(
            app.state
                .pii
                .seal(&mut tx, *s, "customers.email", &format!("r{i}@example.id"))
                .await
                .unwrap(),
        );
    }
    app.state
        .pii
        .blind_index(&mut tx, IndexKind::Email, "x")
        .await
        .unwrap();
    testkit::audited(&mut tx, "test.change").await;
    tx.commit().await.unwrap();

    let platform::pii::Keys::Vault(transit) = app.state.pii.keys() else {
        panic!("vault provider expected")
    };
    let before = transit.latest_version().await.unwrap();
    let latest = transit.rotate().await.unwrap();
    // Another test may rotate the shared KEK too; this one moved it on.
    assert!(latest > before, "{before} -> {latest}");

    // A damaged key must be reported, and must not block the others.
    let damaged = customer();
    let mut tx = app.tenant_tx(t.id).await;
    sqlx::query(
        "insert into subject_keys (tenant_id, subject_id, subject_kind, wrapped_dek, kek_version)
         values ($1, $2, 'customer', 'vault:v1:bm90IGEgcmVhbCBrZXk=', 1)",
    )
    .bind(t.id)
    .bind(damaged.id)
    .execute(&mut *tx)
    .await
    .unwrap();
    testkit::audited(&mut tx, "test.change").await;
    tx.commit().await.unwrap();

    let mut progress = 0;
    let report = rewrap::rewrap_all(app.state.pii.keys(), &app.system, 2, |done| progress = done)
        .await
        .unwrap();
    // The five subjects' keys and the tenant's blind-index key; the damaged one fails alone.
    assert_eq!(
        (report.rewrapped, report.skipped, report.failed),
        (6, 0, 1),
        "{report:?}"
    );
    assert_eq!(progress, 7, "every key is reported as it is done");
    let old_in_tenant = |system: &platform::db::SystemDb| {
        let pool = system.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "select count(*) from subject_keys where tenant_id = $1 and kek_version < $2",
            )
            .bind(t.id)
            .bind(latest)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(
        old_in_tenant(&app.system).await,
        1,
        "only the damaged key is left behind"
    );
    app.state
        .pii
        .shred(&app.state.db, t.id, damaged.id, SHREDDER)
        .await
        .unwrap();
    assert_eq!(old_in_tenant(&app.system).await, 0);
    let versions: Vec<i32> =
        sqlx::query_scalar("select kek_version from subject_keys where tenant_id = $1")
            .bind(t.id)
            .fetch_all(app.system.pool())
            .await
            .unwrap();
    assert!(versions.iter().all(|v| *v >= latest), "{versions:?}");

    // A fresh process (no cached DEKs) opens everything with the rewrapped keys.
    let fresh = TestApp::builder().alongside(&app).start().await;
    let mut tx = fresh.tenant_tx(t.id).await;
    let request: Vec<_> = subjects
        .iter()
        .zip(&sealed)
        .map(|(s, v)| (s.id, "customers.email", v))
        .collect();
    let opened = fresh.state.pii.open_many(&mut tx, &request).await.unwrap();
    for (i, o) in opened.iter().enumerate() {
        assert_eq!(o.value(), Some(format!("r{i}@example.id").as_str()));
    }
}

/// What a handler does: seal, then store, then commit. `?` stops at the first failure.
async fn create_customer(
    app: &TestApp,
    tenant: platform::id::TenantId,
    table: &str,
    subject: Subject,
    email: &str,
) -> Result<(), PiiError> {
    let mut tx = app.tenant_tx(tenant).await;
    let sealed = app
        .state
        .pii
        .seal(&mut tx, subject, "customers.email", email)
        .await?;
    let index = app
        .state
        .pii
        .blind_index(&mut tx, IndexKind::Email, email)
        .await?;
    sqlx::query(AssertSqlSafe(format!(
        "insert into {table} (tenant_id, id, email, email_index) values ($1, $2, $3, $4)"
    )))
    .bind(tenant)
    .bind(subject.id)
    .bind(&sealed)
    .bind(&index.0)
    .execute(&mut *tx)
    .await?;
    testkit::audited(&mut tx, "test.change").await;
    tx.commit().await?;
    Ok(())
}

#[tokio::test]
async fn vault_down_fails_with_503_and_writes_nothing() {
    let proxy = FaultProxy::start(url_addr("WARUNG_VAULT__ADDR")).await;
    let app = TestApp::builder()
        .set("WARUNG_VAULT__ADDR", format!("http://{}", proxy.addr))
        .set("WARUNG_VAULT__TIMEOUT_MS", "500")
        .set("WARUNG_PII__BREAKER_THRESHOLD", "2")
        .set("WARUNG_PII__BREAKER_COOLDOWN_MS", "1000")
        .set("WARUNG_PII__READY_KEYS", "2")
        .start()
        .await;
    let t = app.tenant().await;
    let table = app
        .scratch_table("email bytea not null, email_index bytea not null")
        .await;
    // Works while Vault is up: the flow really writes when it can.
    create_customer(&app, t.id, &table, customer(), "up@example.id")
        .await
        .unwrap();
    let merchant = app.verified_merchant().await;
    proxy.cut();

    let subject = customer();
    let err = create_customer(&app, t.id, &table, subject, "down@example.id")
        .await
        .unwrap_err();
    assert!(matches!(err, PiiError::KeyServiceUnavailable), "{err:?}");
    let problem = Error::from(err);
    assert_eq!(problem.status(), 503);
    assert_eq!(problem.code(), "key_service_unavailable");

    // After repeated failures the breaker opens: calls fail without trying Vault at all.
    let _ = create_customer(&app, t.id, &table, subject, "down@example.id").await;
    let attempts = transit_calls(&app, "datakey").await;
    let err = create_customer(&app, t.id, &table, subject, "down@example.id")
        .await
        .unwrap_err();
    assert!(matches!(err, PiiError::KeyServiceUnavailable));
    assert_eq!(
        transit_calls(&app, "datakey").await,
        attempts,
        "an open breaker must not call Vault"
    );

    let stored: i64 = sqlx::query_scalar(AssertSqlSafe(format!("select count(*) from {table}")))
        .fetch_one(app.system.pool())
        .await
        .unwrap();
    let keys: i64 = sqlx::query_scalar("select count(*) from subject_keys where subject_id = $1")
        .bind(subject.id)
        .fetch_one(app.system.pool())
        .await
        .unwrap();
    assert_eq!(
        (stored, keys),
        (1, 0),
        "only the customer created while Vault was up is stored"
    );
    // Through the API: new customers take keys made ahead (`pii.ready_keys`, 2 here) until
    // the pool runs dry; then a clear 503 that says to retry, and nothing written.
    let mut created = 0;
    let response = loop {
        let response = app
            .send(
                "POST",
                "/api/v1/customers",
                &merchant.owner,
                None,
                Some(&testkit::customer_body(&format!(
                    "vault.down.{created}@example.id"
                ))),
            )
            .await;
        if response.status() != 201 || created == 2 {
            break response;
        }
        created += 1;
    };
    assert_eq!(response.status(), 503, "after {created} from the pool");
    assert!(response.headers().contains_key("retry-after"));
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "key_service_unavailable", "{problem}");
    let customers: i64 = sqlx::query_scalar("select count(*) from customers where tenant_id = $1")
        .bind(merchant.tenant)
        .fetch_one(app.system.pool())
        .await
        .unwrap();
    assert_eq!(customers, created, "the refused one wrote nothing");

    // Back up: after the cooldown, one trial call closes the breaker and creating works again.
    proxy.restore();
    let mut ok = false;
    for _ in 0..40 {
        if create_customer(&app, t.id, &table, subject, "back@example.id")
            .await
            .is_ok()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(ok, "creating did not recover after Vault came back");
    app.drop_table(&table).await;
}

#[tokio::test]
async fn pii_metrics_are_exported() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    let mut tx = app.tenant_tx(t.id).await;
    let subject = customer();
    let sealed = app
        .state
        .pii
        .seal(&mut tx, subject, "customers.email", "m@example.id")
        .await
        .unwrap();
    app.state
        .pii
        .open(&mut tx, subject.id, "customers.email", &sealed)
        .await
        .unwrap();
    testkit::audited(&mut tx, "test.change").await;
    tx.commit().await.unwrap();
    app.state
        .pii
        .shred(&app.state.db, t.id, subject.id, SHREDDER)
        .await
        .unwrap();
    let text = app.get("/metrics").await.text().await.unwrap();
    for needle in [
        r#"encryption_operations_total{op="seal"}"#,
        r#"encryption_operations_total{op="open"}"#,
        r#"dek_cache_lookups_total{outcome="hit"}"#,
        r#"dek_cache_lookups_total{outcome="miss"}"#,
        r#"transit_calls_total{call="datakey",outcome="ok"}"#,
        "transit_call_duration_seconds_bucket",
        "pii_shred_total",
    ] {
        assert!(text.contains(needle), "{needle} missing");
    }
    assert!(!text.contains("m@example.id"));
    // What could carry a person into a metric is a label: every label is one of the kinds
    // Warung uses (a new kind must be added here, knowingly), and no value looks like an
    // address or a phone or identity number.
    const LABELS: &[&str] = &[
        "call",
        "category",
        "client",
        "dependency",
        "item",
        "job",
        "method",
        "op",
        "outcome",
        "permission",
        "reason",
        "route",
        "status",
        "template",
        "topic",
        "worker",
        "le",
        "quantile",
    ];
    let label = regex::Regex::new(r#"([a-z_]+)="([^"]*)""#).unwrap();
    let number = regex::Regex::new(r"\d{5}").unwrap();
    let mut seen = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        for found in label.captures_iter(line) {
            seen += 1;
            assert!(LABELS.contains(&&found[1]), "unknown label in {line}");
            let (key, value) = (&found[1], &found[2]);
            let bucket = key == "le" || key == "quantile";
            assert!(!value.contains('@'), "{line}");
            assert!(bucket || !number.is_match(value), "{line}");
        }
    }
    assert!(seen > 10, "the labels were read ({seen})");
}

#[tokio::test]
async fn the_local_provider_seals_and_opens_without_vault() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("kek");
    std::fs::write(&key, "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\n").unwrap();
    // Vault unreachable on purpose: the local provider must not need it.
    let app = TestApp::builder()
        .set("WARUNG_PII__PROVIDER", "local")
        .set("WARUNG_PII__LOCAL_KEY_PATH", key.to_str().unwrap())
        .set("WARUNG_VAULT__ADDR", "http://127.0.0.1:9")
        .start()
        .await;
    let t = app.tenant().await;
    let subject = customer();
    let mut tx = app.tenant_tx(t.id).await;
    let sealed = app
        .state
        .pii
        .seal(&mut tx, subject, "users.full_name", "Budi Santoso")
        .await
        .unwrap();
    testkit::audited(&mut tx, "test.change").await;
    tx.commit().await.unwrap();
    let wrapped: String =
        sqlx::query_scalar("select wrapped_dek from subject_keys where subject_id = $1")
            .bind(subject.id)
            .fetch_one(app.system.pool())
            .await
            .unwrap();
    assert!(wrapped.starts_with("local:v1:"), "{wrapped}");
    let mut tx = app.tenant_tx(t.id).await;
    let opened = app
        .state
        .pii
        .open(&mut tx, subject.id, "users.full_name", &sealed)
        .await
        .unwrap();
    assert_eq!(opened.value(), Some("Budi Santoso"));
}

/// A key created by a transaction that rolls back must never seal data: a retry in the same
/// process has to create (and store) a key again, or its values would be unreadable forever.
#[tokio::test]
async fn a_rolled_back_first_seal_leaves_no_usable_key_behind() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    let subject = customer();

    let mut tx = app.tenant_tx(t.id).await;
    app.state
        .pii
        .seal(&mut tx, subject, "customers.email", "first@example.id")
        .await
        .unwrap();
    tx.rollback().await.unwrap();

    // The retry, in the same process; within one transaction the new key also opens.
    let mut tx = app.tenant_tx(t.id).await;
    let sealed = app
        .state
        .pii
        .seal(&mut tx, subject, "customers.email", "retry@example.id")
        .await
        .unwrap();
    let same_tx = app
        .state
        .pii
        .open(&mut tx, subject.id, "customers.email", &sealed)
        .await
        .unwrap();
    assert_eq!(same_tx.value(), Some("retry@example.id"));
    testkit::audited(&mut tx, "test.change").await;
    tx.commit().await.unwrap();

    // Another process has only the database: the stored key must be the one that sealed.
    let other = TestApp::spawn().await;
    let mut tx = other.tenant_tx(t.id).await;
    let opened = other
        .state
        .pii
        .open(&mut tx, subject.id, "customers.email", &sealed)
        .await
        .unwrap();
    assert_eq!(opened.value(), Some("retry@example.id"));
}

/// The benchmark baselines: each opens what it sealed, a per-field value really went through
/// Transit, and an envelope cipher refuses a baseline value instead of misreading it.
#[tokio::test]
async fn benchmark_baselines_round_trip_and_never_pass_for_envelope_values() {
    use platform::pii::Mode;
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await.id;
    let pii = &app.state.pii;
    for (mode, marker) in [(Mode::TransitPerField, 0xF1_u8), (Mode::Plaintext, 0xF0)] {
        pii.set_mode_for_benchmark(mode);
        let mut tx = app.tenant_tx(tenant).await;
        let subject = customer();
        let sealed = pii
            .seal(&mut tx, subject, "customers.email", "ani@example.id")
            .await
            .unwrap();
        assert_eq!(sealed.0[0], marker);
        if mode == Mode::TransitPerField {
            assert!(sealed.0[1..].starts_with(b"vault:v"), "{sealed:?}");
        }
        let opened = pii
            .open(&mut tx, subject.id, "customers.email", &sealed)
            .await
            .unwrap();
        assert_eq!(opened.value(), Some("ani@example.id"));
        pii.set_mode_for_benchmark(Mode::Envelope);
        let refused = pii
            .open(&mut tx, subject.id, "customers.email", &sealed)
            .await;
        assert!(
            !matches!(refused, Ok(Opened::Value(_))),
            "{mode:?} value opened as an envelope one"
        );
        tx.rollback().await.unwrap();
    }
}

/// New subjects take data keys made ahead: once the pool is warm, creating subjects makes no
/// Transit `datakey` call on the request path, and the keys they took work like any other.
#[tokio::test]
async fn new_subjects_take_ready_keys_without_waiting_for_transit() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await.id;
    let pii = &app.state.pii;
    let seal_new = async || {
        let subject = customer();
        let mut tx = app.tenant_tx(tenant).await;
        let sealed = pii
            .seal(&mut tx, subject, "customers.email", "ani@example.id")
            .await
            .unwrap();
        testkit::audited(&mut tx, "test.change").await;
        tx.commit().await.unwrap();
        (subject, sealed)
    };
    // The first one asks Transit itself and starts the refill.
    seal_new().await;
    for _ in 0..100 {
        if pii.ready_keys(tenant) >= 16 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pii.ready_keys(tenant), 16);
    let before = transit_calls(&app, "datakey").await;
    let mut made = Vec::new();
    for _ in 0..5 {
        made.push(seal_new().await);
    }
    assert_eq!(
        transit_calls(&app, "datakey").await,
        before,
        "a request waited for Transit"
    );
    assert_eq!(pii.ready_keys(tenant), 11);
    // A pooled key is stored wrapped like any other: another transaction (which never saw the
    // private key) loads and unwraps it from the database.
    let mut tx = app.tenant_tx(tenant).await;
    let opened = pii
        .open(&mut tx, made[0].0.id, "customers.email", &made[0].1)
        .await
        .unwrap();
    assert_eq!(opened.value(), Some("ani@example.id"));
}

/// This process's `dek_cache_lookups_total{outcome="miss"}`.
async fn cache_misses(app: &TestApp) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with(r#"dek_cache_lookups_total{outcome="miss"}"#))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// A process that lost its Redis connection may have missed shreds announced meanwhile: when
/// it reconnects it drops every cached data key, so the next open asks for the key again.
/// While connected, the same opens are answered from the cache.
#[tokio::test]
async fn the_key_cache_is_dropped_when_redis_comes_back() {
    let proxy = FaultProxy::start(url_addr("WARUNG_REDIS__URL")).await;
    let app = TestApp::builder()
        .set("WARUNG_REDIS__URL", format!("redis://{}", proxy.addr))
        .set("WARUNG_REDIS__TIMEOUT_MS", "300")
        .set("WARUNG_PII__CACHE_TTL_SECS", "3600")
        .start()
        .await;
    let t = app.tenant().await;
    let subject = customer();
    let mut tx = app.tenant_tx(t.id).await;
    let sealed = app
        .state
        .pii
        .seal(&mut tx, subject, "customers.email", "cache@example.id")
        .await
        .unwrap();
    testkit::audited(&mut tx, "test.change").await;
    tx.commit().await.unwrap();
    let open = || async {
        let mut tx = app.tenant_tx(t.id).await;
        let opened = app
            .state
            .pii
            .open(&mut tx, subject.id, "customers.email", &sealed)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(opened.value(), Some("cache@example.id"));
    };
    open().await;
    let warm = cache_misses(&app).await;
    for _ in 0..5 {
        open().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        cache_misses(&app).await,
        warm,
        "connected, the key stays cached"
    );

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.restore();
    let mut dropped = false;
    for _ in 0..100 {
        open().await;
        if cache_misses(&app).await > warm {
            dropped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dropped, "the cache outlived the reconnection");
}
