//! `AppState`: what every handler and worker is given. Cheap to clone (everything inside is
//! shared). No global statics: tests build as many independent states as they like.

use std::{sync::Arc, time::Duration};

use metrics_exporter_prometheus::PrometheusHandle;

use crate::{
    clients::{Kafka, Mailer, Redis, Vault},
    clock::{SharedClock, SystemClock},
    config::{Config, PiiProvider},
    db::Db,
    pii::{Breaker, CacheSettings, Keys, LocalKeys, PiiCipher, TransitKeys},
};

#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub redis: Redis,
    pub vault: Vault,
    pub kafka: Kafka,
    pub mailer: Mailer,
    pub pii: PiiCipher,
    pub clock: SharedClock,
    pub metrics: PrometheusHandle,
}

impl AppState {
    /// Builds every client from config. Connections are lazy: this succeeds while dependencies
    /// are down; `/health/ready` tells when they come up.
    pub fn connect(config: Config) -> anyhow::Result<Self> {
        let redis = Redis::connect(&config.redis)?;
        let vault = Vault::connect(&config.vault)?;
        let pii = pii_cipher(&config, &vault, &redis)?;
        Ok(Self {
            db: Db::connect(&config.database)?,
            redis,
            vault,
            pii,
            kafka: Kafka::connect(&config.kafka)?,
            mailer: Mailer::connect(&config.smtp)?,
            clock: Arc::new(SystemClock),
            metrics: crate::metrics::handle(),
            config: Arc::new(config),
        })
    }

    /// Work every process runs, whatever its modules: forgetting data keys shredded elsewhere.
    pub fn platform_workers(&self) -> Vec<crate::Worker> {
        self.pii.invalidation_worker().into_iter().collect()
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
    };
    Ok(PiiCipher::new(keys, cache, Some(redis.clone())))
}
