//! Composes a process's HTTP application: the selected modules' routes, the operational routes
//! (health, metrics, OpenAPI) and the edge layers every request passes through.

use std::{any::Any, sync::Arc, time::Duration};

use axum::{
    Extension, Router,
    extract::{DefaultBodyLimit, MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use platform::routes;
use platform::{
    AppState, Error, Module,
    authz::Authentication,
    health::{self, Dependency, Readiness},
    http::{
        client::TrustedProxies,
        request_id::{self, RequestId},
    },
};
use tower_http::{
    catch_panic::CatchPanicLayer, cors::CorsLayer,
    sensitive_headers::SetSensitiveRequestHeadersLayer, set_header::SetResponseHeaderLayer,
};
use tracing::Instrument;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

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
        (name = "onboarding", description = "Merchant sign-up"),
        (name = "auth", description = "Sign-in, sessions, mailed tokens, keys"),
        (name = "staff", description = "Staff accounts, invitations and roles"),
        (name = "privacy", description = "Purposes and policies"),
        (name = "tenants", description = "The merchant's own tenant"),
        (name = "catalog", description = "Products, categories, stock ledger, catalog settings"),
        (name = "customers", description = "The merchant's customers (sealed; every opening audited)"),
        (name = "orders", description = "Point-of-sale orders, payments, refunds"),
        (name = "notifications", description = "The mail log (no addresses, no bodies) and retries"),
        (name = "audit", description = "The tenant's audit trail and its verification"),
    ),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

/// The `bearer` scheme every protected route names; its scopes are Warung permissions.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "Access token from /api/v1/auth/login. Scopes name the Warung permission a route requires (docs/API.md).",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every route with who may call it, as the markdown table in docs/API.md: read from the
/// OpenAPI document (its `bearer` scopes name the permission) and the modules' permissions.
pub fn permission_matrix() -> String {
    use platform::Role;
    let spec = serde_json::to_value(openapi()).unwrap_or_default();
    let permissions: Vec<_> = modules::ALL
        .iter()
        .flat_map(|m| m.permissions.iter().copied())
        .collect();
    let mut out = String::from(
        "| Method | Path | Permission | owner | manager | cashier | platform_admin |\n| --- | --- | --- | --- | --- | --- | --- |\n",
    );
    let Some(paths) = spec["paths"].as_object() else {
        return out;
    };
    let mut rows: Vec<(String, String)> = Vec::new();
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(op) = item.get(method) else { continue };
            let (permission, roles): (String, Vec<Role>) = match op["security"].as_array() {
                None => ("public".into(), Vec::new()),
                Some(requirements) => {
                    let scopes: Vec<&str> = requirements
                        .iter()
                        .filter_map(|r| r["bearer"].as_array())
                        .flatten()
                        .filter_map(|s| s.as_str())
                        .collect();
                    let scope = scopes.first().copied();
                    // `{}` among the requirements: open to everyone, more to a signed-in caller.
                    let optional = requirements
                        .iter()
                        .any(|r| r.as_object().is_some_and(serde_json::Map::is_empty));
                    match scope {
                        Some(_) if optional => (
                            format!(
                                "public; signed in, {} to act for a customer",
                                scopes
                                    .iter()
                                    .map(|s| format!("`{s}`"))
                                    .collect::<Vec<_>>()
                                    .join(" or ")
                            ),
                            Vec::new(),
                        ),
                        None => ("signed in".into(), Role::STAFF.to_vec()),
                        Some(name) => (
                            format!("`{name}`"),
                            permissions
                                .iter()
                                .find(|p| p.name == name)
                                .map(|p| p.roles.to_vec())
                                .unwrap_or_default(),
                        ),
                    }
                }
            };
            let public = permission.starts_with("public");
            let cells: Vec<&str> = Role::ALL
                .iter()
                .map(|role| {
                    if public {
                        "anyone"
                    } else if roles.contains(role) {
                        "yes"
                    } else {
                        "—"
                    }
                })
                .collect();
            rows.push((
                format!("{path} {method}"),
                format!(
                    "| {} | `{path}` | {permission} | {} |\n",
                    method.to_uppercase(),
                    cells.join(" | ")
                ),
            ));
        }
    }
    rows.sort();
    for (_, row) in rows {
        out.push_str(&row);
    }
    out
}

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
    let mut spec = routes(&modules::ALL).into_openapi();
    crate::contract::complete(&mut spec);
    spec
}

/// The complete application for `modules`, ready to serve with `state`.
pub fn build(state: AppState, modules: &[Module]) -> anyhow::Result<Router> {
    let per_ip = crate::edge::per_ip_limit(&state.config.rate_limit).ok_or_else(|| {
        anyhow::anyhow!("rate_limit.per_ip_per_second and per_ip_burst must be > 0")
    })?;
    let (router, mut spec) = routes(modules).split_for_parts();
    crate::contract::complete(&mut spec);
    let spec = axum::body::Bytes::from(spec.to_pretty_json().unwrap_or_default());
    let required = Required(modules::required_dependencies(modules));
    let timeout = state.config.request_timeout();
    let body_limit = state.config.http.body_limit_bytes;
    let cors = cors(&state.config.http.cors_allowed_origins);

    Ok(router
        .route(
            "/api/openapi.json",
            axum::routing::get(move || async move {
                ([(header::CONTENT_TYPE, "application/json")], spec.clone())
            }),
        )
        .merge(docs_page())
        .merge(portal())
        .fallback(|| async { Error::NotFound })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        // Innermost: a panic becomes a problem+json that still carries the request id, and is
        // seen by tracing and metrics as the 500 it is.
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn(platform::http::metrics::middleware))
        .layer(middleware::from_fn(move |req, next| {
            deadline(timeout, req, next)
        }))
        .layer(middleware::from_fn(trace))
        .layer(middleware::from_fn(request_id::middleware))
        .layer(Extension(required))
        .layer(Extension(Arc::new(health::ReadinessCache::default())))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(per_ip)
        // Before every per-client limit: who the client is, behind trusted proxies too.
        .layer(middleware::from_fn_with_state(
            Arc::new(TrustedProxies::new(
                &state.config.http.trusted_proxies,
                state.config.http.client_address_header,
            )),
            platform::http::client::resolve,
        ))
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
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
        .with_state(state))
}

#[derive(Debug, Clone)]
struct Required(Vec<Dependency>);

/// The merchant onboarding portal (`portal/`): three static files compiled into the binary.
/// The page builds its consent checkboxes from the public privacy routes and posts to the
/// public onboarding route, so it needs no server-side logic of its own.
fn portal() -> Router<AppState> {
    fn file(
        content_type: &'static str,
        body: &'static str,
    ) -> axum::routing::MethodRouter<AppState> {
        axum::routing::get(move || async move { ([(header::CONTENT_TYPE, content_type)], body) })
    }
    Router::new()
        .route(
            "/portal",
            axum::routing::get(|| async { axum::response::Redirect::permanent("/portal/") }),
        )
        .route(
            "/portal/",
            file(
                "text/html; charset=utf-8",
                include_str!("../../portal/index.html"),
            ),
        )
        .route(
            "/portal/app.js",
            file(
                "text/javascript; charset=utf-8",
                include_str!("../../portal/app.js"),
            ),
        )
        .route(
            "/portal/style.css",
            file(
                "text/css; charset=utf-8",
                include_str!("../../portal/style.css"),
            ),
        )
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
            ),
        ))
}

/// The offline API docs page: Swagger UI, vendored into the binary at build time, reading
/// `/api/openapi.json`. Its own CSP lets it load its own scripts and styles, nothing else.
fn docs_page() -> Router<AppState> {
    let config = Arc::new(utoipa_swagger_ui::Config::from("/api/openapi.json"));
    Router::new()
        .route(
            "/api/docs",
            axum::routing::get(|| async { axum::response::Redirect::permanent("/api/docs/") }),
        )
        .route("/api/docs/", axum::routing::get(docs_file))
        .route("/api/docs/{*file}", axum::routing::get(docs_file))
        .layer(Extension(config))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
            ),
        ))
}

async fn docs_file(
    file: Option<axum::extract::Path<String>>,
    Extension(config): Extension<Arc<utoipa_swagger_ui::Config<'static>>>,
) -> Response {
    let file = file.map(|f| f.0).unwrap_or_default();
    match utoipa_swagger_ui::serve(&file, config) {
        Ok(Some(found)) => (
            [(header::CONTENT_TYPE, found.content_type)],
            found.bytes.into_owned(),
        )
            .into_response(),
        Ok(None) => Error::NotFound.into_response(),
        Err(err) => Error::Internal(anyhow::anyhow!("swagger ui: {err}")).into_response(),
    }
}

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

/// Who is calling: strips any client-sent `X-Tenant-*` header (the tenant comes only from a
/// verified token), verifies the bearer token and its session once, records the tenant on the
/// request span, and applies the tenant's request quota. Routes decide whether they need a
/// caller (`Principal`/`Authorized` extractors); an invalid token on a public route is ignored.
async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let spoofed: Vec<HeaderName> = request
        .headers()
        .keys()
        .filter(|name| name.as_str().starts_with("x-tenant"))
        .cloned()
        .collect();
    for name in spoofed {
        request.headers_mut().remove(name);
    }
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    let Some(token) = token else {
        return next.run(request).await;
    };
    let authentication = state.sessions.authenticate(&token).await;
    let tenant = match &authentication {
        Authentication::Verified(principal) => Some(principal.tenant),
        _ => None,
    };
    request.extensions_mut().insert(authentication);
    let Some(tenant) = tenant else {
        return next.run(request).await;
    };
    tracing::Span::current().record("tenant.id", tracing::field::display(tenant));
    if let Err(err) = crate::edge::admit(&state, tenant).await {
        return err.into_response();
    }
    let (response, records) = platform::events::tally(next.run(request)).await;
    crate::edge::spend_audit_budget(&state, tenant, records).await;
    response
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

/// Readiness: 503 when a dependency this process's modules need is down. Callers in
/// `health.internal_networks` also see every dependency with its status and why it is down;
/// one check answers all calls for `health.cache_ms`.
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "A required dependency is down", body = Readiness),
    ))]
async fn ready(
    State(state): State<AppState>,
    Extension(required): Extension<Required>,
    Extension(cache): Extension<Arc<health::ReadinessCache>>,
    client: Option<platform::http::ClientAddr>,
) -> Response {
    let readiness = cache.check(&state, &required.0).await;
    let status = if readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let internal = client.is_some_and(|c| c.within(&state.config.health.internal_networks));
    let body = if internal {
        readiness
    } else {
        readiness.summary()
    };
    (status, axum::Json(body)).into_response()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> Response {
    if state.config.http.metrics_bind.is_some() {
        // Served on the internal listener only (`http.metrics_bind`).
        return Error::NotFound.into_response();
    }
    metrics_text(&state).into_response()
}

fn metrics_text(state: &AppState) -> impl IntoResponse + use<> {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// The internal listener's application (`http.metrics_bind`): `/metrics` and nothing else.
pub fn metrics_only(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            axum::routing::get(|State(state): State<AppState>| async move { metrics_text(&state) }),
        )
        .fallback(|| async { Error::NotFound })
        .with_state(state)
}
