//! Customers over HTTP: add one with their consent choices, find by email or phone, open,
//! change. Every response that shows a customer's data is audited as `pii.accessed`.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
};
use platform::http::Path;
use platform::routes;
use platform::{
    AppState, Authorized, Result,
    http::{ClientAddr, Json, Page, Query},
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use validator::Validate;

use crate::{
    PHONE, ReadCustomers, WriteCustomers,
    consent::{self, Audience, Evidence, Method},
    customers::{self, Change, Customer, CustomerDetails, CustomerId, Lookup},
    staff::Locale,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(find_customers, create_customer))
        .routes(routes!(get_customer, update_customer))
}

/// Adds a customer with their consent choices; a required purpose not granted is a 422 naming
/// it, and nothing is written.
#[utoipa::path(post, path = "/api/v1/customers", tag = "customers",
    security(("bearer" = ["customers.write"])),
    request_body = CustomerDetails,
    responses(
        (status = 201, body = Customer),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 409, description = "`email_taken`", body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn create_customer(
    caller: Authorized<WriteCustomers>,
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    Json(body): Json<CustomerDetails>,
) -> Result<(StatusCode, Json<Customer>)> {
    platform::error::validate(&body)?;
    consent::validate(&state.db, Audience::Customer, &body.consents).await?;
    let new = body.as_new(false);
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let id = customers::create(
        &state.db,
        &state.pii,
        &mut tx,
        caller.actor(),
        &new,
        &body.consents,
        Method::Api,
        &Evidence::of(client, &headers),
    )
    .await?;
    // Shown back once, as stored (and audited as an access like any other).
    let customer =
        customers::profile(&state.pii, &mut tx, caller.actor(), "customer_service", id).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(customer)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct FindParams {
    /// Exact email (case and spaces do not matter).
    email: Option<String>,
    /// Exact phone number (only `+` and digits count).
    phone: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    #[param(value_type = Option<uuid::Uuid>)]
    cursor: Option<String>,
}

/// Finds customers by email or phone, or lists them all page by page. Each customer shown is
/// an audited access (purpose `customer_service`).
#[utoipa::path(get, path = "/api/v1/customers", tag = "customers",
    security(("bearer" = ["customers.read"])),
    params(FindParams),
    responses(
        (status = 200, body = Page<Customer>),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn find_customers(
    caller: Authorized<ReadCustomers>,
    State(state): State<AppState>,
    Query(params): Query<FindParams>,
) -> Result<Json<Page<Customer>>> {
    let page = platform::http::PageParams {
        limit: params.limit,
        cursor: params.cursor,
    };
    let lookup = Lookup {
        email: params.email.as_deref().filter(|e| !e.trim().is_empty()),
        phone: params.phone.as_deref().filter(|p| !p.trim().is_empty()),
        after: page.cursor::<CustomerId>()?,
        limit: page.limit()?,
    };
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let items = customers::find(&state.pii, &mut tx, caller.actor(), &lookup).await?;
    tx.commit().await?;
    Ok(Json(Page::new(items, lookup.limit, |c| c.id.to_string())))
}

/// One customer (an audited access, purpose `customer_service`).
#[utoipa::path(get, path = "/api/v1/customers/{id}", tag = "customers",
    security(("bearer" = ["customers.read"])),
    params(("id" = CustomerId, Path)),
    responses(
        (status = 200, body = Customer),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem),
        (status = 409, description = "`customer_erasing`: the customer's erasure is under way", body = platform::error::Problem),
    ))]
async fn get_customer(
    caller: Authorized<ReadCustomers>,
    State(state): State<AppState>,
    Path(id): Path<CustomerId>,
) -> Result<Json<Customer>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    if customers::erasing(&mut tx, id).await? {
        return Err(customers::erasing_conflict());
    }
    let customer =
        customers::profile(&state.pii, &mut tx, caller.actor(), "customer_service", id).await?;
    tx.commit().await?;
    Ok(Json(customer))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateCustomer {
    #[serde(default, deserialize_with = "platform::http::json::trimmed_option")]
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    full_name: Option<String>,
    #[validate(
        email(message = "must be an email address"),
        length(max = 254, message = "must be at most 254 characters")
    )]
    #[schema(max_length = 254)]
    email: Option<String>,
    #[validate(regex(path = *PHONE, message = "must be a phone number, e.g. +628123456789"))]
    #[schema(pattern = r"^\+?[0-9][0-9 \-]{5,24}$")]
    phone: Option<String>,
    #[serde(default, deserialize_with = "platform::http::json::trimmed_option")]
    #[validate(length(min = 1, max = 500, message = "must be 1 to 500 characters"))]
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    address: Option<String>,
    locale: Option<Locale>,
}

/// Changes a customer's details (rectification at the till). Consent changes go through the
/// privacy routes.
#[utoipa::path(patch, path = "/api/v1/customers/{id}", tag = "customers",
    security(("bearer" = ["customers.write"])),
    params(("id" = CustomerId, Path)),
    request_body = UpdateCustomer,
    responses(
        (status = 200, body = Customer),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem),
        (status = 409, description = "`email_taken`; `customer_erasing`: the customer is being or has been erased", body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn update_customer(
    caller: Authorized<WriteCustomers>,
    State(state): State<AppState>,
    Path(id): Path<CustomerId>,
    Json(body): Json<UpdateCustomer>,
) -> Result<Json<Customer>> {
    platform::error::validate(&body)?;
    let change = Change {
        full_name: body.full_name.as_deref(),
        email: body.email.as_deref(),
        phone: body.phone.as_deref(),
        address: body.address.as_deref(),
        locale: body.locale,
    };
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    customers::update(&state.pii, &mut tx, caller.actor(), id, &change).await?;
    let customer =
        customers::profile(&state.pii, &mut tx, caller.actor(), "customer_service", id).await?;
    tx.commit().await?;
    Ok(Json(customer))
}
