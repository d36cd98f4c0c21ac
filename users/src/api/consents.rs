//! Consent over HTTP: a staff member's own choices (`/me/consents`) and a customer's, changed by
//! staff on their behalf (`/customers/{id}/consents`). A withdrawal takes effect at once:
//! whatever needs the purpose checks the latest record when it runs (a receipt is not mailed).

use axum::{extract::State, http::HeaderMap};
use platform::http::Path;
use platform::routes;
use platform::{
    AppState, Authorized, Error, Principal, Result,
    http::{ClientAddr, Json},
};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

use crate::{
    ReadCustomers, WriteCustomers,
    consent::{self, Audience, Choice, Evidence, Method, Overview},
    customers::{self, CustomerId},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(my_consents, change_my_consents))
        .routes(routes!(customer_consents, change_customer_consents))
        .routes(routes!(confirm_consent))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ConfirmationToken {
    /// The token from the mailed link.
    token: String,
}

/// Public: a customer confirms, from the link mailed to them, a grant that staff recorded on
/// their behalf (double opt-in; today `marketing`). Only then does it count. The link works
/// once and only while that grant is the latest choice.
#[utoipa::path(post, path = "/api/v1/consents/confirm", tag = "privacy",
    request_body = ConfirmationToken,
    responses(
        (status = 200, body = consent::confirmation::Confirmed),
        (status = 400, description = "`invalid_token`: the link is invalid, used, expired or no longer applies", body = platform::error::Problem),
        (status = 429, body = platform::error::Problem),
        (status = 503, body = platform::error::Problem),
    ))]
async fn confirm_consent(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    Json(body): Json<ConfirmationToken>,
) -> Result<Json<consent::confirmation::Confirmed>> {
    platform::throttle::public_write(&state.redis, &state.config.rate_limit, client).await?;
    let confirmed =
        consent::confirmation::confirm(&state, &body.token, &Evidence::of(client, &headers))
            .await?;
    Ok(Json(confirmed))
}

/// New choices; purposes not named keep theirs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ConsentChange {
    consents: Vec<Choice>,
}

/// The caller's own choices, the policy in force, and whether it asks them to choose again.
#[utoipa::path(get, path = "/api/v1/me/consents", tag = "privacy",
    security(("bearer" = [])),
    responses((status = 200, body = Overview), (status = 401, body = platform::error::Problem)))]
async fn my_consents(caller: Principal, State(state): State<AppState>) -> Result<Json<Overview>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let overview =
        consent::overview(&state.db, &mut tx, Audience::Merchant, caller.user.into()).await?;
    tx.rollback().await?;
    Ok(Json(overview))
}

/// Changes the caller's choices (method `settings`). Withdrawing takes effect at once; a
/// required purpose cannot be withdrawn here (that is an erasure request). A confirmation
/// mail follows any change.
#[utoipa::path(put, path = "/api/v1/me/consents", tag = "privacy",
    security(("bearer" = [])),
    request_body = ConsentChange,
    responses(
        (status = 200, body = Overview),
        (status = 401, body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn change_my_consents(
    caller: Principal,
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    Json(body): Json<ConsentChange>,
) -> Result<Json<Overview>> {
    let subject = caller.user.into();
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    consent::change(
        &state.db,
        &state.pii,
        &mut tx,
        caller.actor(),
        Audience::Merchant,
        subject,
        &body.consents,
        Method::Settings,
        &Evidence::of(client, &headers),
    )
    .await?;
    let overview = consent::overview(&state.db, &mut tx, Audience::Merchant, subject).await?;
    tx.commit().await?;
    Ok(Json(overview))
}

/// A customer's choices and the customer policy in force.
#[utoipa::path(get, path = "/api/v1/customers/{id}/consents", tag = "customers",
    security(("bearer" = ["customers.read"])),
    params(("id" = CustomerId, Path)),
    responses(
        (status = 200, body = Overview),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem),
    ))]
async fn customer_consents(
    caller: Authorized<ReadCustomers>,
    State(state): State<AppState>,
    Path(id): Path<CustomerId>,
) -> Result<Json<Overview>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    if !customers::exists(&mut tx, id).await? {
        return Err(Error::NotFound);
    }
    let overview = consent::overview(&state.db, &mut tx, Audience::Customer, id.into()).await?;
    tx.rollback().await?;
    Ok(Json(overview))
}

/// Records a customer's new choices as staff heard them (method `api`): at the till, on the
/// phone. Withdrawing takes effect at once (no receipt mail after `receipt_email` is
/// withdrawn); `orders` is required and cannot be withdrawn here. A `marketing` grant waits
/// for the customer's own confirmation: they are mailed a link, and until they use it the
/// purpose shows `awaiting_confirmation` and no marketing mail goes to them.
#[utoipa::path(put, path = "/api/v1/customers/{id}/consents", tag = "customers",
    security(("bearer" = ["customers.write"])),
    params(("id" = CustomerId, Path)),
    request_body = ConsentChange,
    responses(
        (status = 200, body = Overview),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn change_customer_consents(
    caller: Authorized<WriteCustomers>,
    State(state): State<AppState>,
    client: ClientAddr,
    Path(id): Path<CustomerId>,
    headers: HeaderMap,
    Json(body): Json<ConsentChange>,
) -> Result<Json<Overview>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    if !customers::exists(&mut tx, id).await? {
        return Err(Error::NotFound);
    }
    consent::change(
        &state.db,
        &state.pii,
        &mut tx,
        caller.actor(),
        Audience::Customer,
        id.into(),
        &body.consents,
        Method::Api,
        &Evidence::of(client, &headers),
    )
    .await?;
    let overview = consent::overview(&state.db, &mut tx, Audience::Customer, id.into()).await?;
    tx.commit().await?;
    Ok(Json(overview))
}
