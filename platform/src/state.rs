//! `AppState`: what every handler and worker is given. Cheap to clone (everything inside is
//! shared). No global statics: tests build as many independent states as they like.

use std::{sync::Arc, time::Duration};

use metrics_exporter_prometheus::PrometheusHandle;

use crate::{
    authz::{NoSessions, Sessions},
    clients::{Kafka, Mailer, Redis, Vault},
    clock::{SharedClock, SystemClock},
    config::{Config, PiiProvider},
    db::Db,
    pii::{Breaker, CacheSettings, Keys, LocalKeys, PiiCipher, TransitKeys},
    privacy::SubjectDataProvider,
};

#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub redis: Redis,
    pub vault: Vault,
    pub kafka: Kafka,
    /// How this process's outbox relay is doing (readiness reports a relay stuck failing).
    pub relay: Arc<crate::events::relay::Progress>,
    pub mailer: Mailer,
    pub pii: PiiCipher,
    pub clock: SharedClock,
    pub metrics: PrometheusHandle,
    /// Token verification and session revocation, provided by `auth` (see [`crate::authz`]).
    pub sessions: Arc<dyn Sessions>,
    /// Every module's data on a person, for exports and erasures (see [`crate::privacy`]),
    /// registered by gateway.
    pub subjects: Arc<[&'static dyn SubjectDataProvider]>,
    /// Running jobs by name for the operator (see [`crate::jobs::JobControl`]); set by the
    /// server when it starts.
    pub jobs: Option<crate::jobs::JobControl>,
}

impl AppState {
    /// Builds every client from config. Connections are lazy: this succeeds while dependencies
    /// are down; `/health/ready` tells when they come up.
    pub fn connect(mut config: Config) -> anyhow::Result<Self> {
        // Request-reachable state carries no cross-tenant or owner credentials: the system pool
        // is built from config before this (gateway, for workers and operator commands only).
        config.database.system_url = secrecy::SecretString::from(String::new());
        config.database.migrate_url = None;
        // The verifier's read-only URL stays: a shop owner's own report (`GET
        // /api/v1/compliance/report`) opens it with every connection bound to their tenant.
        let redis = Redis::connect(&config.redis)?;
        let vault = Vault::connect(&config.vault)?;
        let pii = pii_cipher(&config, &vault, &redis)?;
        Ok(Self {
            db: Db::connect(&config.database)?,
            redis,
            vault,
            pii,
            kafka: Kafka::connect(&config.kafka)?,
            relay: Arc::default(),
            mailer: Mailer::connect(&config.smtp)?,
            clock: Arc::new(SystemClock),
            metrics: crate::metrics::handle(),
            sessions: Arc::new(NoSessions),
            subjects: Arc::new([]),
            jobs: None,
            config: Arc::new(config),
        })
    }

    /// Work every process runs, whatever its modules: forgetting data keys shredded elsewhere,
    /// keeping the Vault token alive, and metrics upkeep.
    pub fn platform_workers(&self) -> Vec<crate::Worker> {
        let mut workers: Vec<crate::Worker> = self.pii.invalidation_worker().into_iter().collect();
        let vault = self.vault.clone();
        workers.push(crate::Worker::new("vault-token-renewal", move |ctx| {
            let vault = vault.clone();
            async move { vault.keep_token_alive(ctx.shutdown).await }
        }));
        let outbox = &self.config.outbox;
        if outbox.relay {
            workers.push(crate::events::relay::worker(
                self.config.kafka.clone(),
                crate::events::relay::RelaySettings {
                    batch: outbox.batch_size,
                    retention: Duration::from_secs(outbox.retention_hours * 3600),
                    send_timeout: Duration::from_millis(self.config.kafka.delivery_timeout_ms),
                    rebuild_after: Duration::from_millis(self.config.kafka.rebuild_after_ms),
                },
                Arc::clone(&self.relay),
            ));
        }
        let metrics = self.metrics.clone();
        workers.push(crate::Worker::new("metrics-upkeep", move |ctx| {
            let metrics = metrics.clone();
            async move {
                // Without a scrape, histogram samples would pile up; upkeep drains them.
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tokio::select! {
                        () = ctx.shutdown.cancelled() => return Ok(()),
                        _ = tick.tick() => metrics.run_upkeep(),
                    }
                }
            }
        }));
        workers
    }

    pub fn with_sessions(mut self, sessions: Arc<dyn Sessions>) -> Self {
        self.sessions = sessions;
        self
    }

    pub fn with_subjects(mut self, subjects: Vec<&'static dyn SubjectDataProvider>) -> Self {
        self.subjects = subjects.into();
        self
    }

    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

fn pii_cipher(config: &Config, vault: &Vault, redis: &Redis) -> anyhow::Result<PiiCipher> {
    let pii = &config.pii;
    let keys = match pii.provider {
        PiiProvider::Vault => Keys::Vault(TransitKeys::new(
            vault.clone(),
            Breaker::new(
                pii.breaker_threshold,
                Duration::from_millis(pii.breaker_cooldown_ms),
            ),
        )),
        PiiProvider::Local => {
            let file = pii
                .local_key_path
                .as_deref()
                .ok_or_else(|| anyhow::anyhow!("pii.local_key_path is required"))?;
            Keys::Local(LocalKeys::from_file(file)?)
        }
    };
    let cache = CacheSettings {
        capacity: pii.cache_capacity,
        ttl: Duration::from_secs(pii.cache_ttl_secs),
        ready_keys: pii.ready_keys,
    };
    Ok(PiiCipher::new(keys, cache, Some(redis.clone())))
}
