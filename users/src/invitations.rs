//! Staff invitations: an owner or manager invites someone by email; the invitee accepts through
//! a single-use, expiring link (accepting, which also sets a password, is `auth`'s route; this
//! is the part that belongs to the account).

use chrono::{DateTime, TimeDelta, Utc};
use platform::{
    Error, Result, Role,
    db::TenantTx,
    events::{self, Actor, AuditRecord, DomainEvent, Resource},
    id::UserId,
    pii::PiiCipher,
    tokens::{self, TokenHash},
};
use secrecy::ExposeSecret;

use crate::staff::{self, Locale, NewStaff, StaffUser, Status};

/// The field name a mailed token is sealed under in its event (for the notifications worker).
pub const TOKEN_FIELD: &str = events::sealed::INVITATION_TOKEN;

#[derive(Debug, Clone, Copy)]
pub struct Invitation {
    pub id: uuid::Uuid,
    pub user: UserId,
    pub expires_at: DateTime<Utc>,
}

/// Creates the invited (not yet active) account and its invitation, and emits `staff.invited`
/// with the link's token sealed under the invitee's key.
#[allow(clippy::too_many_arguments, reason = "an invitation has many parts")]
pub async fn create(
    pii: &PiiCipher,
    tx: &mut TenantTx,
    inviter: UserId,
    email: &str,
    role: Role,
    locale: Locale,
    ttl: TimeDelta,
    now: DateTime<Utc>,
) -> Result<Invitation> {
    let actor = Actor::User { id: inviter };
    let user = staff::create(
        pii,
        tx,
        actor,
        NewStaff {
            id: UserId::new(),
            full_name: None,
            email,
            phone: None,
            role,
            locale,
            status: Status::Invited,
        },
    )
    .await?;
    let issued = tokens::issue(tx.tenant());
    let id = uuid::Uuid::now_v7();
    let expires_at = now + ttl;
    let tenant = tx.tenant();
    sqlx::query!(
        "insert into staff_invitations (tenant_id, id, user_id, token_hash, invited_by, expires_at, created_at)
         values ($1, $2, $3, $4, $5, $6, $7)",
        tenant.0,
        id,
        user.id.0,
        issued.hash.0,
        inviter.0,
        expires_at,
        now,
    )
    .execute(&mut **tx)
    .await?;
    let sealed = pii
        .seal(
            tx,
            staff::subject(user.id),
            TOKEN_FIELD,
            issued.text.expose_secret(),
        )
        .await?;
    let record = AuditRecord::new(actor, "invitation.created", Resource::new("invitation", id))
        .details(serde_json::json!({ "user_id": user.id, "role": role, "expires_at": expires_at }));
    events::emit_audit(tx, &record).await?;
    let event = DomainEvent {
        actor,
        event_type: "staff.invited",
        payload: serde_json::json!({
            "user_id": user.id,
            "invitation_id": id,
            "token_sealed": sealed.to_base64(),
            "expires_at": expires_at,
        }),
    };
    events::emit_event(tx, &event).await?;
    Ok(Invitation {
        id,
        user: user.id,
        expires_at,
    })
}

/// Accepts the invitation whose token hashes to `hash`: the account becomes active with its
/// name, its email counts as verified (the link reached it). Single use; expired or unknown
/// links are a 400 `invalid_token`, whichever it was.
pub async fn accept(
    pii: &PiiCipher,
    tx: &mut TenantTx,
    hash: &TokenHash,
    full_name: &str,
    now: DateTime<Utc>,
) -> Result<StaffUser> {
    let invalid = || Error::bad_request("invalid_token", "The link is invalid, used or expired.");
    let row = sqlx::query!(
        "select id, user_id, expires_at, accepted_at from staff_invitations where token_hash = $1 for update",
        hash.0
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(invalid)?;
    if row.accepted_at.is_some() || row.expires_at <= now {
        return Err(invalid());
    }
    let user = UserId(row.user_id);
    let current = staff::get_live_for_update(tx, user)
        .await
        .map_err(|_| invalid())?;
    if current.status != Status::Invited {
        return Err(invalid());
    }
    sqlx::query!(
        "update staff_invitations set accepted_at = $2 where id = $1",
        row.id,
        now
    )
    .execute(&mut **tx)
    .await?;
    let name = pii
        .seal(tx, staff::subject(user), "staff_users.full_name", full_name)
        .await?;
    sqlx::query!(
        "update staff_users set status = 'active', full_name = $2, email_verified_at = $3, updated_at = $3
         where id = $1",
        user.0,
        name as platform::pii::Sealed,
        now
    )
    .execute(&mut **tx)
    .await?;
    let actor = Actor::User { id: user };
    let record = AuditRecord::new(
        actor,
        "invitation.accepted",
        Resource::new("invitation", row.id),
    );
    events::emit_audit(tx, &record).await?;
    let record = AuditRecord::new(actor, "staff.activated", Resource::new("staff", user))
        .fields(&["status", "full_name", "email_verified_at"]);
    events::emit_audit(tx, &record).await?;
    Ok(StaffUser {
        status: Status::Active,
        email_verified_at: Some(now),
        ..current
    })
}
