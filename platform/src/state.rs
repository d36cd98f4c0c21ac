//! `AppState`: what every handler and worker is given. Cheap to clone (everything inside is
//! shared). No global statics: tests build as many independent states as they like.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::{
    clients::{Kafka, Mailer, Redis, Vault},
    clock::{SharedClock, SystemClock},
    config::Config,
    db::Db,
};

#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub redis: Redis,
    pub vault: Vault,
    pub kafka: Kafka,
    pub mailer: Mailer,
    pub clock: SharedClock,
    pub metrics: PrometheusHandle,
}

impl AppState {
    /// Builds every client from config. Connections are lazy: this succeeds while dependencies
    /// are down; `/health/ready` tells when they come up.
    pub fn connect(config: Config) -> anyhow::Result<Self> {
        Ok(Self {
            db: Db::connect(&config.database)?,
            redis: Redis::connect(&config.redis)?,
            vault: Vault::connect(&config.vault)?,
            kafka: Kafka::connect(&config.kafka)?,
            mailer: Mailer::connect(&config.smtp)?,
            clock: Arc::new(SystemClock),
            metrics: crate::metrics::handle(),
            config: Arc::new(config),
        })
    }

    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}
