//! What `notifications` holds on a person: the log of mails sent to them (template, status,
//! times; never a body, never an address). At erasure: everything still waiting for them is
//! cancelled, and the completion mail is their farewell, sent while their key still opens the
//! address.

use platform::{
    AppState, Result,
    authz::BoxFuture,
    db::{SystemDb, TenantTx},
    pii::Subject,
    privacy::{Erasure, Farewell, Section, SubjectDataProvider},
};

use crate::{Recipient, Template, repo};

#[derive(Debug)]
pub struct Provider;

/// Mails listed in an export (a person's mail log is short; a bound keeps a bundle bounded).
const EXPORT_LIMIT: i64 = 10_000;

impl SubjectDataProvider for Provider {
    fn module(&self) -> &'static str {
        "notifications"
    }

    fn export<'a>(
        &'a self,
        _state: &'a AppState,
        tx: &'a mut TenantTx,
        subject: Subject,
    ) -> BoxFuture<'a, Result<Vec<Section>>> {
        Box::pin(async move {
            let filter = repo::Filter {
                recipient: Some(subject.id.0),
                ..repo::Filter::default()
            };
            let mut section = Section::new("notifications.deliveries");
            for row in repo::list(tx, &filter, EXPORT_LIMIT).await? {
                section.push(serde_json::json!({
                    "id": row.id, "template": row.template, "event_type": row.event_type,
                    "status": row.status, "attempts": row.attempts,
                    "created_at": row.created_at, "sent_at": row.sent_at,
                }))?;
            }
            Ok(vec![section])
        })
    }

    fn erase<'a>(
        &'a self,
        _state: &'a AppState,
        tx: &'a mut TenantTx,
        erasure: &'a Erasure,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            crate::cancel_for_subject(tx, erasure.actor, erasure.subject.id).await?;
            Ok(())
        })
    }

    fn farewell<'a>(
        &'a self,
        state: &'a AppState,
        system: &'a SystemDb,
        erasure: &'a Erasure,
    ) -> BoxFuture<'a, Farewell> {
        Box::pin(async move {
            let recipient = Recipient {
                kind: erasure.subject.kind,
                id: erasure.subject.id,
            };
            let sent = crate::deliver_now(
                state,
                system,
                erasure.tenant,
                erasure.request,
                recipient,
                Template::ErasureCompleted,
                serde_json::json!({}),
            )
            .await;
            if let Err(err) = &sent {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "erasure mail not sent; the erasure waits"
                );
            }
            if matches!(sent, Ok(true)) {
                return Farewell::Done;
            }
            let template = Template::ErasureCompleted.name();
            let Ok(Some((id, status, reason))) =
                repo::find(system, erasure.tenant, erasure.request, template).await
            else {
                return Farewell::Later;
            };
            let reason = reason.unwrap_or_else(|| status.clone());
            match status.as_str() {
                // No address, or refused for good: the erasure must not wait forever.
                "cancelled" => Farewell::Undeliverable(reason),
                "dead" => Farewell::Undeliverable(format!("refused: {reason}")),
                // Not sendable now (SMTP or Vault down): the erasure waits, but not past
                // `privacy.farewell_deadline_margin_hours` before the request is due. The law's
                // clock outranks the courtesy.
                _ if state.clock.now()
                    >= erasure.due_at
                        - chrono::TimeDelta::hours(
                            state.config.privacy.farewell_deadline_margin_hours,
                        ) =>
                {
                    if let Err(err) =
                        repo::cancel_one(system, erasure.tenant, id, "gave_up_before_due").await
                    {
                        tracing::warn!(error = %err, "the given-up farewell stays queued");
                    }
                    Farewell::Undeliverable(format!("not sent before the due date: {reason}"))
                }
                _ => Farewell::Later,
            }
        })
    }
}
