//! The relay against the real broker: each outbox row reaches Kafka exactly once in a healthy
//! run, keyed by tenant, and is marked sent only after the broker acknowledged it. Each test's
//! app is isolated (a database, Redis prefix and broker of its own): a relay takes every
//! tenant's rows, so these tests run beside the others without taking theirs.

use std::{collections::HashMap, time::Duration};

use platform::{
    events::relay::{self, RelaySettings},
    events::{self, Actor, AuditRecord, DomainEvent, EventId, Resource},
    id::TenantId,
};
use rdkafka::{
    ClientConfig, Message,
    consumer::{BaseConsumer, Consumer},
};
use testkit::{TestApp, TestBroker};

const SETTINGS: RelaySettings = RelaySettings {
    batch: 50,
    retention: Duration::from_secs(3600),
    send_timeout: Duration::from_secs(10),
    rebuild_after: Duration::from_secs(60),
};

async fn emit_many(app: &TestApp, tenant: TenantId, n: usize) -> Vec<EventId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let mut tx = app.tenant_tx(tenant).await;
        let record = AuditRecord::new(
            Actor::System { name: "test" },
            "thing.changed",
            Resource::new("thing", i),
        );
        ids.push(events::emit_audit(&mut tx, &record).await.unwrap());
        if i % 5 == 0 {
            let event = DomainEvent {
                actor: Actor::System { name: "test" },
                event_type: "thing.happened",
                payload: serde_json::json!({ "n": i }),
            };
            ids.push(events::emit_event(&mut tx, &event).await.unwrap());
        }
        tx.commit().await.unwrap();
    }
    ids
}

/// Every message on both topics keyed by `tenant`, by event id, read until `want` distinct ids
/// were seen and the topic then stayed quiet (duplicates would show as counts > 1).
fn collect_from(
    brokers: &str,
    tenant: TenantId,
    want: usize,
) -> HashMap<String, (usize, serde_json::Value)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("test-{}", uuid::Uuid::now_v7()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer
        .subscribe(&[events::AUDIT_TOPIC, events::EVENTS_TOPIC])
        .unwrap();
    let key = tenant.to_string();
    let mut seen: HashMap<String, (usize, serde_json::Value)> = HashMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut quiet_since: Option<std::time::Instant> = None;
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                if message.key() != Some(key.as_bytes()) {
                    continue;
                }
                let envelope: serde_json::Value =
                    serde_json::from_slice(message.payload().unwrap()).unwrap();
                let id = envelope["event_id"].as_str().unwrap().to_owned();
                seen.entry(id).or_insert((0, envelope)).0 += 1;
                quiet_since = None;
            }
            // Transient (e.g. the broker just came back): keep reading until the deadline.
            Some(Err(_)) => {}
            None if seen.len() >= want => {
                let since = *quiet_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > Duration::from_secs(2) {
                    break;
                }
            }
            None => {}
        }
    }
    seen
}

#[tokio::test]
async fn the_relay_publishes_each_row_once_after_the_broker_acknowledged() {
    let app = TestApp::builder()
        .isolated()
        .set("WARUNG_OUTBOX__RELAY", "true")
        .start()
        .await;
    let t = app.tenant().await;
    let ids = emit_many(&app, t.id, 12).await;

    let seen = tokio::task::spawn_blocking({
        let (tenant, want) = (t.id, ids.len() + 1); // + tenant.created from app.tenant()
        let brokers = app.kafka_brokers().to_owned();
        move || collect_from(&brokers, tenant, want)
    })
    .await
    .unwrap();
    for id in &ids {
        let (count, envelope) = seen
            .get(&id.to_string())
            .unwrap_or_else(|| panic!("{id} never reached Kafka"));
        assert_eq!(*count, 1, "{id} sent {count} times");
        assert_eq!(envelope["tenant_id"], t.id.to_string());
        assert_eq!(envelope["schema_version"], 1);
        assert!(envelope["occurred_at"].is_string() && envelope["actor"]["kind"] == "system");
    }
    let audit = seen
        .values()
        .find(|(_, e)| e["type"] == "thing.changed")
        .unwrap();
    assert_eq!(audit.1["payload"]["resource"]["kind"], "thing");

    let unsent: i64 = sqlx::query_scalar(
        "select count(*) from outbox where tenant_id = $1 and published_at is null",
    )
    .bind(t.id)
    .fetch_one(app.system.pool())
    .await
    .unwrap();
    assert_eq!(unsent, 0);
}

#[tokio::test]
async fn relays_in_parallel_never_send_a_row_twice() {
    // No background relay: the three below are the only ones.
    let app = TestApp::builder().isolated().start().await;
    let t = app.tenant().await;
    let ids = emit_many(&app, t.id, 40).await;

    let relays = (0..3).map(|_| {
        let (system, kafka) = (app.system.clone(), app.state.kafka.clone());
        tokio::spawn(async move {
            let mut sent = 0;
            loop {
                let n = relay::publish_batch(
                    &system,
                    &kafka,
                    RelaySettings {
                        batch: 7,
                        ..SETTINGS
                    },
                )
                .await
                .unwrap();
                if n == 0 {
                    return sent;
                }
                sent += n;
            }
        })
    });
    let sent: u64 = futures::future::join_all(relays)
        .await
        .into_iter()
        .map(Result::unwrap)
        .sum();
    assert!(sent >= ids.len() as u64, "sent {sent}");

    let seen = tokio::task::spawn_blocking({
        let (tenant, want) = (t.id, ids.len() + 1);
        let brokers = app.kafka_brokers().to_owned();
        move || collect_from(&brokers, tenant, want)
    })
    .await
    .unwrap();
    for id in &ids {
        assert_eq!(seen.get(&id.to_string()).map(|(n, _)| *n), Some(1), "{id}");
    }
}

async fn unsent_of(app: &TestApp, ids: &[EventId]) -> i64 {
    let raw: Vec<uuid::Uuid> = ids.iter().map(|id| id.0).collect();
    sqlx::query_scalar(
        "select count(*) from outbox where event_id = any($1) and published_at is null",
    )
    .bind(raw)
    .fetch_one(app.system.pool())
    .await
    .unwrap()
}

async fn wait_until_all_sent(app: &TestApp, ids: &[EventId]) {
    for _ in 0..150 {
        if unsent_of(app, ids).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{} rows still unsent", unsent_of(app, ids).await);
}

/// Waits until the relay has nothing pending (it is idle and connected); fails after 10 s.
async fn drained(app: &TestApp) {
    let mut pending: i64 = 0;
    for _ in 0..100 {
        pending = sqlx::query_scalar("select count(*) from outbox where published_at is null")
            .fetch_one(app.system.pool())
            .await
            .unwrap();
        if pending == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the relay never drained: {pending} rows still unsent");
}

/// Every row is marked sent and every event is on `broker`.
async fn all_arrived(
    app: &TestApp,
    broker: &TestBroker,
    tenant: TenantId,
    ids: &[EventId],
    what: &str,
) {
    wait_until_all_sent(app, ids).await;
    let brokers = broker.addr.to_string();
    let wanted = ids.to_vec();
    let lost = tokio::task::spawn_blocking(move || lost(brokers, tenant, &wanted))
        .await
        .unwrap();
    assert!(lost.is_empty(), "lost after the {what}: {lost:?}");
}

fn lost(brokers: String, tenant: TenantId, ids: &[EventId]) -> Vec<String> {
    let seen = collect_from(&brokers, tenant, ids.len());
    ids.iter()
        .map(ToString::to_string)
        .filter(|id| !seen.contains_key(id))
        .collect()
}

/// An app whose relay publishes to `broker`, a broker of the test's own.
async fn relay_app(broker: &TestBroker) -> TestApp {
    TestApp::builder()
        .isolated()
        .set("WARUNG_OUTBOX__RELAY", "true")
        .set("WARUNG_KAFKA__BROKERS", broker.addr.to_string())
        .start()
        .await
}

/// The broker stalls (frozen, connections open) while mutations happen: nothing is marked sent
/// before the broker acknowledged it, and everything arrives once it answers again.
#[tokio::test]
async fn relay_broker_stalled_during_mutations_loses_nothing() {
    let broker = TestBroker::start(&[events::AUDIT_TOPIC, events::EVENTS_TOPIC]).await;
    let app = relay_app(&broker).await;
    let t = app.tenant().await;
    drained(&app).await;

    broker.pause();
    let ids = emit_many(&app, t.id, 10).await;
    // Shorter than the client's request timeout (10 s): requests stay in flight, unacknowledged.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        unsent_of(&app, &ids).await as usize,
        ids.len(),
        "marked sent before the broker acknowledged"
    );
    broker.resume();

    all_arrived(&app, &broker, t.id, &ids, "stall").await;
}

/// The broker is unreachable while mutations happen: sends fail, the relay rolls its claims back
/// and retries with backoff, and everything arrives once a broker is there.
#[tokio::test]
async fn relay_broker_unreachable_during_mutations_loses_nothing() {
    let addr = TestBroker::free_addr();
    let app = TestApp::builder()
        .isolated()
        .set("WARUNG_OUTBOX__RELAY", "true")
        .set("WARUNG_KAFKA__BROKERS", addr.to_string())
        .set("WARUNG_KAFKA__DELIVERY_TIMEOUT_MS", "2000")
        .start()
        .await;
    let t = app.tenant().await;
    let ids = emit_many(&app, t.id, 10).await;
    // Several failed rounds (2 s delivery timeout each, then backoff).
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        unsent_of(&app, &ids).await as usize,
        ids.len(),
        "marked sent though the broker never acknowledged"
    );

    let broker = TestBroker::start_on(addr, &[events::AUDIT_TOPIC, events::EVENTS_TOPIC]).await;
    all_arrived(&app, &broker, t.id, &ids, "outage").await;
}

/// The broker comes back without its data (a fresh broker on the same address): the old
/// producer's id means nothing to it. While the relay cannot send, readiness says why; once the
/// relay has failed for `kafka.rebuild_after_ms` it builds a new producer and drains the outbox,
/// with no restart of Warung.
#[tokio::test]
async fn relay_broker_that_lost_its_state_is_drained_without_a_restart() {
    let addr = TestBroker::free_addr();
    let first = TestBroker::start_on(addr, &[events::AUDIT_TOPIC, events::EVENTS_TOPIC]).await;
    let app = TestApp::builder()
        .isolated()
        .set("WARUNG_OUTBOX__RELAY", "true")
        .set("WARUNG_KAFKA__BROKERS", addr.to_string())
        .set("WARUNG_KAFKA__DELIVERY_TIMEOUT_MS", "2000")
        .set("WARUNG_KAFKA__REBUILD_AFTER_MS", "4000")
        // The idempotent producer (Kafka's default) is the one a lost broker state strands.
        .set("WARUNG_KAFKA__IDEMPOTENCE", "true")
        .start()
        .await;
    let t = app.tenant().await;
    let before = emit_many(&app, t.id, 5).await;
    all_arrived(&app, &first, t.id, &before, "first broker").await;

    drop(first);
    let ids = emit_many(&app, t.id, 5).await;
    // Sends fail while no broker answers; readiness names the stuck relay once it has been
    // failing for the bound.
    let mut stuck = None;
    for _ in 0..60 {
        let ready: serde_json::Value = app.get("/health/ready").await.json().await.unwrap();
        let kafka = ready["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == "kafka")
            .cloned()
            .unwrap();
        if kafka["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("outbox relay has sent nothing"))
        {
            stuck = Some(kafka);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let second = TestBroker::start_on(addr, &[events::AUDIT_TOPIC, events::EVENTS_TOPIC]).await;
    assert!(stuck.is_some(), "readiness never said the relay was stuck");
    assert_eq!(
        unsent_of(&app, &ids).await as usize,
        ids.len(),
        "marked sent with no broker"
    );
    all_arrived(&app, &second, t.id, &ids, "broker lost its state").await;
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());
}

/// What a VM pause or a long GC does: the broker freezes longer than the client's socket
/// timeout (10 s), so requests in flight time out and are retried, while mutations happen; then
/// it resumes. With the stack's producer settings the broker keeps working and every event
/// arrives; under load, an idempotent producer made Tansu 0.6 wedge the partition in four of
/// five 30 s freezes (`scripts/lib/broker_survival.py`, docs/ARCHITECTURE.md).
#[tokio::test]
async fn relay_broker_frozen_past_the_client_timeout_keeps_working_and_loses_nothing() {
    let broker = TestBroker::start(&[events::AUDIT_TOPIC, events::EVENTS_TOPIC]).await;
    let app = relay_app(&broker).await;
    let t = app.tenant().await;
    let mut ids = emit_many(&app, t.id, 10).await;
    broker.pause();
    ids.extend(emit_many(&app, t.id, 10).await);
    tokio::time::sleep(Duration::from_secs(13)).await;
    broker.resume();
    ids.extend(emit_many(&app, t.id, 10).await);
    all_arrived(&app, &broker, t.id, &ids, "freeze").await;
}

/// Published rows are pruned once older than `outbox.retention_hours`; younger published rows
/// and rows never published (however old) stay.
#[tokio::test]
async fn prune_removes_only_rows_published_longer_ago_than_the_retention() {
    let app = TestApp::builder().isolated().start().await;
    let t = app.tenant().await;
    let mut tx = app.tenant_tx(t.id).await;
    for _ in 0..3 {
        testkit::audited(&mut tx, "test.emitted").await;
    }
    tx.commit().await.unwrap();
    let seqs: Vec<i64> =
        sqlx::query_scalar("select seq from outbox where tenant_id = $1 order by seq")
            .bind(t.id)
            .fetch_all(app.system.pool())
            .await
            .unwrap();
    assert!(seqs.len() >= 3, "{seqs:?}");
    let (old, young, unsent) = (seqs[0], seqs[1], seqs[2]);
    // Dating rows back is the schema owner's (the system role may only mark them sent), with
    // forced row-level security lifted in its own transaction of this test's own database.
    let owner = app.owner_pool().await;
    let mut tx = owner.begin().await.unwrap();
    sqlx::query("alter table outbox no force row level security")
        .execute(&mut *tx)
        .await
        .unwrap();
    for (seq, published) in [(old, Some(100)), (young, Some(1)), (unsent, None::<i32>)] {
        let dated = sqlx::query(
            "update outbox set occurred_at = now() - interval '200 hours',
                 published_at = now() - make_interval(hours => $2) where seq = $1",
        )
        .bind(seq)
        .bind(published)
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
        assert_eq!(dated, 1);
    }
    sqlx::query("alter table outbox force row level security")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Only this test's rows are in this database, besides the tenant's own creation.
    let kept_before: i64 = sqlx::query_scalar("select count(*) from outbox")
        .fetch_one(app.system.pool())
        .await
        .unwrap();
    let pruned = relay::prune(&app.system, Duration::from_secs(72 * 3600))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    let left: Vec<i64> =
        sqlx::query_scalar("select seq from outbox where seq = any($1) order by seq")
            .bind(&seqs[..3])
            .fetch_all(app.system.pool())
            .await
            .unwrap();
    assert_eq!(left, vec![young, unsent]);
    let kept_after: i64 = sqlx::query_scalar("select count(*) from outbox")
        .fetch_one(app.system.pool())
        .await
        .unwrap();
    assert_eq!(kept_after, kept_before - 1);
}
