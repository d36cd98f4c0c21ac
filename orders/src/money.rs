//! Tax and service charge on an order (#21), without HTTP or SQL: what each line costs before
//! and after tax, the service charge, the tax lines by rate, and what a refund of part of a line
//! gives back. Integer minor units throughout; every division rounds half up, once per line.
//!
//! The rules, as docs/API.md states them:
//! - A line's amount is unit price × quantity, as the catalog prices it.
//! - Tax-exclusive shop: the line's net is its amount; its tax is `net × rate`, rounded.
//! - Tax-inclusive shop: the line's tax is `amount − amount / (1 + rate)`, the division rounded;
//!   its net is the amount less that tax, so net + tax is exactly what the shelf said.
//! - An `exempt` product, or a shop with no default rate, has no tax.
//! - Service charge (if the shop has one): `net × service rate` per line, rounded; when the shop
//!   taxes it, its tax is `service charge × the default rate`, rounded, whatever the goods' rate.
//! - A line's total is net + tax + service charge + its tax; the order's total is the sum of
//!   its lines; a tax line sums, per rate, the taxable bases and the tax.
//! - A refund of `k` of a line's `n` units gives back each part in proportion, rounded on the
//!   running total (`part × (refunded + k) / n − part × refunded / n`), so the refunds of a whole
//!   line add up to exactly what was paid for it.

pub use products::catalog::TaxCategory;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Basis points in one whole: 1100 bp is 11 %.
pub const WHOLE_BP: i64 = 10_000;

/// A named tax rate of a shop, e.g. PPN at 1100 bp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaxRate {
    /// 1 to 40 characters, no control characters, no spaces around them.
    #[schema(
        min_length = 1,
        max_length = 40,
        pattern = r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$",
        example = "PPN"
    )]
    pub name: String,
    /// Basis points: 1100 is 11 %.
    #[schema(minimum = 0, maximum = 10000, example = 1100)]
    pub rate_bp: i32,
}

/// The service charge a shop adds (restaurants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServiceCharge {
    /// Basis points of each line's net amount: 500 is 5 %.
    #[schema(minimum = 1, maximum = 10000, example = 500)]
    pub rate_bp: i32,
    /// Applied before tax: the service charge is itself taxed at the default rate.
    pub taxable: bool,
}

/// The rule an order's money is worked out by: a shop's settings as they were when the order
/// was rung up (stored on the order, so a later change never alters it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = OrderPricing)]
pub struct Pricing {
    /// Catalog prices already include the tax.
    pub prices_include_tax: bool,
    /// The rate `standard` products are taxed at; `null`: no tax (not VAT-registered).
    pub tax_rate: Option<TaxRate>,
    pub service_charge: Option<ServiceCharge>,
}

impl Pricing {
    /// No tax and no service charge: the order costs what its lines say.
    pub fn untaxed() -> Self {
        Self {
            prices_include_tax: false,
            tax_rate: None,
            service_charge: None,
        }
    }
}

/// Why a discount was given: a code, never free text (it reaches reports and the audit trail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiscountReason {
    Promo,
    Loyalty,
    Damaged,
    PriceMatch,
    Staff,
    Other,
}

impl DiscountReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Promo => "promo",
            Self::Loyalty => "loyalty",
            Self::Damaged => "damaged",
            Self::PriceMatch => "price_match",
            Self::Staff => "staff",
            Self::Other => "other",
        }
    }
}

/// A discount as the till asks for it: a share of the price or an amount off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Discount {
    /// `rate_bp` basis points off: 1000 is 10 %.
    Percent {
        #[schema(minimum = 1, maximum = 10000)]
        rate_bp: i32,
        reason: DiscountReason,
    },
    /// `amount_minor` off (never more than what it is taken from).
    Amount {
        #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
        amount_minor: i64,
        reason: DiscountReason,
    },
}

/// Why a discount cannot be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscountError {
    /// More off than the line (or the order) costs: nothing may go below zero.
    MoreThanThePrice,
    /// A rate outside 1..=10000 bp or an amount below 1.
    OutOfRange,
}

impl Discount {
    pub fn reason(&self) -> DiscountReason {
        match *self {
            Self::Percent { reason, .. } | Self::Amount { reason, .. } => reason,
        }
    }

    /// What it takes off `base` (rounded half up for a share).
    pub fn of(&self, base: i64) -> Result<i64, DiscountError> {
        match *self {
            Self::Percent { rate_bp, .. } if (1..=10_000).contains(&rate_bp) => {
                share(base, i64::from(rate_bp), WHOLE_BP).map_err(|_| DiscountError::OutOfRange)
            }
            Self::Amount { amount_minor, .. } if amount_minor >= 1 => {
                if amount_minor > base {
                    Err(DiscountError::MoreThanThePrice)
                } else {
                    Ok(amount_minor)
                }
            }
            _ => Err(DiscountError::OutOfRange),
        }
    }
}

/// Each line's discount: its own, then its share of the order's. The order's discount is taken
/// from what the lines cost after their own, and shared out in proportion to that, the
/// remainders going to the largest fractions (then the earliest line), so the shares add up
/// to it exactly and no line goes below zero.
pub fn discounts(
    amounts: &[i64],
    own: &[Option<Discount>],
    order: Option<&Discount>,
) -> Result<Vec<i64>, (Option<usize>, DiscountError)> {
    let mut taken = Vec::with_capacity(amounts.len());
    for (index, (amount, discount)) in amounts.iter().zip(own).enumerate() {
        taken.push(match discount {
            Some(d) => d.of(*amount).map_err(|e| (Some(index), e))?,
            None => 0,
        });
    }
    let Some(order) = order else {
        return Ok(taken);
    };
    let left: Vec<i64> = amounts.iter().zip(&taken).map(|(a, t)| a - t).collect();
    let base: i64 = left.iter().sum();
    let off = order.of(base).map_err(|e| (None, e))?;
    if base == 0 {
        return Ok(taken);
    }
    let mut shares: Vec<(i64, i128, usize)> = left
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let exact = i128::from(off) * i128::from(*l);
            let whole = exact / i128::from(base);
            (
                i64::try_from(whole).unwrap_or(0),
                exact % i128::from(base),
                i,
            )
        })
        .collect();
    let mut rest = off - shares.iter().map(|s| s.0).sum::<i64>();
    let mut order_of: Vec<usize> = (0..shares.len()).collect();
    order_of.sort_by(|a, b| shares[*b].1.cmp(&shares[*a].1).then(a.cmp(b)));
    for i in order_of {
        if rest == 0 {
            break;
        }
        if shares[i].0 < left[i] {
            shares[i].0 += 1;
            rest -= 1;
        }
    }
    Ok(taken
        .iter()
        .zip(&shares)
        .map(|(own, share)| own + share.0)
        .collect())
}

/// A line to bill: catalog price × quantity, and the product's tax category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineIn {
    /// What the line costs: catalog price × quantity, less its discounts ([`discounts`]).
    pub amount_minor: i64,
    pub category: TaxCategory,
}

/// The money of one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineBill {
    /// The rate the goods were taxed at (`None`: exempt or no tax).
    pub tax_rate: Option<TaxRate>,
    pub net_minor: i64,
    pub tax_minor: i64,
    pub service_charge_minor: i64,
    /// Tax on the service charge (at the default rate).
    pub service_tax_minor: i64,
}

impl LineBill {
    pub fn total_minor(&self) -> i64 {
        self.net_minor + self.tax_minor + self.service_charge_minor + self.service_tax_minor
    }
}

/// Per rate: what was taxed and the tax.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TaxLine {
    pub name: String,
    pub rate_bp: i32,
    pub taxable_base_minor: i64,
    pub tax_minor: i64,
}

/// An order's money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bill {
    pub lines: Vec<LineBill>,
    pub service_charge_minor: i64,
    /// All tax: the goods' and the service charge's.
    pub tax_minor: i64,
    pub tax_lines: Vec<TaxLine>,
    pub total_minor: i64,
}

/// The amounts do not fit in 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge;

/// `value × numerator / denominator`, rounded half up (every input is non-negative).
fn share(value: i64, numerator: i64, denominator: i64) -> Result<i64, TooLarge> {
    debug_assert!(value >= 0 && numerator >= 0 && denominator > 0);
    let exact = i128::from(value) * i128::from(numerator);
    let rounded = (2 * exact + i128::from(denominator)) / (2 * i128::from(denominator));
    i64::try_from(rounded).map_err(|_| TooLarge)
}

/// Works out every line, the service charge, the tax lines and the total under `pricing`.
pub fn bill(pricing: &Pricing, lines: &[LineIn]) -> Result<Bill, TooLarge> {
    let mut billed = Vec::with_capacity(lines.len());
    for line in lines {
        let rate = match line.category {
            TaxCategory::Standard => pricing.tax_rate.clone(),
            TaxCategory::Exempt => None,
        };
        let bp = rate.as_ref().map_or(0, |r| i64::from(r.rate_bp));
        let (net, tax) = if pricing.prices_include_tax {
            let net = share(line.amount_minor, WHOLE_BP, WHOLE_BP + bp)?;
            (net, line.amount_minor - net)
        } else {
            (line.amount_minor, share(line.amount_minor, bp, WHOLE_BP)?)
        };
        let (service, service_tax) = match pricing.service_charge {
            None => (0, 0),
            Some(charge) => {
                let service = share(net, i64::from(charge.rate_bp), WHOLE_BP)?;
                let taxed_at = match (&pricing.tax_rate, charge.taxable) {
                    (Some(rate), true) => i64::from(rate.rate_bp),
                    _ => 0,
                };
                (service, share(service, taxed_at, WHOLE_BP)?)
            }
        };
        // The line's total must fit, so every sum below does.
        net.checked_add(tax)
            .and_then(|v| v.checked_add(service))
            .and_then(|v| v.checked_add(service_tax))
            .ok_or(TooLarge)?;
        billed.push(LineBill {
            tax_rate: rate,
            net_minor: net,
            tax_minor: tax,
            service_charge_minor: service,
            service_tax_minor: service_tax,
        });
    }
    let mut tax_lines: Vec<TaxLine> = Vec::new();
    let mut add = |rate: &TaxRate, base: i64, tax: i64| -> Result<(), TooLarge> {
        let at = match tax_lines.iter().position(|t| t.name == rate.name) {
            Some(at) => at,
            None => {
                tax_lines.push(TaxLine {
                    name: rate.name.clone(),
                    rate_bp: rate.rate_bp,
                    taxable_base_minor: 0,
                    tax_minor: 0,
                });
                tax_lines.len() - 1
            }
        };
        let line = &mut tax_lines[at];
        line.taxable_base_minor = line.taxable_base_minor.checked_add(base).ok_or(TooLarge)?;
        line.tax_minor = line.tax_minor.checked_add(tax).ok_or(TooLarge)?;
        Ok(())
    };
    for line in &billed {
        if let Some(rate) = &line.tax_rate {
            add(rate, line.net_minor, line.tax_minor)?;
        }
        if let (Some(rate), Some(charge)) = (&pricing.tax_rate, pricing.service_charge)
            && charge.taxable
            && line.service_charge_minor > 0
        {
            add(rate, line.service_charge_minor, line.service_tax_minor)?;
        }
    }
    let sum = |part: fn(&LineBill) -> i64| -> Result<i64, TooLarge> {
        billed
            .iter()
            .try_fold(0_i64, |acc, l| acc.checked_add(part(l)).ok_or(TooLarge))
    };
    let service_charge_minor = sum(|l| l.service_charge_minor)?;
    let tax_minor = sum(|l| l.tax_minor + l.service_tax_minor)?;
    let total_minor = sum(LineBill::total_minor)?;
    Ok(Bill {
        lines: billed,
        service_charge_minor,
        tax_minor,
        tax_lines,
        total_minor,
    })
}

/// What `quantity` more units of a line of `of` units, `already` of them refunded before, give
/// back of `part` (the line's total, or its tax): rounded on the running total, so refunding a
/// line piece by piece returns exactly `part`.
pub fn refund_share(part: i64, of: i64, already: i64, quantity: i64) -> i64 {
    let upto = |k: i64| share(part, k, of).unwrap_or(part);
    upto(already + quantity) - upto(already)
}

/// Minor units of a currency: Warung counts IDR (and a few others) in whole units, like the
/// catalog does; everything else has two decimals.
fn exponent(currency: &str) -> u32 {
    match currency {
        "IDR" | "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "UGX" => 0,
        _ => 2,
    }
}

/// Money as a reader of `locale` expects it: `Rp18.000` / `IDR 18,000`, `US$ 12,50`, `USD 12.50`.
pub fn display(minor: i64, currency: &str, locale: &str) -> String {
    let (group, decimal) = if locale == "id" {
        ('.', ',')
    } else {
        (',', '.')
    };
    let exp = exponent(currency);
    let scale = 10i64.pow(exp);
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let whole = (abs / scale.unsigned_abs()).to_string();
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(group);
        }
        grouped.push(digit);
    }
    if exp > 0 {
        let fraction = abs % scale.unsigned_abs();
        grouped.push(decimal);
        grouped.push_str(&format!("{fraction:0width$}", width = exp as usize));
    }
    match (currency, locale) {
        ("IDR", "id") => format!("{sign}Rp{grouped}"),
        _ => format!("{sign}{currency} {grouped}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PPN: fn(i32) -> Option<TaxRate> = |bp| {
        Some(TaxRate {
            name: "PPN".into(),
            rate_bp: bp,
        })
    };

    fn standard(amount_minor: i64) -> LineIn {
        LineIn {
            amount_minor,
            category: TaxCategory::Standard,
        }
    }

    fn pricing(inclusive: bool, bp: Option<i32>, service: Option<(i32, bool)>) -> Pricing {
        Pricing {
            prices_include_tax: inclusive,
            tax_rate: bp.and_then(PPN),
            service_charge: service.map(|(rate_bp, taxable)| ServiceCharge { rate_bp, taxable }),
        }
    }

    /// (case, inclusive, rate, service, line amount) → (net, tax, service, service tax, total)
    #[test]
    fn one_line_under_each_rule() {
        type Case = (
            &'static str,
            bool,
            Option<i32>,
            Option<(i32, bool)>,
            i64,
            (i64, i64, i64, i64, i64),
        );
        let cases: &[Case] = &[
            (
                "no tax",
                false,
                None,
                None,
                18_000,
                (18_000, 0, 0, 0, 18_000),
            ),
            (
                "exclusive 11%",
                false,
                Some(1100),
                None,
                18_000,
                (18_000, 1_980, 0, 0, 19_980),
            ),
            (
                "exclusive 12%",
                false,
                Some(1200),
                None,
                18_000,
                (18_000, 2_160, 0, 0, 20_160),
            ),
            // 18 000 / 1.11 = 16 216.216…: net 16 216, tax 1 784, together the shelf price.
            (
                "inclusive 11%",
                true,
                Some(1100),
                None,
                18_000,
                (16_216, 1_784, 0, 0, 18_000),
            ),
            // Rounding half up: 5 × 11 % = 0.55 → 1; 4 × 11 % = 0.44 → 0; 50 × 11% = 5.5 → 6.
            (
                "exclusive, 0.55 rounds up",
                false,
                Some(1100),
                None,
                5,
                (5, 1, 0, 0, 6),
            ),
            (
                "exclusive, 0.44 rounds down",
                false,
                Some(1100),
                None,
                4,
                (4, 0, 0, 0, 4),
            ),
            (
                "exclusive, exactly half",
                false,
                Some(1100),
                None,
                50,
                (50, 6, 0, 0, 56),
            ),
            // 111 / 1.11 = 100 exactly; 1 / 1.11 = 0.9009 → net 1, tax 0.
            (
                "inclusive, exact",
                true,
                Some(1100),
                None,
                111,
                (100, 11, 0, 0, 111),
            ),
            (
                "inclusive, one unit",
                true,
                Some(1100),
                None,
                1,
                (1, 0, 0, 0, 1),
            ),
            // 6 / 1.2 = 5 exactly; 3 / 1.2 = 2.5 → 3: net 3, tax 0.
            (
                "inclusive 20%, half",
                true,
                Some(2000),
                None,
                3,
                (3, 0, 0, 0, 3),
            ),
            (
                "zero",
                false,
                Some(1100),
                Some((500, true)),
                0,
                (0, 0, 0, 0, 0),
            ),
            // Service 5 % of 100 000 = 5 000, taxed 11 % = 550.
            (
                "exclusive + taxed service",
                false,
                Some(1100),
                Some((500, true)),
                100_000,
                (100_000, 11_000, 5_000, 550, 116_550),
            ),
            (
                "exclusive + untaxed service",
                false,
                Some(1100),
                Some((500, false)),
                100_000,
                (100_000, 11_000, 5_000, 0, 116_000),
            ),
            // Inclusive: service on the net (100 000 of 111 000).
            (
                "inclusive + taxed service",
                true,
                Some(1100),
                Some((1000, true)),
                111_000,
                (100_000, 11_000, 10_000, 1_100, 122_100),
            ),
            (
                "service, no tax",
                false,
                None,
                Some((500, true)),
                10_000,
                (10_000, 0, 500, 0, 10_500),
            ),
        ];
        for (name, inclusive, bp, service, amount, expected) in cases {
            let bill = bill(&pricing(*inclusive, *bp, *service), &[standard(*amount)]).unwrap();
            let l = &bill.lines[0];
            assert_eq!(
                (
                    l.net_minor,
                    l.tax_minor,
                    l.service_charge_minor,
                    l.service_tax_minor,
                    l.total_minor()
                ),
                *expected,
                "{name}"
            );
            assert_eq!(bill.total_minor, expected.4, "{name}");
            if *inclusive {
                assert_eq!(
                    l.net_minor + l.tax_minor,
                    *amount,
                    "{name}: the shelf price"
                );
            }
        }
    }

    #[test]
    fn an_exempt_line_has_no_tax_but_its_service_charge_is_taxed_at_the_default_rate() {
        let rules = pricing(false, Some(1100), Some((500, true)));
        let exempt = LineIn {
            amount_minor: 20_000,
            category: TaxCategory::Exempt,
        };
        let bill = bill(&rules, &[standard(10_000), exempt]).unwrap();
        assert_eq!(bill.lines[1].tax_rate, None);
        assert_eq!(bill.lines[1].tax_minor, 0);
        assert_eq!(bill.lines[1].service_charge_minor, 1_000);
        assert_eq!(bill.lines[1].service_tax_minor, 110);
        // One tax line: the standard goods (10 000 → 1 100) and both service charges
        // (500 → 55, 1 000 → 110).
        assert_eq!(
            bill.tax_lines,
            [TaxLine {
                name: "PPN".into(),
                rate_bp: 1100,
                taxable_base_minor: 11_500,
                tax_minor: 1_265,
            }]
        );
        assert_eq!(bill.service_charge_minor, 1_500);
        assert_eq!(bill.tax_minor, 1_265);
        assert_eq!(bill.total_minor, 10_000 + 20_000 + 1_500 + 1_265);
    }

    #[test]
    fn tax_is_rounded_per_line_and_the_tax_line_sums_the_lines() {
        // Three lines of 5: 0.55 each rounds to 1 per line, 3 in all (not 1.65 → 2 once).
        let bill = bill(&pricing(false, Some(1100), None), &[standard(5); 3]).unwrap();
        assert_eq!(bill.tax_minor, 3);
        assert_eq!(bill.tax_lines[0].taxable_base_minor, 15);
        assert_eq!(bill.tax_lines[0].tax_minor, 3);
        assert_eq!(bill.total_minor, 18);
    }

    #[test]
    fn no_tax_means_no_tax_lines_and_totals_are_the_amounts() {
        let bill = bill(&Pricing::untaxed(), &[standard(18_000), standard(5_000)]).unwrap();
        assert!(bill.tax_lines.is_empty());
        assert_eq!((bill.tax_minor, bill.total_minor), (0, 23_000));
    }

    #[test]
    fn amounts_past_64_bits_are_refused() {
        let rules = pricing(false, Some(1100), None);
        assert_eq!(bill(&rules, &[standard(i64::MAX)]), Err(TooLarge));
        assert_eq!(bill(&rules, &[standard(i64::MAX / 2); 2]), Err(TooLarge));
    }

    fn off(rate_bp: i32) -> Discount {
        Discount::Percent {
            rate_bp,
            reason: DiscountReason::Promo,
        }
    }

    fn amount(amount_minor: i64) -> Discount {
        Discount::Amount {
            amount_minor,
            reason: DiscountReason::Other,
        }
    }

    #[test]
    fn line_and_order_discounts_are_shared_out_exactly_and_never_below_zero() {
        // 10 % off 18 000 is 1 800; 5 % of 5 is 0.25 → 0; 15 % of 5 = 0.75 → 1.
        assert_eq!(off(1000).of(18_000), Ok(1_800));
        assert_eq!(off(500).of(5), Ok(0));
        assert_eq!(off(1500).of(5), Ok(1));
        assert_eq!(
            amount(18_001).of(18_000),
            Err(DiscountError::MoreThanThePrice)
        );
        assert_eq!(off(10_001).of(1), Err(DiscountError::OutOfRange));
        assert_eq!(amount(0).of(1), Err(DiscountError::OutOfRange));
        // An order discount of 100 over lines of 1, 1, 1 (after their own): 33, 33, 34 by
        // remainders (all equal: the earliest first), adding up to 100... not over 3: refused.
        assert_eq!(
            discounts(&[1, 1, 1], &[None, None, None], Some(&amount(100))),
            Err((None, DiscountError::MoreThanThePrice))
        );
        // 10 off three lines of 10: 3.33 each → 3, 3, 3 and the one left to the first.
        assert_eq!(
            discounts(&[10, 10, 10], &[None, None, None], Some(&amount(10))),
            Ok(vec![4, 3, 3])
        );
        // A line discount first, then the order's share of what is left (18 000 − 1 800 and
        // 5 000: 5 000 off in proportion 16 200 : 5 000 → 3 821, 1 179).
        let shared = discounts(
            &[18_000, 5_000],
            &[Some(off(1000)), None],
            Some(&amount(5_000)),
        )
        .unwrap();
        assert_eq!(shared, [1_800 + 3_821, 1_179]);
        assert_eq!(shared.iter().sum::<i64>(), 1_800 + 5_000);
        // The whole order off: every line goes to exactly zero.
        assert_eq!(
            discounts(&[7, 13, 1], &[None, None, None], Some(&off(10_000))),
            Ok(vec![7, 13, 1])
        );
        assert_eq!(
            discounts(&[5], &[Some(amount(6))], None),
            Err((Some(0), DiscountError::MoreThanThePrice))
        );
    }

    #[test]
    fn a_discount_comes_off_before_tax() {
        // 18 000 less 10 % = 16 200, exclusive 11 %: tax 1 782.
        let rules = pricing(false, Some(1100), None);
        let bill = bill(&rules, &[standard(18_000 - 1_800)]).unwrap();
        assert_eq!((bill.tax_minor, bill.total_minor), (1_782, 17_982));
    }

    #[test]
    fn money_reads_as_the_locale_writes_it() {
        assert_eq!(display(18_000, "IDR", "id"), "Rp18.000");
        assert_eq!(display(1_234_567, "IDR", "en"), "IDR 1,234,567");
        assert_eq!(display(1250, "USD", "en"), "USD 12.50");
        assert_eq!(display(1250, "USD", "id"), "USD 12,50");
        assert_eq!(display(5, "EUR", "en"), "EUR 0.05");
        assert_eq!(display(-500, "IDR", "id"), "-Rp500");
        assert_eq!(display(0, "IDR", "id"), "Rp0");
    }

    #[test]
    fn refunds_of_a_line_piece_by_piece_add_up_to_what_was_paid() {
        // 3 units for 10 (a third each is 3.33…): 3, 4, 3 → 10.
        assert_eq!(refund_share(10, 3, 0, 1), 3);
        assert_eq!(refund_share(10, 3, 1, 1), 4);
        assert_eq!(refund_share(10, 3, 2, 1), 3);
        for (part, of) in [(19_980, 3), (1_784, 7), (1, 2), (0, 5), (99_999, 13)] {
            let mut back = 0;
            for already in 0..of {
                back += refund_share(part, of, already, 1);
            }
            assert_eq!(back, part, "{part} over {of} units");
            assert_eq!(refund_share(part, of, 0, of), part);
        }
    }
}
