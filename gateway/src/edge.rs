//! Rate limits at the edge.
//!
//! - Per client address, per process: tower-governor (GCRA). It protects each process from a
//!   flood; with N replicas a client gets N times the rate, which is why the limits that
//!   matter for abuse live in Redis instead (auth's failed-login and sign-up counters).
//! - Per tenant, across processes: a Redis fixed-window counter of signed-in requests per
//!   minute, so one merchant's runaway integration cannot starve the others. If Redis is down
//!   the quota is not enforced (the request is served); the failed-login limits, which guard
//!   accounts, refuse instead.

use std::{sync::Arc, time::Duration};

use axum::{body::Body, response::IntoResponse};
use platform::{AppState, Error, config::RateLimitConfig, http::ClientAddr, id::TenantId};
use tower_governor::{
    GovernorError, GovernorLayer, governor::GovernorConfigBuilder, key_extractor::KeyExtractor,
};

/// The governor's key: the client address resolved by `platform::http::client::resolve`
/// (the TCP peer, or the forwarded client behind a trusted proxy).
#[derive(Debug, Clone, Copy)]
pub struct ClientKey;

impl KeyExtractor for ClientKey {
    type Key = std::net::IpAddr;

    fn extract<T>(&self, req: &axum::http::Request<T>) -> Result<Self::Key, GovernorError> {
        req.extensions()
            .get::<ClientAddr>()
            .map(|client| client.0)
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

/// The per-address limiter; `None` for a zero rate or burst (which config validation refuses).
pub fn per_ip_limit(
    config: &RateLimitConfig,
) -> Option<GovernorLayer<ClientKey, governor::middleware::NoOpMiddleware, Body>> {
    let period = Duration::from_nanos(1_000_000_000 / config.per_ip_per_second.max(1));
    let governor = GovernorConfigBuilder::default()
        .key_extractor(ClientKey)
        .period(period)
        .burst_size(config.per_ip_burst)
        .finish()?;
    let limiter = Arc::downgrade(governor.limiter());
    every_minute_while(move || {
        let Some(limiter) = limiter.upgrade() else {
            return false;
        };
        limiter.retain_recent();
        limiter.shrink_to_fit();
        true
    });
    Some(GovernorLayer::new(Arc::new(governor)).error_handler(|err| {
        match err {
            GovernorError::TooManyRequests { wait_time, .. } => Error::TooManyRequests {
                retry_after: Duration::from_secs(wait_time),
            }
            .into_response(),
            GovernorError::UnableToExtractKey => {
                Error::bad_request("no_client_address", "The client address is unknown.")
                    .into_response()
            }
            GovernorError::Other { .. } => {
                Error::Internal(anyhow::anyhow!("rate limiter failed")).into_response()
            }
        }
    }))
}

/// The per-address limiter keeps a state per client address it has seen. Once a minute, drop
/// those whose limit has fully recovered (governor's `retain_recent`), so memory follows the
/// active clients, not every address ever seen. Ends when the limiter goes with its router.
fn every_minute_while(mut prune: impl FnMut() -> bool + Send + 'static) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.tick().await;
        loop {
            tick.tick().await;
            if !prune() {
                break;
            }
        }
    });
}

/// The tenant's audit budget key for the current minute, and the seconds left in it.
fn audit_budget_key(state: &AppState, tenant: TenantId) -> (String, u64) {
    let now = state.clock.now().timestamp();
    let key = format!("warung:audit-budget:{}:{}", tenant.0.simple(), now / 60);
    (key, u64::try_from(60 - now % 60).unwrap_or(60))
}

/// Refuses a signed-in request (429) while its tenant's audit budget for the minute is spent:
/// a flood of audited requests is stopped at its source, and nothing it already recorded is
/// dropped. Without Redis the budget is not enforced (logged), like the request quota.
pub async fn audit_budget(state: &AppState, tenant: TenantId) -> Result<(), Error> {
    let limit = state.config.rate_limit.tenant_audit_records_per_minute;
    if limit == 0 {
        return Ok(());
    }
    let (key, seconds_left) = audit_budget_key(state, tenant);
    let spent: redis::RedisResult<Option<u64>> =
        redis::AsyncCommands::get(&mut state.redis.conn(), &key).await;
    match spent {
        Ok(Some(spent)) if spent >= limit => {
            metrics::counter!("tenant_audit_budget_exceeded_total").increment(1);
            Err(Error::TooManyRequests {
                retry_after: Duration::from_secs(seconds_left),
            })
        }
        Ok(_) => Ok(()),
        Err(err) => {
            tracing::warn!(error = %err, "audit budget not enforced: redis unavailable");
            Ok(())
        }
    }
}

/// Counts the audit records a request committed against its tenant's budget for the minute.
pub async fn spend_audit_budget(state: &AppState, tenant: TenantId, records: u64) {
    if records == 0 || state.config.rate_limit.tenant_audit_records_per_minute == 0 {
        return;
    }
    let (key, _) = audit_budget_key(state, tenant);
    let spent: redis::RedisResult<(u64, i64)> = redis::pipe()
        .atomic()
        .cmd("INCRBY")
        .arg(&key)
        .arg(records)
        .cmd("EXPIRE")
        .arg(&key)
        .arg(120)
        .query_async(&mut state.redis.conn())
        .await;
    if let Err(err) = spent {
        tracing::warn!(error = %err, "audit budget not counted: redis unavailable");
    }
}

/// Counts a signed-in request against its tenant's quota for the current minute.
pub async fn tenant_quota(state: &AppState, tenant: TenantId) -> Result<(), Error> {
    let limit = state.config.rate_limit.tenant_per_minute;
    if limit == 0 {
        return Ok(());
    }
    let now = state.clock.now().timestamp();
    let minute = now / 60;
    let key = format!("warung:tenant-quota:{}:{minute}", tenant.0.simple());
    let mut conn = state.redis.conn();
    let counted: redis::RedisResult<(u64, i64)> = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg(&key)
        .cmd("EXPIRE")
        .arg(&key)
        .arg(120)
        .query_async(&mut conn)
        .await;
    match counted {
        Ok((count, _)) if count > limit => {
            metrics::counter!("tenant_quota_exceeded_total").increment(1);
            Err(Error::TooManyRequests {
                retry_after: Duration::from_secs(u64::try_from(60 - now % 60).unwrap_or(60)),
            })
        }
        Ok(_) => Ok(()),
        Err(err) => {
            tracing::warn!(error = %err, "tenant quota not enforced: redis unavailable");
            Ok(())
        }
    }
}
