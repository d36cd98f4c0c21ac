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
            match sent {
                Ok(true) => Farewell::Done,
                Ok(false) => {
                    let status = repo::find(
                        system,
                        erasure.tenant,
                        erasure.request,
                        Template::ErasureCompleted.name(),
                    )
                    .await;
                    match status {
                        // No address, or refused for good: the erasure must not wait forever.
                        Ok(Some((_, status))) if status == "cancelled" => {
                            Farewell::Undeliverable("no_address")
                        }
                        Ok(Some((_, status))) if status == "dead" => {
                            Farewell::Undeliverable("refused")
                        }
                        _ => Farewell::Later,
                    }
                }
                Err(err) => {
                    tracing::warn!(
                        error = format!("{err:#}"),
                        "erasure mail not sent; the erasure waits"
                    );
                    Farewell::Later
                }
            }
        })
    }
}
