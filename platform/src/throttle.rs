//! Redis counters that hold across every process: failed logins per account and per client
//! address, and unauthenticated writes (sign-ups, reset requests, data-subject requests) per
//! client address. Fixed
//! windows: the first hit sets the expiry; `429` carries the seconds until the window ends.
//!
//! With Redis down these checks answer 503: signing in without brute-force protection is not
//! an option we take silently.

use std::time::Duration;

use crate::{Error, clients::Redis, health::Dependency};

#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub limit: u64,
    pub seconds: u64,
}

/// Refuses with 429 when `key` already reached the limit in its window.
pub async fn check(redis: &Redis, key: &str, window: Window) -> Result<(), Error> {
    let mut conn = redis.conn();
    let (count, ttl): (Option<u64>, i64) = redis::pipe()
        .cmd("GET")
        .arg(key)
        .cmd("PTTL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .map_err(|_| Error::Unavailable(Dependency::Redis))?;
    if count.unwrap_or(0) >= window.limit {
        let wait = u64::try_from(ttl).unwrap_or(window.seconds * 1000);
        return Err(Error::TooManyRequests {
            retry_after: Duration::from_millis(wait).max(Duration::from_secs(1)),
        });
    }
    Ok(())
}

/// Counts one hit against `key`; returns the count in this window.
pub async fn hit(redis: &Redis, key: &str, window: Window) -> Result<u64, Error> {
    let mut conn = redis.conn();
    let (count, _): (u64, i64) = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg(key)
        // NX: only the first hit of a window sets its end.
        .cmd("EXPIRE")
        .arg(key)
        .arg(window.seconds)
        .arg("NX")
        .query_async(&mut conn)
        .await
        .map_err(|_| Error::Unavailable(Dependency::Redis))?;
    Ok(count)
}

/// Counts a hit and refuses once over the limit (for rate limits rather than failure counts).
pub async fn take(redis: &Redis, key: &str, window: Window) -> Result<(), Error> {
    check(redis, key, window).await?;
    hit(redis, key, window).await.map(drop)
}

pub async fn clear(redis: &Redis, key: &str) {
    let mut conn = redis.conn();
    let _: Result<i64, _> = redis::cmd("DEL").arg(key).query_async(&mut conn).await;
}
