//! Partition upkeep and retention, through the real sink. These tests move and drop partitions,
//! so each runs on an isolated app (a database of its own); assertions look only at their own
//! tenant's records and their own (randomly chosen, long past) months.

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use platform::{id::TenantId, jobs::RunOutcome};
use testkit::TestApp;

use crate::pipeline::{Keep, as_owner, envelope_at, pipeline_app, produce};

/// A month in the 20th century that has no partition yet and was never retired.
async fn unpartitioned_month(app: &TestApp) -> NaiveDate {
    loop {
        let n = uuid::Uuid::now_v7().as_u128();
        let month =
            NaiveDate::from_ymd_opt(1901 + (n % 97) as i32, 1 + ((n >> 8) % 12) as u32, 1).unwrap();
        // Neither partitioned now nor retired by an earlier run (the database outlives runs;
        // a retired month's digest would make the partition look tampered with).
        let taken: bool = sqlx::query_scalar(
            "select exists (select from audit_partitions() where range_from = $1::date::timestamp at time zone 'UTC')
                 or exists (select from audit_retired_partitions where range_from = $1::date::timestamp at time zone 'UTC')",
        )
        .bind(month)
        .fetch_one(app.system.pool())
        .await
        .unwrap();
        if !taken {
            return month;
        }
    }
}

async fn record(app: &TestApp, tenant: TenantId, occurred_at: DateTime<Utc>) -> uuid::Uuid {
    let event_id = uuid::Uuid::now_v7();
    let message = envelope_at(tenant, event_id, occurred_at);
    produce(app, &tenant.to_string(), &message).await;
    event_id
}

/// Waits until the sink stored `event_id`; returns the partition holding it.
async fn partition_of(app: &TestApp, event_id: uuid::Uuid) -> String {
    for _ in 0..150 {
        let partition: Option<String> = sqlx::query_scalar(
            "select tableoid::regclass::text from audit_events where event_id = $1",
        )
        .bind(event_id)
        .fetch_optional(app.system.pool())
        .await
        .unwrap();
        if let Some(partition) = partition {
            return partition;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("record {event_id} never reached the store");
}

fn succeeded(outcome: RunOutcome) -> platform::jobs::JobReport {
    match outcome {
        RunOutcome::Succeeded(report) => report,
        other => panic!("job did not succeed: {other:?}"),
    }
}

fn mid(month: NaiveDate) -> DateTime<Utc> {
    month
        .with_day0(14)
        .unwrap()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc()
}

#[tokio::test]
async fn maintenance_a_record_outside_every_partition_waits_in_default_until_its_partition_is_made()
{
    let app = pipeline_app().await;
    let t = app.tenant().await;
    let month = unpartitioned_month(&app).await;
    let old = record(&app, t.id, mid(month)).await;
    assert_eq!(partition_of(&app, old).await, "audit_events_default");

    let dry = succeeded(app.run_job(audit::maintenance::PARTITIONS, true).await);
    assert!(dry.get("records_moved") >= 1, "{dry:?}");
    assert_eq!(
        partition_of(&app, old).await,
        "audit_events_default",
        "a dry run moved records"
    );

    let report = succeeded(app.run_job(audit::maintenance::PARTITIONS, false).await);
    assert!(report.get("partitions_created") >= 1, "{report:?}");
    let expected = format!("audit_events_p{}", month.format("%Y_%m"));
    assert_eq!(partition_of(&app, old).await, expected);
    // Moved unchanged: the chain still verifies, and new records for the month go straight in.
    let report = audit::verify::tenant(&app.system, &app.state.vault, t.id)
        .await
        .unwrap();
    assert!(report.intact(), "{report:?}");
    let later = record(&app, t.id, mid(month)).await;
    assert_eq!(partition_of(&app, later).await, expected);
    // Partitions for this month and the configured months ahead exist.
    let ahead: i64 = sqlx::query_scalar(
        "select count(*) from audit_partitions() where range_from >= date_trunc('month', now())",
    )
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    assert!(ahead >= 4, "only {ahead} partitions from this month on");
}

#[tokio::test]
async fn maintenance_retention_drops_an_old_partition_only_after_recording_a_signed_digest() {
    let app = pipeline_app().await;
    let t = app.tenant().await;
    let month = unpartitioned_month(&app).await;
    let mut old = Vec::new();
    for _ in 0..3 {
        old.push(record(&app, t.id, mid(month)).await);
    }
    let recent = record(&app, t.id, Utc::now()).await;
    for id in old.iter().chain([&recent]) {
        partition_of(&app, *id).await;
    }
    // `tenant.created` travels through the relay, the others straight to Kafka.
    crate::pipeline::chain_length(&app, t.id, 5).await;
    succeeded(app.run_job(audit::maintenance::PARTITIONS, false).await);
    let partition = format!("audit_events_p{}", month.format("%Y_%m"));
    assert_eq!(partition_of(&app, old[0]).await, partition);

    // The store refuses, even to its own jobs, each for its own reason: a partition without a
    // digest, anything less than a year old, and a digest whose count is not the partition's.
    let refusal = |err: sqlx::Error| {
        let db = err.as_database_error().expect("a database refusal");
        (
            db.code().unwrap_or_default().into_owned(),
            db.message().to_owned(),
        )
    };
    let err = sqlx::query("select audit_drop_partition($1)")
        .bind(&partition)
        .execute(app.system.pool())
        .await
        .expect_err("dropped without a digest");
    let (code, message) = refusal(err);
    assert_eq!(code, "42501");
    assert!(message.contains("no digest recorded"), "{message}");
    let this_month = format!("audit_events_p{}", Utc::now().format("%Y_%m"));
    let err = sqlx::query("select audit_drop_partition($1)")
        .bind(&this_month)
        .execute(app.system.pool())
        .await
        .expect_err("dropped a recent partition");
    let (code, message) = refusal(err);
    assert_eq!(code, "42501");
    assert!(message.contains("less than a year old"), "{message}");
    // A digest that counts 99 records for a partition of 3, in a transaction rolled back.
    let mut tx = app.system.pool().begin().await.unwrap();
    sqlx::query(
        "insert into audit_retired_partitions (partition_name, range_from, range_to, records, digest,
                                               signature, signed_document)
         values ($1, $2::date::timestamp at time zone 'UTC',
                 ($2::date + interval '1 month')::timestamp at time zone 'UTC', 99, '{}', 'x', '{}')",
    )
    .bind(&partition)
    .bind(month)
    .execute(&mut *tx)
    .await
    .unwrap();
    let err = sqlx::query("select audit_drop_partition($1)")
        .bind(&partition)
        .execute(&mut *tx)
        .await
        .expect_err("dropped a partition its digest does not count");
    let (code, message) = refusal(err);
    assert_eq!(code, "40001");
    assert!(
        message.contains("holds 3 records, its digest 99"),
        "{message}"
    );
    tx.rollback().await.unwrap();
    assert_eq!(partition_of(&app, old[0]).await, partition, "still there");

    let dry = succeeded(app.run_job(audit::maintenance::RETENTION, true).await);
    assert!(dry.get("records_due") >= 3, "{dry:?}");
    assert_eq!(
        partition_of(&app, old[0]).await,
        partition,
        "a dry run dropped"
    );

    let report = succeeded(app.run_job(audit::maintenance::RETENTION, false).await);
    assert!(report.get("partitions_dropped") >= 1, "{report:?}");
    let left: i64 =
        sqlx::query_scalar("select count(*) from audit_events where event_id = any($1)")
            .bind(&old)
            .fetch_one(app.system.pool())
            .await
            .unwrap();
    assert_eq!(left, 0, "old records survived retention");

    // The digest names the records that left and is signed by the audit key.
    let (records, document, signature): (i64, String, String) = sqlx::query_as(
        "select records, signed_document, signature from audit_retired_partitions where partition_name = $1",
    )
    .bind(&partition)
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    assert_eq!(records, 3);
    let vault = &app.state.vault;
    assert!(
        vault
            .verify_digest(document.as_bytes(), &signature)
            .await
            .unwrap()
    );
    let forged = document.replace("\"records\":3", "\"records\":2");
    assert_ne!(forged, document);
    assert!(
        !vault
            .verify_digest(forged.as_bytes(), &signature)
            .await
            .unwrap()
    );

    // The rest of the tenant's chain still verifies across the retired links, each proven by
    // its partition's signed digest.
    let report = audit::verify::tenant(&app.system, &app.state.vault, t.id)
        .await
        .unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.links, 2, "tenant.created + the recent record");

    // Records cut from the middle, and a link row claiming retention took them: no signed
    // digest lists that run, so verification names it.
    let victim = record(&app, t.id, Utc::now()).await;
    let after = record(&app, t.id, Utc::now()).await;
    partition_of(&app, after).await;
    let (seq, hash): (i64, Vec<u8>) =
        sqlx::query_as("select chain_seq, hash from audit_events where event_id = $1")
            .bind(victim)
            .fetch_one(app.system.pool())
            .await
            .unwrap();
    let forged = with_owner_powers(&app, t.id, async |tx| {
        sqlx::query("delete from audit_events where tenant_id = $1 and event_id = $2")
            .bind(t.id)
            .bind(victim)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "insert into audit_retired_links (tenant_id, first_seq, last_seq, last_hash, partition_name)
             values ($1, $2, $2, $3, $4)",
        )
        .bind(t.id)
        .bind(seq)
        .bind(&hash)
        .bind(&partition)
        .execute(&mut **tx)
        .await?;
        Ok(())
    })
    .await;
    let broken = forged
        .first_break
        .expect("a forged retired run was trusted");
    assert_eq!(
        (broken.chain_seq, broken.reason),
        (
            seq,
            "retired links are not in their partition's signed digest"
        )
    );

    // A digest whose signature does not verify proves nothing either.
    let other = app
        .state
        .vault
        .sign_digest(b"another document")
        .await
        .unwrap();
    let unsigned = with_owner_powers(&app, t.id, async |tx| {
        sqlx::query("update audit_retired_partitions set signature = $1 where partition_name = $2")
            .bind(&other)
            .bind(&partition)
            .execute(&mut **tx)
            .await?;
        Ok(())
    })
    .await;
    assert_eq!(
        unsigned.first_break.map(|b| b.reason),
        Some("a retired partition's digest signature does not verify")
    );
}

/// A record dated in a month that retention already dropped (delivered late, replayed) brings
/// the month's partition back; retention retires it again with a signed digest of its own, and
/// the chain verifies across both retired runs. (The second digest used to collide with the
/// first on every run, and retention stopped for good.)
#[tokio::test]
async fn maintenance_a_late_record_for_a_retired_month_is_retired_again_with_its_own_digest() {
    let app = pipeline_app().await;
    let t = app.tenant().await;
    let month = unpartitioned_month(&app).await;
    let partition = format!("audit_events_p{}", month.format("%Y_%m"));
    let first = record(&app, t.id, mid(month)).await;
    partition_of(&app, first).await;
    crate::pipeline::chain_length(&app, t.id, 2).await;
    succeeded(app.run_job(audit::maintenance::PARTITIONS, false).await);
    assert_eq!(partition_of(&app, first).await, partition);
    succeeded(app.run_job(audit::maintenance::RETENTION, false).await);

    let late = record(&app, t.id, mid(month)).await;
    assert_eq!(partition_of(&app, late).await, "audit_events_default");
    succeeded(app.run_job(audit::maintenance::PARTITIONS, false).await);
    assert_eq!(partition_of(&app, late).await, partition);
    let report = succeeded(app.run_job(audit::maintenance::RETENTION, false).await);
    assert_eq!(report.get("partitions_dropped"), 1, "{report:?}");
    assert_eq!(report.get("records_dropped"), 1, "{report:?}");

    let retirements: Vec<(i32, i64, String)> = sqlx::query_as(
        "select retirement, records, signed_document from audit_retired_partitions
         where partition_name = $1 order by retirement",
    )
    .bind(&partition)
    .fetch_all(app.system.pool())
    .await
    .unwrap();
    let numbers: Vec<_> = retirements
        .iter()
        .map(|(n, records, _)| (*n, *records))
        .collect();
    assert_eq!(numbers, [(1, 1), (2, 1)]);
    assert!(
        retirements[1].2.contains("\"retirement\":2"),
        "{}",
        retirements[1].2
    );
    let verified = audit::verify::tenant(&app.system, &app.state.vault, t.id)
        .await
        .unwrap();
    assert!(verified.intact(), "{verified:?}");
    assert_eq!(
        verified.links, 1,
        "tenant.created; both dated records retired"
    );
    let again = succeeded(app.run_job(audit::maintenance::RETENTION, false).await);
    assert_eq!(again.get("partitions_dropped"), 0, "{again:?}");
}

/// Runs `forge` with the schema owner's powers over the audit store, verifies `tenant`'s chain
/// in full inside the same transaction (as the owner, whom the lifted RLS no longer filters),
/// and rolls everything back: nobody else ever sees the forgery.
async fn with_owner_powers<F>(
    app: &TestApp,
    tenant: TenantId,
    forge: F,
) -> audit::verify::ChainReport
where
    F: AsyncFn(&mut sqlx::Transaction<'static, sqlx::Postgres>) -> Result<(), sqlx::Error>,
{
    as_owner(app, Keep::RollBack, async |tx| {
        forge(tx).await?;
        audit::verify::full(
            tx,
            &mut audit::verify::Digests::new(&app.state.vault),
            tenant,
        )
        .await
        .map_err(|e| sqlx::Error::Protocol(e.to_string()))
    })
    .await
}
