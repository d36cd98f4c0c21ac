//! The one error type HTTP handlers return, rendered as RFC 9457 `application/problem+json`
//! with a stable machine `code` and the request id. Client errors say what is wrong; dependency
//! and internal failures are opaque to the client and logged once, here, at the boundary.

use std::{borrow::Cow, time::Duration};

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{health::Dependency, http::request_id};

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field in the request, e.g. `owner.email`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body or a parameter could not be read at all (malformed JSON, wrong type).
    #[error("bad request: {detail}")]
    BadRequest { code: &'static str, detail: String },
    /// Well-formed but invalid; names every offending field.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// Well-formed, but refused as a whole with a stable code (e.g. an idempotency key reused
    /// with another request).
    #[error("unprocessable: {detail}")]
    Unprocessable { code: &'static str, detail: String },
    #[error("authentication required")]
    Unauthorized,
    #[error("not allowed")]
    Forbidden,
    /// Missing, or belonging to another tenant: the two are indistinguishable on purpose.
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("conflict: {detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("too many requests ({})", limit.code())]
    TooManyRequests { limit: Limit, retry_after: Duration },
    /// A dependency we cannot work without is down or too slow. Nothing was written.
    #[error("{0} unavailable")]
    Unavailable(Dependency),
    #[error("request timed out")]
    Timeout,
    /// A bug or an unexpected failure. Logged with its cause; the client sees only the request id.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            detail: detail.into(),
        }
    }

    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Unprocessable {
            code,
            detail: detail.into(),
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Validation(_) | Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code. Clients branch on this, never on `title` or `detail`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Conflict { code, .. }
            | Self::Unprocessable { code, .. } => code,
            Self::Validation(_) => "validation_failed",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::TooManyRequests { .. } => "rate_limited",
            Self::Unavailable(dep) => dep.unavailable_code(),
            Self::Timeout => "timeout",
            Self::Internal(_) => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } => "The request could not be read",
            Self::Validation(_) => "The request has invalid fields",
            Self::Unprocessable { .. } => "The request cannot be processed",
            Self::Unauthorized => "Authentication is required",
            Self::Forbidden => "You are not allowed to do this",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "This method is not allowed on this path",
            Self::Conflict { .. } => "Conflict with the current state",
            Self::PayloadTooLarge => "The request body is too large",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::TooManyRequests { .. } => "Too many requests",
            Self::Unavailable(_) => "A service Warung depends on is unavailable",
            Self::Timeout => "The request took too long",
            Self::Internal(_) => "Internal error",
        }
    }

    fn detail(&self) -> Option<Cow<'_, str>> {
        match self {
            Self::BadRequest { detail, .. }
            | Self::Conflict { detail, .. }
            | Self::Unprocessable { detail, .. } => Some(Cow::Borrowed(detail)),
            Self::Unavailable(dep) => Some(Cow::Owned(format!(
                "{} is unavailable; nothing was changed. Retry later.",
                dep.label()
            ))),
            Self::TooManyRequests { limit, retry_after } => Some(Cow::Owned(format!(
                "{}. Nothing was changed; retry in {} s (Retry-After).",
                limit.describe(),
                retry_after.as_secs().max(1)
            ))),
            Self::Internal(_) => Some(Cow::Borrowed(
                "Something went wrong on our side. Quote the request_id when reporting it.",
            )),
            _ => None,
        }
    }
}

/// Which limit a 429 reached. Its problem body names it (`limit`) and says what it counts, so a
/// client knows what to slow down; it never says whose counter it was or what it stands at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Requests from one client address, per second (each process, at the edge).
    ClientRequests,
    /// Unauthenticated writes (sign-ups, reset requests, data-subject requests, consent
    /// confirmations) from one client address, per hour.
    PublicWrites,
    /// Failed sign-ins to one account from one client address.
    FailedSignInsPerAccount,
    /// Failed sign-ins from one client address.
    FailedSignInsPerAddress,
    /// Signed-in requests of one shop, per minute.
    TenantRequests,
    /// Audit records one shop's requests may write, per minute.
    TenantAuditRecords,
    /// Confirmed data-subject requests of one person, per hour.
    PrivacyRequestsPerPerson,
    /// Confirmed copies of their data one person may ask for, per day.
    ExportsPerPerson,
    /// Compliance reports of one shop, per hour.
    ComplianceReports,
}

impl Limit {
    pub fn code(self) -> &'static str {
        match self {
            Self::ClientRequests => "client_requests",
            Self::PublicWrites => "public_writes",
            Self::FailedSignInsPerAccount => "failed_sign_ins_per_account",
            Self::FailedSignInsPerAddress => "failed_sign_ins_per_address",
            Self::TenantRequests => "tenant_requests",
            Self::TenantAuditRecords => "tenant_audit_records",
            Self::PrivacyRequestsPerPerson => "privacy_requests_per_person",
            Self::ExportsPerPerson => "exports_per_person",
            Self::ComplianceReports => "compliance_reports",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::ClientRequests => "Too many requests from this address in a short time",
            Self::PublicWrites => {
                "The hourly limit on sign-ups, resets and other public requests from this address was reached"
            }
            Self::FailedSignInsPerAccount => {
                "Too many failed sign-ins to this account from this address"
            }
            Self::FailedSignInsPerAddress => "Too many failed sign-ins from this address",
            Self::TenantRequests => "This shop's requests for this minute are used up",
            Self::TenantAuditRecords => "This shop's audit records for this minute are used up",
            Self::PrivacyRequestsPerPerson => {
                "This person's data-subject requests for this hour are used up"
            }
            Self::ExportsPerPerson => "This person's copies of their data for this day are used up",
            Self::ComplianceReports => "This shop's compliance reports for this hour are used up",
        }
    }
}

/// The wire shape of every error (RFC 9457).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type; `about:blank` plus `code` is enough to branch on.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable machine code, e.g. `validation_failed`, `not_found`, `key_service_unavailable`.
    pub code: String,
    /// Correlates with logs; also returned in the `x-request-id` header.
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// On a 429: which limit was reached (`client_requests`, `public_writes`,
    /// `failed_sign_ins_per_account`, `failed_sign_ins_per_address`, `tenant_requests`,
    /// `tenant_audit_records`, `privacy_requests_per_person`, `exports_per_person`,
    /// `compliance_reports`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<&'static str>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            // Logged once here, with the cause chain. `{:#}` prints causes, never request data.
            Self::Internal(err) => tracing::error!(error = format!("{err:#}"), "request failed"),
            Self::Unavailable(dep) => {
                tracing::warn!(dependency = dep.label(), "dependency unavailable")
            }
            _ => {}
        }
        let retry_after = match &self {
            Self::TooManyRequests { retry_after, .. } => Some(retry_after.as_secs().max(1)),
            // Both are 503: nothing was written, and trying again later is the right move.
            Self::Unavailable(_) | Self::Timeout => Some(5),
            _ => None,
        };
        let problem = Problem {
            kind: format!("https://warung.dev/problems/{}", self.code()),
            title: self.title().to_owned(),
            status: status.as_u16(),
            detail: self.detail().map(Cow::into_owned),
            code: self.code().to_owned(),
            request_id: request_id::current().map(|id| id.to_string()),
            limit: match &self {
                Self::TooManyRequests { limit, .. } => Some(limit.code()),
                _ => None,
            },
            errors: match self {
                Self::Validation(errors) => errors,
                _ => Vec::new(),
            },
        };
        let mut response = (status, Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        let transient = match &err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| is_transient_sqlstate(&code)),
            _ => false,
        };
        if transient {
            // Logged once at the boundary (IntoResponse); the cause helps the operator.
            tracing::warn!(error = %err, "database unavailable or overloaded");
            Self::Unavailable(Dependency::Postgres)
        } else {
            Self::Internal(err.into())
        }
    }
}

/// SQLSTATEs that mean "the database cannot serve this now; retry later" rather than a bug:
/// connection exceptions (08), insufficient resources (53), operator intervention and timeouts
/// (57: admin shutdown, crash recovery, cannot connect now, statement timeout), lock
/// unavailable (55P03), serialization failure and deadlock (40001, 40P01).
fn is_transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57")
        || matches!(code, "55P03" | "40001" | "40P01")
}

/// Runs `validator` rules and reports every failing field by its path (`owner.email`), with the
/// rule's message, never the value.
pub fn validate<T: validator::Validate>(value: &T) -> Result<()> {
    value.validate().map_err(|errors| {
        let mut fields = Vec::new();
        collect(&errors, "", &mut fields);
        fields.sort_by(|a, b| a.field.cmp(&b.field));
        Error::Validation(fields)
    })
}

fn collect(errors: &validator::ValidationErrors, prefix: &str, out: &mut Vec<FieldError>) {
    use validator::ValidationErrorsKind;
    for (field, kind) in errors.errors() {
        let path = if prefix.is_empty() {
            field.to_string()
        } else {
            format!("{prefix}.{field}")
        };
        match kind {
            ValidationErrorsKind::Field(list) => {
                for error in list {
                    let message = error.message.as_ref().map_or_else(
                        || format!("is invalid ({})", error.code),
                        ToString::to_string,
                    );
                    out.push(FieldError::new(path.clone(), message));
                }
            }
            ValidationErrorsKind::Struct(inner) => collect(inner, &path, out),
            ValidationErrorsKind::List(items) => {
                for (index, inner) in items {
                    collect(inner, &format!("{path}[{index}]"), out);
                }
            }
        }
    }
}

/// Maps a named constraint violation to a client error; anything else stays a database error.
/// Call sites name the constraints they expect (`on_constraint("tenants_slug_key", ...)`), so no
/// code ever matches on message text.
pub trait OnConstraint<T> {
    fn on_constraint(self, name: &str, to: impl FnOnce() -> Error) -> Result<T>;
}

impl<T> OnConstraint<T> for std::result::Result<T, sqlx::Error> {
    fn on_constraint(self, name: &str, to: impl FnOnce() -> Error) -> Result<T> {
        match self {
            Err(sqlx::Error::Database(db)) if db.constraint() == Some(name) => Err(to()),
            other => other.map_err(Error::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    async fn render(err: Error) -> (StatusCode, http::HeaderMap, serde_json::Value) {
        let response = err.into_response();
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, headers, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn validation_names_fields_with_problem_json() {
        let (status, headers, body) = render(Error::Validation(vec![
            FieldError::new("owner.email", "must be an email address"),
            FieldError::new("slug", "already taken"),
        ]))
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_CONTENT_TYPE);
        assert_eq!(body["code"], "validation_failed");
        assert_eq!(body["status"], 422);
        assert_eq!(body["errors"][0]["field"], "owner.email");
        assert_eq!(body["errors"][1]["field"], "slug");
    }

    #[tokio::test]
    async fn internal_errors_hide_their_cause() {
        let (status, _, body) = render(Error::Internal(anyhow::anyhow!(
            "connection to 10.0.0.5 refused; password=hunter2"
        )))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["code"], "internal");
        let text = body.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("10.0.0.5"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn unavailable_dependency_is_503_with_its_own_code_and_retry_after() {
        let (status, headers, body) = render(Error::Unavailable(Dependency::Vault)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["code"], "key_service_unavailable");
        assert!(headers.contains_key(header::RETRY_AFTER));
    }

    #[test]
    fn transient_database_states_are_503_and_bugs_are_500() {
        for code in [
            "08006", "53300", "57P01", "57014", "55P03", "40001", "40P01",
        ] {
            assert!(is_transient_sqlstate(code), "{code}");
        }
        for code in ["23505", "42501", "42P01", "22P02"] {
            assert!(!is_transient_sqlstate(code), "{code}");
        }
        assert_eq!(
            Error::from(sqlx::Error::PoolTimedOut).code(),
            "database_unavailable"
        );
        assert_eq!(Error::from(sqlx::Error::RowNotFound).code(), "internal");
    }

    #[tokio::test]
    async fn rate_limit_carries_retry_after_seconds() {
        let (status, headers, body) = render(Error::TooManyRequests {
            limit: Limit::PublicWrites,
            retry_after: Duration::from_secs(42),
        })
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[header::RETRY_AFTER], "42");
        assert_eq!(body["limit"], "public_writes");
        assert!(body["detail"].as_str().unwrap().contains("42 s"), "{body}");
        // Under a second still says one: zero would invite an immediate retry.
        let (_, headers, _) = render(Error::TooManyRequests {
            limit: Limit::ClientRequests,
            retry_after: Duration::from_millis(300),
        })
        .await;
        assert_eq!(headers[header::RETRY_AFTER], "1");
    }

    #[tokio::test]
    async fn request_id_is_included_when_in_scope() {
        let id = request_id::RequestId::generate();
        let (_, _, body) =
            request_id::scope(id.clone(), async { render(Error::NotFound).await }).await;
        assert_eq!(body["request_id"], id.to_string());
        assert_eq!(body["code"], "not_found");
    }
}
