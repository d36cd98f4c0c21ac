//! HTTP handlers of orders: create (with stock taken and an optional guest customer), pay,
//! refund, cancel, list and open. Money-moving POSTs require an `Idempotency-Key`.

use axum::{
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use platform::http::Path;
use platform::routes;
use platform::{
    AppState, Authorized, Error, Result, Role,
    db::TenantTx,
    error::FieldError,
    http::{ClientAddr, Json, Page, PageParams, Query},
    id::{TenantId, UserId},
};
use products::{
    catalog::ProductId,
    stock::{self, Reason, SaleError, Want},
};
use serde::{Deserialize, Serialize};
use users::{
    consent::{self, Audience, Evidence, Method as ConsentMethod},
    customers::{self, CustomerDetails, CustomerId},
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use validator::Validate;

use crate::{
    ConfigureSales, ReadOrders, ReadReports, RefundOrders, WriteOrders,
    domain::{self, Method, Priced, PricingError, RefundError, Status},
    idempotency::{self, Claim, IdempotencyKey},
    money::{self, Discount, DiscountError, LineIn},
    receipts,
    repo::{self, Filter, NewLine, Order, OrderId, Summary},
    reports,
    settings::{self, SalesSettings},
    shifts,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_orders, create_order))
        .routes(routes!(get_order))
        .routes(routes!(receipt))
        .routes(routes!(sales_report))
        .merge(shifts::router())
        .routes(routes!(pay))
        .routes(routes!(refund))
        .routes(routes!(cancel))
        .routes(routes!(get_sales_settings, put_sales_settings))
}

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum ReceiptFormat {
    /// Plain text for a receipt printer.
    #[default]
    Text,
    /// HTML for print and mail.
    Html,
}

/// Receipt paper: 58 mm (32 columns) or 80 mm (48 columns).
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
enum Paper {
    #[default]
    #[serde(rename = "58mm")]
    Narrow,
    #[serde(rename = "80mm")]
    Wide,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ReceiptParams {
    /// `text` (default) or `html`.
    format: Option<ReceiptFormat>,
    /// For `text`: `58mm` (default, 32 columns) or `80mm` (48 columns).
    paper: Option<Paper>,
}

/// The receipt of a paid order, in the shop's language and time zone: the shop's details,
/// lines, discounts, tax lines, payments and change. The customer is named only if they asked
/// for receipts (`receipt_email` consent), and opening their name is audited.
#[utoipa::path(get, path = "/api/v1/orders/{id}/receipt", tag = "orders",
    security(("bearer" = ["orders.read"])),
    params(("id" = OrderId, Path), ReceiptParams),
    responses(
        (status = 200, description = "The receipt (`text/plain` or `text/html` by `format`)",
            content((String = "text/plain"), (String = "text/html"))),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem),
        (status = 409, description = "`order_not_paid`: no receipt before the order is paid", body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn receipt(
    caller: Authorized<ReadOrders>,
    State(state): State<AppState>,
    Path(id): Path<OrderId>,
    Query(params): Query<ReceiptParams>,
) -> Result<Response> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let order = repo::get(&mut tx, id).await?;
    if order.summary.receipt_no.is_none() {
        return Err(Error::conflict(
            "order_not_paid",
            "A receipt is printed once the order is paid.",
        ));
    }
    let shop = tenants::profile(&state, &mut tx).await?;
    let customer = match order.summary.customer_id {
        Some(customer)
            if users::consent::granted(&mut tx, customer.into(), "receipt_email").await? =>
        {
            customers::profile(&state.pii, &mut tx, caller.actor(), "orders", customer)
                .await
                .ok()
                .and_then(|c| c.full_name)
                .map(|name| name.expose().clone())
        }
        _ => None,
    };
    let printed = receipts::Receipt::of(&order, &shop, &shop.tenant.locale, customer);
    tx.commit().await?;
    let (content_type, body) = match params.format.unwrap_or_default() {
        ReceiptFormat::Text => {
            let width = match params.paper.unwrap_or_default() {
                Paper::Narrow => 32,
                Paper::Wide => 48,
            };
            ("text/plain; charset=utf-8", printed.text(width))
        }
        ReceiptFormat::Html => ("text/html; charset=utf-8", printed.html()?),
    };
    Ok(([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response())
}

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum ReportFormat {
    #[default]
    Json,
    Csv,
}

/// Which table a CSV report holds.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum ReportTable {
    #[default]
    Day,
    PaymentMethod,
    Cashier,
    Product,
    Category,
}

impl ReportTable {
    fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::PaymentMethod => "payment_method",
            Self::Cashier => "cashier",
            Self::Product => "product",
            Self::Category => "category",
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ReportParams {
    /// First day, the shop's local date (`2026-12-01`).
    from: chrono::NaiveDate,
    /// Last day, included (before `from`: an empty report).
    to: chrono::NaiveDate,
    /// `json` (default: every table) or `csv` (the table named by `by`).
    format: Option<ReportFormat>,
    /// For `csv`: `day` (default), `payment_method`, `cashier`, `product` or `category`.
    by: Option<ReportTable>,
}

/// Sales from `from` to `to` in the shop's time zone: totals (gross, discounts, service charge,
/// tax, sales, refunds, net) by day, and sales by payment method, cashier, product and category.
/// Read from what the orders stored; no customer data, staff by id only.
#[utoipa::path(get, path = "/api/v1/reports/sales", tag = "orders",
    security(("bearer" = ["reports.read"])),
    params(ReportParams),
    responses(
        (status = 200, description = "The report (JSON, or CSV by `format`)",
            content((reports::SalesReport = "application/json"), (String = "text/csv"))),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn sales_report(
    caller: Authorized<ReadReports>,
    State(state): State<AppState>,
    Query(params): Query<ReportParams>,
) -> Result<Response> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let report = reports::sales(&mut tx, params.from, params.to).await?;
    tx.commit().await?;
    Ok(match params.format.unwrap_or_default() {
        ReportFormat::Json => Json(report).into_response(),
        ReportFormat::Csv => {
            let table = params.by.unwrap_or_default();
            let csv = reports::csv(&report, table.as_str()).unwrap_or_default();
            let name = format!(
                "attachment; filename=\"sales-{}-{}-{}.csv\"",
                params.from,
                params.to,
                table.as_str()
            );
            (
                [
                    (
                        axum::http::header::CONTENT_TYPE,
                        "text/csv; charset=utf-8".to_owned(),
                    ),
                    (axum::http::header::CONTENT_DISPOSITION, name),
                ],
                csv,
            )
                .into_response()
        }
    })
}

/// The shop's sales settings: tax rates, whether prices include tax, service charge.
#[utoipa::path(get, path = "/api/v1/sales/settings", tag = "orders",
    security(("bearer" = ["orders.read"])),
    responses(
        (status = 200, body = SalesSettings),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
    ))]
async fn get_sales_settings(
    caller: Authorized<ReadOrders>,
    State(state): State<AppState>,
) -> Result<Json<SalesSettings>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let settings = settings::get(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(settings))
}

/// Replaces the shop's sales settings (owner only). Orders rung up from now on are priced by
/// them; every earlier order keeps the rule it was sold under.
#[utoipa::path(put, path = "/api/v1/sales/settings", tag = "orders",
    security(("bearer" = ["sales.configure"])),
    request_body = SalesSettings,
    responses(
        (status = 200, body = SalesSettings),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn put_sales_settings(
    caller: Authorized<ConfigureSales>,
    State(state): State<AppState>,
    Json(body): Json<SalesSettings>,
) -> Result<Json<SalesSettings>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    settings::set(&mut tx, caller.actor(), &body).await?;
    tx.commit().await?;
    Ok(Json(body))
}

#[derive(Debug, Deserialize, Serialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
struct LineRequest {
    product_id: ProductId,
    #[validate(range(min = 1, max = 100_000, message = "must be 1 to 100000"))]
    #[schema(minimum = 1, maximum = 100_000)]
    quantity: i64,
    /// Off this line (before tax).
    discount: Option<Discount>,
}

/// A new order. Prices are not sent: they are the catalog's at this moment.
#[derive(Debug, Deserialize, Serialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateOrder {
    #[validate(
        length(min = 1, max = 200, message = "must have 1 to 200 lines"),
        nested
    )]
    #[schema(min_items = 1, max_items = 200)]
    lines: Vec<LineRequest>,
    /// An existing customer of this shop.
    customer_id: Option<CustomerId>,
    /// Or a guest customer made for this order, with their consent choices.
    #[validate(nested)]
    customer: Option<CustomerDetails>,
    /// Off the whole order, after the lines' own discounts: shared out over the lines in
    /// proportion to what they cost. A cashier may take off at most the shop's
    /// `cashier_discount_limit_bp` of the order in all (403 beyond it); managers and owners
    /// are not limited.
    discount: Option<Discount>,
}

fn sale_error(err: SaleError) -> Error {
    match err {
        SaleError::Unknown(i) => {
            Error::invalid(format!("lines[{i}].product_id"), "no such product")
        }
        SaleError::Archived(i) => Error::invalid(
            format!("lines[{i}].product_id"),
            "this product is archived and cannot be sold",
        ),
        SaleError::Insufficient { index, on_hand } => Error::conflict(
            "insufficient_stock",
            format!("Not enough stock for line {index}: {on_hand} on hand."),
        ),
        SaleError::Failed(err) => err,
    }
}

/// Records a sale: takes the stock, prices every line from the catalog, and links the
/// customer (an existing one, or a guest made now with their consent). The same
/// `Idempotency-Key` with the same body answers with the first order; with another body, 422.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders",
    security(("bearer" = ["orders.write"])),
    params(("Idempotency-Key" = String, Header, description = "Unique per order attempt; reuse it when retrying", pattern = r"^[!-~]{1,255}$")),
    request_body = CreateOrder,
    responses(
        (status = 201, body = Order),
        (status = 400, description = "`idempotency_key_required`", body = platform::error::Problem),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 409, description = "`insufficient_stock`; `subject_restricted`: the customer restricted processing of their data; `customer_erasing`: the customer's erasure waits or runs; `email_taken`: a guest's email belongs to a customer (find them with `GET /api/v1/customers?email=` and send `customer_id`)", body = platform::error::Problem),
        (status = 422, description = "Invalid lines or customer, or `idempotency_key_reused`", body = platform::error::Problem),
    ))]
async fn create_order(
    caller: Authorized<WriteOrders>,
    State(state): State<AppState>,
    key: IdempotencyKey,
    client: ClientAddr,
    headers: HeaderMap,
    Json(body): Json<CreateOrder>,
) -> Result<Response> {
    platform::error::validate(&body)?;
    if body.customer_id.is_some() && body.customer.is_some() {
        return Err(Error::invalid(
            "customer",
            "give customer_id or customer, not both",
        ));
    }
    if let Some(guest) = &body.customer {
        consent::validate(&state.db, Audience::Customer, &guest.consents).await?;
    }
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    if let Claim::Replay(replay) =
        idempotency::claim(&state.pii, &mut tx, &key, "POST /orders", &body).await?
    {
        tx.rollback().await?;
        return Ok(replay.into_response());
    }
    let actor = caller.actor();
    let customer = match (&body.customer_id, &body.customer) {
        (Some(id), _) => {
            match customers::use_for_order(&mut tx, actor, *id).await {
                Err(Error::NotFound) => {
                    return Err(Error::invalid("customer_id", "no such customer"));
                }
                other => other?,
            }
            Some(*id)
        }
        (None, Some(guest)) => Some(
            customers::create(
                &state.db,
                &state.pii,
                &mut tx,
                actor,
                &guest.as_new(true),
                &guest.consents,
                ConsentMethod::Checkout,
                &Evidence::of(client, &headers),
            )
            .await?,
        ),
        (None, None) => None,
    };
    let id = OrderId::new();
    let wants: Vec<Want> = body
        .lines
        .iter()
        .map(|l| Want {
            product: l.product_id,
            quantity: l.quantity,
        })
        .collect();
    let sold = stock::sell(&mut tx, actor, id.0, &wants)
        .await
        .map_err(sale_error)?;
    let priced: Vec<Priced> = sold
        .iter()
        .zip(&body.lines)
        .map(|(s, l)| Priced {
            unit_price_minor: s.unit_price_minor,
            quantity: l.quantity,
            currency: s.currency.clone(),
        })
        .collect();
    let too_large = || Error::invalid("lines", "the total is too large");
    let (_, currency) = domain::total(&priced).map_err(|err| match err {
        PricingError::MixedCurrency(i) => Error::invalid(
            format!("lines[{i}].product_id"),
            "is priced in another currency than the first line",
        ),
        PricingError::TooLarge => too_large(),
    })?;
    let lines: Vec<NewLine> = sold
        .into_iter()
        .zip(&body.lines)
        .map(|(s, l)| NewLine {
            product_id: s.product,
            name: s.name,
            sku: s.sku,
            unit_price_minor: s.unit_price_minor,
            quantity: l.quantity,
            tax_category: s.tax_category,
            discount: None,
            discount_minor: 0,
            category_id: s.category,
        })
        .collect();
    // The shop's settings now, copied onto the order: a later change never alters it.
    let sales = settings::get(&mut tx).await?;
    let pricing = sales.pricing();
    let gross: Vec<i64> = lines
        .iter()
        .map(|l| {
            l.unit_price_minor
                .checked_mul(l.quantity)
                .ok_or_else(too_large)
        })
        .collect::<Result<_>>()?;
    let own: Vec<Option<Discount>> = body.lines.iter().map(|l| l.discount).collect();
    let taken = money::discounts(&gross, &own, body.discount.as_ref()).map_err(|(line, err)| {
        let field = line.map_or("discount".to_owned(), |i| format!("lines[{i}].discount"));
        match err {
            DiscountError::MoreThanThePrice => {
                Error::invalid(field, "takes off more than the price")
            }
            DiscountError::OutOfRange => {
                Error::invalid(field, "rate_bp must be 1 to 10000, amount_minor at least 1")
            }
        }
    })?;
    let off: i64 = taken.iter().sum();
    let whole: i64 = gross.iter().sum();
    if off > 0
        && caller.role == Role::Cashier
        && i128::from(off) * i128::from(money::WHOLE_BP)
            > i128::from(sales.cashier_discount_limit_bp) * i128::from(whole)
    {
        return Err(Error::Forbidden);
    }
    let lines: Vec<NewLine> = lines
        .into_iter()
        .zip(&taken)
        .zip(own)
        .map(|((line, off), discount)| NewLine {
            discount_minor: *off,
            discount,
            ..line
        })
        .collect();
    let billed: Vec<LineIn> = lines
        .iter()
        .zip(&gross)
        .map(|(l, gross)| LineIn {
            amount_minor: gross - l.discount_minor,
            category: l.tax_category,
        })
        .collect();
    let bill = money::bill(&pricing, &billed).map_err(|_| too_large())?;
    let shift = shifts::open_for(&mut tx, caller.user).await?;
    let order = repo::insert(
        &mut tx,
        actor,
        id,
        caller.user,
        customer,
        &currency,
        &pricing,
        &bill,
        &lines,
        body.discount.as_ref(),
        shift,
        state.clock.now(),
    )
    .await?;
    idempotency::commit_created(tx, &key, &order).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    status: Option<Status>,
    /// Created at or after (RFC 3339).
    from: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    to: Option<DateTime<Utc>>,
    cashier_id: Option<UserId>,
    customer_id: Option<CustomerId>,
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    #[param(value_type = Option<uuid::Uuid>)]
    cursor: Option<String>,
}

/// Orders, newest first, filtered by status, time, cashier or customer.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders",
    security(("bearer" = ["orders.read"])),
    params(ListParams),
    responses(
        (status = 200, body = Page<Summary>),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn list_orders(
    caller: Authorized<ReadOrders>,
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<Summary>>> {
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    };
    let filter = Filter {
        status: params.status,
        from: params.from,
        to: params.to,
        cashier: params.cashier_id,
        customer: params.customer_id,
        before: page.cursor::<OrderId>()?,
        limit: page.limit()?,
    };
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let items = repo::list(&mut tx, &filter).await?;
    tx.commit().await?;
    Ok(Json(Page::new(items, filter.limit, |o| o.id.to_string())))
}

/// One order with its lines, payments and refunds.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders",
    security(("bearer" = ["orders.read"])),
    params(("id" = OrderId, Path)),
    responses(
        (status = 200, body = Order),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem),
    ))]
async fn get_order(
    caller: Authorized<ReadOrders>,
    State(state): State<AppState>,
    Path(id): Path<OrderId>,
) -> Result<Json<Order>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let order = repo::get(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(order))
}

/// A money-moving request on one order, begun: the order locked first (so a concurrent retry
/// of the same key waits here), then the key claimed.
enum Attempt {
    Fresh(TenantTx, Summary),
    /// The first attempt's answer, to send again.
    Replayed(Response),
}

async fn attempt(
    state: &AppState,
    tenant: TenantId,
    id: OrderId,
    key: &IdempotencyKey,
    action: &str,
    body: &impl Serialize,
) -> Result<Attempt> {
    let mut tx = state.db.tenant(tenant).begin().await?;
    let order = repo::summary_for_update(&mut tx, id).await?;
    let scope = format!("POST /orders/{id}/{action}");
    match idempotency::claim(&state.pii, &mut tx, key, &scope, body).await? {
        Claim::New => Ok(Attempt::Fresh(tx, order)),
        Claim::Replay(replay) => {
            tx.rollback().await?;
            Ok(Attempt::Replayed(replay.into_response()))
        }
    }
}

#[derive(Debug, Deserialize, Serialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
struct PaymentRequest {
    method: Method,
    /// What the customer hands over. Cash may exceed what is due (the rest is change); other
    /// methods may not.
    #[validate(range(min = 1, message = "must be positive"))]
    #[schema(minimum = 1)]
    amount_minor: i64,
}

#[derive(Debug, Serialize, ToSchema)]
struct PaymentResponse {
    payment: repo::Payment,
    order: Summary,
}

/// Takes a payment; several make a split payment. The order is `paid` once nothing is due.
#[utoipa::path(post, path = "/api/v1/orders/{id}/payments", tag = "orders",
    security(("bearer" = ["orders.write"])),
    params(("id" = OrderId, Path), ("Idempotency-Key" = String, Header, description = "Unique per attempt (1 to 255 visible ASCII characters); reuse it when retrying", pattern = r"^[!-~]{1,255}$")),
    request_body = PaymentRequest,
    responses(
        (status = 201, body = PaymentResponse),
        (status = 400, description = "`idempotency_key_required`", body = platform::error::Problem),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem),
        (status = 409, description = "`order_not_open`", body = platform::error::Problem),
        (status = 422, description = "`overpayment`, `idempotency_key_reused`", body = platform::error::Problem),
    ))]
async fn pay(
    caller: Authorized<WriteOrders>,
    State(state): State<AppState>,
    Path(id): Path<OrderId>,
    key: IdempotencyKey,
    Json(body): Json<PaymentRequest>,
) -> Result<Response> {
    platform::error::validate(&body)?;
    let (mut tx, order) = match attempt(&state, caller.tenant, id, &key, "payments", &body).await? {
        Attempt::Fresh(tx, order) => (tx, order),
        Attempt::Replayed(response) => return Ok(response),
    };
    if !order.status.may_pay() {
        return Err(Error::conflict(
            "order_not_open",
            "Only an open order takes payments.",
        ));
    }
    let applied = domain::apply_payment(
        order.total_minor,
        order.paid_minor,
        body.method,
        body.amount_minor,
    )
    .map_err(|domain::PaymentError::Overpayment { due_minor }| {
        Error::unprocessable(
            "overpayment",
            format!("Only {due_minor} is due; only cash may be more (change is given)."),
        )
    })?;
    let shift = if body.method == Method::Cash {
        let required = settings::get(&mut tx).await?.require_shift_for_cash;
        shifts::for_cash(&mut tx, caller.user, required).await?
    } else {
        shifts::open_for(&mut tx, caller.user).await?
    };
    let payment_id = repo::record_payment(
        &mut tx,
        caller.actor(),
        &order,
        caller.user,
        body.method,
        applied,
        shift,
        state.clock.now(),
    )
    .await?;
    let order = repo::get(&mut tx, id).await?;
    let payment = order
        .payments
        .iter()
        .find(|p| p.id == payment_id)
        .cloned()
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("payment not found after insert")))?;
    let response = PaymentResponse {
        payment,
        order: order.summary,
    };
    idempotency::commit_created(tx, &key, &response).await
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum RefundReason {
    CustomerReturn,
    Damaged,
    WrongItem,
    Other,
}

impl RefundReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::CustomerReturn => "customer_return",
            Self::Damaged => "damaged",
            Self::WrongItem => "wrong_item",
            Self::Other => "other",
        }
    }
}

#[derive(Debug, Deserialize, Serialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefundLineRequest {
    #[validate(range(min = 1, max = 200, message = "must be 1 to 200"))]
    #[schema(minimum = 1, maximum = 200)]
    line_no: i32,
    #[validate(range(min = 1, max = 100_000, message = "must be 1 to 100000"))]
    #[schema(minimum = 1, maximum = 100_000)]
    quantity: i64,
}

#[derive(Debug, Deserialize, Serialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefundRequest {
    /// Lines and quantities to refund; omitted: everything not refunded yet.
    #[validate(
        length(min = 1, max = 200, message = "must have 1 to 200 lines"),
        nested
    )]
    #[schema(min_items = 1, max_items = 200)]
    lines: Option<Vec<RefundLineRequest>>,
    reason: RefundReason,
    /// Put the refunded units back in stock (default true; false for damaged goods).
    restock: Option<bool>,
    /// How the money goes back (default: how the order was first paid). Cash comes out of the
    /// open shift of whoever gives it.
    method: Option<Method>,
}

/// Refunds a paid order in full or in part; restocks by default. Owner or manager.
#[utoipa::path(post, path = "/api/v1/orders/{id}/refunds", tag = "orders",
    security(("bearer" = ["orders.refund"])),
    params(("id" = OrderId, Path), ("Idempotency-Key" = String, Header, description = "Unique per attempt (1 to 255 visible ASCII characters); reuse it when retrying", pattern = r"^[!-~]{1,255}$")),
    request_body = RefundRequest,
    responses(
        (status = 201, body = Order),
        (status = 400, description = "`idempotency_key_required`", body = platform::error::Problem),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem),
        (status = 409, description = "`order_not_paid`, `nothing_to_refund`", body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn refund(
    caller: Authorized<RefundOrders>,
    State(state): State<AppState>,
    Path(id): Path<OrderId>,
    key: IdempotencyKey,
    Json(body): Json<RefundRequest>,
) -> Result<Response> {
    platform::error::validate(&body)?;
    let (mut tx, order) = match attempt(&state, caller.tenant, id, &key, "refunds", &body).await? {
        Attempt::Fresh(tx, order) => (tx, order),
        Attempt::Replayed(response) => return Ok(response),
    };
    if !order.status.may_refund() {
        return Err(Error::conflict(
            "order_not_paid",
            "Only a paid order can be refunded.",
        ));
    }
    let lines = repo::refundable(&mut tx, id).await?;
    let refundable: Vec<_> = lines.iter().map(|(l, _)| *l).collect();
    let asked: Option<Vec<(i32, i64)>> = body
        .lines
        .as_ref()
        .map(|ls| ls.iter().map(|l| (l.line_no, l.quantity)).collect());
    let plan = domain::plan_refund(&refundable, asked.as_deref()).map_err(|err| match err {
        RefundError::UnknownLine(i) => {
            Error::invalid(format!("lines[{i}].line_no"), "no such line on this order")
        }
        RefundError::Duplicate(i) => {
            Error::invalid(format!("lines[{i}].line_no"), "this line is named twice")
        }
        RefundError::TooMany { index, refundable } => Error::Validation(vec![FieldError::new(
            format!("lines[{index}].quantity"),
            format!("only {refundable} left to refund on this line"),
        )]),
        RefundError::Nothing => Error::conflict(
            "nothing_to_refund",
            "Everything on this order is refunded already.",
        ),
    })?;
    let status = domain::status_after_refund(&refundable, &plan);
    let restock = body.restock.unwrap_or(true);
    let paid_with = repo::get(&mut tx, id)
        .await?
        .payments
        .first()
        .map_or(Method::Cash, |p| p.method);
    let method = body.method.unwrap_or(paid_with);
    let shift = if method == Method::Cash {
        let required = settings::get(&mut tx).await?.require_shift_for_cash;
        shifts::for_cash(&mut tx, caller.user, required).await?
    } else {
        None
    };
    repo::record_refund(
        &mut tx,
        caller.actor(),
        caller.user,
        &order,
        body.reason.as_str(),
        restock,
        &plan,
        status,
        (method, shift),
        state.clock.now(),
    )
    .await?;
    if restock {
        let wants: Vec<Want> = plan
            .iter()
            .filter_map(|p| {
                let (_, product) = lines.iter().find(|(l, _)| l.line_no == p.line_no)?;
                Some(Want {
                    product: *product,
                    quantity: p.quantity,
                })
            })
            .collect();
        stock::restock(&mut tx, caller.actor(), Reason::Refund, id.0, &wants).await?;
    }
    let order = repo::get(&mut tx, id).await?;
    idempotency::commit_created(tx, &key, &order).await
}

/// Cancels an open order that has no payments; its stock goes back.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders",
    security(("bearer" = ["orders.write"])),
    params(("id" = OrderId, Path)),
    responses(
        (status = 200, body = Order),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 404, body = platform::error::Problem),
        (status = 409, description = "`order_not_open`, `order_has_payments`", body = platform::error::Problem),
    ))]
async fn cancel(
    caller: Authorized<WriteOrders>,
    State(state): State<AppState>,
    Path(id): Path<OrderId>,
) -> Result<Json<Order>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let order = repo::summary_for_update(&mut tx, id).await?;
    if order.status != Status::Open {
        return Err(Error::conflict(
            "order_not_open",
            "Only an open order can be cancelled.",
        ));
    }
    if order.paid_minor > 0 {
        return Err(Error::conflict(
            "order_has_payments",
            "This order has payments: finish paying and refund it instead.",
        ));
    }
    repo::cancel(&mut tx, caller.actor(), &order, state.clock.now()).await?;
    let wants: Vec<Want> = repo::quantities(&mut tx, id)
        .await?
        .into_iter()
        .map(|(product, quantity)| Want { product, quantity })
        .collect();
    stock::restock(&mut tx, caller.actor(), Reason::Cancellation, id.0, &wants).await?;
    let order = repo::get(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(order))
}
