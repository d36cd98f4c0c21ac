//! PII envelope encryption against Transit-per-field and no encryption (issue #3).

use std::{
    hint::black_box,
    io::Write,
    time::{Duration, Instant},
};

use anyhow::Context;
use platform::{
    id::TenantId,
    pii::{
        Binding, Breaker, CacheSettings, Dek, Keys, PiiCipher, Sealed, Subject, SubjectCipher,
        SubjectId, SubjectKind, TransitKeys, TransitPerField, cipher,
    },
};
use sqlx::AssertSqlSafe;
use testkit::TestApp;

use crate::{median, table};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Interleaved rounds per variant; medians are taken over them.
    #[arg(long, default_value_t = 15)]
    rounds: usize,
    /// Customers per list read.
    #[arg(long, default_value_t = 100)]
    subjects: usize,
}

/// seal + open of one 64-byte field with the subject's key in hand: the per-field cost of
/// envelope encryption once the DEK is cached.
fn seal_open_64() -> Duration {
    let key = SubjectCipher::new(&Dek::generate());
    let binding = Binding {
        tenant: TenantId::new(),
        subject: SubjectId::new(),
        field: "customers.email",
    };
    let plaintext = [b'x'; 64];
    let per_sample = 2_000u32;
    let samples = (0..101)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..per_sample {
                let sealed = cipher::seal(&key, binding, black_box(&plaintext)).unwrap_or_default();
                black_box(cipher::open(&key, binding, &sealed).ok());
            }
            started.elapsed() / per_sample
        })
        .collect();
    median(samples)
}

fn fresh_cipher(app: &TestApp) -> PiiCipher {
    let keys = Keys::Vault(TransitKeys::new(
        app.state.vault.clone(),
        Breaker::new(5, Duration::from_secs(5)),
    ));
    PiiCipher::new(
        keys,
        CacheSettings {
            capacity: 10_000,
            ttl: Duration::from_secs(600),
            // The create figures measure the Transit call a new subject costs without the pool.
            ready_keys: 0,
        },
        None,
    )
}

struct Fixture {
    tenant: TenantId,
    table: String,
}

/// `n` customers, each row holding the same email three ways: envelope-sealed, sealed by
/// Transit per field, and plain (the no-op baseline).
async fn fixture(app: &TestApp, pii: &PiiCipher, n: usize) -> anyhow::Result<Fixture> {
    let tenant = app.tenant().await.id;
    let table = app
        .scratch_table("email bytea not null, email_tpf text not null, email_plain text not null")
        .await;
    let Keys::Vault(transit) = pii.keys() else {
        anyhow::bail!("vault provider expected")
    };
    let mut tx = app.state.db.tenant(tenant).begin().await?;
    for i in 0..n {
        let subject = Subject {
            id: SubjectId::new(),
            kind: SubjectKind::Customer,
        };
        let email = format!("customer-{i:04}@example.id");
        let sealed = pii
            .seal(&mut tx, subject, "customers.email", &email)
            .await?;
        let tpf = TransitPerField(transit).encrypt(tenant, &email).await?;
        sqlx::query(AssertSqlSafe(format!(
            "insert into {table} (tenant_id, id, email, email_tpf, email_plain) values ($1, $2, $3, $4, $5)"
        )))
        .bind(tenant)
        .bind(subject.id)
        .bind(&sealed)
        .bind(&tpf)
        .bind(&email)
        .execute(&mut *tx)
        .await?;
    }
    testkit::audited(&mut tx, "bench.change").await;
    tx.commit().await?;
    Ok(Fixture { tenant, table })
}

/// List read: load the page and open every email.
async fn read_plain(app: &TestApp, f: &Fixture) -> anyhow::Result<usize> {
    // Same query shape as the envelope read: a list returns ids with the values.
    let mut tx = app.state.db.tenant(f.tenant).begin().await?;
    let rows: Vec<(uuid::Uuid, String)> = sqlx::query_as(AssertSqlSafe(format!(
        "select id, email_plain from {} order by id",
        f.table
    )))
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.iter().map(|(_, email)| email.len()).sum())
}

async fn read_envelope(app: &TestApp, pii: &PiiCipher, f: &Fixture) -> anyhow::Result<usize> {
    let mut tx = app.state.db.tenant(f.tenant).begin().await?;
    let rows: Vec<(uuid::Uuid, Sealed)> = sqlx::query_as(AssertSqlSafe(format!(
        "select id, email from {} order by id",
        f.table
    )))
    .fetch_all(&mut *tx)
    .await?;
    let items: Vec<_> = rows
        .iter()
        .map(|(id, sealed)| (SubjectId(*id), "customers.email", sealed))
        .collect();
    let opened = pii.open_many(&mut tx, &items).await?;
    Ok(opened.iter().filter_map(|o| o.value()).map(str::len).sum())
}

async fn read_transit_per_field(
    app: &TestApp,
    transit: &TransitKeys,
    f: &Fixture,
) -> anyhow::Result<usize> {
    let mut tx = app.state.db.tenant(f.tenant).begin().await?;
    let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "select email_tpf from {} order by id",
        f.table
    )))
    .fetch_all(&mut *tx)
    .await?;
    let mut total = 0;
    for ciphertext in &rows {
        total += TransitPerField(transit)
            .decrypt(f.tenant, ciphertext)
            .await?
            .len();
    }
    Ok(total)
}

/// `open_many` alone, keys cached: the in-process cost of opening a page of values.
async fn open_many_warm(app: &TestApp, pii: &PiiCipher, f: &Fixture) -> anyhow::Result<Duration> {
    let mut tx = app.state.db.tenant(f.tenant).begin().await?;
    let rows: Vec<(uuid::Uuid, Sealed)> = sqlx::query_as(AssertSqlSafe(format!(
        "select id, email from {} order by id",
        f.table
    )))
    .fetch_all(&mut *tx)
    .await?;
    let items: Vec<_> = rows
        .iter()
        .map(|(id, sealed)| (SubjectId(*id), "customers.email", sealed))
        .collect();
    let mut samples = Vec::with_capacity(201);
    for _ in 0..201 {
        let started = Instant::now();
        black_box(pii.open_many(&mut tx, &items).await?);
        samples.push(started.elapsed());
    }
    Ok(median(samples))
}

/// Create one customer with three PII fields.
async fn create(
    app: &TestApp,
    tenant: TenantId,
    variant: &str,
    pii: &PiiCipher,
) -> anyhow::Result<()> {
    let Keys::Vault(transit) = pii.keys() else {
        anyhow::bail!("vault provider expected")
    };
    let subject = Subject {
        id: SubjectId::new(),
        kind: SubjectKind::Customer,
    };
    let fields = [
        ("customers.full_name", "Siti Rahma"),
        ("customers.email", "siti@example.id"),
        ("customers.phone", "+628123456789"),
    ];
    let mut tx = app.state.db.tenant(tenant).begin().await?;
    for (field, value) in fields {
        match variant {
            "envelope" => drop(black_box(pii.seal(&mut tx, subject, field, value).await?)),
            "transit-per-field" => drop(black_box(
                TransitPerField(transit).encrypt(tenant, value).await?,
            )),
            _ => drop(black_box(value.to_owned())),
        }
    }
    testkit::audited(&mut tx, "bench.change").await;
    tx.commit().await?;
    Ok(())
}

/// Runs the PII benchmark and prints its tables.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let shared = fresh_cipher(&app);
    let Keys::Vault(transit) = shared.keys() else {
        anyhow::bail!("vault provider expected")
    };
    let fixture = fixture(&app, &shared, args.subjects)
        .await
        .context("fixture")?;
    let write_tenant = app.tenant().await.id;

    let names = [
        "no-op",
        "envelope (warm cache)",
        "envelope (cold cache)",
        "transit-per-field",
    ];
    let mut reads: [Vec<Duration>; 4] = Default::default();
    let create_names = ["no-op", "envelope", "transit-per-field"];
    let mut creates: [Vec<Duration>; 3] = Default::default();
    let mut expected = None;
    for _ in 0..args.rounds {
        for (i, sample) in reads.iter_mut().enumerate() {
            let started = Instant::now();
            let total = match i {
                0 => read_plain(&app, &fixture).await?,
                1 => read_envelope(&app, &shared, &fixture).await?,
                2 => read_envelope(&app, &fresh_cipher(&app), &fixture).await?,
                _ => read_transit_per_field(&app, transit, &fixture).await?,
            };
            sample.push(started.elapsed());
            // Every variant must have read the same data, or the comparison means nothing.
            anyhow::ensure!(
                *expected.get_or_insert(total) == total,
                "variant {} read different data",
                names[i]
            );
        }
        for (i, sample) in creates.iter_mut().enumerate() {
            let started = Instant::now();
            create(&app, write_tenant, create_names[i], &shared).await?;
            sample.push(started.elapsed());
        }
    }
    let micro = seal_open_64();
    let warm_open = open_many_warm(&app, &shared, &fixture).await?;
    app.drop_table(&fixture.table).await;

    let reads: Vec<Duration> = reads.into_iter().map(median).collect();
    let creates: Vec<Duration> = creates.into_iter().map(median).collect();
    let mut out = std::io::stdout();
    writeln!(
        out,
        "seal+open, 64-byte field, DEK cached: median {} ns",
        micro.as_nanos()
    )?;
    writeln!(
        out,
        "open_many of {} values, keys cached (no database read): median {} µs\n",
        args.subjects,
        warm_open.as_micros()
    )?;
    writeln!(
        out,
        "List read of {} customers (one tenant transaction, open every email), {} rounds:\n",
        args.subjects, args.rounds
    )?;
    table(&mut out, "lists/s", &names, &reads, 0, 3)?;
    writeln!(
        out,
        "\nCreate one customer with 3 PII fields (new subject: envelope asks Transit for one data key), {} rounds:\n",
        args.rounds
    )?;
    table(&mut out, "creates/s", &create_names, &creates, 0, 2)?;
    app.stop().await;
    Ok(())
}
