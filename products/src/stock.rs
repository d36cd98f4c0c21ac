//! The stock ledger: every change of a product's on-hand quantity is a `stock_movements` row
//! written in the same statement batch as the change, with its audit record. This is the public
//! API `orders` sells and restocks through, inside the order's own transaction.
//!
//! Stock cannot go below zero unless the tenant allows backorders: the update itself checks
//! (`set on_hand = on_hand + $delta where on_hand + $delta >= 0`), and a sale locks its products
//! in id order first, so concurrent orders for the last unit serialize and exactly one gets it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use platform::{
    Error, Result,
    db::TenantTx,
    events::{self, Actor, AuditRecord, Resource},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::catalog::{ProductId, Status, TaxCategory};

/// Why stock moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Opening stock of a new product.
    Initial,
    Sale,
    Refund,
    /// An open order was cancelled: what it took goes back.
    Cancellation,
    /// A correction by a number of units (breakage, a delivery).
    Adjustment,
    /// A stock count: on hand is set to what was counted.
    Count,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::Sale => "sale",
            Self::Refund => "refund",
            Self::Cancellation => "cancellation",
            Self::Adjustment => "adjustment",
            Self::Count => "count",
        }
    }

    fn parse(value: &str) -> Self {
        match value {
            "initial" => Self::Initial,
            "sale" => Self::Sale,
            "refund" => Self::Refund,
            "cancellation" => Self::Cancellation,
            "count" => Self::Count,
            _ => Self::Adjustment,
        }
    }
}

/// One row of the ledger.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Movement {
    pub id: uuid::Uuid,
    pub product_id: ProductId,
    pub delta: i64,
    pub on_hand_after: i64,
    pub reason: Reason,
    /// The order behind a sale, refund or cancellation.
    pub reference: Option<uuid::Uuid>,
    pub created_at: DateTime<Utc>,
}

/// Writes one movement if the result may stand: `None` when it would take on-hand below zero
/// and `allow_negative` is off. Adding stock always stands, even to a negative on-hand left by
/// backorders. Emits `stock.moved`.
async fn apply(
    tx: &mut TenantTx,
    actor: Actor,
    product: ProductId,
    delta: i64,
    reason: Reason,
    reference: Option<uuid::Uuid>,
    allow_negative: bool,
) -> Result<Option<Movement>> {
    let on_hand_after = sqlx::query_scalar!(
        "update products set on_hand = on_hand + $2, updated_at = now()
         where id = $1 and ($2::int8 >= 0 or on_hand + $2 >= 0 or $3)
         returning on_hand",
        product.0,
        delta,
        allow_negative,
    )
    .fetch_optional(&mut **tx)
    .await?;
    let Some(on_hand_after) = on_hand_after else {
        return Ok(None);
    };
    let id = uuid::Uuid::now_v7();
    let tenant = tx.tenant();
    let actor_id = match actor {
        Actor::User { id } => Some(id.0),
        _ => None,
    };
    let created_at = sqlx::query_scalar!(
        "insert into stock_movements (tenant_id, id, product_id, delta, on_hand_after, reason, reference,
                                      actor_id, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, now()) returning created_at",
        tenant.0,
        id,
        product.0,
        delta,
        on_hand_after,
        reason.as_str(),
        reference,
        actor_id,
    )
    .fetch_one(&mut **tx)
    .await?;
    let record = AuditRecord::new(actor, "stock.moved", Resource::new("product", product))
        .fields(&["on_hand"])
        .details(serde_json::json!({
            "movement_id": id,
            "delta": delta,
            "on_hand_after": on_hand_after,
            "reason": reason,
            "reference": reference,
        }));
    events::emit_audit(tx, &record).await?;
    Ok(Some(Movement {
        id,
        product_id: product,
        delta,
        on_hand_after,
        reason,
        reference,
        created_at,
    }))
}

fn insufficient(on_hand: i64, wanted: i64) -> Error {
    Error::conflict(
        "insufficient_stock",
        format!("Only {on_hand} on hand; {wanted} needed."),
    )
}

/// Books a new product's opening stock (`initial`).
pub async fn open(
    tx: &mut TenantTx,
    actor: Actor,
    product: ProductId,
    quantity: i64,
) -> Result<Movement> {
    apply(tx, actor, product, quantity, Reason::Initial, None, false)
        .await?
        .ok_or_else(|| Error::invalid("stock", "must not be negative"))
}

/// A manual change: by a number of units, or to a counted quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjustment {
    By(i64),
    CountedAt(i64),
}

/// Applies an adjustment to a product of this tenant (404 otherwise). Taking stock below zero
/// is a 409 `insufficient_stock` unless backorders are allowed; a count is never negative.
#[tracing::instrument(skip_all, fields(product.id = %product))]
pub async fn adjust(
    tx: &mut TenantTx,
    actor: Actor,
    product: ProductId,
    adjustment: Adjustment,
) -> Result<Movement> {
    let on_hand = sqlx::query_scalar!(
        "select on_hand from products where id = $1 for update",
        product.0
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(Error::NotFound)?;
    let (delta, reason, allow_negative) = match adjustment {
        Adjustment::By(delta) => (
            delta,
            Reason::Adjustment,
            settings(tx).await?.allow_backorders,
        ),
        Adjustment::CountedAt(counted) => (counted - on_hand, Reason::Count, false),
    };
    apply(tx, actor, product, delta, reason, None, allow_negative)
        .await?
        .ok_or_else(|| insufficient(on_hand, -delta))
}

/// A quantity of one product, as an order wants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    pub product: ProductId,
    pub quantity: i64,
}

/// What a sale took: the product as it was at that moment (the order keeps this copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sold {
    pub product: ProductId,
    pub name: String,
    pub sku: String,
    pub unit_price_minor: i64,
    pub currency: String,
    pub tax_category: TaxCategory,
    pub category: Option<crate::catalog::CategoryId>,
}

/// Why a sale could not be made; indexes point into the `wants` given.
#[derive(Debug)]
pub enum SaleError {
    /// No such product in this tenant.
    Unknown(usize),
    Archived(usize),
    Insufficient {
        index: usize,
        on_hand: i64,
    },
    Failed(Error),
}

impl From<Error> for SaleError {
    fn from(err: Error) -> Self {
        Self::Failed(err)
    }
}

impl From<sqlx::Error> for SaleError {
    fn from(err: sqlx::Error) -> Self {
        Self::Failed(err.into())
    }
}

/// Takes `wants` out of stock for the order `reference` (one `sale` movement per product) and
/// returns each want's product as sold, in the order given. Nothing is taken unless everything
/// can be; the caller's transaction rolls back on error.
#[tracing::instrument(skip_all, fields(lines = wants.len()))]
pub async fn sell(
    tx: &mut TenantTx,
    actor: Actor,
    reference: uuid::Uuid,
    wants: &[Want],
) -> Result<Vec<Sold>, SaleError> {
    // One movement per product, however many lines name it; first line index for errors.
    let mut totals: BTreeMap<ProductId, (usize, i64)> = BTreeMap::new();
    for (index, want) in wants.iter().enumerate() {
        totals.entry(want.product).or_insert((index, 0)).1 += want.quantity;
    }
    let ids: Vec<uuid::Uuid> = totals.keys().map(|p| p.0).collect();
    // Locked in id order: two orders for the same products cannot deadlock.
    let rows = sqlx::query!(
        "select id, name, sku, price_minor, currency, status, on_hand, tax_category, category_id
         from products
         where id = any($1) order by id for update",
        &ids
    )
    .fetch_all(&mut **tx)
    .await?;
    let mut found = BTreeMap::new();
    for row in rows {
        found.insert(ProductId(row.id), row);
    }
    for (product, (index, _)) in &totals {
        match found.get(product) {
            None => return Err(SaleError::Unknown(*index)),
            Some(row) if Status::parse(&row.status) == Status::Archived => {
                return Err(SaleError::Archived(*index));
            }
            Some(_) => {}
        }
    }
    let allow_negative = settings(tx).await?.allow_backorders;
    for (product, (index, quantity)) in &totals {
        let moved = apply(
            tx,
            actor,
            *product,
            -quantity,
            Reason::Sale,
            Some(reference),
            allow_negative,
        )
        .await?;
        if moved.is_none() {
            let on_hand = found.get(product).map_or(0, |r| r.on_hand);
            return Err(SaleError::Insufficient {
                index: *index,
                on_hand,
            });
        }
    }
    Ok(wants
        .iter()
        .filter_map(|want| found.get(&want.product))
        .map(|row| Sold {
            product: ProductId(row.id),
            name: row.name.clone(),
            sku: row.sku.clone(),
            unit_price_minor: row.price_minor,
            currency: row.currency.clone(),
            tax_category: TaxCategory::parse(&row.tax_category).unwrap_or_default(),
            category: row.category_id.map(crate::catalog::CategoryId),
        })
        .collect())
}

/// Puts quantities back for the order `reference` (`refund` or `cancellation`). Archived
/// products take their stock back too.
pub async fn restock(
    tx: &mut TenantTx,
    actor: Actor,
    reason: Reason,
    reference: uuid::Uuid,
    wants: &[Want],
) -> Result<()> {
    let mut totals: BTreeMap<ProductId, i64> = BTreeMap::new();
    for want in wants {
        *totals.entry(want.product).or_default() += want.quantity;
    }
    for (product, quantity) in totals {
        // Adding stock only fails if the product is gone, which a product never is (archived,
        // not deleted): a missing one is a bug, not a client error.
        apply(tx, actor, product, quantity, reason, Some(reference), true)
            .await?
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("restock of a missing product")))?;
    }
    Ok(())
}

/// A page of a product's ledger, oldest first.
pub async fn movements(
    tx: &mut TenantTx,
    product: ProductId,
    after: Option<uuid::Uuid>,
    limit: i64,
) -> Result<Vec<Movement>> {
    // A product of another tenant answers 404, not an empty ledger.
    crate::catalog::get(tx, product).await?;
    let rows = sqlx::query!(
        "select id, product_id, delta, on_hand_after, reason, reference, created_at
         from stock_movements where product_id = $1 and ($2::uuid is null or id > $2)
         order by id limit $3",
        product.0,
        after,
        limit
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Movement {
            id: r.id,
            product_id: ProductId(r.product_id),
            delta: r.delta,
            on_hand_after: r.on_hand_after,
            reason: Reason::parse(&r.reason),
            reference: r.reference,
            created_at: r.created_at,
        })
        .collect())
}

/// The tenant's catalog settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CatalogSettings)]
pub struct Settings {
    /// Sell beyond what is on hand (stock goes negative). Off by default.
    pub allow_backorders: bool,
}

pub async fn settings(tx: &mut TenantTx) -> Result<Settings> {
    let allow = sqlx::query_scalar!("select allow_backorders from catalog_settings")
        .fetch_optional(&mut **tx)
        .await?;
    Ok(Settings {
        allow_backorders: allow.unwrap_or(false),
    })
}

/// Stores the settings (`catalog.settings_updated`).
pub async fn set_settings(tx: &mut TenantTx, actor: Actor, settings: Settings) -> Result<()> {
    let tenant = tx.tenant();
    sqlx::query!(
        "insert into catalog_settings (tenant_id, allow_backorders, updated_at) values ($1, $2, now())
         on conflict (tenant_id) do update set allow_backorders = excluded.allow_backorders,
                                               updated_at = excluded.updated_at",
        tenant.0,
        settings.allow_backorders
    )
    .execute(&mut **tx)
    .await?;
    let record = AuditRecord::new(
        actor,
        "catalog.settings_updated",
        Resource::new("catalog_settings", tenant),
    )
    .fields(&["allow_backorders"])
    .details(serde_json::json!({ "allow_backorders": settings.allow_backorders }));
    events::emit_audit(tx, &record).await?;
    Ok(())
}
