//! The auth service: keys, password hasher and the session checks, installed into `AppState`
//! as its [`Sessions`] so the edge and other modules can use it without depending on `auth`.

use std::sync::Arc;

use platform::{
    AppState, Error, Principal, Result, Role,
    authz::{Authentication, BoxFuture, Sessions},
    clients::Redis,
    clock::SharedClock,
    config::AuthConfig,
    db::{Db, TenantTx},
    error::Limit,
    events::Actor,
    id::{SessionId, TenantId, UserId},
    throttle::Window,
};
use users::staff::StaffUser;

use crate::{keys::Claims, keys::Keys, password::Hasher, sessions};

#[derive(Debug, Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    keys: Keys,
    hasher: Hasher,
    db: Db,
    redis: Redis,
    config: AuthConfig,
    request_timeout_ms: u64,
    /// Token expiry is judged by the state's clock (the demo seed dates its shop back).
    clock: SharedClock,
}

impl Service {
    pub fn new(state: &AppState) -> anyhow::Result<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                keys: Keys::from_config(&state.config.auth)?,
                hasher: Hasher::new(state.config.auth.hash_concurrency),
                db: state.db.clone(),
                redis: state.redis.clone(),
                config: state.config.auth.clone(),
                request_timeout_ms: state.config.http.request_timeout_ms,
                clock: state.clock.clone(),
            }),
        })
    }

    /// The service gateway installed into `state`.
    pub fn from_state(state: &AppState) -> Result<Self> {
        state
            .sessions
            .as_any()
            .downcast_ref::<Self>()
            .cloned()
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("auth service not installed")))
    }

    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    pub fn hasher(&self) -> &Hasher {
        &self.inner.hasher
    }

    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }

    pub fn login_failures_per_account(&self) -> Window {
        Window {
            name: Limit::FailedSignInsPerAccount,
            limit: u64::from(self.inner.config.max_failures_per_account),
            seconds: self.inner.config.failure_window_secs,
        }
    }

    pub fn login_failures_per_ip(&self) -> Window {
        Window {
            name: Limit::FailedSignInsPerAddress,
            limit: u64::from(self.inner.config.max_failures_per_ip),
            seconds: self.inner.config.failure_window_secs,
        }
    }

    /// A signed access token for `user` in `session`.
    pub fn access_token(
        &self,
        tenant: TenantId,
        user: &StaffUser,
        session: SessionId,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<String> {
        let ttl = i64::try_from(self.inner.config.access_ttl_secs).unwrap_or(900);
        let claims = Claims {
            iss: self.inner.keys.issuer().to_owned(),
            aud: self.inner.keys.audience().to_owned(),
            sub: user.id,
            tid: tenant,
            role: user.role,
            sid: session,
            iat: now.timestamp(),
            exp: now.timestamp() + ttl,
        };
        self.inner.keys.sign(&claims).map_err(Error::Internal)
    }

    pub fn access_ttl_secs(&self) -> u64 {
        self.inner.config.access_ttl_secs
    }

    /// A `platform_admin` token for the operator (`warung admin token`): belongs to no tenant
    /// (the nil tenant id, so no tenant's rows are reachable with it) and has no server-side
    /// session, so it cannot be revoked; it is therefore short, at most
    /// [`OPERATOR_TOKEN_MAX_SECS`]. Only whoever holds the signing key can make one.
    pub fn operator_token(
        &self,
        operator: UserId,
        now: chrono::DateTime<chrono::Utc>,
        ttl_secs: i64,
    ) -> Result<String> {
        let claims = Claims {
            iss: self.inner.keys.issuer().to_owned(),
            aud: self.inner.keys.audience().to_owned(),
            sub: operator,
            tid: TenantId(uuid::Uuid::nil()),
            role: Role::PlatformAdmin,
            sid: SessionId::new(),
            iat: now.timestamp(),
            exp: now.timestamp() + ttl_secs.clamp(1, OPERATOR_TOKEN_MAX_SECS),
        };
        self.inner.keys.sign(&claims).map_err(Error::Internal)
    }

    /// Clears the cached "live" marks of `sessions` once `tx` commits.
    pub fn forget_after_commit(&self, tx: &mut TenantTx, sessions: Vec<SessionId>) {
        let redis = self.inner.redis.clone();
        let tenant = tx.tenant();
        // Longer than any request can take, plus the mark a racing request may have set.
        let tombstone_ms = self.inner.request_timeout_ms + self.inner.config.session_cache_ms;
        tx.after_commit(async move {
            sessions::forget(&redis, tenant, &sessions, tombstone_ms).await;
        });
    }
}

/// The longest an operator token lives (it has no session to revoke).
pub const OPERATOR_TOKEN_MAX_SECS: i64 = 900;

/// An operator token is accepted only as one: platform_admin, the nil tenant, short-lived.
/// An operator token is short-lived by construction: at most `OPERATOR_TOKEN_MAX_SECS` between
/// its issue and its end, and issued no later than now (a minute's clock skew allowed), so a
/// token dated ahead cannot stretch its life.
fn operator(claims: &Claims, now: i64) -> Authentication {
    let valid = claims.role == Role::PlatformAdmin
        && claims.tid.0.is_nil()
        && claims.iat <= now + 60
        && claims.exp - claims.iat <= OPERATOR_TOKEN_MAX_SECS;
    if valid {
        Authentication::Verified(Principal {
            tenant: claims.tid,
            user: claims.sub,
            role: claims.role,
            session: claims.sid,
        })
    } else {
        Authentication::Invalid
    }
}

impl Sessions for Service {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Authentication> {
        Box::pin(async move {
            let now = self.inner.clock.now().timestamp();
            let Some(claims) = self.inner.keys.verify(token, now) else {
                return Authentication::Invalid;
            };
            if claims.role == Role::PlatformAdmin || claims.tid.0.is_nil() {
                return operator(&claims, now);
            }
            match sessions::is_live(
                &self.inner.db,
                &self.inner.redis,
                self.inner.config.session_cache_ms,
                claims.tid,
                claims.sid,
            )
            .await
            {
                Ok(true) => Authentication::Verified(Principal {
                    tenant: claims.tid,
                    user: claims.sub,
                    role: claims.role,
                    session: claims.sid,
                }),
                Ok(false) => Authentication::Invalid,
                Err(dep) => Authentication::Unavailable(dep),
            }
        })
    }

    fn revoke_user<'a>(
        &'a self,
        tx: &'a mut TenantTx,
        actor: Actor,
        user: UserId,
        reason: &'static str,
    ) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(async move {
            let revoked = sessions::revoke_user(tx, actor, user, reason).await?;
            let count = u64::try_from(revoked.len()).unwrap_or(u64::MAX);
            self.forget_after_commit(tx, revoked);
            Ok(count)
        })
    }

    fn close_account<'a>(
        &'a self,
        tx: &'a mut TenantTx,
        actor: Actor,
        user: UserId,
        reason: &'static str,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.revoke_user(tx, actor, user, reason).await?;
            crate::credentials::forget(tx, actor, user).await
        })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(role: Role, tid: uuid::Uuid, lifetime: i64) -> Claims {
        Claims {
            iss: "warung".into(),
            aud: "warung-api".into(),
            sub: UserId::new(),
            tid: TenantId(tid),
            role,
            sid: SessionId::new(),
            iat: 1_000,
            exp: 1_000 + lifetime,
        }
    }

    #[test]
    fn only_a_short_tenantless_platform_admin_token_is_an_operators() {
        let nil = uuid::Uuid::nil();
        let now = 1_000;
        assert!(matches!(
            operator(&claims(Role::PlatformAdmin, nil, 900), now),
            Authentication::Verified(p) if p.role == Role::PlatformAdmin
        ));
        let mut dated_ahead = claims(Role::PlatformAdmin, nil, 900);
        dated_ahead.iat += 86_400;
        dated_ahead.exp += 86_400;
        for refused in [
            claims(Role::PlatformAdmin, nil, 901),
            claims(Role::PlatformAdmin, uuid::Uuid::now_v7(), 60),
            claims(Role::Owner, nil, 60),
            dated_ahead,
        ] {
            assert!(
                matches!(operator(&refused, now), Authentication::Invalid),
                "{refused:?}"
            );
        }
    }
}
