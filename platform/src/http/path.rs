//! `Path<T>` whose rejections are problem+json: a path segment that is not a valid id answers
//! 400 `invalid_path` naming nothing the caller sent, like every other error (axum's own
//! rejection is a plain-text body that quotes the segment).

use axum::{
    extract::{FromRequestParts, rejection::PathRejection},
    http::request::Parts,
};
use serde::de::DeserializeOwned;

use crate::error::Error;

#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(PathRejection::FailedToDeserializePathParams(_)) => Err(Error::bad_request(
                "invalid_path",
                "A path segment is not a valid id.",
            )),
            Err(other) => Err(Error::Internal(anyhow::anyhow!("path extraction: {other}"))),
        }
    }
}
