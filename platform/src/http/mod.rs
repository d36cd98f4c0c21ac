//! HTTP building blocks every module uses: the request id, a JSON extractor whose rejections are
//! problem+json, and the RED metrics middleware. Edge composition lives in `gateway`.

pub mod client;
pub mod doc;
pub mod json;
pub mod metrics;
pub mod path;
pub mod query;
pub mod request_id;

pub use client::ClientAddr;
pub use json::Json;
pub use path::Path;
pub use query::{Page, PageParams, Query};
