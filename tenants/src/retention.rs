//! A shop's retention choices: each category's days within the platform's bounds (legal
//! minimum to maximum). The policies themselves are platform data (`platform::retention`); the
//! module jobs read the effective days from there.

use axum::extract::State;
use platform::routes;
use platform::{
    AppState, Authorized, Error, Result,
    events::{self, AuditRecord, Resource},
    http::Json,
    permission,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

permission!(pub ManageRetention = "retention.manage", [Owner], "See and choose how long each category of data is kept, within the legal bounds");

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(policies, choose))
}

/// One category as the shop sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = RetentionPolicy)]
pub struct Policy {
    pub category: String,
    pub description: String,
    /// Why it is kept that long (and no longer).
    pub reason: String,
    pub legal_min_days: i32,
    pub default_days: i32,
    pub max_days: i32,
    /// What applies to this shop.
    pub days: i32,
    /// Whether the shop chose `days` (otherwise the default applies).
    pub overridden: bool,
}

#[derive(Debug, Serialize, ToSchema)]
struct Policies {
    items: Vec<Policy>,
}

async fn load(tx: &mut platform::db::TenantTx) -> Result<Vec<Policy>> {
    Ok(sqlx::query_as!(
        Policy,
        r#"select p.category, p.description, p.reason, p.legal_min_days, p.default_days, p.max_days,
                  coalesce(o.days, p.default_days) as "days!", o.days is not null as "overridden!"
           from retention_policies p left join retention_overrides o using (category)
           order by p.category"#
    )
    .fetch_all(&mut **tx)
    .await?)
}

/// How long each category of the shop's data is kept.
#[utoipa::path(get, path = "/api/v1/retention/policies", tag = "privacy",
    security(("bearer" = ["retention.manage"])),
    responses(
        (status = 200, body = Policies),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
    ))]
async fn policies(
    caller: Authorized<ManageRetention>,
    State(state): State<AppState>,
) -> Result<Json<Policies>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let items = load(&mut tx).await?;
    tx.rollback().await?;
    Ok(Json(Policies { items }))
}

/// A choice: `days` within the category's bounds, or `null` for the default.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RetentionChoice)]
struct Choice {
    category: String,
    days: Option<i32>,
}

/// Chooses how long one category is kept (owner). Below the legal minimum or above the
/// maximum is refused with 422 and changes nothing.
#[utoipa::path(put, path = "/api/v1/retention/policies", tag = "privacy",
    security(("bearer" = ["retention.manage"])),
    request_body = Choice,
    responses(
        (status = 200, body = Policies),
        (status = 401, body = platform::error::Problem),
        (status = 403, body = platform::error::Problem),
        (status = 422, body = platform::error::Problem),
    ))]
async fn choose(
    caller: Authorized<ManageRetention>,
    State(state): State<AppState>,
    Json(body): Json<Choice>,
) -> Result<Json<Policies>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let bounds = sqlx::query!(
        "select legal_min_days, max_days from retention_policies where category = $1",
        body.category
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::invalid("category", "no such retention category"))?;
    match body.days {
        Some(days) if !(bounds.legal_min_days..=bounds.max_days).contains(&days) => {
            return Err(Error::invalid(
                "days",
                format!(
                    "must be between {} (the legal minimum) and {}",
                    bounds.legal_min_days, bounds.max_days
                ),
            ));
        }
        Some(days) => {
            sqlx::query!(
                "insert into retention_overrides (tenant_id, category, days) values ($1, $2, $3)
                 on conflict (tenant_id, category) do update set days = excluded.days, updated_at = now()",
                caller.tenant.0,
                body.category,
                days
            )
            .execute(&mut *tx)
            .await?;
        }
        None => {
            sqlx::query!(
                "delete from retention_overrides where category = $1",
                body.category
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    let record = AuditRecord::new(
        caller.actor(),
        "retention.policy_chosen",
        Resource::new("retention_category", &body.category),
    )
    .fields(&["days"])
    .details(serde_json::json!({ "days": body.days }));
    events::emit_audit(&mut tx, &record).await?;
    let items = load(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(Policies { items }))
}
