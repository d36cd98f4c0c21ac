//! Key providers: where data keys come from and how they are wrapped.
//!
//! - `vault` (default): Transit key `warung-kek`, derived per tenant (context = tenant id).
//!   `datakey/plaintext` makes a DEK; `decrypt` with `batch_input` unwraps many in one call.
//! - `local`: a 32-byte key file wraps DEKs with AES-256-GCM. For unit tests and offline
//!   development only; refused in production.

use std::{path::Path, time::Instant};

use aes_gcm::{
    Aes256Gcm, Nonce,
    aead::{Aead, Generate, KeyInit, Payload},
};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde::{Deserialize, de::DeserializeOwned};
use zeroize::Zeroizing;

use super::{breaker::Breaker, cipher::Dek};
use crate::{clients::Vault, id::TenantId};

/// A DEK encrypted under the KEK, as stored in `subject_keys.wrapped_dek`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey(pub String);

impl WrappedKey {
    /// The KEK version that wrapped it (`vault:v3:...` -> 3; `local:v1:...` -> 1).
    pub fn kek_version(&self) -> Option<i32> {
        let mut parts = self.0.splitn(3, ':');
        let _provider = parts.next()?;
        parts.next()?.strip_prefix('v')?.parse().ok()
    }
}

/// The KEK as Vault describes it (no key material).
#[derive(Debug, Clone)]
pub struct KekInfo {
    pub name: String,
    pub latest_version: i32,
    pub min_decryption_version: i32,
    pub exportable: bool,
    pub deletion_allowed: bool,
    pub allow_plaintext_backup: bool,
    pub derived: bool,
    /// When each version was created.
    pub versions: std::collections::BTreeMap<i32, chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Vault is down, sealed, too slow, or the breaker is open. Retry later; nothing was written.
    #[error("key service unavailable: {0}")]
    Unavailable(String),
    /// Vault answered but refused (bad ciphertext, wrong context, permission): a bug or tampering.
    #[error("key service refused the request: {0}")]
    Refused(String),
}

#[derive(Debug)]
pub enum Keys {
    Vault(TransitKeys),
    Local(LocalKeys),
}

impl Keys {
    pub async fn generate(&self, tenant: TenantId) -> Result<(Dek, WrappedKey), KeyError> {
        match self {
            Self::Vault(v) => v.generate(tenant).await,
            Self::Local(l) => l.generate(tenant),
        }
    }

    /// Unwraps all `items` in one round trip; each item succeeds or fails on its own.
    pub async fn unwrap_many(
        &self,
        items: &[(TenantId, &WrappedKey)],
    ) -> Result<Vec<Result<Dek, KeyError>>, KeyError> {
        match self {
            Self::Vault(v) => v.unwrap_many(items).await,
            Self::Local(l) => Ok(items.iter().map(|(t, w)| l.unwrap(*t, w)).collect()),
        }
    }
}

/// Holds a plaintext data key (base64): zeroed on drop, and no `Debug`.
#[derive(Deserialize)]
struct DataKeyResponse {
    plaintext: Zeroizing<String>,
    ciphertext: String,
}

#[derive(Deserialize)]
struct BatchResponse<T> {
    batch_results: Vec<T>,
}

/// Holds a plaintext data key (base64): zeroed on drop, and no `Debug`.
#[derive(Deserialize)]
struct DecryptItem {
    #[serde(default)]
    plaintext: Option<Zeroizing<String>>,
    #[serde(default)]
    error: Option<String>,
}

/// Transit through vaultrs' client. vaultrs has no `batch_input`, so the calls are our own
/// `rustify` endpoints executed by its client (same auth, timeout and error mapping).
#[derive(Debug)]
pub struct TransitKeys {
    vault: Vault,
    breaker: Breaker,
}

impl TransitKeys {
    pub fn new(vault: Vault, breaker: Breaker) -> Self {
        Self { vault, breaker }
    }

    fn context(tenant: TenantId) -> String {
        B64.encode(tenant.to_string())
    }

    async fn call<R: DeserializeOwned + Send + Sync>(
        &self,
        name: &'static str,
        action: &str,
        body: Option<serde_json::Value>,
    ) -> Result<R, KeyError> {
        if !self.breaker.allows() {
            return Err(KeyError::Unavailable("circuit open".into()));
        }
        let (mount, key) = (&self.vault.transit_mount, &self.vault.kek_name);
        let path = match action {
            "keys" => format!("{mount}/keys/{key}"),
            _ => format!("{mount}/{action}/{key}"),
        };
        let started = Instant::now();
        let result =
            vaultrs::api::exec_with_result(self.vault.client(), Call::<R>::new(path, body)).await;
        let elapsed = started.elapsed();
        metrics::histogram!("transit_call_duration_seconds", "call" => name)
            .record(elapsed.as_secs_f64());
        let outcome = match &result {
            Ok(_) => "ok",
            Err(err) if is_unavailable(err) => "unavailable",
            Err(_) => "refused",
        };
        metrics::counter!("transit_calls_total", "call" => name, "outcome" => outcome).increment(1);
        match result {
            Ok(value) => {
                self.breaker.success();
                Ok(value)
            }
            Err(err) if is_unavailable(&err) => {
                self.breaker.failure();
                Err(KeyError::Unavailable(describe(&err)))
            }
            Err(err) => {
                // Vault answered: it is up, even if this request was wrong.
                self.breaker.success();
                Err(KeyError::Refused(describe(&err)))
            }
        }
    }

    async fn generate(&self, tenant: TenantId) -> Result<(Dek, WrappedKey), KeyError> {
        let response: DataKeyResponse = self
            .call(
                "datakey",
                "datakey/plaintext",
                Some(serde_json::json!({
                    "context": Self::context(tenant),
                    "bits": 256,
                })),
            )
            .await?;
        let plaintext = Zeroizing::new(
            B64.decode(response.plaintext.as_bytes())
                .map_err(|_| KeyError::Refused("datakey plaintext".into()))?,
        );
        let dek = Dek::from_slice(&plaintext)
            .ok_or_else(|| KeyError::Refused("datakey length".into()))?;
        Ok((dek, WrappedKey(response.ciphertext)))
    }

    async fn unwrap_many(
        &self,
        items: &[(TenantId, &WrappedKey)],
    ) -> Result<Vec<Result<Dek, KeyError>>, KeyError> {
        let results: Vec<DecryptItem> = self.batch("decrypt_batch", "decrypt", items).await?;
        Ok(results
            .into_iter()
            .map(|item| match (item.plaintext, item.error) {
                (Some(b64), None) => {
                    let bytes = Zeroizing::new(
                        B64.decode(b64.as_bytes())
                            .map_err(|_| KeyError::Refused("plaintext".into()))?,
                    );
                    Dek::from_slice(&bytes).ok_or_else(|| KeyError::Refused("dek length".into()))
                }
                (_, Some(error)) => Err(KeyError::Refused(error)),
                (None, None) => Err(KeyError::Refused("empty batch item".into())),
            })
            .collect())
    }

    /// One Transit batch call over wrapped keys (`decrypt` or `rewrap`), one result per item
    /// in order. Per-item errors come back in a 200 instead of failing the whole batch.
    async fn batch<T: DeserializeOwned + Send + Sync>(
        &self,
        name: &'static str,
        action: &str,
        items: &[(TenantId, &WrappedKey)],
    ) -> Result<Vec<T>, KeyError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let input: Vec<serde_json::Value> = items
            .iter()
            .map(|(tenant, wrapped)| {
                serde_json::json!({ "ciphertext": wrapped.0, "context": Self::context(*tenant) })
            })
            .collect();
        let body =
            serde_json::json!({ "batch_input": input, "partial_failure_response_code": 200 });
        let response: BatchResponse<T> = self.call(name, action, Some(body)).await?;
        if response.batch_results.len() != items.len() {
            return Err(KeyError::Refused("batch result count mismatch".into()));
        }
        Ok(response.batch_results)
    }
}

impl TransitKeys {
    /// The newest KEK version (what new DEKs are wrapped with).
    pub async fn latest_version(&self) -> Result<i32, KeyError> {
        #[derive(Debug, Deserialize)]
        struct KeyInfo {
            latest_version: i32,
        }
        let info: KeyInfo = self.call("read_key", "keys", None).await?;
        Ok(info.latest_version)
    }

    /// What Vault says about the KEK: its protections and the age of each version (for
    /// `warung compliance verify`).
    pub async fn describe(&self) -> Result<KekInfo, KeyError> {
        #[derive(Debug, Deserialize)]
        struct Raw {
            latest_version: i32,
            min_decryption_version: i32,
            #[serde(default)]
            exportable: bool,
            #[serde(default)]
            deletion_allowed: bool,
            #[serde(default)]
            allow_plaintext_backup: bool,
            #[serde(default)]
            derived: bool,
            #[serde(default)]
            keys: std::collections::BTreeMap<String, serde_json::Value>,
        }
        let raw: Raw = self.call("read_key", "keys", None).await?;
        let created = |value: &serde_json::Value| -> Option<chrono::DateTime<chrono::Utc>> {
            match value {
                // Symmetric keys: unix seconds.
                serde_json::Value::Number(n) => chrono::DateTime::from_timestamp(n.as_i64()?, 0),
                serde_json::Value::String(s) => s.parse().ok(),
                serde_json::Value::Object(o) => o.get("creation_time")?.as_str()?.parse().ok(),
                _ => None,
            }
        };
        let versions = raw
            .keys
            .iter()
            .filter_map(|(v, value)| Some((v.parse().ok()?, created(value)?)))
            .collect();
        Ok(KekInfo {
            name: self.vault.kek_name.clone(),
            latest_version: raw.latest_version,
            min_decryption_version: raw.min_decryption_version,
            exportable: raw.exportable,
            deletion_allowed: raw.deletion_allowed,
            allow_plaintext_backup: raw.allow_plaintext_backup,
            derived: raw.derived,
            versions,
        })
    }

    /// Adds a new KEK version. Existing wrapped DEKs keep opening (older versions stay
    /// decryptable) until `rewrap` moves them.
    pub async fn rotate(&self) -> Result<i32, KeyError> {
        // vaultrs' typed call accepts both an empty answer and the key info newer releases send.
        vaultrs::transit::key::rotate(
            self.vault.client(),
            &self.vault.transit_mount,
            &self.vault.kek_name,
        )
        .await
        .map_err(|err| {
            if is_unavailable(&err) {
                KeyError::Unavailable(describe(&err))
            } else {
                KeyError::Refused(describe(&err))
            }
        })?;
        self.latest_version().await
    }

    /// Re-wraps DEKs under the newest KEK version without ever seeing them in plaintext.
    pub async fn rewrap_many(
        &self,
        items: &[(TenantId, &WrappedKey)],
    ) -> Result<Vec<Result<WrappedKey, KeyError>>, KeyError> {
        #[derive(Deserialize)]
        struct RewrapItem {
            #[serde(default)]
            ciphertext: Option<String>,
            #[serde(default)]
            error: Option<String>,
        }
        let results: Vec<RewrapItem> = self.batch("rewrap_batch", "rewrap", items).await?;
        Ok(results
            .into_iter()
            .map(|item| match (item.ciphertext, item.error) {
                (Some(ciphertext), None) => Ok(WrappedKey(ciphertext)),
                (_, Some(error)) => Err(KeyError::Refused(error)),
                (None, None) => Err(KeyError::Refused("empty batch item".into())),
            })
            .collect())
    }
}

/// The BENCHMARK BASELINE, not for use: one Transit encrypt or decrypt call per field, as
/// most implementations do. Kept only so `bench/` can measure what envelope encryption saves.
#[derive(Debug)]
pub struct TransitPerField<'a>(pub &'a TransitKeys);

impl TransitPerField<'_> {
    pub async fn encrypt(&self, tenant: TenantId, plaintext: &str) -> Result<String, KeyError> {
        #[derive(Debug, Deserialize)]
        struct Encrypted {
            ciphertext: String,
        }
        let response: Encrypted = self
            .0
            .call(
                "encrypt_field",
                "encrypt",
                Some(serde_json::json!({
                    "plaintext": B64.encode(plaintext),
                    "context": TransitKeys::context(tenant),
                })),
            )
            .await?;
        Ok(response.ciphertext)
    }

    pub async fn decrypt(&self, tenant: TenantId, ciphertext: &str) -> Result<String, KeyError> {
        #[derive(Debug, Deserialize)]
        struct Decrypted {
            plaintext: String,
        }
        let response: Decrypted = self
            .0
            .call(
                "decrypt_field",
                "decrypt",
                Some(serde_json::json!({
                    "ciphertext": ciphertext,
                    "context": TransitKeys::context(tenant),
                })),
            )
            .await?;
        let bytes = B64
            .decode(response.plaintext)
            .map_err(|_| KeyError::Refused("plaintext".into()))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

fn is_unavailable(err: &vaultrs::error::ClientError) -> bool {
    use vaultrs::error::ClientError as E;
    match err {
        // 429 standby/rate limit, 5xx: Vault cannot serve now (503 = sealed). 401/403: our
        // token expired or was revoked: the key service is unavailable to us, not a bad request.
        E::APIError { code, .. } => matches!(*code, 401 | 403 | 429) || *code >= 500,
        E::RestClientError { .. } => true,
        _ => false,
    }
}

/// Error text without request content (Vault's errors quote no plaintext, but keep it short).
fn describe(err: &vaultrs::error::ClientError) -> String {
    match err {
        vaultrs::error::ClientError::APIError { code, errors } => {
            format!("status {code}: {}", errors.join("; "))
        }
        vaultrs::error::ClientError::RestClientError { .. } => {
            "connection failed or timed out".into()
        }
        other => other.to_string(),
    }
}

/// A JSON POST to a Vault path, answered under `data`.
struct Call<R> {
    path: String,
    /// `None`: a GET.
    body: Option<serde_json::Value>,
    _response: std::marker::PhantomData<fn() -> R>,
}

impl<R> Call<R> {
    fn new(path: String, body: Option<serde_json::Value>) -> Self {
        Self {
            path,
            body,
            _response: std::marker::PhantomData,
        }
    }
}

impl<R: DeserializeOwned + Send + Sync> rustify::Endpoint for Call<R> {
    type Response = R;
    const REQUEST_BODY_TYPE: rustify::enums::RequestType = rustify::enums::RequestType::JSON;
    const RESPONSE_BODY_TYPE: rustify::enums::ResponseType = rustify::enums::ResponseType::JSON;

    fn path(&self) -> String {
        self.path.clone()
    }

    fn method(&self) -> rustify::enums::RequestMethod {
        if self.body.is_some() {
            rustify::enums::RequestMethod::POST
        } else {
            rustify::enums::RequestMethod::GET
        }
    }

    fn body(&self) -> Result<Option<Vec<u8>>, rustify::errors::ClientError> {
        self.body
            .as_ref()
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|source| rustify::errors::ClientError::DataParseError {
                source: source.into(),
            })
    }
}

/// Offline provider: a local 32-byte KEK wraps DEKs (AES-256-GCM, AAD = tenant id).
#[derive(Debug)]
pub struct LocalKeys {
    kek: Zeroizing<[u8; 32]>,
}

const LOCAL_PREFIX: &str = "local:v1:";

impl LocalKeys {
    /// Reads a key file holding 32 bytes, base64-encoded (`head -c 32 /dev/urandom | base64`).
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = Zeroizing::new(std::fs::read_to_string(path)?);
        let bytes = Zeroizing::new(B64.decode(text.trim())?);
        let kek: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} must hold 32 base64-encoded bytes", path.display()))?;
        Ok(Self {
            kek: Zeroizing::new(kek),
        })
    }

    pub fn from_bytes(kek: [u8; 32]) -> Self {
        Self {
            kek: Zeroizing::new(kek),
        }
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&*self.kek).into())
    }

    fn generate(&self, tenant: TenantId) -> Result<(Dek, WrappedKey), KeyError> {
        let dek = Dek::generate();
        let nonce = Nonce::generate();
        let aad = tenant.0.as_bytes();
        let sealed = self
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: dek.as_bytes(),
                    aad,
                },
            )
            .map_err(|_| KeyError::Refused("local wrap failed".into()))?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok((
            dek,
            WrappedKey(format!("{LOCAL_PREFIX}{}", B64.encode(bytes))),
        ))
    }

    fn unwrap(&self, tenant: TenantId, wrapped: &WrappedKey) -> Result<Dek, KeyError> {
        let refused = || KeyError::Refused("local key does not unwrap".into());
        let encoded = wrapped.0.strip_prefix(LOCAL_PREFIX).ok_or_else(refused)?;
        let bytes = B64.decode(encoded).map_err(|_| refused())?;
        if bytes.len() < 12 {
            return Err(refused());
        }
        let (nonce, body) = bytes.split_at(12);
        let nonce = Nonce::try_from(nonce).map_err(|_| refused())?;
        let plain = Zeroizing::new(
            self.cipher()
                .decrypt(
                    &nonce,
                    Payload {
                        msg: body,
                        aad: tenant.0.as_bytes(),
                    },
                )
                .map_err(|_| refused())?,
        );
        Dek::from_slice(&plain).ok_or_else(refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kek_version_is_read_from_the_prefix() {
        assert_eq!(WrappedKey("vault:v3:abc".into()).kek_version(), Some(3));
        assert_eq!(WrappedKey("local:v1:abc".into()).kek_version(), Some(1));
        assert_eq!(WrappedKey("garbage".into()).kek_version(), None);
    }

    #[test]
    fn local_keys_wrap_per_tenant() {
        let keys = LocalKeys::from_bytes([9; 32]);
        let (t, other) = (TenantId::new(), TenantId::new());
        let (dek, wrapped) = keys.generate(t).unwrap();
        assert_eq!(keys.unwrap(t, &wrapped).unwrap().as_bytes(), dek.as_bytes());
        assert!(
            keys.unwrap(other, &wrapped).is_err(),
            "a wrapped key must not open for another tenant"
        );
        assert!(!wrapped.0.contains(&B64.encode(dek.as_bytes())));
    }
}
