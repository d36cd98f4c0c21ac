//! KEK rotation support: `warung keys rewrap` moves every stored wrapped key (subject DEKs and
//! tenant index keys) to the newest KEK version, in batches, through Transit `rewrap`, which
//! never reveals a DEK. Data sealed with the DEKs is never touched.
//!
//! Resumable: a run walks the keys still on an old version in key order; a crash or Ctrl-C
//! loses nothing, and the next run finds only what is left. A key Transit refuses (damaged, or
//! not Vault-wrapped) is counted and reported, never allowed to block the rest.

use super::{KeyError, Keys, TransitKeys, WrappedKey};
use crate::{db::SystemDb, id::TenantId};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RewrapReport {
    pub latest_version: i32,
    pub rewrapped: u64,
    /// Keys that changed underneath (shredded or rewrapped by another run): left alone.
    pub skipped: u64,
    /// Keys Transit refused to rewrap: reported for an operator to look at.
    pub failed: u64,
}

/// How many Vault-wrapped keys are not on `latest` yet.
pub async fn pending(system: &SystemDb, latest: i32) -> Result<u64, sqlx::Error> {
    let count = sqlx::query_scalar!(
        r#"select (select count(*) from subject_keys where kek_version < $1 and wrapped_dek like 'vault:%')
                + (select count(*) from pii_index_keys where kek_version < $1 and wrapped_key like 'vault:%')
                as "count!""#,
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
    let mut done =
        |report: &RewrapReport| progress(report.rewrapped + report.skipped + report.failed);

    // Subject DEKs, keyset-paged by (tenant, subject).
    let mut cursor = (uuid::Uuid::nil(), uuid::Uuid::nil());
    loop {
        let rows = sqlx::query!(
            "select tenant_id, subject_id, wrapped_dek from subject_keys
             where kek_version < $1 and wrapped_dek like 'vault:%' and (tenant_id, subject_id) > ($2, $3)
             order by tenant_id, subject_id limit $4",
            latest,
            cursor.0,
            cursor.1,
            batch
        )
        .fetch_all(system.pool())
        .await?;
        let Some(last) = rows.last() else { break };
        cursor = (last.tenant_id, last.subject_id);
        let old: Vec<(TenantId, WrappedKey)> = rows
            .iter()
            .map(|r| (TenantId(r.tenant_id), WrappedKey(r.wrapped_dek.clone())))
            .collect();
        let (mut tenants, mut subjects, mut olds, mut news, mut versions) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (row, result) in rows.iter().zip(rewrap(transit, &old).await?) {
            match result {
                Ok(new) => {
                    tenants.push(row.tenant_id);
                    subjects.push(row.subject_id);
                    olds.push(row.wrapped_dek.clone());
                    versions.push(new.kek_version().unwrap_or(latest));
                    news.push(new.0);
                }
                Err(err) => {
                    report.failed += 1;
                    tracing::warn!(tenant.id = %row.tenant_id, subject.id = %row.subject_id, error = %err, "data key not rewrapped");
                }
            }
        }
        // Compare-and-set on the old value: a key shredded or rewrapped meanwhile is left alone.
        let updated = sqlx::query!(
            "update subject_keys k set wrapped_dek = v.new, kek_version = v.version, rewrapped_at = now()
             from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int[])
                  as v(tenant_id, subject_id, old, new, version)
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
        report.skipped += tenants.len() as u64 - updated;
        done(&report);
    }

    // Tenant index keys: one per tenant, few; same walk.
    let mut cursor = uuid::Uuid::nil();
    loop {
        let rows = sqlx::query!(
            "select tenant_id, wrapped_key from pii_index_keys
             where kek_version < $1 and wrapped_key like 'vault:%' and tenant_id > $2
             order by tenant_id limit $3",
            latest,
            cursor,
            batch
        )
        .fetch_all(system.pool())
        .await?;
        let Some(last) = rows.last() else { break };
        cursor = last.tenant_id;
        let old: Vec<(TenantId, WrappedKey)> = rows
            .iter()
            .map(|r| (TenantId(r.tenant_id), WrappedKey(r.wrapped_key.clone())))
            .collect();
        for ((tenant, old), result) in old.iter().zip(rewrap(transit, &old).await?) {
            let Ok(new) = result else {
                report.failed += 1;
                continue;
            };
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
        done(&report);
    }
    Ok(report)
}

async fn rewrap(
    transit: &TransitKeys,
    old: &[(TenantId, WrappedKey)],
) -> Result<Vec<Result<WrappedKey, KeyError>>, KeyError> {
    let request: Vec<(TenantId, &WrappedKey)> = old.iter().map(|(t, w)| (*t, w)).collect();
    match transit.rewrap_many(&request).await {
        // Vault may refuse a whole batch for one bad item: retry one by one to isolate it.
        Err(KeyError::Refused(_)) if request.len() > 1 => {
            let mut results = Vec::with_capacity(request.len());
            for item in &request {
                let one = transit.rewrap_many(std::slice::from_ref(item)).await;
                results.push(match one {
                    Ok(mut r) => r
                        .pop()
                        .unwrap_or_else(|| Err(KeyError::Refused("empty".into()))),
                    Err(KeyError::Unavailable(why)) => return Err(KeyError::Unavailable(why)),
                    Err(refused) => Err(refused),
                });
            }
            Ok(results)
        }
        other => other,
    }
}
