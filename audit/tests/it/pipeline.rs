//! End to end: a mutation's audit record reaches `audit_events` once; a duplicate delivery is
//! stored once; an unparseable message is dead-lettered and the sink keeps going. Each app is
//! isolated (`TestAppBuilder::isolated`): its relay and sink see only its own rows and topics.

use std::time::Duration;

use platform::{
    events::{self, Actor, AuditRecord, EventId, Resource},
    id::{TenantId, UserId},
    pii::{IndexKind, Subject, SubjectId, SubjectKind},
};
use rdkafka::producer::FutureRecord;
use testkit::TestApp;

pub(crate) async fn pipeline_app() -> TestApp {
    TestApp::builder()
        .isolated()
        .set("WARUNG_OUTBOX__RELAY", "true")
        .with_module_workers()
        .start()
        .await
}

/// Polls until `event_id` is stored, returns how many rows carry it.
async fn stored(app: &TestApp, tenant: TenantId, event_id: uuid::Uuid) -> i64 {
    let mut count = 0;
    for _ in 0..150 {
        count = sqlx::query_scalar(
            "select count(*) from audit_events where tenant_id = $1 and event_id = $2",
        )
        .bind(tenant)
        .bind(event_id)
        .fetch_one(app.system.pool())
        .await
        .unwrap();
        if count > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    count
}

#[tokio::test]
async fn pipeline_a_mutation_produces_exactly_one_audit_row_and_no_plaintext() {
    let app = pipeline_app().await;
    let t = app.tenant().await;
    let staff = UserId::new();
    let email = format!("audit-{}@example.id", uuid::Uuid::now_v7().simple());

    // A PII-bearing change, the way a module would record it: field names, never values.
    let subject = Subject {
        id: SubjectId::new(),
        kind: SubjectKind::Customer,
    };
    let mut tx = app.tenant_tx(t.id).await;
    app.state
        .pii
        .seal(&mut tx, subject, "customers.email", &email)
        .await
        .unwrap();
    app.state
        .pii
        .blind_index(&mut tx, IndexKind::Email, &email)
        .await
        .unwrap();
    let record = AuditRecord::new(
        Actor::User { id: staff },
        "customer.created",
        Resource::new("customer", subject.id),
    )
    .fields(&["full_name", "email"]);
    let id: EventId = events::emit_audit(&mut tx, &record).await.unwrap();
    tx.commit().await.unwrap();

    assert_eq!(stored(&app, t.id, id.0).await, 1);
    let (actor_id, kind, resource_id, envelope): (Option<String>, Option<String>, Option<String>, serde_json::Value) =
        sqlx::query_as("select actor_id, resource_kind, resource_id, envelope from audit_events where event_id = $1")
            .bind(id)
            .fetch_one(app.system.pool())
            .await
            .unwrap();
    assert_eq!(actor_id, Some(staff.to_string()));
    assert_eq!(
        (kind.as_deref(), resource_id),
        (Some("customer"), Some(subject.id.to_string()))
    );
    assert!(
        !envelope.to_string().contains(&email),
        "plaintext email in the audit store"
    );

    // The tenant's chain has no gaps.
    let seqs: Vec<i64> = sqlx::query_scalar(
        "select chain_seq from audit_events where tenant_id = $1 order by chain_seq",
    )
    .bind(t.id)
    .fetch_all(app.system.pool())
    .await
    .unwrap();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
}

fn envelope(tenant: TenantId, event_id: uuid::Uuid) -> String {
    envelope_at(tenant, event_id, chrono::Utc::now())
}

/// An audit envelope as the relay publishes it, dated `occurred_at`.
pub(crate) fn envelope_at(
    tenant: TenantId,
    event_id: uuid::Uuid,
    occurred_at: chrono::DateTime<chrono::Utc>,
) -> String {
    serde_json::json!({
        "event_id": event_id,
        "type": "thing.changed",
        "schema_version": 1,
        "tenant_id": tenant,
        "actor": { "kind": "system", "name": "test" },
        "occurred_at": occurred_at,
        "request_id": null,
        "payload": { "action": "thing.changed", "resource": { "kind": "thing", "id": "1" }, "changed_fields": [], "details": null },
    })
    .to_string()
}

pub(crate) async fn produce(app: &TestApp, key: &str, payload: &str) {
    app.state
        .kafka
        .producer()
        .send(
            FutureRecord::to(events::AUDIT_TOPIC)
                .key(key)
                .payload(payload),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(err, _)| err)
        .unwrap();
}

#[tokio::test]
async fn pipeline_the_same_message_delivered_twice_is_stored_once() {
    let app = pipeline_app().await;
    let t = app.tenant().await;
    let event_id = uuid::Uuid::now_v7();
    let message = envelope(t.id, event_id);
    produce(&app, &t.id.to_string(), &message).await;
    produce(&app, &t.id.to_string(), &message).await;
    assert_eq!(stored(&app, t.id, event_id).await, 1);
    // A later record proves the sink has read past both copies.
    let after = uuid::Uuid::now_v7();
    produce(&app, &t.id.to_string(), &envelope(t.id, after)).await;
    assert_eq!(stored(&app, t.id, after).await, 1);
    assert_eq!(
        stored(&app, t.id, event_id).await,
        1,
        "the duplicate was stored"
    );
}

#[tokio::test]
async fn pipeline_an_unparseable_message_is_dead_lettered_and_the_sink_keeps_going() {
    let app = pipeline_app().await;
    let t = app.tenant().await;
    let key = format!("garbage-{}", uuid::Uuid::now_v7());
    produce(&app, &key, "{ this is not json").await;
    let after = uuid::Uuid::now_v7();
    produce(&app, &t.id.to_string(), &envelope(t.id, after)).await;
    assert_eq!(
        stored(&app, t.id, after).await,
        1,
        "the sink stopped at the bad message"
    );
    let reason: Option<String> =
        sqlx::query_scalar("select reason from audit_dead_letters where message_key = $1")
            .bind(&key)
            .fetch_optional(app.system.pool())
            .await
            .unwrap();
    assert!(
        reason.is_some_and(|r| r.contains("not JSON")),
        "no dead letter for the bad message"
    );
}

/// A well-formed record for a tenant that does not exist cannot be chained: it is dead-lettered
/// with the reason (under the tenant it names), the sink keeps going, and `audit verify`
/// reports the dead letter.
#[tokio::test]
async fn pipeline_a_record_for_an_unknown_tenant_is_dead_lettered_and_reported() {
    let app = pipeline_app().await;
    let t = app.tenant().await;
    let stranger = TenantId(uuid::Uuid::now_v7());
    let lost = uuid::Uuid::now_v7();
    produce(&app, &stranger.to_string(), &envelope(stranger, lost)).await;
    let after = uuid::Uuid::now_v7();
    produce(&app, &t.id.to_string(), &envelope(t.id, after)).await;
    assert_eq!(stored(&app, t.id, after).await, 1, "the sink stopped");
    let letters: Vec<(Option<uuid::Uuid>, String)> =
        sqlx::query_as("select tenant_id, reason from audit_dead_letters where message_key = $1")
            .bind(stranger.to_string())
            .fetch_all(app.system.pool())
            .await
            .unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].0, Some(stranger.0));
    assert!(!letters[0].1.is_empty());
    let stored_for_stranger: i64 =
        sqlx::query_scalar("select count(*) from audit_events where tenant_id = $1")
            .bind(stranger)
            .fetch_one(app.system.pool())
            .await
            .unwrap();
    assert_eq!(stored_for_stranger, 0);
    let report = audit::verify::tenant(&app.system, &app.state.vault, stranger)
        .await
        .unwrap();
    let link = report.first_break.expect("the dead letter went unreported");
    assert_eq!(link.reason, "records in the dead letters");
    let all = audit::verify::all(&app.system, &app.state.vault)
        .await
        .unwrap();
    assert!(
        all.iter()
            .any(|r| r.tenant == stranger && r.first_break.is_some()),
        "the full check leaves the dead letter out"
    );
}

#[tokio::test]
async fn pipeline_verify_names_the_first_edited_record() {
    let app = pipeline_app().await;
    let t = app.tenant().await;
    let ids = produce_records(&app, t.id, 4).await;
    for id in &ids {
        assert_eq!(stored(&app, t.id, *id).await, 1);
    }
    // `tenant.created` travels through the relay, the four above straight to Kafka: either may
    // be stored first.
    chain_length(&app, t.id, 5).await;
    let report = audit::verify::tenant(&app.system, &app.state.vault, t.id)
        .await
        .unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.links, 5, "tenant.created + 4");

    // Someone with the schema owner's powers edits record 3: the append-only trigger and forced
    // RLS are lifted and restored in one transaction, so no other session sees the store open.
    let target: (i64, uuid::Uuid) = sqlx::query_as(
        "select chain_seq, event_id from audit_events where tenant_id = $1 and event_id = $2",
    )
    .bind(t.id)
    .bind(ids[1])
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    let edited = tamper(
        &app,
        "update audit_events set envelope = jsonb_set(envelope, '{type}', '\"thing.forged\"') where tenant_id = $1 and event_id = $2",
        t.id,
        Some(target.1),
    )
    .await;
    assert_eq!(edited, 1);

    let report = audit::verify::tenant(&app.system, &app.state.vault, t.id)
        .await
        .unwrap();
    let link = report.first_break.expect("the edit went unnoticed");
    assert_eq!(link.chain_seq, target.0);
    assert_eq!(link.event_id, Some(target.1));
    assert_eq!(link.reason, "record changed after it was stored");
}

/// Produces `n` records of `tenant` straight to Kafka; their event ids.
async fn produce_records(app: &TestApp, tenant: TenantId, n: usize) -> Vec<uuid::Uuid> {
    let ids: Vec<uuid::Uuid> = (0..n).map(|_| uuid::Uuid::now_v7()).collect();
    for id in &ids {
        produce(app, &tenant.to_string(), &envelope(tenant, *id)).await;
    }
    ids
}

/// [`produce_records`], then waits until the tenant's chain holds them after `tenant.created`.
async fn chained(app: &TestApp, tenant: TenantId, n: usize) -> Vec<uuid::Uuid> {
    let ids = produce_records(app, tenant, n).await;
    chain_length(app, tenant, n as i64 + 1).await;
    ids
}

/// Waits until `tenant`'s chain holds `n` records.
pub(crate) async fn chain_length(app: &TestApp, tenant: platform::id::TenantId, n: i64) {
    for _ in 0..200 {
        let stored: i64 =
            sqlx::query_scalar("select count(*) from audit_events where tenant_id = $1")
                .bind(tenant)
                .fetch_one(app.system.pool())
                .await
                .unwrap();
        if stored >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the chain of {tenant} never reached {n} records");
}

#[tokio::test]
async fn pipeline_verify_notices_records_cut_from_the_end() {
    let app = pipeline_app().await;
    let t = app.tenant().await;
    chained(&app, t.id, 2).await;
    assert!(
        audit::verify::tenant(&app.system, &app.state.vault, t.id)
            .await
            .unwrap()
            .intact()
    );

    let cut = tamper(
        &app,
        "delete from audit_events where tenant_id = $1 and ($2::uuid is null or event_id = $2)
           and chain_seq = (select max(chain_seq) from audit_events where tenant_id = $1)",
        t.id,
        None,
    )
    .await;
    assert_eq!(cut, 1);

    let report = audit::verify::tenant(&app.system, &app.state.vault, t.id)
        .await
        .unwrap();
    let link = report.first_break.expect("the cut went unnoticed");
    assert_eq!(link.reason, "records missing at the end of the chain");
    assert_eq!(link.chain_seq, 3);
}

#[tokio::test]
async fn pipeline_verify_names_a_record_missing_from_the_middle() {
    let app = pipeline_app().await;
    let t = app.tenant().await;
    chained(&app, t.id, 3).await;
    let cut = tamper(
        &app,
        "delete from audit_events where tenant_id = $1 and ($2::uuid is null or event_id = $2)
           and chain_seq = 2",
        t.id,
        None,
    )
    .await;
    assert_eq!(cut, 1);
    let report = audit::verify::tenant(&app.system, &app.state.vault, t.id)
        .await
        .unwrap();
    let link = report.first_break.expect("the gap went unnoticed");
    assert_eq!((link.chain_seq, link.reason), (2, "record missing"));
}

#[tokio::test]
async fn pipeline_verify_names_a_missing_chain_head() {
    let app = pipeline_app().await;
    let t = app.tenant().await;
    chained(&app, t.id, 1).await;
    let gone = tamper(
        &app,
        "delete from audit_chain_heads where tenant_id = $1 and $2::uuid is null",
        t.id,
        None,
    )
    .await;
    assert_eq!(gone, 1);
    let report = audit::verify::tenant(&app.system, &app.state.vault, t.id)
        .await
        .unwrap();
    let link = report.first_break.expect("the missing head went unnoticed");
    assert_eq!((link.chain_seq, link.reason), (1, "chain head missing"));
    // The whole store's check (`warung audit verify`) still finds the chain without its head.
    let all = audit::verify::all(&app.system, &app.state.vault)
        .await
        .unwrap();
    let ours = all
        .iter()
        .find(|r| r.tenant == t.id)
        .expect("a chain without its head is left out of the full check");
    assert!(ours.first_break.is_some(), "{ours:?}");
}

/// Runs `sql` (binding the tenant and an optional event id) with the schema owner's powers and
/// keeps the result (see [`as_owner`]): what it returns is the rows changed.
async fn tamper(
    app: &TestApp,
    sql: &'static str,
    tenant: platform::id::TenantId,
    event: Option<uuid::Uuid>,
) -> u64 {
    as_owner(app, Keep::Commit, async |tx| {
        Ok(sqlx::query(sql)
            .bind(tenant)
            .bind(event)
            .execute(&mut **tx)
            .await?
            .rows_affected())
    })
    .await
}

/// Whether [`as_owner`] keeps what `work` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    Commit,
    RollBack,
}

/// What [`as_owner`] lifts (the owner is then unfiltered and may rewrite), and restores.
const OPEN: [&str; 5] = [
    "alter table audit_events disable trigger audit_events_append_only",
    "alter table audit_events no force row level security",
    "alter table audit_retired_links no force row level security",
    "alter table audit_chain_heads no force row level security",
    "alter table audit_dead_letters no force row level security",
];
const CLOSE: [&str; 5] = [
    "alter table audit_events enable trigger audit_events_append_only",
    "alter table audit_events force row level security",
    "alter table audit_retired_links force row level security",
    "alter table audit_chain_heads force row level security",
    "alter table audit_dead_letters force row level security",
];

/// Runs `work` with the schema owner's powers over the audit store: the append-only trigger
/// and forced RLS are lifted, and restored before a commit, in one transaction, so no other
/// session sees the store open; with [`Keep::RollBack`] nobody ever sees what `work` did. The
/// ALTERs wait for every reader of the tables, and on a busy machine can lose a deadlock to one:
/// the whole transaction is then tried again.
pub(crate) async fn as_owner<T, F>(app: &TestApp, keep: Keep, work: F) -> T
where
    F: AsyncFn(&mut sqlx::Transaction<'static, sqlx::Postgres>) -> Result<T, sqlx::Error>,
{
    let owner = app.owner_pool().await;
    let mut last = None;
    for _ in 0..5 {
        let attempt = async {
            let mut tx = owner.begin().await?;
            for open in OPEN {
                sqlx::query(open).execute(&mut *tx).await?;
            }
            let out = work(&mut tx).await?;
            if keep == Keep::RollBack {
                tx.rollback().await?;
                return Ok(out);
            }
            for close in CLOSE {
                sqlx::query(close).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(out)
        };
        match attempt.await {
            Ok(out) => return out,
            Err(err) => last = Some(err),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("working as the owner failed: {last:?}");
}

#[tokio::test]
async fn pipeline_a_locked_chain_head_delays_a_record_and_never_dead_letters_it() {
    let app = pipeline_app().await;
    let t = app.tenant().await;
    chain_length(&app, t.id, 1).await;
    // Someone holds the tenant's chain head longer than the sink's lock timeout (5 s).
    let mut holder = app.system.pool().begin().await.unwrap();
    sqlx::query("select 1 from audit_chain_heads where tenant_id = $1 for update")
        .bind(t.id)
        .execute(&mut *holder)
        .await
        .unwrap();
    let delayed = uuid::Uuid::now_v7();
    produce(&app, &t.id.to_string(), &envelope(t.id, delayed)).await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    let early: i64 = sqlx::query_scalar(
        "select count(*) from audit_events where tenant_id = $1 and event_id = $2",
    )
    .bind(t.id)
    .bind(delayed)
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    assert_eq!(early, 0, "stored through a held lock");
    holder.rollback().await.unwrap();

    assert_eq!(stored(&app, t.id, delayed).await, 1, "the record was lost");
    let dead: i64 =
        sqlx::query_scalar("select count(*) from audit_dead_letters where tenant_id = $1")
            .bind(t.id)
            .fetch_one(app.system.pool())
            .await
            .unwrap();
    assert_eq!(dead, 0, "a lock timeout is not the record's fault");
    assert!(
        audit::verify::tenant(&app.system, &app.state.vault, t.id)
            .await
            .unwrap()
            .intact()
    );
}

#[tokio::test]
async fn pipeline_verify_notices_a_column_the_view_shows_that_the_hash_does_not_cover() {
    let app = pipeline_app().await;
    let t = app.tenant().await;
    let id = uuid::Uuid::now_v7();
    produce(&app, &t.id.to_string(), &envelope(t.id, id)).await;
    chain_length(&app, t.id, 2).await;
    assert!(
        audit::verify::tenant(&app.system, &app.state.vault, t.id)
            .await
            .unwrap()
            .intact()
    );
    // The envelope (hashed) is left alone; the column the audit view shows is rewritten.
    let edited = tamper(
        &app,
        "update audit_events set event_type = 'thing.harmless' where tenant_id = $1 and event_id = $2",
        t.id,
        Some(id),
    )
    .await;
    assert_eq!(edited, 1);
    let report = audit::verify::tenant(&app.system, &app.state.vault, t.id)
        .await
        .unwrap();
    let link = report
        .first_break
        .expect("the edited column went unnoticed");
    assert_eq!(link.event_id, Some(id));
    assert_eq!(link.reason, "a column differs from the hashed record");
}

#[tokio::test]
async fn pipeline_verification_resumes_at_its_checkpoint_and_the_full_walk_finds_older_edits() {
    use audit::{checkpoints::advance, verify::Digests};
    use chrono::{TimeDelta, Utc};
    let app = pipeline_app().await;
    let t = app.tenant().await;
    let ids = chained(&app, t.id, 3).await;
    let mut conn = app.system.pool().acquire().await.unwrap();
    let mut digests = Digests::new(&app.state.vault);
    let week = TimeDelta::days(7);

    // No checkpoint yet: the whole chain is walked and the checkpoint set at its end.
    let first = advance(&mut conn, &mut digests, t.id, Utc::now(), week, false)
        .await
        .unwrap();
    assert!(first.in_full && first.moved, "{first:?}");
    assert_eq!((first.chain.links, first.chain.verified_from), (4, 0));

    // The request path reads only what came after it.
    for _ in 0..2 {
        produce(
            &app,
            &t.id.to_string(),
            &envelope(t.id, uuid::Uuid::now_v7()),
        )
        .await;
    }
    chain_length(&app, t.id, 6).await;
    let mut tx = app.tenant_tx(t.id).await;
    let (report, checkpoint) = audit::verify::since_checkpoint(&mut tx, t.id)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!((report.verified_from, report.links), (4, 2));
    assert_eq!(checkpoint.map(|c| c.chain_seq), Some(4));

    // A record before the checkpoint is edited: a run from the checkpoint cannot see it, and
    // moves on; the full walk, once due, names it and leaves the checkpoint where it was.
    let target: i64 = sqlx::query_scalar(
        "select chain_seq from audit_events where tenant_id = $1 and event_id = $2",
    )
    .bind(t.id)
    .bind(ids[0])
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    let edited = tamper(
        &app,
        "update audit_events set envelope = jsonb_set(envelope, '{type}', '\"thing.forged\"') where tenant_id = $1 and event_id = $2",
        t.id,
        Some(ids[0]),
    )
    .await;
    assert_eq!(edited, 1);
    let quick = advance(&mut conn, &mut digests, t.id, Utc::now(), week, false)
        .await
        .unwrap();
    assert!(
        !quick.in_full && quick.chain.intact() && quick.moved,
        "{quick:?}"
    );
    assert_eq!(quick.chain.links, 2);
    for _ in 0..2 {
        let due = advance(
            &mut conn,
            &mut digests,
            t.id,
            Utc::now() + week,
            week,
            false,
        )
        .await
        .unwrap();
        assert!(due.in_full && !due.moved, "{due:?}");
        let broken = due.chain.first_break.expect("the edit went unnoticed");
        assert_eq!(broken.chain_seq, target);
        assert_eq!(broken.reason, "record changed after it was stored");
    }
    let mut tx = app.tenant_tx(t.id).await;
    let kept = audit::verify::Checkpoint::of(&mut tx, t.id).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(kept.map(|c| c.chain_seq), Some(6));
}

#[tokio::test]
async fn pipeline_a_replay_publishes_again_and_stores_nothing_twice() {
    let app = pipeline_app().await;
    let t = app.tenant().await;
    let since = chrono::Utc::now();
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut tx = app.tenant_tx(t.id).await;
        let record = AuditRecord::new(
            Actor::System { name: "test" },
            "thing.changed",
            Resource::new("thing", i),
        );
        ids.push(events::emit_audit(&mut tx, &record).await.unwrap().0);
        tx.commit().await.unwrap();
    }
    for id in &ids {
        assert_eq!(stored(&app, t.id, *id).await, 1);
    }
    let published = |app: &TestApp| {
        let pool = app.system.pool().clone();
        let ids = ids.clone();
        async move {
            sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
                "select max(published_at) from outbox where event_id = any($1)
                 having count(published_at) = count(*)",
            )
            .bind(&ids)
            .fetch_optional(&pool)
            .await
            .unwrap()
            .flatten()
        }
    };
    let first = published(&app).await.expect("not all published");

    // The broker lost them: replay what was published since. A dry run changes nothing.
    let counted =
        platform::events::relay::replay(&app.system, since, Some(events::AUDIT_TOPIC), true)
            .await
            .unwrap();
    assert!(counted >= 3, "{counted}");
    assert_eq!(published(&app).await, Some(first));
    let marked =
        platform::events::relay::replay(&app.system, since, Some(events::AUDIT_TOPIC), false)
            .await
            .unwrap();
    assert!(marked >= 3, "{marked}");
    let mut again = None;
    for _ in 0..150 {
        again = published(&app).await.filter(|at| *at > first);
        if again.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        again.is_some(),
        "the relay did not publish the replayed rows"
    );
    // The sink has them again and keeps one row each; the chain still verifies.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in &ids {
        assert_eq!(stored(&app, t.id, *id).await, 1);
    }
    let report = audit::verify::tenant(&app.system, &app.state.vault, t.id)
        .await
        .unwrap();
    assert!(report.intact(), "{report:?}");
}
