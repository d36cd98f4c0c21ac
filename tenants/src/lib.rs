//! Merchants as tenants: the tenant record created at onboarding, its settings, retention
//! overrides. Onboarding itself is composed by `auth` (it creates the tenant through
//! [`create`], the owner through `users`, and the owner's credentials).
//!
//! Face (the same in every module crate): [`router`] for its HTTP routes under `/api/v1`,
//! [`workers`] for its background work, [`jobs`] for its scheduled jobs, [`MODULE`] for
//! `gateway` to compose, and its public API ([`create`], [`by_slug`], [`current`]).

pub mod profile;
pub mod retention;

pub use profile::{Profile, profile};

use platform::{
    AppState, Error, Module, Result, Worker,
    db::{Db, TenantTx},
    error::OnConstraint,
    events::{self, Actor, AuditRecord, Resource},
    health::Dependency,
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
    permissions: &[retention::ManageRetention::INFO, profile::ManageShop::INFO],
    subject_data: None,
    compliance: Some(&Probe),
};

/// What `tenants` tells the compliance verifier: the shop's sealed phone.
#[derive(Debug)]
pub struct Probe;

use platform::compliance::SealedColumn;

impl platform::compliance::ComplianceProbe for Probe {
    fn sealed_columns(&self) -> &'static [platform::compliance::SealedColumn] {
        // A tenant's row is its own: the tenant and the subject are both `id`.
        const SEALED: &[platform::compliance::SealedColumn] =
            &[SealedColumn::new("tenants", "phone", "tenants.phone", "id").tenant_in("id")];
        SEALED
    }
}

/// HTTP routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(profile::router())
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
    pub address: Option<String>,
    /// NPWP, digits only.
    pub tax_id: Option<String>,
    /// IANA name: the shop's days (receipt numbers, reports) are counted in it.
    pub time_zone: String,
    pub receipt_header: Option<String>,
    pub receipt_footer: Option<String>,
    /// ISO 4217.
    pub currency: String,
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
        "select id, slug, business_name, locale, country, status, address, tax_id, time_zone,
                receipt_header, receipt_footer, currency
         from tenants where id = $1",
        id.0
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(Error::NotFound)
}
