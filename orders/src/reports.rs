//! Sales reports (#21): a date range in the shop's time zone, totalled by day, payment method,
//! cashier, product and category, as JSON or CSV. Everything comes from what orders stored
//! (their lines as sold, their tax and discounts, the category a product was in), never from
//! today's catalog or settings. No personal data: staff and products appear by id (products
//! also by the name they were sold under), customers not at all.
//!
//! Sales count on the day the order was paid (its receipt day), refunds on the day they were
//! given, payments on the day they were taken.

use chrono::NaiveDate;
use platform::{Result, db::TenantTx};
use serde::Serialize;
use utoipa::ToSchema;

/// The money of a set of orders.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = SalesTotals)]
pub struct Totals {
    /// Paid orders.
    pub orders: i64,
    /// Catalog price × quantity of everything sold, before discounts.
    pub gross_minor: i64,
    pub discount_minor: i64,
    pub service_charge_minor: i64,
    /// Tax collected (goods and service charge).
    pub tax_minor: i64,
    /// What customers paid for the orders: gross − discounts + service charge + tax added.
    pub sales_minor: i64,
    /// Given back, on the day it was given.
    pub refunds_minor: i64,
    /// Of the refunds, the tax given back.
    pub refunded_tax_minor: i64,
    /// sales − refunds.
    pub net_minor: i64,
}

impl Totals {
    fn settle(mut self) -> Self {
        self.net_minor = self.sales_minor - self.refunds_minor;
        self
    }

    fn add(&mut self, other: &Self) {
        self.orders += other.orders;
        self.gross_minor += other.gross_minor;
        self.discount_minor += other.discount_minor;
        self.service_charge_minor += other.service_charge_minor;
        self.tax_minor += other.tax_minor;
        self.sales_minor += other.sales_minor;
        self.refunds_minor += other.refunds_minor;
        self.refunded_tax_minor += other.refunded_tax_minor;
        self.net_minor += other.net_minor;
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = SalesDay)]
pub struct Day {
    pub day: NaiveDate,
    #[serde(flatten)]
    pub totals: Totals,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = SalesByMethod)]
pub struct ByMethod {
    pub method: String,
    pub payments: i64,
    pub amount_minor: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = SalesByCashier)]
pub struct ByCashier {
    pub cashier_id: uuid::Uuid,
    pub orders: i64,
    pub sales_minor: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = SalesByProduct)]
pub struct ByProduct {
    pub product_id: uuid::Uuid,
    /// The name it was sold under on the range's last day, else one it was sold under.
    pub name: String,
    pub quantity: i64,
    /// After discounts, before tax and service charge.
    pub net_minor: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = SalesByCategory)]
pub struct ByCategory {
    /// `null`: products in no category.
    pub category_id: Option<uuid::Uuid>,
    pub quantity: i64,
    pub net_minor: i64,
}

/// A sales report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SalesReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub time_zone: String,
    pub currency: String,
    pub totals: Totals,
    pub days: Vec<Day>,
    pub payment_methods: Vec<ByMethod>,
    pub cashiers: Vec<ByCashier>,
    pub products: Vec<ByProduct>,
    pub categories: Vec<ByCategory>,
}

/// The report of `from` to `to` (both included, the shop's local dates; `to` before `from`
/// is an empty range). Its cost follows the orders in the range, not its length: every query
/// walks an index on the date.
pub async fn sales(tx: &mut TenantTx, from: NaiveDate, to: NaiveDate) -> Result<SalesReport> {
    let shop = tenants::current(tx).await?;
    let tz = shop.time_zone.clone();
    // One pass over the range's orders, grouped two ways, and one over their lines, grouped
    // three ways (grouping sets): the range is read twice in all, whatever its length.
    let by_orders = sqlx::query!(
        r#"select o.receipt_day as "day?", o.cashier_id as "cashier?",
                  grouping(o.receipt_day) = 0 as "by_day!",
                  count(*) as "orders!",
                  sum(o.discount_minor)::int8 as "discount!",
                  sum(o.service_charge_minor)::int8 as "service!",
                  sum(o.tax_minor)::int8 as "tax!", sum(o.total_minor)::int8 as "sales!"
           from orders o
           where o.receipt_day between $1 and $2
           group by grouping sets ((o.receipt_day), (o.cashier_id))"#,
        from,
        to
    )
    .fetch_all(&mut **tx)
    .await?;
    let by_lines = sqlx::query!(
        r#"select o.receipt_day as "day?", l.product_id as "product?", l.category_id as category,
                  grouping(o.receipt_day) = 0 as "by_day!",
                  grouping(l.product_id) = 0 as "by_product!",
                  sum(l.unit_price_minor * l.quantity)::int8 as "gross!",
                  sum(l.quantity)::int8 as "quantity!", sum(l.net_minor)::int8 as "net!",
                  max(l.name) filter (where o.receipt_day = $2) as last_day_name,
                  max(l.name) as any_name
           from order_lines l
           join orders o on o.tenant_id = l.tenant_id and o.id = l.order_id
           where o.receipt_day between $1 and $2
           group by grouping sets ((o.receipt_day), (l.product_id), (l.category_id))"#,
        from,
        to
    )
    .fetch_all(&mut **tx)
    .await?;
    let refunded = sqlx::query!(
        r#"select (r.created_at at time zone $3)::date as "day!",
                  sum(r.amount_minor)::int8 as "amount!",
                  sum((select sum(rl.tax_minor) from refund_lines rl
                       where rl.tenant_id = r.tenant_id and rl.refund_id = r.id))::int8 as "tax!"
           from refunds r
           where r.created_at >= ($1::date)::timestamp at time zone $3
             and r.created_at < ($2::date + 1)::timestamp at time zone $3
           group by 1"#,
        from,
        to,
        tz
    )
    .fetch_all(&mut **tx)
    .await?;
    let mut days: Vec<Day> = Vec::new();
    let mut cashiers = Vec::new();
    for row in by_orders {
        match (row.by_day, row.day, row.cashier) {
            (true, Some(day), _) => {
                let i = day_of(day, &mut days);
                let t = &mut days[i].totals;
                t.orders = row.orders;
                t.discount_minor = row.discount;
                t.service_charge_minor = row.service;
                t.tax_minor = row.tax;
                t.sales_minor = row.sales;
            }
            (false, _, Some(cashier)) => cashiers.push(ByCashier {
                cashier_id: cashier,
                orders: row.orders,
                sales_minor: row.sales,
            }),
            _ => {}
        }
    }
    cashiers.sort_by(|a, b| {
        b.sales_minor
            .cmp(&a.sales_minor)
            .then(a.cashier_id.cmp(&b.cashier_id))
    });
    let (mut products, mut categories) = (Vec::new(), Vec::new());
    for row in by_lines {
        if row.by_day {
            if let Some(day) = row.day {
                let i = day_of(day, &mut days);
                days[i].totals.gross_minor = row.gross;
            }
        } else if row.by_product {
            if let Some(product) = row.product {
                products.push(ByProduct {
                    product_id: product,
                    name: row.last_day_name.or(row.any_name).unwrap_or_default(),
                    quantity: row.quantity,
                    net_minor: row.net,
                });
            }
        } else {
            categories.push(ByCategory {
                category_id: row.category,
                quantity: row.quantity,
                net_minor: row.net,
            });
        }
    }
    products.sort_by(|a, b| {
        b.net_minor
            .cmp(&a.net_minor)
            .then(a.product_id.cmp(&b.product_id))
    });
    categories.sort_by(|a, b| {
        b.net_minor
            .cmp(&a.net_minor)
            .then(a.category_id.cmp(&b.category_id))
    });
    for row in refunded {
        let i = day_of(row.day, &mut days);
        days[i].totals.refunds_minor = row.amount;
        days[i].totals.refunded_tax_minor = row.tax;
    }
    days.sort_by_key(|d| d.day);
    let mut totals = Totals::default();
    for day in &mut days {
        day.totals = std::mem::take(&mut day.totals).settle();
        totals.add(&day.totals);
    }
    let payment_methods = sqlx::query!(
        r#"select method as "method!", count(*) as "payments!", sum(amount_minor)::int8 as "amount!"
           from payments
           where created_at >= ($1::date)::timestamp at time zone $3
             and created_at < ($2::date + 1)::timestamp at time zone $3
           group by method order by method"#,
        from,
        to,
        tz
    )
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|r| ByMethod {
        method: r.method,
        payments: r.payments,
        amount_minor: r.amount,
    })
    .collect();
    Ok(SalesReport {
        from,
        to,
        time_zone: tz,
        currency: shop.currency,
        totals: totals.settle(),
        days,
        payment_methods,
        cashiers,
        products,
        categories,
    })
}

/// The entry of `day` in `days`, made if missing.
fn day_of(day: NaiveDate, days: &mut Vec<Day>) -> usize {
    match days.iter().position(|d| d.day == day) {
        Some(i) => i,
        None => {
            days.push(Day {
                day,
                totals: Totals::default(),
            });
            days.len() - 1
        }
    }
}

/// One table of the report as CSV (a header row, then one row per entry; amounts in minor
/// units). `by`: `day`, `payment_method`, `cashier`, `product` or `category`.
pub fn csv(report: &SalesReport, by: &str) -> Option<String> {
    let mut out = String::new();
    let mut row = |cells: &[String]| {
        let quoted: Vec<String> = cells.iter().map(|c| quote(c)).collect();
        out.push_str(&quoted.join(","));
        out.push_str("\r\n");
    };
    let money_header = [
        "orders",
        "gross_minor",
        "discount_minor",
        "service_charge_minor",
        "tax_minor",
        "sales_minor",
        "refunds_minor",
        "refunded_tax_minor",
        "net_minor",
    ];
    let money = |t: &Totals| {
        [
            t.orders,
            t.gross_minor,
            t.discount_minor,
            t.service_charge_minor,
            t.tax_minor,
            t.sales_minor,
            t.refunds_minor,
            t.refunded_tax_minor,
            t.net_minor,
        ]
        .map(|n| n.to_string())
    };
    match by {
        "day" => {
            let mut header = vec!["day".to_owned()];
            header.extend(money_header.iter().map(|h| (*h).to_owned()));
            row(&header);
            for day in &report.days {
                let mut cells = vec![day.day.to_string()];
                cells.extend(money(&day.totals));
                row(&cells);
            }
            let mut cells = vec!["total".to_owned()];
            cells.extend(money(&report.totals));
            row(&cells);
        }
        "payment_method" => {
            row(&["method".into(), "payments".into(), "amount_minor".into()]);
            for m in &report.payment_methods {
                row(&[
                    m.method.clone(),
                    m.payments.to_string(),
                    m.amount_minor.to_string(),
                ]);
            }
        }
        "cashier" => {
            row(&["cashier_id".into(), "orders".into(), "sales_minor".into()]);
            for c in &report.cashiers {
                row(&[
                    c.cashier_id.to_string(),
                    c.orders.to_string(),
                    c.sales_minor.to_string(),
                ]);
            }
        }
        "product" => {
            row(&[
                "product_id".into(),
                "name".into(),
                "quantity".into(),
                "net_minor".into(),
            ]);
            for p in &report.products {
                row(&[
                    p.product_id.to_string(),
                    p.name.clone(),
                    p.quantity.to_string(),
                    p.net_minor.to_string(),
                ]);
            }
        }
        "category" => {
            row(&["category_id".into(), "quantity".into(), "net_minor".into()]);
            for c in &report.categories {
                row(&[
                    c.category_id.map(|id| id.to_string()).unwrap_or_default(),
                    c.quantity.to_string(),
                    c.net_minor.to_string(),
                ]);
            }
        }
        _ => return None,
    }
    Some(out)
}

/// RFC 4180 quoting; a cell a spreadsheet would run as a formula gets a leading `'`.
fn quote(cell: &str) -> String {
    let cell = if cell.starts_with(['=', '+', '-', '@']) && cell.parse::<i64>().is_err() {
        format!("'{cell}")
    } else {
        cell.to_owned()
    };
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(quote("Kopi, susu"), "\"Kopi, susu\"");
        assert_eq!(quote("Kopi \"Tubruk\""), "\"Kopi \"\"Tubruk\"\"\"");
        assert_eq!(quote("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(quote("-1800"), "-1800");
        assert_eq!(quote("@SUM(A1)"), "'@SUM(A1)");
    }
}
