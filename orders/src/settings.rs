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

/// How the shop's prices are meant and what is charged on them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SalesSettings {
    /// Catalog prices already include the tax (the receipt splits it out); `false`: tax is
    /// added on top.
    pub prices_include_tax: bool,
    /// The shop's rates, e.g. PPN at 1100 or 1200 bp. At most 10, names unique.
    #[schema(max_items = 10)]
    pub tax_rates: Vec<TaxRate>,
    /// The name of the rate `standard` products are taxed at; `null`: no tax (a shop that is
    /// not VAT-registered).
    pub default_tax_rate: Option<String>,
    /// `null`: none.
    pub service_charge: Option<ServiceCharge>,
}

impl Default for SalesSettings {
    /// A new shop: no tax, no service charge, prices as entered.
    fn default() -> Self {
        Self {
            prices_include_tax: true,
            tax_rates: Vec::new(),
            default_tax_rate: None,
            service_charge: None,
        }
    }
}

impl SalesSettings {
    /// Refuses what cannot be priced by: 422 naming the field.
    pub fn validate(&self) -> Result<()> {
        if self.tax_rates.len() > 10 {
            return Err(Error::invalid("tax_rates", "at most 10 rates"));
        }
        for (i, rate) in self.tax_rates.iter().enumerate() {
            let name = rate.name.trim();
            if name.is_empty() || name.chars().count() > 40 || name != rate.name {
                return Err(Error::invalid(
                    format!("tax_rates[{i}].name"),
                    "must be 1 to 40 characters, without spaces around them",
                ));
            }
            if name.chars().any(char::is_control) {
                return Err(Error::invalid(
                    format!("tax_rates[{i}].name"),
                    "must not hold control characters",
                ));
            }
            if !(0..=WHOLE_BP).contains(&i64::from(rate.rate_bp)) {
                return Err(Error::invalid(
                    format!("tax_rates[{i}].rate_bp"),
                    "must be 0 to 10000 (basis points: 1100 is 11 %)",
                ));
            }
            if self.tax_rates[..i].iter().any(|r| r.name == rate.name) {
                return Err(Error::invalid(
                    format!("tax_rates[{i}].name"),
                    "is the name of an earlier rate",
                ));
            }
        }
        if let Some(default) = &self.default_tax_rate
            && !self.tax_rates.iter().any(|r| &r.name == default)
        {
            return Err(Error::invalid(
                "default_tax_rate",
                "must name one of tax_rates",
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
            tax_rate: self
                .default_tax_rate
                .as_ref()
                .and_then(|name| self.tax_rates.iter().find(|r| &r.name == name))
                .cloned(),
            service_charge: self.service_charge,
        }
    }
}

/// The transaction's shop's settings (the defaults when it never set any).
pub async fn get(tx: &mut TenantTx) -> Result<SalesSettings> {
    let Some(row) = sqlx::query!(
        "select prices_include_tax, tax_rates, default_tax_rate, service_charge_bp,
                service_charge_taxable
         from sales_settings"
    )
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(SalesSettings::default());
    };
    let tax_rates = serde_json::from_value(row.tax_rates)
        .map_err(|e| Error::Internal(anyhow::anyhow!("stored tax rates unreadable: {e}")))?;
    Ok(SalesSettings {
        prices_include_tax: row.prices_include_tax,
        tax_rates,
        default_tax_rate: row.default_tax_rate,
        service_charge: row.service_charge_bp.map(|rate_bp| ServiceCharge {
            rate_bp,
            taxable: row.service_charge_taxable,
        }),
    })
}

/// Stores validated settings (`sales.settings_updated`, with the new values: none is personal).
pub async fn set(tx: &mut TenantTx, actor: Actor, settings: &SalesSettings) -> Result<()> {
    settings.validate()?;
    let tenant = tx.tenant();
    sqlx::query!(
        "insert into sales_settings (tenant_id, prices_include_tax, tax_rates, default_tax_rate,
                                     service_charge_bp, service_charge_taxable, updated_at)
         values ($1, $2, $3, $4, $5, $6, now())
         on conflict (tenant_id) do update set
             prices_include_tax = excluded.prices_include_tax,
             tax_rates = excluded.tax_rates,
             default_tax_rate = excluded.default_tax_rate,
             service_charge_bp = excluded.service_charge_bp,
             service_charge_taxable = excluded.service_charge_taxable,
             updated_at = excluded.updated_at",
        tenant.0,
        settings.prices_include_tax,
        serde_json::to_value(&settings.tax_rates)
            .map_err(|e| Error::Internal(anyhow::anyhow!(e)))?,
        settings.default_tax_rate,
        settings.service_charge.map(|c| c.rate_bp),
        settings.service_charge.is_none_or(|c| c.taxable),
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
        "tax_rates",
        "default_tax_rate",
        "service_charge",
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
    fn the_default_rate_must_be_one_of_the_rates_and_names_are_unique() {
        let mut settings = SalesSettings {
            prices_include_tax: false,
            tax_rates: vec![ppn(1100), ppn(1200)],
            default_tax_rate: Some("PPN".into()),
            service_charge: None,
        };
        assert_eq!(fields(&settings), ["tax_rates[1].name"]);
        settings.tax_rates[1].name = "PPN 12%".into();
        settings.validate().unwrap();
        assert_eq!(settings.pricing().tax_rate, Some(ppn(1100)));
        settings.default_tax_rate = Some("VAT".into());
        assert_eq!(fields(&settings), ["default_tax_rate"]);
    }

    #[test]
    fn rates_and_the_service_charge_stay_within_a_whole() {
        let mut settings = SalesSettings {
            tax_rates: vec![ppn(10_001)],
            ..SalesSettings::default()
        };
        assert_eq!(fields(&settings), ["tax_rates[0].rate_bp"]);
        settings.tax_rates = vec![ppn(0)];
        settings.validate().unwrap();
        settings.service_charge = Some(ServiceCharge {
            rate_bp: 0,
            taxable: true,
        });
        assert_eq!(fields(&settings), ["service_charge.rate_bp"]);
        settings.tax_rates = vec![TaxRate {
            name: " PPN".into(),
            rate_bp: 1100,
        }];
        settings.service_charge = None;
        assert_eq!(fields(&settings), ["tax_rates[0].name"]);
    }

    #[test]
    fn a_new_shop_has_no_tax_and_no_service_charge() {
        assert_eq!(SalesSettings::default().pricing().tax_rate, None);
        assert_eq!(SalesSettings::default().pricing().service_charge, None);
    }
}
