//! The rules of an order, without HTTP or SQL: totals from catalog prices (never from the
//! client), the status machine, how a payment is applied (overpay refused, change for cash) and
//! what a refund gives back. Amounts are integer minor units of the order's one currency.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `open → paid → partially_refunded → refunded`, `paid → refunded`, `open → cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = OrderStatus)]
pub enum Status {
    Open,
    Paid,
    PartiallyRefunded,
    Refunded,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Paid => "paid",
            Self::PartiallyRefunded => "partially_refunded",
            Self::Refunded => "refunded",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "open" => Self::Open,
            "paid" => Self::Paid,
            "partially_refunded" => Self::PartiallyRefunded,
            "refunded" => Self::Refunded,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    pub fn may_pay(self) -> bool {
        self == Self::Open
    }

    pub fn may_refund(self) -> bool {
        matches!(self, Self::Paid | Self::PartiallyRefunded)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Cash,
    Card,
    Transfer,
    Qr,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cash => "cash",
            Self::Card => "card",
            Self::Transfer => "transfer",
            Self::Qr => "qr",
        }
    }

    pub fn parse(value: &str) -> Self {
        match value {
            "cash" => Self::Cash,
            "card" => Self::Card,
            "transfer" => Self::Transfer,
            _ => Self::Qr,
        }
    }
}

/// A line as priced from the catalog at order time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    pub unit_price_minor: i64,
    pub quantity: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PricingError {
    /// Line `index` is in another currency than line 0.
    MixedCurrency(usize),
    /// The total does not fit in 64 bits.
    TooLarge,
}

/// The order total and its currency, from catalog prices only.
pub fn total(lines: &[Priced]) -> Result<(i64, String), PricingError> {
    let currency = lines
        .first()
        .map(|l| l.currency.clone())
        .unwrap_or_default();
    let mut total: i64 = 0;
    for (index, line) in lines.iter().enumerate() {
        if line.currency != currency {
            return Err(PricingError::MixedCurrency(index));
        }
        let amount = line
            .unit_price_minor
            .checked_mul(line.quantity)
            .ok_or(PricingError::TooLarge)?;
        total = total.checked_add(amount).ok_or(PricingError::TooLarge)?;
    }
    Ok((total, currency))
}

/// A payment as applied to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// What goes towards the order.
    pub amount_minor: i64,
    pub tendered_minor: i64,
    /// Cash handed back.
    pub change_minor: i64,
    pub paid_after: i64,
    /// The order is paid in full.
    pub settled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentError {
    /// Only cash may exceed what is due (the rest is change).
    Overpayment { due_minor: i64 },
}

/// Applies `tendered` (> 0) by `method` to an order of `total` of which `paid` is paid.
pub fn apply_payment(
    total: i64,
    paid: i64,
    method: Method,
    tendered: i64,
) -> Result<Applied, PaymentError> {
    let due = total - paid;
    let (amount, change) = if tendered <= due {
        (tendered, 0)
    } else if method == Method::Cash {
        (due, tendered - due)
    } else {
        return Err(PaymentError::Overpayment { due_minor: due });
    };
    Ok(Applied {
        amount_minor: amount,
        tendered_minor: tendered,
        change_minor: change,
        paid_after: paid + amount,
        settled: paid + amount == total,
    })
}

/// A line of a paid order, as a refund sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refundable {
    pub line_no: i32,
    /// What the whole line cost: net, tax, service charge and its tax.
    pub total_minor: i64,
    /// Of that, the tax (the goods' and the service charge's).
    pub tax_minor: i64,
    pub quantity: i64,
    pub refunded_quantity: i64,
}

/// What one line gives back: its share of what was paid ([`crate::money::refund_share`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundLine {
    pub line_no: i32,
    pub quantity: i64,
    pub amount_minor: i64,
    /// Of `amount_minor`, the tax given back.
    pub tax_minor: i64,
}

impl Refundable {
    fn give_back(&self, quantity: i64) -> RefundLine {
        let share = |part| {
            crate::money::refund_share(part, self.quantity, self.refunded_quantity, quantity)
        };
        RefundLine {
            line_no: self.line_no,
            quantity,
            amount_minor: share(self.total_minor),
            tax_minor: share(self.tax_minor),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundError {
    /// The request's `index`th line names no line of the order.
    UnknownLine(usize),
    /// The request's `index`th line names a line already named before it.
    Duplicate(usize),
    /// More than is left to refund on that line.
    TooMany { index: usize, refundable: i64 },
    /// Everything is refunded already.
    Nothing,
}

/// The lines a refund gives back: those asked for (line number, quantity), or, when `asked`
/// is `None`, everything not refunded yet.
pub fn plan_refund(
    lines: &[Refundable],
    asked: Option<&[(i32, i64)]>,
) -> Result<Vec<RefundLine>, RefundError> {
    let left = |line: &Refundable| line.quantity - line.refunded_quantity;
    let mut plan = Vec::new();
    match asked {
        None => {
            for line in lines.iter().filter(|l| left(l) > 0) {
                plan.push(line.give_back(left(line)));
            }
        }
        Some(asked) => {
            for (index, (line_no, quantity)) in asked.iter().enumerate() {
                if asked[..index].iter().any(|(n, _)| n == line_no) {
                    return Err(RefundError::Duplicate(index));
                }
                let line = lines
                    .iter()
                    .find(|l| l.line_no == *line_no)
                    .ok_or(RefundError::UnknownLine(index))?;
                if *quantity > left(line) {
                    return Err(RefundError::TooMany {
                        index,
                        refundable: left(line),
                    });
                }
                plan.push(line.give_back(*quantity));
            }
        }
    }
    if plan.is_empty() {
        return Err(RefundError::Nothing);
    }
    Ok(plan)
}

/// The status once `plan` is refunded: `refunded` when no line has anything left.
pub fn status_after_refund(lines: &[Refundable], plan: &[RefundLine]) -> Status {
    let all_back = lines.iter().all(|line| {
        let now = plan
            .iter()
            .filter(|p| p.line_no == line.line_no)
            .map(|p| p.quantity)
            .sum::<i64>();
        line.refunded_quantity + now == line.quantity
    });
    if all_back {
        Status::Refunded
    } else {
        Status::PartiallyRefunded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn priced(unit: i64, quantity: i64, currency: &str) -> Priced {
        Priced {
            unit_price_minor: unit,
            quantity,
            currency: currency.to_owned(),
        }
    }

    #[test]
    fn totals_come_from_prices_in_one_currency() {
        assert_eq!(
            total(&[priced(18000, 2, "IDR"), priced(5000, 1, "IDR")]),
            Ok((41000, "IDR".to_owned()))
        );
        assert_eq!(
            total(&[priced(1, 1, "IDR"), priced(1, 1, "USD")]),
            Err(PricingError::MixedCurrency(1))
        );
        assert_eq!(
            total(&[priced(i64::MAX, 2, "IDR")]),
            Err(PricingError::TooLarge)
        );
    }

    #[test]
    fn cash_gives_change_and_other_methods_cannot_overpay() {
        let cash = apply_payment(41000, 0, Method::Cash, 50000).unwrap();
        assert_eq!(
            (cash.amount_minor, cash.change_minor, cash.settled),
            (41000, 9000, true)
        );
        assert_eq!(
            apply_payment(41000, 0, Method::Card, 41001),
            Err(PaymentError::Overpayment { due_minor: 41000 })
        );
        let split = apply_payment(41000, 0, Method::Card, 20000).unwrap();
        assert_eq!((split.paid_after, split.settled), (20000, false));
        let rest = apply_payment(41000, 20000, Method::Qr, 21000).unwrap();
        assert!(rest.settled);
        assert_eq!(rest.change_minor, 0);
    }

    fn line(line_no: i32, quantity: i64, refunded: i64) -> Refundable {
        Refundable {
            line_no,
            total_minor: 1000 * quantity,
            tax_minor: 0,
            quantity,
            refunded_quantity: refunded,
        }
    }

    #[test]
    fn a_refund_gives_back_at_most_what_is_left() {
        let lines = [line(1, 2, 0), line(2, 3, 1)];
        let all = plan_refund(&lines, None).unwrap();
        assert_eq!(
            all.iter()
                .map(|l| (l.line_no, l.quantity))
                .collect::<Vec<_>>(),
            [(1, 2), (2, 2)]
        );
        assert_eq!(status_after_refund(&lines, &all), Status::Refunded);
        let part = plan_refund(&lines, Some(&[(2, 1)])).unwrap();
        assert_eq!(part[0].amount_minor, 1000);
        assert_eq!(
            status_after_refund(&lines, &part),
            Status::PartiallyRefunded
        );
        assert_eq!(
            plan_refund(&lines, Some(&[(2, 3)])),
            Err(RefundError::TooMany {
                index: 0,
                refundable: 2
            })
        );
        assert_eq!(
            plan_refund(&lines, Some(&[(9, 1)])),
            Err(RefundError::UnknownLine(0))
        );
        assert_eq!(
            plan_refund(&lines, Some(&[(1, 1), (1, 1)])),
            Err(RefundError::Duplicate(1))
        );
        assert_eq!(
            plan_refund(&[line(1, 2, 2)], None),
            Err(RefundError::Nothing)
        );
    }

    #[test]
    fn a_taxed_line_gives_back_its_share_of_the_price_paid_and_of_the_tax() {
        // 3 × Rp18 000 tax-exclusive at 11 %: 54 000 + 5 940 = 59 940 paid.
        let taxed = Refundable {
            line_no: 1,
            total_minor: 59_940,
            tax_minor: 5_940,
            quantity: 3,
            refunded_quantity: 0,
        };
        let one = plan_refund(&[taxed], Some(&[(1, 1)])).unwrap()[0];
        assert_eq!((one.amount_minor, one.tax_minor), (19_980, 1_980));
        let after_one = Refundable {
            refunded_quantity: 1,
            ..taxed
        };
        let rest = plan_refund(&[after_one], None).unwrap()[0];
        assert_eq!(
            (rest.quantity, rest.amount_minor, rest.tax_minor),
            (2, 39_960, 3_960)
        );
        // 10 for 3 units: 3, then 7 for the other two; never more than was paid.
        let odd = Refundable {
            line_no: 1,
            total_minor: 10,
            tax_minor: 1,
            quantity: 3,
            refunded_quantity: 0,
        };
        let first = plan_refund(&[odd], Some(&[(1, 1)])).unwrap()[0];
        let after = Refundable {
            refunded_quantity: 1,
            ..odd
        };
        let second = plan_refund(&[after], None).unwrap()[0];
        assert_eq!(first.amount_minor + second.amount_minor, 10);
        assert_eq!(first.tax_minor + second.tax_minor, 1);
    }

    #[test]
    fn only_open_orders_take_payments_and_only_paid_ones_refunds() {
        assert!(Status::Open.may_pay() && !Status::Paid.may_pay());
        assert!(Status::Paid.may_refund() && Status::PartiallyRefunded.may_refund());
        assert!(!Status::Open.may_refund() && !Status::Cancelled.may_refund());
        for status in [
            Status::Open,
            Status::Paid,
            Status::PartiallyRefunded,
            Status::Refunded,
            Status::Cancelled,
        ] {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
    }
}
