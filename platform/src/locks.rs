//! A Redis lock for work that one process at a time should do (DESIGN §7): `SET key token NX PX
//! ttl` to take it, a compare-and-expire script to renew it, a compare-and-delete script to
//! release it, so a holder can never extend or free a lock that has passed to someone else.
//!
//! A lock alone cannot stop a holder that paused (GC, swap, a stalled network) past its expiry
//! from acting on stale belief; jobs pair it with a fencing epoch in PostgreSQL (`jobs::Lease`).

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use rand::RngExt;

use crate::clients::Redis;

const RENEW: &str = r"
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0";

const RELEASE: &str = r"
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0";

/// A held lock. Dropping it without [`LockGuard::release`] leaves the key to expire.
#[derive(Debug)]
pub struct LockGuard {
    redis: Redis,
    key: String,
    token: String,
    ttl: Duration,
}

/// Takes `key` for `ttl` if nobody holds it. `Ok(None)`: held elsewhere; `Err`: Redis is
/// unreachable, and the caller must not go ahead unlocked.
pub async fn try_acquire(
    redis: &Redis,
    key: &str,
    ttl: Duration,
) -> redis::RedisResult<Option<LockGuard>> {
    let token = random_token();
    let mut conn = redis.conn();
    let set: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(&token)
        .arg("NX")
        .arg("PX")
        .arg(millis(ttl))
        .query_async(&mut conn)
        .await?;
    Ok(set.map(|_| LockGuard {
        redis: redis.clone(),
        key: key.to_owned(),
        token,
        ttl,
    }))
}

impl LockGuard {
    /// The random value that identifies this holder.
    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Extends the lock by its ttl. `Ok(false)`: it expired and is no longer ours.
    pub async fn renew(&self) -> redis::RedisResult<bool> {
        let mut conn = self.redis.conn();
        let renewed: i64 = redis::Script::new(RENEW)
            .key(&self.key)
            .arg(&self.token)
            .arg(millis(self.ttl))
            .invoke_async(&mut conn)
            .await?;
        Ok(renewed == 1)
    }

    /// Frees the lock if it is still ours. `Ok(false)`: it had expired (maybe taken by another).
    pub async fn release(self) -> redis::RedisResult<bool> {
        let mut conn = self.redis.conn();
        let deleted: i64 = redis::Script::new(RELEASE)
            .key(&self.key)
            .arg(&self.token)
            .invoke_async(&mut conn)
            .await?;
        Ok(deleted == 1)
    }
}

fn random_token() -> String {
    let bytes: [u8; 18] = rand::rng().random();
    B64.encode(bytes)
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}
