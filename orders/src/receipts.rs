//! Receipt numbers (#21): each paid order gets a human number from a gapless sequence per shop
//! and day, `INV/YYYYMMDD/NNNN` by default, the day counted in the shop's time zone. The
//! number is taken in the transaction that settles the order, from a counter row that
//! transaction locks: concurrent payments get consecutive numbers, and a payment that rolls
//! back gives its number back, so the day's numbers have no gap.

use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate, Utc};
use platform::{Error, Result, db::TenantTx};

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
