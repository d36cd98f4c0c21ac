//! PII at rest: no plaintext shapes anywhere, sealed columns hold only sealed values, samples
//! open under their own binding and under no other, blind indexes are keyed HMACs.

use futures::FutureExt;
use platform::{
    compliance::{Check, Ctx, Finding, Group::PiiAtRest, SealedColumn, Severity},
    id::TenantId,
    pii::{Opened, PiiError, Sealed, SubjectId},
};
use sha2::{Digest, Sha256};

use super::check;
use crate::{
    scan::{self, ScanResult},
    shapes::Shape,
};

pub(super) fn checks() -> Vec<Check> {
    vec![
        check(
            "pii.plaintext_email",
            PiiAtRest,
            "No email address in plaintext in any column",
            Severity::Critical,
            1.0,
            true,
            |c| shape(c, Shape::Email).boxed(),
        ),
        check(
            "pii.plaintext_phone",
            PiiAtRest,
            "No phone number in plaintext in any column",
            Severity::Critical,
            1.0,
            true,
            |c| shape(c, Shape::Phone).boxed(),
        ),
        check(
            "pii.plaintext_nik",
            PiiAtRest,
            "No Indonesian national id (NIK) in plaintext in any column",
            Severity::Critical,
            1.0,
            true,
            |c| shape(c, Shape::Nik).boxed(),
        ),
        check(
            "pii.sealed_format",
            PiiAtRest,
            "Declared PII columns exist and hold only sealed values",
            Severity::Critical,
            0.9,
            true,
            |c| sealed_format(c).boxed(),
        ),
        check(
            "pii.sealed_bound",
            PiiAtRest,
            "Sampled sealed values open under their own subject and column, and under no other",
            Severity::Critical,
            0.9,
            true,
            |c| sealed_bound(c).boxed(),
        ),
        check(
            "pii.blind_index_keyed",
            PiiAtRest,
            "Blind indexes are keyed HMACs, never a raw or unkeyed hash",
            Severity::High,
            0.8,
            true,
            |c| blind_index_keyed(c).boxed(),
        ),
    ]
}

/// The scan runs once per verification; the three shape checks read its result.
async fn scanned(ctx: &Ctx) -> anyhow::Result<ScanResult> {
    let mut memo = ctx.memo.lock().await;
    if let Some(result) = memo.get::<ScanResult>() {
        return Ok(result.clone());
    }
    let result = scan::scan(ctx).await?;
    memo.insert(result.clone());
    Ok(result)
}

async fn shape(ctx: &Ctx, shape: Shape) -> anyhow::Result<Finding> {
    let result = scanned(ctx).await?;
    if !result.unreadable.is_empty() {
        anyhow::bail!(
            "the verifier cannot read {} tables ({}): grant it SELECT and its compliance_read policy",
            result.unreadable.len(),
            result.unreadable.join(", ")
        );
    }
    let mut columns = serde_json::Map::new();
    let mut total = 0;
    for (column, (hits, tenants)) in &result.hits {
        let n = hits.get(shape);
        if n > 0 {
            total += n;
            columns.insert(
                column.clone(),
                serde_json::json!({ "values": n, "tenants": tenants }),
            );
        }
    }
    let scanned = serde_json::json!({
        "tables": result.tables, "columns": result.columns, "values": result.values,
        "bytes": result.bytes, "millis": result.millis,
    });
    let finding = if total == 0 {
        Finding::pass(format!(
            "no {}-shaped value in {} values of {} columns",
            shape.as_str(),
            result.values,
            result.columns
        ))
    } else {
        Finding::fail(format!(
            "{total} {}-shaped values in plaintext in {} columns",
            shape.as_str(),
            columns.len()
        ))
    };
    Ok(finding.with(serde_json::json!({ "scanned": scanned, "columns": columns })))
}

async fn sealed_format(ctx: &Ctx) -> anyhow::Result<Finding> {
    let tenants = ctx.tenant_ids().await?;
    let mut violations = Vec::new();
    for col in ctx.sealed.iter() {
        let kind: Option<String> = sqlx::query_scalar(
            "select t.typname::text from pg_attribute a join pg_class c on c.oid = a.attrelid
             join pg_namespace n on n.oid = c.relnamespace join pg_type t on t.oid = a.atttypid
             where n.nspname = 'public' and c.relname = $1 and a.attname = $2 and not a.attisdropped",
        )
        .bind(col.table)
        .bind(col.column)
        .fetch_optional(&ctx.read)
        .await?;
        match kind.as_deref() {
            None => {
                violations.push(format!(
                    "{}: declared sealed, but the column does not exist",
                    col.field
                ));
                continue;
            }
            Some("bytea") => {}
            Some(other) => {
                violations.push(format!(
                    "{}: declared sealed, but its type is {other}",
                    col.field
                ));
                continue;
            }
        }
        // Format v1: a version byte 1, a 12-byte nonce and a 16-byte tag around the text.
        let bad: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "select count(*) from {} where {t} = any($1) and {c} is not null
               and (length({c}) < 29 or get_byte({c}, 0) <> 1)",
            col.table,
            t = col.tenant_column,
            c = col.column
        )))
        .bind(&tenants)
        .fetch_one(&ctx.read)
        .await?;
        if bad > 0 {
            violations.push(format!(
                "{}: {bad} values are not sealed (format v1)",
                col.field
            ));
        }
    }
    Ok(Finding::from_violations(
        violations,
        format!(
            "{} declared sealed columns, every value in the sealed format",
            ctx.sealed.len()
        ),
        |n| format!("{n} sealed-column problems"),
    ))
}

/// A sampled sealed value.
struct Sample {
    subject: SubjectId,
    sealed: Sealed,
    index: Option<Vec<u8>>,
}

/// Tenants to sample: all in scope, or 10 of them with `--fast`.
async fn sample_tenants(ctx: &Ctx) -> anyhow::Result<Vec<TenantId>> {
    let mut tenants = ctx.tenants().await?;
    if ctx.fast {
        tenants.truncate(10);
    }
    Ok(tenants)
}

async fn samples(
    ctx: &Ctx,
    tx: &mut platform::db::TenantTx,
    col: &SealedColumn,
) -> anyhow::Result<Vec<Sample>> {
    let index = col
        .blind_index
        .map_or("null::bytea".to_owned(), |(c, _)| c.to_owned());
    let rows: Vec<(uuid::Uuid, Vec<u8>, Option<Vec<u8>>)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {s}, {c}, {index} from {t} where {tc} = $1 and {c} is not null
         order by random() limit $2",
            tc = col.tenant_column,
            s = col.subject_column,
            c = col.column,
            t = col.table
        )))
        .bind(tx.tenant().0)
        .bind(ctx.config.compliance.sample_size.max(1))
        .fetch_all(&mut **tx)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(subject, sealed, index)| Sample {
            subject: SubjectId(subject),
            sealed: Sealed(sealed),
            index,
        })
        .collect())
}

async fn sealed_bound(ctx: &Ctx) -> anyhow::Result<Finding> {
    let (mut opened, mut erased, mut tried) = (0u64, 0u64, 0u64);
    let mut violations = Vec::new();
    for tenant in sample_tenants(ctx).await? {
        let mut tx = ctx.read_db.tenant(tenant).begin().await?;
        for col in ctx.sealed.iter() {
            let samples = samples(ctx, &mut tx, col).await?;
            for (i, sample) in samples.iter().enumerate() {
                // A value that is not in the sealed format at all is pii.sealed_format's finding.
                if sample.sealed.0.len() < 29 || sample.sealed.0.first() != Some(&1) {
                    continue;
                }
                match ctx
                    .pii
                    .open(&mut tx, sample.subject, col.field, &sample.sealed)
                    .await
                {
                    Ok(Opened::Value(_)) => opened += 1,
                    // The subject's key is shredded: nothing opens, under any binding.
                    Ok(Opened::Erased) => {
                        erased += 1;
                        continue;
                    }
                    Err(PiiError::Corrupt { .. }) => {
                        violations.push(format!(
                            "{}: tenant {tenant}, subject {}: does not open under its own binding (changed or moved)",
                            col.field, sample.subject.0
                        ));
                        continue;
                    }
                    Err(err) => return Err(err.into()),
                }
                let other_column = ctx
                    .sealed
                    .iter()
                    .map(|c| c.field)
                    .find(|f| *f != col.field)
                    .unwrap_or("compliance.other_column");
                let other_subject = samples
                    .iter()
                    .skip(i + 1)
                    .chain(samples.iter().take(i))
                    .map(|s| s.subject)
                    .find(|s| *s != sample.subject);
                let mut attempts = vec![(sample.subject, other_column, "another column")];
                if let Some(other) = other_subject {
                    attempts.push((other, col.field, "another subject"));
                }
                for (subject, field, what) in attempts {
                    tried += 1;
                    match ctx.pii.open(&mut tx, subject, field, &sample.sealed).await {
                        Ok(Opened::Value(_)) => violations.push(format!(
                            "{}: tenant {tenant}, subject {}: opens as {what} ({field})",
                            col.field, sample.subject.0
                        )),
                        Ok(Opened::Erased) | Err(PiiError::Corrupt { .. }) => {}
                        Err(err) => return Err(err.into()),
                    }
                }
            }
        }
        tx.rollback().await?;
    }
    Ok(Finding::from_violations(
        violations,
        format!(
            "{opened} sampled values open under their own binding ({erased} erased); {tried} openings under a wrong column or subject all refused"
        ),
        |n| format!("{n} sampled sealed values are not bound to their place"),
    )
    .with_field("opened", opened)
    .with_field("erased", erased))
}

async fn blind_index_keyed(ctx: &Ctx) -> anyhow::Result<Finding> {
    let mut checked = 0u64;
    let mut violations = Vec::new();
    for tenant in sample_tenants(ctx).await? {
        let mut tx = ctx.read_db.tenant(tenant).begin().await?;
        for col in ctx.sealed.iter() {
            let Some((index_column, kind)) = col.blind_index else {
                continue;
            };
            for sample in samples(ctx, &mut tx, col).await? {
                let Some(stored) = &sample.index else {
                    continue;
                };
                let Ok(Opened::Value(value)) = ctx
                    .pii
                    .open(&mut tx, sample.subject, col.field, &sample.sealed)
                    .await
                else {
                    continue;
                };
                checked += 1;
                let value = value.expose();
                let normalized = kind.normalize(value);
                let unkeyed = [
                    value.as_bytes().to_vec(),
                    normalized.as_bytes().to_vec(),
                    Sha256::digest(value.as_bytes()).to_vec(),
                    Sha256::digest(normalized.as_bytes()).to_vec(),
                ];
                let place = format!(
                    "{}.{index_column}: tenant {tenant}, subject {}",
                    col.table, sample.subject.0
                );
                if unkeyed.iter().any(|u| u == stored) {
                    violations.push(format!(
                        "{place}: the index is the raw value or an unkeyed hash"
                    ));
                    continue;
                }
                let expected = ctx.pii.blind_index(&mut tx, kind, value).await?;
                if expected.0 != *stored {
                    violations.push(format!("{place}: the index is not the tenant's keyed HMAC"));
                }
            }
        }
        tx.rollback().await?;
    }
    Ok(Finding::from_violations(
        violations,
        format!("{checked} sampled blind indexes are the tenant's keyed HMAC"),
        |n| format!("{n} blind indexes are not keyed HMACs"),
    ))
}
