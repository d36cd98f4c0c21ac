//! Redis counters that hold across every process: failed logins per account and client
//! address and per client address, and unauthenticated writes (sign-ups, reset requests,
//! data-subject requests) per client address. Fixed windows: the first hit sets the expiry;
//! `429` carries the seconds until the window ends. A unit is reserved before the attempt (one
//! server-side script checks and counts), so concurrent attempts cannot slip past the limit,
//! and given back when the attempt turns out not to count.
//!
//! With Redis down these checks answer 503: signing in without brute-force protection is not
//! an option we take silently.

use std::{sync::LazyLock, time::Duration};

use crate::{Error, clients::Redis, error::Limit, health::Dependency};

#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// What the window counts, named in its 429.
    pub name: Limit,
    pub limit: u64,
    pub seconds: u64,
}

/// Checks and counts in one step, on the Redis server: concurrent callers cannot all pass a
/// limit they would each pass alone. Answers the count after this hit, or the negative
/// milliseconds left in the window when the limit was already reached.
static RESERVE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= tonumber(ARGV[1]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 1 then ttl = 1 end
  return -ttl
end
count = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return count
",
    )
});

/// Gives back one unit, never below zero.
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 then redis.call('DECR', KEYS[1]) end
return count
",
    )
});

/// One unit of a window, taken by [`reserve`]; kept unless [`Reserved::release`]d.
#[derive(Debug)]
#[must_use = "a reservation is either kept (do nothing) or released"]
pub struct Reserved {
    key: String,
}

impl Reserved {
    /// Gives the unit back: the attempt it was reserved for did not count (a sign-in that
    /// succeeded, a request refused for another reason).
    pub async fn release(self, redis: &Redis) {
        let mut conn = redis.conn();
        let released: Result<i64, _> = RELEASE.key(&self.key).invoke_async(&mut conn).await;
        if let Err(err) = released {
            tracing::warn!(error = %err, "limit reservation not released");
        }
    }
}

/// Takes one unit of `key`'s window, or refuses with 429 (and the seconds until the window
/// ends) when the limit is reached. Check and count are one atomic step.
pub async fn reserve(redis: &Redis, key: &str, window: Window) -> Result<Reserved, Error> {
    let mut conn = redis.conn();
    let answer: i64 = RESERVE
        .key(key)
        .arg(window.limit)
        .arg(window.seconds)
        .invoke_async(&mut conn)
        .await
        .map_err(|_| Error::Unavailable(Dependency::Redis))?;
    if answer < 0 {
        let wait = u64::try_from(-answer).unwrap_or(window.seconds * 1000);
        return Err(Error::TooManyRequests {
            limit: window.name,
            retry_after: Duration::from_millis(wait).max(Duration::from_secs(1)),
        });
    }
    Ok(Reserved {
        key: key.to_owned(),
    })
}

/// Counts a hit and refuses once over the limit (for rate limits rather than failure counts).
pub async fn take(redis: &Redis, key: &str, window: Window) -> Result<(), Error> {
    reserve(redis, key, window).await.map(drop)
}

/// Counts one unauthenticated write (a sign-up, a reset request, a data-subject request, a
/// consent confirmation) against the client's hourly budget, shared by every public write route.
pub async fn public_write(
    redis: &Redis,
    config: &crate::config::RateLimitConfig,
    client: crate::http::ClientAddr,
) -> Result<(), Error> {
    let window = Window {
        name: Limit::PublicWrites,
        limit: config.public_writes_per_ip_per_hour,
        seconds: 3600,
    };
    let key = redis.key(format_args!("public-writes:{client}"));
    take(redis, &key, window).await
}

pub async fn clear(redis: &Redis, key: &str) {
    let mut conn = redis.conn();
    let _: Result<i64, _> = redis::cmd("DEL").arg(key).query_async(&mut conn).await;
}
