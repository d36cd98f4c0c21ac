//! `Json<T>` that answers malformed bodies with the same problem+json shape as every other
//! error (axum's own rejection is plain text).

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::header,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Deserializer, Serialize, de::DeserializeOwned};

use crate::error::{Error, FieldError};

#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

/// `#[serde(deserialize_with = "platform::http::json::trimmed")]`: surrounding whitespace is
/// removed before validation, so a length rule sees what will be stored (`"   "` is empty).
pub fn trimmed<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    String::deserialize(d).map(|s| s.trim().to_owned())
}

/// `#[serde(default, deserialize_with = "platform::http::json::present")]` on an
/// `Option<Option<T>>`: a present field, `null` included, is `Some` (`Some(None)` clears),
/// an absent one `None` (left as it is).
pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// [`trimmed`] for an optional field (use with `#[serde(default)]`).
pub fn trimmed_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d).map(|s| s.map(|s| s.trim().to_owned()))
}

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&req) {
            return Err(Error::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge
            } else {
                Error::bad_request("invalid_body", "The body could not be read.")
            }
        })?;
        decode(&bytes).map(Self)
    }
}

fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| {
            m.type_() == "application"
                && (m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"))
        })
}

/// Deserializes, reporting where the body is wrong (`owner.email`) but never what it held:
/// serde's own messages quote the offending value, which may be personal data.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    if has_nul(bytes) {
        // PostgreSQL stores no NUL in text: refuse it here, not as a 500 at the insert.
        return Err(Error::Validation(vec![FieldError::new(
            "",
            "text may not contain NUL characters (\\u0000)",
        )]));
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|_| Error::bad_request("malformed_json", "The body is not valid JSON."))?;
    integral_floats_as_integers(&mut value);
    match serde_path_to_error::deserialize(value) {
        Ok(value) => Ok(value),
        Err(err) => {
            let inner = err.inner();
            let message = inner.to_string();
            let message = match message.split_once('`') {
                // "missing field `email`" names a field of ours, not client data.
                Some(("missing field ", rest)) => {
                    format!(
                        "missing field `{}`",
                        rest.split('`').next().unwrap_or_default()
                    )
                }
                _ => "has an invalid type or value".to_owned(),
            };
            let path = err.path().to_string();
            let field = if path == "." { String::new() } else { path };
            Err(Error::Validation(vec![FieldError::new(field, message)]))
        }
    }
}

/// `2.0` is the integer 2 (JSON has one number type, and JSON Schema's `integer` accepts it):
/// such numbers become integers so integer fields take them, as clients that write every
/// number as a float expect. Other floats are left for the field's type to accept or refuse.
fn integral_floats_as_integers(value: &mut serde_json::Value) {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53: every integer below is exact
    match value {
        serde_json::Value::Number(number) => {
            if let Some(float) = number.as_f64().filter(|_| number.is_f64())
                && float.fract() == 0.0
                && float.abs() < EXACT
            {
                #[expect(clippy::cast_possible_truncation, reason = "integral and below 2^53")]
                let integer = float as i64;
                *number = integer.into();
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        serde_json::Value::Object(fields) => {
            fields.values_mut().for_each(integral_floats_as_integers);
        }
        _ => {}
    }
}

/// Whether the JSON text holds a NUL character: the escape `\u0000` (not itself escaped as
/// `\\u0000`, which is text) or a raw zero byte (which is invalid JSON anyway).
fn has_nul(bytes: &[u8]) -> bool {
    const ESCAPE: &[u8] = br"\u0000";
    bytes.contains(&0)
        || bytes.windows(ESCAPE.len()).enumerate().any(|(at, window)| {
            window == ESCAPE
                && bytes[..at]
                    .iter()
                    .rev()
                    .take_while(|b| **b == b'\\')
                    .count()
                    % 2
                    == 0
        })
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, http::Request, routing::post};

    #[test]
    fn a_nul_escape_is_found_and_an_escaped_backslash_before_u0000_is_text() {
        assert!(super::has_nul(br#"{"name": "a\u0000b"}"#));
        assert!(
            super::has_nul(br#"{"name": "\\\u0000"}"#),
            "\\ then the escape"
        );
        assert!(
            !super::has_nul(br#"{"name": "\\u0000"}"#),
            "a backslash, then u0000"
        );
        assert!(!super::has_nul(br#"{"name": "u0000"}"#));
        let err = super::decode::<serde_json::Value>(br#"{"name": "a\u0000"}"#).unwrap_err();
        assert!(matches!(err, super::Error::Validation(_)), "{err:?}");
    }
    use serde::Deserialize;
    use tower::ServiceExt;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Body_ {
        #[expect(dead_code, reason = "only deserialized")]
        quantity: u32,
    }

    async fn call(content_type: Option<&str>, body: &'static str) -> (u16, serde_json::Value) {
        let app = Router::new().route("/", post(|Json(_): Json<Body_>| async { "ok" }));
        let mut request = Request::post("/");
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = app
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    #[tokio::test]
    async fn an_integral_float_fills_an_integer_field_and_a_fraction_does_not() {
        let (status, _) = call(Some("application/json"), r#"{"quantity": 2.0}"#).await;
        assert_eq!(status, 200, "2.0 is an integer in JSON Schema");
        let (status, body) = call(Some("application/json"), r#"{"quantity": 2.5}"#).await;
        assert_eq!(status, 422);
        assert_eq!(body["errors"][0]["field"], "quantity");
        let (status, _) = call(Some("application/json"), r#"{"quantity": 1e20}"#).await;
        assert_eq!(status, 422, "past the field's range");
    }

    #[tokio::test]
    async fn malformed_json_is_a_problem_not_plain_text() {
        let (status, body) = call(Some("application/json"), "{\"quantity\": ").await;
        assert_eq!(status, 400);
        assert_eq!(body["code"], "malformed_json");
    }

    #[tokio::test]
    async fn wrong_type_names_the_field_without_echoing_the_value() {
        let (status, body) = call(Some("application/json"), r#"{"quantity": "secret-ish"}"#).await;
        assert_eq!(status, 422);
        assert_eq!(body["code"], "validation_failed");
        assert_eq!(body["errors"][0]["field"], "quantity");
        assert!(!body.to_string().contains("secret-ish"), "{body}");
    }

    #[tokio::test]
    async fn missing_field_is_named() {
        let (status, body) = call(Some("application/json"), "{}").await;
        assert_eq!(status, 422);
        assert_eq!(body["errors"][0]["message"], "missing field `quantity`");
    }

    #[tokio::test]
    async fn missing_content_type_is_415() {
        let (status, body) = call(None, r#"{"quantity": 1}"#).await;
        assert_eq!(status, 415);
        assert_eq!(body["code"], "unsupported_media_type");
    }
}
