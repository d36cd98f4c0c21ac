//! `warung-bench`: measurements that matter to users, run side by side in one process against
//! the real local stack (`scripts/stack up`). Prints Markdown tables for docs/PERFORMANCE.md.
//!
//! Only medians and ratios are reported: the machine is shared and noisy, and the variants are
//! interleaved round by round so drift hits them all alike.

mod commerce;
mod pii;
mod pipeline;
mod scan;
mod till;

use std::{io::Write, time::Duration};

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "Warung benchmarks (needs `scripts/stack up`)")]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// PII envelope encryption vs Transit per field vs none (#3).
    Pii(pii::Args),
    /// The audit pipeline: outbox -> Kafka -> store throughput and lag; sink vs raw insert (#4).
    Pipeline(pipeline::Args),
    /// `POST /orders` vs pgbench with the same SQL; customer create per cipher (#6).
    Commerce(commerce::Args),
    /// The compliance verifier's PII scan: detector and whole-scan throughput, memory (#16).
    Scan(scan::Args),
    /// The till's money: sales and Z reports over 100 000 orders; taxed vs plain orders (#21).
    Till(till::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().bench {
        Bench::Pii(args) => pii::run(args).await,
        Bench::Pipeline(args) => pipeline::run(args).await,
        Bench::Commerce(args) => commerce::run(args).await,
        Bench::Scan(args) => scan::run(args).await,
        Bench::Till(args) => till::run(args).await,
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn per_s(d: Duration) -> f64 {
    1.0 / d.as_secs_f64().max(1e-9)
}

/// A Markdown table of medians, with each variant's rate relative to the `no_op` and `baseline`
/// rows.
fn table(
    out: &mut impl Write,
    rate: &str,
    names: &[&str],
    medians: &[Duration],
    no_op: usize,
    baseline: usize,
) -> std::io::Result<()> {
    writeln!(
        out,
        "| variant | median | {rate} | vs no-op | vs transit-per-field |"
    )?;
    writeln!(out, "| --- | ---: | ---: | ---: | ---: |")?;
    for (name, d) in names.iter().zip(medians) {
        writeln!(
            out,
            "| {name} | {:.2} ms | {:.0} | {:.2}× | {:.1}× |",
            d.as_secs_f64() * 1e3,
            per_s(*d),
            per_s(*d) / per_s(medians[no_op]),
            per_s(*d) / per_s(medians[baseline]),
        )?;
    }
    Ok(())
}
