//! A database of a test's own, on the stack's PostgreSQL: for tests that must see the whole
//! database in a known state (the compliance verifier asserts that exactly one check fails), or
//! that run what works on every tenant at once (the outbox relay, the audit sink, the jobs),
//! which the shared database, where tests run side by side, cannot give.
//!
//! Each is a copy of a migrated template (`CREATE DATABASE … TEMPLATE`, a file copy: far
//! quicker than migrating), built once per set of migrations and month; the copy's migrations
//! are dated to its creation, as if it had just been migrated. Dropped by
//! [`FreshDatabase::drop`]; any left behind by a crashed test is dropped by the next one after
//! two hours, and templates of other migrations or months at once.

use std::time::Duration;

use platform::db::MIGRATOR;
use sqlx::PgPool;

use crate::stack_env;

/// The `WARUNG_DATABASE__*` URLs of the stack, pointed at another database.
#[derive(Debug, Clone)]
pub struct FreshDatabase {
    pub name: String,
}

const PREFIX: &str = "warung_ft_";
const TEMPLATE_PREFIX: &str = "warung_tpl_";

fn with_database(url: &str, name: &str) -> String {
    let mut url = url::Url::parse(url).expect("stack database url");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

async fn owner() -> PgPool {
    PgPool::connect(&stack_env()["WARUNG_DATABASE__MIGRATE_URL"])
        .await
        .expect("connect as owner")
}

async fn execute(pool: &PgPool, statement: String) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(pool)
        .await
        .map(drop)
}

/// The template's name: the month (audit partitions are made from the month the migrations
/// run in) and a digest of every migration's checksum.
fn template_name() -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for migration in MIGRATOR.iter() {
        migration.version.hash(&mut hasher);
        migration.checksum.hash(&mut hasher);
    }
    let month = chrono::Utc::now().format("%Y%m");
    format!("{TEMPLATE_PREFIX}{month}_{:016x}", hasher.finish())
}

/// Makes the migrated template unless it exists; one process builds it, under an advisory
/// lock, and renames it into place only when complete.
async fn template(owner: &PgPool) -> String {
    let name = template_name();
    let mut lock = owner.acquire().await.unwrap();
    sqlx::query("select pg_advisory_lock(hashtext('warung-test-template'))")
        .execute(&mut *lock)
        .await
        .unwrap();
    let existing: Vec<String> = sqlx::query_scalar(
        "select datname::text from pg_database where datname like 'warung\\_tpl\\_%'",
    )
    .fetch_all(&mut *lock)
    .await
    .unwrap();
    // Other migrations' templates go at once (this build no longer copies them); an older
    // month's only when it is two months old, since a test that started before midnight of
    // the first may still be copying it.
    let last_month = (chrono::Utc::now() - chrono::Months::new(1)).format("%Y%m");
    let hash = name.rsplit('_').next().unwrap_or_default();
    let stale = |other: &str| {
        let mut parts = other.trim_start_matches(TEMPLATE_PREFIX).split('_');
        let (month, other_hash) = (parts.next().unwrap_or_default(), parts.next());
        other_hash != Some(hash) || (month != last_month.to_string() && other != name)
    };
    for other in existing.iter().filter(|other| stale(other)) {
        let _ = execute(
            owner,
            format!("drop database if exists {other} with (force)"),
        )
        .await;
    }
    if !existing.contains(&name) {
        let building = format!("{name}_b");
        execute(owner, format!("create database {building}"))
            .await
            .expect("create the test template (the migrating role needs CREATEDB)");
        let pool = PgPool::connect(&with_database(
            &stack_env()["WARUNG_DATABASE__MIGRATE_URL"],
            &building,
        ))
        .await
        .expect("connect to the template");
        MIGRATOR.run(&pool).await.expect("migrate the template");
        pool.close().await;
        // Nothing connects to a template (not even autovacuum), so copying it never finds
        // another session in it.
        execute(
            owner,
            format!("alter database {building} with allow_connections false"),
        )
        .await
        .unwrap();
        execute(owner, format!("alter database {building} rename to {name}"))
            .await
            .unwrap();
    }
    sqlx::query("select pg_advisory_unlock(hashtext('warung-test-template'))")
        .execute(&mut *lock)
        .await
        .unwrap();
    name
}

impl FreshDatabase {
    /// A migrated database owned by the migrating role.
    pub async fn create() -> Self {
        let owner = owner().await;
        let now = now_secs();
        let stale: Vec<String> = sqlx::query_scalar(
            "select datname::text from pg_database where datname like 'warung\\_ft\\_%'",
        )
        .fetch_all(&owner)
        .await
        .unwrap();
        for name in stale {
            let created: u64 = name
                .trim_start_matches(PREFIX)
                .split('_')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(now);
            if now.saturating_sub(created) > 2 * 3600 {
                let _ = execute(
                    &owner,
                    format!("drop database if exists {name} with (force)"),
                )
                .await;
            }
        }
        let template = template(&owner).await;
        let name = format!(
            "{PREFIX}{now}_{}",
            &uuid::Uuid::now_v7().simple().to_string()[20..]
        );
        // A session that was building the template may still be on its way out.
        let mut tries = 0;
        while let Err(err) = execute(
            &owner,
            format!("create database {name} template {template}"),
        )
        .await
        {
            tries += 1;
            assert!(tries < 50, "copy the test template: {err}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        owner.close().await;
        let database = Self { name };
        // Deployed now, not when the template was migrated: the verifier judges which job
        // slots were due from the first migration's time.
        let pool = database.owner().await;
        sqlx::query("update _sqlx_migrations set installed_on = now()")
            .execute(&pool)
            .await
            .expect("date the copy's migrations");
        pool.close().await;
        database
    }

    /// Settings that point an app (and the verifier) at this database.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let env = stack_env();
        let mut settings = Vec::new();
        for key in [
            "WARUNG_DATABASE__APP_URL",
            "WARUNG_DATABASE__SYSTEM_URL",
            "WARUNG_DATABASE__MIGRATE_URL",
            "WARUNG_DATABASE__COMPLIANCE_URL",
        ] {
            if let Some(url) = env.get(key) {
                settings.push((key, with_database(url, &self.name)));
            }
        }
        settings
    }

    /// The schema owner's pool on this database.
    pub async fn owner(&self) -> PgPool {
        let url = with_database(&stack_env()["WARUNG_DATABASE__MIGRATE_URL"], &self.name);
        PgPool::connect(&url).await.expect("connect as owner")
    }

    pub async fn drop(self) {
        let owner = owner().await;
        execute(
            &owner,
            format!("drop database if exists {} with (force)", self.name),
        )
        .await
        .expect("drop the test's database");
        owner.close().await;
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
