//! Double opt-in: a grant that staff record for a customer, for a purpose that needs it
//! (`privacy_purposes.double_opt_in`: marketing), waits for the customer's own confirmation.
//! They get a mail with a single-use link (`consent.confirmation_requested`); the portal page
//! it opens posts the token to `POST /api/v1/consents/confirm`, which records the grant with
//! method `confirmation` and the customer's own evidence. Until then nothing that needs the
//! purpose treats it as granted, so a shop cannot mail its news to an address it typed in.
//!
//! One open link per person and purpose: asking again while a link is still valid mails
//! nothing new. Confirming a grant that staff have since withdrawn does nothing.

use chrono::{DateTime, Utc};
use platform::{
    AppState, Error, Result,
    db::TenantTx,
    events::{self, Actor, DomainEvent},
    pii::{PiiCipher, Subject, SubjectId, SubjectKind},
    tokens,
};
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Audience, Choice, Evidence, Method};

/// How long a confirmation link works.
pub const VALID_DAYS: i32 = 14;

/// Mails the customer a link to confirm `purpose`, unless a link for it is still open.
pub async fn request(
    pii: &PiiCipher,
    tx: &mut TenantTx,
    actor: Actor,
    subject: SubjectId,
    purpose: &str,
) -> Result<()> {
    let open = sqlx::query_scalar!(
        r#"select exists (select 1 from consent_confirmations
            where subject_id = $1 and purpose = $2 and confirmed_at is null and expires_at > now()) as "open!""#,
        subject.0,
        purpose
    )
    .fetch_one(&mut **tx)
    .await?;
    if open {
        return Ok(());
    }
    let issued = tokens::issue(tx.tenant());
    let expires_at: DateTime<Utc> = sqlx::query_scalar!(
        "insert into consent_confirmations (tenant_id, id, subject_id, purpose, token_hash, created_at, expires_at)
         values ($1, $2, $3, $4, $5, now(), now() + make_interval(days => $6))
         returning expires_at",
        tx.tenant().0,
        uuid::Uuid::now_v7(),
        subject.0,
        purpose,
        issued.hash.0,
        VALID_DAYS,
    )
    .fetch_one(&mut **tx)
    .await?;
    let person = Subject {
        id: subject,
        kind: SubjectKind::Customer,
    };
    let sealed = pii
        .seal(
            tx,
            person,
            events::sealed::CONSENT_TOKEN,
            issued.text.expose_secret(),
        )
        .await?;
    let event = DomainEvent {
        actor,
        event_type: "consent.confirmation_requested",
        payload: serde_json::json!({
            "subject": { "kind": "customer", "id": subject },
            "purpose": purpose,
            "token_sealed": sealed.to_base64(),
            "expires_at": expires_at,
        }),
    };
    events::emit_event(tx, &event).await?;
    Ok(())
}

/// What a confirmation link did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Confirmed {
    /// The purpose now granted.
    pub purpose: String,
    pub granted: bool,
}

fn invalid_link() -> Error {
    Error::bad_request("invalid_token", "The link is invalid, used or expired.")
}

/// Uses a confirmation link: the grant it was mailed for counts from now on, with the
/// customer's own evidence. A link whose grant was withdrawn in the meantime, or whose
/// customer is erased or restricted, is no longer valid.
pub async fn confirm(state: &AppState, token: &str, evidence: &Evidence) -> Result<Confirmed> {
    let (tenant, hash) = tokens::parse(token).ok_or_else(invalid_link)?;
    let mut tx = state.db.tenant(tenant).begin().await?;
    let link = sqlx::query!(
        "select k.id, k.subject_id, k.purpose from consent_confirmations k
         join customers c on c.id = k.subject_id
         where k.token_hash = $1 and k.confirmed_at is null and k.expires_at > now()
           and c.erased_at is null and c.restricted_at is null
         for update of k",
        hash.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(invalid_link)?;
    let subject = SubjectId(link.subject_id);
    let waiting = super::current(&mut tx, subject)
        .await?
        .into_iter()
        .any(|c| c.purpose == link.purpose && c.awaiting_confirmation);
    if !waiting {
        return Err(invalid_link());
    }
    sqlx::query!(
        "update consent_confirmations set confirmed_at = now() where id = $1",
        link.id
    )
    .execute(&mut *tx)
    .await?;
    let choice = Choice {
        purpose: link.purpose.clone(),
        granted: true,
    };
    super::record(
        &state.db,
        &state.pii,
        &mut tx,
        Actor::Subject { id: subject },
        Audience::Customer,
        subject,
        &[choice],
        Method::Confirmation,
        evidence,
    )
    .await?;
    tx.commit().await?;
    Ok(Confirmed {
        purpose: link.purpose,
        granted: true,
    })
}
