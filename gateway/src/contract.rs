//! What every operation of the API shares, written into the merged OpenAPI document once instead
//! of on each route (#17: fuzzing found error bodies documented with the wrong media type and
//! statuses the edge answers that no operation listed):
//!
//! - every error body is a `Problem`, sent as `application/problem+json` (RFC 9457);
//! - every operation can answer 429 (the per-address limit at the edge) and 500;
//! - every `/api/` operation can answer 503 (a dependency is down, or the request deadline
//!   passed: `timeout`);
//! - a signed-in operation can answer 401;
//! - a path parameter can be malformed (400 `invalid_path`) or name nothing of the caller's
//!   (404); a query can be invalid (422);
//! - a JSON body can be malformed (400), too large (413), of another media type (415) or invalid
//!   (422).
//!
//! A status an operation already documents keeps its own description.

use utoipa::openapi::{
    Content, OpenApi, PathItem, RefOr, ResponseBuilder,
    path::{Operation, ParameterIn},
    schema::Ref,
};

use platform::error::PROBLEM_CONTENT_TYPE;

const JSON: &str = "application/json";

/// Completes `openapi` (the merged document of every module) with the shared statuses and media
/// types above.
pub fn complete(openapi: &mut OpenApi) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        let api = path.starts_with("/api/");
        for operation in operations(item) {
            complete_operation(operation, api);
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn complete_operation(operation: &mut Operation, api: bool) {
    let parameters = operation.parameters.iter().flatten();
    let (mut in_path, mut in_query) = (false, false);
    for parameter in parameters {
        if let RefOr::T(parameter) = parameter {
            match parameter.parameter_in {
                ParameterIn::Path => in_path = true,
                ParameterIn::Query => in_query = true,
                _ => {}
            }
        }
    }
    let signed_in = operation
        .security
        .as_ref()
        .is_some_and(|requirements| !requirements.is_empty());
    let body = operation.request_body.is_some();
    let mut shared: Vec<(&str, &str)> = vec![
        (
            "429",
            "Too many requests: `Retry-After` says when to try again",
        ),
        (
            "500",
            "Internal error (`internal`); the request id finds it in the logs",
        ),
    ];
    if api {
        shared.push((
            "503",
            "A dependency is unavailable (`database_unavailable`, `key_service_unavailable`, ...) or the request deadline passed (`timeout`): nothing was written; retry after `Retry-After`",
        ));
    }
    if signed_in {
        shared.push(("401", "No valid access token (`unauthorized`)"));
    }
    if in_path {
        shared.push(("400", "A path parameter is malformed (`invalid_path`)"));
        shared.push(("404", "Not found, or not the caller's (`not_found`)"));
    }
    if in_query {
        shared.push(("422", "A query parameter is invalid (`validation_failed`)"));
    }
    if body {
        shared.push((
            "400",
            "The body is not valid JSON (`malformed_json`, `invalid_body`)",
        ));
        shared.push(("413", "The body is too large (`payload_too_large`)"));
        shared.push(("415", "The body is not JSON (`unsupported_media_type`)"));
        shared.push((
            "422",
            "A field is invalid (`validation_failed`; `errors` names each)",
        ));
    }
    let responses = &mut operation.responses.responses;
    for (status, description) in shared {
        responses.entry(status.to_owned()).or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        PROBLEM_CONTENT_TYPE,
                        Content::new(Some(Ref::from_schema_name("Problem"))),
                    )
                    .build(),
            )
        });
    }
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if !status.starts_with(['4', '5']) {
            continue;
        }
        let problem = response.content.get(JSON).is_some_and(|content| {
            matches!(content, RefOr::T(Content { schema: Some(RefOr::Ref(r)), .. })
                if r.ref_location.ends_with("/Problem"))
        });
        if problem && let Some(content) = response.content.shift_remove(JSON) {
            response
                .content
                .insert(PROBLEM_CONTENT_TYPE.to_owned(), content);
        }
    }
}
