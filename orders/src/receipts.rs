//! Receipts (#21): their numbers, and the printed receipt (text for 58 mm and 80 mm printers,
//! HTML for print and mail), built from what the order stored.
//!
//! Numbers: each paid order gets a human number from a gapless sequence per shop
//! and day, `INV/YYYYMMDD/NNNN` by default, the day counted in the shop's time zone. The
//! number is taken in the transaction that settles the order, from a counter row that
//! transaction locks: concurrent payments get consecutive numbers, and a payment that rolls
//! back gives its number back, so the day's numbers have no gap.

use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate, Utc};
use platform::{Error, Result, db::TenantTx};
use serde::Serialize;

use crate::repo::OrderId;

/// `^prefix YYYYMMDD separator N…$`: the shape the format setting must have (the database
/// checks the same pattern).
pub const FORMAT_PATTERN: &str = r"^([A-Za-z0-9/_.-]{0,16})YYYYMMDD([/_.-]?)(N{3,6})$";
static FORMAT: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(FORMAT_PATTERN).unwrap_or_else(|_| unreachable!()));

pub const DEFAULT_FORMAT: &str = "INV/YYYYMMDD/NNNN";

/// A receipt number format, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberFormat {
    prefix: String,
    separator: String,
    width: usize,
}

impl NumberFormat {
    pub fn parse(format: &str) -> Option<Self> {
        let parts = FORMAT.captures(format)?;
        Some(Self {
            prefix: parts[1].to_owned(),
            separator: parts[2].to_owned(),
            width: parts[3].len(),
        })
    }

    /// The `seq`th receipt of `day` (past the Ns' width the number simply grows).
    pub fn number(&self, day: NaiveDate, seq: i32) -> String {
        format!(
            "{}{}{}{:0width$}",
            self.prefix,
            day.format("%Y%m%d"),
            self.separator,
            seq,
            width = self.width
        )
    }
}

/// The shop's local date at `now` in `time_zone` (an IANA name; UTC if the stored name is
/// unknown to this build's tz database).
pub fn local_day(now: DateTime<Utc>, time_zone: &str) -> NaiveDate {
    match time_zone.parse::<chrono_tz::Tz>() {
        Ok(tz) => now.with_timezone(&tz).date_naive(),
        Err(_) => now.date_naive(),
    }
}

/// Gives `order` the next number of the shop's day at `now`, and returns it.
pub async fn assign(tx: &mut TenantTx, order: OrderId, now: DateTime<Utc>) -> Result<String> {
    let shop = tenants::current(tx).await?;
    let settings = crate::settings::get(tx).await?;
    let format = NumberFormat::parse(&settings.receipt_number_format).ok_or_else(|| {
        Error::Internal(anyhow::anyhow!("stored receipt number format is invalid"))
    })?;
    let day = local_day(now, &shop.time_zone);
    let tenant = tx.tenant();
    // The row lock is held until this transaction ends: the next payment of the day waits.
    let seq = sqlx::query_scalar!(
        "insert into receipt_counters (tenant_id, day, last_no) values ($1, $2, 1)
         on conflict (tenant_id, day) do update set last_no = receipt_counters.last_no + 1
         returning last_no",
        tenant.0,
        day
    )
    .fetch_one(&mut **tx)
    .await?;
    let number = format.number(day, seq);
    sqlx::query!(
        "update orders set receipt_no = $2, receipt_day = $3 where id = $1",
        order.0,
        number,
        day
    )
    .execute(&mut **tx)
    .await?;
    Ok(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn numbers_follow_the_format_and_grow_past_its_width() {
        let default = NumberFormat::parse(DEFAULT_FORMAT).unwrap();
        assert_eq!(default.number(day(2026, 12, 1), 1), "INV/20261201/0001");
        assert_eq!(
            default.number(day(2026, 12, 1), 12_345),
            "INV/20261201/12345"
        );
        let bare = NumberFormat::parse("YYYYMMDDNNN").unwrap();
        assert_eq!(bare.number(day(2027, 1, 9), 7), "20270109007");
        let shop = NumberFormat::parse("TSR-YYYYMMDD-NNNNNN").unwrap();
        assert_eq!(shop.number(day(2026, 2, 3), 42), "TSR-20260203-000042");
        for bad in [
            "INV/NNNN",
            "INV/YYYYMMDD",
            "INV/YYYYMMDD/NN",
            "INV YYYYMMDD/NNNN",
            "",
        ] {
            assert_eq!(NumberFormat::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_day_turns_at_midnight_in_the_shops_time_zone() {
        // 15:30 UTC is 22:30 in Jakarta (UTC+7) and 00:30 the next day in Jayapura (UTC+9).
        let now: DateTime<Utc> = "2026-12-01T15:30:00Z".parse().unwrap();
        assert_eq!(local_day(now, "Asia/Jakarta"), day(2026, 12, 1));
        assert_eq!(local_day(now, "Asia/Jayapura"), day(2026, 12, 2));
        assert_eq!(local_day(now, "Nowhere/Atlantis"), day(2026, 12, 1));
    }
}

// ---------------------------------------------------------------------------------------------
// The printed receipt: what the order stored, in the shop's language and time zone, as text for
// 58 mm and 80 mm printers (32 and 48 columns) and as HTML for print and mail.

/// The words of a receipt, in the shop's language.
#[derive(Debug, Clone, Serialize)]
pub struct Labels {
    pub receipt: &'static str,
    pub number: &'static str,
    pub customer: &'static str,
    pub discount: &'static str,
    pub subtotal: &'static str,
    pub service_charge: &'static str,
    pub tax_added: &'static str,
    pub total: &'static str,
    pub change: &'static str,
    pub refunded: &'static str,
    pub base: &'static str,
    pub phone: &'static str,
    pub tax_id: &'static str,
    pub cash: &'static str,
    pub card: &'static str,
    pub transfer: &'static str,
    pub qr: &'static str,
}

const ID: Labels = Labels {
    receipt: "Struk",
    number: "No.",
    customer: "Pelanggan",
    discount: "Diskon",
    subtotal: "Subtotal",
    service_charge: "Biaya layanan",
    tax_added: "Pajak",
    total: "TOTAL",
    change: "Kembalian",
    refunded: "Dikembalikan",
    base: "DPP",
    phone: "Telp",
    tax_id: "NPWP",
    cash: "Tunai",
    card: "Kartu",
    transfer: "Transfer",
    qr: "QRIS",
};

const EN: Labels = Labels {
    receipt: "Receipt",
    number: "No.",
    customer: "Customer",
    discount: "Discount",
    subtotal: "Subtotal",
    service_charge: "Service charge",
    tax_added: "Tax",
    total: "TOTAL",
    change: "Change",
    refunded: "Refunded",
    base: "Base",
    phone: "Tel",
    tax_id: "NPWP",
    cash: "Cash",
    card: "Card",
    transfer: "Transfer",
    qr: "QR",
};

#[derive(Debug, Clone, Serialize)]
pub struct ShopLines {
    pub name: String,
    /// Address, phone, NPWP and the receipt header, one printed line each.
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PrintedLine {
    pub name: String,
    pub quantity: i64,
    pub unit_price: String,
    pub amount: String,
    pub discount: Option<String>,
    pub discount_label: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub label: String,
    pub amount: String,
    pub strong: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PrintedTax {
    pub label: String,
    pub base: String,
    pub tax: String,
}

/// A receipt, ready to print.
#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    pub locale: &'static str,
    pub labels: Labels,
    pub shop: ShopLines,
    pub number: String,
    /// Paid at, in the shop's time zone (`01/12/2026 23:58 WIT`).
    pub at: String,
    /// Only for a customer who asked for receipts.
    pub customer: Option<String>,
    pub lines: Vec<PrintedLine>,
    pub totals: Vec<Row>,
    pub tax_lines: Vec<PrintedTax>,
    pub footer: Vec<String>,
}

/// `1100` → `11%`, `1250` → `12,5%` (Indonesian) or `12.5%`.
fn percent(rate_bp: i32, locale: &str) -> String {
    let whole = rate_bp / 100;
    let rest = rate_bp % 100;
    if rest == 0 {
        format!("{whole}%")
    } else {
        let decimal = if locale == "id" { ',' } else { '.' };
        let fraction = format!("{rest:02}");
        format!("{whole}{decimal}{}%", fraction.trim_end_matches('0'))
    }
}

/// An NPWP of 15 digits as printed (`01.234.567.8-901.000`); 16 digits as they are.
fn npwp(digits: &str) -> String {
    if digits.len() == 15 && digits.bytes().all(|b| b.is_ascii_digit()) {
        format!(
            "{}.{}.{}.{}-{}.{}",
            &digits[0..2],
            &digits[2..5],
            &digits[5..8],
            &digits[8..9],
            &digits[9..12],
            &digits[12..15]
        )
    } else {
        digits.to_owned()
    }
}

impl Receipt {
    /// The receipt of a paid `order` of `shop`, in `locale` (`id` or `en`: the shop's at the
    /// till, the customer's in a mail); `customer`: the name of a customer who asked for
    /// receipts.
    pub fn of(
        order: &crate::repo::Order,
        shop: &tenants::Profile,
        locale: &str,
        customer: Option<String>,
    ) -> Self {
        let locale = if locale == "id" { "id" } else { "en" };
        let labels = if locale == "id" { ID } else { EN };
        let summary = &order.summary;
        let money = |minor: i64| crate::money::display(minor, &summary.currency, locale);
        let when = summary.paid_at.unwrap_or(summary.created_at);
        let at = match shop.tenant.time_zone.parse::<chrono_tz::Tz>() {
            Ok(tz) => when
                .with_timezone(&tz)
                .format("%d/%m/%Y %H:%M %Z")
                .to_string(),
            Err(_) => when.format("%d/%m/%Y %H:%M UTC").to_string(),
        };
        let mut head = Vec::new();
        head.extend(shop.tenant.address.clone());
        if let Some(phone) = &shop.phone {
            head.push(format!("{} {phone}", labels.phone));
        }
        if let Some(tax_id) = &shop.tenant.tax_id {
            head.push(format!("{} {}", labels.tax_id, npwp(tax_id)));
        }
        let text_lines = |text: &Option<String>| -> Vec<String> {
            text.as_deref()
                .map(|t| t.lines().map(str::to_owned).collect())
                .unwrap_or_default()
        };
        head.extend(text_lines(&shop.tenant.receipt_header));
        let lines: Vec<PrintedLine> = order
            .lines
            .iter()
            .map(|line| PrintedLine {
                name: line.name.clone(),
                quantity: line.quantity,
                unit_price: money(line.unit_price_minor),
                amount: money(line.unit_price_minor * line.quantity),
                discount: (line.discount_minor > 0).then(|| money(line.discount_minor)),
                discount_label: labels.discount.to_owned(),
            })
            .collect();
        let subtotal: i64 = order
            .lines
            .iter()
            .map(|l| l.unit_price_minor * l.quantity - l.discount_minor)
            .sum();
        let added = summary.total_minor - subtotal - summary.service_charge_minor;
        let mut totals = vec![Row {
            label: labels.subtotal.to_owned(),
            amount: money(subtotal),
            strong: false,
        }];
        let mut row = |label: &str, amount: i64, strong: bool| {
            totals.push(Row {
                label: label.to_owned(),
                amount: money(amount),
                strong,
            });
        };
        if summary.service_charge_minor > 0 {
            row(labels.service_charge, summary.service_charge_minor, false);
        }
        if added > 0 {
            row(labels.tax_added, added, false);
        }
        row(labels.total, summary.total_minor, true);
        for payment in &order.payments {
            let method = match payment.method {
                crate::domain::Method::Cash => labels.cash,
                crate::domain::Method::Card => labels.card,
                crate::domain::Method::Transfer => labels.transfer,
                crate::domain::Method::Qr => labels.qr,
            };
            row(method, payment.tendered_minor, false);
        }
        let change: i64 = order.payments.iter().map(|p| p.change_minor).sum();
        if change > 0 {
            row(labels.change, change, false);
        }
        if summary.refunded_minor > 0 {
            row(labels.refunded, summary.refunded_minor, false);
        }
        let tax_lines = order
            .tax_lines
            .iter()
            .map(|t| PrintedTax {
                label: format!("{} {}", t.name, percent(t.rate_bp, locale)),
                base: money(t.taxable_base_minor),
                tax: money(t.tax_minor),
            })
            .collect();
        Self {
            locale,
            labels,
            shop: ShopLines {
                name: shop.tenant.business_name.clone(),
                lines: head,
            },
            number: summary.receipt_no.clone().unwrap_or_default(),
            at,
            customer,
            lines,
            totals,
            tax_lines,
            footer: text_lines(&shop.tenant.receipt_footer),
        }
    }

    /// Plain text `width` columns wide (32 for 58 mm paper, 48 for 80 mm).
    pub fn text(&self, width: usize) -> String {
        let mut out = Vec::new();
        let rule = "-".repeat(width);
        for line in std::iter::once(&self.shop.name).chain(&self.shop.lines) {
            for piece in wrap(line, width) {
                out.push(center(&piece, width));
            }
        }
        out.push(rule.clone());
        out.push(format!("{} {}", self.labels.number, self.number));
        out.push(self.at.clone());
        if let Some(customer) = &self.customer {
            out.extend(wrap(
                &format!("{}: {customer}", self.labels.customer),
                width,
            ));
        }
        out.push(rule.clone());
        for line in &self.lines {
            out.extend(wrap(&line.name, width));
            out.extend(columns(
                &format!("  {} x {}", line.quantity, line.unit_price),
                &line.amount,
                width,
            ));
            if let Some(discount) = &line.discount {
                out.extend(columns(
                    &format!("  {}", line.discount_label),
                    &format!("-{discount}"),
                    width,
                ));
            }
        }
        out.push(rule.clone());
        for row in &self.totals {
            out.extend(columns(&row.label, &row.amount, width));
        }
        if !self.tax_lines.is_empty() {
            out.push(rule.clone());
            for tax in &self.tax_lines {
                out.extend(columns(&tax.label, &tax.tax, width));
                out.extend(columns(
                    &format!("  {}", self.labels.base),
                    &tax.base,
                    width,
                ));
            }
        }
        if !self.footer.is_empty() {
            out.push(rule);
            for line in &self.footer {
                for piece in wrap(line, width) {
                    out.push(center(&piece, width));
                }
            }
        }
        let mut text = out.join("\n");
        text.push('\n');
        text
    }

    /// A page of HTML to print (every value escaped).
    pub fn html(&self) -> Result<String> {
        self.render("receipt.html")
    }

    /// The receipt as a piece of HTML for a mail's body (inline styles, every value escaped).
    pub fn html_fragment(&self) -> Result<String> {
        self.render("receipt_body.html")
    }

    fn render(&self, template: &str) -> Result<String> {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        let internal = |e: minijinja::Error| Error::Internal(anyhow::anyhow!(e));
        env.add_template("receipt.html", include_str!("../templates/receipt.html"))
            .map_err(internal)?;
        env.add_template(
            "receipt_body.html",
            include_str!("../templates/receipt_body.html"),
        )
        .map_err(internal)?;
        env.get_template(template)
            .and_then(|t| t.render(self))
            .map_err(internal)
    }
}

/// `text` in pieces of at most `width` characters (control characters become spaces).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let clean: Vec<char> = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.is_empty() {
        return vec![String::new()];
    }
    clean
        .chunks(width.max(1))
        .map(|piece| piece.iter().collect())
        .collect()
}

fn center(text: &str, width: usize) -> String {
    let len = text.chars().count();
    let pad = width.saturating_sub(len) / 2;
    format!("{}{text}", " ".repeat(pad))
}

/// `left` and `right` on one line, `right` flush right; on two when they do not fit.
fn columns(left: &str, right: &str, width: usize) -> Vec<String> {
    let (l, r) = (left.chars().count(), right.chars().count());
    if l + 1 + r <= width {
        vec![format!("{left}{}{right}", " ".repeat(width - l - r))]
    } else {
        let mut lines = wrap(left, width);
        lines.push(format!("{}{right}", " ".repeat(width.saturating_sub(r))));
        lines
    }
}
