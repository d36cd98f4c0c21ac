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

/// A line to bill: catalog price × quantity, and the product's tax category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineIn {
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
