//! HTTP handlers of the catalog: products, categories, stock adjustments and the ledger,
//! catalog settings.

use std::sync::LazyLock;

use axum::{extract::State, http::StatusCode};
use platform::http::Path;
use platform::routes;
use platform::{
    AppState, Authorized, Error, Result,
    http::{
        Json, Page, PageParams, Query,
        json::{trimmed, trimmed_option},
    },
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use validator::Validate;

use crate::{
    ConfigureCatalog, ReadCatalog, WriteCatalog,
    catalog::{
        self, Category, CategoryId, Change, NewProduct, Product, ProductId, Search, Status,
        TaxCategory,
    },
    stock::{self, Adjustment, Movement, Settings},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_products, create_product))
        .routes(routes!(get_product, update_product, archive_product))
        .routes(routes!(adjust_stock))
        .routes(routes!(stock_movements))
        .routes(routes!(list_categories, create_category))
        .routes(routes!(rename_category, delete_category))
        .routes(routes!(get_settings, put_settings))
}

static CURRENCY: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"^[A-Z]{3}$").unwrap_or_else(|_| unreachable!()));

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateProduct {
    #[serde(deserialize_with = "trimmed")]
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    name: String,
    #[serde(deserialize_with = "trimmed")]
    #[validate(length(min = 1, max = 64, message = "must be 1 to 64 characters"))]
    #[schema(min_length = 1, max_length = 64, pattern = r"\S")]
    sku: String,
    category_id: Option<CategoryId>,
    #[validate(range(
        min = 0,
        max = 1_000_000_000_000_i64,
        message = "must be 0 to 1000000000000"
    ))]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    price_minor: i64,
    #[validate(regex(path = *CURRENCY, message = "must be an ISO 4217 code, e.g. IDR"))]
    #[schema(pattern = r"^[A-Z]{3}$")]
    currency: String,
    /// Opening stock (default 0).
    #[validate(range(min = 0, max = 1_000_000_000, message = "must be 0 to 1000000000"))]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    stock: Option<i64>,
    /// `standard` (default): taxed at the shop's default rate; `exempt`: never taxed.
    tax_category: Option<TaxCategory>,
}

/// Adds a product; its opening `stock` is the first row of its ledger.
#[utoipa::path(post, path = "/api/v1/products", tag = "catalog",
    security(("bearer" = ["products.write"])),
    request_body = CreateProduct,
    responses(
        (status = 201, body = Product),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 409, description = "`sku_taken`", body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn create_product(
    caller: Authorized<WriteCatalog>,
    State(state): State<AppState>,
    Json(body): Json<CreateProduct>,
) -> Result<(StatusCode, Json<Product>)> {
    platform::error::validate(&body)?;
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let new = NewProduct {
        name: &body.name,
        sku: &body.sku,
        category_id: body.category_id,
        price_minor: body.price_minor,
        currency: &body.currency,
        tax_category: body.tax_category.unwrap_or_default(),
    };
    let mut product = catalog::create(&mut tx, caller.actor(), &new).await?;
    if let Some(quantity) = body.stock.filter(|q| *q > 0) {
        product.on_hand = stock::open(&mut tx, caller.actor(), product.id, quantity)
            .await?
            .on_hand_after;
    }
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(product)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ProductParams {
    /// Part of the name or the start of the SKU (case-insensitive).
    q: Option<String>,
    category_id: Option<CategoryId>,
    /// `active` (default), `archived` or `all`.
    #[param(pattern = r"^(active|archived|all)$")]
    status: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    #[param(value_type = Option<uuid::Uuid>)]
    cursor: Option<String>,
}

/// Searches the catalog; everyone on the staff can.
#[utoipa::path(get, path = "/api/v1/products", tag = "catalog",
    security(("bearer" = ["products.read"])),
    params(ProductParams),
    responses(
        (status = 200, body = Page<Product>),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn list_products(
    caller: Authorized<ReadCatalog>,
    State(state): State<AppState>,
    Query(params): Query<ProductParams>,
) -> Result<Json<Page<Product>>> {
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    };
    let status = match params.status.as_deref() {
        None | Some("active") => Some(Status::Active),
        Some("archived") => Some(Status::Archived),
        Some("all") => None,
        Some(_) => return Err(Error::invalid("status", "must be active, archived or all")),
    };
    let text = params.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    if text.is_some_and(|q| q.chars().count() > 100) {
        return Err(Error::invalid("q", "must be at most 100 characters"));
    }
    let search = Search {
        text,
        category: params.category_id,
        status,
        after: page.cursor::<ProductId>()?,
        limit: page.limit()?,
    };
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let items = catalog::search(&mut tx, &search).await?;
    tx.commit().await?;
    Ok(Json(Page::new(items, search.limit, |p| p.id.to_string())))
}

/// One product.
#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "catalog",
    security(("bearer" = ["products.read"])),
    params(("id" = ProductId, Path)),
    responses(
        (status = 200, body = Product),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem),
    ))]
async fn get_product(
    caller: Authorized<ReadCatalog>,
    State(state): State<AppState>,
    Path(id): Path<ProductId>,
) -> Result<Json<Product>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let product = catalog::get(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(product))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateProduct {
    #[serde(default, deserialize_with = "trimmed_option")]
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    name: Option<String>,
    #[serde(default, deserialize_with = "trimmed_option")]
    #[validate(length(min = 1, max = 64, message = "must be 1 to 64 characters"))]
    #[schema(min_length = 1, max_length = 64, pattern = r"\S")]
    sku: Option<String>,
    /// `null` takes the product out of its category.
    #[serde(default, deserialize_with = "platform::http::json::present")]
    #[schema(value_type = Option<CategoryId>)]
    category_id: Option<Option<CategoryId>>,
    #[validate(range(
        min = 0,
        max = 1_000_000_000_000_i64,
        message = "must be 0 to 1000000000000"
    ))]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    price_minor: Option<i64>,
    #[validate(regex(path = *CURRENCY, message = "must be an ISO 4217 code, e.g. IDR"))]
    #[schema(pattern = r"^[A-Z]{3}$")]
    currency: Option<String>,
    status: Option<Status>,
    tax_category: Option<TaxCategory>,
}

/// Changes a product. Stock is not changed here: use stock adjustments. A new price applies
/// to orders made from now on; orders keep the price they were made at.
#[utoipa::path(patch, path = "/api/v1/products/{id}", tag = "catalog",
    security(("bearer" = ["products.write"])),
    params(("id" = ProductId, Path)),
    request_body = UpdateProduct,
    responses(
        (status = 200, body = Product),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem),
        (status = 409, description = "`sku_taken`", body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn update_product(
    caller: Authorized<WriteCatalog>,
    State(state): State<AppState>,
    Path(id): Path<ProductId>,
    Json(body): Json<UpdateProduct>,
) -> Result<Json<Product>> {
    platform::error::validate(&body)?;
    let change = Change {
        name: body.name.as_deref(),
        sku: body.sku.as_deref(),
        category_id: body.category_id,
        price_minor: body.price_minor,
        currency: body.currency.as_deref(),
        status: body.status,
        tax_category: body.tax_category,
    };
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let product = catalog::update(&mut tx, caller.actor(), id, &change).await?;
    tx.commit().await?;
    Ok(Json(product))
}

/// Archives a product: it can no longer be sold, and stays in past orders and the ledger.
#[utoipa::path(delete, path = "/api/v1/products/{id}", tag = "catalog",
    security(("bearer" = ["products.write"])),
    params(("id" = ProductId, Path)),
    responses(
        (status = 204, description = "Archived"),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem),
    ))]
async fn archive_product(
    caller: Authorized<WriteCatalog>,
    State(state): State<AppState>,
    Path(id): Path<ProductId>,
) -> Result<StatusCode> {
    let change = Change {
        status: Some(Status::Archived),
        ..Change::default()
    };
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    catalog::update(&mut tx, caller.actor(), id, &change).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
struct StockAdjustment {
    /// Units to add (positive) or remove (negative). Give this or `counted`.
    #[validate(range(min = -1_000_000_000, max = 1_000_000_000, message = "must be within ±1000000000"))]
    #[schema(minimum = -1_000_000_000, maximum = 1_000_000_000)]
    delta: Option<i64>,
    /// What a stock count found: on hand becomes this.
    #[validate(range(min = 0, max = 1_000_000_000, message = "must be 0 to 1000000000"))]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    counted: Option<i64>,
}

/// Adjusts stock by a number of units (`adjustment`) or to a counted quantity (`count`).
/// Stock cannot go below zero unless the tenant allows backorders (409 `insufficient_stock`).
#[utoipa::path(post, path = "/api/v1/products/{id}/stock-adjustments", tag = "catalog",
    security(("bearer" = ["products.write"])),
    params(("id" = ProductId, Path)),
    request_body = StockAdjustment,
    responses(
        (status = 201, body = Movement),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem),
        (status = 409, description = "`insufficient_stock`", body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn adjust_stock(
    caller: Authorized<WriteCatalog>,
    State(state): State<AppState>,
    Path(id): Path<ProductId>,
    Json(body): Json<StockAdjustment>,
) -> Result<(StatusCode, Json<Movement>)> {
    platform::error::validate(&body)?;
    let adjustment = match (body.delta, body.counted) {
        (Some(0), None) => return Err(Error::invalid("delta", "must not be zero")),
        (Some(delta), None) => Adjustment::By(delta),
        (None, Some(counted)) => Adjustment::CountedAt(counted),
        _ => {
            return Err(Error::invalid(
                "delta",
                "give exactly one of delta and counted",
            ));
        }
    };
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let movement = stock::adjust(&mut tx, caller.actor(), id, adjustment).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(movement)))
}

/// A product's stock ledger, oldest first.
#[utoipa::path(get, path = "/api/v1/products/{id}/stock-movements", tag = "catalog",
    security(("bearer" = ["products.read"])),
    params(("id" = ProductId, Path), PageParams),
    responses(
        (status = 200, body = Page<Movement>),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem),
    ))]
async fn stock_movements(
    caller: Authorized<ReadCatalog>,
    State(state): State<AppState>,
    Path(id): Path<ProductId>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Movement>>> {
    let limit = page.limit()?;
    let after = page.cursor::<uuid::Uuid>()?;
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let items = stock::movements(&mut tx, id, after, limit).await?;
    tx.commit().await?;
    Ok(Json(Page::new(items, limit, |m| m.id.to_string())))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
struct CategoryBody {
    #[serde(deserialize_with = "trimmed")]
    #[validate(length(min = 1, max = 100, message = "must be 1 to 100 characters"))]
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    name: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct CategoryList {
    items: Vec<Category>,
}

/// Every category, by name.
#[utoipa::path(get, path = "/api/v1/categories", tag = "catalog",
    security(("bearer" = ["products.read"])),
    responses(
        (status = 200, body = CategoryList),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
    ))]
async fn list_categories(
    caller: Authorized<ReadCatalog>,
    State(state): State<AppState>,
) -> Result<Json<CategoryList>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let items = catalog::categories(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(CategoryList { items }))
}

/// Adds a category (names are unique per tenant, whatever their case).
#[utoipa::path(post, path = "/api/v1/categories", tag = "catalog",
    security(("bearer" = ["products.write"])),
    request_body = CategoryBody,
    responses(
        (status = 201, body = Category),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 409, description = "`category_name_taken`", body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn create_category(
    caller: Authorized<WriteCatalog>,
    State(state): State<AppState>,
    Json(body): Json<CategoryBody>,
) -> Result<(StatusCode, Json<Category>)> {
    platform::error::validate(&body)?;
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let category = catalog::create_category(&mut tx, caller.actor(), &body.name).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(category)))
}

/// Renames a category.
#[utoipa::path(patch, path = "/api/v1/categories/{id}", tag = "catalog",
    security(("bearer" = ["products.write"])),
    params(("id" = CategoryId, Path)),
    request_body = CategoryBody,
    responses(
        (status = 200, body = Category),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem),
        (status = 409, description = "`category_name_taken`", body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn rename_category(
    caller: Authorized<WriteCatalog>,
    State(state): State<AppState>,
    Path(id): Path<CategoryId>,
    Json(body): Json<CategoryBody>,
) -> Result<Json<Category>> {
    platform::error::validate(&body)?;
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let category = catalog::rename_category(&mut tx, caller.actor(), id, &body.name).await?;
    tx.commit().await?;
    Ok(Json(category))
}

/// Deletes a category that no product is in.
#[utoipa::path(delete, path = "/api/v1/categories/{id}", tag = "catalog",
    security(("bearer" = ["products.write"])),
    params(("id" = CategoryId, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem),
        (status = 409, description = "`category_in_use`", body = platform::error::Problem),
    ))]
async fn delete_category(
    caller: Authorized<WriteCatalog>,
    State(state): State<AppState>,
    Path(id): Path<CategoryId>,
) -> Result<StatusCode> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    catalog::delete_category(&mut tx, caller.actor(), id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The catalog settings (backorders).
#[utoipa::path(get, path = "/api/v1/catalog/settings", tag = "catalog",
    security(("bearer" = ["products.read"])),
    responses(
        (status = 200, body = Settings),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
    ))]
async fn get_settings(
    caller: Authorized<ReadCatalog>,
    State(state): State<AppState>,
) -> Result<Json<Settings>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let settings = stock::settings(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(settings))
}

/// Changes the catalog settings (owner only: allowing backorders lets stock go negative).
#[utoipa::path(put, path = "/api/v1/catalog/settings", tag = "catalog",
    security(("bearer" = ["catalog.configure"])),
    request_body = Settings,
    responses(
        (status = 200, body = Settings),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn put_settings(
    caller: Authorized<ConfigureCatalog>,
    State(state): State<AppState>,
    Json(body): Json<Settings>,
) -> Result<Json<Settings>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    stock::set_settings(&mut tx, caller.actor(), body).await?;
    tx.commit().await?;
    Ok(Json(body))
}
