//! Typed configuration, layered: built-in defaults -> optional TOML file -> `WARUNG_*` environment
//! (`__` separates nesting levels) -> `WARUNG_*_FILE` (the variable names a file whose content is
//! the value, for mounted secrets). Unknown keys are rejected so a typo fails at start-up instead
//! of silently falling back to a default. Secrets are `SecretString`, so `Debug` cannot print them.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use figment::{
    Figment,
    providers::{Format, Serialized, Toml},
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

const ENV_PREFIX: &str = "WARUNG_";
const FILE_SUFFIX: &str = "_FILE";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    Development,
    Test,
    Production,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub environment: Environment,
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub vault: VaultConfig,
    pub kafka: KafkaConfig,
    pub smtp: SmtpConfig,
    pub telemetry: TelemetryConfig,
    pub health: HealthConfig,
    pub pii: PiiConfig,
    pub outbox: OutboxConfig,
    pub jobs: JobsConfig,
    pub audit: AuditConfig,
    pub auth: AuthConfig,
    pub notifications: NotificationsConfig,
    pub privacy: PrivacyConfig,
    pub rate_limit: RateLimitConfig,
    pub compliance: ComplianceConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address the HTTP server binds to.
    pub bind: SocketAddr,
    /// Base URL users reach Warung at; links in mails are built from it.
    pub public_base_url: Url,
    /// Origins allowed by CORS (exact match). Empty: no cross-origin browser access.
    pub cors_allowed_origins: Vec<String>,
    /// Upper bound on handling one request, in milliseconds.
    pub request_timeout_ms: u64,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// How long a graceful shutdown waits for in-flight requests and workers, in milliseconds.
    pub shutdown_grace_ms: u64,
    /// Proxies (CIDRs or addresses) whose forwarding header names the client. Empty: the TCP
    /// peer is the client, and forwarding headers are ignored.
    pub trusted_proxies: Vec<crate::http::client::ProxyRange>,
    /// The header the trusted proxies write: `x-forwarded-for` or `forwarded` (RFC 7239).
    pub client_address_header: crate::http::client::ForwardedHeader,
    /// When set, `/metrics` is served only on this address (an internal listener), and the
    /// public one answers 404 for it.
    #[serde(default)]
    pub metrics_bind: Option<SocketAddr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Connection as `warung_app`: request handlers; owns nothing, row-level security applies.
    #[serde(deserialize_with = "secret::required")]
    pub app_url: SecretString,
    /// Connection as `warung_system`: cross-tenant workers only (relay, sinks, retention).
    #[serde(deserialize_with = "secret::required")]
    pub system_url: SecretString,
    /// Connection as the schema owner, used only by `warung migrate`.
    #[serde(default, deserialize_with = "secret::optional")]
    pub migrate_url: Option<SecretString>,
    /// Connection as `warung_compliance` (SELECT only), used only by `warung compliance verify`.
    #[serde(default, deserialize_with = "secret::optional")]
    pub compliance_url: Option<SecretString>,
    pub max_connections: u32,
    pub system_max_connections: u32,
    pub acquire_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    #[serde(deserialize_with = "secret::required")]
    pub url: SecretString,
    pub timeout_ms: u64,
    /// Every key and channel Warung uses starts with `{key_prefix}:`, so two deployments (a
    /// person's instance and the test suite's) can share one Redis without meeting.
    pub key_prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    pub addr: Url,
    #[serde(deserialize_with = "secret::required")]
    pub token: SecretString,
    pub transit_mount: String,
    pub kek_name: String,
    /// Transit key (ed25519) that signs the digest of each dropped audit partition.
    pub digest_key_name: String,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` bootstrap list.
    pub brokers: String,
    pub client_id: String,
    pub timeout_ms: u64,
    /// How long the producer keeps trying to deliver a message before reporting it failed
    /// (librdkafka `message.timeout.ms`); the outbox relay then retries the batch.
    pub delivery_timeout_ms: u64,
    /// The outbox relay rebuilds its producer when every send has failed for this long (or at
    /// once on a fatal producer error: a broker that lost its state answers an unknown producer
    /// id for ever to the old client). Readiness reports Kafka down while the relay of this
    /// process has made no progress for this long.
    pub rebuild_after_ms: u64,
    /// Broker-side idempotent produce (`enable.idempotence`): each record written once even
    /// when a send is retried. On for Kafka. Off for Tansu 0.6 (the local stack sets it), whose
    /// idempotent-produce path panics and wedges the partition after a stall (measured with
    /// `scripts/lib/broker_survival.py`, see docs/ARCHITECTURE.md); the producer then keeps one
    /// request in flight so retries cannot reorder, and a retried record stored twice is
    /// absorbed by the consumers, which are idempotent on `event_id`.
    pub idempotence: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection: only for a local sink.
    None,
    /// Upgrade with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    #[serde(default, deserialize_with = "secret::optional")]
    pub password: Option<SecretString>,
    /// `From:` of every mail, e.g. `Warung <no-reply@warung.example>`.
    pub from: String,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    pub format: LogFormat,
    /// Used when `RUST_LOG` is not set.
    pub default_filter: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Each dependency check in `/health/ready` gives up after this long, in milliseconds.
    pub check_timeout_ms: u64,
    /// One check answers every `/health/ready` call for this long: a flood of anonymous calls
    /// does not become a flood of SMTP connections and broker metadata fetches.
    pub cache_ms: u64,
    /// Callers (client addresses, CIDRs) that see which dependency is down and why; everyone
    /// else gets the status alone.
    pub internal_networks: Vec<crate::http::client::ProxyRange>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiProvider {
    /// Vault/OpenBao Transit wraps the data keys (default).
    Vault,
    /// A local key file wraps them: unit tests and offline development only; refused in production.
    Local,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiiConfig {
    pub provider: PiiProvider,
    /// For `provider = "local"`: a file holding 32 base64-encoded bytes.
    pub local_key_path: Option<PathBuf>,
    /// Plaintext data keys stay cached at most this long, in seconds (also the bound on how
    /// long a peer that missed a shred broadcast can still open the subject's data).
    pub cache_ttl_secs: u64,
    pub cache_capacity: u64,
    /// Data keys made ahead per active tenant, so a new customer or staff member does not wait
    /// for a Transit round trip (0 turns it off).
    pub ready_keys: usize,
    /// Consecutive key-service failures that open the circuit breaker.
    pub breaker_threshold: u32,
    /// How long the open breaker fails calls at once before one trial call, in milliseconds.
    pub breaker_cooldown_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// Run the outbox relay in this process (relays in several processes share the work).
    pub relay: bool,
    /// Rows claimed and published per round.
    pub batch_size: i64,
    /// Published rows are deleted after this many hours.
    pub retention_hours: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Attempts per mail before it is marked dead (a permanent SMTP refusal ends it at once).
    /// The default (30, with the default delays) keeps trying for about 2 to 3.5 hours.
    pub max_attempts: i32,
    /// First retry delay; each further retry doubles it, up to `backoff_max_ms`, waiting a
    /// random point in the upper half of that delay ("equal jitter").
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// Mails claimed per sending round.
    pub batch_size: i64,
    /// Mails of a round in flight at once (each holds a database connection and an SMTP
    /// connection from the pool while it is prepared and sent).
    pub concurrency: usize,
    /// How long a claimed mail stays with its sender before another may take it over (a
    /// sender that died mid-send).
    pub lease_secs: u64,
    /// How often the sender looks for due mail when nothing woke it.
    pub poll_ms: u64,
    /// Mails one shop may send in any hour; more wait (held, not failed) until the hour
    /// frees up. 0: no limit.
    pub tenant_per_hour: i64,
    /// Mails one person (a staff member or a customer of a shop) may be sent in any 24 hours;
    /// more wait. Mail answering their own data-rights requests is never held. 0: no limit.
    pub recipient_per_day: i64,
    /// How long a held mail waits before the sender looks at it again.
    pub held_recheck_secs: u64,
    /// A mail held longer than this is cancelled (`held_too_long`): a shop whose owner never
    /// verifies does not keep a growing queue.
    pub held_max_hours: i64,
    /// At most one consent-change confirmation per person in this many seconds; changes in
    /// between are told in the next one (it shows the choices as they stand when it is sent).
    pub consent_change_every_secs: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// How long the identity-check link of a data-subject request works.
    pub verification_ttl_hours: u64,
    /// How long an export's download link works (it works once).
    pub export_ttl_hours: u64,
    /// Access and export requests one person may file per 24 hours (each builds a bundle).
    pub exports_per_subject_per_day: i64,
    /// An erasure waits for its farewell mail (SMTP or Vault down) until this many hours before
    /// the request is due, then goes ahead without it.
    pub farewell_deadline_margin_hours: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    /// Run the cron schedules of this process's modules (jobs can always be run by hand with
    /// `warung jobs run`).
    pub scheduler: bool,
    /// A run's Redis lock expires this long after its last renewal (renewed every third of it).
    pub lock_ttl_ms: u64,
    /// Rows a retention job removes per transaction (short transactions, no long locks).
    pub retention_batch_size: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Monthly partitions kept ahead of the current month.
    pub partitions_ahead_months: u32,
    /// Whole partitions older than this many months are dropped, after a signed digest of their
    /// contents is recorded. At least 12; the default is 7 years (see docs/COMPLIANCE.md).
    pub retention_months: u32,
    /// The background verification (`audit.verify`) walks each chain from its first link this
    /// often; in between it verifies only what was stored since its checkpoint.
    pub full_verify_every_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `iss` of every access token, and the only issuer accepted.
    pub issuer: String,
    /// `aud` of every access token, and the only audience accepted.
    pub audience: String,
    /// Ed25519 private key (PKCS#8 PEM, `openssl genpkey -algorithm ed25519`) that signs access
    /// tokens. Mount it as a file: `WARUNG_AUTH__SIGNING_KEY_FILE`.
    #[serde(deserialize_with = "secret::required")]
    pub signing_key: SecretString,
    /// Public keys (PEM) of retired signing keys, still accepted and published in the JWKS
    /// until the tokens they signed have expired.
    pub previous_public_keys: Vec<String>,
    /// Lifetime of an access token, in seconds.
    pub access_ttl_secs: u64,
    /// A session (its refresh token family) ends this many days after login.
    pub session_ttl_days: u64,
    /// How long a process trusts a session check cached in Redis, in milliseconds. Revocation
    /// deletes the cached entry, so this only bounds a race with a concurrent request.
    pub session_cache_ms: u64,
    /// Password hashes computed at once (each takes ~19 MiB and one core for tens of ms).
    pub hash_concurrency: usize,
    /// Failed logins allowed per account, and per client address, within the window.
    pub max_failures_per_account: u32,
    pub max_failures_per_ip: u32,
    pub failure_window_secs: u64,
    /// Lifetimes of single-use mailed tokens.
    pub email_verification_ttl_hours: u64,
    pub password_reset_ttl_minutes: u64,
    pub invitation_ttl_hours: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Per client address, per process (tower-governor, at the edge): requests replenished per
    /// second, and the burst allowed. Flood protection; it is per process, so N replicas allow N
    /// times this.
    pub per_ip_per_second: u64,
    pub per_ip_burst: u32,
    /// Per client address, across all processes (Redis): sign-ups, password-reset requests and
    /// other unauthenticated writes allowed per hour.
    pub public_writes_per_ip_per_hour: u64,
    /// Per tenant, across all processes (Redis): requests per minute by signed-in staff.
    /// 0 disables the quota.
    pub tenant_per_minute: u64,
    /// Per tenant, across all processes (Redis): audit records its signed-in requests may add
    /// to the shared audit pipeline per minute. Once spent, the tenant's requests answer 429
    /// until the minute ends; records are never dropped. 0 disables the budget.
    pub tenant_audit_records_per_minute: u64,
}

/// What `warung compliance verify` holds the deployment to (docs/COMPLIANCE.md, Verification).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplianceConfig {
    /// The KEK's newest version must be younger than this many days.
    pub kek_rotation_days: u32,
    /// How long database backups are kept. A KEK version superseded longer ago than this must no
    /// longer decrypt (min_decryption_version raised), so a backup taken before a shred stops
    /// being openable once every backup of that time is gone.
    pub backup_retention_days: u32,
    /// The oldest unpublished outbox row may be at most this old.
    pub outbox_max_age_secs: u64,
    /// Whether this deployment keeps `/metrics` and readiness details off the public address;
    /// when true, the verifier asks the public address for them and fails if it answers.
    pub metrics_private: bool,
    /// The address users reach (default: `http.public_base_url`).
    pub public_url: Option<Url>,
    /// Sealed values opened per column and tenant to prove their binding.
    pub sample_size: i64,
}

/// Built-in defaults: every key that has a sensible value without knowing the deployment.
/// Secrets (database URLs, Redis URL, Vault token) have none on purpose.
fn defaults() -> serde_json::Value {
    serde_json::json!({
        "environment": "development",
        "http": {
            "bind": "127.0.0.1:8080",
            "public_base_url": "http://127.0.0.1:8080",
            "cors_allowed_origins": [],
            "request_timeout_ms": 30_000,
            "body_limit_bytes": 1_048_576,
            "shutdown_grace_ms": 20_000,
            "trusted_proxies": [],
            "client_address_header": "x-forwarded-for",
        },
        "database": {
            "max_connections": 20,
            "system_max_connections": 5,
            "acquire_timeout_ms": 5_000,
        },
        "redis": { "timeout_ms": 2_000, "key_prefix": "warung" },
        "vault": {
            "addr": "http://127.0.0.1:8200",
            "transit_mount": "transit",
            "kek_name": "warung-kek",
            "digest_key_name": "warung-audit-digest",
            "timeout_ms": 2_000,
        },
        "kafka": { "brokers": "127.0.0.1:9092", "client_id": "warung", "timeout_ms": 5_000, "delivery_timeout_ms": 30_000, "rebuild_after_ms": 60_000, "idempotence": true },
        "smtp": {
            "host": "127.0.0.1",
            "port": 1025,
            "tls": "none",
            "from": "Warung <no-reply@warung.local>",
            "timeout_ms": 10_000,
        },
        "telemetry": { "format": "pretty", "default_filter": "info" },
        "health": {
            "check_timeout_ms": 2_000,
            "cache_ms": 2_000,
            "internal_networks": ["127.0.0.0/8", "::1"],
        },
        "pii": {
            "provider": "vault",
            "cache_ttl_secs": 60,
            "cache_capacity": 100_000,
            "ready_keys": 16,
            "breaker_threshold": 5,
            "breaker_cooldown_ms": 5_000,
        },
        "outbox": {
            "relay": true,
            "batch_size": 500,
            "retention_hours": 72,
        },
        "jobs": { "scheduler": true, "lock_ttl_ms": 30_000, "retention_batch_size": 500 },
        "audit": {
            "partitions_ahead_months": 3,
            "retention_months": 84,
            "full_verify_every_days": 7
        },
        "auth": {
            "issuer": "warung",
            "audience": "warung-api",
            "previous_public_keys": [],
            "access_ttl_secs": 900,
            "session_ttl_days": 30,
            "session_cache_ms": 10_000,
            "hash_concurrency": 2,
            "max_failures_per_account": 5,
            "max_failures_per_ip": 50,
            "failure_window_secs": 900,
            "email_verification_ttl_hours": 48,
            "password_reset_ttl_minutes": 30,
            "invitation_ttl_hours": 72,
        },
        "notifications": {
            "max_attempts": 30,
            "backoff_base_ms": 2_000,
            "backoff_max_ms": 600_000,
            "batch_size": 20,
            "concurrency": 4,
            "lease_secs": 120,
            "poll_ms": 1_000,
            "tenant_per_hour": 1_000,
            "recipient_per_day": 20,
            "held_recheck_secs": 300,
            "held_max_hours": 168,
            "consent_change_every_secs": 3_600,
        },
        "privacy": {
            "verification_ttl_hours": 48,
            "export_ttl_hours": 168,
            "exports_per_subject_per_day": 3,
            "farewell_deadline_margin_hours": 24,
        },
        "rate_limit": {
            "per_ip_per_second": 20,
            "per_ip_burst": 100,
            "public_writes_per_ip_per_hour": 30,
            "tenant_per_minute": 6_000,
            "tenant_audit_records_per_minute": 12_000,
        },
        "compliance": {
            "kek_rotation_days": 365,
            "backup_retention_days": 35,
            "outbox_max_age_secs": 300,
            "metrics_private": false,
            "sample_size": 20,
        },
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration: cannot read {var} ({path}): {source}")]
    SecretFile {
        var: String,
        path: String,
        source: std::io::Error,
    },
    #[error("configuration is invalid:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl Config {
    /// Loads from the process environment and an optional TOML file.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// Loads from the given environment variables (tests pass their own).
    pub fn load_from(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();

        let mut figment = Figment::from(Serialized::defaults(defaults()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        for (key, value) in &vars {
            if key.ends_with(FILE_SUFFIX) {
                continue;
            }
            figment = figment.merge(Serialized::default(
                &env_key_path(key),
                parse_env_value(value),
            ));
        }
        for (key, path) in &vars {
            let Some(stripped) = key.strip_suffix(FILE_SUFFIX) else {
                continue;
            };
            let content =
                std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
                    var: key.clone(),
                    path: path.clone(),
                    source,
                })?;
            let value = content.trim_end_matches(['\n', '\r']).to_owned();
            figment = figment.merge(Serialized::default(&env_key_path(stripped), value));
        }
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, msg: &str| {
            if !ok {
                problems.push(msg.to_owned());
            }
        };
        check(
            self.http.request_timeout_ms > 0,
            "http.request_timeout_ms must be > 0",
        );
        check(
            self.http.body_limit_bytes >= 1024,
            "http.body_limit_bytes must be >= 1024",
        );
        check(
            self.database.max_connections > 0,
            "database.max_connections must be > 0",
        );
        check(
            self.database.system_max_connections > 0,
            "database.system_max_connections must be > 0",
        );
        for (name, url) in [
            ("database.app_url", &self.database.app_url),
            ("database.system_url", &self.database.system_url),
        ] {
            check(
                url.expose_secret().starts_with("postgres://")
                    || url.expose_secret().starts_with("postgresql://"),
                &format!("{name} must be a postgres:// URL"),
            );
        }
        check(
            self.redis.url.expose_secret().starts_with("redis://")
                || self.redis.url.expose_secret().starts_with("rediss://"),
            "redis.url must be a redis:// or rediss:// URL",
        );
        check(
            !self.redis.key_prefix.is_empty()
                && self
                    .redis
                    .key_prefix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'),
            "redis.key_prefix must be letters, digits, `-`, `_` or `.`",
        );
        check(
            !self.vault.token.expose_secret().is_empty(),
            "vault.token must not be empty",
        );
        check(
            !self.kafka.brokers.trim().is_empty(),
            "kafka.brokers must not be empty",
        );
        check(
            self.smtp.from.parse::<lettre::message::Mailbox>().is_ok(),
            "smtp.from must be a mailbox like `Warung <no-reply@example.com>`",
        );
        check(
            self.smtp.username.is_some() == self.smtp.password.is_some(),
            "smtp.username and smtp.password go together",
        );
        for origin in &self.http.cors_allowed_origins {
            check(
                origin.parse::<http::HeaderValue>().is_ok() && Url::parse(origin).is_ok(),
                &format!("http.cors_allowed_origins: `{origin}` is not an origin URL"),
            );
        }
        check(
            self.pii.cache_ttl_secs > 0,
            "pii.cache_ttl_secs must be > 0",
        );
        check(
            (1..=10_000).contains(&self.outbox.batch_size),
            "outbox.batch_size must be between 1 and 10000",
        );
        check(
            self.jobs.lock_ttl_ms >= 1_000 && self.jobs.retention_batch_size > 0,
            "jobs.lock_ttl_ms must be >= 1000 and jobs.retention_batch_size > 0",
        );
        check(
            self.audit.retention_months >= 12,
            "audit.retention_months must be >= 12",
        );
        check(
            self.kafka.rebuild_after_ms >= 1_000,
            "kafka.rebuild_after_ms must be >= 1000",
        );
        check(
            (1..=90).contains(&self.audit.full_verify_every_days),
            "audit.full_verify_every_days must be between 1 and 90",
        );
        check(
            (1..=24).contains(&self.audit.partitions_ahead_months),
            "audit.partitions_ahead_months must be between 1 and 24",
        );
        check(
            (60..=3600).contains(&self.auth.access_ttl_secs),
            "auth.access_ttl_secs must be between 60 and 3600",
        );
        check(
            self.auth.hash_concurrency > 0,
            "auth.hash_concurrency must be > 0",
        );
        check(
            self.auth.max_failures_per_account > 0 && self.auth.max_failures_per_ip > 0,
            "auth.max_failures_per_account and auth.max_failures_per_ip must be > 0",
        );
        let mail = &self.notifications;
        check(
            mail.max_attempts > 0
                && mail.batch_size > 0
                && mail.concurrency > 0
                && mail.lease_secs > 0
                && mail.poll_ms > 0
                && mail.backoff_base_ms > 0
                && mail.backoff_base_ms <= mail.backoff_max_ms,
            "notifications: max_attempts, batch_size, concurrency, lease_secs, poll_ms must be > 0 and 0 < backoff_base_ms <= backoff_max_ms",
        );
        // One send is several SMTP commands, each bounded by smtp.timeout_ms: a lease shorter
        // than a slow send would let a second sender take the mail over mid-send.
        check(
            mail.lease_secs.saturating_mul(1000) >= self.smtp.timeout_ms.saturating_mul(10),
            "notifications.lease_secs must be at least 10 × smtp.timeout_ms",
        );
        check(
            mail.tenant_per_hour >= 0
                && mail.recipient_per_day >= 0
                && mail.held_recheck_secs > 0
                && mail.held_max_hours > 0
                && mail.consent_change_every_secs >= 0,
            "notifications: tenant_per_hour, recipient_per_day, consent_change_every_secs must be >= 0; held_recheck_secs, held_max_hours > 0",
        );
        let privacy = &self.privacy;
        check(
            privacy.verification_ttl_hours > 0
                && privacy.export_ttl_hours > 0
                && privacy.exports_per_subject_per_day > 0,
            "privacy: verification_ttl_hours, export_ttl_hours, exports_per_subject_per_day must be > 0",
        );
        check(
            self.rate_limit.per_ip_per_second > 0
                && self.rate_limit.per_ip_burst > 0
                && self.rate_limit.public_writes_per_ip_per_hour > 0,
            "rate_limit.per_ip_per_second, per_ip_burst and public_writes_per_ip_per_hour must be > 0",
        );
        check(
            self.pii.provider != PiiProvider::Local || self.pii.local_key_path.is_some(),
            "pii.provider = local requires pii.local_key_path",
        );
        if self.environment == Environment::Production {
            check(
                self.pii.provider == PiiProvider::Vault,
                "production requires pii.provider = vault",
            );
            check(
                self.smtp.tls != SmtpTls::None,
                "production requires smtp.tls = starttls or tls",
            );
            check(
                self.vault.addr.scheme() == "https",
                "production requires vault.addr over https",
            );
            check(
                self.http.public_base_url.scheme() == "https",
                "production requires http.public_base_url over https",
            );
            check(
                self.telemetry.format == LogFormat::Json,
                "production requires telemetry.format = json",
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.http.request_timeout_ms)
    }
}

/// Secrets deserialize from any scalar: an env value like `12345678` parses as a number, and a
/// type error would otherwise quote the secret in the start-up error.
mod secret {
    use secrecy::SecretString;
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Unsigned(u64),
        Signed(i64),
        Float(f64),
        Bool(bool),
    }

    impl From<Scalar> for SecretString {
        fn from(value: Scalar) -> Self {
            SecretString::from(match value {
                Scalar::Text(text) => text,
                Scalar::Unsigned(n) => n.to_string(),
                Scalar::Signed(n) => n.to_string(),
                Scalar::Float(n) => n.to_string(),
                Scalar::Bool(b) => b.to_string(),
            })
        }
    }

    pub fn required<'de, D: Deserializer<'de>>(de: D) -> Result<SecretString, D::Error> {
        Scalar::deserialize(de).map(SecretString::from)
    }

    pub fn optional<'de, D: Deserializer<'de>>(de: D) -> Result<Option<SecretString>, D::Error> {
        Option::<Scalar>::deserialize(de).map(|v| v.map(SecretString::from))
    }
}

/// `WARUNG_DATABASE__APP_URL` -> `database.app_url`.
fn env_key_path(var: &str) -> String {
    var.trim_start_matches(ENV_PREFIX)
        .to_ascii_lowercase()
        .replace("__", ".")
}

/// Environment values are strings; lists and numbers are written the TOML way
/// (`WARUNG_HTTP__CORS_ALLOWED_ORIGINS=["https://a.example"]`, `WARUNG_HTTP__BODY_LIMIT_BYTES=2048`).
fn parse_env_value(raw: &str) -> figment::value::Value {
    raw.parse::<figment::value::Value>()
        .unwrap_or_else(|_| figment::value::Value::from(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base_env() -> Vec<(String, String)> {
        [
            (
                "WARUNG_DATABASE__APP_URL",
                "postgres://warung_app:pw@127.0.0.1/warung",
            ),
            (
                "WARUNG_DATABASE__SYSTEM_URL",
                "postgres://warung_system:pw@127.0.0.1/warung",
            ),
            ("WARUNG_REDIS__URL", "redis://127.0.0.1:6379"),
            ("WARUNG_VAULT__TOKEN", "s.very-secret-token"),
            ("WARUNG_AUTH__SIGNING_KEY", "-----BEGIN PRIVATE KEY-----"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn with(mut env: Vec<(String, String)>, key: &str, value: &str) -> Vec<(String, String)> {
        env.push((key.to_owned(), value.to_owned()));
        env
    }

    #[test]
    fn env_overrides_defaults_with_nesting() {
        let env = with(base_env(), "WARUNG_HTTP__BIND", "0.0.0.0:9999");
        let env = with(env, "WARUNG_HTTP__BODY_LIMIT_BYTES", "2048");
        let config = Config::load_from(None, env).unwrap();
        assert_eq!(config.http.bind.port(), 9999);
        assert_eq!(config.http.body_limit_bytes, 2048);
        assert_eq!(config.vault.kek_name, "warung-kek");
    }

    #[test]
    fn toml_file_sits_between_defaults_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("warung.toml");
        std::fs::write(
            &file,
            "[http]\nbind = \"127.0.0.1:7000\"\nrequest_timeout_ms = 5\n",
        )
        .unwrap();
        let env = with(base_env(), "WARUNG_HTTP__REQUEST_TIMEOUT_MS", "7");
        let config = Config::load_from(Some(&file), env).unwrap();
        assert_eq!(config.http.bind.port(), 7000, "file beats default");
        assert_eq!(config.http.request_timeout_ms, 7, "env beats file");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let env = with(base_env(), "WARUNG_DATABSE__APP_URL", "postgres://x");
        let err = Config::load_from(None, env).unwrap_err().to_string();
        assert!(err.contains("databse"), "{err}");

        let env = with(base_env(), "WARUNG_HTTP__BINDD", "x");
        assert!(Config::load_from(None, env).is_err());
    }

    #[test]
    fn missing_secret_is_named() {
        let env: Vec<_> = base_env()
            .into_iter()
            .filter(|(k, _)| k != "WARUNG_VAULT__TOKEN")
            .collect();
        let err = Config::load_from(None, env).unwrap_err().to_string();
        assert!(err.contains("token"), "{err}");
    }

    #[test]
    fn file_form_reads_secret_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s.from-file\n").unwrap();
        let env: Vec<_> = base_env()
            .into_iter()
            .filter(|(k, _)| k != "WARUNG_VAULT__TOKEN")
            .collect();
        let env = with(env, "WARUNG_VAULT__TOKEN_FILE", path.to_str().unwrap());
        let config = Config::load_from(None, env).unwrap();
        assert_eq!(config.vault.token.expose_secret(), "s.from-file");

        let env = with(
            base_env(),
            "WARUNG_REDIS__URL_FILE",
            "/nonexistent/warung-secret",
        );
        let err = Config::load_from(None, env).unwrap_err().to_string();
        assert!(err.contains("WARUNG_REDIS__URL_FILE"), "{err}");
    }

    #[test]
    fn numeric_secrets_load_and_are_never_echoed() {
        let env = with(base_env(), "WARUNG_SMTP__USERNAME", "mailer");
        let env = with(env, "WARUNG_SMTP__PASSWORD", "12345678");
        let config = Config::load_from(None, env).unwrap();
        assert_eq!(config.smtp.password.unwrap().expose_secret(), "12345678");

        let env: Vec<_> = base_env()
            .into_iter()
            .filter(|(k, _)| k != "WARUNG_VAULT__TOKEN")
            .collect();
        let env = with(env, "WARUNG_VAULT__TOKEN", "[98765432]");
        let err = Config::load_from(None, env).unwrap_err().to_string();
        assert!(!err.contains("98765432"), "{err}");
    }

    #[test]
    fn debug_never_prints_secrets() {
        let config = Config::load_from(None, base_env()).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("very-secret-token"), "{debug}");
        assert!(!debug.contains("warung_app:pw"), "{debug}");
    }

    #[test]
    fn validation_reports_every_problem() {
        let env = with(base_env(), "WARUNG_HTTP__REQUEST_TIMEOUT_MS", "0");
        let env = with(env, "WARUNG_REDIS__URL", "http://nope");
        let env = with(env, "WARUNG_REDIS__KEY_PREFIX", "two words");
        let err = Config::load_from(None, env).unwrap_err().to_string();
        assert!(err.contains("request_timeout_ms"), "{err}");
        assert!(err.contains("redis.url"), "{err}");
        assert!(err.contains("redis.key_prefix"), "{err}");
    }

    #[test]
    fn production_refuses_plaintext_transports() {
        let env = with(base_env(), "WARUNG_ENVIRONMENT", "production");
        let err = Config::load_from(None, env).unwrap_err().to_string();
        assert!(err.contains("smtp.tls"), "{err}");
        assert!(err.contains("vault.addr"), "{err}");

        let env = with(base_env(), "WARUNG_ENVIRONMENT", "production");
        let env = with(env, "WARUNG_PII__PROVIDER", "local");
        let env = with(env, "WARUNG_PII__LOCAL_KEY_PATH", "/etc/warung/kek");
        let err = Config::load_from(None, env).unwrap_err().to_string();
        assert!(err.contains("pii.provider = vault"), "{err}");
    }

    #[test]
    fn list_values_parse_from_env() {
        let env = with(
            base_env(),
            "WARUNG_HTTP__CORS_ALLOWED_ORIGINS",
            r#"["https://portal.example"]"#,
        );
        let config = Config::load_from(None, env).unwrap();
        assert_eq!(
            config.http.cors_allowed_origins,
            vec!["https://portal.example"]
        );
    }

    #[test]
    fn trusted_proxies_parse_and_a_bad_one_stops_start_up() {
        let env = with(
            base_env(),
            "WARUNG_HTTP__TRUSTED_PROXIES",
            r#"["10.0.0.0/8", "192.168.1.7"]"#,
        );
        let env = with(env, "WARUNG_HTTP__CLIENT_ADDRESS_HEADER", "forwarded");
        let config = Config::load_from(None, env).unwrap();
        assert_eq!(config.http.trusted_proxies.len(), 2);
        assert_eq!(
            config.http.client_address_header,
            crate::http::client::ForwardedHeader::Forwarded
        );

        let env = with(base_env(), "WARUNG_HTTP__TRUSTED_PROXIES", r#"["ingress"]"#);
        let err = Config::load_from(None, env).unwrap_err().to_string();
        assert!(err.contains("not an address or a CIDR range"), "{err}");
    }
}
