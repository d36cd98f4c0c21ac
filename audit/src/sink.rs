//! The audit sink: a consumer group on `warung.audit.v1` that stores records in `audit_events`.
//!
//! - Batches: up to `BATCH` messages or `LINGER`, stored in one database transaction.
//! - Idempotent on `event_id`: a record delivered twice is stored once (at-least-once upstream).
//! - Each tenant's records extend its hash chain under a row lock on `audit_chain_heads`.
//! - Offsets are committed only after the database commit; a crash re-delivers, which the
//!   idempotency absorbs.
//! - A message that cannot be parsed, or whose records the database refuses for what they are
//!   (a data or integrity error: an unknown tenant, a bad value), goes to `audit_dead_letters`
//!   with the reason and its tenant, and the consumer moves on. Nothing is dropped silently.
//! - Anything else (a lock or statement timeout, a serialization failure, a deadlock, a lost
//!   connection) says nothing about the records: the batch is retried with backoff and its
//!   offsets stay uncommitted until it is stored. A 9-second lock on a chain head delays the
//!   tenant's records; it never sends them to the dead letters.

use std::{collections::HashSet, sync::Arc, time::Duration};

use platform::{
    WorkerContext, clients::Kafka, config::KafkaConfig, db::SystemDb, events::AUDIT_TOPIC,
};
use rdkafka::{
    Message, TopicPartitionList,
    consumer::{CommitMode, Consumer, StreamConsumer},
    message::OwnedMessage,
};
use serde_json::Value;

use crate::chain;

pub const GROUP: &str = "warung-audit-sink";
const BATCH: usize = 500;
const LINGER: Duration = Duration::from_millis(200);
const LAG_EVERY: Duration = Duration::from_secs(15);
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Whether `err` is about the records themselves, so storing them again would fail again:
/// PostgreSQL's data exceptions (class 22) and integrity violations (class 23). Everything else
/// (lock and statement timeouts, serialization failures, deadlocks, connections, resources) may
/// pass on the next try.
pub fn deterministic(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code.starts_with("22") || code.starts_with("23"))
}

pub async fn run(ctx: WorkerContext, config: KafkaConfig) -> anyhow::Result<()> {
    let consumer: Arc<StreamConsumer> = Arc::new(
        Kafka::client_config(&config)
            .set("group.id", GROUP)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()?,
    );
    consumer.subscribe(&[AUDIT_TOPIC])?;
    let mut lag_checked = tokio::time::Instant::now();
    let idle_bound = Duration::from_millis(config.rebuild_after_ms);
    // The group's committed total at the last quiet check.
    let mut committed_before = None;
    loop {
        let first = tokio::select! {
            () = ctx.shutdown.cancelled() => return Ok(()),
            message = consumer.recv() => message?.detach(),
            () = tokio::time::sleep(idle_bound) => {
                // Quiet is fine, and so is a process of the group that holds no partition while
                // another consumes. Records waiting while the whole group's commits stand
                // still for two quiet spells is a consumer that will not recover by itself
                // (seen after a broker restart: subscribed, never fed again); the supervisor
                // builds a new one.
                let watched = consumer.clone();
                let (waiting, committed) =
                    tokio::task::spawn_blocking(move || waiting(&watched)).await?;
                let stalled = waiting > 0 && committed_before == Some(committed);
                committed_before = Some(committed);
                if stalled {
                    metrics::counter!("kafka_client_rebuilds_total", "client" => "audit-sink")
                        .increment(1);
                    anyhow::bail!(
                        "audit sink received nothing for {} s while {waiting} records wait; rebuilding its consumer",
                        idle_bound.as_secs()
                    );
                }
                continue;
            }
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(message) => batch.push(message?.detach()),
                Err(_) => break,
            }
        }
        let mut wait = RETRY_FIRST;
        loop {
            match store(&ctx.system, &batch).await {
                Ok(()) => break,
                Err(err) if !deterministic(&err) => {
                    metrics::counter!("audit_sink_retries_total").increment(1);
                    tracing::warn!(error = %err, retry_in_ms = wait.as_millis(), "audit batch not stored; retrying");
                    tokio::select! {
                        () = ctx.shutdown.cancelled() => return Ok(()),
                        () = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(RETRY_MAX);
                }
                Err(err) => return Err(err.into()),
            }
        }
        let mut offsets = TopicPartitionList::new();
        for message in &batch {
            offsets.add_partition_offset(
                message.topic(),
                message.partition(),
                rdkafka::Offset::Offset(message.offset() + 1),
            )?;
        }
        consumer.commit(&offsets, CommitMode::Sync)?;
        metrics::counter!("audit_sink_messages_total").increment(batch.len() as u64);
        if lag_checked.elapsed() >= LAG_EVERY {
            lag_checked = tokio::time::Instant::now();
            let consumer = consumer.clone();
            drop(tokio::task::spawn_blocking(move || record_lag(&consumer)));
        }
    }
}

/// A message that passed parsing.
struct Record<'m> {
    message: &'m OwnedMessage,
    tenant: uuid::Uuid,
    event_id: uuid::Uuid,
    occurred_at: chrono::DateTime<chrono::Utc>,
    envelope: Value,
}

fn parse(message: &OwnedMessage) -> Result<Record<'_>, String> {
    let payload = message.payload().ok_or("empty message")?;
    let envelope: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    let field = |name: &str| {
        envelope
            .get(name)
            .and_then(Value::as_str)
            .ok_or(format!("missing `{name}`"))
    };
    let tenant = field("tenant_id")?
        .parse()
        .map_err(|_| "bad `tenant_id`".to_owned())?;
    let event_id = field("event_id")?
        .parse()
        .map_err(|_| "bad `event_id`".to_owned())?;
    let occurred_at = chrono::DateTime::parse_from_rfc3339(field("occurred_at")?)
        .map_err(|_| "bad `occurred_at`".to_owned())?
        .to_utc();
    field("type")?;
    if !envelope.get("actor").is_some_and(Value::is_object) {
        return Err("missing `actor`".into());
    }
    Ok(Record {
        message,
        tenant,
        event_id,
        occurred_at,
        envelope,
    })
}

/// Stores one batch in one transaction (system role: the sink writes for every tenant). Each
/// tenant's records go in under a savepoint: if they cannot be stored (e.g. an unknown tenant)
/// they are dead-lettered with the reason and the rest of the batch is kept.
pub async fn store(system: &SystemDb, batch: &[OwnedMessage]) -> Result<(), sqlx::Error> {
    let mut tx = system.pool().begin().await?;
    let mut records = Vec::new();
    for message in batch {
        match parse(message) {
            Ok(record) => records.push(record),
            Err(reason) => dead_letter(&mut tx, message, None, &reason).await?,
        }
    }
    // Per tenant in a stable order, so concurrent sinks lock chain heads in the same order.
    records.sort_by_key(|r| r.tenant);
    for group in records.chunk_by(|a, b| a.tenant == b.tenant) {
        // Nested: a savepoint inside the batch transaction.
        let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
        match extend_chain(&mut savepoint, group).await {
            Ok(()) => savepoint.commit().await?,
            // Not about these records: the whole batch is tried again, nothing committed.
            Err(err) if !deterministic(&err) => return Err(err),
            Err(err) => {
                savepoint.rollback().await?;
                let reason = format!(
                    "not storable: {}",
                    err.as_database_error()
                        .map_or("database error".into(), |e| e.message().to_owned())
                );
                for record in group {
                    dead_letter(&mut tx, record.message, Some(record.tenant), &reason).await?;
                }
            }
        }
    }
    tx.commit().await
}

/// Appends one tenant's new records to its chain: one query finds which are already stored
/// (redeliveries), one `unnest` insert stores the rest. Duplicates inside the batch are
/// skipped too.
async fn extend_chain(
    tx: &mut sqlx::PgConnection,
    records: &[Record<'_>],
) -> Result<(), sqlx::Error> {
    let tenant = records[0].tenant;
    let head = sqlx::query!(
        "select chain_seq, hash from audit_chain_heads where tenant_id = $1 for update",
        tenant
    )
    .fetch_optional(&mut *tx)
    .await?;
    let (mut seq, mut prev) = head.map_or((0, chain::GENESIS.to_vec()), |h| (h.chain_seq, h.hash));
    let ids: Vec<uuid::Uuid> = records.iter().map(|r| r.event_id).collect();
    let mut seen: HashSet<uuid::Uuid> = sqlx::query_scalar!(
        "select event_id from audit_events where tenant_id = $1 and event_id = any($2)",
        tenant,
        &ids
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let mut rows = Rows::default();
    for record in records {
        if !seen.insert(record.event_id) {
            metrics::counter!("audit_sink_duplicates_total").increment(1);
            continue;
        }
        seq += 1;
        let hash = chain::link(&prev, seq, &record.envelope);
        rows.push(
            record,
            seq,
            std::mem::replace(&mut prev, hash.clone()),
            hash,
        );
    }
    if rows.seq.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "insert into audit_events (tenant_id, event_id, chain_seq, occurred_at, event_type, actor, actor_id,
             resource_kind, resource_id, request_id, envelope, prev_hash, hash)
         select $1, * from unnest($2::uuid[], $3::int8[], $4::timestamptz[], $5::text[], $6::jsonb[],
             $7::text[], $8::text[], $9::text[], $10::text[], $11::jsonb[], $12::bytea[], $13::bytea[])",
        tenant,
        &rows.event_id,
        &rows.seq,
        &rows.occurred_at,
        &rows.event_type,
        &rows.actor,
        &rows.actor_id as &[Option<String>],
        &rows.resource_kind as &[Option<String>],
        &rows.resource_id as &[Option<String>],
        &rows.request_id as &[Option<String>],
        &rows.envelope,
        &rows.prev_hash,
        &rows.hash,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "insert into audit_chain_heads (tenant_id, chain_seq, hash) values ($1, $2, $3)
         on conflict (tenant_id) do update set chain_seq = excluded.chain_seq, hash = excluded.hash",
        tenant,
        seq,
        prev
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Column arrays for one `unnest` insert.
#[derive(Default)]
struct Rows {
    event_id: Vec<uuid::Uuid>,
    seq: Vec<i64>,
    occurred_at: Vec<chrono::DateTime<chrono::Utc>>,
    event_type: Vec<String>,
    actor: Vec<Value>,
    actor_id: Vec<Option<String>>,
    resource_kind: Vec<Option<String>>,
    resource_id: Vec<Option<String>>,
    request_id: Vec<Option<String>>,
    envelope: Vec<Value>,
    prev_hash: Vec<Vec<u8>>,
    hash: Vec<Vec<u8>>,
}

impl Rows {
    fn push(&mut self, record: &Record<'_>, seq: i64, prev_hash: Vec<u8>, hash: Vec<u8>) {
        let columns = chain::Columns::of(&record.envelope);
        self.event_id.push(record.event_id);
        self.seq.push(seq);
        self.occurred_at.push(record.occurred_at);
        self.event_type.push(columns.event_type);
        self.actor.push(columns.actor);
        self.actor_id.push(columns.actor_id);
        self.resource_kind.push(columns.resource_kind);
        self.resource_id.push(columns.resource_id);
        self.request_id.push(columns.request_id);
        self.envelope.push(record.envelope.clone());
        self.prev_hash.push(prev_hash);
        self.hash.push(hash);
    }
}

/// Keeps a message that cannot be stored, with its tenant when it names one (the record's, or
/// else its key's): verifying that tenant's chain then reports it.
async fn dead_letter(
    tx: &mut sqlx::PgConnection,
    message: &OwnedMessage,
    tenant: Option<uuid::Uuid>,
    reason: &str,
) -> Result<(), sqlx::Error> {
    metrics::counter!("audit_sink_dead_letters_total").increment(1);
    let key = message
        .key()
        .map(|k| String::from_utf8_lossy(k).into_owned());
    let tenant = tenant.or_else(|| key.as_deref().and_then(|k| k.parse().ok()));
    sqlx::query!(
        "insert into audit_dead_letters (topic, kafka_partition, kafka_offset, message_key, reason, payload, tenant_id)
         values ($1, $2, $3, $4, $5, $6, $7)",
        message.topic(),
        message.partition(),
        message.offset(),
        key,
        reason,
        message.payload(),
        tenant,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Records of the topic past this group's committed offsets, on every partition (assigned or
/// not), and the committed offsets' total. Asks the broker (blocking); (0, 0) when it cannot
/// tell.
fn waiting(consumer: &StreamConsumer) -> (i64, i64) {
    let timeout = Duration::from_secs(5);
    let Ok(metadata) = consumer.fetch_metadata(Some(AUDIT_TOPIC), timeout) else {
        return (0, 0);
    };
    let mut partitions = TopicPartitionList::new();
    for topic in metadata.topics() {
        for partition in topic.partitions() {
            partitions.add_partition(topic.name(), partition.id());
        }
    }
    let Ok(committed) = consumer.committed_offsets(partitions, timeout) else {
        return (0, 0);
    };
    let (mut waiting, mut total) = (0, 0);
    for element in committed.elements() {
        let Ok((low, high)) =
            consumer.fetch_watermarks(element.topic(), element.partition(), timeout)
        else {
            continue;
        };
        let from = element.offset().to_raw().filter(|o| *o >= 0).unwrap_or(low);
        waiting += (high - from).max(0);
        total += from;
    }
    (waiting, total)
}

/// Messages between this group's position and the end of each assigned partition. Asks the
/// broker (blocking), so it runs on the blocking pool, at most every `LAG_EVERY`.
fn record_lag(consumer: &StreamConsumer) {
    let Ok(position) = consumer.position() else {
        return;
    };
    let mut lag = 0i64;
    for element in position.elements() {
        let Some(offset) = element.offset().to_raw() else {
            continue;
        };
        if let Ok((_, high)) =
            consumer.fetch_watermarks(element.topic(), element.partition(), Duration::from_secs(2))
        {
            lag += (high - offset).max(0);
        }
    }
    metrics::gauge!("audit_sink_lag").set(lag as f64);
}
