//! `Query<T>` whose rejections are problem+json naming the parameter, and cursor pagination
//! (`limit`, `cursor` -> `next_cursor`) shared by every list endpoint.

use axum::{extract::FromRequestParts, http::request::Parts};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use utoipa::{IntoParams, ToSchema};

use crate::error::{Error, FieldError};

#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        let query = parts.uri.query().unwrap_or_default();
        // PostgreSQL stores no NUL in text: a NUL is refused here, not as a 500 at the query.
        if let Some((name, _)) = form_urlencoded::parse(query.as_bytes())
            .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        {
            return Err(Error::Validation(vec![FieldError::new(
                name.replace('\0', ""),
                "may not contain NUL characters",
            )]));
        }
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Self)
            .map_err(|err| {
                let field = err.path().to_string();
                // serde's message may quote the value; name the parameter only.
                let message = match err.inner().to_string().split_once('`') {
                    Some(("missing field ", rest)) => format!(
                        "missing parameter `{}`",
                        rest.split('`').next().unwrap_or_default()
                    ),
                    _ => "has an invalid value".to_owned(),
                };
                Error::Validation(vec![FieldError::new(
                    if field == "." { String::new() } else { field },
                    message,
                )])
            })
    }
}

/// `?limit=&cursor=` of every list endpoint.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<uuid::Uuid>)]
    pub cursor: Option<String>,
}

impl PageParams {
    pub const DEFAULT_LIMIT: u32 = 50;
    pub const MAX_LIMIT: u32 = 200;

    /// The limit, checked.
    pub fn limit(&self) -> Result<i64, Error> {
        match self.limit.unwrap_or(Self::DEFAULT_LIMIT) {
            n @ 1..=Self::MAX_LIMIT => Ok(i64::from(n)),
            _ => Err(Error::invalid("limit", "must be between 1 and 200")),
        }
    }

    /// The cursor parsed as `T` (an id, a timestamp...); a cursor that does not parse is 422.
    pub fn cursor<T: std::str::FromStr>(&self) -> Result<Option<T>, Error> {
        self.cursor
            .as_deref()
            .map(|c| {
                c.parse()
                    .map_err(|_| Error::invalid("cursor", "is not a cursor from this list"))
            })
            .transpose()
    }
}

/// A page of a list: `{"items": [...], "next_cursor": "..."|null}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from up to `limit` items; the cursor is the last item's key when the page is full.
    pub fn new(items: Vec<T>, limit: i64, key: impl Fn(&T) -> String) -> Self {
        let full = i64::try_from(items.len()).unwrap_or(i64::MAX) >= limit;
        let next_cursor = if full { items.last().map(&key) } else { None };
        Self { items, next_cursor }
    }
}
