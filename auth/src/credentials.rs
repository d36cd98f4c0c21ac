//! Password hashes and mailed single-use tokens (email verification, password reset).

use chrono::{DateTime, TimeDelta, Utc};
use platform::{
    Result,
    db::TenantTx,
    events::{self, Actor, AuditRecord, DomainEvent, Resource},
    id::UserId,
    pii::{PiiCipher, Subject, SubjectKind},
    tokens::{self, TokenHash},
};
use secrecy::ExposeSecret;

/// Sets (or replaces) a password hash with its audit record (`credentials.set`).
pub async fn set_password(tx: &mut TenantTx, actor: Actor, user: UserId, hash: &str) -> Result<()> {
    let tenant = tx.tenant();
    sqlx::query!(
        "insert into credentials (tenant_id, user_id, password_hash, updated_at) values ($1, $2, $3, now())
         on conflict (tenant_id, user_id) do update set password_hash = excluded.password_hash, updated_at = now()",
        tenant.0,
        user.0,
        hash
    )
    .execute(&mut **tx)
    .await?;
    let record = AuditRecord::new(actor, "credentials.set", Resource::new("staff", user))
        .fields(&["password"]);
    events::emit_audit(tx, &record).await?;
    Ok(())
}

/// Removes what lets `user` sign in: the password hash, and every mailed token still open
/// (marked used, so the links die; retention sweeps the rows). Audited `credentials.removed`
/// when there was a hash. Idempotent.
pub async fn forget(tx: &mut TenantTx, actor: Actor, user: UserId) -> Result<()> {
    let removed = sqlx::query!("delete from credentials where user_id = $1", user.0)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    sqlx::query!(
        "update auth_tokens set used_at = now() where user_id = $1 and used_at is null",
        user.0
    )
    .execute(&mut **tx)
    .await?;
    if removed > 0 {
        let record = AuditRecord::new(actor, "credentials.removed", Resource::new("staff", user))
            .fields(&["password"]);
        events::emit_audit(tx, &record).await?;
    }
    Ok(())
}

pub async fn password_hash(tx: &mut TenantTx, user: UserId) -> Result<Option<String>> {
    Ok(sqlx::query_scalar!(
        "select password_hash from credentials where user_id = $1",
        user.0
    )
    .fetch_optional(&mut **tx)
    .await?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    EmailVerification,
    PasswordReset,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::EmailVerification => "email_verification",
            Self::PasswordReset => "password_reset",
        }
    }

    /// The domain event that carries the link to the notifications worker.
    fn event(self) -> &'static str {
        match self {
            Self::EmailVerification => "staff.email_verification_requested",
            Self::PasswordReset => "staff.password_reset_requested",
        }
    }

    /// The field the token is sealed under in its event, under the user's own key.
    pub fn sealed_field(self) -> &'static str {
        match self {
            Self::EmailVerification => events::sealed::EMAIL_VERIFICATION_TOKEN,
            Self::PasswordReset => events::sealed::PASSWORD_RESET_TOKEN,
        }
    }
}

/// Issues a single-use token for `user` and emits the event the mail is sent from. The token
/// travels sealed under the user's key: no plaintext token in the outbox or in Kafka.
pub async fn issue_token(
    pii: &PiiCipher,
    tx: &mut TenantTx,
    actor: Actor,
    user: UserId,
    purpose: Purpose,
    now: DateTime<Utc>,
    ttl: TimeDelta,
) -> Result<()> {
    let issued = tokens::issue(tx.tenant());
    let tenant = tx.tenant();
    let expires_at = now + ttl;
    sqlx::query!(
        "insert into auth_tokens (tenant_id, token_hash, purpose, user_id, created_at, expires_at)
         values ($1, $2, $3, $4, $5, $6)",
        tenant.0,
        issued.hash.0,
        purpose.as_str(),
        user.0,
        now,
        expires_at,
    )
    .execute(&mut **tx)
    .await?;
    let subject = Subject {
        id: user.into(),
        kind: SubjectKind::Staff,
    };
    let sealed = pii
        .seal(
            tx,
            subject,
            purpose.sealed_field(),
            issued.text.expose_secret(),
        )
        .await?;
    let record = AuditRecord::new(actor, "auth_token.issued", Resource::new("staff", user))
        .details(serde_json::json!({ "purpose": purpose.as_str(), "expires_at": expires_at }));
    events::emit_audit(tx, &record).await?;
    let event = DomainEvent {
        actor,
        event_type: purpose.event(),
        payload: serde_json::json!({
            "user_id": user,
            "token_sealed": sealed.to_base64(),
            "expires_at": expires_at,
        }),
    };
    events::emit_event(tx, &event).await?;
    Ok(())
}

/// Uses a token: returns its user if it was issued for `purpose`, unused and unexpired, and
/// marks it used. Anything else is `None`, whichever the reason.
pub async fn use_token(
    tx: &mut TenantTx,
    hash: &TokenHash,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Result<Option<UserId>> {
    let user = sqlx::query_scalar!(
        "update auth_tokens set used_at = $3
         where token_hash = $1 and purpose = $2 and used_at is null and expires_at > $3
         returning user_id",
        hash.0,
        purpose.as_str(),
        now
    )
    .fetch_optional(&mut **tx)
    .await?;
    let user = user.map(UserId);
    if let Some(user) = user {
        let record = AuditRecord::new(
            Actor::User { id: user },
            "auth_token.used",
            Resource::new("staff", user),
        )
        .details(serde_json::json!({ "purpose": purpose.as_str() }));
        events::emit_audit(tx, &record).await?;
    }
    Ok(user)
}

/// Voids every other outstanding token of `user` for `purpose` (after a reset, older links die).
pub async fn void_tokens(
    tx: &mut TenantTx,
    user: UserId,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query!(
        "update auth_tokens set used_at = $3 where user_id = $1 and purpose = $2 and used_at is null",
        user.0,
        purpose.as_str(),
        now
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
