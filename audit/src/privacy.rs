//! What the audit store holds on a person: the trail of what was done to and with their data,
//! including every opening of it (`pii.accessed`, with its purpose). An export lists it; an
//! erasure changes nothing here: audit records carry ids and field names, never values, so
//! after the shred they name nobody, and the store is append-only by law and by construction.

use platform::{
    AppState, Result,
    authz::BoxFuture,
    db::TenantTx,
    pii::Subject,
    privacy::{Erasure, Section, SubjectDataProvider},
};

#[derive(Debug)]
pub struct Provider;

/// Records listed in an export (newest kept when a person's trail is longer).
const EXPORT_LIMIT: i64 = 10_000;

impl SubjectDataProvider for Provider {
    fn module(&self) -> &'static str {
        "audit"
    }

    fn export<'a>(
        &'a self,
        _state: &'a AppState,
        tx: &'a mut TenantTx,
        subject: Subject,
    ) -> BoxFuture<'a, Result<Vec<Section>>> {
        Box::pin(async move {
            let id = subject.id.0.to_string();
            let mut section = Section::new("audit.events");
            for row in sqlx::query!(
                "select occurred_at, actor, resource_kind, resource_id, envelope
                 from audit_events
                 where resource_id = $1 or actor_id = $1 or audit_subjects(envelope) @> array[$1]
                 order by occurred_at desc limit $2",
                id,
                EXPORT_LIMIT
            )
            .fetch_all(&mut **tx)
            .await?
            {
                let payload = &row.envelope["payload"];
                section.push(serde_json::json!({
                    "occurred_at": row.occurred_at,
                    "action": payload["action"],
                    "by": row.actor["kind"],
                    "by_id": row.actor.get("id").or_else(|| row.actor.get("name")),
                    "resource_kind": row.resource_kind,
                    // A page record names the person, never the others it showed.
                    "resource_id": row.resource_id.or_else(|| listed(payload, &id)),
                    "fields": payload["changed_fields"],
                    "purpose": payload["details"].get("purpose"),
                }))?;
            }
            Ok(vec![section])
        })
    }

    fn erase<'a>(
        &'a self,
        _state: &'a AppState,
        _tx: &'a mut TenantTx,
        _erasure: &'a Erasure,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// `id` when the record lists it among its subjects.
fn listed(payload: &serde_json::Value, id: &str) -> Option<String> {
    payload["subjects"]
        .as_array()?
        .iter()
        .any(|s| s.as_str() == Some(id))
        .then(|| id.to_owned())
}
