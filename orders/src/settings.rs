//! A shop's sales settings: its tax rates and the default one, whether catalog prices include
//! the tax, and its service charge. Read when an order is rung up and copied onto it as its
//! [`Pricing`], so changing them never alters a past order.

use platform::{
    Error, Result,
    db::TenantTx,
    events::{self, Actor, AuditRecord, Resource},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::money::{Pricing, ServiceCharge, TaxRate, WHOLE_BP};

/// How the shop's prices are meant and what is charged on them. Rates are keyed by the tax
/// category they apply to (today `standard`; `exempt` is never taxed), so no field refers to
/// another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SalesSettings {
    /// Catalog prices already include the tax (the receipt splits it out); `false`: tax is
    /// added on top.
    pub prices_include_tax: bool,
    /// The rate `standard` products are taxed at, e.g. PPN at 1100 bp (or 1200); `null`: no
    /// tax (a shop that is not VAT-registered).
    pub standard_rate: Option<TaxRate>,
    /// `null`: none.
    pub service_charge: Option<ServiceCharge>,
    /// The most a cashier may take off an order, in basis points of what its lines cost
    /// (1000: 10 %); managers and owners are not limited. Default 0: cashiers give no discount.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 10000)]
    pub cashier_discount_limit_bp: i32,
    /// How paid orders are numbered: a prefix, `YYYYMMDD`, an optional separator and 3 to 6
    /// `N`s for the day's sequence, which restarts each day in the shop's time zone. Default
    /// `INV/YYYYMMDD/NNNN` (INV/20261201/0001).
    #[serde(default = "default_receipt_number_format")]
    #[schema(
        pattern = r"^([A-Za-z0-9/_.-]{0,16})YYYYMMDD([/_.-]?)(N{3,6})$",
        example = "INV/YYYYMMDD/NNNN"
    )]
    pub receipt_number_format: String,
    /// Cash is taken (and given back) only by staff with an open shift (409 `shift_required`
    /// otherwise). Default false.
    #[serde(default)]
    pub require_shift_for_cash: bool,
}

fn default_receipt_number_format() -> String {
    crate::receipts::DEFAULT_FORMAT.to_owned()
}

impl Default for SalesSettings {
    /// A new shop: no tax, no service charge, prices as entered.
    fn default() -> Self {
        Self {
            prices_include_tax: true,
            standard_rate: None,
            service_charge: None,
            cashier_discount_limit_bp: 0,
            receipt_number_format: default_receipt_number_format(),
            require_shift_for_cash: false,
        }
    }
}

impl SalesSettings {
    /// Refuses what cannot be priced by: 422 naming the field.
    pub fn validate(&self) -> Result<()> {
        if let Some(rate) = &self.standard_rate {
            let name = rate.name.trim();
            if name.is_empty()
                || rate.name.chars().count() > 40
                || name != rate.name
                || name.chars().any(char::is_control)
            {
                return Err(Error::invalid(
                    "standard_rate.name",
                    "must be 1 to 40 characters, without control characters or spaces around them",
                ));
            }
            if !(0..=WHOLE_BP).contains(&i64::from(rate.rate_bp)) {
                return Err(Error::invalid(
                    "standard_rate.rate_bp",
                    "must be 0 to 10000 (basis points: 1100 is 11 %)",
                ));
            }
        }
        if !(0..=WHOLE_BP).contains(&i64::from(self.cashier_discount_limit_bp)) {
            return Err(Error::invalid(
                "cashier_discount_limit_bp",
                "must be 0 to 10000 (basis points: 1000 is 10 %)",
            ));
        }
        if crate::receipts::NumberFormat::parse(&self.receipt_number_format).is_none() {
            return Err(Error::invalid(
                "receipt_number_format",
                "must be a prefix, YYYYMMDD, an optional separator and 3 to 6 Ns, e.g. INV/YYYYMMDD/NNNN",
            ));
        }
        if let Some(charge) = self.service_charge
            && !(1..=WHOLE_BP).contains(&i64::from(charge.rate_bp))
        {
            return Err(Error::invalid(
                "service_charge.rate_bp",
                "must be 1 to 10000 (basis points: 500 is 5 %)",
            ));
        }
        Ok(())
    }

    /// The rule orders are priced by under these settings.
    pub fn pricing(&self) -> Pricing {
        Pricing {
            prices_include_tax: self.prices_include_tax,
            tax_rate: self.standard_rate.clone(),
            service_charge: self.service_charge,
        }
    }
}

/// The transaction's shop's settings (the defaults when it never set any).
pub async fn get(tx: &mut TenantTx) -> Result<SalesSettings> {
    let Some(row) = sqlx::query!(
        "select prices_include_tax, tax_rate_name, tax_rate_bp, service_charge_bp,
                service_charge_taxable, cashier_discount_limit_bp, receipt_number_format,
                require_shift_for_cash
         from sales_settings"
    )
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(SalesSettings::default());
    };
    Ok(SalesSettings {
        prices_include_tax: row.prices_include_tax,
        standard_rate: row
            .tax_rate_name
            .zip(row.tax_rate_bp)
            .map(|(name, rate_bp)| TaxRate { name, rate_bp }),
        service_charge: row.service_charge_bp.map(|rate_bp| ServiceCharge {
            rate_bp,
            taxable: row.service_charge_taxable,
        }),
        cashier_discount_limit_bp: row.cashier_discount_limit_bp,
        receipt_number_format: row.receipt_number_format,
        require_shift_for_cash: row.require_shift_for_cash,
    })
}

/// Stores validated settings (`sales.settings_updated`, with the new values: none is personal).
pub async fn set(tx: &mut TenantTx, actor: Actor, settings: &SalesSettings) -> Result<()> {
    settings.validate()?;
    let tenant = tx.tenant();
    sqlx::query!(
        "insert into sales_settings (tenant_id, prices_include_tax, tax_rate_name, tax_rate_bp,
                                     service_charge_bp, service_charge_taxable,
                                     cashier_discount_limit_bp, receipt_number_format,
                                     require_shift_for_cash, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
         on conflict (tenant_id) do update set
             prices_include_tax = excluded.prices_include_tax,
             tax_rate_name = excluded.tax_rate_name,
             tax_rate_bp = excluded.tax_rate_bp,
             service_charge_bp = excluded.service_charge_bp,
             service_charge_taxable = excluded.service_charge_taxable,
             cashier_discount_limit_bp = excluded.cashier_discount_limit_bp,
             receipt_number_format = excluded.receipt_number_format,
             require_shift_for_cash = excluded.require_shift_for_cash,
             updated_at = excluded.updated_at",
        tenant.0,
        settings.prices_include_tax,
        settings.standard_rate.as_ref().map(|r| r.name.as_str()),
        settings.standard_rate.as_ref().map(|r| r.rate_bp),
        settings.service_charge.map(|c| c.rate_bp),
        settings.service_charge.is_none_or(|c| c.taxable),
        settings.cashier_discount_limit_bp,
        settings.receipt_number_format,
        settings.require_shift_for_cash,
    )
    .execute(&mut **tx)
    .await?;
    let record = AuditRecord::new(
        actor,
        "sales.settings_updated",
        Resource::new("sales_settings", tenant),
    )
    .fields(&[
        "prices_include_tax",
        "standard_rate",
        "service_charge",
        "cashier_discount_limit_bp",
        "receipt_number_format",
        "require_shift_for_cash",
    ])
    .details(serde_json::to_value(settings).unwrap_or_default());
    events::emit_audit(tx, &record).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields a validation error names.
    fn fields(settings: &SalesSettings) -> Vec<String> {
        match settings.validate() {
            Ok(()) => Vec::new(),
            Err(Error::Validation(errors)) => errors.into_iter().map(|e| e.field).collect(),
            Err(other) => panic!("{other:?}"),
        }
    }

    fn ppn(bp: i32) -> TaxRate {
        TaxRate {
            name: "PPN".into(),
            rate_bp: bp,
        }
    }

    #[test]
    fn rates_and_the_service_charge_stay_within_a_whole_and_names_are_clean() {
        let mut settings = SalesSettings {
            standard_rate: Some(ppn(10_001)),
            ..SalesSettings::default()
        };
        assert_eq!(fields(&settings), ["standard_rate.rate_bp"]);
        settings.standard_rate = Some(ppn(0));
        settings.validate().unwrap();
        settings.standard_rate = Some(ppn(1200));
        settings.validate().unwrap();
        assert_eq!(settings.pricing().tax_rate, Some(ppn(1200)));
        settings.service_charge = Some(ServiceCharge {
            rate_bp: 0,
            taxable: true,
        });
        assert_eq!(fields(&settings), ["service_charge.rate_bp"]);
        settings.service_charge = None;
        for name in [" PPN", "", "PP\u{7}N", &"P".repeat(41)] {
            settings.standard_rate = Some(TaxRate {
                name: name.to_owned(),
                rate_bp: 1100,
            });
            assert_eq!(fields(&settings), ["standard_rate.name"], "{name:?}");
        }
    }

    #[test]
    fn a_new_shop_has_no_tax_and_no_service_charge() {
        assert_eq!(SalesSettings::default().pricing().tax_rate, None);
        assert_eq!(SalesSettings::default().pricing().service_charge, None);
    }
}
