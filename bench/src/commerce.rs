//! Commerce (issue #6), side by side in one run against the local stack:
//!
//! - **orders**: `POST /api/v1/orders` (two lines, no customer) through the whole stack (HTTP,
//!   token and session check, tenant quota, JSON, idempotency key, stock ledger, outbox) against
//!   pgbench running the same SQL transaction (`order.sql`) on the same database, with the same
//!   number of concurrent clients. Goal: the stack at ≥ 0.5× pgbench.
//! - **customers**: `POST /api/v1/customers` (name, email, phone, address, consent) with
//!   envelope encryption (Warung), Transit per field, and no encryption. Goal: envelope at
//!   ≥ 0.8× no encryption and ≥ 20× Transit per field (one Vault round trip per value, so the
//!   gap grows with the fields a record has).
//!
//! Rounds interleave the variants; medians are reported.

use std::{
    io::Write,
    time::{Duration, Instant},
};

use futures::future::join_all;
use platform::pii::Mode;
use serde_json::{Value, json};
use testkit::{Staff, TestApp, customer_body};

use crate::median;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Orders per sample (each variant).
    #[arg(long, default_value_t = 800)]
    orders: usize,
    /// Customers per sample (each cipher mode).
    #[arg(long, default_value_t = 200)]
    customers: usize,
    /// Concurrent clients (HTTP tasks and pgbench clients alike).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Interleaved rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// Sends `total` requests from `concurrency` tasks; `make(i)` is the i-th request.
async fn drive<F, Fut>(total: usize, concurrency: usize, make: F) -> anyhow::Result<Duration>
where
    F: Fn(usize) -> Fut + Sync,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    let tasks = (0..concurrency).map(|task| {
        let make = &make;
        async move {
            let mut i = task;
            while i < total {
                make(i).await?;
                i += concurrency;
            }
            anyhow::Ok(())
        }
    });
    for result in join_all(tasks).await {
        result?;
    }
    Ok(started.elapsed())
}

async fn post(
    app: &TestApp,
    staff: &Staff,
    path: &str,
    key: bool,
    body: &Value,
) -> anyhow::Result<()> {
    let mut request = app
        .client
        .post(app.url(path))
        .header("authorization", staff.bearer())
        .json(body);
    if key {
        request = request.header("idempotency-key", uuid::Uuid::now_v7().to_string());
    }
    let response = request.send().await?;
    anyhow::ensure!(
        response.status() == 201,
        "{path}: {} {}",
        response.status(),
        response.text().await?
    );
    Ok(())
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// Runs `order.sql` with pgbench; returns the time `orders` transactions take at its tps.
fn pgbench(
    script: &std::path::Path,
    vars: &[(&str, String)],
    orders: usize,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let url = testkit::stack_env()
        .get("WARUNG_DATABASE__APP_URL")
        .ok_or_else(|| anyhow::anyhow!("WARUNG_DATABASE__APP_URL is not set"))?;
    let mut command = std::process::Command::new("pgbench");
    command
        // Prepared statements, as sqlx runs them.
        .args([
            "-n",
            "-M",
            "prepared",
            "-j",
            "2",
            "-c",
            &concurrency.to_string(),
        ])
        .args(["-t", &(orders / concurrency).to_string()])
        .arg("-f")
        .arg(script);
    for (name, value) in vars {
        command.arg("-D").arg(format!("{name}={value}"));
    }
    let output = command.arg(url).output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "pgbench failed: {}{}",
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    let tps: f64 = stdout
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split(' ').next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no tps in pgbench output: {stdout}"))?;
    Ok(Duration::from_secs_f64(orders as f64 / tps))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let p1 = app.product(owner, 18000, 1_000_000_000).await;
    let p2 = app.product(owner, 18000, 1_000_000_000).await;
    let script = std::env::temp_dir().join(format!("warung-order-{}.sql", std::process::id()));
    std::fs::write(&script, include_str!("order.sql"))?;
    let vars = [
        ("tenant", merchant.tenant.to_string()),
        ("cashier", owner.id.to_string()),
        ("p1", text(&p1["id"])),
        ("p2", text(&p2["id"])),
    ];
    let order = json!({"lines": [
        {"product_id": p1["id"], "quantity": 1},
        {"product_id": p2["id"], "quantity": 1},
    ]});

    let mut stack = Vec::new();
    let mut sql = Vec::new();
    for _ in 0..args.rounds {
        stack.push(
            drive(args.orders, args.concurrency, |_| {
                post(&app, owner, "/api/v1/orders", true, &order)
            })
            .await?,
        );
        sql.push(pgbench(&script, &vars, args.orders, args.concurrency)?);
    }
    std::fs::remove_file(&script).ok();

    let modes = [
        ("envelope (Warung)", Mode::Envelope),
        ("Transit per field", Mode::TransitPerField),
        ("no encryption", Mode::Plaintext),
    ];
    let mut customers: [Vec<Duration>; 3] = Default::default();
    for round in 0..args.rounds {
        for (samples, (_, mode)) in customers.iter_mut().zip(modes) {
            app.state.pii.set_mode_for_benchmark(mode);
            samples.push(
                drive(args.customers, args.concurrency, |i| {
                    let email = format!("c{round}-{mode:?}-{i}@example.id");
                    let body = customer_body(&email);
                    let app = &app;
                    async move { post(app, owner, "/api/v1/customers", false, &body).await }
                })
                .await?,
            );
        }
    }
    app.state.pii.set_mode_for_benchmark(Mode::Envelope);

    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    let mut out = std::io::stdout();
    writeln!(
        out,
        "orders: {} per sample, {} concurrent clients, {} rounds, medians:\n",
        args.orders, args.concurrency, args.rounds
    )?;
    writeln!(out, "| variant | orders/s | vs pgbench |")?;
    writeln!(out, "| --- | ---: | ---: |")?;
    let (stack, sql) = (median(stack), median(sql));
    writeln!(
        out,
        "| `POST /api/v1/orders` (full stack) | {:.0} | {:.2}× |",
        rate(args.orders, stack),
        sql.as_secs_f64() / stack.as_secs_f64()
    )?;
    writeln!(
        out,
        "| pgbench, same SQL transaction | {:.0} | 1.00× |",
        rate(args.orders, sql)
    )?;
    writeln!(
        out,
        "\ncustomers: {} per sample, {} concurrent clients, {} rounds, medians:\n",
        args.customers, args.concurrency, args.rounds
    )?;
    writeln!(
        out,
        "| cipher | customers/s | vs no encryption | vs Transit per field |"
    )?;
    writeln!(out, "| --- | ---: | ---: | ---: |")?;
    let medians: Vec<Duration> = customers.into_iter().map(median).collect();
    for ((name, _), d) in modes.iter().zip(&medians) {
        writeln!(
            out,
            "| {name} | {:.0} | {:.2}× | {:.1}× |",
            rate(args.customers, *d),
            medians[2].as_secs_f64() / d.as_secs_f64(),
            medians[1].as_secs_f64() / d.as_secs_f64(),
        )?;
    }
    Ok(())
}
