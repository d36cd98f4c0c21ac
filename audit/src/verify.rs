//! Chain verification: recomputes a tenant's hash chain from the stored envelopes and names the
//! first broken link: a changed record, a missing one, a chain whose stored head does not match
//! its last record (records removed from the end), or records of the tenant the sink could not
//! store (in `audit_dead_letters`).
//!
//! Records are streamed, never loaded whole, and a verification can start at a [`Checkpoint`]:
//! the last link the background job (`audit.verify`, [`crate::checkpoints`]) found intact. The
//! request path starts there, so its cost is what was stored since the job last ran; the job
//! walks every chain from its first link every `audit.full_verify_every_days`, which is what
//! catches a record changed before a checkpoint; `warung audit verify` always does.
//!
//! Links that left with a dropped partition (retention) are skipped only when proven: listed,
//! with the same last hash, in the partition's digest whose Transit signature verifies
//! ([`RetiredRuns::proven`]). The request path cannot read the digests (they name every tenant);
//! it only skips runs before its checkpoint, which the job proved.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use platform::{clients::Vault, db::SystemDb, id::TenantId};
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
    /// The link verification started after: 0 from the first link, else a checkpoint's.
    pub verified_from: i64,
    /// Records checked by this verification.
    pub links: i64,
    /// The last link checked (with the hash the chain continues from), when intact.
    pub last: Option<(i64, Vec<u8>)>,
    pub first_break: Option<BrokenLink>,
}

impl ChainReport {
    pub fn intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// A link found intact, with everything before it, when it was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub chain_seq: i64,
    pub hash: Vec<u8>,
    pub verified_at: DateTime<Utc>,
    /// When the whole chain was last walked from its first link.
    pub full_at: DateTime<Utc>,
}

impl Checkpoint {
    /// The tenant's stored checkpoint (readable by the tenant's own transaction).
    pub async fn of(
        conn: &mut PgConnection,
        tenant: TenantId,
    ) -> Result<Option<Self>, sqlx::Error> {
        sqlx::query_as!(
            Checkpoint,
            "select chain_seq, hash, verified_at, full_at from audit_chain_checkpoints
             where tenant_id = $1",
            tenant.0
        )
        .fetch_optional(conn)
        .await
    }
}

const UNPROVEN: &str =
    "retired links past the last checkpoint are not yet proven by their signed digest";
const NOT_IN_DIGEST: &str = "retired links are not in their partition's signed digest";
const BAD_SIGNATURE: &str = "a retired partition's digest signature does not verify";

/// Links of one tenant's chain that left with a dropped partition.
#[derive(Debug, Clone)]
struct RetiredRun {
    first_seq: i64,
    last_seq: i64,
    last_hash: Vec<u8>,
    /// `Err(reason)` when the run may not be skipped.
    proof: Result<(), &'static str>,
}

/// The retired runs a verification may meet, each with its proof.
#[derive(Debug, Clone, Default)]
pub struct RetiredRuns(Vec<RetiredRun>);

impl RetiredRuns {
    /// The runs as recorded, none proven: for the request path, which skips only runs before
    /// its checkpoint.
    pub async fn unproven(conn: &mut PgConnection, tenant: TenantId) -> Result<Self, sqlx::Error> {
        let runs = sqlx::query!(
            "select first_seq, last_seq, last_hash from audit_retired_links
             where tenant_id = $1 order by first_seq",
            tenant.0
        )
        .fetch_all(conn)
        .await?;
        Ok(Self(
            runs.into_iter()
                .map(|r| RetiredRun {
                    first_seq: r.first_seq,
                    last_seq: r.last_seq,
                    last_hash: r.last_hash,
                    proof: Err(UNPROVEN),
                })
                .collect(),
        ))
    }

    /// The runs, each checked against its partition's signed digest (system or compliance
    /// role: the digests name every tenant).
    pub async fn proven(
        conn: &mut PgConnection,
        tenant: TenantId,
        digests: &mut Digests<'_>,
    ) -> anyhow::Result<Self> {
        let runs = sqlx::query!(
            "select l.first_seq, l.last_seq, l.last_hash, p.partition_name, p.retirement,
                    p.signed_document, p.signature
             from audit_retired_links l
             join audit_retired_partitions p
               on p.partition_name = l.partition_name and p.retirement = l.retirement
             where l.tenant_id = $1 order by l.first_seq",
            tenant.0
        )
        .fetch_all(conn)
        .await?;
        let mut proven = Vec::with_capacity(runs.len());
        for r in runs {
            let document = digests
                .document(
                    (&r.partition_name, r.retirement),
                    &r.signed_document,
                    &r.signature,
                )
                .await?;
            let listed = document.is_some_and(|doc| {
                doc["chains"].as_array().is_some_and(|chains| {
                    chains.iter().any(|run| {
                        run["tenant"].as_str() == Some(tenant.0.to_string().as_str())
                            && run["first_seq"].as_i64() == Some(r.first_seq)
                            && run["last_seq"].as_i64() == Some(r.last_seq)
                            && run["last_hash"].as_str() == Some(hex::encode(&r.last_hash).as_str())
                    })
                })
            });
            proven.push(RetiredRun {
                first_seq: r.first_seq,
                last_seq: r.last_seq,
                last_hash: r.last_hash,
                proof: match document {
                    None => Err(BAD_SIGNATURE),
                    Some(_) if !listed => Err(NOT_IN_DIGEST),
                    Some(_) => Ok(()),
                },
            });
        }
        Ok(Self(proven))
    }
}

/// Signed digests of retired partitions, each signature checked with Vault once per run.
#[derive(Debug)]
pub struct Digests<'a> {
    vault: &'a Vault,
    /// By partition and retirement (a partition can be retired more than once).
    checked: HashMap<(String, i32), Option<serde_json::Value>>,
}

impl<'a> Digests<'a> {
    pub fn new(vault: &'a Vault) -> Self {
        Self {
            vault,
            checked: HashMap::new(),
        }
    }

    /// The partition's signed document, or `None` when its signature does not verify.
    async fn document(
        &mut self,
        (partition, retirement): (&str, i32),
        document: &str,
        signature: &str,
    ) -> anyhow::Result<Option<&serde_json::Value>> {
        let key = (partition.to_owned(), retirement);
        if !self.checked.contains_key(&key) {
            let valid = self
                .vault
                .verify_digest(document.as_bytes(), signature)
                .await?;
            let parsed = valid.then(|| serde_json::from_str(document).ok()).flatten();
            self.checked.insert(key.clone(), parsed);
        }
        Ok(self.checked.get(&key).and_then(Option::as_ref))
    }
}

/// Verifies one tenant's whole chain from its first link, retired runs proven by their signed
/// digests (`warung audit verify`, the compliance check).
pub async fn tenant(
    system: &SystemDb,
    vault: &Vault,
    tenant: TenantId,
) -> anyhow::Result<ChainReport> {
    let mut conn = system.pool().acquire().await?;
    full(&mut conn, &mut Digests::new(vault), tenant).await
}

/// [`tenant`] on `conn` (the system or the compliance role), sharing `digests` across tenants.
pub async fn full(
    conn: &mut PgConnection,
    digests: &mut Digests<'_>,
    tenant: TenantId,
) -> anyhow::Result<ChainReport> {
    let retired = RetiredRuns::proven(conn, tenant, digests).await?;
    Ok(chain_of(conn, tenant, None, &retired).await?)
}

/// Verifies what was stored since the tenant's checkpoint, in the tenant's own transaction
/// (the request path): row-level security shows only that tenant's records.
pub async fn since_checkpoint(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<(ChainReport, Option<Checkpoint>), sqlx::Error> {
    let checkpoint = Checkpoint::of(conn, tenant).await?;
    let retired = RetiredRuns::unproven(conn, tenant).await?;
    let report = chain_of(conn, tenant, checkpoint.as_ref(), &retired).await?;
    Ok((report, checkpoint))
}

/// Verifies one tenant's chain on `conn` after `from` (or from the first link), skipping the
/// `retired` runs that are proven.
pub async fn chain_of(
    conn: &mut PgConnection,
    tenant: TenantId,
    from: Option<&Checkpoint>,
    retired: &RetiredRuns,
) -> Result<ChainReport, sqlx::Error> {
    let mut walk = Walk {
        expected: from.map_or(1, |c| c.chain_seq + 1),
        prev: from.map_or(chain::GENESIS.to_vec(), |c| c.hash.clone()),
        links: 0,
        // Runs before the start are passed over as the walk moves (they were proven then).
        retired: retired.0.iter().peekable(),
    };
    let verified_from = walk.expected - 1;
    let report = |walk: &Walk<'_>, first_break| ChainReport {
        tenant,
        verified_from,
        links: walk.links,
        last: Some((walk.expected - 1, walk.prev.clone())).filter(|_| walk.expected > 1),
        first_break,
    };
    // Records are read before the head, and the sink stores records and moves the head in one
    // transaction: a head *behind* the last record read, or at it with another hash, is a
    // break; a head *ahead* only means the sink stored more meanwhile, so read on from there.
    // A head that stays ahead over several reads is records cut from the end.
    for attempt in 1.. {
        if let Some(broken) = walk.records(conn, tenant).await? {
            return Ok(report(&walk, Some(broken)));
        }
        if let Err(broken) = walk.skip_retired() {
            return Ok(report(&walk, Some(broken)));
        }
        let head = sqlx::query!(
            "select chain_seq, hash from audit_chain_heads where tenant_id = $1",
            tenant.0
        )
        .fetch_optional(&mut *conn)
        .await?;
        let last = walk.expected - 1;
        if attempt < 5 && head.as_ref().is_some_and(|h| h.chain_seq > last) {
            continue;
        }
        let first_break = match head {
            Some(head) if head.chain_seq != last || head.hash != walk.prev => {
                broken(last + 1, None, "records missing at the end of the chain")
            }
            None if last > 0 => broken(1, None, "chain head missing"),
            _ => None,
        };
        if first_break.is_some() {
            return Ok(report(&walk, first_break));
        }
        break;
    }
    // Records of this tenant that never made it into the chain.
    let lost = sqlx::query_scalar!(
        r#"select count(*) as "lost!" from audit_dead_letters where tenant_id = $1"#,
        tenant.0
    )
    .fetch_one(&mut *conn)
    .await?;
    let first_break = (lost > 0)
        .then(|| broken(walk.expected, None, "records in the dead letters"))
        .flatten();
    Ok(report(&walk, first_break))
}

fn broken(
    chain_seq: i64,
    event_id: Option<uuid::Uuid>,
    reason: &'static str,
) -> Option<BrokenLink> {
    Some(BrokenLink {
        chain_seq,
        event_id,
        reason,
    })
}

/// Where a verification stands: the next link expected and the hash it must continue from.
struct Walk<'r> {
    expected: i64,
    prev: Vec<u8>,
    links: i64,
    retired: std::iter::Peekable<std::slice::Iter<'r, RetiredRun>>,
}

impl Walk<'_> {
    /// Skips the retired runs that start at the next expected link; an unproven one is a break.
    fn skip_retired(&mut self) -> Result<(), BrokenLink> {
        while let Some(run) = self.retired.next_if(|run| run.first_seq <= self.expected) {
            if run.first_seq < self.expected {
                continue;
            }
            if let Err(reason) = run.proof {
                return Err(BrokenLink {
                    chain_seq: run.first_seq,
                    event_id: None,
                    reason,
                });
            }
            self.expected = run.last_seq + 1;
            self.prev.clone_from(&run.last_hash);
        }
        Ok(())
    }

    /// Streams the records from the next expected link on and checks each; the first break.
    async fn records(
        &mut self,
        conn: &mut PgConnection,
        tenant: TenantId,
    ) -> Result<Option<BrokenLink>, sqlx::Error> {
        let mut rows = sqlx::query!(
            "select chain_seq, event_id, envelope, prev_hash, hash, event_type, actor, actor_id,
                    resource_kind, resource_id, request_id, occurred_at
             from audit_events
             where tenant_id = $1 and chain_seq >= $2 order by chain_seq",
            tenant.0,
            self.expected
        )
        .fetch(conn);
        while let Some(row) = rows.try_next().await? {
            if let Err(broken) = self.skip_retired() {
                return Ok(Some(broken));
            }
            // What the view shows beside the record must be what the record, hashed, says.
            let stored = chain::Columns {
                event_type: row.event_type,
                actor: row.actor,
                actor_id: row.actor_id,
                resource_kind: row.resource_kind,
                resource_id: row.resource_id,
                request_id: row.request_id,
            };
            let event_id = row.event_id.to_string();
            let consistent = chain::Columns::of(&row.envelope) == stored
                && chain::occurred_at(&row.envelope) == Some(row.occurred_at)
                && row.envelope.get("event_id").and_then(|v| v.as_str()) == Some(event_id.as_str());
            let here = |reason| broken(row.chain_seq, Some(row.event_id), reason);
            let first_break = if row.chain_seq != self.expected {
                broken(self.expected, None, "record missing")
            } else if row.prev_hash != self.prev {
                here("previous hash does not match")
            } else if chain::link(&self.prev, row.chain_seq, &row.envelope) != row.hash {
                here("record changed after it was stored")
            } else if !consistent {
                here("a column differs from the hashed record")
            } else {
                None
            };
            if first_break.is_some() {
                return Ok(first_break);
            }
            self.links += 1;
            self.expected += 1;
            self.prev = row.hash;
        }
        Ok(None)
    }
}

/// Verifies every tenant that has a chain, each from its first link. A tenant counts when it
/// has a chain head, any stored record or a dead letter: a head deleted behind the store's back
/// must not hide its chain from the check, nor a record that never joined one (the records'
/// tenants are read by a skip scan of the chain index).
pub async fn all(system: &SystemDb, vault: &Vault) -> anyhow::Result<Vec<ChainReport>> {
    let tenants = sqlx::query_scalar!(
        r#"with recursive stored as (
               (select tenant_id from audit_events order by tenant_id limit 1)
               union all
               select (select e.tenant_id from audit_events e where e.tenant_id > s.tenant_id
                       order by e.tenant_id limit 1)
               from stored s where s.tenant_id is not null
           )
           select tenant_id as "tenant_id!" from stored where tenant_id is not null
           union
           select tenant_id from audit_chain_heads
           union
           select tenant_id from audit_dead_letters where tenant_id is not null
           order by 1"#
    )
    .fetch_all(system.pool())
    .await?;
    let mut conn = system.pool().acquire().await?;
    let mut digests = Digests::new(vault);
    let mut reports = Vec::with_capacity(tenants.len());
    for id in tenants {
        reports.push(full(&mut conn, &mut digests, TenantId(id)).await?);
    }
    Ok(reports)
}
