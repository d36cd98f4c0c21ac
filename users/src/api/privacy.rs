//! Data-subject requests over HTTP: the identity check and the download (public: the mailed
//! link is the credential), and the owner's view of every request against its legal clock.
//! Filing (`POST /api/v1/privacy/requests`) lives in `auth`, which resolves a shop's slug.

use axum::{
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use platform::http::Path;
use platform::routes;
use platform::{
    AppState, Authorized, Error, Result,
    http::{Json, Page, PageParams, Query},
    pii::{Subject, SubjectId, SubjectKind},
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use crate::{
    ManagePrivacy,
    customers::CustomerId,
    privacy::requests::{self, Filter, Request, RequestId, Settings},
};

type Problem = platform::error::Problem;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(confirm))
        .routes(routes!(download))
        .routes(routes!(list))
        .routes(routes!(get_one))
        .routes(routes!(resolve))
        .routes(routes!(get_settings, put_settings))
        .routes(routes!(lift_restriction))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    token: String,
}

/// Confirms a request with the token from the identity-check mail (public; works once).
/// Access and export requests are answered at once (the download link is mailed), a withdrawal
/// or a restriction takes effect at once, an erasure is scheduled after the shop's grace
/// period, a rectification goes to staff.
#[utoipa::path(post, path = "/api/v1/privacy/requests/confirm", tag = "privacy",
    request_body = TokenBody,
    responses((status = 200, body = Request), (status = 400, body = Problem), (status = 503, body = Problem)))]
async fn confirm(
    State(state): State<AppState>,
    Json(body): Json<TokenBody>,
) -> Result<Json<Request>> {
    Ok(Json(requests::confirm(&state, &body.token).await?))
}

/// Downloads an export bundle (zip of JSON and CSV) with the token from the mail (public;
/// works once, until it expires).
#[utoipa::path(post, path = "/api/v1/privacy/exports/download", tag = "privacy",
    request_body = TokenBody,
    responses(
        (status = 200, content_type = "application/zip", description = "The bundle"),
        (status = 400, body = Problem),
        (status = 503, body = Problem),
    ))]
async fn download(State(state): State<AppState>, Json(body): Json<TokenBody>) -> Result<Response> {
    let zip = requests::download(&state, &body.token).await?;
    let mut response = zip.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"my-data.zip\""),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only requests still open (default: all).
    open: Option<bool>,
    /// Only this person's requests.
    subject_id: Option<uuid::Uuid>,
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    #[param(value_type = Option<uuid::Uuid>)]
    cursor: Option<String>,
}

/// Every data-subject request of the shop, newest first, with its due time and SLA state
/// (`on_time`, `due_soon`, `overdue`; closed: `met`, `missed`).
#[utoipa::path(get, path = "/api/v1/privacy/requests", tag = "privacy",
    security(("bearer" = ["privacy.manage"])),
    params(ListParams),
    responses(
        (status = 200, body = Page<Request>),
        (status = 401, body = Problem),
        (status = 403, body = Problem),
    ))]
async fn list(
    caller: Authorized<ManagePrivacy>,
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<Request>>> {
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    };
    let limit = page.limit()?;
    let filter = Filter {
        open: params.open.unwrap_or(false),
        subject: params.subject_id.map(SubjectId),
        after: page.cursor::<RequestId>()?,
        limit,
    };
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let items = requests::list(&mut tx, filter, state.clock.now()).await?;
    tx.rollback().await?;
    Ok(Json(Page::new(items, limit, |r| r.id.to_string())))
}

/// One request.
#[utoipa::path(get, path = "/api/v1/privacy/requests/{id}", tag = "privacy",
    security(("bearer" = ["privacy.manage"])),
    params(("id" = RequestId, Path)),
    responses(
        (status = 200, body = Request),
        (status = 401, body = Problem),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
    ))]
async fn get_one(
    caller: Authorized<ManagePrivacy>,
    State(state): State<AppState>,
    Path(id): Path<RequestId>,
) -> Result<Json<Request>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let request = requests::get(&mut tx, id, state.clock.now()).await?;
    tx.rollback().await?;
    request.map(Json).ok_or(Error::NotFound)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum Resolution {
    /// The data was corrected (through the customer or staff endpoints).
    Rectified,
    Rejected,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    outcome: Resolution,
}

/// Closes a verified request that waits for staff (a rectification).
#[utoipa::path(post, path = "/api/v1/privacy/requests/{id}/resolve", tag = "privacy",
    security(("bearer" = ["privacy.manage"])),
    params(("id" = RequestId, Path)),
    request_body = ResolveBody,
    responses(
        (status = 200, body = Request),
        (status = 401, body = Problem),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem),
    ))]
async fn resolve(
    caller: Authorized<ManagePrivacy>,
    State(state): State<AppState>,
    Path(id): Path<RequestId>,
    Json(body): Json<ResolveBody>,
) -> Result<Json<Request>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let done = matches!(body.outcome, Resolution::Rectified);
    let request = requests::resolve(&state, &mut tx, caller.actor(), id, done).await?;
    tx.commit().await?;
    Ok(Json(request))
}

/// The shop's privacy settings: the law whose clock applies, and the erasure grace period.
#[utoipa::path(get, path = "/api/v1/privacy/settings", tag = "privacy",
    security(("bearer" = ["privacy.manage"])),
    responses((status = 200, body = Settings), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn get_settings(
    caller: Authorized<ManagePrivacy>,
    State(state): State<AppState>,
) -> Result<Json<Settings>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let settings = requests::settings(&mut tx).await?;
    tx.rollback().await?;
    Ok(Json(settings))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    jurisdiction: crate::privacy::Jurisdiction,
    /// 0 to 720 hours.
    #[schema(minimum = 0, maximum = 720)]
    erasure_grace_hours: i32,
}

/// Changes the settings. Requests already filed keep the due time they were given.
#[utoipa::path(put, path = "/api/v1/privacy/settings", tag = "privacy",
    security(("bearer" = ["privacy.manage"])),
    request_body = SettingsBody,
    responses(
        (status = 200, body = Settings),
        (status = 401, body = Problem),
        (status = 403, body = Problem),
        (status = 422, body = Problem),
    ))]
async fn put_settings(
    caller: Authorized<ManagePrivacy>,
    State(state): State<AppState>,
    Json(body): Json<SettingsBody>,
) -> Result<Json<Settings>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let settings = requests::change_settings(
        &mut tx,
        caller.actor(),
        Settings {
            jurisdiction: body.jurisdiction,
            erasure_grace_hours: body.erasure_grace_hours,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(settings))
}

/// Lifts a customer's restriction: their data may be processed again (orders, mail).
#[utoipa::path(delete, path = "/api/v1/customers/{id}/restriction", tag = "privacy",
    security(("bearer" = ["privacy.manage"])),
    params(("id" = CustomerId, Path)),
    responses(
        (status = 204, description = "Lifted (or was not restricted)"),
        (status = 401, body = Problem),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
    ))]
async fn lift_restriction(
    caller: Authorized<ManagePrivacy>,
    State(state): State<AppState>,
    Path(id): Path<CustomerId>,
) -> Result<StatusCode> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let subject = Subject {
        id: id.into(),
        kind: SubjectKind::Customer,
    };
    if !crate::customers::exists(&mut tx, id).await? {
        return Err(Error::NotFound);
    }
    requests::lift_restriction(&mut tx, caller.actor(), subject).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
