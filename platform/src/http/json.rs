//! `Json<T>` that answers malformed bodies with the same problem+json shape as every other
//! error (axum's own rejection is plain text).

use axum::{
    extract::{FromRequest, Request, rejection::JsonRejection},
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::error::Error;

#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(rejection_to_error(rejection)),
        }
    }
}

fn rejection_to_error(rejection: JsonRejection) -> Error {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => Error::UnsupportedMediaType,
        // serde's message names the field and position, never echoes a value.
        JsonRejection::JsonDataError(err) => Error::bad_request("invalid_body", err.body_text()),
        JsonRejection::JsonSyntaxError(_) => {
            Error::bad_request("malformed_json", "The body is not valid JSON.")
        }
        JsonRejection::BytesRejection(err)
            if err.status() == http::StatusCode::PAYLOAD_TOO_LARGE =>
        {
            Error::PayloadTooLarge
        }
        other => Error::bad_request("invalid_body", other.body_text()),
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}
