//! The compliance verifier's PII-at-rest scan (#16): how fast the shape detector reads column
//! text on one core, how fast the whole scan reads a database (PostgreSQL streaming included),
//! and whether its memory stays flat as a table grows.
//!
//! Side by side in one run: the detector alone over text made like a Warung database's (audit
//! envelopes, base64 ciphertext, names, timestamps), and, on a database of the benchmark's own,
//! `SELECT col::text` streamed with no detection against the verifier's scan of the same table.

use std::{
    hint::black_box,
    io::Write,
    time::{Duration, Instant},
};

use compliance::shapes::Detector;
use gateway::verify::VerifyArgs;
use testkit::{FreshDatabase, TestApp};

use crate::median;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Megabytes of column text in the large table (the small one, scanned first, is a quarter).
    #[arg(long, default_value_t = 64)]
    mb: usize,
    /// Rounds per variant; medians are taken over them.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

/// Values as a Warung database holds them, none of them personal data.
fn corpus(bytes: usize) -> Vec<String> {
    let mut values = Vec::new();
    let mut total = 0;
    let mut i = 0u64;
    while total < bytes {
        let id = uuid::Uuid::now_v7();
        let value = match i % 4 {
            0 => format!(
                r#"{{"event_id":"{id}","type":"order.paid","tenant_id":"{id}","occurred_at":"2026-12-01T04:06:50.{:06}Z","actor":{{"kind":"user","id":"{id}"}},"payload":{{"action":"order.paid","resource":{{"kind":"order","id":"{id}"}},"changed_fields":["status","paid_minor"],"details":{{"amount_minor":{}}}}}}}"#,
                i % 1_000_000,
                18_000 + i
            ),
            1 => format!("AQ{}", "x9Kf3+Qz/8bV2mN1pL0sR7tY5uW4eH6jD".repeat(3)),
            2 => format!("Kopi Susu Gula Aren {i} — SKU KS-{}", i % 9973),
            _ => format!("{id} 2026-12-01 04:06:{:02}.{:06}+00", i % 60, i % 999_999),
        };
        total += value.len();
        values.push(value);
        i += 1;
    }
    values
}

fn detector_alone(values: &[String]) -> Duration {
    let detector = Detector::new();
    let started = Instant::now();
    for value in values {
        black_box(detector.find(black_box(value)));
    }
    started.elapsed()
}

/// Peak resident memory of this process so far (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    let bytes = args.mb * 1_000_000;
    let values = corpus(bytes);
    let text: u64 = values.iter().map(|v| v.len() as u64).sum();
    let alone = median((0..args.rounds).map(|_| detector_alone(&values)).collect());

    // A database of the benchmark's own, with one table of the same values at two sizes.
    let db = FreshDatabase::create().await;
    let mut builder = TestApp::builder();
    for (key, value) in db.settings() {
        builder = builder.set(key, value);
    }
    let app = builder.start().await;
    let owner = db.owner().await;
    sqlx::query(
        "create table bench_scan (id bigint generated always as identity primary key, note text, body jsonb)",
    )
    .execute(&owner)
    .await?;
    let mut rows = Vec::new();
    let mut sizes = Vec::new();
    for share in [4, 1] {
        sqlx::query("truncate bench_scan").execute(&owner).await?;
        for chunk in values[..values.len() / share].chunks(2_000) {
            let notes: Vec<&str> = chunk.iter().map(String::as_str).collect();
            sqlx::query(
                "insert into bench_scan (note, body)
                 select n, jsonb_build_object('n', n) from unnest($1::text[]) as n",
            )
            .bind(&notes)
            .execute(&owner)
            .await?;
        }
        let config = testkit::config_with(&db.settings());
        let ctx = gateway::verify::context(config, &VerifyArgs::default()).await?;
        let mut read_only = Vec::new();
        let mut scanned = Vec::new();
        let mut scanned_bytes = 0;
        for _ in 0..args.rounds {
            let started = Instant::now();
            let mut stream = sqlx::query_as::<_, (Option<String>, Option<String>)>(
                "select note, body::text from bench_scan",
            )
            .fetch(&ctx.read);
            while let Some(row) = futures::TryStreamExt::try_next(&mut stream).await? {
                black_box(row);
            }
            drop(stream);
            read_only.push(started.elapsed());
            let started = Instant::now();
            let result = compliance::scan::scan(&ctx).await?;
            scanned.push(started.elapsed());
            scanned_bytes = result.bytes;
            anyhow::ensure!(
                !result.hits.values().any(|(h, _)| h.any()),
                "false positives: {:?}",
                result.hits.keys()
            );
        }
        rows.push((median(read_only), median(scanned), scanned_bytes));
        sizes.push(peak_rss_mib());
    }
    owner.close().await;
    app.stop().await;
    db.drop().await;

    writeln!(
        out,
        "Detector alone, one core, {:.0} MB of column text ({} rounds, median):\n",
        text as f64 / 1e6,
        args.rounds
    )?;
    writeln!(out, "| variant | median | MB/s |")?;
    writeln!(out, "| --- | ---: | ---: |")?;
    writeln!(
        out,
        "| detector (email, phone, NIK) | {:.0} ms | {:.0} |",
        alone.as_secs_f64() * 1e3,
        mb_per_s(text, alone)
    )?;
    writeln!(
        out,
        "\nWhole scan on PostgreSQL (every column of every table), side by side with streaming the same table without detection:\n"
    )?;
    writeln!(
        out,
        "| table | read only | scan | scan MB/s | scan / read | peak RSS after |"
    )?;
    writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: |")?;
    for (label, ((read, scan, bytes), rss)) in
        ["small", "large"].iter().zip(rows.iter().zip(&sizes))
    {
        writeln!(
            out,
            "| {label} ({:.0} MB scanned) | {:.0} ms | {:.0} ms | {:.0} | {:.2}× | {rss:.0} MiB |",
            *bytes as f64 / 1e6,
            read.as_secs_f64() * 1e3,
            scan.as_secs_f64() * 1e3,
            mb_per_s(*bytes, *scan),
            scan.as_secs_f64() / read.as_secs_f64().max(1e-9),
        )?;
    }
    Ok(())
}
