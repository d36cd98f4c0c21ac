//! What `users` holds on a person, for their export and erasure: the profile (staff or
//! customer), every consent record, and their data-subject requests.

use platform::{
    AppState, Result,
    authz::BoxFuture,
    db::TenantTx,
    events::{self, Actor, AuditRecord, Resource},
    id::UserId,
    pii::{Opened, Sealed, Subject, SubjectKind},
    privacy::{Erasure, Section, SubjectDataProvider},
};

use crate::{customers, staff};

#[derive(Debug)]
pub struct Provider;

const PURPOSE: &str = "data_subject_request";

impl SubjectDataProvider for Provider {
    fn module(&self) -> &'static str {
        "users"
    }

    fn export<'a>(
        &'a self,
        state: &'a AppState,
        tx: &'a mut TenantTx,
        subject: Subject,
    ) -> BoxFuture<'a, Result<Vec<Section>>> {
        Box::pin(async move {
            let actor = Actor::Subject { id: subject.id };
            let mut profile = Section::new("users.profile");
            match subject.kind {
                SubjectKind::Customer => {
                    let customer =
                        customers::profile(&state.pii, tx, actor, PURPOSE, subject.id.0.into())
                            .await?;
                    profile.push(serde_json::json!({
                        "kind": "customer",
                        "id": customer.id,
                        "full_name": customer.full_name.as_ref().map(|v| v.expose()),
                        "email": customer.email.as_ref().map(|v| v.expose()),
                        "phone": customer.phone.as_ref().map(|v| v.expose()),
                        "address": customer.address.as_ref().map(|v| v.expose()),
                        "locale": customer.locale,
                        "guest": customer.guest,
                        "created_at": customer.created_at,
                    }))?;
                }
                _ => {
                    let member = staff::profile_of_subject(
                        &state.pii,
                        tx,
                        actor,
                        PURPOSE,
                        UserId(subject.id.0),
                    )
                    .await?;
                    profile.push(serde_json::json!({
                        "kind": "staff",
                        "id": member.id,
                        "role": member.role,
                        "status": member.status,
                        "full_name": member.full_name.as_ref().map(|v| v.expose()),
                        "email": member.email.as_ref().map(|v| v.expose()),
                        "phone": member.phone.as_ref().map(|v| v.expose()),
                        "locale": member.locale,
                        "email_verified": member.email_verified,
                        "created_at": member.created_at,
                    }))?;
                }
            }
            let mut consents = Section::new("users.consents");
            for row in sqlx::query!(
                "select purpose, granted, policy_version, method, recorded_at
                 from consent_records where subject_id = $1 order by recorded_at, id",
                subject.id.0
            )
            .fetch_all(&mut **tx)
            .await?
            {
                consents.push(serde_json::json!({
                    "purpose": row.purpose, "granted": row.granted,
                    "policy_version": row.policy_version, "method": row.method,
                    "recorded_at": row.recorded_at,
                }))?;
            }
            let mut requests = Section::new("users.privacy_requests");
            for row in sqlx::query!(
                "select id, type, status, received_at, due_at, completed_at, outcome
                 from privacy_requests where subject_id = $1 order by id",
                subject.id.0
            )
            .fetch_all(&mut **tx)
            .await?
            {
                requests.push(serde_json::json!({
                    "id": row.id, "type": row.r#type, "status": row.status,
                    "received_at": row.received_at, "due_at": row.due_at,
                    "completed_at": row.completed_at, "outcome": row.outcome,
                }))?;
            }
            // Addresses the person had, kept 30 days after a change (opened: they are theirs).
            let mut addresses = Section::new("users.previous_addresses");
            for row in sqlx::query!(
                "select previous_email, changed_at from customer_email_changes
                 where customer_id = $1 order by changed_at, id",
                subject.id.0
            )
            .fetch_all(&mut **tx)
            .await?
            {
                let sealed = Sealed(row.previous_email);
                let opened = state
                    .pii
                    .open_many(tx, &[(subject.id, "customers.email", &sealed)])
                    .await?;
                if let Some(Opened::Value(email)) = opened.into_iter().next() {
                    addresses.push(serde_json::json!({
                        "email": email.expose(), "replaced_at": row.changed_at,
                    }))?;
                }
            }
            let mut sections = vec![profile, consents, requests];
            if !addresses.records.is_empty() {
                sections.push(addresses);
            }
            Ok(sections)
        })
    }

    /// Ends a staff member's sessions first, then unlinks the person from every blind index
    /// (an index is a keyed hash of the address: it would still confirm a guessed address
    /// after the shred) and marks them erased. The sealed fields stay until the shred makes
    /// them noise; the farewell mail still needs the address.
    fn erase<'a>(
        &'a self,
        state: &'a AppState,
        tx: &'a mut TenantTx,
        erasure: &'a Erasure,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let subject = erasure.subject;
            match subject.kind {
                SubjectKind::Staff => {
                    state
                        .sessions
                        .revoke_user(tx, erasure.actor, UserId(subject.id.0), "erased")
                        .await?;
                    sqlx::query!(
                        "update staff_users set status = 'deleted', deleted_at = coalesce(deleted_at, now()),
                             email_index = null, erased_at = coalesce(erased_at, now()), updated_at = now()
                         where id = $1",
                        subject.id.0
                    )
                    .execute(&mut **tx)
                    .await?;
                }
                _ => {
                    sqlx::query!(
                        "update customers set email_index = null, phone_index = null,
                             erased_at = coalesce(erased_at, now()), updated_at = now()
                         where id = $1",
                        subject.id.0
                    )
                    .execute(&mut **tx)
                    .await?;
                    // Open double opt-in links die with the person.
                    sqlx::query!(
                        "delete from consent_confirmations where subject_id = $1",
                        subject.id.0
                    )
                    .execute(&mut **tx)
                    .await?;
                    sqlx::query!(
                        "delete from customer_email_changes where customer_id = $1",
                        subject.id.0
                    )
                    .execute(&mut **tx)
                    .await?;
                }
            }
            let record = AuditRecord::new(
                erasure.actor,
                "subject.anonymized",
                Resource::new(subject.kind.as_str(), subject.id),
            )
            .fields(&["email_index", "erased_at"])
            .details(serde_json::json!({ "request_id": erasure.request }));
            events::emit_audit(tx, &record).await?;
            Ok(())
        })
    }
}
