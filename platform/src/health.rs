//! Dependency checks for `/health/ready`. Every dependency is checked concurrently with a
//! bounded timeout and reported by name; readiness fails only for the dependencies that the
//! modules enabled in this process need, so an `audit`-only process stays ready while SMTP is down.

use std::time::{Duration, Instant};

use serde::Serialize;
use utoipa::ToSchema;

use crate::{clients::VaultHealth, state::AppState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Dependency {
    Postgres,
    Redis,
    Vault,
    Kafka,
    Smtp,
}

impl Dependency {
    pub const ALL: [Dependency; 5] = [
        Self::Postgres,
        Self::Redis,
        Self::Vault,
        Self::Kafka,
        Self::Smtp,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Redis => "redis",
            Self::Vault => "vault",
            Self::Kafka => "kafka",
            Self::Smtp => "smtp",
        }
    }

    /// The problem `code` a request gets when this dependency is down.
    pub fn unavailable_code(self) -> &'static str {
        match self {
            Self::Postgres => "database_unavailable",
            Self::Redis => "cache_unavailable",
            Self::Vault => "key_service_unavailable",
            Self::Kafka => "event_broker_unavailable",
            Self::Smtp => "mail_service_unavailable",
        }
    }
}

impl std::fmt::Display for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = HealthStatus)]
pub enum Status {
    Up,
    Down,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DependencyReport {
    pub name: Dependency,
    pub status: Status,
    /// Whether a module enabled in this process needs it (only those decide readiness).
    pub required: bool,
    pub latency_ms: u64,
    /// Why it is down, in operator terms (`sealed`, `timeout`, `connection refused`); never secrets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Readiness {
    pub status: Status,
    /// Each dependency, for internal callers only (`health.internal_networks`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<DependencyReport>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.status == Status::Up
    }

    /// The answer for a caller outside the internal networks: the status alone.
    pub fn summary(&self) -> Self {
        Self {
            status: self.status,
            dependencies: Vec::new(),
        }
    }
}

/// The last readiness check and when it ran. Calls within `health.cache_ms` share it; a call
/// after that runs one check while the others wait for it (one check in flight per process).
#[derive(Debug, Default)]
pub struct ReadinessCache {
    last: tokio::sync::Mutex<Option<(Instant, Readiness)>>,
}

impl ReadinessCache {
    pub async fn check(&self, state: &AppState, required: &[Dependency]) -> Readiness {
        let fresh = Duration::from_millis(state.config.health.cache_ms);
        let mut last = self.last.lock().await;
        if let Some((at, readiness)) = last.as_ref()
            && at.elapsed() < fresh
        {
            return readiness.clone();
        }
        let readiness = check(state, required).await;
        *last = Some((Instant::now(), readiness.clone()));
        readiness
    }
}

/// Checks every dependency; `required` lists those the enabled modules need.
pub async fn check(state: &AppState, required: &[Dependency]) -> Readiness {
    let timeout = Duration::from_millis(state.config.health.check_timeout_ms);
    let checks = Dependency::ALL.map(|dep| async move {
        let started = Instant::now();
        let outcome = match tokio::time::timeout(timeout, probe(state, dep)).await {
            Ok(result) => result,
            Err(_) => Err("timeout".to_owned()),
        };
        DependencyReport {
            name: dep,
            status: if outcome.is_ok() {
                Status::Up
            } else {
                Status::Down
            },
            required: required.contains(&dep),
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            detail: outcome.err(),
        }
    });
    let dependencies = futures::future::join_all(checks).await;
    let ready = dependencies
        .iter()
        .all(|d| !d.required || d.status == Status::Up);
    for dep in dependencies.iter().filter(|d| d.status == Status::Down) {
        metrics::counter!("health_check_failures_total", "dependency" => dep.name.label())
            .increment(1);
    }
    Readiness {
        status: if ready { Status::Up } else { Status::Down },
        dependencies,
    }
}

async fn probe(state: &AppState, dep: Dependency) -> Result<(), String> {
    match dep {
        Dependency::Postgres => state.db.ping().await.map_err(|e| describe(&e)),
        Dependency::Redis => state.redis.ping().await.map_err(|e| describe(&e)),
        Dependency::Vault => match state.vault.health().await {
            Ok(VaultHealth::Ready) => Ok(()),
            Ok(VaultHealth::Sealed) => Err("sealed".to_owned()),
            Ok(VaultHealth::Uninitialized) => Err("not initialized".to_owned()),
            Err(e) => Err(describe(e.as_ref())),
        },
        Dependency::Kafka => {
            // A broker that answers is not enough: this process's relay must be getting events
            // through. A relay stuck past the bound is the more useful answer.
            let stuck = state.relay.failing_for();
            if stuck >= Duration::from_millis(state.config.kafka.rebuild_after_ms) {
                return Err(format!(
                    "outbox relay has sent nothing for {} s",
                    stuck.as_secs()
                ));
            }
            state.kafka.ping().await.map_err(|e| describe(e.as_ref()))
        }
        Dependency::Smtp => state.mailer.ping().await.map_err(|e| describe(e.as_ref())),
    }
}

/// Errors from drivers can embed connection strings; keep only a coarse, secret-free class.
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let text = err.to_string().to_ascii_lowercase();
    let class = [
        ("refused", "connection refused"),
        ("timed out", "timeout"),
        ("timeout", "timeout"),
        ("reset", "connection reset"),
        ("broken pipe", "connection reset"),
        ("authentication", "authentication failed"),
        ("password", "authentication failed"),
        ("permission", "permission denied"),
        ("forbidden", "permission denied"),
        ("dns", "name resolution failed"),
    ]
    .into_iter()
    .find(|(needle, _)| text.contains(needle))
    .map_or("unreachable", |(_, class)| class);
    class.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_never_echoes_the_message() {
        let err =
            std::io::Error::other("connect to postgres://u:hunter2@db failed: Connection refused");
        assert_eq!(describe(&err), "connection refused");
        let err = std::io::Error::other("weird failure with token s.abc");
        assert_eq!(describe(&err), "unreachable");
    }
}
