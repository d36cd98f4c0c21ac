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
use platform::{
    AppState, Error, config::RateLimitConfig, error::Limit, http::ClientAddr, id::TenantId,
};
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
                limit: Limit::ClientRequests,
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

/// A per-tenant Redis counter for the current minute (`what`: `tenant-quota`, `audit-budget`),
/// and the seconds left in the minute.
fn minute_key(state: &AppState, what: &str, tenant: TenantId) -> (String, u64) {
    let now = state.clock.now().timestamp();
    let key = state
        .redis
        .key(format_args!("{what}:{}:{}", tenant.0.simple(), now / 60));
    (key, u64::try_from(60 - now % 60).unwrap_or(60))
}

/// The per-tenant limits of a signed-in request, in one Redis round trip: counts it against
/// its tenant's request quota for the minute (`rate_limit.tenant_per_minute`), and refuses it
/// (429) when that quota is passed or the tenant's audit budget for the minute is spent
/// (`rate_limit.tenant_audit_records_per_minute`, see [`spend_audit_budget`]): a flood of
/// audited requests is stopped at its source, and nothing already recorded is dropped. 0
/// disables a limit. Without Redis neither is enforced (logged): they protect the shared
/// service, and a Redis outage must not stop every shop.
pub async fn admit(state: &AppState, tenant: TenantId) -> Result<(), Error> {
    let limits = &state.config.rate_limit;
    if limits.tenant_per_minute == 0 && limits.tenant_audit_records_per_minute == 0 {
        return Ok(());
    }
    let (quota_key, seconds_left) = minute_key(state, "tenant-quota", tenant);
    let (budget_key, _) = minute_key(state, "audit-budget", tenant);
    let answer: redis::RedisResult<(u64, Option<u64>)> = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg(&quota_key)
        .cmd("EXPIRE")
        .arg(&quota_key)
        .arg(120)
        .ignore()
        .cmd("GET")
        .arg(&budget_key)
        .query_async(&mut state.redis.conn())
        .await;
    let refused = |counter: &'static str, limit: Limit| {
        metrics::counter!(counter).increment(1);
        Err(Error::TooManyRequests {
            limit,
            retry_after: Duration::from_secs(seconds_left),
        })
    };
    match answer {
        Ok((requests, _))
            if limits.tenant_per_minute > 0 && requests > limits.tenant_per_minute =>
        {
            refused("tenant_quota_exceeded_total", Limit::TenantRequests)
        }
        Ok((_, Some(spent)))
            if limits.tenant_audit_records_per_minute > 0
                && spent >= limits.tenant_audit_records_per_minute =>
        {
            refused(
                "tenant_audit_budget_exceeded_total",
                Limit::TenantAuditRecords,
            )
        }
        Ok(_) => Ok(()),
        Err(err) => {
            tracing::warn!(error = %err, "tenant limits not enforced: redis unavailable");
            Ok(())
        }
    }
}

/// Counts the audit records a request committed against its tenant's budget for the minute.
pub async fn spend_audit_budget(state: &AppState, tenant: TenantId, records: u64) {
    if records == 0 || state.config.rate_limit.tenant_audit_records_per_minute == 0 {
        return;
    }
    let (key, _) = minute_key(state, "audit-budget", tenant);
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
