//! Work on one data subject that spans every module (DESIGN §1, §6): a data-subject export and
//! an erasure. Each module that holds something about a person implements
//! [`SubjectDataProvider`] for its own tables; gateway registers them all in
//! [`AppState::subjects`](crate::AppState) (every module's, whatever the process serves, so an
//! export or an erasure is never partial), and `users`' data-subject requests drive them. No
//! module reaches into another's tables.
//!
//! An erasure runs in three steps, each idempotent, so a crash between them is finished by the
//! next attempt:
//! 1. [`SubjectDataProvider::erase`] for every module in **one** tenant transaction: sessions
//!    revoked, what must be kept anonymized, waiting mail cancelled, with their audit records;
//! 2. [`SubjectDataProvider::farewell`]: the completion mail, while the key still opens the
//!    address;
//! 3. the subject key is shredded and a PII-free tombstone is audited.

use std::fmt::Debug;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{
    AppState, Result,
    authz::BoxFuture,
    db::{SystemDb, TenantTx},
    events::Actor,
    id::TenantId,
    pii::Subject,
};

/// One table of an export: records of one kind, each a flat JSON object (written as a JSON
/// array and as one CSV file, one column per key).
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    /// `module.what`, e.g. `orders.orders`: the file name in the bundle.
    pub name: String,
    pub records: Vec<Map<String, Value>>,
}

impl Section {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            records: Vec::new(),
        }
    }

    /// Adds a record; anything but a JSON object is wrapped as `{"value": ...}`.
    pub fn push(&mut self, record: impl Serialize) -> Result<()> {
        let value = serde_json::to_value(record).map_err(|e| crate::Error::Internal(e.into()))?;
        self.records.push(match value {
            Value::Object(map) => map,
            other => Map::from_iter([("value".to_owned(), other)]),
        });
        Ok(())
    }
}

/// An erasure being carried out.
#[derive(Debug, Clone, Copy)]
pub struct Erasure {
    pub tenant: TenantId,
    /// The data-subject request it fulfils: the idempotency key of its side effects.
    pub request: uuid::Uuid,
    pub subject: Subject,
    pub actor: Actor,
    /// The request's legal due date: waiting for the farewell may not carry the erasure past
    /// it.
    pub due_at: chrono::DateTime<chrono::Utc>,
}

/// What the farewell step achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Farewell {
    /// Nothing to say, or said (the mail was accepted).
    Done,
    /// Cannot be said (no address, refused for good, or not before the due date): the erasure
    /// goes ahead without it. The reason is recorded in the tombstone.
    Undeliverable(String),
    /// Not now (SMTP or Vault down): try the erasure again later; the key must stay.
    Later,
}

/// What a module holds about data subjects, for export and erasure.
pub trait SubjectDataProvider: Send + Sync + Debug {
    /// The module's name (sections are prefixed with it).
    fn module(&self) -> &'static str;

    /// Everything this module holds on `subject`, opened, read in the caller's tenant
    /// transaction. The caller audits the disclosure once.
    fn export<'a>(
        &'a self,
        state: &'a AppState,
        tx: &'a mut TenantTx,
        subject: Subject,
    ) -> BoxFuture<'a, Result<Vec<Section>>>;

    /// Removes or anonymizes what this module holds, in the shared erasure transaction, with
    /// its own audit records. Must be idempotent: a resumed erasure runs it again.
    fn erase<'a>(
        &'a self,
        state: &'a AppState,
        tx: &'a mut TenantTx,
        erasure: &'a Erasure,
    ) -> BoxFuture<'a, Result<()>>;

    /// Last words before the key is shredded (the completion mail). Idempotent on
    /// `erasure.request`.
    fn farewell<'a>(
        &'a self,
        _state: &'a AppState,
        _system: &'a SystemDb,
        _erasure: &'a Erasure,
    ) -> BoxFuture<'a, Farewell> {
        Box::pin(async { Farewell::Done })
    }
}
