//! Server-side sessions and their rotating refresh tokens.
//!
//! A session is one login. Its refresh tokens form a family: each refresh marks the presented
//! token used and issues the next generation. Presenting a used token again means it was
//! copied: the whole session is revoked (RFC 9700 §4.14.2, refresh token rotation with reuse
//! detection). Access tokens name their session (`sid`); the edge checks on each request that
//! the session is still live, with a short Redis cache that revocation clears.

use chrono::{DateTime, TimeDelta, Utc};
use platform::{
    Result,
    clients::Redis,
    db::{Db, TenantTx},
    events::{self, Actor, AuditRecord, Resource},
    health::Dependency,
    id::{SessionId, TenantId, UserId},
    tokens::{self, Issued, TokenHash},
};

fn cache_key(redis: &Redis, tenant: TenantId, session: SessionId) -> String {
    redis.key(format_args!(
        "session:{}:{}",
        tenant.0.simple(),
        session.0.simple()
    ))
}

/// Starts a session for `user` with its first refresh token (`session.created`).
pub async fn create(
    tx: &mut TenantTx,
    user: UserId,
    now: DateTime<Utc>,
    ttl: TimeDelta,
) -> Result<(SessionId, Issued)> {
    let id = SessionId::new();
    let tenant = tx.tenant();
    sqlx::query!(
        "insert into sessions (tenant_id, id, user_id, created_at, expires_at) values ($1, $2, $3, $4, $5)",
        tenant.0,
        id.0,
        user.0,
        now,
        now + ttl,
    )
    .execute(&mut **tx)
    .await?;
    let issued = issue_refresh(tx, id, 1, now).await?;
    let record = AuditRecord::new(
        Actor::User { id: user },
        "session.created",
        Resource::new("session", id),
    );
    events::emit_audit(tx, &record).await?;
    Ok((id, issued))
}

async fn issue_refresh(
    tx: &mut TenantTx,
    session: SessionId,
    generation: i32,
    now: DateTime<Utc>,
) -> Result<Issued> {
    let issued = tokens::issue(tx.tenant());
    let tenant = tx.tenant();
    sqlx::query!(
        "insert into refresh_tokens (tenant_id, token_hash, session_id, generation, created_at) values ($1, $2, $3, $4, $5)",
        tenant.0,
        issued.hash.0,
        session.0,
        generation,
        now,
    )
    .execute(&mut **tx)
    .await?;
    Ok(issued)
}

/// What presenting a refresh token did.
#[derive(Debug)]
pub enum Refreshed {
    /// Rotated: the session's user and the next token.
    Rotated {
        session: SessionId,
        user: UserId,
        token: Issued,
    },
    /// Unknown, or its session ended: nothing changed.
    Invalid,
    /// A used token came back: the session is now revoked. Commit, then refuse.
    Reused { session: SessionId },
}

pub async fn refresh(tx: &mut TenantTx, hash: &TokenHash, now: DateTime<Utc>) -> Result<Refreshed> {
    let Some(row) = sqlx::query!(
        "select r.session_id, r.generation, r.used_at, s.user_id, s.expires_at, s.revoked_at
         from refresh_tokens r join sessions s on s.tenant_id = r.tenant_id and s.id = r.session_id
         where r.token_hash = $1
         for update of r, s",
        hash.0
    )
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(Refreshed::Invalid);
    };
    let session = SessionId(row.session_id);
    let user = UserId(row.user_id);
    if row.revoked_at.is_some() || row.expires_at <= now {
        return Ok(Refreshed::Invalid);
    }
    if row.used_at.is_some() {
        revoke(
            tx,
            Actor::System {
                name: "refresh-reuse-detection",
            },
            session,
            "refresh_token_reuse",
        )
        .await?;
        return Ok(Refreshed::Reused { session });
    }
    sqlx::query!(
        "update refresh_tokens set used_at = $2 where token_hash = $1",
        hash.0,
        now
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!(
        "update sessions set refreshed_at = $2 where id = $1",
        session.0,
        now
    )
    .execute(&mut **tx)
    .await?;
    let token = issue_refresh(tx, session, row.generation + 1, now).await?;
    let record = AuditRecord::new(
        Actor::User { id: user },
        "session.refreshed",
        Resource::new("session", session),
    )
    .details(serde_json::json!({ "generation": row.generation + 1 }));
    events::emit_audit(tx, &record).await?;
    Ok(Refreshed::Rotated {
        session,
        user,
        token,
    })
}

/// Revokes one session (`session.revoked`). Idempotent.
pub async fn revoke(
    tx: &mut TenantTx,
    actor: Actor,
    session: SessionId,
    reason: &'static str,
) -> Result<bool> {
    let revoked = sqlx::query!(
        "update sessions set revoked_at = now(), revoked_reason = $2 where id = $1 and revoked_at is null",
        session.0,
        reason
    )
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if revoked > 0 {
        let record = AuditRecord::new(actor, "session.revoked", Resource::new("session", session))
            .details(serde_json::json!({ "reason": reason }));
        events::emit_audit(tx, &record).await?;
    }
    Ok(revoked > 0)
}

/// Revokes every live session of `user`; returns their ids (to clear from the cache).
pub async fn revoke_user(
    tx: &mut TenantTx,
    actor: Actor,
    user: UserId,
    reason: &'static str,
) -> Result<Vec<SessionId>> {
    let ids = sqlx::query_scalar!(
        "update sessions set revoked_at = now(), revoked_reason = $2
         where user_id = $1 and revoked_at is null returning id",
        user.0,
        reason
    )
    .fetch_all(&mut **tx)
    .await?;
    for id in &ids {
        let record = AuditRecord::new(actor, "session.revoked", Resource::new("session", id))
            .details(serde_json::json!({ "reason": reason }));
        events::emit_audit(tx, &record).await?;
    }
    Ok(ids.into_iter().map(SessionId).collect())
}

/// The cached mark of a live session, and of one revoked (a tombstone).
const LIVE: &str = "1";
const REVOKED: &str = "0";

/// Whether a session is live: Redis first (a short-lived "live" mark, or a "revoked"
/// tombstone), PostgreSQL on a miss. A request that read "live" from PostgreSQL just before a
/// revocation committed caches it only if nothing is cached (`SET NX`): the revocation's
/// tombstone is never overwritten, so a signed-out session is refused from the next request on.
/// With Redis down, every check goes to PostgreSQL; with PostgreSQL down too, 503.
pub async fn is_live(
    db: &Db,
    redis: &Redis,
    cache_ms: u64,
    tenant: TenantId,
    session: SessionId,
) -> Result<bool, Dependency> {
    let key = cache_key(redis, tenant, session);
    let mut conn = redis.conn();
    match redis::cmd("GET")
        .arg(&key)
        .query_async::<Option<String>>(&mut conn)
        .await
    {
        Ok(Some(mark)) if mark == LIVE => return Ok(true),
        Ok(Some(_)) => return Ok(false),
        _ => {}
    }
    let live = async {
        let mut tx = db.tenant(tenant).begin().await?;
        let live = sqlx::query_scalar!(
            r#"select exists(select 1 from sessions where id = $1 and revoked_at is null and expires_at > now()) as "live!""#,
            session.0
        )
        .fetch_one(&mut *tx)
        .await?;
        // A suspended or closed shop's sessions end with it.
        let open = tenants::is_active(&mut tx).await?;
        tx.rollback().await?;
        Ok::<bool, platform::Error>(live && open)
    }
    .await
    .map_err(|_| Dependency::Postgres)?;
    if live && cache_ms > 0 {
        remember_live(redis, tenant, session, cache_ms).await;
    }
    Ok(live)
}

/// Caches a session read live from PostgreSQL, unless a mark is already there: it may be the
/// tombstone of a revocation that committed after that read.
pub async fn remember_live(redis: &Redis, tenant: TenantId, session: SessionId, cache_ms: u64) {
    let mut conn = redis.conn();
    let _: Result<Option<String>, _> = redis::cmd("SET")
        .arg(cache_key(redis, tenant, session))
        .arg(LIVE)
        .arg("PX")
        .arg(cache_ms)
        .arg("NX")
        .query_async(&mut conn)
        .await;
}

/// Replaces the cached marks of revoked sessions with tombstones that outlive any request
/// still in flight (`tombstone_ms`): a revoked session is refused from the next request on,
/// even by a request that read it live from PostgreSQL just before the revocation.
pub async fn forget(redis: &Redis, tenant: TenantId, sessions: &[SessionId], tombstone_ms: u64) {
    if sessions.is_empty() {
        return;
    }
    let mut pipe = redis::pipe();
    for session in sessions {
        pipe.cmd("SET")
            .arg(cache_key(redis, tenant, *session))
            .arg(REVOKED)
            .arg("PX")
            .arg(tombstone_ms.max(1))
            .ignore();
    }
    let mut conn = redis.conn();
    if let Err(err) = pipe.query_async::<()>(&mut conn).await {
        // The mark expires on its own within auth.session_cache_ms.
        tracing::warn!(error = %err, "could not clear cached sessions");
    }
}
