//! The audit sink: a consumer group on `warung.audit.v1` that stores records in `audit_events`.
//!
//! - Batches: up to `BATCH` messages or `LINGER`, stored in one database transaction.
//! - Idempotent on `event_id`: a record delivered twice is stored once (at-least-once upstream).
//! - Each tenant's records extend its hash chain under a row lock on `audit_chain_heads`.
//! - Offsets are committed only after the database commit; a crash re-delivers, which the
//!   idempotency absorbs.
//! - A message that cannot be parsed or stored goes to `audit_dead_letters` with the reason and
//!   the consumer moves on. Nothing is dropped silently.

use std::{sync::Arc, time::Duration};

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
    loop {
        let first = tokio::select! {
            () = ctx.shutdown.cancelled() => return Ok(()),
            message = consumer.recv() => message?.detach(),
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(message) => batch.push(message?.detach()),
                Err(_) => break,
            }
        }
        store(&ctx.system, &batch).await?;
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
            Err(reason) => dead_letter(&mut tx, message, &reason).await?,
        }
    }
    // Per tenant in a stable order, so concurrent sinks lock chain heads in the same order.
    records.sort_by_key(|r| r.tenant);
    for group in records.chunk_by(|a, b| a.tenant == b.tenant) {
        // Nested: a savepoint inside the batch transaction.
        let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
        match extend_chain(&mut savepoint, group).await {
            Ok(()) => savepoint.commit().await?,
            Err(err) => {
                savepoint.rollback().await?;
                let reason = format!(
                    "not storable: {}",
                    err.as_database_error()
                        .map_or("database error".into(), |e| e.message().to_owned())
                );
                for record in group {
                    dead_letter(&mut tx, record.message, &reason).await?;
                }
            }
        }
    }
    tx.commit().await
}

/// Appends one tenant's new records to its chain (duplicates of stored records are skipped).
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
    let start_seq = seq;
    for record in records {
        let stored = sqlx::query_scalar!(
            r#"select exists(select 1 from audit_events where tenant_id = $1 and event_id = $2) as "stored!""#,
            record.tenant,
            record.event_id
        )
        .fetch_one(&mut *tx)
        .await?;
        if stored {
            metrics::counter!("audit_sink_duplicates_total").increment(1);
            continue;
        }
        seq += 1;
        let hash = chain::link(&prev, seq, &record.envelope);
        let text = |path: &[&str]| {
            path.iter()
                .try_fold(&record.envelope, |v, key| v.get(*key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        sqlx::query!(
            "insert into audit_events (tenant_id, event_id, chain_seq, occurred_at, event_type, actor, actor_id,
                 resource_kind, resource_id, request_id, envelope, prev_hash, hash)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            record.tenant,
            record.event_id,
            seq,
            record.occurred_at,
            text(&["type"]).unwrap_or_default(),
            record.envelope.get("actor").cloned().unwrap_or(Value::Null),
            text(&["actor", "id"]).or_else(|| text(&["actor", "name"])),
            text(&["payload", "resource", "kind"]),
            text(&["payload", "resource", "id"]),
            text(&["request_id"]),
            record.envelope,
            prev,
            hash,
        )
        .execute(&mut *tx)
        .await?;
        prev = hash;
    }
    if seq > start_seq {
        sqlx::query!(
            "insert into audit_chain_heads (tenant_id, chain_seq, hash) values ($1, $2, $3)
             on conflict (tenant_id) do update set chain_seq = excluded.chain_seq, hash = excluded.hash",
            tenant,
            seq,
            prev
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

async fn dead_letter(
    tx: &mut sqlx::PgConnection,
    message: &OwnedMessage,
    reason: &str,
) -> Result<(), sqlx::Error> {
    metrics::counter!("audit_sink_dead_letters_total").increment(1);
    sqlx::query!(
        "insert into audit_dead_letters (topic, kafka_partition, kafka_offset, message_key, reason, payload)
         values ($1, $2, $3, $4, $5, $6)",
        message.topic(),
        message.partition(),
        message.offset(),
        message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        reason,
        message.payload(),
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
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
