//! Orders, their lines, payments and refunds in SQL. Each function that changes an order emits
//! its audit record (and the domain event notifications react to) in the same transaction.

use chrono::{DateTime, Utc};
use platform::{
    Error, Result,
    db::TenantTx,
    events::{self, Actor, AuditRecord, DomainEvent, Resource},
    id::UserId,
};
use products::catalog::ProductId;
use serde::Serialize;
use users::customers::CustomerId;
use utoipa::ToSchema;

use crate::domain::{Applied, Method, RefundLine, Refundable, Status};
use crate::money::{Bill, Discount, Pricing, TaxCategory, TaxLine, TaxRate};

platform::id_type!(
    /// A point-of-sale order of one tenant.
    OrderId
);

/// An order without its lines (list rows).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Summary {
    pub id: OrderId,
    pub status: Status,
    pub cashier_id: UserId,
    pub customer_id: Option<CustomerId>,
    pub currency: String,
    /// What the customer pays: every line's net, tax, service charge and its tax.
    pub total_minor: i64,
    /// Taken off the lines' catalog prices (the lines' own discounts and the order's).
    pub discount_minor: i64,
    pub service_charge_minor: i64,
    /// All tax in `total_minor` (the goods' and the service charge's).
    pub tax_minor: i64,
    pub paid_minor: i64,
    pub refunded_minor: i64,
    /// The receipt number, once the order is paid (`INV/20261201/0001`).
    pub receipt_no: Option<String>,
    /// Still to pay while the order is open.
    pub due_minor: i64,
    pub created_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

struct SummaryRow {
    id: uuid::Uuid,
    status: String,
    cashier_id: uuid::Uuid,
    customer_id: Option<uuid::Uuid>,
    currency: String,
    total_minor: i64,
    discount_minor: i64,
    service_charge_minor: i64,
    tax_minor: i64,
    paid_minor: i64,
    refunded_minor: i64,
    receipt_no: Option<String>,
    created_at: DateTime<Utc>,
    paid_at: Option<DateTime<Utc>>,
    cancelled_at: Option<DateTime<Utc>>,
}

impl TryFrom<SummaryRow> for Summary {
    type Error = Error;
    fn try_from(r: SummaryRow) -> Result<Self> {
        let status = Status::parse(&r.status)
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("unknown order status")))?;
        Ok(Self {
            id: OrderId(r.id),
            status,
            cashier_id: UserId(r.cashier_id),
            customer_id: r.customer_id.map(CustomerId),
            currency: r.currency,
            total_minor: r.total_minor,
            discount_minor: r.discount_minor,
            service_charge_minor: r.service_charge_minor,
            tax_minor: r.tax_minor,
            paid_minor: r.paid_minor,
            refunded_minor: r.refunded_minor,
            receipt_no: r.receipt_no,
            due_minor: if status == Status::Open {
                r.total_minor - r.paid_minor
            } else {
                0
            },
            created_at: r.created_at,
            paid_at: r.paid_at,
            cancelled_at: r.cancelled_at,
        })
    }
}

/// What was sold on one line, as it was at order time.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Line {
    pub line_no: i32,
    pub product_id: ProductId,
    pub name: String,
    pub sku: String,
    pub unit_price_minor: i64,
    pub quantity: i64,
    /// The line's own discount as asked.
    pub discount: Option<Discount>,
    /// Taken off unit price × quantity: the line's own discount and its share of the order's.
    pub discount_minor: i64,
    pub tax_category: TaxCategory,
    /// The rate the goods were taxed at; `null`: not taxed.
    pub tax_rate: Option<TaxRate>,
    /// Before tax and service charge.
    pub net_minor: i64,
    pub tax_minor: i64,
    pub service_charge_minor: i64,
    /// Tax on the service charge.
    pub service_tax_minor: i64,
    /// net + tax + service charge + its tax.
    pub line_total_minor: i64,
    pub refunded_quantity: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Payment {
    pub id: uuid::Uuid,
    pub method: Method,
    pub amount_minor: i64,
    pub tendered_minor: i64,
    pub change_minor: i64,
    pub cashier_id: UserId,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RefundedLine {
    pub line_no: i32,
    pub quantity: i64,
    pub amount_minor: i64,
    /// Of `amount_minor`, the tax given back.
    pub tax_minor: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Refund {
    pub id: uuid::Uuid,
    pub amount_minor: i64,
    pub reason: String,
    pub restocked: bool,
    pub refunded_by: UserId,
    pub lines: Vec<RefundedLine>,
    pub created_at: DateTime<Utc>,
}

/// An order with everything on it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Order {
    #[serde(flatten)]
    pub summary: Summary,
    /// The rule the order was priced by: the shop's settings when it was rung up.
    pub pricing: Pricing,
    /// The order-level discount as asked (shared out over the lines' `discount_minor`).
    pub discount: Option<Discount>,
    /// Per rate: what was taxed and the tax.
    pub tax_lines: Vec<TaxLine>,
    pub lines: Vec<Line>,
    pub payments: Vec<Payment>,
    pub refunds: Vec<Refund>,
}

/// A line to write.
#[derive(Debug, Clone)]
pub struct NewLine {
    pub product_id: ProductId,
    pub name: String,
    pub sku: String,
    pub unit_price_minor: i64,
    pub quantity: i64,
    pub tax_category: TaxCategory,
    pub discount: Option<Discount>,
    /// Everything taken off this line (its own and its share of the order's discount).
    pub discount_minor: i64,
    /// The product's category when it was sold (reports group by it).
    pub category_id: Option<products::catalog::CategoryId>,
}

fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T> {
    serde_json::from_value(value)
        .map_err(|e| Error::Internal(anyhow::anyhow!("a stored order field is unreadable: {e}")))
}

fn to_json<T: Serialize>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| Error::Internal(anyhow::anyhow!(e)))
}

/// Writes a new order and its lines (`order.created`, audit and event). An order with nothing
/// to pay (every line free) is `paid` at once, with its `order.paid` event.
#[expect(clippy::too_many_arguments, reason = "an order and everything on it")]
#[tracing::instrument(skip_all, fields(order.id = %id))]
pub async fn insert(
    tx: &mut TenantTx,
    actor: Actor,
    id: OrderId,
    cashier: UserId,
    customer: Option<CustomerId>,
    currency: &str,
    pricing: &Pricing,
    bill: &Bill,
    lines: &[NewLine],
    discount: Option<&Discount>,
    shift: Option<crate::shifts::ShiftId>,
    now: DateTime<Utc>,
) -> Result<Order> {
    let tenant = tx.tenant();
    let total_minor = bill.total_minor;
    let discount_minor: i64 = lines.iter().map(|l| l.discount_minor).sum();
    // The response is built from what was written, not read back.
    let summary: Summary = sqlx::query_as!(
        SummaryRow,
        "insert into orders (tenant_id, id, status, cashier_id, customer_id, currency, total_minor,
                             created_at, updated_at, paid_at, pricing, service_charge_minor,
                             tax_minor, discount, discount_minor, shift_id)
         values ($1, $2, case when $6::int8 = 0 then 'paid' else 'open' end, $3, $4, $5, $6, $7::timestamptz, $7,
                 case when $6 = 0 then $7 end, $8, $9, $10, $11, $12, $13)
         returning id, status, cashier_id, customer_id, currency, total_minor, discount_minor,
                   service_charge_minor, tax_minor, paid_minor, refunded_minor, receipt_no,
                   created_at, paid_at, cancelled_at",
        tenant.0,
        id.0,
        cashier.0,
        customer.map(|c| c.0),
        currency,
        total_minor,
        now,
        to_json(pricing)?,
        bill.service_charge_minor,
        bill.tax_minor,
        discount.map(to_json).transpose()?,
        discount_minor,
        shift.map(|s| s.0),
    )
    .fetch_one(&mut **tx)
    .await?
    .try_into()?;
    let line_nos: Vec<i32> = (1..).take(lines.len()).collect();
    let products: Vec<uuid::Uuid> = lines.iter().map(|l| l.product_id.0).collect();
    let names: Vec<String> = lines.iter().map(|l| l.name.clone()).collect();
    let skus: Vec<String> = lines.iter().map(|l| l.sku.clone()).collect();
    let prices: Vec<i64> = lines.iter().map(|l| l.unit_price_minor).collect();
    let quantities: Vec<i64> = lines.iter().map(|l| l.quantity).collect();
    let categories: Vec<&str> = lines.iter().map(|l| l.tax_category.as_str()).collect();
    let rate_names: Vec<Option<String>> = bill
        .lines
        .iter()
        .map(|b| b.tax_rate.as_ref().map(|r| r.name.clone()))
        .collect();
    let rate_bps: Vec<Option<i32>> = bill
        .lines
        .iter()
        .map(|b| b.tax_rate.as_ref().map(|r| r.rate_bp))
        .collect();
    let nets: Vec<i64> = bill.lines.iter().map(|b| b.net_minor).collect();
    let taxes: Vec<i64> = bill.lines.iter().map(|b| b.tax_minor).collect();
    let services: Vec<i64> = bill.lines.iter().map(|b| b.service_charge_minor).collect();
    let service_taxes: Vec<i64> = bill.lines.iter().map(|b| b.service_tax_minor).collect();
    let discounts: Vec<Option<serde_json::Value>> = lines
        .iter()
        .map(|l| l.discount.as_ref().map(to_json).transpose())
        .collect::<Result<_>>()?;
    let discounts_minor: Vec<i64> = lines.iter().map(|l| l.discount_minor).collect();
    let categories_sold: Vec<Option<uuid::Uuid>> =
        lines.iter().map(|l| l.category_id.map(|c| c.0)).collect();
    sqlx::query!(
        "insert into order_lines (tenant_id, order_id, line_no, product_id, name, sku, unit_price_minor,
                                  quantity, tax_category, tax_rate_name, tax_rate_bp, net_minor,
                                  tax_minor, service_charge_minor, service_tax_minor, discount,
                                  discount_minor, category_id)
         select $1, $2, * from unnest($3::int4[], $4::uuid[], $5::text[], $6::text[], $7::int8[],
                                      $8::int8[], $9::text[], $10::text[], $11::int4[], $12::int8[],
                                      $13::int8[], $14::int8[], $15::int8[], $16::jsonb[],
                                      $17::int8[], $18::uuid[])",
        tenant.0,
        id.0,
        &line_nos,
        &products,
        &names,
        &skus,
        &prices,
        &quantities,
        &categories as &[&str],
        &rate_names as &[Option<String>],
        &rate_bps as &[Option<i32>],
        &nets,
        &taxes,
        &services,
        &service_taxes,
        &discounts as &[Option<serde_json::Value>],
        &discounts_minor,
        &categories_sold as &[Option<uuid::Uuid>],
    )
    .execute(&mut **tx)
    .await?;
    for tax in &bill.tax_lines {
        sqlx::query!(
            "insert into order_tax_lines (tenant_id, order_id, name, rate_bp, taxable_base_minor,
                                          tax_minor)
             values ($1, $2, $3, $4, $5, $6)",
            tenant.0,
            id.0,
            tax.name,
            tax.rate_bp,
            tax.taxable_base_minor,
            tax.tax_minor,
        )
        .execute(&mut **tx)
        .await?;
    }
    let record = AuditRecord::new(actor, "order.created", Resource::new("order", id))
        .fields(&[
            "status",
            "customer_id",
            "currency",
            "total_minor",
            "discount_minor",
            "service_charge_minor",
            "tax_minor",
            "pricing",
            "lines",
        ])
        .details(serde_json::json!({
            "total_minor": total_minor,
            "discount_minor": discount_minor,
            "tax_minor": bill.tax_minor,
            "service_charge_minor": bill.service_charge_minor,
            "currency": currency,
            "lines": lines.len(),
            "customer_id": customer,
        }));
    events::emit_audit(tx, &record).await?;
    let event = DomainEvent {
        actor,
        event_type: "order.created",
        payload: serde_json::json!({
            "order_id": id,
            "cashier_id": cashier,
            "customer_id": customer,
            "currency": currency,
            "total_minor": total_minor,
            "lines": lines.iter().map(|l| serde_json::json!({
                "product_id": l.product_id,
                "quantity": l.quantity,
                "unit_price_minor": l.unit_price_minor,
            })).collect::<Vec<_>>(),
        }),
    };
    events::emit_event(tx, &event).await?;
    let mut summary = summary;
    if total_minor == 0 {
        summary.receipt_no = Some(crate::receipts::assign(tx, id, now).await?);
        emit_paid(tx, actor, id, customer, currency, total_minor).await?;
    }
    Ok(Order {
        summary,
        pricing: pricing.clone(),
        discount: discount.copied(),
        tax_lines: bill.tax_lines.clone(),
        lines: lines
            .iter()
            .zip(&bill.lines)
            .zip(line_nos)
            .map(|((l, b), line_no)| Line {
                line_no,
                product_id: l.product_id,
                name: l.name.clone(),
                sku: l.sku.clone(),
                unit_price_minor: l.unit_price_minor,
                quantity: l.quantity,
                discount: l.discount,
                discount_minor: l.discount_minor,
                tax_category: l.tax_category,
                tax_rate: b.tax_rate.clone(),
                net_minor: b.net_minor,
                tax_minor: b.tax_minor,
                service_charge_minor: b.service_charge_minor,
                service_tax_minor: b.service_tax_minor,
                line_total_minor: b.total_minor(),
                refunded_quantity: 0,
            })
            .collect(),
        payments: Vec::new(),
        refunds: Vec::new(),
    })
}

/// `order.paid` on `warung.events.v1` (receipts are sent from it).
async fn emit_paid(
    tx: &mut TenantTx,
    actor: Actor,
    id: OrderId,
    customer: Option<CustomerId>,
    currency: &str,
    total_minor: i64,
) -> Result<()> {
    let event = DomainEvent {
        actor,
        event_type: "order.paid",
        payload: serde_json::json!({
            "order_id": id,
            "customer_id": customer,
            "currency": currency,
            "total_minor": total_minor,
        }),
    };
    events::emit_event(tx, &event).await?;
    Ok(())
}

/// The order, locked for a change in this transaction; 404 when not this tenant's.
pub async fn summary_for_update(tx: &mut TenantTx, id: OrderId) -> Result<Summary> {
    sqlx::query_as!(
        SummaryRow,
        "select id, status, cashier_id, customer_id, currency, total_minor, discount_minor,
                service_charge_minor, tax_minor, paid_minor, refunded_minor, receipt_no,
                created_at, paid_at, cancelled_at
         from orders where id = $1 for update",
        id.0
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(Error::NotFound)?
    .try_into()
}

/// The order with its lines, payments and refunds; 404 when not this tenant's.
pub async fn get(tx: &mut TenantTx, id: OrderId) -> Result<Order> {
    let summary: Summary = sqlx::query_as!(
        SummaryRow,
        "select id, status, cashier_id, customer_id, currency, total_minor, discount_minor,
                service_charge_minor, tax_minor, paid_minor, refunded_minor, receipt_no,
                created_at, paid_at, cancelled_at
         from orders where id = $1",
        id.0
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(Error::NotFound)?
    .try_into()?;
    let stored = sqlx::query!("select pricing, discount from orders where id = $1", id.0)
        .fetch_one(&mut **tx)
        .await?;
    let pricing = stored
        .pricing
        .map(from_json)
        .transpose()?
        // Orders from before tax existed were sold untaxed.
        .unwrap_or_else(Pricing::untaxed);
    let discount = stored.discount.map(from_json).transpose()?;
    let tax_lines = sqlx::query_as!(
        TaxLine,
        "select name, rate_bp, taxable_base_minor, tax_minor from order_tax_lines
         where order_id = $1 order by name",
        id.0
    )
    .fetch_all(&mut **tx)
    .await?;
    let lines = sqlx::query!(
        "select line_no, product_id, name, sku, unit_price_minor, quantity, refunded_quantity,
                tax_category, tax_rate_name, tax_rate_bp, net_minor, tax_minor,
                service_charge_minor, service_tax_minor, discount, discount_minor
         from order_lines where order_id = $1 order by line_no",
        id.0
    )
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|r| {
        Ok(Line {
            line_no: r.line_no,
            product_id: ProductId(r.product_id),
            name: r.name,
            sku: r.sku,
            unit_price_minor: r.unit_price_minor,
            quantity: r.quantity,
            discount: r.discount.map(from_json).transpose()?,
            discount_minor: r.discount_minor,
            tax_category: TaxCategory::parse(&r.tax_category).unwrap_or_default(),
            tax_rate: r
                .tax_rate_name
                .zip(r.tax_rate_bp)
                .map(|(name, rate_bp)| TaxRate { name, rate_bp }),
            net_minor: r.net_minor,
            tax_minor: r.tax_minor,
            service_charge_minor: r.service_charge_minor,
            service_tax_minor: r.service_tax_minor,
            line_total_minor: r.net_minor
                + r.tax_minor
                + r.service_charge_minor
                + r.service_tax_minor,
            refunded_quantity: r.refunded_quantity,
        })
    })
    .collect::<Result<_>>()?;
    let payments = sqlx::query!(
        "select id, method, amount_minor, tendered_minor, change_minor, cashier_id, created_at
         from payments where order_id = $1 order by id",
        id.0
    )
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|r| Payment {
        id: r.id,
        method: Method::parse(&r.method),
        amount_minor: r.amount_minor,
        tendered_minor: r.tendered_minor,
        change_minor: r.change_minor,
        cashier_id: UserId(r.cashier_id),
        created_at: r.created_at,
    })
    .collect();
    let refund_lines = sqlx::query!(
        "select refund_id, line_no, quantity, amount_minor, tax_minor from refund_lines
         where refund_id in (select id from refunds where order_id = $1) order by refund_id, line_no",
        id.0
    )
    .fetch_all(&mut **tx)
    .await?;
    let refunds = sqlx::query!(
        "select id, amount_minor, reason, restocked, actor_id, created_at
         from refunds where order_id = $1 order by id",
        id.0
    )
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|r| Refund {
        id: r.id,
        amount_minor: r.amount_minor,
        reason: r.reason,
        restocked: r.restocked,
        refunded_by: UserId(r.actor_id),
        lines: refund_lines
            .iter()
            .filter(|l| l.refund_id == r.id)
            .map(|l| RefundedLine {
                line_no: l.line_no,
                quantity: l.quantity,
                amount_minor: l.amount_minor,
                tax_minor: l.tax_minor,
            })
            .collect(),
        created_at: r.created_at,
    })
    .collect();
    Ok(Order {
        summary,
        pricing,
        discount,
        tax_lines,
        lines,
        payments,
        refunds,
    })
}

/// Filters of the order list.
#[derive(Debug, Default)]
pub struct Filter {
    pub status: Option<Status>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub cashier: Option<UserId>,
    pub customer: Option<CustomerId>,
    /// Newest first: the page after this id.
    pub before: Option<OrderId>,
    pub limit: i64,
}

pub async fn list(tx: &mut TenantTx, filter: &Filter) -> Result<Vec<Summary>> {
    sqlx::query_as!(
        SummaryRow,
        "select id, status, cashier_id, customer_id, currency, total_minor, discount_minor,
                service_charge_minor, tax_minor, paid_minor, refunded_minor, receipt_no,
                created_at, paid_at, cancelled_at
         from orders
         where ($1::text is null or status = $1)
           and ($2::timestamptz is null or created_at >= $2)
           and ($3::timestamptz is null or created_at < $3)
           and ($4::uuid is null or cashier_id = $4)
           and ($5::uuid is null or customer_id = $5)
           and ($6::uuid is null or id < $6)
         order by id desc limit $7",
        filter.status.map(Status::as_str),
        filter.from,
        filter.to,
        filter.cashier.map(|c| c.0),
        filter.customer.map(|c| c.0),
        filter.before.map(|b| b.0),
        filter.limit,
    )
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(Summary::try_from)
    .collect()
}

/// Records a payment and moves the order to `paid` when it is settled (`order.payment_recorded`
/// or `order.paid`; the `order.paid` event once settled).
#[expect(
    clippy::too_many_arguments,
    reason = "a payment and everything it touches"
)]
pub async fn record_payment(
    tx: &mut TenantTx,
    actor: Actor,
    order: &Summary,
    cashier: UserId,
    method: Method,
    applied: Applied,
    shift: Option<crate::shifts::ShiftId>,
    now: DateTime<Utc>,
) -> Result<uuid::Uuid> {
    let tenant = tx.tenant();
    let id = uuid::Uuid::now_v7();
    sqlx::query!(
        "insert into payments (tenant_id, id, order_id, method, amount_minor, tendered_minor, change_minor,
                               cashier_id, created_at, shift_id)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        tenant.0,
        id,
        order.id.0,
        method.as_str(),
        applied.amount_minor,
        applied.tendered_minor,
        applied.change_minor,
        cashier.0,
        now,
        shift.map(|s| s.0),
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!(
        "update orders set paid_minor = $2, status = case when $3 then 'paid' else status end,
                paid_at = case when $3 then $4 else paid_at end, updated_at = $4
         where id = $1",
        order.id.0,
        applied.paid_after,
        applied.settled,
        now,
    )
    .execute(&mut **tx)
    .await?;
    let receipt = if applied.settled {
        Some(crate::receipts::assign(tx, order.id, now).await?)
    } else {
        None
    };
    let (action, fields): (_, &[&str]) = if applied.settled {
        (
            "order.paid",
            &[
                "paid_minor",
                "status",
                "paid_at",
                "receipt_no",
                "receipt_day",
            ],
        )
    } else {
        ("order.payment_recorded", &["paid_minor"])
    };
    let record = AuditRecord::new(actor, action, Resource::new("order", order.id))
        .fields(fields)
        .details(serde_json::json!({
            "payment_id": id,
            "method": method,
            "amount_minor": applied.amount_minor,
            "change_minor": applied.change_minor,
            "receipt_no": receipt,
        }));
    events::emit_audit(tx, &record).await?;
    if applied.settled {
        emit_paid(
            tx,
            actor,
            order.id,
            order.customer_id,
            &order.currency,
            order.total_minor,
        )
        .await?;
    }
    Ok(id)
}

/// The lines a refund can draw on, with their products, locked.
pub async fn refundable(tx: &mut TenantTx, order: OrderId) -> Result<Vec<(Refundable, ProductId)>> {
    Ok(sqlx::query!(
        "select line_no, product_id, quantity, refunded_quantity,
                net_minor + tax_minor + service_charge_minor + service_tax_minor as \"total_minor!\",
                tax_minor + service_tax_minor as \"tax_minor!\"
         from order_lines where order_id = $1 order by line_no for update",
        order.0
    )
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|r| {
        (
            Refundable {
                line_no: r.line_no,
                total_minor: r.total_minor,
                tax_minor: r.tax_minor,
                quantity: r.quantity,
                refunded_quantity: r.refunded_quantity,
            },
            ProductId(r.product_id),
        )
    })
    .collect())
}

/// Writes a refund of `plan` and the order's new state (`order.refunded`, audit and event).
#[expect(
    clippy::too_many_arguments,
    reason = "a refund and everything it changes"
)]
pub async fn record_refund(
    tx: &mut TenantTx,
    actor: Actor,
    by: UserId,
    order: &Summary,
    reason: &str,
    restocked: bool,
    plan: &[RefundLine],
    status: Status,
    given: (Method, Option<crate::shifts::ShiftId>),
    now: DateTime<Utc>,
) -> Result<uuid::Uuid> {
    let tenant = tx.tenant();
    let id = uuid::Uuid::now_v7();
    let amount: i64 = plan.iter().map(|l| l.amount_minor).sum();
    sqlx::query!(
        "insert into refunds (tenant_id, id, order_id, amount_minor, reason, restocked, actor_id, created_at,
                              method, shift_id)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        tenant.0,
        id,
        order.id.0,
        amount,
        reason,
        restocked,
        by.0,
        now,
        given.0.as_str(),
        given.1.map(|s| s.0),
    )
    .execute(&mut **tx)
    .await?;
    let line_nos: Vec<i32> = plan.iter().map(|l| l.line_no).collect();
    let quantities: Vec<i64> = plan.iter().map(|l| l.quantity).collect();
    let amounts: Vec<i64> = plan.iter().map(|l| l.amount_minor).collect();
    let taxes: Vec<i64> = plan.iter().map(|l| l.tax_minor).collect();
    sqlx::query!(
        "insert into refund_lines (tenant_id, refund_id, line_no, quantity, amount_minor, tax_minor)
         select $1, $2, * from unnest($3::int4[], $4::int8[], $5::int8[], $6::int8[])",
        tenant.0,
        id,
        &line_nos,
        &quantities,
        &amounts,
        &taxes,
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!(
        "update order_lines l set refunded_quantity = l.refunded_quantity + p.quantity
         from unnest($2::int4[], $3::int8[]) as p(line_no, quantity)
         where l.order_id = $1 and l.line_no = p.line_no",
        order.id.0,
        &line_nos,
        &quantities,
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!(
        "update orders set refunded_minor = refunded_minor + $2, status = $3, updated_at = $4
         where id = $1",
        order.id.0,
        amount,
        status.as_str(),
        now,
    )
    .execute(&mut **tx)
    .await?;
    let record = AuditRecord::new(actor, "order.refunded", Resource::new("order", order.id))
        .fields(&["refunded_minor", "status", "lines.refunded_quantity"])
        .details(serde_json::json!({
            "refund_id": id,
            "amount_minor": amount,
            "reason": reason,
            "restocked": restocked,
            "status": status,
        }));
    events::emit_audit(tx, &record).await?;
    let event = DomainEvent {
        actor,
        event_type: "order.refunded",
        payload: serde_json::json!({
            "order_id": order.id,
            "refund_id": id,
            "customer_id": order.customer_id,
            "currency": order.currency,
            "amount_minor": amount,
            "full": status == Status::Refunded,
        }),
    };
    events::emit_event(tx, &event).await?;
    Ok(id)
}

/// Cancels an open order (`order.cancelled`, audit and event). The caller restocks.
pub async fn cancel(
    tx: &mut TenantTx,
    actor: Actor,
    order: &Summary,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query!(
        "update orders set status = 'cancelled', cancelled_at = $2, updated_at = $2 where id = $1",
        order.id.0,
        now,
    )
    .execute(&mut **tx)
    .await?;
    let record = AuditRecord::new(actor, "order.cancelled", Resource::new("order", order.id))
        .fields(&["status", "cancelled_at"]);
    events::emit_audit(tx, &record).await?;
    let event = DomainEvent {
        actor,
        event_type: "order.cancelled",
        payload: serde_json::json!({
            "order_id": order.id,
            "customer_id": order.customer_id,
        }),
    };
    events::emit_event(tx, &event).await?;
    Ok(())
}

/// Every line's product and quantity (what a cancellation puts back).
pub async fn quantities(tx: &mut TenantTx, order: OrderId) -> Result<Vec<(ProductId, i64)>> {
    Ok(sqlx::query!(
        "select product_id, quantity from order_lines where order_id = $1 order by line_no",
        order.0
    )
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|r| (ProductId(r.product_id), r.quantity))
    .collect())
}
