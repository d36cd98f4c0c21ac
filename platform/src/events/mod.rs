//! Events out of a transaction: audit records and domain events go through the transactional
//! outbox (DESIGN §4). [`emit`] writes to `outbox` in the caller's tenant transaction, so the
//! change and its record commit together or not at all; the [`relay`] publishes them to Kafka.
//!
//! A tenant transaction that wrote anything cannot commit without at least one audit record:
//! [`crate::db::TenantTx::commit`] asks PostgreSQL whether the transaction wrote (it has a
//! transaction id only then) and refuses an unaudited write. Forgetting the audit record is a
//! failed request in tests, never a silent gap in the audit trail.
//!
//! Payloads carry ids and field names, never plaintext personal data: values that are PII are
//! omitted or sealed under the subject's key by the caller.

pub mod relay;

/// The fields a mailed single-use token is sealed under in its domain event, under the
/// recipient's own key: producers seal with these names and the notifications worker opens
/// with them. A token in the outbox or in Kafka is never plaintext.
pub mod sealed {
    pub const EMAIL_VERIFICATION_TOKEN: &str = "events.email_verification_token";
    pub const PASSWORD_RESET_TOKEN: &str = "events.password_reset_token";
    pub const INVITATION_TOKEN: &str = "events.invitation_token";
    /// Identity checks and export downloads of data-subject requests.
    pub const PRIVACY_TOKEN: &str = "events.privacy_token";
    /// A customer's confirmation of a grant staff recorded for them (double opt-in).
    pub const CONSENT_TOKEN: &str = "events.consent_token";
}

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use serde::Serialize;
use serde_json::Value;

use crate::{
    db::TenantTx,
    http::request_id,
    id::{TenantId, UserId},
    pii::SubjectId,
};

pub const AUDIT_TOPIC: &str = "warung.audit.v1";
pub const EVENTS_TOPIC: &str = "warung.events.v1";
pub const SCHEMA_VERSION: i16 = 1;

crate::id_type!(
    /// A published event's id (UUIDv7): consumers are idempotent on it.
    EventId
);

/// Who did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// A signed-in staff user.
    User { id: UserId },
    /// The data subject acting on their own data (e.g. a customer's data-rights request).
    Subject { id: SubjectId },
    /// Warung itself: a job or worker, named.
    System { name: &'static str },
}

/// What was acted on: one thing, or several of a kind (then the record lists them as subjects).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resource {
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl Resource {
    pub fn new(kind: &'static str, id: impl ToString) -> Self {
        Self {
            kind,
            id: Some(id.to_string()),
        }
    }

    /// Several things of `kind` at once (a page of a list).
    pub fn several(kind: &'static str) -> Self {
        Self { kind, id: None }
    }
}

/// One audit record per change (or per read of personal data: `pii.accessed`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub actor: Actor,
    /// `resource.verb`, e.g. `customer.created`, `pii.accessed`.
    pub action: &'static str,
    pub resource: Resource,
    /// Names of the fields the change touched; never their values.
    pub changed_fields: Vec<&'static str>,
    /// Extra non-PII facts (e.g. `{"purpose": "notification"}` for `pii.accessed`).
    pub details: Value,
    /// The people a record about several of them concerns (ids), e.g. everyone one page of a
    /// list showed. A person's export and the trail filter find the record by any of them.
    pub subjects: Vec<String>,
}

impl AuditRecord {
    pub fn new(actor: Actor, action: &'static str, resource: Resource) -> Self {
        Self {
            actor,
            action,
            resource,
            changed_fields: Vec::new(),
            details: Value::Null,
            subjects: Vec::new(),
        }
    }

    /// The one `pii.accessed` record of everything one answer showed: the `kind` records with
    /// `ids`, opened for `purpose`. One id is the record's resource; more (a page) are listed as
    /// its subjects, so a list of 200 is one record, not 200. `None` when nothing was shown.
    pub fn opened<I: ToString>(
        actor: Actor,
        kind: &'static str,
        ids: impl IntoIterator<Item = I>,
        purpose: &'static str,
    ) -> Option<Self> {
        let mut subjects: Vec<String> = ids.into_iter().map(|id| id.to_string()).collect();
        let resource = match subjects.as_slice() {
            [] => return None,
            [one] => Resource::new(kind, one),
            _ => Resource::several(kind),
        };
        if resource.id.is_some() {
            subjects.clear();
        }
        let mut record = Self::new(actor, "pii.accessed", resource)
            .details(serde_json::json!({ "purpose": purpose }));
        record.subjects = subjects;
        Some(record)
    }

    pub fn fields(mut self, fields: &[&'static str]) -> Self {
        self.changed_fields = fields.to_vec();
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// The outbox payload (and, inside the envelope, what the audit chain hashes).
    fn payload(&self) -> Value {
        let mut payload = serde_json::json!({
            "action": self.action,
            "resource": self.resource,
            "changed_fields": self.changed_fields,
            "details": self.details,
        });
        if !self.subjects.is_empty() {
            payload["subjects"] = serde_json::json!(self.subjects);
        }
        payload
    }
}

/// A fact other parts of the system react to (`order.paid` → receipt mail). Ids only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainEvent {
    pub actor: Actor,
    /// e.g. `order.paid`.
    pub event_type: &'static str,
    pub payload: Value,
}

/// Marks a transaction as audited (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Audited;

tokio::task_local! {
    /// Audit records committed while serving one request (see [`tally`]).
    static COMMITTED: Arc<AtomicU64>;
}

/// Runs `work` (one request) and answers how many audit records it committed: what the request
/// added to the shared audit pipeline, which the tenant's audit budget counts.
pub async fn tally<F: std::future::Future>(work: F) -> (F::Output, u64) {
    let committed = Arc::new(AtomicU64::new(0));
    let output = COMMITTED.scope(Arc::clone(&committed), work).await;
    (output, committed.load(Ordering::Relaxed))
}

/// Writes `record` to the outbox in `tx`. Returns its event id.
pub async fn emit_audit(tx: &mut TenantTx, record: &AuditRecord) -> Result<EventId, sqlx::Error> {
    if let Ok(committed) = COMMITTED.try_with(Arc::clone) {
        tx.after_commit(async move {
            committed.fetch_add(1, Ordering::Relaxed);
        });
    }
    let payload = record.payload();
    let tenant = tx.tenant();
    let id = insert(
        tx,
        tenant,
        AUDIT_TOPIC,
        record.action,
        &record.actor,
        payload,
    )
    .await?;
    tx.extensions_mut().insert(Audited);
    Ok(id)
}

/// Writes `record` for `tenant` from a cross-tenant worker's own transaction (a retention job
/// records what it removed in the same transaction as the removal).
pub async fn emit_audit_for(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    record: &AuditRecord,
) -> Result<EventId, sqlx::Error> {
    let payload = record.payload();
    insert(
        conn,
        tenant,
        AUDIT_TOPIC,
        record.action,
        &record.actor,
        payload,
    )
    .await
}

/// Writes `event` for `tenant` from a cross-tenant worker's own transaction (the retention job
/// announcing a deletion).
pub async fn emit_event_for(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    event: &DomainEvent,
) -> Result<EventId, sqlx::Error> {
    insert(
        conn,
        tenant,
        EVENTS_TOPIC,
        event.event_type,
        &event.actor,
        event.payload.clone(),
    )
    .await
}

/// Writes `event` to the outbox in `tx`. A domain event does not replace the audit record.
pub async fn emit_event(tx: &mut TenantTx, event: &DomainEvent) -> Result<EventId, sqlx::Error> {
    let tenant = tx.tenant();
    insert(
        tx,
        tenant,
        EVENTS_TOPIC,
        event.event_type,
        &event.actor,
        event.payload.clone(),
    )
    .await
}

async fn insert(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    topic: &'static str,
    event_type: &'static str,
    actor: &Actor,
    payload: Value,
) -> Result<EventId, sqlx::Error> {
    let id = EventId::new();
    let actor = serde_json::to_value(actor).unwrap_or(Value::Null);
    let request_id = request_id::current().map(|r| r.to_string());
    sqlx::query!(
        "insert into outbox (tenant_id, event_id, topic, event_type, schema_version, actor, request_id, payload)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
        tenant.0,
        id.0,
        topic,
        event_type,
        SCHEMA_VERSION,
        actor,
        request_id,
        payload,
    )
    .execute(conn)
    .await?;
    metrics::counter!("outbox_emitted_total", "topic" => topic).increment(1);
    Ok(id)
}
