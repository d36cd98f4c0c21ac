//! Products and categories: the repo functions behind the catalog routes. Stock is not changed
//! here: on-hand quantities move only through [`crate::stock`], together with a ledger row.

use chrono::{DateTime, Utc};
use platform::{
    Error, Result,
    db::TenantTx,
    error::OnConstraint,
    events::{self, Actor, AuditRecord, Resource},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

platform::id_type!(
    /// A product of one tenant's catalog.
    ProductId
);
platform::id_type!(
    /// A category of one tenant's catalog.
    CategoryId
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ProductStatus)]
pub enum Status {
    /// On sale.
    Active,
    /// Kept for history; cannot be sold.
    Archived,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Archived => "archived",
        }
    }

    pub(crate) fn parse(value: &str) -> Self {
        if value == "active" {
            Self::Active
        } else {
            Self::Archived
        }
    }
}

/// Whether a product is taxed at the shop's default rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum TaxCategory {
    #[default]
    Standard,
    Exempt,
}

impl TaxCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Exempt => "exempt",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "standard" => Some(Self::Standard),
            "exempt" => Some(Self::Exempt),
            _ => None,
        }
    }
}

/// A product as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Product {
    pub id: ProductId,
    pub name: String,
    pub sku: String,
    pub category_id: Option<CategoryId>,
    /// Price in minor units of `currency` (IDR has none: 18000 is Rp18.000).
    pub price_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    pub on_hand: i64,
    pub status: Status,
    /// `standard`: taxed at the shop's default rate; `exempt`: never taxed.
    pub tax_category: TaxCategory,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) struct ProductRow {
    pub id: uuid::Uuid,
    pub name: String,
    pub sku: String,
    pub category_id: Option<uuid::Uuid>,
    pub price_minor: i64,
    pub currency: String,
    pub on_hand: i64,
    pub status: String,
    pub tax_category: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ProductRow> for Product {
    fn from(r: ProductRow) -> Self {
        Self {
            id: ProductId(r.id),
            name: r.name,
            sku: r.sku,
            category_id: r.category_id.map(CategoryId),
            price_minor: r.price_minor,
            currency: r.currency,
            on_hand: r.on_hand,
            status: Status::parse(&r.status),
            tax_category: TaxCategory::parse(&r.tax_category).unwrap_or_default(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The named constraints a product write can hit, as client errors.
fn product_constraint(err: sqlx::Error) -> Error {
    let constraint = match &err {
        sqlx::Error::Database(db) => db.constraint(),
        _ => None,
    };
    match constraint {
        Some("products_sku_key") => Error::conflict("sku_taken", "A product with this SKU exists."),
        Some("products_category_fkey") => Error::invalid("category_id", "no such category"),
        Some("products_name_check") => Error::invalid("name", "must be 1 to 200 characters"),
        Some("products_sku_check") => Error::invalid("sku", "must be 1 to 64 characters"),
        _ => Error::from(err),
    }
}

/// What a new product is made of; its opening stock is booked by the caller through
/// [`crate::stock`].
#[derive(Debug)]
pub struct NewProduct<'a> {
    pub name: &'a str,
    pub sku: &'a str,
    pub category_id: Option<CategoryId>,
    pub price_minor: i64,
    pub currency: &'a str,
    pub tax_category: TaxCategory,
}

/// Creates an active product with nothing on hand (`product.created`).
#[tracing::instrument(skip_all)]
pub async fn create(tx: &mut TenantTx, actor: Actor, new: &NewProduct<'_>) -> Result<Product> {
    let id = ProductId::new();
    let tenant = tx.tenant();
    let row = sqlx::query_as!(
        ProductRow,
        "insert into products (tenant_id, id, name, sku, category_id, price_minor, currency, on_hand,
                               status, tax_category, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, 0, 'active', $8, now(), now())
         returning id, name, sku, category_id, price_minor, currency, on_hand, status, tax_category,
                   created_at, updated_at",
        tenant.0,
        id.0,
        new.name,
        new.sku,
        new.category_id.map(|c| c.0),
        new.price_minor,
        new.currency,
        new.tax_category.as_str(),
    )
    .fetch_one(&mut **tx)
    .await
    .map_err(product_constraint)?;
    let record =
        AuditRecord::new(actor, "product.created", Resource::new("product", id)).fields(&[
            "name",
            "sku",
            "category_id",
            "price_minor",
            "currency",
            "status",
            "tax_category",
        ]);
    events::emit_audit(tx, &record).await?;
    Ok(row.into())
}

/// One product of the transaction's tenant.
pub async fn get(tx: &mut TenantTx, id: ProductId) -> Result<Product> {
    sqlx::query_as!(
        ProductRow,
        "select id, name, sku, category_id, price_minor, currency, on_hand, status, tax_category,
                created_at, updated_at
         from products where id = $1",
        id.0
    )
    .fetch_optional(&mut **tx)
    .await?
    .map(Product::from)
    .ok_or(Error::NotFound)
}

/// Filters of the product search.
#[derive(Debug, Default)]
pub struct Search<'a> {
    /// Part of the name, or the start of the SKU; case does not matter.
    pub text: Option<&'a str>,
    pub category: Option<CategoryId>,
    /// `None`: every status.
    pub status: Option<Status>,
    pub after: Option<ProductId>,
    pub limit: i64,
}

/// `%` and `_` in what a user typed are literal characters, not wildcards.
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A page of products in id (creation) order.
pub async fn search(tx: &mut TenantTx, search: &Search<'_>) -> Result<Vec<Product>> {
    let text = search.text.map(like_escape);
    let rows = sqlx::query_as!(
        ProductRow,
        "select id, name, sku, category_id, price_minor, currency, on_hand, status, tax_category,
                created_at, updated_at
         from products
         where ($1::text is null or lower(name) like '%' || $1 || '%' or lower(sku) like $1 || '%')
           and ($2::uuid is null or category_id = $2)
           and ($3::text is null or status = $3)
           and ($4::uuid is null or id > $4)
         order by id limit $5",
        text,
        search.category.map(|c| c.0),
        search.status.map(Status::as_str),
        search.after.map(|a| a.0),
        search.limit,
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(Product::from).collect())
}

/// A change to a product; `None` leaves a field as it is. `category_id: Some(None)` clears it.
#[derive(Debug, Default)]
pub struct Change<'a> {
    pub name: Option<&'a str>,
    pub sku: Option<&'a str>,
    pub category_id: Option<Option<CategoryId>>,
    pub price_minor: Option<i64>,
    pub currency: Option<&'a str>,
    pub status: Option<Status>,
    pub tax_category: Option<TaxCategory>,
}

impl Change<'_> {
    fn fields(&self) -> Vec<&'static str> {
        let mut fields = Vec::new();
        let named = [
            ("name", self.name.is_some()),
            ("sku", self.sku.is_some()),
            ("category_id", self.category_id.is_some()),
            ("price_minor", self.price_minor.is_some()),
            ("currency", self.currency.is_some()),
            ("status", self.status.is_some()),
            ("tax_category", self.tax_category.is_some()),
        ];
        for (field, present) in named {
            if present {
                fields.push(field);
            }
        }
        fields
    }
}

/// Applies `change` (`product.updated` naming the fields; `product.archived` when that is all
/// it does). 404 for a product of another tenant.
#[tracing::instrument(skip_all, fields(product.id = %id))]
pub async fn update(
    tx: &mut TenantTx,
    actor: Actor,
    id: ProductId,
    change: &Change<'_>,
) -> Result<Product> {
    let fields = change.fields();
    if fields.is_empty() {
        return get(tx, id).await;
    }
    let row = sqlx::query_as!(
        ProductRow,
        "update products set
            name = coalesce($2, name),
            sku = coalesce($3, sku),
            category_id = case when $4 then $5 else category_id end,
            price_minor = coalesce($6, price_minor),
            currency = coalesce($7, currency),
            status = coalesce($8, status),
            tax_category = coalesce($9, tax_category),
            updated_at = now()
         where id = $1
         returning id, name, sku, category_id, price_minor, currency, on_hand, status, tax_category,
                   created_at, updated_at",
        id.0,
        change.name,
        change.sku,
        change.category_id.is_some(),
        change.category_id.flatten().map(|c| c.0),
        change.price_minor,
        change.currency,
        change.status.map(Status::as_str),
        change.tax_category.map(TaxCategory::as_str),
    )
    .fetch_optional(&mut **tx)
    .await
    .map_err(product_constraint)?
    .ok_or(Error::NotFound)?;
    let action = if fields == ["status"] && change.status == Some(Status::Archived) {
        "product.archived"
    } else {
        "product.updated"
    };
    let record = AuditRecord::new(actor, action, Resource::new("product", id)).fields(&fields);
    events::emit_audit(tx, &record).await?;
    Ok(row.into())
}

/// A category as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Category {
    pub id: CategoryId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

fn name_taken() -> Error {
    Error::conflict("category_name_taken", "A category with this name exists.")
}

/// Creates a category (`category.created`); names are unique per tenant, ignoring case.
pub async fn create_category(tx: &mut TenantTx, actor: Actor, name: &str) -> Result<Category> {
    let id = CategoryId::new();
    let tenant = tx.tenant();
    let created_at = sqlx::query_scalar!(
        "insert into categories (tenant_id, id, name, created_at, updated_at)
         values ($1, $2, $3, now(), now()) returning created_at",
        tenant.0,
        id.0,
        name
    )
    .fetch_one(&mut **tx)
    .await
    .on_constraint("categories_name_key", name_taken)?;
    let record = AuditRecord::new(actor, "category.created", Resource::new("category", id))
        .fields(&["name"]);
    events::emit_audit(tx, &record).await?;
    Ok(Category {
        id,
        name: name.to_owned(),
        created_at,
    })
}

/// Every category, by name (a catalog has tens, not thousands).
pub async fn categories(tx: &mut TenantTx) -> Result<Vec<Category>> {
    let rows = sqlx::query!("select id, name, created_at from categories order by lower(name), id")
        .fetch_all(&mut **tx)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| Category {
            id: CategoryId(r.id),
            name: r.name,
            created_at: r.created_at,
        })
        .collect())
}

/// Renames a category (`category.updated`).
pub async fn rename_category(
    tx: &mut TenantTx,
    actor: Actor,
    id: CategoryId,
    name: &str,
) -> Result<Category> {
    let created_at = sqlx::query_scalar!(
        "update categories set name = $2, updated_at = now() where id = $1 returning created_at",
        id.0,
        name
    )
    .fetch_optional(&mut **tx)
    .await
    .on_constraint("categories_name_key", name_taken)?
    .ok_or(Error::NotFound)?;
    let record = AuditRecord::new(actor, "category.updated", Resource::new("category", id))
        .fields(&["name"]);
    events::emit_audit(tx, &record).await?;
    Ok(Category {
        id,
        name: name.to_owned(),
        created_at,
    })
}

/// Deletes a category no product uses (`category.deleted`); one in use is a 409.
pub async fn delete_category(tx: &mut TenantTx, actor: Actor, id: CategoryId) -> Result<()> {
    let deleted = sqlx::query!("delete from categories where id = $1", id.0)
        .execute(&mut **tx)
        .await
        .on_constraint("products_category_fkey", || {
            Error::conflict(
                "category_in_use",
                "Products are in this category: move or archive them first.",
            )
        })?
        .rows_affected();
    if deleted == 0 {
        return Err(Error::NotFound);
    }
    let record = AuditRecord::new(actor, "category.deleted", Resource::new("category", id));
    events::emit_audit(tx, &record).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_wildcards_are_literal() {
        assert_eq!(like_escape("Kopi 100%_A"), "kopi 100\\%\\_a");
        assert_eq!(like_escape("a\\b"), "a\\\\b");
    }

    #[test]
    fn a_change_names_exactly_its_fields() {
        let change = Change {
            price_minor: Some(1),
            category_id: Some(None),
            ..Change::default()
        };
        assert_eq!(change.fields(), ["category_id", "price_minor"]);
        assert!(Change::default().fields().is_empty());
    }
}
