//! Composes a process's HTTP application: the selected modules' routes, the operational routes
//! (health, metrics, OpenAPI) and the edge layers every request passes through.

use std::{any::Any, time::Duration};

use axum::{
    Extension, Router,
    extract::{DefaultBodyLimit, MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use platform::{
    AppState, Error, Module,
    health::{self, Dependency, Readiness},
    http::request_id::{self, RequestId},
};
use tower_http::{
    catch_panic::CatchPanicLayer, cors::CorsLayer,
    sensitive_headers::SetSensitiveRequestHeadersLayer, set_header::SetResponseHeaderLayer,
};
use tracing::Instrument;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::modules;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Warung API",
        description = "Privacy-first, multi-tenant commerce backend. Errors are RFC 9457 problem+json with a stable `code`.",
        license(name = "Apache-2.0"),
    ),
    tags(
        (name = "operations", description = "Health, readiness and metrics"),
    ),
)]
struct ApiDoc;

/// Modules' routes plus the operational routes, with the merged OpenAPI document.
pub fn routes(modules: &[Module]) -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(metrics));
    for module in modules {
        router = router.merge((module.router)());
    }
    router
}

/// The OpenAPI document of all modules (what `/api/openapi.json` serves in a full process).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes(&modules::ALL).into_openapi()
}

/// The complete application for `modules`, ready to serve with `state`.
pub fn build(state: AppState, modules: &[Module]) -> Router {
    let (router, spec) = routes(modules).split_for_parts();
    let spec = axum::body::Bytes::from(spec.to_pretty_json().unwrap_or_default());
    let required = Required(modules::required_dependencies(modules));
    let timeout = state.config.request_timeout();
    let body_limit = state.config.http.body_limit_bytes;
    let cors = cors(&state.config.http.cors_allowed_origins);

    router
        .route(
            "/api/openapi.json",
            axum::routing::get(move || async move {
                ([(header::CONTENT_TYPE, "application/json")], spec.clone())
            }),
        )
        .fallback(|| async { Error::NotFound })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        // Innermost: a panic becomes a problem+json that still carries the request id, and is
        // seen by tracing and metrics as the 500 it is.
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(platform::http::metrics::middleware))
        .layer(middleware::from_fn(move |req, next| {
            deadline(timeout, req, next)
        }))
        .layer(middleware::from_fn(trace))
        .layer(middleware::from_fn(request_id::middleware))
        .layer(Extension(required))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(cors)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
        .with_state(state)
}

#[derive(Debug, Clone)]
struct Required(Vec<Dependency>);

/// One span per request: method, matched route (a template, never the raw path), request id,
/// and the tenant once the caller is known. Failures are logged once, by the error type.
async fn trace(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(ToString::to_string);
    let span = tracing::info_span!(
        "http.request",
        http.method = %request.method(),
        http.route = route.as_deref().unwrap_or("unmatched"),
        request.id = request_id.as_deref().unwrap_or(""),
        tenant.id = tracing::field::Empty,
        http.status = tracing::field::Empty,
    );
    async move {
        let started = std::time::Instant::now();
        let response = next.run(request).await;
        let status = response.status();
        tracing::Span::current().record("http.status", status.as_u16());
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if status.is_server_error() {
            tracing::warn!(elapsed_ms, "request finished");
        } else {
            tracing::debug!(elapsed_ms, "request finished");
        }
        response
    }
    .instrument(span)
    .await
}

/// Bounds the time spent on one request; the caller gets a problem+json instead of a hang.
async fn deadline(limit: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Error::Timeout.into_response(),
    }
}

fn panic_response(_panic: Box<dyn Any + Send + 'static>) -> Response {
    // The payload may hold request data; log the fact, not the message.
    tracing::error!("handler panicked");
    Error::Internal(anyhow::anyhow!("handler panicked")).into_response()
}

fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            request_id::HEADER,
        ])
        .expose_headers([request_id::HEADER, header::RETRY_AFTER])
        .max_age(Duration::from_secs(600))
}

/// Liveness: the process is up and serving. Never checks dependencies (a dependency outage must
/// not make Kubernetes restart every pod).
#[utoipa::path(get, path = "/health/live", tag = "operations",
    responses((status = 200, description = "The process is alive")))]
async fn live() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "up" }))
}

/// Readiness: every dependency with its status; 503 when one that this process's modules need is down.
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "A required dependency is down", body = Readiness),
    ))]
async fn ready(
    State(state): State<AppState>,
    Extension(required): Extension<Required>,
) -> Response {
    let readiness = health::check(&state, &required.0).await;
    let status = if readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(readiness)).into_response()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
