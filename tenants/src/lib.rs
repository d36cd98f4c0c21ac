//! Merchants as tenants: the tenant record created at onboarding, its settings, retention
//! overrides. Onboarding itself is composed by `auth` (it creates the tenant through
//! [`create`], the owner through `users`, and the owner's credentials).
//!
//! Face (the same in every module crate): [`router`] for its HTTP routes under `/api/v1`,
//! [`workers`] for its background work, [`jobs`] for its scheduled jobs, [`MODULE`] for
//! `gateway` to compose, and its public API ([`create`], [`by_slug`], [`current`]).

pub mod retention;

use axum::extract::State;
use platform::routes;
use platform::{
    AppState, Error, Module, Principal, Result, Worker,
    db::{Db, TenantTx},
    error::OnConstraint,
    events::{self, Actor, AuditRecord, Resource},
    health::Dependency,
    http::Json,
    id::TenantId,
    jobs::Job,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

pub const MODULE: Module = Module {
    name: "tenants",
    needs: &[Dependency::Postgres, Dependency::Vault],
    router,
    workers,
    jobs,
    permissions: &[retention::ManageRetention::INFO],
    subject_data: None,
    compliance: None,
};

/// HTTP routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(current_tenant))
        .merge(retention::router())
}

/// Long-running consumers and scheduled jobs of this module.
pub fn workers(_state: &AppState) -> Vec<Worker> {
    Vec::new()
}

/// Scheduled jobs of this module.
pub fn jobs(_state: &AppState) -> Vec<Job> {
    Vec::new()
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    pub id: TenantId,
    pub slug: String,
    pub business_name: String,
    /// `id` or `en`: the default language of the tenant's mail.
    pub locale: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    pub status: String,
}

/// A new merchant, validated by the caller.
#[derive(Debug)]
pub struct NewTenant<'a> {
    pub slug: &'a str,
    pub business_name: &'a str,
    pub locale: &'a str,
    pub country: &'a str,
}

/// Creates the tenant of `tx` (a transaction scoped to the new tenant's id) with its audit
/// record. A taken slug is a 409 `slug_taken`.
pub async fn create(tx: &mut TenantTx, actor: Actor, new: &NewTenant<'_>) -> Result<()> {
    let id = tx.tenant();
    sqlx::query!(
        "insert into tenants (id, slug, business_name, locale, country) values ($1, $2, $3, $4, $5)",
        id.0,
        new.slug,
        new.business_name,
        new.locale,
        new.country,
    )
    .execute(&mut **tx)
    .await
    .on_constraint("tenants_slug_key", || {
        Error::conflict("slug_taken", "This shop address is already taken.")
    })?;
    let record = AuditRecord::new(actor, "tenant.created", Resource::new("tenant", id)).fields(&[
        "slug",
        "business_name",
        "locale",
        "country",
    ]);
    events::emit_audit(tx, &record).await?;
    Ok(())
}

/// The tenant behind a slug and whether it is active: the one lookup made before a tenant is
/// known (sign-in), through the `tenant_by_slug` database function.
pub async fn by_slug(db: &Db, slug: &str) -> Result<Option<(TenantId, bool)>> {
    let row = sqlx::query!(
        r#"select id as "id!", status as "status!" from tenant_by_slug($1)"#,
        slug
    )
    .fetch_optional(db.global())
    .await?;
    Ok(row.map(|r| (TenantId(r.id), r.status == "active")))
}

/// The transaction's own tenant.
/// Whether the transaction's shop is open for business (not suspended, not closed): signed-in
/// work stops with it, existing sessions and refresh tokens included.
pub async fn is_active(tx: &mut TenantTx) -> Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"select exists (select 1 from tenants where id = $1 and status = 'active') as "active!""#,
        tx.tenant().0
    )
    .fetch_one(&mut **tx)
    .await?)
}

pub async fn current(tx: &mut TenantTx) -> Result<Tenant> {
    let id = tx.tenant();
    sqlx::query_as!(
        Tenant,
        "select id, slug, business_name, locale, country, status from tenants where id = $1",
        id.0
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(Error::NotFound)
}

/// The caller's tenant.
#[utoipa::path(get, path = "/api/v1/tenant", tag = "tenants",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Tenant),
        (status = 401, body = platform::error::Problem),
    ))]
async fn current_tenant(caller: Principal, State(state): State<AppState>) -> Result<Json<Tenant>> {
    let mut tx = state.db.tenant(caller.tenant).begin().await?;
    let tenant = current(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(tenant))
}
