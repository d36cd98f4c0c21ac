//! `Idempotency-Key` on the POSTs that move money (create order, pay, refund).
//!
//! The key's row is inserted first, in the request's own transaction. A retry that arrives
//! while the first attempt runs waits on the unique key until that transaction ends: then it
//! either finds the stored response (replayed, with `Idempotent-Replayed: true`) or, if the
//! first attempt rolled back, goes ahead itself. Only successful responses are stored; a failed
//! attempt leaves no key behind and may be retried with the same key. The same key with another
//! request (another body or another target) is a 422 `idempotency_key_reused`.

use axum::{
    extract::FromRequestParts,
    http::{HeaderValue, StatusCode, request::Parts},
    response::{IntoResponse, Response},
};
use platform::{
    Error, Result,
    db::TenantTx,
    http::Json,
    pii::{IndexKind, PiiCipher},
};
use serde::Serialize;
use serde_json::Value;

pub const HEADER: &str = "idempotency-key";

/// The client's key for one operation (1 to 255 visible ASCII characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(value: &str) -> Option<Self> {
        let ok = (1..=255).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(value.to_owned()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        let Some(value) = parts.headers.get(HEADER) else {
            return Err(Error::bad_request(
                "idempotency_key_required",
                "This request moves money: send an Idempotency-Key header (e.g. a UUID) and reuse it when retrying.",
            ));
        };
        value.to_str().ok().and_then(Self::parse).ok_or_else(|| {
            Error::bad_request(
                "idempotency_key_invalid",
                "Idempotency-Key must be 1 to 255 visible ASCII characters.",
            )
        })
    }
}

/// What a claimed key says.
#[derive(Debug)]
pub enum Claim {
    /// First time: do the work, then [`complete`].
    New,
    /// Done before: answer with this.
    Replay(Replay),
}

#[derive(Debug)]
pub struct Replay {
    status: StatusCode,
    body: Value,
}

impl IntoResponse for Replay {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        response
    }
}

/// What identifies a request: its scope and body. A body may hold a guest customer's details,
/// so only an HMAC under the tenant's index key is stored (a plain hash would confirm a guess).
fn canonical(scope: &str, request: &impl Serialize) -> Result<String> {
    let body = serde_json::to_string(request).map_err(|e| Error::Internal(e.into()))?;
    Ok(format!("{scope}\n{body}"))
}

/// Claims `key` for `scope` (the operation and its target, e.g. `POST /orders/{id}/payments`
/// with the id filled in) and `request` (the parsed body).
pub async fn claim(
    pii: &PiiCipher,
    tx: &mut TenantTx,
    key: &IdempotencyKey,
    scope: &str,
    request: &impl Serialize,
) -> Result<Claim> {
    let canonical = canonical(scope, request)?;
    let hash = pii.blind_index(tx, IndexKind::Request, &canonical).await?.0;
    let tenant = tx.tenant();
    let inserted = sqlx::query_scalar!(
        "insert into idempotency_keys (tenant_id, key, scope, request_hash, created_at)
         values ($1, $2, $3, $4, now())
         on conflict (tenant_id, key) do nothing returning key",
        tenant.0,
        key.0,
        scope,
        hash,
    )
    .fetch_optional(&mut **tx)
    .await?;
    if inserted.is_some() {
        return Ok(Claim::New);
    }
    let stored = sqlx::query!(
        "select request_hash, response_status, response_body from idempotency_keys where key = $1",
        key.0
    )
    .fetch_one(&mut **tx)
    .await?;
    if stored.request_hash != hash {
        return Err(Error::unprocessable(
            "idempotency_key_reused",
            "This Idempotency-Key was used for another request; use a new key for a new request.",
        ));
    }
    match (stored.response_status, stored.response_body) {
        (Some(status), Some(body)) => Ok(Claim::Replay(Replay {
            status: u16::try_from(status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::OK),
            body,
        })),
        // Stored without a response: a bug in the handler that claimed it.
        _ => Err(Error::Internal(anyhow::anyhow!(
            "idempotency key stored without a response"
        ))),
    }
}

/// Finishes a [`Claim::New`] request: stores `body` as the key's answer in the same
/// transaction as the work, commits both, and answers 201 with it.
pub async fn commit_created(
    mut tx: TenantTx,
    key: &IdempotencyKey,
    body: &impl Serialize,
) -> Result<Response> {
    let status = StatusCode::CREATED;
    let body = serde_json::to_value(body).map_err(|e| Error::Internal(e.into()))?;
    sqlx::query!(
        "update idempotency_keys set response_status = $2, response_body = $3 where key = $1",
        key.0,
        i16::try_from(status.as_u16()).unwrap_or(200),
        body,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((status, Json(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_short_visible_ascii() {
        assert!(IdempotencyKey::parse("0190b7c2-6f1e-7c9a-9a0b-3f1f2d4c5e6f").is_some());
        assert!(IdempotencyKey::parse("").is_none());
        assert!(IdempotencyKey::parse("has space").is_none());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_none());
    }

    #[test]
    fn the_fingerprint_covers_scope_and_body() {
        let body = serde_json::json!({"lines": [{"product_id": "a", "quantity": 1}]});
        let other = serde_json::json!({"lines": [{"product_id": "a", "quantity": 2}]});
        let a = canonical("POST /orders", &body).unwrap();
        assert_eq!(a, canonical("POST /orders", &body).unwrap());
        assert_ne!(a, canonical("POST /orders", &other).unwrap());
        assert_ne!(a, canonical("POST /orders/x/payments", &body).unwrap());
    }
}
