//! PostgreSQL access and tenancy.
//!
//! Two pools, two roles. Request code gets [`Db`], connected as `warung_app`, which owns nothing
//! and is subject to row-level security; the only way it reaches tenant tables is a
//! [`TenantTx`], which sets `app.tenant_id` for the life of the transaction. Cross-tenant workers
//! get a [`SystemDb`] (role `warung_system`), handed to them by the worker runtime and never
//! stored in `AppState`, so no request handler can reach it.

use std::{
    ops::{Deref, DerefMut},
    str::FromStr,
    time::Duration,
};

use secrecy::{ExposeSecret, SecretString};
use sqlx::{
    PgConnection, PgPool, Postgres, Transaction,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::{config::DatabaseConfig, id::TenantId};

/// Every migration of the whole database, in order. Run by `warung migrate` as the owner role.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Postgres settings applied to every pooled connection: a runaway query or a transaction left
/// open cannot hold locks for long.
const SESSION_SETTINGS: [(&str, &str); 3] = [
    ("statement_timeout", "15s"),
    ("lock_timeout", "5s"),
    ("idle_in_transaction_session_timeout", "60s"),
];

fn options(url: &SecretString, application: &str) -> Result<PgConnectOptions, sqlx::Error> {
    Ok(PgConnectOptions::from_str(url.expose_secret())?
        .application_name(application)
        .options(SESSION_SETTINGS))
}

fn pool(
    url: &SecretString,
    application: &str,
    max: u32,
    acquire_timeout: Duration,
) -> Result<PgPool, sqlx::Error> {
    // Lazy: the process starts and reports "not ready" while PostgreSQL is down, instead of
    // crash-looping; the first query connects.
    Ok(PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(acquire_timeout)
        .connect_lazy_with(options(url, application)?))
}

/// The request-path database handle (role `warung_app`).
#[derive(Debug, Clone)]
pub struct Db {
    pool: PgPool,
}

impl Db {
    pub fn connect(config: &DatabaseConfig) -> Result<Self, sqlx::Error> {
        let acquire = Duration::from_millis(config.acquire_timeout_ms);
        Ok(Self {
            pool: pool(&config.app_url, "warung", config.max_connections, acquire)?,
        })
    }

    /// A handle on another role's connection, e.g. the compliance verifier's read-only role:
    /// tenant transactions on it read as that role (and its policies) sees. Its statements may
    /// run for `statement_timeout` (a scan streams a whole table in one statement); the other
    /// session bounds are the request path's.
    pub fn connect_as(
        url: &SecretString,
        application: &str,
        max: u32,
        statement_timeout: Duration,
    ) -> Result<Self, sqlx::Error> {
        Self::connect_with(url, application, max, statement_timeout, None)
    }

    /// [`Self::connect_as`], with every connection of the pool bound to `tenant` from its start
    /// (`app.tenant_id` as a session setting): row-level security then shows that role only the
    /// tenant's rows, whatever the queries run on it (a shop owner's own compliance report).
    pub fn connect_as_tenant(
        url: &SecretString,
        application: &str,
        max: u32,
        statement_timeout: Duration,
        tenant: TenantId,
    ) -> Result<Self, sqlx::Error> {
        Self::connect_with(url, application, max, statement_timeout, Some(tenant))
    }

    fn connect_with(
        url: &SecretString,
        application: &str,
        max: u32,
        statement_timeout: Duration,
        tenant: Option<TenantId>,
    ) -> Result<Self, sqlx::Error> {
        let timeout = format!("{}ms", statement_timeout.as_millis());
        let mut options =
            options(url, application)?.options([("statement_timeout", timeout.as_str())]);
        if let Some(tenant) = tenant {
            options = options.options([("app.tenant_id", tenant.to_string())]);
        }
        Ok(Self {
            pool: PgPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(10))
                .connect_lazy_with(options),
        })
    }

    /// Entry point to everything tenant-owned: `db.tenant(id).begin().await?`.
    pub fn tenant(&self, tenant: TenantId) -> TenantScope<'_> {
        TenantScope {
            pool: &self.pool,
            tenant,
        }
    }

    /// Platform-wide reference tables that have no `tenant_id` (privacy purposes and policies,
    /// the `tenant_by_slug` lookup). Row-level security still hides every tenant table from
    /// queries run here: no tenant is set.
    pub fn global(&self) -> &PgPool {
        &self.pool
    }

    /// Round trip for readiness.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("select 1").execute(&self.pool).await.map(drop)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[derive(Debug, Clone, Copy)]
pub struct TenantScope<'a> {
    pool: &'a PgPool,
    tenant: TenantId,
}

impl TenantScope<'_> {
    /// Starts a transaction in which row-level security shows only this tenant's rows and
    /// refuses writes of any other tenant's.
    #[tracing::instrument(name = "db.tenant_tx", skip(self), fields(tenant.id = %self.tenant))]
    pub async fn begin(self) -> Result<TenantTx, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // `true`: local to this transaction, so a pooled connection never carries a stale tenant.
        sqlx::query("select set_config('app.tenant_id', $1, true)")
            .bind(self.tenant.to_string())
            .execute(&mut *tx)
            .await?;
        Ok(TenantTx {
            tx,
            tenant: self.tenant,
            extensions: http::Extensions::new(),
            after_commit: AfterCommit::default(),
        })
    }
}

/// A transaction bound to one tenant. Derefs to the connection, so repo functions take
/// `&mut TenantTx` (or `&mut PgConnection` via `&mut *tx`) and run queries on it.
#[derive(Debug)]
pub struct TenantTx {
    tx: Transaction<'static, Postgres>,
    tenant: TenantId,
    /// State that lives and dies with this transaction, e.g. data keys it created, which must
    /// not be shared with other transactions before they commit.
    extensions: http::Extensions,
    after_commit: AfterCommit,
}

type Hook = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Work to do once the transaction's changes are visible to others (e.g. clearing a cache
/// entry another request could otherwise refill from the old state).
#[derive(Default)]
struct AfterCommit(Vec<Hook>);

impl std::fmt::Debug for AfterCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AfterCommit({} hooks)", self.0.len())
    }
}

impl TenantTx {
    /// Runs `hook` after a successful commit (never after a rollback).
    pub fn after_commit(&mut self, hook: impl std::future::Future<Output = ()> + Send + 'static) {
        self.after_commit.0.push(Box::pin(hook));
    }

    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    pub fn extensions(&self) -> &http::Extensions {
        &self.extensions
    }

    pub fn extensions_mut(&mut self) -> &mut http::Extensions {
        &mut self.extensions
    }

    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Commits, unless the transaction wrote without emitting an audit record
    /// ([`crate::events::emit_audit`]): then it rolls back and fails. PostgreSQL assigns a
    /// transaction id on the first write, so "wrote" is exact, whatever the statements were.
    pub async fn commit(mut self) -> Result<(), CommitError> {
        if self.extensions.get::<crate::events::Audited>().is_none() {
            let wrote: bool =
                sqlx::query_scalar("select pg_current_xact_id_if_assigned() is not null")
                    .fetch_one(&mut *self.tx)
                    .await?;
            if wrote {
                self.tx.rollback().await?;
                return Err(CommitError::Unaudited);
            }
        }
        self.tx.commit().await?;
        for hook in self.after_commit.0.drain(..) {
            hook.await;
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl Deref for TenantTx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl DerefMut for TenantTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A bug: the transaction changed data but recorded no audit record. Rolled back.
    #[error("a transaction that changed data has no audit record; rolled back")]
    Unaudited,
}

impl From<CommitError> for crate::Error {
    fn from(err: CommitError) -> Self {
        match err {
            CommitError::Database(db) => Self::from(db),
            unaudited @ CommitError::Unaudited => Self::Internal(unaudited.into()),
        }
    }
}

/// The cross-tenant handle (role `warung_system`) for workers and operator commands only.
#[derive(Debug, Clone)]
pub struct SystemDb {
    pool: PgPool,
}

impl SystemDb {
    pub fn connect(config: &DatabaseConfig) -> Result<Self, sqlx::Error> {
        let acquire = Duration::from_millis(config.acquire_timeout_ms);
        Ok(Self {
            pool: pool(
                &config.system_url,
                "warung-system",
                config.system_max_connections,
                acquire,
            )?,
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Runs every pending migration as the schema owner.
pub async fn migrate(config: &DatabaseConfig) -> anyhow::Result<()> {
    let Some(url) = &config.migrate_url else {
        anyhow::bail!("database.migrate_url (WARUNG_DATABASE__MIGRATE_URL) is required to migrate");
    };
    // No session timeouts here: a migration may legitimately run long.
    let options =
        PgConnectOptions::from_str(url.expose_secret())?.application_name("warung-migrate");
    let mut conn = <PgConnection as sqlx::Connection>::connect_with(&options).await?;
    MIGRATOR.run(&mut conn).await?;
    Ok(())
}
