//! Connections to the infrastructure Warung depends on, built lazily from config so a process
//! starts (and reports not-ready) while a dependency is down, rather than crash-looping.

use std::{sync::Arc, time::Duration};

use lettre::{AsyncSmtpTransport, Tokio1Executor, transport::smtp::authentication::Credentials};
use rdkafka::{
    ClientConfig,
    producer::{FutureProducer, Producer},
};
use secrecy::ExposeSecret;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};

use crate::config::{KafkaConfig, RedisConfig, SmtpConfig, SmtpTls, VaultConfig};

/// Redis, multiplexed and self-reconnecting.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    manager: redis::aio::ConnectionManager,
    prefix: Arc<str>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").finish_non_exhaustive()
    }
}

impl Redis {
    pub fn connect(config: &RedisConfig) -> redis::RedisResult<Self> {
        let timeout = Duration::from_millis(config.timeout_ms);
        let client = redis::Client::open(config.url.expose_secret())?;
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let manager =
            redis::aio::ConnectionManager::new_lazy_with_config(client.clone(), manager_config)?;
        Ok(Self {
            client,
            manager,
            prefix: config.key_prefix.as_str().into(),
        })
    }

    /// This deployment's name for a key or channel: `{redis.key_prefix}:{name}`.
    pub fn key(&self, name: impl std::fmt::Display) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// A cheap handle for issuing commands (clones share one multiplexed connection).
    pub fn conn(&self) -> redis::aio::ConnectionManager {
        self.manager.clone()
    }

    /// For dedicated connections (pub/sub).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    pub async fn ping(&self) -> redis::RedisResult<()> {
        let mut conn = self.conn();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
    }
}

/// The Vault (OpenBao) API client.
#[derive(Clone)]
pub struct Vault {
    client: Arc<VaultClient>,
    http: reqwest::Client,
    addr: url::Url,
    pub transit_mount: String,
    pub kek_name: String,
    pub digest_key_name: String,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("transit_mount", &self.transit_mount)
            .field("kek_name", &self.kek_name)
            .finish_non_exhaustive()
    }
}

/// What `/v1/sys/health` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VaultHealth {
    Ready,
    Sealed,
    Uninitialized,
}

impl Vault {
    pub fn connect(config: &VaultConfig) -> anyhow::Result<Self> {
        let settings = VaultClientSettingsBuilder::default()
            .address(config.addr.as_str())
            .token(config.token.expose_secret())
            .timeout(Some(Duration::from_millis(config.timeout_ms)))
            .build()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()?;
        Ok(Self {
            client: Arc::new(VaultClient::new(settings)?),
            http,
            addr: config.addr.clone(),
            transit_mount: config.transit_mount.clone(),
            kek_name: config.kek_name.clone(),
            digest_key_name: config.digest_key_name.clone(),
        })
    }

    pub fn client(&self) -> &VaultClient {
        &self.client
    }

    /// Renews our (periodic) token every hour so it never expires under a running process.
    /// A token that cannot be renewed (root, or not periodic) is left alone after one notice.
    pub async fn keep_token_alive(
        &self,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<()> {
        loop {
            match vaultrs::token::renew_self(self.client.as_ref(), None).await {
                Ok(_) => {
                    metrics::counter!("vault_token_renewals_total", "outcome" => "ok").increment(1)
                }
                Err(vaultrs::error::ClientError::APIError { code: 400, .. }) => {
                    tracing::info!("vault token is not renewable; not renewing it");
                    shutdown.cancelled().await;
                    return Ok(());
                }
                Err(err) => {
                    metrics::counter!("vault_token_renewals_total", "outcome" => "failed")
                        .increment(1);
                    return Err(anyhow::anyhow!("vault token renewal failed: {err}"));
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(Duration::from_secs(3600)) => {}
            }
        }
    }

    /// `GET /v1/sys/health` (unauthenticated). Read by hand: vaultrs' typed response requires
    /// fields OpenBao does not send. The status code carries the answer: 200 active, 429 standby
    /// (still serves), 501 not initialised, 503 sealed.
    pub async fn health(&self) -> anyhow::Result<VaultHealth> {
        let url = self.addr.join("v1/sys/health?standbyok=true")?;
        let response = self.http.get(url).send().await?;
        match response.status().as_u16() {
            200 | 429 => Ok(VaultHealth::Ready),
            501 => Ok(VaultHealth::Uninitialized),
            503 => Ok(VaultHealth::Sealed),
            other => anyhow::bail!("unexpected sys/health status {other}"),
        }
    }

    /// Signs `document` with the audit digest key (Transit `sign`, ed25519): `vault:vN:...`.
    pub async fn sign_digest(&self, document: &[u8]) -> anyhow::Result<String> {
        use base64::Engine;
        let input = base64::engine::general_purpose::STANDARD.encode(document);
        let signed = vaultrs::transit::data::sign(
            self.client.as_ref(),
            &self.transit_mount,
            &self.digest_key_name,
            &input,
            None,
        )
        .await?;
        Ok(signed.signature)
    }

    /// Checks a signature made by [`Vault::sign_digest`].
    pub async fn verify_digest(&self, document: &[u8], signature: &str) -> anyhow::Result<bool> {
        use base64::Engine;
        let input = base64::engine::general_purpose::STANDARD.encode(document);
        let mut options = vaultrs::api::transit::requests::VerifySignedDataRequest::builder();
        options.signature(signature);
        let verified = vaultrs::transit::data::verify(
            self.client.as_ref(),
            &self.transit_mount,
            &self.digest_key_name,
            &input,
            Some(&mut options),
        )
        .await?;
        Ok(verified.valid)
    }
}

/// The Kafka producer: `acks=all`; idempotent (a retried send is never duplicated by the broker)
/// unless `kafka.idempotence` is off for a broker that mishandles it (then one request in flight).
#[derive(Clone)]
pub struct Kafka {
    producer: FutureProducer,
    timeout: Duration,
}

impl std::fmt::Debug for Kafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kafka").finish_non_exhaustive()
    }
}

impl Kafka {
    pub fn connect(config: &KafkaConfig) -> anyhow::Result<Self> {
        let mut client = Self::client_config(config);
        if config.idempotence {
            client.set("enable.idempotence", "true");
        } else {
            // One request in flight: a retry cannot overtake the request before it.
            client
                .set("enable.idempotence", "false")
                .set("max.in.flight.requests.per.connection", "1");
        }
        let producer: FutureProducer = client
            .set("acks", "all")
            .set("message.timeout.ms", config.delivery_timeout_ms.to_string())
            .create()?;
        Ok(Self {
            producer,
            timeout: Duration::from_millis(config.timeout_ms),
        })
    }

    /// Settings shared by every Kafka client Warung creates (producer, consumers).
    pub fn client_config(config: &KafkaConfig) -> ClientConfig {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.brokers)
            .set("client.id", &config.client_id)
            .set("socket.timeout.ms", "10000")
            .set("log_level", "4");
        client
    }

    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// Asks a broker for cluster metadata: proves it is reachable and answering.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let producer = self.producer.clone();
        let timeout = self.timeout;
        tokio::task::spawn_blocking(move || {
            producer.client().fetch_metadata(None, timeout).map(drop)
        })
        .await??;
        Ok(())
    }
}

/// The SMTP transport (pooled connections, TLS per config).
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").finish_non_exhaustive()
    }
}

impl Mailer {
    pub fn connect(config: &SmtpConfig) -> anyhow::Result<Self> {
        let mut builder = match config.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
            SmtpTls::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)?
            }
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)?,
        }
        .port(config.port)
        .timeout(Some(Duration::from_millis(config.timeout_ms)));
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
        })
    }

    pub fn transport(&self) -> &AsyncSmtpTransport<Tokio1Executor> {
        &self.transport
    }

    /// Opens a connection and greets the server.
    pub async fn ping(&self) -> anyhow::Result<()> {
        if self.transport.test_connection().await? {
            Ok(())
        } else {
            anyhow::bail!("SMTP server did not accept the connection")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::VaultConfig;

    /// A stand-in for `sys/health` answering with `status` (a fake is fine in a unit test: the
    /// real OpenBao cannot be sealed under the other tests' feet).
    async fn vault_answering(status: u16) -> Vault {
        let app = axum::Router::new().route(
            "/v1/sys/health",
            axum::routing::get(move || async move { http::StatusCode::from_u16(status).unwrap() }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Vault::connect(&VaultConfig {
            addr: format!("http://{addr}").parse().unwrap(),
            token: "t".to_owned().into(),
            transit_mount: "transit".into(),
            kek_name: "warung-kek".into(),
            digest_key_name: "warung-audit-digest".into(),
            timeout_ms: 1_000,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn vault_health_reads_sealed_and_uninitialised_from_the_status_code() {
        assert_eq!(
            vault_answering(200).await.health().await.unwrap(),
            VaultHealth::Ready
        );
        assert_eq!(
            vault_answering(429).await.health().await.unwrap(),
            VaultHealth::Ready
        );
        assert_eq!(
            vault_answering(503).await.health().await.unwrap(),
            VaultHealth::Sealed
        );
        assert_eq!(
            vault_answering(501).await.health().await.unwrap(),
            VaultHealth::Uninitialized
        );
        assert!(vault_answering(500).await.health().await.is_err());
    }
}
