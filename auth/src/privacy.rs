//! What `auth` holds on a staff member, for their export and erasure: their sessions (when
//! they signed in, until when, how each ended), the mailed tokens issued to them (purpose and
//! dates, never the token), and whether a password is set (never the hash). Customers have no
//! account, so nothing here is about them.

use platform::{
    AppState, Result,
    authz::BoxFuture,
    db::TenantTx,
    id::UserId,
    pii::{Subject, SubjectKind},
    privacy::{Erasure, Section, SubjectDataProvider},
};

#[derive(Debug)]
pub struct Provider;

impl SubjectDataProvider for Provider {
    fn module(&self) -> &'static str {
        "auth"
    }

    fn export<'a>(
        &'a self,
        _state: &'a AppState,
        tx: &'a mut TenantTx,
        subject: Subject,
    ) -> BoxFuture<'a, Result<Vec<Section>>> {
        Box::pin(async move {
            if subject.kind != SubjectKind::Staff {
                return Ok(Vec::new());
            }
            let user = subject.id.0;
            let mut signins = Section::new("auth.sessions");
            for row in sqlx::query!(
                "select id, created_at, expires_at, refreshed_at, revoked_at, revoked_reason
                 from sessions where user_id = $1 order by created_at",
                user
            )
            .fetch_all(&mut **tx)
            .await?
            {
                signins.push(serde_json::json!({
                    "id": row.id, "signed_in_at": row.created_at, "expires_at": row.expires_at,
                    "last_refreshed_at": row.refreshed_at, "ended_at": row.revoked_at,
                    "ended_because": row.revoked_reason,
                }))?;
            }
            let mut tokens = Section::new("auth.mailed_tokens");
            for row in sqlx::query!(
                "select purpose, created_at, expires_at, used_at from auth_tokens
                 where user_id = $1 order by created_at",
                user
            )
            .fetch_all(&mut **tx)
            .await?
            {
                tokens.push(serde_json::json!({
                    "purpose": row.purpose, "issued_at": row.created_at,
                    "expires_at": row.expires_at, "used_at": row.used_at,
                }))?;
            }
            let mut password = Section::new("auth.password");
            let set = sqlx::query_scalar!(
                "select updated_at from credentials where user_id = $1",
                user
            )
            .fetch_optional(&mut **tx)
            .await?;
            password.push(serde_json::json!({
                "password_set": set.is_some(), "changed_at": set,
            }))?;
            Ok(vec![signins, tokens, password])
        })
    }

    /// Nothing to sign in with is left: sessions end, the password hash goes, open mailed
    /// tokens die. Session and token rows keep only dates and ids; retention removes them.
    fn erase<'a>(
        &'a self,
        state: &'a AppState,
        tx: &'a mut TenantTx,
        erasure: &'a Erasure,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if erasure.subject.kind != SubjectKind::Staff {
                return Ok(());
            }
            let user = UserId(erasure.subject.id.0);
            state
                .sessions
                .close_account(tx, erasure.actor, user, "erased")
                .await
        })
    }
}
