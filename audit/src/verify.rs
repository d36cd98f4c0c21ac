//! Chain verification (`warung audit verify`): recomputes every tenant's hash chain from the
//! stored envelopes and names the first broken link: a changed record, a missing one, or a
//! chain whose stored head does not match its last record (records removed from the end), or
//! records of the tenant the sink could not store (in `audit_dead_letters`).

use platform::{db::SystemDb, id::TenantId};
use sqlx::PgConnection;

use crate::chain;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub chain_seq: i64,
    pub event_id: Option<uuid::Uuid>,
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub tenant: TenantId,
    pub links: i64,
    pub first_break: Option<BrokenLink>,
}

impl ChainReport {
    pub fn intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Verifies one tenant's chain through the system role (operator CLI).
pub async fn tenant(system: &SystemDb, tenant: TenantId) -> Result<ChainReport, sqlx::Error> {
    let mut conn = system.pool().acquire().await?;
    chain_of(&mut conn, tenant).await
}

/// Verifies one tenant's chain on `conn`: the system role's, or a tenant transaction (row-level
/// security then shows only that tenant's records, which is all this reads). Links that left
/// with a dropped partition (retention) are skipped: the chain resumes from the last hash their
/// signed digest recorded.
pub async fn chain_of(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<ChainReport, sqlx::Error> {
    // Records are read before the head, and the sink stores records and moves the head in one
    // transaction: a head *behind* the last record read, or at it with another hash, is a
    // break; a head *ahead* only means the sink stored more meanwhile, so read again.
    // A head that stays ahead over several reads is records cut from the end.
    let mut attempt = 0;
    loop {
        attempt += 1;
        if let Some(report) = verify_once(&mut *conn, tenant, attempt < 5).await? {
            return Ok(report);
        }
    }
}

/// `None`: the head moved past the records read (they were stored while this read them), and
/// `tolerate_race` asked to be told rather than to report it as a break.
async fn verify_once(
    conn: &mut PgConnection,
    tenant: TenantId,
    tolerate_race: bool,
) -> Result<Option<ChainReport>, sqlx::Error> {
    let rows = sqlx::query!(
        "select chain_seq, event_id, envelope, prev_hash, hash, event_type, actor, actor_id,
                resource_kind, resource_id, request_id, occurred_at
         from audit_events
         where tenant_id = $1 order by chain_seq",
        tenant.0
    )
    .fetch_all(&mut *conn)
    .await?;
    let retired = sqlx::query!(
        "select first_seq, last_seq, last_hash from audit_retired_links
         where tenant_id = $1 order by first_seq",
        tenant.0
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut retired = retired.into_iter().peekable();
    let mut expected = 1;
    let mut prev = chain::GENESIS.to_vec();
    let mut skip_retired = |expected: &mut i64, prev: &mut Vec<u8>| {
        while let Some(run) = retired.next_if(|run| run.first_seq == *expected) {
            *expected = run.last_seq + 1;
            *prev = run.last_hash;
        }
    };
    let broken = |row_seq, event_id, reason| {
        Some(BrokenLink {
            chain_seq: row_seq,
            event_id,
            reason,
        })
    };
    let mut first_break = None;
    for row in &rows {
        skip_retired(&mut expected, &mut prev);
        // What the view shows beside the record must be what the record, hashed, says.
        let stored = chain::Columns {
            event_type: row.event_type.clone(),
            actor: row.actor.clone(),
            actor_id: row.actor_id.clone(),
            resource_kind: row.resource_kind.clone(),
            resource_id: row.resource_id.clone(),
            request_id: row.request_id.clone(),
        };
        let event_id = row.event_id.to_string();
        let consistent = chain::Columns::of(&row.envelope) == stored
            && chain::occurred_at(&row.envelope) == Some(row.occurred_at)
            && row.envelope.get("event_id").and_then(|v| v.as_str()) == Some(event_id.as_str());
        first_break = if row.chain_seq != expected {
            broken(expected, None, "record missing")
        } else if row.prev_hash != prev {
            broken(
                row.chain_seq,
                Some(row.event_id),
                "previous hash does not match",
            )
        } else if chain::link(&prev, row.chain_seq, &row.envelope) != row.hash {
            broken(
                row.chain_seq,
                Some(row.event_id),
                "record changed after it was stored",
            )
        } else if !consistent {
            broken(
                row.chain_seq,
                Some(row.event_id),
                "a column differs from the hashed record",
            )
        } else {
            None
        };
        if first_break.is_some() {
            break;
        }
        expected += 1;
        prev = row.hash.clone();
    }
    if first_break.is_none() {
        skip_retired(&mut expected, &mut prev);
        let head = sqlx::query!(
            "select chain_seq, hash from audit_chain_heads where tenant_id = $1",
            tenant.0
        )
        .fetch_optional(&mut *conn)
        .await?;
        let last = expected - 1;
        if tolerate_race && head.as_ref().is_some_and(|h| h.chain_seq > last) {
            return Ok(None);
        }
        first_break = match head {
            Some(head) if head.chain_seq != last || head.hash != prev => {
                broken(last + 1, None, "records missing at the end of the chain")
            }
            None if last > 0 => broken(1, None, "chain head missing"),
            _ => None,
        };
    }
    if first_break.is_none() {
        // Records of this tenant that never made it into the chain.
        let lost = sqlx::query_scalar!(
            r#"select count(*) as "lost!" from audit_dead_letters where tenant_id = $1"#,
            tenant.0
        )
        .fetch_one(&mut *conn)
        .await?;
        if lost > 0 {
            first_break = broken(expected, None, "records in the dead letters");
        }
    }
    Ok(Some(ChainReport {
        tenant,
        links: rows.len() as i64,
        first_break,
    }))
}

/// Verifies every tenant that has a chain.
pub async fn all(system: &SystemDb) -> Result<Vec<ChainReport>, sqlx::Error> {
    let tenants = sqlx::query_scalar!("select tenant_id from audit_chain_heads order by tenant_id")
        .fetch_all(system.pool())
        .await?;
    let mut reports = Vec::with_capacity(tenants.len());
    for id in tenants {
        reports.push(tenant(system, TenantId(id)).await?);
    }
    Ok(reports)
}
