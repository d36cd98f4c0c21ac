//! The shop's profile (#21): what its receipts print about it (name, address, phone, NPWP,
//! header and footer, currency) and the time zone its days are counted in. Every staff member
//! reads it (`GET /api/v1/tenant`); the owner changes it (`PATCH /api/v1/tenant`).
//!
//! The phone is sealed like every personal value (a small shop's number is often its owner's),
//! under the tenant's own subject key; the rest is business information printed on receipts.

use std::sync::LazyLock;

use axum::extract::State;
use platform::{
    AppState, Authorized, Error, Principal, Result,
    db::TenantTx,
    error::FieldError,
    events::{self, AuditRecord, Resource},
    http::Json,
    permission,
    pii::{Opened, Sealed, Subject, SubjectId, SubjectKind},
    routes,
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{ObjectBuilder, RefOr, Schema, Type},
};
use utoipa_axum::router::OpenApiRouter;

use crate::Tenant;

permission!(pub ManageShop = "shop.manage", [Owner], "Change the shop's profile: name, address, phone, NPWP, time zone, receipt header and footer, currency");

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(current_profile, change_profile))
}

/// An IANA time zone name (`Asia/Jakarta` for WIB, `Asia/Makassar` for WITA, `Asia/Jayapura`
/// for WIT), as the tz database spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeZone(pub chrono_tz::Tz);

impl Serialize for TimeZone {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name())
    }
}

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse::<chrono_tz::Tz>()
            .map(Self)
            .map_err(|_| serde::de::Error::custom("not an IANA time zone, e.g. Asia/Jakarta"))
    }
}

impl PartialSchema for TimeZone {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("An IANA time zone name, e.g. Asia/Jakarta"))
            .enum_values(Some(chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())))
            .into()
    }
}

impl ToSchema for TimeZone {}

/// The shop as its staff see it: the tenant record with its phone opened.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ShopProfile)]
pub struct Profile {
    #[serde(flatten)]
    pub tenant: Tenant,
    /// The shop's phone (sealed at rest); `null` when none was given or it was erased.
    pub phone: Option<String>,
}

/// NPWP as printed (`01.234.567.8-901.000`) or as digits (15, or 16 for the NIK-based form).
static TAX_ID: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(TAX_ID_PATTERN).unwrap_or_else(|_| unreachable!()));
const TAX_ID_PATTERN: &str =
    r"^([0-9]{15}|[0-9]{16}|[0-9]{2}\.[0-9]{3}\.[0-9]{3}\.[0-9]-[0-9]{3}\.[0-9]{3})$";
static PHONE: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"^\+?[0-9][0-9 \-]{5,24}$").unwrap_or_else(|_| unreachable!())
});
static CURRENCY: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"^[A-Z]{3}$").unwrap_or_else(|_| unreachable!()));

/// A change to the profile; an absent field stays as it is, `null` clears an optional one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ShopProfileChange)]
pub struct ProfileChange {
    /// The name on receipts and in mail.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub business_name: Option<String>,
    #[serde(default, deserialize_with = "platform::http::json::present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 500, pattern = r"\S")]
    pub address: Option<Option<String>>,
    #[serde(default, deserialize_with = "platform::http::json::present")]
    #[schema(value_type = Option<String>, pattern = r"^\+?[0-9][0-9 \-]{5,24}$")]
    pub phone: Option<Option<String>>,
    /// NPWP: 15 digits (`01.234.567.8-901.000` or `012345678901000`) or 16 (NIK-based);
    /// stored as digits.
    #[serde(default, deserialize_with = "platform::http::json::present")]
    #[schema(value_type = Option<String>, pattern = r"^([0-9]{15}|[0-9]{16}|[0-9]{2}\.[0-9]{3}\.[0-9]{3}\.[0-9]-[0-9]{3}\.[0-9]{3})$")]
    pub tax_id: Option<Option<String>>,
    pub time_zone: Option<TimeZone>,
    /// Printed above the lines; line breaks allowed.
    #[serde(default, deserialize_with = "platform::http::json::present")]
    #[schema(value_type = Option<String>, max_length = 500, pattern = r"^[^\x00-\x09\x0b-\x1f\x7f-\x9f]*$")]
    pub receipt_header: Option<Option<String>>,
    /// Printed below the totals; line breaks allowed.
    #[serde(default, deserialize_with = "platform::http::json::present")]
    #[schema(value_type = Option<String>, max_length = 500, pattern = r"^[^\x00-\x09\x0b-\x1f\x7f-\x9f]*$")]
    pub receipt_footer: Option<Option<String>>,
    /// ISO 4217: the currency the shop sells in.
    #[schema(pattern = r"^[A-Z]{3}$")]
    pub currency: Option<String>,
}

impl ProfileChange {
    /// Trims and checks every given field; every problem is named at once (422).
    fn validated(mut self) -> Result<Self> {
        let mut errors = Vec::new();
        let mut bad = |field: &str, message: &str| errors.push(FieldError::new(field, message));
        if let Some(name) = &mut self.business_name {
            *name = name.trim().to_owned();
            if name.is_empty() || name.chars().count() > 200 {
                bad("business_name", "must be 1 to 200 characters");
            }
        }
        if let Some(Some(address)) = &mut self.address {
            *address = address.trim().to_owned();
            if address.is_empty() || address.chars().count() > 500 {
                bad("address", "must be 1 to 500 characters");
            }
        }
        if let Some(Some(phone)) = &self.phone
            && !PHONE.is_match(phone)
        {
            bad("phone", "must be a phone number, e.g. +628123456789");
        }
        if let Some(Some(tax_id)) = &mut self.tax_id {
            if TAX_ID.is_match(tax_id) {
                tax_id.retain(|c| c.is_ascii_digit());
            } else {
                bad(
                    "tax_id",
                    "must be an NPWP: 15 digits (01.234.567.8-901.000) or 16",
                );
            }
        }
        for (field, text) in [
            ("receipt_header", &self.receipt_header),
            ("receipt_footer", &self.receipt_footer),
        ] {
            if let Some(Some(text)) = text
                && (text.chars().count() > 500 || text.chars().any(|c| c.is_control() && c != '\n'))
            {
                bad(
                    field,
                    "must be at most 500 characters, without control characters but line breaks",
                );
            }
        }
        if let Some(currency) = &self.currency
            && !CURRENCY.is_match(currency)
        {
            bad("currency", "must be an ISO 4217 code, e.g. IDR");
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(Error::Validation(errors))
        }
    }

    fn fields(&self) -> Vec<&'static str> {
        [
            ("business_name", self.business_name.is_some()),
            ("address", self.address.is_some()),
            ("phone", self.phone.is_some()),
            ("tax_id", self.tax_id.is_some()),
            ("time_zone", self.time_zone.is_some()),
            ("receipt_header", self.receipt_header.is_some()),
            ("receipt_footer", self.receipt_footer.is_some()),
            ("currency", self.currency.is_some()),
        ]
        .into_iter()
        .filter_map(|(field, given)| given.then_some(field))
        .collect()
    }
}

fn subject(tx: &TenantTx) -> Subject {
    Subject {
        id: SubjectId::from(tx.tenant()),
        kind: SubjectKind::Tenant,
    }
}

/// The profile of the transaction's shop, its phone opened.
pub async fn profile(state: &AppState, tx: &mut TenantTx) -> Result<Profile> {
    let tenant = crate::current(tx).await?;
    let sealed = sqlx::query_scalar!(
        r#"select phone as "phone: Sealed" from tenants where id = $1"#,
        tx.tenant().0
    )
    .fetch_one(&mut **tx)
    .await?;
    let phone = match sealed {
        None => None,
        Some(sealed) => match state
            .pii
            .open(tx, SubjectId::from(tx.tenant()), "tenants.phone", &sealed)
            .await?
        {
            Opened::Value(value) => Some(value.expose().clone()),
            Opened::Erased => None,
        },
    };
    Ok(Profile { tenant, phone })
}

/// The caller's shop, with its profile.
#[utoipa::path(get, path = "/api/v1/tenant", tag = "tenants",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Profile),
        (status = 401, body = platform::error::Problem),
    ))]
async fn current_profile(
    caller: Principal,
    State(state): State<AppState>,
) -> Result<Json<Profile>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let profile = profile(&state, &mut tx).await?;
    tx.commit().await?;
    Ok(Json(profile))
}

/// Changes the shop's profile (owner only): `tenant.updated`, naming the fields changed.
#[utoipa::path(patch, path = "/api/v1/tenant", tag = "tenants",
    security(("bearer" = ["shop.manage"])),
    request_body = ProfileChange,
    responses(
        (status = 200, body = Profile),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn change_profile(
    caller: Authorized<ManageShop>,
    State(state): State<AppState>,
    Json(body): Json<ProfileChange>,
) -> Result<Json<Profile>> {
    let change = body.validated()?;
    let fields = change.fields();
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    if !fields.is_empty() {
        let phone = match &change.phone {
            Some(Some(phone)) => {
                let shop = subject(&tx);
                Some(
                    state
                        .pii
                        .seal(&mut tx, shop, "tenants.phone", phone)
                        .await?,
                )
            }
            _ => None,
        };
        sqlx::query!(
            "update tenants set
                 business_name = coalesce($2, business_name),
                 address = case when $3 then $4 else address end,
                 phone = case when $5 then $6 else phone end,
                 tax_id = case when $7 then $8 else tax_id end,
                 time_zone = coalesce($9, time_zone),
                 receipt_header = case when $10 then $11 else receipt_header end,
                 receipt_footer = case when $12 then $13 else receipt_footer end,
                 currency = coalesce($14, currency),
                 updated_at = now()
             where id = $1",
            caller.tenant.0,
            change.business_name,
            change.address.is_some(),
            change.address.clone().flatten(),
            change.phone.is_some(),
            phone as Option<Sealed>,
            change.tax_id.is_some(),
            change.tax_id.clone().flatten(),
            change.time_zone.map(|tz| tz.0.name()),
            change.receipt_header.is_some(),
            change.receipt_header.clone().flatten(),
            change.receipt_footer.is_some(),
            change.receipt_footer.clone().flatten(),
            change.currency,
        )
        .execute(&mut *tx)
        .await?;
        let record = AuditRecord::new(
            caller.actor(),
            "tenant.updated",
            Resource::new("tenant", caller.tenant),
        )
        .fields(&fields);
        events::emit_audit(&mut tx, &record).await?;
    }
    let profile = profile(&state, &mut tx).await?;
    tx.commit().await?;
    Ok(Json(profile))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(json: serde_json::Value) -> Result<ProfileChange> {
        serde_json::from_value::<ProfileChange>(json)
            .map_err(|e| Error::invalid("body", e.to_string()))?
            .validated()
    }

    fn refused(json: serde_json::Value) -> Vec<String> {
        match change(json) {
            Err(Error::Validation(errors)) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_npwp_is_kept_as_its_digits_and_anything_else_is_refused() {
        for given in ["01.234.567.8-901.000", "012345678901000"] {
            let ok = change(serde_json::json!({"tax_id": given})).unwrap();
            assert_eq!(
                ok.tax_id,
                Some(Some("012345678901000".to_owned())),
                "{given}"
            );
        }
        let nik_based = change(serde_json::json!({"tax_id": "3171234567890123"})).unwrap();
        assert_eq!(nik_based.tax_id, Some(Some("3171234567890123".to_owned())));
        for bad in [
            "12345",
            "01234567890100",
            "01.234.567.8-901.00",
            "0123456789010000 ",
        ] {
            assert_eq!(
                refused(serde_json::json!({"tax_id": bad})),
                ["tax_id"],
                "{bad}"
            );
        }
        let cleared = change(serde_json::json!({"tax_id": null})).unwrap();
        assert_eq!(cleared.tax_id, Some(None));
        assert_eq!(cleared.fields(), ["tax_id"]);
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let fields = refused(serde_json::json!({
            "business_name": "  ",
            "phone": "call me",
            "receipt_footer": "Terima kasih\u{7}",
            "currency": "rupiah",
        }));
        assert_eq!(
            fields,
            ["business_name", "phone", "receipt_footer", "currency"]
        );
        let fine = change(serde_json::json!({
            "receipt_header": "Warung Sari Rasa\nJl. Melati 5",
            "address": "  Jl. Melati 5, Bandung  ",
        }))
        .unwrap();
        assert_eq!(fine.address, Some(Some("Jl. Melati 5, Bandung".to_owned())));
    }

    #[test]
    fn time_zones_are_the_tz_databases() {
        for zone in [
            "Asia/Jakarta",
            "Asia/Makassar",
            "Asia/Jayapura",
            "Europe/Amsterdam",
        ] {
            let ok = change(serde_json::json!({"time_zone": zone})).unwrap();
            assert_eq!(ok.time_zone.map(|tz| tz.0.name()), Some(zone));
        }
        assert!(change(serde_json::json!({"time_zone": "WIB"})).is_err());
        let schema = serde_json::to_value(TimeZone::schema()).unwrap();
        let names = schema["enum"].as_array().unwrap();
        assert!(names.iter().any(|n| n == "Asia/Jakarta"));
        assert!(names.len() > 300, "{}", names.len());
    }
}
