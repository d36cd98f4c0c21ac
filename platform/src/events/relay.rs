//! The outbox relay: claims unsent outbox rows (`FOR UPDATE SKIP LOCKED`, so relays in every
//! process share the work without sending a row twice), produces them with the idempotent
//! `acks=all` producer keyed by tenant, and marks them sent only after the broker acknowledged
//! every one. If the broker is down the claim rolls back and the rows wait; nothing is lost.
//! Woken by `LISTEN warung_outbox`, with a slow poll as a safety net. Published rows are pruned
//! after the retention period.
//!
//! Delivery is at least once: a relay that dies between the broker's ack and its own commit
//! sends those rows again; consumers are idempotent on `event_id`.
//!
//! The relay heals by itself: it owns its producer and builds a new one after a fatal producer
//! error, or when every send has failed for `kafka.rebuild_after_ms` (a broker that lost its
//! state no longer knows the old producer's id and times out its sends for ever; a new producer
//! gets a new id). [`Progress`] tells readiness how long the relay has been failing.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::future::join_all;
use rdkafka::{
    error::{KafkaError, RDKafkaErrorCode},
    producer::{FutureRecord, Producer},
};
use sqlx::postgres::PgListener;

use crate::{
    clients::Kafka,
    config::KafkaConfig,
    db::SystemDb,
    module::{Worker, WorkerContext},
};

#[derive(Debug, Clone, Copy)]
pub struct RelaySettings {
    pub batch: i64,
    pub retention: Duration,
    pub send_timeout: Duration,
    /// Failing this long, the relay builds a new producer.
    pub rebuild_after: Duration,
}

/// Since when the relay of this process has failed every batch (`None`: it is making progress),
/// shared with readiness.
#[derive(Debug, Default)]
pub struct Progress {
    failing_since: Mutex<Option<Instant>>,
}

impl Progress {
    /// How long the relay has failed every batch (zero while it makes progress).
    pub fn failing_for(&self) -> Duration {
        self.failing_since
            .lock()
            .map(|since| since.map(|at| at.elapsed()).unwrap_or_default())
            .unwrap_or_default()
    }

    fn succeeded(&self) {
        if let Ok(mut since) = self.failing_since.lock() {
            *since = None;
        }
    }

    /// Records a failed batch; answers how long the relay has been failing.
    fn failed(&self) -> Duration {
        self.failing_since
            .lock()
            .map(|mut since| since.get_or_insert_with(Instant::now).elapsed())
            .unwrap_or_default()
    }
}

const CHANNEL: &str = "warung_outbox";
const POLL: Duration = Duration::from_secs(5);
const PRUNE_EVERY: Duration = Duration::from_secs(60);
const PRUNE_BATCH: i64 = 1_000;
/// A fatal error rebuilds the producer at once, but not more often than this.
const MIN_REBUILD_GAP: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The broker did not acknowledge every message; the batch stays unsent. `fatal`: the
    /// producer itself can no longer send (its id is unknown or fenced): only a new one can.
    #[error("broker did not acknowledge {failed} of {total} messages: {first}")]
    Broker {
        failed: usize,
        total: usize,
        first: String,
        fatal: bool,
    },
}

impl RelayError {
    fn fatal(&self) -> bool {
        matches!(self, Self::Broker { fatal: true, .. })
    }
}

/// Errors after which a producer never sends again.
fn fatal(err: &KafkaError) -> bool {
    matches!(
        err.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::Fatal
                | RDKafkaErrorCode::UnknownProducerId
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::InvalidProducerIdMapping
                | RDKafkaErrorCode::OutOfOrderSequenceNumber
                | RDKafkaErrorCode::ProducerFenced
        )
    )
}

pub fn worker(kafka: KafkaConfig, settings: RelaySettings, progress: Arc<Progress>) -> Worker {
    Worker::new("outbox-relay", move |ctx| {
        let (kafka, progress) = (kafka.clone(), Arc::clone(&progress));
        async move { run(ctx, kafka, settings, progress).await }
    })
}

async fn run(
    ctx: WorkerContext,
    config: KafkaConfig,
    settings: RelaySettings,
    progress: Arc<Progress>,
) -> anyhow::Result<()> {
    let mut kafka = Kafka::connect(&config)?;
    let mut built = Instant::now();
    let mut listener = PgListener::connect_with(ctx.system.pool()).await?;
    listener.listen(CHANNEL).await?;
    let mut backoff = Duration::from_millis(500);
    let mut last_prune: Option<Instant> = None;
    while !ctx.shutdown.is_cancelled() {
        match publish_batch(&ctx.system, &kafka, settings).await {
            Ok(sent) if sent > 0 => {
                progress.succeeded();
                backoff = Duration::from_millis(500);
            }
            Ok(_) => {
                progress.succeeded();
                backoff = Duration::from_millis(500);
                record_backlog(&ctx.system).await;
                if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                    prune(&ctx.system, settings.retention).await?;
                    last_prune = Some(Instant::now());
                }
                tokio::select! {
                    () = ctx.shutdown.cancelled() => {}
                    _ = listener.recv() => {}
                    () = tokio::time::sleep(POLL) => {}
                }
            }
            Err(err) => {
                metrics::counter!("outbox_relay_failures_total").increment(1);
                tracing::warn!(error = %err, retry_in_ms = backoff.as_millis(), "outbox relay: batch not sent; will retry");
                let failing_for = progress.failed();
                let fatal = err.fatal() || kafka.producer().client().fatal_error().is_some();
                let since_built = built.elapsed();
                if (fatal && since_built >= MIN_REBUILD_GAP)
                    || (failing_for >= settings.rebuild_after
                        && since_built >= settings.rebuild_after)
                {
                    tracing::warn!(
                        fatal,
                        failing_for_s = failing_for.as_secs(),
                        "outbox relay: building a new Kafka producer"
                    );
                    metrics::counter!("kafka_client_rebuilds_total", "client" => "outbox-relay")
                        .increment(1);
                    let fresh = Kafka::connect(&config)?;
                    let old = std::mem::replace(&mut kafka, fresh);
                    built = Instant::now();
                    // Destroying a client can wait on its broker threads: not on this task.
                    drop(tokio::task::spawn_blocking(move || drop(old)));
                }
                record_backlog(&ctx.system).await;
                tokio::select! {
                    () = ctx.shutdown.cancelled() => {}
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
    Ok(())
}

/// Claims up to `batch` unsent rows, publishes them, marks them sent. Returns how many were sent.
pub async fn publish_batch(
    system: &SystemDb,
    kafka: &Kafka,
    settings: RelaySettings,
) -> Result<u64, RelayError> {
    let mut tx = system.pool().begin().await?;
    let rows = sqlx::query!(
        r#"select seq, tenant_id, event_id, topic, event_type, schema_version, actor, occurred_at, request_id, payload
           from outbox where published_at is null order by seq limit $1 for update skip locked"#,
        settings.batch
    )
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let messages: Vec<(String, String, String, i64)> = rows
        .iter()
        .map(|row| {
            let envelope = serde_json::json!({
                "event_id": row.event_id,
                "type": row.event_type,
                "schema_version": row.schema_version,
                "tenant_id": row.tenant_id,
                "actor": row.actor,
                "occurred_at": row.occurred_at,
                "request_id": row.request_id,
                "payload": row.payload,
            });
            (
                row.topic.clone(),
                row.tenant_id.to_string(),
                envelope.to_string(),
                row.occurred_at.timestamp_millis(),
            )
        })
        .collect();
    let started = Instant::now();
    let deliveries = join_all(messages.iter().map(|(topic, key, payload, at)| {
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .timestamp(*at);
        kafka.producer().send(record, settings.send_timeout)
    }))
    .await;
    metrics::histogram!("outbox_produce_duration_seconds").record(started.elapsed().as_secs_f64());
    let errors: Vec<&KafkaError> = deliveries
        .iter()
        .filter_map(|d| d.as_ref().err().map(|(err, _)| err))
        .collect();
    let failures: Vec<String> = errors.iter().map(ToString::to_string).collect();
    if let Some(first) = failures.first() {
        // Roll back the claim: every row stays unsent and is retried (some may already be on the
        // broker; consumers deduplicate on event_id).
        tx.rollback().await?;
        return Err(RelayError::Broker {
            failed: failures.len(),
            total: messages.len(),
            first: first.clone(),
            fatal: errors.iter().any(|e| fatal(e)),
        });
    }
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    sqlx::query!(
        "update outbox set published_at = now() where seq = any($1)",
        &seqs
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    metrics::counter!("outbox_published_total").increment(seqs.len() as u64);
    Ok(seqs.len() as u64)
}

/// Deletes rows published longer ago than `retention`, in small batches (no long locks).
pub async fn prune(system: &SystemDb, retention: Duration) -> Result<u64, sqlx::Error> {
    let cutoff = chrono::Utc::now()
        - chrono::TimeDelta::from_std(retention).unwrap_or(chrono::TimeDelta::MAX);
    let mut total = 0;
    loop {
        let deleted = sqlx::query!(
            "delete from outbox where seq in (
                 select seq from outbox where published_at < $1 order by published_at limit $2)",
            cutoff,
            PRUNE_BATCH
        )
        .execute(system.pool())
        .await?
        .rows_affected();
        total += deleted;
        if deleted < PRUNE_BATCH as u64 {
            return Ok(total);
        }
    }
}

async fn record_backlog(system: &SystemDb) {
    let backlog = sqlx::query!(
        r#"select count(*) as "count!", extract(epoch from now() - min(occurred_at))::float8 as oldest_age
           from outbox where published_at is null"#
    )
    .fetch_one(system.pool())
    .await;
    if let Ok(row) = backlog {
        metrics::gauge!("outbox_backlog").set(row.count as f64);
        metrics::gauge!("outbox_oldest_unsent_age_seconds").set(row.oldest_age.unwrap_or(0.0));
    }
}

/// Rows marked unsent again per statement by [`replay`] (short transactions).
const REPLAY_BATCH: i64 = 5_000;

/// The re-drive after a broker lost data (`warung outbox replay`): marks the rows published at
/// or after `since` (of `topic`, or both topics) unsent again, so the relays publish them once
/// more. Only rows still kept are replayed (`outbox.retention_hours`); every consumer is
/// idempotent on `event_id`, so a replay stores no audit row twice and sends no mail twice.
/// With `dry_run`, only counts. Returns how many rows it marked (or would mark).
pub async fn replay(
    system: &SystemDb,
    since: chrono::DateTime<chrono::Utc>,
    topic: Option<&str>,
    dry_run: bool,
) -> Result<u64, sqlx::Error> {
    if dry_run {
        let rows = sqlx::query_scalar!(
            r#"select count(*) as "rows!" from outbox
               where published_at >= $1 and ($2::text is null or topic = $2)"#,
            since,
            topic
        )
        .fetch_one(system.pool())
        .await?;
        return Ok(u64::try_from(rows).unwrap_or_default());
    }
    let mut marked = 0;
    loop {
        let batch = sqlx::query!(
            "update outbox set published_at = null where seq in (
                 select seq from outbox
                 where published_at >= $1 and ($2::text is null or topic = $2)
                 order by seq limit $3)",
            since,
            topic,
            REPLAY_BATCH
        )
        .execute(system.pool())
        .await?
        .rows_affected();
        marked += batch;
        if batch < REPLAY_BATCH as u64 {
            return Ok(marked);
        }
    }
}
