//! The audit pipeline (issue #4), in one run against the local stack:
//!
//! - **end to end**: audit records emitted into the outbox (transactions of `per_tx` records from
//!   four tasks) until every one is in `audit_events`: outbox → relay → Kafka → sink → store;
//! - **sink alone**: the same number of records produced straight to Kafka (far faster than the
//!   sink stores them), until every one is stored;
//! - **raw insert**: the same rows, hashes precomputed, inserted into `audit_events` with
//!   `unnest` in batches of the sink's size: what the table takes without the sink's work;
//! - **lag at a sustained rate**: one record per transaction at half the end-to-end rate for a
//!   while; lag is `recorded_at - occurred_at` (store transaction start minus outbox commit).
//!
//! Rounds interleave the three throughput variants; medians are reported.

use std::{
    io::Write,
    time::{Duration, Instant},
};

use platform::{
    AppState,
    events::{self, Actor, AuditRecord, Resource},
    id::TenantId,
};
use rdkafka::producer::FutureRecord;
use testkit::TestApp;

use crate::median;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Records per throughput sample.
    #[arg(long, default_value_t = 10_000)]
    records: usize,
    /// Records per emitting transaction in the end-to-end sample.
    #[arg(long, default_value_t = 50)]
    per_tx: usize,
    /// Interleaved rounds of the throughput variants.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of paced load for the lag measurement.
    #[arg(long, default_value_t = 20)]
    paced_secs: u64,
}

const EMITTERS: usize = 4;
const RAW_BATCH: usize = 500;

pub async fn run(args: Args) -> anyhow::Result<()> {
    let app = TestApp::builder()
        .set("WARUNG_OUTBOX__RELAY", "true")
        .with_module_workers()
        .start()
        .await;
    let names = [
        "end to end (outbox → store)",
        "sink alone (Kafka → store)",
        "raw batch insert",
    ];
    let mut samples: [Vec<Duration>; 3] = Default::default();
    for _ in 0..args.rounds {
        samples[0].push(end_to_end(&app, args.records, args.per_tx).await?);
        samples[1].push(sink_alone(&app, args.records).await?);
        samples[2].push(raw_insert(&app, args.records).await?);
    }
    let medians: Vec<Duration> = samples.into_iter().map(median).collect();
    let rate = |d: Duration| args.records as f64 / d.as_secs_f64().max(1e-9);

    let target = rate(medians[0]) / 2.0;
    let lag = paced(&app, target, Duration::from_secs(args.paced_secs)).await?;

    let mut out = std::io::stdout();
    writeln!(
        out,
        "{} records per sample, {} rounds, medians:\n",
        args.records, args.rounds
    )?;
    writeln!(out, "| variant | median time | records/s | vs raw insert |")?;
    writeln!(out, "| --- | ---: | ---: | ---: |")?;
    for (name, d) in names.iter().zip(&medians) {
        writeln!(
            out,
            "| {name} | {:.2} s | {:.0} | {:.2}× |",
            d.as_secs_f64(),
            rate(*d),
            rate(*d) / rate(medians[2]),
        )?;
    }
    writeln!(
        out,
        "\nPaced: {:.0} records/s asked, {:.0} achieved (one record per transaction) for {} s: \
         lag p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        target,
        lag.achieved,
        args.paced_secs,
        lag.p50 * 1e3,
        lag.p99 * 1e3,
        lag.max * 1e3
    )?;
    app.stop().await;
    Ok(())
}

/// One transaction with `n` audit records, as a mutation touching `n` things would write.
async fn emit(state: &AppState, tenant: TenantId, n: usize) -> anyhow::Result<()> {
    let mut tx = state.db.tenant(tenant).begin().await?;
    for i in 0..n {
        let record = AuditRecord::new(
            Actor::System { name: "bench" },
            "bench.changed",
            Resource::new("bench", i),
        )
        .fields(&["name", "price_minor"]);
        events::emit_audit(&mut tx, &record).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn stored(app: &TestApp, tenant: TenantId) -> anyhow::Result<usize> {
    let n: i64 = sqlx::query_scalar("select count(*) from audit_events where tenant_id = $1")
        .bind(tenant)
        .fetch_one(app.system.pool())
        .await?;
    Ok(usize::try_from(n)?)
}

async fn until_stored(app: &TestApp, tenant: TenantId, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while stored(app, tenant).await? < n {
        anyhow::ensure!(
            Instant::now() < deadline,
            "records did not arrive in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A fresh tenant whose `tenant.created` record is already stored, so counts start at 1.
async fn quiet_tenant(app: &TestApp) -> anyhow::Result<TenantId> {
    let tenant = app.tenant().await.id;
    until_stored(app, tenant, 1).await?;
    Ok(tenant)
}

async fn end_to_end(app: &TestApp, records: usize, per_tx: usize) -> anyhow::Result<Duration> {
    let tenant = quiet_tenant(app).await?;
    let started = Instant::now();
    let per_task = records / EMITTERS;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..EMITTERS {
        let app_state = app.state.clone();
        tasks.spawn(async move {
            let mut left = per_task;
            while left > 0 {
                let n = left.min(per_tx);
                emit(&app_state, tenant, n).await?;
                left -= n;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    until_stored(app, tenant, 1 + per_task * EMITTERS).await?;
    Ok(started.elapsed())
}

fn envelope(tenant: TenantId, i: usize) -> serde_json::Value {
    serde_json::json!({
        "event_id": uuid::Uuid::now_v7(),
        "type": "bench.changed",
        "schema_version": 1,
        "tenant_id": tenant,
        "actor": { "kind": "system", "name": "bench" },
        "occurred_at": chrono::Utc::now(),
        "request_id": null,
        "payload": { "action": "bench.changed", "resource": { "kind": "bench", "id": i.to_string() },
                     "changed_fields": ["name", "price_minor"], "details": null },
    })
}

async fn sink_alone(app: &TestApp, records: usize) -> anyhow::Result<Duration> {
    let tenant = quiet_tenant(app).await?;
    let key = tenant.to_string();
    let messages: Vec<String> = (0..records)
        .map(|i| envelope(tenant, i).to_string())
        .collect();
    let producer = app.state.kafka.producer();
    let started = Instant::now();
    let sends = messages.iter().map(|payload| {
        producer.send(
            FutureRecord::to(events::AUDIT_TOPIC)
                .key(&key)
                .payload(payload),
            Duration::from_secs(30),
        )
    });
    for sent in futures::future::join_all(sends).await {
        sent.map_err(|(err, _)| err)?;
    }
    until_stored(app, tenant, 1 + records).await?;
    Ok(started.elapsed())
}

/// The sink's rows for a tenant of their own, inserted with `unnest` in batches, one
/// transaction per batch (as the sink commits per batch).
async fn raw_insert(app: &TestApp, records: usize) -> anyhow::Result<Duration> {
    let tenant = app.tenant().await.id;
    let rows: Vec<serde_json::Value> = (0..records).map(|i| envelope(tenant, i)).collect();
    let started = Instant::now();
    let mut prev = audit::chain::GENESIS.to_vec();
    for (b, batch) in rows.chunks(RAW_BATCH).enumerate() {
        let mut seqs = Vec::with_capacity(batch.len());
        let mut prevs = Vec::with_capacity(batch.len());
        let mut hashes = Vec::with_capacity(batch.len());
        let mut event_ids = Vec::with_capacity(batch.len());
        let mut resource_ids = Vec::with_capacity(batch.len());
        for (i, envelope) in batch.iter().enumerate() {
            let seq = i64::try_from(b * RAW_BATCH + i + 1)?;
            let hash = audit::chain::link(&prev, seq, envelope);
            seqs.push(seq);
            prevs.push(std::mem::replace(&mut prev, hash.clone()));
            hashes.push(hash);
            event_ids.push(
                envelope["event_id"]
                    .as_str()
                    .unwrap_or_default()
                    .parse::<uuid::Uuid>()?,
            );
            resource_ids.push(
                envelope["payload"]["resource"]["id"]
                    .as_str()
                    .map(str::to_owned),
            );
        }
        let n = batch.len();
        let mut tx = app.system.pool().begin().await?;
        sqlx::query(
            "insert into audit_events (tenant_id, event_id, chain_seq, occurred_at, event_type, actor, actor_id,
                 resource_kind, resource_id, request_id, envelope, prev_hash, hash)
             select $1, e, s, now(), 'bench.changed', $2, 'bench', 'bench', r, null, env, p, h
             from unnest($3::uuid[], $4::int8[], $5::text[], $6::jsonb[], $7::bytea[], $8::bytea[])
                 as u(e, s, r, env, p, h)",
        )
        .bind(tenant)
        .bind(serde_json::json!({ "kind": "system", "name": "bench" }))
        .bind(&event_ids)
        .bind(&seqs)
        .bind(&resource_ids)
        .bind(batch)
        .bind(&prevs)
        .bind(&hashes)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        anyhow::ensure!(event_ids.len() == n);
    }
    Ok(started.elapsed())
}

struct Lag {
    achieved: f64,
    p50: f64,
    p99: f64,
    max: f64,
}

/// One record per transaction at `rate` for `duration`, then the lag distribution.
async fn paced(app: &TestApp, rate: f64, duration: Duration) -> anyhow::Result<Lag> {
    let tenant = quiet_tenant(app).await?;
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1.0)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut tasks = tokio::task::JoinSet::new();
    let mut sent = 0usize;
    while started.elapsed() < duration {
        tick.tick().await;
        // Bounded concurrency: at most 16 transactions in flight.
        while tasks.len() >= 16 {
            if let Some(done) = tasks.join_next().await {
                done??;
            }
        }
        let app_state = app.state.clone();
        tasks.spawn(async move { emit(&app_state, tenant, 1).await });
        sent += 1;
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let achieved = sent as f64 / started.elapsed().as_secs_f64();
    until_stored(app, tenant, 1 + sent).await?;
    let (p50, p99, max): (f64, f64, f64) = sqlx::query_as(
        "select percentile_cont(0.5) within group (order by lag),
                percentile_cont(0.99) within group (order by lag),
                max(lag)
         from (select extract(epoch from recorded_at - occurred_at)::float8 as lag
               from audit_events where tenant_id = $1 and event_type = 'bench.changed') l",
    )
    .bind(tenant)
    .fetch_one(app.system.pool())
    .await?;
    Ok(Lag {
        achieved,
        p50,
        p99,
        max,
    })
}
