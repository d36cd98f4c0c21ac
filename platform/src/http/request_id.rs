//! Every request gets an id: the caller's `x-request-id` when it is a sane token, else a fresh
//! UUIDv7. It is returned in the response header, attached to the request span and put into
//! every problem+json body, so a user quoting it lets an operator find the logs.

use std::{fmt, sync::Arc};

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");
const MAX_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

impl RequestId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string().into())
    }

    /// Accepts a caller-provided id only if it is short and made of `[A-Za-z0-9._-]`, so it
    /// can neither inject into logs nor smuggle data.
    pub fn from_header(value: &HeaderValue) -> Option<Self> {
        let text = value.to_str().ok()?;
        let ok = !text.is_empty()
            && text.len() <= MAX_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        ok.then(|| Self(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

tokio::task_local! {
    static CURRENT: RequestId;
}

/// The id of the request being handled by this task, if any.
pub fn current() -> Option<RequestId> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Runs `fut` with `id` as the current request id.
pub async fn scope<F: Future>(id: RequestId, fut: F) -> F::Output {
    CURRENT.scope(id, fut).await
}

/// Middleware: assigns the id, exposes it to handlers (extension + task-local) and echoes it.
pub async fn middleware(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&HEADER)
        .and_then(RequestId::from_header)
        .unwrap_or_else(RequestId::generate);
    request.extensions_mut().insert(id.clone());
    let mut response = scope(id.clone(), next.run(request)).await;
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_sane_caller_ids_only() {
        let ok = HeaderValue::from_static("abc-123_X.y");
        assert_eq!(RequestId::from_header(&ok).unwrap().as_str(), "abc-123_X.y");
        for bad in ["", "has space", "new\u{7f}line", &"x".repeat(65), "a;b"] {
            if let Ok(value) = HeaderValue::from_str(bad) {
                assert!(RequestId::from_header(&value).is_none(), "{bad:?} accepted");
            }
        }
    }

    #[tokio::test]
    async fn current_is_scoped() {
        assert!(current().is_none());
        let id = RequestId::generate();
        let seen = scope(id.clone(), async { current() }).await;
        assert_eq!(seen, Some(id));
        assert!(current().is_none());
    }
}
