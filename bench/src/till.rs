//! The till's money (issue #21), against the local stack:
//!
//! - **reports**: a shop with `--orders` paid orders (default 100 000) spread over 90 days, two
//!   lines each, inserted straight into its tables (the API would take an hour); then the sales
//!   report of the last 30 days and the Z report of a one-day shift through the API, each
//!   `--samples` times. Goals: the 30-day report in at most 200 ms, the Z report in 50 ms.
//! - **orders**: `POST /api/v1/orders` on a shop without tax against the same order in a shop
//!   with PPN (prices with tax), a service charge and a line discount, interleaved rounds of
//!   `--orders-per-round`, 8 clients. Goal: the taxed order within 10 % of the plain one.
//!
//! Medians only; the machine is noisy.

use std::{
    io::Write,
    time::{Duration, Instant},
};

use futures::future::join_all;
use serde_json::{Value, json};
use testkit::{Staff, TestApp};

use crate::median;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Paid orders seeded over 90 days.
    #[arg(long, default_value_t = 100_000)]
    orders: i64,
    /// Timed report requests (each kind).
    #[arg(long, default_value_t = 15)]
    samples: usize,
    /// Orders per variant and round in the order-throughput comparison.
    #[arg(long, default_value_t = 400)]
    orders_per_round: usize,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

async fn get(app: &TestApp, staff: &Staff, path: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let response = app
        .client
        .get(app.url(path))
        .header("authorization", staff.bearer())
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.bytes().await?;
    Ok(started.elapsed())
}

async fn send(
    app: &TestApp,
    staff: &Staff,
    method: &str,
    path: &str,
    body: &Value,
) -> anyhow::Result<Value> {
    let response = app
        .send(
            method,
            path,
            staff,
            Some(&uuid::Uuid::now_v7().to_string()),
            Some(body),
        )
        .await;
    anyhow::ensure!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    Ok(response.json().await?)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let merchant = app.merchant().await;
    let owner = &merchant.owner;
    let kopi = app.product(owner, 18_000, 1_000_000_000).await;
    let roti = app.product(owner, 5_000, 1_000_000_000).await;
    let shift = send(
        &app,
        owner,
        "POST",
        "/api/v1/shifts",
        &json!({"opening_float_minor": 0}),
    )
    .await?;
    let shift_id: uuid::Uuid = shift["id"].as_str().unwrap_or_default().parse()?;
    let today = chrono::Utc::now().date_naive();

    // 100 000 paid orders over the 90 days before today, the last day's in the open shift.
    let seeded = Instant::now();
    let mut tx = app.tenant_tx(merchant.tenant).await;
    let (kopi_id, roti_id): (uuid::Uuid, uuid::Uuid) = (
        kopi["id"].as_str().unwrap_or_default().parse()?,
        roti["id"].as_str().unwrap_or_default().parse()?,
    );
    // The same rows in every statement: ids from a per-run salt and the row number.
    let seed = "(select md5($7 || n)::uuid as id, n,
                        ($2::date - (n % 90)::int - 1) as day,
                        (($2::date - (n % 90)::int - 1)::timestamp
                            + make_interval(secs => 25200 + (n % 43200)::int))
                            at time zone 'Asia/Jakarta' as at
                 from generate_series(1, $1::int8) n) seed";
    let salt = uuid::Uuid::now_v7().to_string();
    for sql in [
        format!("insert into orders (tenant_id, id, status, cashier_id, currency, total_minor, paid_minor,
                             created_at, updated_at, paid_at, receipt_no, receipt_day, tax_minor,
                             discount_minor, shift_id, pricing)
         select warung_current_tenant(), id, 'paid', $3, 'IDR', 23000, 23000, at, at, at,
                'B/' || n, day, 2279, 0, case when day = $2::date - 1 then $4 end,
                '{{\"prices_include_tax\": true, \"tax_rate\": {{\"name\": \"PPN\", \"rate_bp\": 1100}}, \"service_charge\": null}}'
         from {seed}"),
        format!("insert into order_lines (tenant_id, order_id, line_no, product_id, name, sku,
                                  unit_price_minor, quantity, net_minor, tax_minor, tax_rate_name,
                                  tax_rate_bp)
         select warung_current_tenant(), id, 1, $5, 'Kopi Susu', 'K', 18000, 1, 16216, 1784, 'PPN', 1100
         from {seed}
         union all
         select warung_current_tenant(), id, 2, $6, 'Roti', 'R', 5000, 1, 4505, 495, 'PPN', 1100
         from {seed}"),
        format!("insert into order_tax_lines (tenant_id, order_id, name, rate_bp, taxable_base_minor, tax_minor)
         select warung_current_tenant(), id, 'PPN', 1100, 20721, 2279 from {seed}"),
        format!("insert into payments (tenant_id, id, order_id, method, amount_minor, tendered_minor,
                               change_minor, cashier_id, created_at, shift_id)
         select warung_current_tenant(), gen_random_uuid(), id,
                (array['cash', 'qr', 'card'])[1 + n % 3], 23000, 23000, 0, $3, at,
                case when day = $2::date - 1 then $4 end
         from {seed}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(args.orders)
            .bind(today)
            .bind(owner.id.0)
            .bind(shift_id)
            .bind(kopi_id)
            .bind(roti_id)
            .bind(&salt)
            .execute(&mut *tx)
            .await?;
    }
    testkit::audited(&mut tx, "bench.seeded").await;
    tx.commit().await?;
    // Fresh statistics, as autovacuum would give a table this size soon after.
    sqlx::query("analyze orders, order_lines, payments, refunds")
        .execute(&app.owner_pool().await)
        .await?;
    let seed_time = seeded.elapsed();

    let month = format!(
        "/api/v1/reports/sales?from={}&to={}",
        today - chrono::TimeDelta::days(30),
        today - chrono::TimeDelta::days(1)
    );
    let z = format!("/api/v1/shifts/{shift_id}/report");
    let (mut reports, mut shifts) = (Vec::new(), Vec::new());
    get(&app, owner, &month).await?;
    for _ in 0..args.samples {
        reports.push(get(&app, owner, &month).await?);
        shifts.push(get(&app, owner, &z).await?);
    }

    // Order throughput: a plain shop against a shop with tax, service charge and a discount.
    let taxed = app.merchant().await;
    send(
        &app,
        &taxed.owner,
        "PUT",
        "/api/v1/sales/settings",
        &json!({
        "prices_include_tax": true, "standard_rate": {"name": "PPN", "rate_bp": 1100},
        "service_charge": {"rate_bp": 500, "taxable": true}, "cashier_discount_limit_bp": 1000}),
    )
    .await?;
    let taxed_kopi = app.product(&taxed.owner, 18_000, 1_000_000_000).await;
    let taxed_roti = app.product(&taxed.owner, 5_000, 1_000_000_000).await;
    let plain_body = json!({"lines": [{"product_id": kopi["id"], "quantity": 1},
                                      {"product_id": roti["id"], "quantity": 2}]});
    let taxed_body = json!({"lines": [
        {"product_id": taxed_kopi["id"], "quantity": 1,
         "discount": {"type": "percent", "rate_bp": 1000, "reason": "promo"}},
        {"product_id": taxed_roti["id"], "quantity": 2}]});
    let variants = [(owner, &plain_body), (&taxed.owner, &taxed_body)];
    let mut timings = [Vec::new(), Vec::new()];
    for _ in 0..args.rounds {
        for (i, (staff, body)) in variants.iter().enumerate() {
            let started = Instant::now();
            let tasks = (0..8).map(|task| {
                let (app, staff, body) = (&app, *staff, *body);
                async move {
                    let mut n = task;
                    while n < args.orders_per_round {
                        send(app, staff, "POST", "/api/v1/orders", body).await?;
                        n += 8;
                    }
                    anyhow::Ok(())
                }
            });
            for result in join_all(tasks).await {
                result?;
            }
            timings[i].push(started.elapsed());
        }
    }
    let rate = |d: Duration| args.orders_per_round as f64 / d.as_secs_f64().max(1e-9);
    let plain = rate(median(timings[0].clone()));
    let with_tax = rate(median(timings[1].clone()));

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut out = std::io::stdout();
    writeln!(
        out,
        "seeded {} paid orders over 90 days in {:.1} s",
        args.orders,
        seed_time.as_secs_f64()
    )?;
    writeln!(out)?;
    writeln!(out, "| request | median | goal |")?;
    writeln!(out, "| --- | ---: | ---: |")?;
    writeln!(
        out,
        "| `GET /reports/sales`, 30 days (~{} orders) | {:.1} ms | ≤ 200 ms |",
        args.orders / 3,
        ms(median(reports))
    )?;
    writeln!(
        out,
        "| `GET /shifts/{{id}}/report`, one day (~{} orders) | {:.1} ms | ≤ 50 ms |",
        args.orders / 90,
        ms(median(shifts))
    )?;
    writeln!(out)?;
    writeln!(out, "| `POST /api/v1/orders`, 8 clients | orders/s |")?;
    writeln!(out, "| --- | ---: |")?;
    writeln!(out, "| no tax | {plain:.0} |")?;
    writeln!(
        out,
        "| PPN inclusive, service charge, 10 % line discount | {with_tax:.0} |"
    )?;
    writeln!(
        out,
        "| **taxed vs plain** | **{:.2}×** (goal ≥ 0.90×) |",
        with_tax / plain
    )?;
    Ok(())
}
