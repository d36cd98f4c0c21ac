//! KEK rotation support: `warung keys rewrap` moves every stored wrapped key (subject DEKs and
//! tenant index keys) to the newest KEK version, in batches, through Transit `rewrap`, which
//! never reveals a DEK. Data sealed with the DEKs is never touched. Resumable by construction:
//! each pass selects what is still on an old version, so a crash or Ctrl-C loses nothing.

use super::{KeyError, Keys, TransitKeys, WrappedKey};
use crate::{db::SystemDb, id::TenantId};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RewrapReport {
    pub latest_version: i32,
    pub rewrapped: u64,
    /// Keys that changed underneath (shredded or rewrapped by another run) and were skipped.
    pub skipped: u64,
}

/// How many wrapped keys are not on `latest` yet.
pub async fn pending(system: &SystemDb, latest: i32) -> Result<u64, sqlx::Error> {
    let count = sqlx::query_scalar!(
        r#"select (select count(*) from subject_keys where kek_version < $1)
                + (select count(*) from pii_index_keys where kek_version < $1) as "count!""#,
        latest
    )
    .fetch_one(system.pool())
    .await?;
    Ok(u64::try_from(count).unwrap_or_default())
}

/// Rewraps everything still on an old KEK version; `progress(done)` after every batch.
pub async fn rewrap_all(
    keys: &Keys,
    system: &SystemDb,
    batch: i64,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<RewrapReport> {
    let Keys::Vault(transit) = keys else {
        anyhow::bail!("rewrap applies to the vault provider only");
    };
    let latest = transit.latest_version().await?;
    let mut report = RewrapReport {
        latest_version: latest,
        ..RewrapReport::default()
    };
    loop {
        let rows = sqlx::query!(
            "select tenant_id, subject_id, wrapped_dek from subject_keys
             where kek_version < $1 order by kek_version, tenant_id, subject_id limit $2",
            latest,
            batch
        )
        .fetch_all(system.pool())
        .await?;
        if rows.is_empty() {
            break;
        }
        let old: Vec<(TenantId, WrappedKey)> = rows
            .iter()
            .map(|r| (TenantId(r.tenant_id), WrappedKey(r.wrapped_dek.clone())))
            .collect();
        let new = rewrap(transit, &old).await?;
        let mut tenants = Vec::new();
        let mut subjects = Vec::new();
        let (mut olds, mut news, mut versions) = (Vec::new(), Vec::new(), Vec::new());
        for (row, wrapped) in rows.iter().zip(new) {
            tenants.push(row.tenant_id);
            subjects.push(row.subject_id);
            olds.push(row.wrapped_dek.clone());
            versions.push(wrapped.kek_version().unwrap_or(latest));
            news.push(wrapped.0);
        }
        // Compare-and-set on the old value: a key shredded or rewrapped meanwhile is left alone.
        let updated = sqlx::query!(
            "update subject_keys k set wrapped_dek = v.new, kek_version = v.version, rewrapped_at = now()
             from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int[]) as v(tenant_id, subject_id, old, new, version)
             where k.tenant_id = v.tenant_id and k.subject_id = v.subject_id and k.wrapped_dek = v.old",
            &tenants,
            &subjects,
            &olds,
            &news,
            &versions
        )
        .execute(system.pool())
        .await?
        .rows_affected();
        report.rewrapped += updated;
        report.skipped += rows.len() as u64 - updated;
        progress(report.rewrapped + report.skipped);
        if updated == 0 {
            // Everything in this batch changed underneath; re-select rather than spin.
            tokio::task::yield_now().await;
        }
    }
    loop {
        let rows = sqlx::query!(
            "select tenant_id, wrapped_key from pii_index_keys where kek_version < $1 order by tenant_id limit $2",
            latest,
            batch
        )
        .fetch_all(system.pool())
        .await?;
        if rows.is_empty() {
            break;
        }
        let old: Vec<(TenantId, WrappedKey)> = rows
            .iter()
            .map(|r| (TenantId(r.tenant_id), WrappedKey(r.wrapped_key.clone())))
            .collect();
        let new = rewrap(transit, &old).await?;
        for ((tenant, old), new) in old.iter().zip(new) {
            let updated = sqlx::query!(
                "update pii_index_keys set wrapped_key = $3, kek_version = $4, rewrapped_at = now()
                 where tenant_id = $1 and wrapped_key = $2",
                tenant.0,
                old.0,
                new.0,
                new.kek_version().unwrap_or(latest)
            )
            .execute(system.pool())
            .await?
            .rows_affected();
            report.rewrapped += updated;
            report.skipped += 1 - updated;
        }
        progress(report.rewrapped + report.skipped);
    }
    Ok(report)
}

async fn rewrap(
    transit: &TransitKeys,
    old: &[(TenantId, WrappedKey)],
) -> Result<Vec<WrappedKey>, KeyError> {
    let request: Vec<(TenantId, &WrappedKey)> = old.iter().map(|(t, w)| (*t, w)).collect();
    transit.rewrap_many(&request).await?.into_iter().collect()
}
