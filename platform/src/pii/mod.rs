//! Personal data protection: envelope encryption through Vault Transit, blind indexes and
//! crypto-shredding, behind a few calls every module uses.
//!
//! ```text
//! Transit KEK `warung-kek` (derived per tenant)          — never leaves Vault
//!   └─ wraps one DEK per data subject (`subject_keys`)    — stored only wrapped
//!        └─ seals each field locally with AES-256-GCM     — AAD binds tenant, subject, table.column
//! ```
//!
//! - [`PiiCipher::seal`] / [`PiiCipher::open`] / [`PiiCipher::open_many`]: opening 100 values of
//!   100 subjects on a cold cache costs one database query and one Transit call.
//! - [`PiiCipher::shred`]: deletes the subject's DEK and tells every process to forget it; the
//!   subject's stored values then open as [`Opened::Erased`], never as an error.
//! - [`PiiCipher::blind_index`]: equality lookup for email/phone.
//!
//! Plaintext DEKs live only in a bounded, short-TTL cache and are zeroed when dropped.

mod blind;
mod breaker;
pub mod cipher;
mod keys;
pub mod rewrap;

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::StreamExt;
use moka::sync::Cache;
use serde::{Serialize, Serializer};

pub use self::{
    blind::{BlindIndex, IndexKind},
    breaker::Breaker,
    cipher::{Binding, Dek, OpenError, SubjectCipher},
    keys::{KekInfo, KeyError, Keys, LocalKeys, TransitKeys, TransitPerField, WrappedKey},
};
use crate::{
    clients::Redis,
    db::{Db, TenantTx},
    error::Error,
    events::{self, Actor, AuditRecord, Resource},
    health::Dependency,
    id::{TenantId, UserId},
    module::Worker,
};

crate::id_type!(
    /// Whose key seals a value: a staff user, a customer, or the tenant itself.
    SubjectId
);

impl From<UserId> for SubjectId {
    fn from(id: UserId) -> Self {
        Self(id.0)
    }
}

impl From<TenantId> for SubjectId {
    fn from(id: TenantId) -> Self {
        Self(id.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    Tenant,
    Staff,
    Customer,
}

impl SubjectKind {
    /// The name stored and sent for it (`staff`, `customer`, `tenant`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Staff => "staff",
            Self::Customer => "customer",
        }
    }

    /// A person's kind from its name: `staff` or `customer` (a tenant is no person).
    pub fn parse_person(kind: &str) -> Option<Self> {
        match kind {
            "staff" => Some(Self::Staff),
            "customer" => Some(Self::Customer),
            _ => None,
        }
    }
}

/// A data subject: whose key, and what kind of person (kept for erasure and rewrap reports).
#[derive(Debug, Clone, Copy)]
pub struct Subject {
    pub id: SubjectId,
    pub kind: SubjectKind,
}

/// A sealed value as stored (`bytea`).
#[derive(Clone, PartialEq, Eq, sqlx::Type)]
#[sqlx(transparent)]
pub struct Sealed(pub Vec<u8>);

impl Sealed {
    /// The text form carried in event payloads (standard base64).
    pub fn to_base64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&self.0)
    }

    pub fn from_base64(text: &str) -> Option<Self> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()
            .map(Self)
    }
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

/// Plaintext personal data in memory. `Debug` and `Display` print `[redacted]`, so it cannot
/// end up in a log by accident; [`Pii::expose`] is the one deliberate way to the value.
/// `Serialize` writes the value: responses and exports are deliberate.
#[derive(Clone, PartialEq, Eq)]
pub struct Pii<T>(T);

impl<T> Pii<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::fmt::Debug for Pii<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> std::fmt::Display for Pii<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T: Serialize> Serialize for Pii<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// What opening a sealed value gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    Value(Pii<String>),
    /// The subject's key was shredded: the value is gone for good. Readers show "erased".
    Erased,
}

impl Opened {
    pub fn value(&self) -> Option<&str> {
        match self {
            Self::Value(v) => Some(v.expose()),
            Self::Erased => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PiiError {
    #[error("key service unavailable")]
    KeyServiceUnavailable,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Commit(#[from] crate::db::CommitError),
    /// A stored value does not authenticate under its subject's key: tampering or a bug.
    #[error("sealed value for {field} does not open: {reason}")]
    Corrupt {
        field: &'static str,
        reason: OpenError,
    },
    #[error("key service refused: {0}")]
    KeyRefused(String),
    /// A cryptographic primitive failed where it cannot (a bug): nothing is stored.
    #[error("cryptographic operation failed")]
    CryptoFailure,
}

impl From<KeyError> for PiiError {
    fn from(err: KeyError) -> Self {
        match err {
            KeyError::Unavailable(_) => Self::KeyServiceUnavailable,
            KeyError::Refused(reason) => Self::KeyRefused(reason),
        }
    }
}

impl From<PiiError> for Error {
    fn from(err: PiiError) -> Self {
        match err {
            PiiError::KeyServiceUnavailable => Self::Unavailable(Dependency::Vault),
            PiiError::Database(db) => Self::from(db),
            PiiError::Commit(commit) => Self::from(commit),
            other => Self::Internal(other.into()),
        }
    }
}

fn bounded<K, V>(settings: CacheSettings) -> Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(settings.capacity)
        .time_to_live(settings.ttl)
        .build()
}

#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    pub capacity: u64,
    pub ttl: Duration,
    /// Data keys kept ready per tenant for new subjects (0: none, every new subject waits for
    /// Transit).
    pub ready_keys: usize,
}

/// Fresh data keys of one tenant, made ahead so creating a subject does not wait for Transit.
/// Plaintext keys are zeroed on drop; an idle tenant's pool expires with the cache TTL.
type ReadyKeys = Arc<std::sync::Mutex<Vec<(Dek, WrappedKey)>>>;

type CacheKey = (TenantId, SubjectId);

/// The Redis channel (under `redis.key_prefix`) on which shreds are announced to peers.
const SHRED_CHANNEL: &str = "pii:shred";

/// Transit accepts large batches, but one bounded request keeps latency and memory predictable.
const UNWRAP_BATCH: usize = 256;

/// How [`PiiCipher`] seals. Warung always runs [`Mode::Envelope`]; the other two exist only as
/// the baselines of `warung-bench` (DESIGN §3: why envelope encryption is the default) and are
/// set by [`PiiCipher::set_mode_for_benchmark`], never by configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Envelope,
    /// One Transit encrypt/decrypt call per field (what most implementations do).
    TransitPerField,
    /// No encryption at all: the floor a benchmark compares against.
    Plaintext,
}

/// First byte of a baseline value, so it can never be mistaken for an envelope one (format 1).
const BASELINE_TRANSIT: u8 = 0xF1;
const BASELINE_PLAINTEXT: u8 = 0xF0;

/// The PII service. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PiiCipher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    keys: Keys,
    deks: Cache<CacheKey, Arc<SubjectCipher>>,
    index_keys: Cache<TenantId, Arc<Dek>>,
    /// Subjects shredded within the cache TTL: a DEK loaded concurrently with a shred must not
    /// be cached again after the invalidation.
    shredded: Cache<CacheKey, ()>,
    redis: Option<Redis>,
    /// [`Mode`] as a number; benchmarks switch it on a running app.
    mode: std::sync::atomic::AtomicU8,
    ready: Cache<TenantId, ReadyKeys>,
    ready_target: usize,
    /// Tenants whose pool is being refilled (one refill per tenant at a time).
    refilling: std::sync::Mutex<std::collections::HashSet<TenantId>>,
}

impl PiiCipher {
    pub fn new(keys: Keys, cache: CacheSettings, redis: Option<Redis>) -> Self {
        Self {
            inner: Arc::new(Inner {
                keys,
                deks: bounded(cache),
                index_keys: bounded(cache),
                shredded: bounded(cache),
                redis,
                mode: std::sync::atomic::AtomicU8::new(0),
                ready: bounded(cache),
                ready_target: cache.ready_keys,
                refilling: std::sync::Mutex::default(),
            }),
        }
    }

    /// How many fresh keys are ready for `tenant`'s next new subjects.
    pub fn ready_keys(&self, tenant: TenantId) -> usize {
        self.inner
            .ready
            .get(&tenant)
            .map_or(0, |pool| pool.lock().map_or(0, |keys| keys.len()))
    }

    /// A fresh data key for a new subject: a ready one if there is one, else straight from
    /// Transit. Taking the pool below half its size refills it in the background.
    async fn fresh_key(&self, tenant: TenantId) -> Result<(Dek, WrappedKey), PiiError> {
        if self.inner.ready_target == 0 {
            return Ok(self.inner.keys.generate(tenant).await?);
        }
        let pool = self.inner.ready.get_with(tenant, ReadyKeys::default);
        let (taken, left) = match pool.lock() {
            Ok(mut keys) => (keys.pop(), keys.len()),
            Err(_) => (None, 0),
        };
        if left < self.inner.ready_target / 2 + 1 {
            self.refill(tenant, pool);
        }
        match taken {
            Some(key) => {
                metrics::counter!("pii_ready_keys_used_total").increment(1);
                Ok(key)
            }
            None => Ok(self.inner.keys.generate(tenant).await?),
        }
    }

    fn refill(&self, tenant: TenantId, pool: ReadyKeys) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let started = self
            .inner
            .refilling
            .lock()
            .is_ok_and(|mut busy| busy.insert(tenant));
        if !started {
            return;
        }
        let this = self.clone();
        runtime.spawn(async move {
            let missing = |pool: &ReadyKeys| {
                this.inner
                    .ready_target
                    .saturating_sub(pool.lock().map_or(0, |keys| keys.len()))
            };
            while missing(&pool) > 0 {
                match this.inner.keys.generate(tenant).await {
                    Ok(key) => {
                        if let Ok(mut keys) = pool.lock() {
                            keys.push(key);
                        }
                    }
                    // Transit is down or refusing: requests fall back to asking it themselves
                    // (and get its error); the next taker tries to refill again.
                    Err(err) => {
                        tracing::warn!(error = %err, "could not refill ready data keys");
                        break;
                    }
                }
            }
            if let Ok(mut busy) = this.inner.refilling.lock() {
                busy.remove(&tenant);
            }
        });
    }

    /// Switches every clone of this cipher to a benchmark baseline. Benchmarks only: a value
    /// sealed in one mode opens only in that mode.
    pub fn set_mode_for_benchmark(&self, mode: Mode) {
        let value = match mode {
            Mode::Envelope => 0,
            Mode::TransitPerField => 1,
            Mode::Plaintext => 2,
        };
        self.inner
            .mode
            .store(value, std::sync::atomic::Ordering::Relaxed);
    }

    fn mode(&self) -> Mode {
        match self.inner.mode.load(std::sync::atomic::Ordering::Relaxed) {
            1 => Mode::TransitPerField,
            2 => Mode::Plaintext,
            _ => Mode::Envelope,
        }
    }

    async fn seal_baseline(
        &self,
        tenant: TenantId,
        mode: Mode,
        value: &str,
    ) -> Result<Sealed, PiiError> {
        match (mode, &self.inner.keys) {
            (Mode::TransitPerField, Keys::Vault(transit)) => {
                let text = TransitPerField(transit).encrypt(tenant, value).await?;
                Ok(Sealed([&[BASELINE_TRANSIT], text.as_bytes()].concat()))
            }
            (Mode::Plaintext, _) => Ok(Sealed([&[BASELINE_PLAINTEXT], value.as_bytes()].concat())),
            _ => Err(PiiError::CryptoFailure),
        }
    }

    async fn open_baseline(&self, tenant: TenantId, sealed: &Sealed) -> Result<Opened, PiiError> {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        match (sealed.0.split_first(), &self.inner.keys) {
            (Some((&BASELINE_TRANSIT, rest)), Keys::Vault(transit)) => {
                let plain = TransitPerField(transit)
                    .decrypt(tenant, &text(rest))
                    .await?;
                Ok(Opened::Value(Pii(plain)))
            }
            (Some((&BASELINE_PLAINTEXT, rest)), _) => Ok(Opened::Value(Pii(text(rest)))),
            _ => Err(PiiError::CryptoFailure),
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// Seals `value` for `subject` in `field` (`table.column`), creating the subject's key on
    /// first use inside the caller's transaction (so it commits or rolls back with the data).
    #[tracing::instrument(name = "pii.seal", skip_all, fields(field))]
    pub async fn seal(
        &self,
        tx: &mut TenantTx,
        subject: Subject,
        field: &'static str,
        value: &str,
    ) -> Result<Sealed, PiiError> {
        let tenant = tx.tenant();
        let mode = self.mode();
        if mode != Mode::Envelope {
            return self.seal_baseline(tenant, mode, value).await;
        }
        let dek = self.dek_for_seal(tx, subject).await?;
        metrics::counter!("encryption_operations_total", "op" => "seal").increment(1);
        let binding = cipher::Binding {
            tenant,
            subject: subject.id,
            field,
        };
        Ok(Sealed(
            cipher::seal(&dek, binding, value.as_bytes()).map_err(|_| PiiError::CryptoFailure)?,
        ))
    }

    /// Opens one value. See [`Self::open_many`].
    pub async fn open(
        &self,
        tx: &mut TenantTx,
        subject: SubjectId,
        field: &'static str,
        sealed: &Sealed,
    ) -> Result<Opened, PiiError> {
        let mut opened = self.open_many(tx, &[(subject, field, sealed)]).await?;
        Ok(opened.pop().unwrap_or(Opened::Erased))
    }

    /// Opens many values, possibly of many subjects, in order. Keys missing from the cache are
    /// loaded with one query and unwrapped with one Transit call (per 256 subjects).
    #[tracing::instrument(name = "pii.open", skip_all, fields(count = items.len()))]
    pub async fn open_many(
        &self,
        tx: &mut TenantTx,
        items: &[(SubjectId, &'static str, &Sealed)],
    ) -> Result<Vec<Opened>, PiiError> {
        let tenant = tx.tenant();
        if self.mode() != Mode::Envelope {
            let mut opened = Vec::with_capacity(items.len());
            for (_, _, sealed) in items {
                opened.push(self.open_baseline(tenant, sealed).await?);
            }
            return Ok(opened);
        }
        let mut subjects: Vec<SubjectId> = items.iter().map(|(s, _, _)| *s).collect();
        subjects.sort();
        subjects.dedup();
        let deks = self.deks_for_open(tx, &subjects).await?;
        metrics::counter!("encryption_operations_total", "op" => "open")
            .increment(items.len() as u64);
        items
            .iter()
            .map(|(subject, field, sealed)| {
                let Some(dek) = deks.get(subject) else {
                    return Ok(Opened::Erased);
                };
                let binding = cipher::Binding {
                    tenant,
                    subject: *subject,
                    field,
                };
                cipher::open(dek, binding, &sealed.0)
                    .map(|bytes| {
                        // Sealed values are UTF-8 by construction; no copy on the hot path.
                        let text = String::from_utf8(bytes)
                            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                        Opened::Value(Pii(text))
                    })
                    .map_err(|reason| PiiError::Corrupt { field, reason })
            })
            .collect()
    }

    /// Crypto-shreds `subject`: deletes its DEK (own transaction, with its audit record
    /// `subject.key_shredded`) and makes every process forget it. Returns whether a key
    /// existed. Idempotent.
    #[tracing::instrument(name = "pii.shred", skip_all)]
    pub async fn shred(
        &self,
        db: &Db,
        tenant: TenantId,
        subject: SubjectId,
        actor: Actor,
    ) -> Result<bool, PiiError> {
        let mut tx = db.tenant(tenant).begin().await?;
        let deleted = sqlx::query!(
            "delete from subject_keys where tenant_id = $1 and subject_id = $2",
            tenant.0,
            subject.0
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if deleted > 0 {
            let record = AuditRecord::new(
                actor,
                "subject.key_shredded",
                Resource::new("subject", subject),
            );
            events::emit_audit(&mut tx, &record).await?;
        }
        tx.commit().await?;
        self.forget(tenant, subject);
        if let Some(redis) = &self.inner.redis {
            let mut conn = redis.conn();
            let message = format!("{}:{}", tenant.0, subject.0);
            // If Redis is down, other processes still drop the key within the cache TTL.
            if let Err(err) = redis::cmd("PUBLISH")
                .arg(redis.key(SHRED_CHANNEL))
                .arg(message)
                .query_async::<i64>(&mut conn)
                .await
            {
                tracing::warn!(error = %err, "shred broadcast failed; peers forget the key within the cache TTL");
            }
        }
        metrics::counter!("pii_shred_total").increment(1);
        metrics::counter!("encryption_operations_total", "op" => "shred").increment(1);
        Ok(deleted > 0)
    }

    /// Forgets a subject's DEK in this process (also called for shreds announced by peers).
    pub fn forget(&self, tenant: TenantId, subject: SubjectId) {
        self.inner.shredded.insert((tenant, subject), ());
        self.inner.deks.invalidate(&(tenant, subject));
    }

    /// The blind index of `value` for equality lookups in this tenant.
    #[tracing::instrument(name = "pii.blind_index", skip_all)]
    pub async fn blind_index(
        &self,
        tx: &mut TenantTx,
        kind: IndexKind,
        value: &str,
    ) -> Result<BlindIndex, PiiError> {
        let key = self.index_key(tx).await?;
        metrics::counter!("encryption_operations_total", "op" => "blind_index").increment(1);
        blind::compute(&key, kind, value).ok_or(PiiError::CryptoFailure)
    }

    /// Listens for shreds announced by other processes and forgets those keys. On every
    /// (re)connection the whole cache is dropped, since announcements may have been missed.
    pub fn invalidation_worker(&self) -> Option<Worker> {
        let redis = self.inner.redis.clone()?;
        let this = self.clone();
        Some(Worker::new("pii-cache-invalidation", move |ctx| {
            let (redis, this) = (redis.clone(), this.clone());
            async move {
                let mut pubsub = redis.client().get_async_pubsub().await?;
                pubsub.subscribe(redis.key(SHRED_CHANNEL)).await?;
                this.inner.deks.invalidate_all();
                let mut messages = pubsub.on_message();
                loop {
                    tokio::select! {
                        () = ctx.shutdown.cancelled() => return Ok(()),
                        message = messages.next() => {
                            let Some(message) = message else {
                                anyhow::bail!("shred subscription closed");
                            };
                            let payload: String = message.get_payload()?;
                            if let Some((tenant, subject)) = payload.split_once(':')
                                && let (Ok(tenant), Ok(subject)) = (tenant.parse(), subject.parse())
                            {
                                this.forget(tenant, subject);
                            }
                        }
                    }
                }
            }
        }))
    }

    async fn dek_for_seal(
        &self,
        tx: &mut TenantTx,
        subject: Subject,
    ) -> Result<Arc<SubjectCipher>, PiiError> {
        let tenant = tx.tenant();
        if let Some(key) = pending(tx).subjects.get(&subject.id) {
            return Ok(key.clone());
        }
        if let Some(key) = self.inner.deks.get(&(tenant, subject.id)) {
            record_cache_lookups(1, 0);
            return Ok(key);
        }
        record_cache_lookups(0, 1);
        Ok(match self.obtain(tx, KeyRow::Subject(subject)).await? {
            Obtained::Committed(dek) => self.share(tenant, subject.id, &dek),
            Obtained::Created(dek) => {
                let key = Arc::new(SubjectCipher::new(&dek));
                pending_mut(tx).subjects.insert(subject.id, key.clone());
                key
            }
        })
    }

    /// Puts a committed key in the shared cache, unless the subject was shredded meanwhile.
    /// Insert first, then check: `forget` marks before it invalidates, so whichever runs
    /// second wins and a shredded key never stays cached.
    fn share(&self, tenant: TenantId, subject: SubjectId, dek: &Dek) -> Arc<SubjectCipher> {
        let key = Arc::new(SubjectCipher::new(dek));
        self.inner.deks.insert((tenant, subject), key.clone());
        if self.inner.shredded.contains_key(&(tenant, subject)) {
            self.inner.deks.invalidate(&(tenant, subject));
        }
        key
    }

    async fn deks_for_open(
        &self,
        tx: &mut TenantTx,
        subjects: &[SubjectId],
    ) -> Result<HashMap<SubjectId, Arc<SubjectCipher>>, PiiError> {
        let tenant = tx.tenant();
        let mut found = HashMap::with_capacity(subjects.len());
        let mut missing = Vec::new();
        let own = pending(tx);
        for subject in subjects {
            if let Some(key) = own.subjects.get(subject) {
                found.insert(*subject, key.clone());
            } else if let Some(key) = self.inner.deks.get(&(tenant, *subject)) {
                found.insert(*subject, key);
            } else {
                missing.push(subject.0);
            }
        }
        record_cache_lookups(found.len(), missing.len());
        if missing.is_empty() {
            return Ok(found);
        }
        // Keys this transaction created are in `own`; whatever the database returns here was
        // committed by someone, so it may be shared.
        let rows = sqlx::query!(
            "select subject_id, wrapped_dek from subject_keys where tenant_id = $1 and subject_id = any($2)",
            tenant.0,
            &missing
        )
        .fetch_all(&mut **tx)
        .await?;
        for chunk in rows.chunks(UNWRAP_BATCH) {
            let wrapped: Vec<WrappedKey> = chunk
                .iter()
                .map(|r| WrappedKey(r.wrapped_dek.clone()))
                .collect();
            let request: Vec<(TenantId, &WrappedKey)> =
                wrapped.iter().map(|w| (tenant, w)).collect();
            let results = self.inner.keys.unwrap_many(&request).await?;
            for (row, result) in chunk.iter().zip(results) {
                let subject = SubjectId(row.subject_id);
                let key = self.share(tenant, subject, &result?);
                if !self.inner.shredded.contains_key(&(tenant, subject)) {
                    found.insert(subject, key);
                }
            }
        }
        Ok(found)
    }

    async fn unwrap_one(&self, tenant: TenantId, wrapped: WrappedKey) -> Result<Dek, PiiError> {
        let mut results = self.inner.keys.unwrap_many(&[(tenant, &wrapped)]).await?;
        let dek = results
            .pop()
            .ok_or_else(|| PiiError::KeyRefused("empty unwrap".into()))??;
        Ok(dek)
    }

    async fn index_key(&self, tx: &mut TenantTx) -> Result<Arc<Dek>, PiiError> {
        let tenant = tx.tenant();
        if let Some(key) = &pending(tx).index {
            return Ok(key.clone());
        }
        if let Some(key) = self.inner.index_keys.get(&tenant) {
            return Ok(key);
        }
        Ok(match self.obtain(tx, KeyRow::Index).await? {
            Obtained::Committed(dek) => {
                let key = Arc::new(dek);
                self.inner.index_keys.insert(tenant, key.clone());
                key
            }
            Obtained::Created(dek) => {
                let key = Arc::new(dek);
                pending_mut(tx).index = Some(key.clone());
                key
            }
        })
    }

    /// The key stored for `row`, or a new one created inside this transaction. A key created
    /// here stays private to the transaction: cached before commit, a rolled-back key would
    /// seal later values under a key that was never stored.
    async fn obtain(&self, tx: &mut TenantTx, row: KeyRow) -> Result<Obtained, PiiError> {
        let tenant = tx.tenant();
        if let Some(wrapped) = load_wrapped(tx, row).await? {
            return Ok(Obtained::Committed(self.unwrap_one(tenant, wrapped).await?));
        }
        let (dek, wrapped) = match row {
            KeyRow::Subject(_) => self.fresh_key(tenant).await?,
            KeyRow::Index => self.inner.keys.generate(tenant).await?,
        };
        if insert_wrapped(tx, row, &wrapped).await? {
            return Ok(Obtained::Created(dek));
        }
        // A concurrent first seal won (ON CONFLICT waited for it to commit): use its key.
        let wrapped = load_wrapped(tx, row).await?.ok_or_else(|| {
            PiiError::KeyRefused("key vanished after a conflicting insert".into())
        })?;
        Ok(Obtained::Committed(self.unwrap_one(tenant, wrapped).await?))
    }
}

/// Keys created by one transaction, usable only inside it.
#[derive(Debug, Clone, Default)]
struct PendingKeys {
    subjects: HashMap<SubjectId, Arc<SubjectCipher>>,
    index: Option<Arc<Dek>>,
}

fn pending(tx: &TenantTx) -> PendingKeys {
    tx.extensions()
        .get::<PendingKeys>()
        .cloned()
        .unwrap_or_default()
}

fn pending_mut(tx: &mut TenantTx) -> &mut PendingKeys {
    tx.extensions_mut().get_or_insert_default::<PendingKeys>()
}

enum Obtained {
    /// Stored by a committed transaction: safe to share through the cache.
    Committed(Dek),
    /// Created by this transaction: private until it commits.
    Created(Dek),
}

#[derive(Debug, Clone, Copy)]
enum KeyRow {
    Subject(Subject),
    Index,
}

async fn load_wrapped(tx: &mut TenantTx, row: KeyRow) -> Result<Option<WrappedKey>, sqlx::Error> {
    let tenant = tx.tenant().0;
    let wrapped = match row {
        KeyRow::Subject(subject) => {
            sqlx::query_scalar!(
                "select wrapped_dek from subject_keys where tenant_id = $1 and subject_id = $2",
                tenant,
                subject.id.0
            )
            .fetch_optional(&mut **tx)
            .await?
        }
        KeyRow::Index => {
            sqlx::query_scalar!(
                "select wrapped_key from pii_index_keys where tenant_id = $1",
                tenant
            )
            .fetch_optional(&mut **tx)
            .await?
        }
    };
    Ok(wrapped.map(WrappedKey))
}

/// `false` when a concurrent transaction stored the key first.
async fn insert_wrapped(
    tx: &mut TenantTx,
    row: KeyRow,
    wrapped: &WrappedKey,
) -> Result<bool, sqlx::Error> {
    let tenant = tx.tenant().0;
    let version = wrapped.kek_version().unwrap_or(1);
    let inserted = match row {
        KeyRow::Subject(subject) => sqlx::query!(
            "insert into subject_keys (tenant_id, subject_id, subject_kind, wrapped_dek, kek_version)
             values ($1, $2, $3, $4, $5) on conflict (tenant_id, subject_id) do nothing",
            tenant,
            subject.id.0,
            subject.kind.as_str(),
            wrapped.0,
            version,
        )
        .execute(&mut **tx)
        .await?,
        KeyRow::Index => sqlx::query!(
            "insert into pii_index_keys (tenant_id, wrapped_key, kek_version) values ($1, $2, $3)
             on conflict (tenant_id) do nothing",
            tenant,
            wrapped.0,
            version,
        )
        .execute(&mut **tx)
        .await?,
    };
    Ok(inserted.rows_affected() == 1)
}

/// One counter update per batch, not per value: on the hot path the metric costs as much as
/// the decryption.
fn record_cache_lookups(hits: usize, misses: usize) {
    if hits > 0 {
        metrics::counter!("dek_cache_lookups_total", "outcome" => "hit").increment(hits as u64);
    }
    if misses > 0 {
        metrics::counter!("dek_cache_lookups_total", "outcome" => "miss").increment(misses as u64);
    }
}
