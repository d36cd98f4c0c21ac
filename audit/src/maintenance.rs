//! The audit store's scheduled upkeep:
//!
//! - `audit.partitions`: monthly partitions exist ahead of time, and records that landed in
//!   DEFAULT (dated outside every partition) are moved into a partition made for their month;
//! - `audit.retention`: whole partitions past the retention period are dropped, each only after
//!   a signed digest of what it held is recorded, with the chain links it takes away, so the
//!   remaining chain still verifies.
//!
//! Both run under the jobs lock and lease; a dry run does the work in a transaction it rolls
//! back (partitions) or only counts (retention).

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use futures::TryStreamExt;
use platform::{
    clients::Vault,
    id::TenantId,
    jobs::{Job, JobContext, JobReport},
};
use serde::Serialize;
use sha2::{Digest, Sha256};

pub const PARTITIONS: &str = "audit.partitions";
pub const RETENTION: &str = "audit.retention";

pub fn partitions(ahead_months: u32) -> Job {
    Job::new(
        PARTITIONS,
        "0 7 * * * *",
        "create monthly audit partitions ahead; move records waiting in DEFAULT into theirs",
        move |ctx| ensure_partitions(ctx, ahead_months),
    )
}

pub fn retention(vault: Vault, retention_months: u32) -> Job {
    Job::new(
        RETENTION,
        "0 37 2 * * *",
        "drop audit partitions past retention, after recording a signed digest of each",
        move |ctx| retire(ctx, vault.clone(), retention_months),
    )
}

async fn ensure_partitions(ctx: JobContext, ahead_months: u32) -> anyhow::Result<JobReport> {
    let mut tx = ctx.begin().await?;
    let created = sqlx::query!(
        r#"select partition_name as "partition_name!", moved_rows as "moved_rows!"
           from audit_ensure_partitions($1, $2)"#,
        ctx.clock.now().date_naive(),
        i32::try_from(ahead_months)? + 1,
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut report = JobReport::default();
    for partition in &created {
        tracing::info!(
            partition = partition.partition_name,
            moved = partition.moved_rows,
            dry_run = ctx.dry_run,
            "audit partition created"
        );
        report.add("partitions_created", 1);
        report.add("records_moved", partition.moved_rows);
    }
    if ctx.dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(report)
}

/// The first instant still kept: the start of the month `retention_months` before this one.
fn retention_cutoff(now: DateTime<Utc>, retention_months: u32) -> DateTime<Utc> {
    let this_month = NaiveDate::from_ymd_opt(now.year(), now.month(), 1).unwrap_or_default();
    this_month
        .checked_sub_months(Months::new(retention_months))
        .unwrap_or(NaiveDate::MIN)
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc()
}

async fn retire(ctx: JobContext, vault: Vault, retention_months: u32) -> anyhow::Result<JobReport> {
    let cutoff = retention_cutoff(ctx.clock.now(), retention_months);
    let due = sqlx::query!(
        r#"select partition_name as "name!", range_from as "range_from!", range_to as "range_to!"
           from audit_partitions() where range_to <= $1 order by range_from"#,
        cutoff
    )
    .fetch_all(ctx.system.pool())
    .await?;
    let mut report = JobReport::default();
    for partition in due {
        if ctx.stop.is_cancelled() {
            break;
        }
        // A month retired before comes back when a record dated in it arrives late; it is
        // retired again, with a digest of its own.
        let retirement = sqlx::query_scalar!(
            r#"select coalesce(max(retirement), 0) + 1 as "next!"
               from audit_retired_partitions where partition_name = $1"#,
            partition.name
        )
        .fetch_one(ctx.system.pool())
        .await?;
        let digest = PartitionDigest::of(
            &ctx,
            &partition.name,
            retirement,
            partition.range_from,
            partition.range_to,
        )
        .await?;
        if ctx.dry_run {
            report.add("partitions_due", 1);
            report.add("records_due", digest.records);
            continue;
        }
        // Serialized once: these exact bytes are signed and stored.
        let document = serde_json::to_string(&digest)?;
        let signature = vault.sign_digest(document.as_bytes()).await?;
        let mut tx = ctx.begin().await?;
        sqlx::query!(
            "insert into audit_retired_partitions
                 (partition_name, retirement, range_from, range_to, records, digest, signature,
                  signed_document)
             values ($1, $2, $3, $4, $5, $6, $7, $8)",
            partition.name,
            retirement,
            partition.range_from,
            partition.range_to,
            digest.records,
            serde_json::to_value(&digest)?,
            signature,
            document,
        )
        .execute(&mut *tx)
        .await?;
        for run in &digest.chains {
            sqlx::query!(
                "insert into audit_retired_links
                     (tenant_id, first_seq, last_seq, last_hash, partition_name, retirement)
                 values ($1, $2, $3, $4, $5, $6)",
                run.tenant.0,
                run.first_seq,
                run.last_seq,
                hex::decode(&run.last_hash)?,
                partition.name,
                retirement,
            )
            .execute(&mut *tx)
            .await?;
        }
        let dropped = sqlx::query_scalar!(
            r#"select audit_drop_partition($1) as "dropped!""#,
            partition.name
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(
            partition = partition.name,
            records = dropped,
            "audit partition dropped after recording its signed digest"
        );
        report.add("partitions_dropped", 1);
        report.add("records_dropped", dropped);
    }
    Ok(report)
}

/// The signed record of a dropped partition.
#[derive(Debug, Serialize)]
pub struct PartitionDigest {
    pub partition: String,
    /// 1 the first time this partition is retired; more when late records brought it back.
    pub retirement: i32,
    pub range_from: DateTime<Utc>,
    pub range_to: DateTime<Utc>,
    pub records: i64,
    /// SHA-256 over every record's (tenant id, chain position, hash), in that order.
    pub sha256: String,
    pub chains: Vec<ChainRun>,
}

/// Consecutive links of one tenant's chain that the partition held.
#[derive(Debug, Serialize)]
pub struct ChainRun {
    pub tenant: TenantId,
    pub first_seq: i64,
    pub last_seq: i64,
    /// Hex of the run's last hash: where the chain continues from.
    pub last_hash: String,
}

impl PartitionDigest {
    async fn of(
        ctx: &JobContext,
        partition: &str,
        retirement: i32,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Self, sqlx::Error> {
        let mut rows = sqlx::query!(
            "select tenant_id, chain_seq, hash from audit_events
             where occurred_at >= $1 and occurred_at < $2
             order by tenant_id, chain_seq",
            from,
            to
        )
        .fetch(ctx.system.pool());
        let mut hasher = Sha256::new();
        let mut records = 0;
        let mut chains: Vec<ChainRun> = Vec::new();
        while let Some(row) = rows.try_next().await? {
            records += 1;
            hasher.update(row.tenant_id.as_bytes());
            hasher.update(row.chain_seq.to_be_bytes());
            hasher.update(&row.hash);
            let tenant = TenantId(row.tenant_id);
            match chains.last_mut() {
                Some(run) if run.tenant == tenant && run.last_seq + 1 == row.chain_seq => {
                    run.last_seq = row.chain_seq;
                    run.last_hash = hex::encode(&row.hash);
                }
                _ => chains.push(ChainRun {
                    tenant,
                    first_seq: row.chain_seq,
                    last_seq: row.chain_seq,
                    last_hash: hex::encode(&row.hash),
                }),
            }
        }
        Ok(Self {
            partition: partition.to_owned(),
            retirement,
            range_from: from,
            range_to: to,
            records,
            sha256: hex::encode(hasher.finalize()),
            chains,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_keeps_whole_months_back_from_the_current_one() {
        let now = "2033-03-15T10:00:00Z".parse().unwrap();
        assert_eq!(
            retention_cutoff(now, 84),
            "2026-03-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            retention_cutoff(now, 12),
            "2032-03-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }
}
